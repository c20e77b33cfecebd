"""Hyperband search over the network's hyperparameters with keras-tuner."""

import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from nnstudy.core.data import PreparedData, Split
from nnstudy.core.errors import StudyError
from nnstudy.core.files import remove_tree
from nnstudy.training.models import build_model
from nnstudy.core.params import ModelParams, TuneParams

SEARCHED = ("units_1", "units_2", "l2", "learning_rate", "dropout", "batch_size")  # the last two: optional axes


class ValidationMacroF1(keras.callbacks.Callback):
    """Adds `val_f1`: macro F1 over the *whole* validation set at each epoch's end.

    Averaging per-batch F1 (the metric in many tutorials) is biased: F1 is not additive over
    batches, and a batch can miss a class entirely. Predicting the full set once is exact.
    """

    def __init__(self, validation: Split):
        super().__init__()
        self.x = validation.x
        self.labels = validation.labels

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        proba = self.model.predict(self.x, batch_size=1024, verbose=0)
        if logs is not None:  # the tuner, EarlyStopping and History read this same dict
            logs["val_f1"] = macro_f1(self.labels, proba)


def macro_f1(labels: np.ndarray, proba: np.ndarray) -> float:
    predicted = np.nan_to_num(np.asarray(proba)).argmax(axis=1)
    return float(f1_score(labels, predicted, labels=range(proba.shape[1]), average="macro", zero_division=0))


def tuned_model(base: ModelParams, values: dict[str, Any], batch_size: int, epochs: int) -> ModelParams:
    """The network a set of searched values stands for: RMSprop, He-normal, L2 on every layer.

    Dropout and batch size come from the search when it had those axes, else no dropout and
    `batch_size` (tune.batch_size).
    """
    return replace(
        base,
        optimizer="rmsprop",
        initializer="he_normal",
        hidden_units=(int(values["units_1"]), int(values["units_2"])),
        regularizer="l2",
        reg_alpha=float(values["l2"]),
        regularize_output=True,
        learning_rate=float(values["learning_rate"]),
        dropout=float(values.get("dropout") or 0.0),
        batch_size=int(values.get("batch_size") or batch_size),
        epochs=epochs,
    )


class StudyHyperband(kt.Hyperband):
    """Hyperband that also remembers how many epochs each trial really ran (early stopping)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.epochs_run: dict[str, int] = {}

    def run_trial(self, trial: kt.engine.trial.Trial, *args: Any, **kwargs: Any) -> Any:
        if "batch_size" in trial.hyperparameters.values:  # the optional batch-size axis
            kwargs["batch_size"] = trial.hyperparameters.get("batch_size")
        histories = super().run_trial(trial, *args, **kwargs)
        self.epochs_run[trial.trial_id] = sum(len(h.epoch) for h in histories)
        return histories


class StudyHyperModel(kt.HyperModel):
    """The searched network, trained the way the study trains: with `loop: compiled`, every trial
    runs on the compiled loop (one XLA program per epoch) instead of Keras' fit.

    keras-tuner hands `fit` its callbacks (its reporting, its best-epoch checkpoint, EarlyStopping)
    and, for a promoted Hyperband trial, `initial_epoch`; fit_compiled honours both at epoch level.
    Every trial shuffles from the search seed, as `train` shuffles a seed's run (under `fit` NumPy's
    global generator used to carry over from trial to trial, so a trial's shuffling depended on every
    trial run before it).
    """

    def __init__(self, base: ModelParams, space: TuneParams, data: PreparedData, seed: int, loop: str):
        super().__init__()
        self.base, self.space, self.seed, self.loop = base, space, seed, loop
        self.input_dim, self.num_classes = data.train.x.shape[1], data.num_classes

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        space = self.space
        values = {
            "units_1": hp.Choice("units_1", list(space.units_1)),
            "units_2": hp.Choice("units_2", list(space.units_2)),
            "l2": hp.Choice("l2", list(space.l2)),
            "learning_rate": hp.Choice("learning_rate", list(space.learning_rate)),
        }
        if space.dropout:
            values["dropout"] = hp.Choice("dropout", list(space.dropout))
        if space.batch_sizes:
            values["batch_size"] = hp.Choice("batch_size", list(space.batch_sizes))
        model = tuned_model(self.base, values, space.batch_size, space.max_epochs)
        return build_model(model, self.input_dim, self.num_classes, self.seed)

    def fit(self, hp: kt.HyperParameters, model: keras.Model, x: np.ndarray, y: np.ndarray, *,
            batch_size: int, validation_data: tuple[np.ndarray, np.ndarray], callbacks: list, epochs: int = 1,
            initial_epoch: int = 0, **fit_kwargs: Any) -> keras.callbacks.History:
        if self.loop != "compiled":
            # fit shuffles with NumPy's global generator: seeded here, as `train` seeds each run, and not
            # left in whatever state the trials before this one put it.
            keras.utils.set_random_seed(self.seed)
            return model.fit(x, y, batch_size=batch_size, validation_data=validation_data, callbacks=callbacks,
                             epochs=epochs, initial_epoch=initial_epoch, **fit_kwargs)
        from nnstudy.training.compiled import fit_compiled  # JAX only: imported only on that path

        history = keras.callbacks.History()  # what keras-tuner reads the trial's score from
        history.set_model(model)
        history.history = fit_compiled(model, x, y, validation_data, batch_size, epochs, seed=self.seed,
                                       callbacks=callbacks, initial_epoch=initial_epoch)
        history.epoch = list(range(initial_epoch, initial_epoch + len(history.history.get("loss", []))))
        return history


def make_tuner(base: ModelParams, space: TuneParams, data: PreparedData, seed: int, workdir: Path,
               fresh: bool = True, loop: str = "fit") -> StudyHyperband:
    """The tuner; `fresh=False` for a keras-tuner worker, which joins the chief's folder as it is."""
    # A re-run never resumes stale trials: the folder is wiped and the tuner told to overwrite.
    if fresh:
        remove_tree(workdir)
    return StudyHyperband(
        StudyHyperModel(base, space, data, seed, loop),
        objective=kt.Objective(space.objective, direction="max"),
        max_epochs=space.max_epochs,
        factor=space.factor,
        hyperband_iterations=space.hyperband_iterations,
        seed=seed,
        directory=str(workdir.parent),
        project_name=workdir.name,
        overwrite=fresh,
    )


