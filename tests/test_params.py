"""params.yaml validation: the shipped file is valid, and each bad input gets a message naming it."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nnstudy import params
from nnstudy.errors import ParamError

ROOT = Path(__file__).resolve().parents[1]
RAW = yaml.safe_load((ROOT / "params.yaml").read_text())


def parse_with(edit) -> params.Params:
    raw = copy.deepcopy(RAW)
    edit(raw)
    return params.parse(raw)


def test_shipped_params_hold_the_whole_study():
    study = params.load(ROOT / "params.yaml")
    assert len(study.variants) == 14
    assert study.base.hidden_units == (128, 256) and study.base.batch_size == 256 and study.seed == 1
    mean10 = study.variants["sgd_mean10_l2_0p1"]
    assert (mean10.optimizer, mean10.initializer, mean10.init_mean, mean10.regularizer, mean10.reg_alpha) == (
        "sgd", "normal", 10.0, "l2", 0.1)
    assert study.variants["batch_full"].batch_size == "full"
    # A variant inherits every base key it does not set.
    assert study.variants["rmsprop_rho0p01"].epochs == study.base.epochs


def test_base_change_reaches_variants_that_do_not_override_it():
    study = parse_with(lambda raw: raw.update(optimizer="sgd"))
    assert study.variants["batch_mini"].optimizer == "sgd"
    assert study.variants["rmsprop_rho0p99"].optimizer == "rmsprop"


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.update(optimizer="sdg"), r"optimizer: 'sdg' is not one of: sgd, adagrad, rmsprop, adam"),
    (lambda r: r.update(learning_rate=-0.1), r"learning_rate: must be > 0.0, got -0.1"),
    (lambda r: r.update(learning_rate="1e-3"), r"learning_rate: must be a number.*write 1.0e-3"),
    (lambda r: r.update(batch_size=0), r"batch_size: must be a whole number >= 1 or 'full', got int 0"),
    (lambda r: r.update(batch_size="all"), r"batch_size: .*'full', got str 'all'"),
    (lambda r: r.update(epochs="ten"), r"epochs: must be a whole number >= 1, got str 'ten'"),
    (lambda r: r.update(epochs=True), r"epochs: must be a whole number"),
    (lambda r: r.update(dropout=1.5), r"dropout: must be <= 0.99, got 1.5"),
    (lambda r: r.update(hidden_units=[]), r"hidden_units: must be a list of at least 1"),
    (lambda r: r.update(hidden_units=[128, 0]), r"hidden_units\[1\]: must be a whole number >= 1, got 0"),
    (lambda r: r.update(initializer="gaussian"), r"initializer: 'gaussian' is not one of: .*normal"),
    (lambda r: r.update(regularizer="l3"), r"regularizer: 'l3' is not one of: none, l1, l2"),
    (lambda r: r.update(reg_alpha=float("nan")), r"reg_alpha: must be a finite number"),
    (lambda r: r.update(learnig_rate=0.1), r"unknown key 'learnig_rate' \(did you mean 'learning_rate'\?\)"),
    (lambda r: r.pop("epochs"), r"missing key\(s\): epochs"),
    (lambda r: r["data"].update(dataset="cifar"), r"data.dataset: 'cifar' is not one of: mnist-sample, mnist"),
    (lambda r: r["data"].update(test_fraction=1.5), r"data.test_fraction: must be <= 0.9"),
    (lambda r: r["variants"]["sgd_mean10"].update(optimiser="sgd"),
     r"variants.sgd_mean10: unknown key 'optimiser' \(did you mean 'optimizer'\?\)"),
    (lambda r: r["variants"]["sgd_mean10"].update(init_stddev=0), r"variants.sgd_mean10.init_stddev: must be > 0"),
    (lambda r: r["variants"].update({"final": {}}), r"the name 'final' is taken"),
    (lambda r: r["variants"].update({"a.b": {}}), r"name 'a.b' must use only letters, digits and _"),
    (lambda r: r.update(variants={}), r"variants: must be a mapping of variant names"),
    (lambda r: r["tune"]["space"].update(units_1=[]), r"tune.space.units_1: must be a list of at least 1"),
    (lambda r: r["tune"]["space"].update(learning_rate=[0.1, "fast"]),
     r"tune.space.learning_rate\[1\]: must be a number, got str 'fast'"),
    (lambda r: r["tune"].update(objective="val_auc"), r"tune.objective: 'val_auc' is not one of: val_accuracy, val_f1"),
    (lambda r: r["tune"].update(factor=1), r"tune.factor: must be a whole number >= 2"),
    (lambda r: r["final"].update(epochs=0), r"final.epochs: must be a whole number >= 1"),
])
def test_bad_param_is_named(edit, message):
    with pytest.raises(ParamError, match=message):
        parse_with(edit)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ParamError, match=r"nope.yaml: cannot read the params file"):
        params.load(tmp_path / "nope.yaml")
    broken = tmp_path / "params.yaml"
    broken.write_text("seed: [1\n")
    with pytest.raises(ParamError, match=r"params.yaml: not valid YAML"):
        params.load(broken)


def test_unknown_variant():
    with pytest.raises(ParamError, match=r"unknown variant 'nope'; params.yaml defines: batch_online"):
        params.variant(params.load(ROOT / "params.yaml"), "nope")


def test_stage_reports_bad_param_without_traceback(tmp_path):
    """A stage given a bad params.yaml exits 2 with one line, before importing TensorFlow."""
    raw = copy.deepcopy(RAW)
    raw["variants"]["batch_mini"] = {"batch_size": 0}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    run = subprocess.run([sys.executable, "-m", "stages.train", "batch_mini"], cwd=tmp_path,
                         env={"PYTHONPATH": str(ROOT), "PATH": ""}, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip() == (
        "error: params.yaml: variants.batch_mini.batch_size: must be a whole number >= 1 or 'full', got int 0")
