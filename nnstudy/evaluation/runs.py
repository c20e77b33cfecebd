"""Every seed's network of one variant on a split: probabilities in, per-seed measures and labels out."""

from collections.abc import Iterable

import numpy as np
import pandas as pd

from nnstudy.core import paths
from nnstudy.core.data import Split
from nnstudy.core.errors import DataError
from nnstudy.core.params import ModelParams
from nnstudy.core.files import write_csv
from nnstudy.evaluation.metrics import classification_metrics, predicted_labels


def predict_runs(name: str, seeds: Iterable[int], split: Split) -> dict[int, np.ndarray]:
    """{seed: class probabilities} of each trained network of `name` (a variant, or `final`)."""
    from nnstudy.training.loop import load_network, predict_proba  # Keras: imported by the stages that need it

    return {seed: predict_proba(load_network(paths.model_file(name, seed)), split) for seed in seeds}


def per_seed_metrics(labels: np.ndarray, probas: dict[int, np.ndarray], model: ModelParams | None = None) -> dict[str, dict]:
    """Each seed's test measures; the loss is the network's own (`model.loss`), cross-entropy by default."""
    loss = {} if model is None else {"loss": model.loss, "targets": model.targets}
    return {paths.seed_name(seed): classification_metrics(labels, proba, **loss) for seed, proba in probas.items()}


def save_predictions(name: str, labels: np.ndarray, probas: dict[int, np.ndarray]) -> None:
    """Test labels and each seed's predicted labels, one row per test example: what McNemar pairs."""
    table = pd.DataFrame({"label": labels, **{paths.seed_name(s): predicted_labels(p) for s, p in probas.items()}})
    write_csv(table, paths.predictions_file(name))


def load_predictions(name: str) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    path = paths.predictions_file(name)
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(f"{path}: missing; run `dvc repro` to evaluate {name}") from None
    seeds = {int(column.removeprefix("seed_")): table[column].to_numpy() for column in table if column != "label"}
    return table["label"].to_numpy(), seeds
