"""The headline metrics (what `dvc exp show` shows) and the overlay tables (what `dvc plots` draws)."""

import pandas as pd
import pytest

from nnstudy.evaluation.headline import (
    accuracy_cell, best_point, openset_headline, study_headline, sweeps_headline, transfer_headline,
)
from nnstudy.report.overlays import overlay_table


def spread(mean, low=None, high=None, n=3):
    return {"mean": mean, "ci_low": low, "ci_high": high, "n": n}


def test_accuracy_cell_rounds_and_halves_the_interval():
    assert accuracy_cell({"accuracy": spread(0.923333, 0.919539, 0.927128)}) == {"acc": 0.9233, "ci": 0.0038}
    assert accuracy_cell({"accuracy": spread(0.9, n=1)}) == {"acc": 0.9, "ci": None}


def test_study_headline_has_two_columns_per_network_and_three_study_wide():
    summary = {"batch_mini": {"accuracy": spread(0.93, 0.92, 0.94), "diverged": False},
               "sgd_mean10": {"accuracy": spread(0.1, 0.1, 0.1), "diverged": True},
               "final": {"accuracy": spread(0.94, 0.93, 0.95), "diverged": False}}
    headline = study_headline(summary, significant=4)
    assert headline["study"] == {"seeds": 3, "diverged_variants": 1, "significant": 4}
    assert headline["sgd_mean10"] == {"acc": 0.1, "ci": 0.0}
    assert sum(len(v) for v in headline.values()) == 3 * 2 + 3


def test_the_best_sweep_point_is_picked_on_validation_not_test():
    points = {"16": {"val_accuracy": {"mean": 0.90}, "accuracy": {"mean": 0.95}},
              "64": {"val_accuracy": {"mean": 0.93}, "accuracy": {"mean": 0.91}}}
    assert best_point(points) == "64"
    assert sweeps_headline({"width": points}) == {"width": {"best": "64", "acc": 0.91}}
    assert best_point({"1": {"accuracy": {"mean": 0.9}}}) is None  # no validation figures: no pick


def test_openset_and_transfer_headlines():
    openset = {m: {"summary": {"auroc": {"mean": v}}} for m, v in (("max_softmax", 0.86521), ("centroid", 0.7))}
    assert openset_headline(openset, ("max_softmax", "centroid")) == {"max_softmax": 0.8652, "centroid": 0.7}
    arm_runs = {"10": {"scratch": "transfer_scratch_10", "partial": "transfer_partial_10"}}
    runs = {"transfer_scratch_10": {"accuracy": {"mean": 0.5747}}, "transfer_partial_10": {"accuracy": {"mean": 0.71333}}}
    assert transfer_headline(arm_runs, runs) == {"scratch_10": 0.5747, "partial_10": 0.7133}


def test_overlay_table_stacks_every_run_with_its_name(tmp_path):
    for name, values in (("a", [0.5, 0.6]), ("b", [0.7, 0.8])):
        pd.DataFrame({"epoch": [1, 2], "train": values, "validation": values}).to_csv(tmp_path / f"{name}.csv", index=False)
    table = overlay_table({"a": tmp_path / "a.csv", "b": tmp_path / "b.csv"})
    assert list(table.columns) == ["epoch", "series", "validation"]
    assert table["series"].tolist() == ["a", "a", "b", "b"]
    assert table["validation"].tolist() == pytest.approx([0.5, 0.6, 0.7, 0.8])
