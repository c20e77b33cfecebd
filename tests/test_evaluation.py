"""Test-set measures, checked against hand-computed values and scikit-learn."""

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score, log_loss

from nnstudy.core.errors import DataError
from nnstudy.evaluation.metrics import classification_metrics, cross_entropy, normalized_confusion, per_class_metrics
from nnstudy.core.jsonio import read_json, to_plain, write_json

# 3 classes, 6 examples: predictions 0,0,1,2,2,1 for truths 0,0,1,1,2,2.
Y_TRUE = np.array([0, 0, 1, 1, 2, 2])
PROBA = np.array([
    [0.8, 0.1, 0.1],
    [0.6, 0.3, 0.1],
    [0.2, 0.7, 0.1],
    [0.1, 0.3, 0.6],
    [0.1, 0.2, 0.7],
    [0.2, 0.5, 0.3],
])


def test_metrics_match_hand_computation():
    metrics = classification_metrics(Y_TRUE, PROBA)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    # class 0: P=1, R=1; class 1: P=1/2, R=1/2; class 2: P=1/2, R=1/2.
    assert metrics["precision_macro"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert metrics["recall_macro"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert metrics["f1_macro"] == pytest.approx(f1_score(Y_TRUE, PROBA.argmax(1), average="macro"))
    assert metrics["loss"] == pytest.approx(log_loss(Y_TRUE, PROBA))
    assert metrics["invalid_predictions"] == 0


def test_per_class_metrics():
    per_class = per_class_metrics(Y_TRUE, PROBA)
    assert per_class["0"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert per_class["1"]["precision"] == pytest.approx(0.5) and per_class["2"]["recall"] == pytest.approx(0.5)


def test_loss_clips_like_keras():
    certain_and_wrong = np.array([[1.0, 0.0]])
    assert cross_entropy(np.array([1]), certain_and_wrong) == pytest.approx(-np.log(1e-7))


def test_diverged_network_output_counts_as_wrong():
    proba = PROBA.copy()
    proba[0] = np.nan
    metrics = classification_metrics(Y_TRUE, proba)
    assert metrics["invalid_predictions"] == 1
    assert metrics["accuracy"] == pytest.approx(3 / 6)
    assert np.isnan(metrics["loss"])


def test_normalized_confusion_rows_sum_to_one():
    matrix = normalized_confusion(Y_TRUE, PROBA.argmax(1), 3)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    assert matrix[1, 1] == pytest.approx(0.5) and matrix[1, 2] == pytest.approx(0.5)


def test_json_never_holds_bare_nan(tmp_path):
    path = tmp_path / "m.json"
    write_json(path, {"loss": float("nan"), "big": np.float32("inf"), "n": np.int64(3), "v": np.array([1.5, -np.inf])})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"big": None, "loss": None, "n": 3, "v": [1.5, None]}
    assert to_plain((np.float64(2.0),)) == [2.0]


def test_read_json_names_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DataError, match=r"missing.json: missing; run `dvc repro`"):
        read_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"accuracy": 0.9')
    with pytest.raises(DataError, match=r"bad.json: not valid JSON"):
        read_json(tmp_path / "bad.json")


def test_mse_network_is_judged_by_its_own_loss_and_the_argmax():
    outputs = np.array([[0.9, -0.8, -1.0], [-0.5, 0.2, -0.9]])  # tanh outputs, ±1 targets
    labels = np.array([0, 2])
    metrics = classification_metrics(labels, outputs, loss="mse", targets="plus_minus_one")
    expected = ((outputs - np.array([[1, -1, -1], [-1, -1, 1]])) ** 2).mean()
    assert metrics["loss"] == pytest.approx(expected)
    assert metrics["accuracy"] == pytest.approx(0.5)  # argmax 0 (right), argmax 1 (wrong)