def search(tuner: StudyHyperband, space: TuneParams, data: PreparedData) -> None:
    # Hyperband resumes a promoted trial from its checkpointed weights with a fresh optimizer, by
    # design; Keras warns about the optimizer state it skips once per resumed trial.
    warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
    tuner.search(
        data.train.x,
        data.train.y,
        batch_size=space.batch_size,
        validation_data=(data.val.x, data.val.y),
        shuffle=True,
        verbose=0,
        callbacks=[
            # Only when the search is judged by it: it predicts the whole validation set every epoch,
            # one more compiled program per trial. First, so the callbacks after it see val_f1.
            *([ValidationMacroF1(data.val)] if space.objective == "val_f1" else []),
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=space.patience),
        ],
    )


def trials_table(tuner: StudyHyperband) -> pd.DataFrame:
    """Every trial: searched values, Hyperband's budget, objective, epochs run and status; best first."""
    rows = []
    for trial in tuner.oracle.trials.values():
        values = trial.hyperparameters.values
        rows.append({
            "trial_id": trial.trial_id,
            **{name: values.get(name) for name in SEARCHED if name in values or name in SEARCHED[:4]},
            "bracket": values.get("tuner/bracket"),
            "round": values.get("tuner/round"),
            "epoch_budget": values.get("tuner/epochs"),
            "epochs_run": tuner.epochs_run.get(trial.trial_id, 0),
            "objective": trial.score,
            "status": str(trial.status),
        })
    table = pd.DataFrame(rows)
    return table.sort_values(["objective", "trial_id"], ascending=[False, True], na_position="last",
                             ignore_index=True)


def best_summary(tuner: StudyHyperband, space: TuneParams) -> dict[str, Any]:
    finished = [t for t in tuner.oracle.get_best_trials(len(tuner.oracle.trials)) if t.score is not None]
    if not finished:
        raise StudyError(f"tune: none of the {len(tuner.oracle.trials)} trials finished; see the errors above")
    best = finished[0]
    return {
        "trial_id": best.trial_id,
        "objective": space.objective,
        "space": space.preset,
        "value": best.score,
        "hyperparameters": {name: best.hyperparameters.values[name] for name in SEARCHED
                            if name in best.hyperparameters.values},
    }


def chance_warning(best_value: float, chance: float, objective: str) -> str | None:
    """A search whose best trial is no better than always guessing the largest class has found
    nothing: said aloud, not published as a tuned network."""
    from nnstudy.training.loop import CHANCE_MARGIN

    if objective == "val_accuracy" and best_value <= chance + CHANCE_MARGIN:
        return (f"tune: WARNING: the best trial's val_accuracy {best_value:.4f} is at chance level "
                f"({chance:.4f}, always the largest class): every trial collapsed; check the space")
    return None
