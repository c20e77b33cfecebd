"""Train one network, logging every epoch with DVCLive, and record what the study compares.

Two loops run the same math: Keras' `fit` (any backend) and, on JAX, `fit_compiled`, which runs a
whole epoch as one XLA program. `loop` in params.yaml picks one.
"""

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd  # DVCLive imports it anyway
from dvclive import Live
from dvclive.utils import standardize_metric_name

from nnstudy.core.data import PreparedData, Split
from nnstudy.core.errors import DataError
from nnstudy.core.jsonio import make_strict
from nnstudy.core.params import ModelParams
from nnstudy.training.models import build_model, encode_targets
from nnstudy.training.resume import (Checkpointing, EpochState, SeedCheckpoint, SeedsCheckpoint, SeedSlot, announce,
                                     resume_network)
from nnstudy.training.weights import Snapshot

# Steps run per call into the compiled train function of `fit`. Online learning (batch size 1)
# spends most of its time in per-step Python overhead; looping inside the compiled function makes
# it ~3x faster and runs exactly the same sequence of updates.
MAX_STEPS_PER_EXECUTION = 400

# A long stage prints an epoch line at most this often (and always its last epoch): enough to
# see it move and when it will end, few enough lines to keep CI logs readable.
PROGRESS_SECONDS = 10.0

# A running stage's DVCLive metrics.json is refreshed at most this often (the study reads it only
# when the run has ended): see _EpochLive.
LIVE_SYNC_SECONDS = 10.0

# A network whose final training accuracy is within this of always guessing the largest class has
# learned nothing: a collapsed run (dead ReLUs, saturated outputs), not a weak one.
CHANCE_MARGIN = 0.01


@dataclass(frozen=True)
class EarlyStop:
    """Stop when `monitor` has not improved for `patience` epochs; keep the best epoch's weights."""
    monitor: str   # val_loss | val_accuracy
    patience: int

    @property
    def mode(self) -> str:
        return "min" if self.monitor.endswith("loss") else "max"


@dataclass(frozen=True)
class TrainResult:
    network: keras.Model
    history: dict[str, list[float]]
    weights_before: Snapshot
    weights_after: Snapshot
    fit_seconds: float
    weight_updates: int
    epochs_run: int
    diverged: bool
    kept_epoch: int  # 1-based: the epoch whose weights the network holds (the last, or the best one)
    built_at: float  # epoch seconds when the network was built (stage start-up ends there)


def resolve_batch_size(batch_size: int | str, train_size: int) -> int:
    return train_size if batch_size == "full" else min(int(batch_size), train_size)


def weight_snapshot(network: keras.Model) -> Snapshot:
    """Every trainable array by layer and name, e.g. 'hidden_1/kernel'."""
    return {
        f"{layer.name}/{w.name}": keras.ops.convert_to_numpy(w)
        for layer in network.layers
        for w in layer.trainable_weights
    }


def has_diverged(train_losses: list[float], weights: Snapshot, loss_limit: float,
                 final_accuracy: float | None = None, chance: float = 0.0) -> bool:
    """Diverged: a training loss that was NaN/inf or blew past `loss_limit`, non-finite weights, or a
    network that ended no better than always guessing one class (`chance`: the largest class share).

    Any epoch counts, not only the last: a mean-10 network's loss explodes to ~1e9 and then sits
    at ln(10) with every ReLU dead, which looks calm but never learns again. How far it explodes
    depends on the backend (TensorFlow computes cross-entropy from the logits, JAX from clipped
    probabilities, which caps it near 16), so the collapse to chance accuracy is checked as well.
    """
    if not train_losses or not all(math.isfinite(loss) and loss <= loss_limit for loss in train_losses):
        return True
    if final_accuracy is not None and final_accuracy <= chance + CHANCE_MARGIN:
        return True
    return not all(np.isfinite(w).all() for w in weights.values())


class Progress:
    """Plain epoch lines with losses and an ETA, rate-limited (no carriage returns: CI logs stay clean)."""

    def __init__(self, label: str, epochs: int, every: float = PROGRESS_SECONDS):
        self.label, self.epochs, self.every = label, epochs, every
        self.start = self.last = time.perf_counter()
        self.printed = False

    def __call__(self, epoch: int, logs: dict[str, float]) -> None:
        now = time.perf_counter()
        done = epoch + 1
        # A short run prints nothing here (the stage's own summary line says it all); a long one
        # prints every `every` seconds and then its last epoch.
        if now - self.last < self.every and not (done == self.epochs and self.printed):
            return
        self.last, self.printed = now, True
        elapsed = now - self.start
        eta = elapsed / done * (self.epochs - done)
        values = " ".join(f"{name} {logs[name]:.4g}" for name in ("loss", "val_loss", "val_accuracy") if name in logs)
        print(f"  {self.label}: epoch {done}/{self.epochs} {values} ({elapsed:.0f} s, ETA {eta:.0f} s)",
              file=sys.stderr, flush=True)


