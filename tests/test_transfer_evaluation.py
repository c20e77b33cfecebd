"""The transfer study's measures and its grouping of runs into comparisons (pure functions)."""

import numpy as np
import pytest
from sklearn.metrics import top_k_accuracy_score

from nnstudy.transfer.evaluate import confused_pairs, pooled_confusion, run_metrics
from nnstudy.transfer.report import axis_points, comparison_pairs

AXES = ("unfreeze", "dropout", "labels", "classes", "augment")


def recipe(**changes) -> dict:
    return {"model": "cnn_medium", "weights": "source", "unfreeze": 0.5, "dropout": 0.2, "labels": 10,
            "classes": 0, "augment": False} | changes


def test_runs_one_key_away_from_the_reference_join_that_axis():
    recipes = {
        "ref": recipe(),
        "frozen": recipe(unfreeze=0.0),                 # an arm, and the unfreeze axis's 0 point
        "scratch": recipe(weights="none"),              # weights is not an axis: joins none
        "sweep_unfreeze_1": recipe(unfreeze=1.0),
        "sweep_dropout": recipe(dropout=0.5),
        "partial_50": recipe(labels=50),
        "two_keys": recipe(unfreeze=1.0, dropout=0.5),  # two changes: no axis
        "augmented": recipe(augment=True),
        "three_classes": recipe(classes=3),
    }
    axes = axis_points(recipes, "ref", AXES)
    assert axes["unfreeze"] == {"0.0": "frozen", "0.5": "ref", "1.0": "sweep_unfreeze_1"}
    assert list(axes["unfreeze"]) == ["0.0", "0.5", "1.0"]  # in ascending order
    assert axes["dropout"] == {"0.2": "ref", "0.5": "sweep_dropout"}
    assert axes["labels"] == {"10": "ref", "50": "partial_50"}
    assert axes["augment"] == {"false": "ref", "true": "augmented"}
    assert axes["classes"] == {"all": "ref", "3": "three_classes"}  # 0 classes means all of them
    assert "weights" not in axes and all("two_keys" not in points.values() for points in axes.values())


def test_comparison_pairs_cover_arms_and_axes_once_and_skip_the_classes_axis():
    arm_runs = {"10": {"scratch": "s10", "frozen": "f10", "partial": "ref"},
                "50": {"scratch": "s50", "frozen": "f50", "partial": "p50"}}
    axes = {"unfreeze": {"0.0": "f10", "0.5": "ref", "1.0": "u1"}, "classes": {"all": "ref", "3": "c3"},
            "labels": {"10": "ref", "50": "p50"}}
    pairs = comparison_pairs(("scratch", "frozen", "partial"), arm_runs, axes, "ref")
    as_sets = [frozenset((a, b)) for _, a, b in pairs]
    assert len(as_sets) == len(set(as_sets))          # the frozen-vs-partial pair is both an arm pair and an axis step
    assert {frozenset(("s10", "f10")), frozenset(("s10", "ref")), frozenset(("f10", "ref")),
            frozenset(("s50", "p50")), frozenset(("ref", "u1")), frozenset(("ref", "p50"))} <= set(as_sets)
    assert frozenset(("ref", "c3")) not in as_sets   # fewer classes: another test set
    assert ("10 labels per class", "s10", "f10") in pairs


def test_run_metrics_add_top5_only_beyond_five_classes():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 8, 200)
    proba = rng.dirichlet(np.ones(8), 200)
    metrics = run_metrics(labels, proba)
    assert metrics["top5_accuracy"] == pytest.approx(top_k_accuracy_score(labels, proba, k=5, labels=range(8)))
    assert metrics["accuracy"] == pytest.approx(float((proba.argmax(1) == labels).mean()))
    assert set(metrics["per_class"]) == {str(k) for k in range(8)}
    five = run_metrics(labels % 5, rng.dirichlet(np.ones(5), 200))
    assert five["top5_accuracy"] is None  # every class is in the top 5 of 5: always 1, says nothing


def test_confused_pairs_pool_seeds_and_rank_by_errors():
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    seed_1 = np.array([0, 1, 1, 2, 1, 1, 2, 0])
    seed_2 = np.array([0, 1, 0, 0, 0, 1, 2, 2])
    table = confused_pairs(labels, [seed_1, seed_2], ["a", "b", "c"], top=2)
    assert table.to_dict("records")[0] == {"true": "a", "predicted": "b", "errors": 3, "share": 3 / 8}
    assert len(table) == 2 and table["errors"].is_monotonic_decreasing
    matrix = pooled_confusion(labels, [seed_1, seed_2], 3)
    assert np.allclose(matrix.sum(axis=1), 1) and matrix[0, 1] == pytest.approx(3 / 8)
