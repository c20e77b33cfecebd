"""The transfer study's test measures: the MLP study's (accuracy, loss, macro P/R/F1), top-5
accuracy, per-class scores and the most confused pairs of classes (for 100 classes a matrix is
unreadable; the pairs are not)."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, top_k_accuracy_score

from nnstudy.evaluation.metrics import classification_metrics, per_class_metrics
from nnstudy.transfer.data import TransferData, as_float, labelled_subset, select_classes
from nnstudy.transfer.params import Recipe

if TYPE_CHECKING:  # training imports Keras; transfer_summarize reads these measures without it
    from nnstudy.transfer.training import Task

TOP_K = 5


@dataclass(frozen=True, eq=False)
class TestSet:
    x_float: np.ndarray
    y: np.ndarray


def target_task(data: TransferData, recipe: Recipe, subset_seed: int,
                val_per_class: int = 0) -> tuple["Task", TestSet, tuple[str, ...]]:
    """The recipe's target task: its first `classes` classes, `labels` training labels per class
    and `val_per_class` validation examples per class (the same examples for every seed and arm:
    subset_seed is the study's split seed)."""
    names = data.target_names
    train, val, test = data.target_train, data.target_val, data.target_test
    if recipe.classes:
        keep = list(range(recipe.classes))
        train, val, test = (select_classes(split, keep) for split in (train, val, test))
        names = names[:recipe.classes]
    if recipe.labels:
        train = labelled_subset(train, recipe.labels, subset_seed)
    if val_per_class:
        val = labelled_subset(val, val_per_class, subset_seed)
    from nnstudy.transfer.training import Task  # Keras: the caller has activated the backend

    task = Task(as_float(train), train.y, as_float(val), val.y, len(names))
    return task, TestSet(as_float(test), test.y), names


def run_metrics(labels: np.ndarray, proba: np.ndarray) -> dict:
    """One network on the test set; top-5 only where there are more than 5 classes to rank."""
    metrics = classification_metrics(labels, proba)
    classes = proba.shape[1]
    valid = np.isfinite(proba).all()
    metrics["top5_accuracy"] = (float(top_k_accuracy_score(labels, proba, k=TOP_K, labels=range(classes)))
                                if classes > TOP_K and valid else None)
    metrics["per_class"] = per_class_metrics(labels, proba)
    return metrics


def confused_pairs(labels: np.ndarray, predictions: Sequence[np.ndarray], names: Sequence[str],
                   top: int = 20) -> pd.DataFrame:
    """The `top` (true, predicted) pairs of different classes by errors, pooled over seeds; share is
    the fraction of the true class's test examples sent to that class."""
    classes = len(names)
    matrix = sum(confusion_matrix(labels, pred, labels=range(classes)) for pred in predictions)
    support = np.bincount(labels, minlength=classes) * len(predictions)
    rows = [{"true": names[t], "predicted": names[p], "errors": int(matrix[t, p]),
             "share": float(matrix[t, p] / support[t]) if support[t] else 0.0}
            for t in range(classes) for p in range(classes) if t != p and matrix[t, p] > 0]
    table = pd.DataFrame(rows, columns=["true", "predicted", "errors", "share"])
    return table.sort_values(["errors", "true", "predicted"], ascending=[False, True, True]).head(top).reset_index(drop=True)


def pooled_confusion(labels: np.ndarray, predictions: Sequence[np.ndarray], classes: int) -> np.ndarray:
    """Row-normalised confusion matrix over every seed's predictions."""
    matrix = sum(confusion_matrix(labels, pred, labels=range(classes)) for pred in predictions).astype(float)
    return matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)