def epoch_logger(live: Live, progress: Callable[[int, dict[str, float]], None]) -> Callable[[int, dict], None]:
    """One epoch's logs into DVCLive (the names DVCLive's Keras callback uses: train/…, eval/…)."""
    def log(epoch: int, logs: dict) -> None:
        for name, value in logs.items():
            # plot=False: no per-step TSV under results/ (`dvc metrics` would try to parse it);
            # the learning curves go to plots/curves/ instead, mean and spread over seeds.
            live.log_metric(standardize_metric_name(name, "dvclive.keras"), float(value), plot=False)
        live.next_step()
        progress(epoch, logs)
    return log


class _EpochEnd(keras.callbacks.Callback):
    """`fit`'s side of epoch_logger. (dvclive.keras subclasses tf.keras, which imports TensorFlow.)"""

    def __init__(self, log: Callable[[int, dict], None]):
        super().__init__()
        self.log = log

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.log(epoch, dict(logs or {}))


def kept_epoch(history: dict[str, list[float]], stop: EarlyStop | None) -> int:
    """The 1-based epoch whose weights the network ends with: the best monitored one, or the last."""
    epochs = len(history["loss"])
    if stop is None or not history.get(stop.monitor):
        return epochs
    values = np.asarray(history[stop.monitor], dtype=float)
    values = np.where(np.isfinite(values), values, np.inf if stop.mode == "min" else -np.inf)
    return int(values.argmin() if stop.mode == "min" else values.argmax()) + 1


@dataclass
class _Run:
    """One seed's network and what goes with it, set up (and resumed) for training."""
    network: keras.Model
    before: Snapshot
    built_at: float
    callbacks: list[keras.callbacks.Callback]
    resumed: EpochState | None
    saver: Checkpointing | None


def _set_up(model: ModelParams, data: PreparedData, seed: int, live: Live, loop: str, label: str,
            stop: EarlyStop | None, checkpoint: SeedCheckpoint | SeedSlot | None, resumed: EpochState | None,
            targets: tuple[np.ndarray, np.ndarray], batch_size: int, ended: bool = False) -> _Run:
    """Build the seed's network with its callbacks (epoch logging, early stopping, checkpointing), put
    back in the state of `resumed` (the killed run's last saved epoch) if any; `ended`: that state is
    the seed's last (it stopped before the kill, while the seeds trained with it went on)."""
    steps_per_epoch = math.ceil(len(data.train.x) / batch_size)
    network = build_model(
        model,
        input_dim=data.train.x.shape[1],
        num_classes=data.num_classes,
        seed=seed,
        steps_per_execution=1 if loop == "compiled" else min(steps_per_epoch, MAX_STEPS_PER_EXECUTION),
    )
    built_at = time.time()
    before = weight_snapshot(network)
    callbacks: list[keras.callbacks.Callback] = [_EpochEnd(epoch_logger(live, Progress(label, model.epochs)))]
    early_stop = None
    if stop is not None:
        early_stop = keras.callbacks.EarlyStopping(monitor=stop.monitor, mode=stop.mode, patience=stop.patience,
                                                   restore_best_weights=True)
        callbacks.append(early_stop)
    if resumed is not None:
        resume_network(network, resumed, (data.train.x[:batch_size], targets[0][:batch_size]), live)
        if ended:
            print(f"{label}: ended after epoch {resumed.epoch} in the interrupted run; kept as it was",
                  file=sys.stderr, flush=True)
        else:
            announce(label, resumed, model.epochs)
    saver = None
    if checkpoint is not None:
        # fit shuffles with NumPy's global RNG (on JAX); the compiled loop replays its own from the seed.
        saver = Checkpointing(checkpoint, model.epochs, resumed, live, early_stop, numpy_rng=loop != "compiled")
        callbacks.append(saver)  # last: it sees the others' decisions
    return _Run(network, before, built_at, callbacks, resumed, saver)


