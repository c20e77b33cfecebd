"""Test-set measures of a classifier, from its predicted class probabilities (NumPy + scikit-learn)."""

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

# Keras clips probabilities to this before the log in its cross-entropy; the same clip keeps
# our test loss comparable to the training curves.
PROBABILITY_FLOOR = 1e-7


def predicted_labels(proba: np.ndarray) -> np.ndarray:
    """Argmax per row; -1 where the network output NaN/inf (a diverged network predicts nothing)."""
    valid = np.isfinite(proba).all(axis=1)
    return np.where(valid, np.nan_to_num(proba).argmax(axis=1), -1)


def cross_entropy(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Mean categorical cross-entropy (no regularization term); NaN if any output is not finite."""
    if not np.isfinite(proba).all():
        return float("nan")
    picked = np.clip(proba[np.arange(len(y_true)), y_true], PROBABILITY_FLOOR, 1.0)
    return float(-np.log(picked).mean())


def mean_squared_error(y_true: np.ndarray, outputs: np.ndarray, targets: str) -> float:
    """Mean squared error against the encoded targets (one-hot, or ±1): the classic formulation's loss."""
    if not np.isfinite(outputs).all():
        return float("nan")
    encoded = np.eye(outputs.shape[1])[y_true]
    if targets == "plus_minus_one":
        encoded = encoded * 2 - 1
    return float(((outputs - encoded) ** 2).mean())


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, loss: str = "categorical_crossentropy",
                           targets: str = "one_hot") -> dict[str, float | int]:
    """Accuracy, loss and macro precision/recall/F1; rows with no valid prediction count as errors.

    `proba` is the network's output: probabilities, or tanh outputs for an MSE network (whose
    test loss is then its own, the mean squared error). Accuracy is the argmax either way.
    """
    num_classes = proba.shape[1]
    y_pred = predicted_labels(proba)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=range(num_classes), average="macro", zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "loss": mean_squared_error(y_true, proba, targets) if loss == "mse" else cross_entropy(y_true, proba),
        "precision_macro": float(precision),
        "recall_macro": float(recall),
        "f1_macro": float(f1),
        "invalid_predictions": int((y_pred < 0).sum()),
    }


def per_class_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, dict[str, float]]:
    """{'0': {'precision':..., 'recall':..., 'f1':..., 'support':...}, ...}"""
    num_classes = proba.shape[1]
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, predicted_labels(proba), labels=range(num_classes), average=None, zero_division=0
    )
    return {
        str(k): {"precision": float(precision[k]), "recall": float(recall[k]), "f1": float(f1[k]), "support": int(support[k])}
        for k in range(num_classes)
    }


def normalized_confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows are true classes and sum to 1 (the share of each class predicted as each column)."""
    return confusion_matrix(y_true, y_pred, labels=range(num_classes), normalize="true")
