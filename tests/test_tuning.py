"""The tuner's pieces: exact validation macro F1, the searched values -> network mapping, and
Hyperband distributed over keras-tuner workers."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import yaml

from nnstudy.core import paths
from sklearn.metrics import f1_score

from nnstudy.training.models import build_model, enable_determinism
from nnstudy.core.errors import StudyError
from nnstudy.training import distributed
from nnstudy.training.tuning import ValidationMacroF1, macro_f1, tuned_model
from study_helpers import ROOT, small_params


def test_macro_f1_is_over_the_whole_set_not_batch_averaged():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    proba = np.eye(3)[[0, 0, 1, 1, 2, 2, 2, 0]]
    exact = f1_score(labels, proba.argmax(1), average="macro")
    assert macro_f1(labels, proba) == pytest.approx(exact)
    # What a batch-wise metric would report with batches of 4: a different (wrong) number.
    batchwise = np.mean([f1_score(labels[i:i + 4], proba[i:i + 4].argmax(1), average="macro", labels=range(3),
                                  zero_division=0) for i in (0, 4)])
    assert batchwise != pytest.approx(exact)


def test_callback_logs_val_f1_of_the_model_each_epoch(study, digits):
    enable_determinism(1)
    network = build_model(study.base, digits.train.x.shape[1], digits.num_classes, seed=1)
    callback = ValidationMacroF1(digits.val)
    history = network.fit(digits.train.x, digits.train.y, epochs=2, batch_size=128, verbose=0,
                          validation_data=(digits.val.x, digits.val.y), callbacks=[callback])
    assert len(history.history["val_f1"]) == 2
    expected = f1_score(digits.val.labels, network.predict(digits.val.x, verbose=0).argmax(1), average="macro")
    assert history.history["val_f1"][-1] == pytest.approx(expected)


def test_tuned_model_fixes_rmsprop_he_normal_and_l2_everywhere(study):
    model = tuned_model(study.base, {"units_1": 64, "units_2": 512, "l2": 1e-6, "learning_rate": 0.01}, 256, 30)
    assert (model.optimizer, model.initializer, model.regularizer, model.regularize_output) == (
        "rmsprop", "he_normal", "l2", True)
    assert model.hidden_units == (64, 512) and model.reg_alpha == 1e-6 and model.learning_rate == 0.01
    network = build_model(model, 64, 10, seed=1)
    dense = [layer for layer in network.layers if isinstance(layer, keras.layers.Dense)]
    assert all(isinstance(layer.kernel_regularizer, keras.regularizers.L2) for layer in dense)
    assert model.batch_size == 256 and model.epochs == 30 and model.dropout == 0.0


def test_tuned_model_takes_the_optional_axes_when_searched(study):
    values = {"units_1": 64, "units_2": 256, "l2": 1e-3, "learning_rate": 0.01, "dropout": 0.2, "batch_size": 64}
    model = tuned_model(study.base, values, 256, 30)
    assert model.dropout == 0.2 and model.batch_size == 64


# --- Distributed Hyperband: the real tune stage as keras-tuner's chief with two local workers.

def tune_stage(folder: Path, workers: int, prepared: Path | None = None) -> tuple[pd.DataFrame, dict, dict]:
    """The tune stage on the 8x8 digits in a folder of its own (fetch and prepare first, unless
    another folder's prepared data is given)."""
    raw = small_params("jax")
    raw["tune"].update(max_epochs=3, factor=3, workers=workers)
    raw["tune"]["spaces"]["small"] = {"units_1": [16], "units_2": [32, 64], "l2": [1.0e-3, 1.0e-6],
                                      "learning_rate": [1.0e-1, 1.0e-2, 1.0e-3]}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    if prepared:
        shutil.copytree(prepared / "data", folder / "data")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for stage in ("tune",) if prepared else ("fetch", "prepare", "tune"):
        done = subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=folder, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, f"{stage}: {done.stdout}\n{done.stderr}"
    return (pd.read_csv(folder / paths.TUNE_TRIALS), json.loads((folder / paths.TUNE_BEST).read_text()),
            json.loads((folder / paths.timing_file("tune")).read_text()))


def test_hyperband_on_two_workers_runs_every_trial_once(tmp_path):
    alone, alone_best, _ = tune_stage(tmp_path / "one", workers=1)
    table, best, timing = tune_stage(tmp_path / "two", workers=2, prepared=tmp_path / "one")
    # The same Hyperband schedule: as many trials, every one completed, none twice.
    assert len(table) == len(alone) >= 6 and table["trial_id"].is_unique
    assert set(table["status"]) == {"COMPLETED"}, table["status"]
    assert table["objective"].notna().all() and (table["epochs_run"] > 0).all()
    # Both workers ran trials, and between them every trial exactly once.
    ran = timing["workers"]
    assert set(ran) == {"worker0", "worker1"} and all(ran.values()), ran
    assert sorted(int(t) for t in ran["worker0"] + ran["worker1"]) == sorted(table["trial_id"].astype(int)), ran
    assert set(best) == set(alone_best) and best["value"] == table["objective"].max()
    assert best["space"] == alone_best["space"] == "small"  # the preset searched (small_params' own space)
    # The trials ran on the compiled loop, and the selection round retrained the best configurations on
    # every seed: the pick is the first of the candidates `final` falls back along.
    assert timing["loop"] == "compiled" and timing["selection_seconds"] > 0
    assert best["candidates"][0]["hyperparameters"] == best["hyperparameters"] and best["why"]
    candidates = pd.read_csv(tmp_path / "two" / paths.TUNE_CANDIDATES)
    assert len(candidates) == 3 and {"mean", "se", "diverged_seeds", "parameters", "order"} <= set(candidates)


def test_roles_come_from_keras_tuners_environment(monkeypatch):
    for name in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        monkeypatch.setenv(name, "")  # recorded, so that what become_chief sets is undone after the test
        monkeypatch.delenv(name)
    monkeypatch.setenv(distributed.LISTEN, "0.0.0.0:8123")
    assert not distributed.is_worker()
    assert distributed.become_chief() == ("0.0.0.0", 8123) and not distributed.is_worker()
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "lab-b")
    assert distributed.is_worker()
    monkeypatch.setenv(distributed.LISTEN, "8123")
    with pytest.raises(StudyError, match="NNSTUDY_TUNE_LISTEN: expected host:port"):
        distributed.become_chief()