def _result(run: _Run, history: dict[str, list[float]], fit_seconds: float, data: PreparedData, loss_limit: float,
            stop: EarlyStop | None) -> TrainResult:
    network = run.network
    after = weight_snapshot(network)
    history = {name: [float(v) for v in values] for name, values in history.items()}
    if run.resumed is not None:
        # (A seed that had ended before the kill trains no more: its history is all in `resumed`.)
        history = {name: [*run.resumed.history.get(name, []), *history.get(name, [])]
                   for name in dict.fromkeys([*run.resumed.history, *history])}
    losses = history["loss"]
    return TrainResult(
        network=network,
        history=history,
        weights_before=run.before,
        weights_after=after,
        fit_seconds=fit_seconds,
        weight_updates=int(keras.ops.convert_to_numpy(network.optimizer.iterations)),
        epochs_run=len(losses),
        diverged=has_diverged(losses, after, loss_limit, history["accuracy"][-1],
                              chance=float(data.train.y.mean(axis=0).max())),
        kept_epoch=kept_epoch(history, stop),
        built_at=run.built_at,
    )


def train(model: ModelParams, data: PreparedData, seed: int, live: Live, loss_limit: float, loop: str = "fit",
          label: str = "train", stop: EarlyStop | None = None, checkpoint: SeedCheckpoint | None = None) -> TrainResult:
    """Build the network and fit it on data.train, validating on data.val each epoch.

    A diverging run is a result, not a crash: it ends early on NaN and is flagged.
    With a `checkpoint`, the state after every epoch is saved there, and a run that finds one (its
    stage was killed) resumes from it: the same result as a run never interrupted.
    """
    batch_size = resolve_batch_size(model.batch_size, len(data.train.x))
    y_train, y_val = encode_targets(model, data.train.y), encode_targets(model, data.val.y)
    resumed = checkpoint.load() if checkpoint is not None else None
    run = _set_up(model, data, seed, live, loop, label, stop, checkpoint, resumed, (y_train, y_val), batch_size)
    network = run.network
    initial_epoch = resumed.epoch if resumed is not None else 0
    start = time.perf_counter()
    if loop == "compiled":
        from nnstudy.training.compiled import fit_compiled  # JAX only: imported only on that path

        # Stops by itself on a NaN epoch (TerminateOnNaN needs batch-level calls, which it has none of).
        history = fit_compiled(network, data.train.x, y_train, (data.val.x, y_val), batch_size,
                               model.epochs, seed=seed, callbacks=run.callbacks, initial_epoch=initial_epoch)
    else:
        # NaN weights never recover: stop there instead of burning the remaining epochs.
        # (Before the checkpointing callback, as ever: that one must see the stop.)
        last = -1 if run.saver is not None else len(run.callbacks)
        callbacks = [*run.callbacks[:last], keras.callbacks.TerminateOnNaN(), *run.callbacks[last:]]
        history = network.fit(
            data.train.x,
            y_train,
            batch_size=batch_size,
            epochs=model.epochs,
            validation_data=(data.val.x, y_val),
            shuffle=True,
            verbose=0,
            callbacks=callbacks,
            initial_epoch=initial_epoch,
        ).history
    fit_seconds = time.perf_counter() - start + (resumed.fit_seconds if resumed is not None else 0.0)
    return _result(run, history, fit_seconds, data, loss_limit, stop)


