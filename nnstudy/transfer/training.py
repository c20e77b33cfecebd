"""Train one transfer recipe: the Keras guide's two phases, each with early stopping.

    weights none:      one phase, every layer trains (the same CNN from scratch)
    weights source or imagenet:
        phase "head":      the base frozen, the head trains at `learning_rate`
        phase "fine_tune": the top `unfreeze` share of the base trains too, at `fine_tune_learning_rate`
                           (skipped when unfreeze is 0: the frozen-base arm)

Each phase stops when val_loss has not improved for `patience` epochs and restores its best
epoch's weights; the second phase starts from the first one's best weights.

With a checkpoint (nnstudy.training.resume), the state is saved after every epoch and at the start
of the second phase, and a killed run resumes in the phase and at the epoch it had reached.
"""

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import keras
import numpy as np

from nnstudy.transfer.models import (
    base_of, build_network, compile_network, freeze, trainable_count, unfreeze_all, unfreeze_top,
)
from nnstudy.training.resume import Checkpointing, EpochState, SeedCheckpoint, resume_network
from nnstudy.transfer.params import PretrainParams, Recipe


@dataclass(frozen=True, eq=False)
class Task:
    """Float images in [0, 1] (N, H, W, C) and int labels, ready for fit."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    num_classes: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.x_train.shape[1:])


@dataclass
class Phase:
    name: str
    epochs_run: int
    kept_epoch: int          # 1-based, within the phase: the epoch whose weights were kept
    trainable_weights: int   # how many numbers this phase trained
    unfrozen_layers: int | None = None


@dataclass
class TransferResult:
    network: keras.Model
    history: dict[str, list[float]] = field(default_factory=dict)  # every epoch of both phases
    phases: list[Phase] = field(default_factory=list)
    fit_seconds: float = 0.0

    @property
    def diverged(self) -> bool:
        return not all(np.isfinite(self.history.get("loss", [np.nan])))


class _Epochs(keras.callbacks.Callback):
    def __init__(self, log: Callable[[int, dict], None], offset: int):
        super().__init__()
        self.log, self.offset = log, offset

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.log(self.offset + epoch, dict(logs or {}))


@dataclass(frozen=True)
class Resume:
    """Where a seed's state goes every epoch (`checkpoint`), what a killed run left there (`state`),
    and the DVCLive run whose step and summary come back with it."""
    checkpoint: SeedCheckpoint
    state: EpochState | None
    live: object | None = None


def fit_phase(network: keras.Model, task: Task, recipe: Recipe, name: str, learning_rate: float,
              result: TransferResult, log: Callable[[int, dict], None] | None, resume: Resume | None = None) -> None:
    """One phase: compile (a change of `trainable` counts only from compile on), fit, keep the best epoch."""
    compile_network(network, recipe.optimizer, learning_rate)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=recipe.patience, restore_best_weights=True)
    callbacks = [stop, keras.callbacks.TerminateOnNaN()]
    offset = len(result.history.get("loss", []))
    if log is not None:
        callbacks.append(_Epochs(log, offset=offset))
    batch_size = min(recipe.batch_size, len(task.x_train))
    resumed = None  # the killed run's state, when it died in this phase
    if resume is not None and resume.state is not None and resume.state.extra["phase"] == len(result.phases):
        resumed = resume.state
    initial_epoch, seconds_before = 0, 0.0
    if resumed is not None:
        initial_epoch, seconds_before = resumed.extra["epoch_in_fit"], resumed.fit_seconds
        first_batch = (task.x_train[:batch_size], task.y_train[:batch_size]) if initial_epoch else None
        resume_network(network, resumed, first_batch, resume.live)
        print(f"  resuming the {name} phase at its epoch {initial_epoch + 1}", flush=True)
    if resume is not None:
        extra = {"phase": len(result.phases), "history": result.history, "fit_seconds": result.fit_seconds,
                 "phases": [asdict(phase) for phase in result.phases]}
        saver = Checkpointing(resume.checkpoint, recipe.epochs, resumed, resume.live, stop, extra=extra,
                              history_offset=offset)
        callbacks.append(saver)  # last: it saves what the others decided
        if resumed is None and result.phases:
            # The second phase's start (the first phase's best weights, the shuffle RNG; its optimizer
            # is not built yet, as fit will build it): a kill in its first epoch loses that epoch only.
            # (Building the optimizer here would change the run: fit builds it from a batch of its
            # shuffled data, which draws from the shuffle RNG.)
            saver.set_model(network)
            saver.save(0)
    # Keras' own fit, on every backend. (The MLP study's compiled loop, one jax.lax.scan per epoch,
    # made these CNNs ~8x slower on CPU: XLA optimises convolutions inside a scan poorly. Measured:
    # pretraining cnn_medium on 1,600 digits, 151 s compiled vs 18 s with fit.)
    start = time.perf_counter()
    history = network.fit(task.x_train, task.y_train, batch_size=batch_size, epochs=recipe.epochs,
                          validation_data=(task.x_val, task.y_val), shuffle=True, verbose=0, callbacks=callbacks,
                          initial_epoch=initial_epoch).history
    result.fit_seconds += time.perf_counter() - start + seconds_before
    if resumed is not None:
        history = {metric: [*resumed.history.get(metric, []), *values] for metric, values in history.items()}
    for metric, values in history.items():
        result.history.setdefault(metric, []).extend(float(v) for v in values)
    result.history.setdefault("phase", []).extend([name] * len(history["loss"]))
    losses = np.nan_to_num(np.asarray(history["val_loss"], dtype=float), nan=np.inf)
    result.phases.append(Phase(name, len(history["loss"]), int(losses.argmin()) + 1, trainable_count(network)))


def most_epochs(recipe: Recipe) -> int:
    """The most epochs a recipe trains, both phases together (each stops early at `epochs` or before)."""
    two_phases = recipe.weights != "none" and recipe.unfreeze > 0
    return recipe.epochs * (2 if two_phases else 1)


def train_recipe(recipe: Recipe, task: Task, base_weights: Path | None = None, imagenet: Path | None = None,
                 augmentations: tuple[str, ...] = (), factor: float = 0.1,
                 log: Callable[[int, dict], None] | None = None, checkpoint: SeedCheckpoint | None = None,
                 live=None) -> TransferResult:
    """Build the network for `recipe` and train it on `task` (seed the backend first)."""
    network = build_network(recipe, task.image_shape, task.num_classes, augmentations, factor, imagenet)
    if base_weights is not None:
        base_of(network).load_weights(base_weights)
    result = TransferResult(network)
    resume = None
    if checkpoint is not None:
        resume = Resume(checkpoint, checkpoint.load(), live)
        if resume.state is not None:  # the phases the killed run finished, as it recorded them
            result.history = {k: list(v) for k, v in resume.state.extra["history"].items()}
            result.phases = [Phase(**phase) for phase in resume.state.extra["phases"]]
            result.fit_seconds = resume.state.extra["fit_seconds"]
    done = len(result.phases)  # phases restored: not trained again, but their freezing is redone

    if recipe.weights == "none":
        unfreeze_all(network)
        if done < 1:
            fit_phase(network, task, recipe, "scratch", recipe.learning_rate, result, log, resume)
        return result
    freeze(network)
    if done < 1:
        fit_phase(network, task, recipe, "head", recipe.learning_rate, result, log, resume)
    if recipe.unfreeze > 0 and not result.diverged:
        unfrozen = unfreeze_top(network, recipe.unfreeze)
        fit_phase(network, task, recipe, "fine_tune", recipe.fine_tune_learning_rate, result, log, resume)
        result.phases[-1].unfrozen_layers = unfrozen
    return result


def pretrain(recipe: Recipe, settings: PretrainParams, task: Task,
             log: Callable[[int, dict], None] | None = None) -> TransferResult:
    """The source network: the recipe's base trained from scratch on the source classes."""
    source = replace(recipe, weights="none", augment=False, epochs=settings.epochs, batch_size=settings.batch_size,
                     learning_rate=settings.learning_rate, patience=settings.patience, optimizer="adam")
    return train_recipe(source, task, log=log)
