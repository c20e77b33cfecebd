"""Train one network, logging every epoch with DVCLive, and record what the study compares."""

import math
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from dvclive import Live
from dvclive.keras import DVCLiveCallback

from nnstudy.data import PreparedData, Split
from nnstudy.errors import DataError
from nnstudy.models import build_model
from nnstudy.params import ModelParams
from nnstudy.weights import Snapshot

# Steps run per call into the compiled train function. Online learning (batch size 1) spends
# most of its time in per-step Python overhead; looping inside the graph makes it ~4x faster
# and runs exactly the same sequence of updates.
MAX_STEPS_PER_EXECUTION = 400


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


def resolve_batch_size(batch_size: int | str, train_size: int) -> int:
    return train_size if batch_size == "full" else min(int(batch_size), train_size)


def weight_snapshot(network: keras.Model) -> Snapshot:
    """Every trainable array by layer and name, e.g. 'hidden_1/kernel'."""
    return {
        f"{layer.name}/{w.name}": keras.ops.convert_to_numpy(w)
        for layer in network.layers
        for w in layer.trainable_weights
    }


def has_diverged(train_losses: list[float], weights: Snapshot, loss_limit: float) -> bool:
    """Diverged: a training loss that was NaN/inf or blew past `loss_limit`, or non-finite weights.

    Any epoch counts, not only the last: a mean-10 network's loss explodes to ~1e9 and then sits
    at ln(10) with every ReLU dead, which looks calm but never learns again.
    """
    if not train_losses or not all(math.isfinite(loss) and loss <= loss_limit for loss in train_losses):
        return True
    return not all(np.isfinite(w).all() for w in weights.values())


def train(model: ModelParams, data: PreparedData, seed: int, live: Live, loss_limit: float) -> TrainResult:
    """Build the network and fit it on data.train, validating on data.val each epoch.

    A diverging run is a result, not a crash: it ends early on NaN and is flagged.
    """
    batch_size = resolve_batch_size(model.batch_size, len(data.train.x))
    steps_per_epoch = math.ceil(len(data.train.x) / batch_size)
    network = build_model(
        model,
        input_dim=data.train.x.shape[1],
        num_classes=data.num_classes,
        seed=seed,
        steps_per_execution=min(steps_per_epoch, MAX_STEPS_PER_EXECUTION),
    )
    before = weight_snapshot(network)
    start = time.perf_counter()
    history = network.fit(
        data.train.x,
        data.train.y,
        batch_size=batch_size,
        epochs=model.epochs,
        validation_data=(data.val.x, data.val.y),
        shuffle=True,
        verbose=0,
        # NaN weights never recover: stop there instead of burning the remaining epochs.
        callbacks=[DVCLiveCallback(live=live), keras.callbacks.TerminateOnNaN()],
    )
    fit_seconds = time.perf_counter() - start
    after = weight_snapshot(network)
    losses = [float(v) for v in history.history["loss"]]
    return TrainResult(
        network=network,
        history={name: [float(v) for v in values] for name, values in history.history.items()},
        weights_before=before,
        weights_after=after,
        fit_seconds=fit_seconds,
        weight_updates=int(keras.ops.convert_to_numpy(network.optimizer.iterations)),
        epochs_run=len(losses),
        diverged=has_diverged(losses, after, loss_limit),
    )


def open_live(folder: Path) -> Live:
    """A DVCLive run that leaves dvc.yaml alone (dvc.yaml declares its outputs) and makes no experiment."""
    return Live(str(folder), dvcyaml=False, save_dvc_exp=False)


def record_summary(live: Live, result: TrainResult) -> None:
    """Add the study's per-run facts to DVCLive's metrics.json (wall time goes elsewhere)."""
    live.summary["diverged"] = result.diverged
    live.summary["weight_updates"] = result.weight_updates
    live.summary["epochs_run"] = result.epochs_run
    live.make_summary()


def learning_curves(history: dict[str, list[float]]) -> dict[str, pd.DataFrame]:
    """Per metric, one table of epoch, train and validation: what `dvc plots` overlays."""
    return {
        metric: pd.DataFrame({
            "epoch": range(1, len(history[metric]) + 1),
            "train": history[metric],
            "validation": history[f"val_{metric}"],
        })
        for metric in ("accuracy", "loss")
    }


def load_network(path: Path) -> keras.Model:
    if not path.exists():
        raise DataError(f"{path}: missing; run `dvc repro` to train it")
    return keras.saving.load_model(path)


def predict_proba(network: keras.Model, split: Split, batch_size: int = 1024) -> np.ndarray:
    return np.asarray(network.predict(split.x, batch_size=batch_size, verbose=0), dtype=np.float64)