def train_seeds(model: ModelParams, data: PreparedData, seeds: list[int], lives: list[Live], loss_limit: float,
                labels: list[str], stop: EarlyStop | None = None,
                checkpoint: SeedsCheckpoint | None = None) -> list[TrainResult]:
    """`train` for every seed at once on the compiled loop (JAX): one XLA program per epoch, vmapped
    over the seeds. Each seed does what `train` does with it (its own initialisation, shuffling,
    dropout, early stopping, NaN stop), to float rounding, with the same outputs.

    With a `checkpoint`, all the seeds' states after every epoch are saved there as one file, and a
    rerun resumes them all from it. Each result's fit_seconds is its share of the common time (the
    total over the seeds divided by their number), so the seeds' sum is the stage's training time.
    """
    from nnstudy.training.compiled import fit_compiled_seeds  # JAX only: imported only on that path
    from nnstudy.training.models import enable_determinism

    batch_size = resolve_batch_size(model.batch_size, len(data.train.x))
    y_train, y_val = encode_targets(model, data.train.y), encode_targets(model, data.val.y)
    saved = checkpoint.load(seeds) if checkpoint is not None else None
    stopped = [saved.stopped[seed] if saved is not None else False for seed in seeds]
    runs = []
    for seed, live, label, ended in zip(seeds, lives, labels, stopped):
        enable_determinism(seed)  # as the stage does before each seed it trains alone
        resumed = saved.seeds[seed] if saved is not None else None
        runs.append(_set_up(model, data, seed, live, "compiled", label, stop,
                            checkpoint.slot(seed) if checkpoint is not None else None, resumed,
                            (y_train, y_val), batch_size, ended=ended))
    running = [not done for done in stopped]

    def save(epoch: int, active: list[bool]) -> None:
        done = epoch + 1
        if checkpoint is None or done >= model.epochs:
            return  # the last epoch is never saved (see Checkpointing)
        for i, run in enumerate(runs):
            if running[i] and not active[i]:
                # It ended with this epoch: its Checkpointing saved nothing (a seed alone would not
                # go on); the others do, so its final state goes in the file with theirs.
                run.saver.save(done)
            running[i] = active[i]
        if any(active):
            checkpoint.commit(done, {seed: not running[i] for i, seed in enumerate(seeds)})

    start = time.perf_counter()
    histories = fit_compiled_seeds([run.network for run in runs], data.train.x, y_train, (data.val.x, y_val),
                                   batch_size, model.epochs, list(seeds), callbacks=[run.callbacks for run in runs],
                                   initial_epoch=saved.epoch if saved is not None else 0, stopped=stopped,
                                   on_epochs_end=save)
    before = max((state.fit_seconds for state in saved.seeds.values()), default=0.0) if saved is not None else 0.0
    share = (time.perf_counter() - start + before) / len(seeds)
    return [_result(run, history, share, data, loss_limit, stop) for run, history in zip(runs, histories)]


class _EpochLive(Live):
    """DVCLive's Live, whose next_step writes its files at most every LIVE_SYNC_SECONDS.

    Live.next_step rewrites metrics.json and writes, with an fsync, a signal file for VS Code's
    DVC extension: 4-6 ms a step, a fifth of a small network's 23 ms epoch. Between writes a step
    only advances the step counter, as next_step does; the first step and end() (record_summary)
    write as before, so the finished run's files are the same bytes.
    """

    _synced_at: float | None = None

    def next_step(self) -> None:
        now = time.perf_counter()
        if self._synced_at is not None and now - self._synced_at < LIVE_SYNC_SECONDS:
            self.step += 1
            return
        self._synced_at = now
        super().next_step()


def open_live(folder: Path) -> Live:
    """A DVCLive run that leaves dvc.yaml alone (dvc.yaml declares its outputs) and makes no experiment."""
    return _EpochLive(str(folder), dvcyaml=False, save_dvc_exp=False)


def record_summary(live: Live, result: TrainResult) -> None:
    """Add the study's per-run facts to DVCLive's metrics.json (wall time goes elsewhere)."""
    live.summary["diverged"] = result.diverged
    live.summary["weight_updates"] = result.weight_updates
    live.summary["epochs_run"] = result.epochs_run
    live.summary["kept_epoch"] = result.kept_epoch
    live.make_summary()
    live.end()
    make_strict(Path(live.dir))  # a NaN loss would otherwise be written as a bare NaN


def load_network(path: Path) -> keras.Model:
    if not path.exists():
        raise DataError(f"{path}: missing; run `dvc repro` to train it")
    return keras.saving.load_model(path)


def predict_proba(network: keras.Model, split: Split, batch_size: int = 1024) -> np.ndarray:
    return np.asarray(network.predict(split.x, batch_size=batch_size, verbose=0), dtype=np.float64)


def learning_curves(histories: list[dict[str, list[float]]]) -> dict[str, pd.DataFrame]:
    """Per metric, epoch by epoch over the seeds: mean train and validation (what `dvc plots`
    overlays) and their standard deviations (the report's bands). A seed that stopped early
    (NaN, early stopping) counts only for the epochs it ran; `seeds` says how many did.
    """
    tables = {}
    for metric in ("accuracy", "loss"):
        runs = pd.concat([
            pd.DataFrame({"epoch": range(1, len(h[metric]) + 1), "train": h[metric], "validation": h[f"val_{metric}"]})
            for h in histories
        ])
        grouped = runs.groupby("epoch")
        table = grouped[["train", "validation"]].mean()
        table[["train_sd", "validation_sd"]] = grouped[["train", "validation"]].std(ddof=1).fillna(0.0).to_numpy()
        table["seeds"] = grouped.size()
        tables[metric] = table.reset_index()
    return tables
