"""params.yaml validation: the shipped file is valid, and each bad input gets a message naming it."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nnstudy.core import params
from nnstudy.core.errors import ParamError

ROOT = Path(__file__).resolve().parents[1]
RAW = yaml.safe_load((ROOT / "params.yaml").read_text())


def parse_with(edit) -> params.Params:
    raw = copy.deepcopy(RAW)
    edit(raw)
    return params.parse(raw)


def test_shipped_params_hold_the_whole_study():
    study = params.load(ROOT / "params.yaml")
    assert len(study.variants) == 15
    classic = study.variants["tanh_mse"]
    assert (classic.activation, classic.output_activation, classic.loss, classic.targets, classic.learning_rate) == (
        "tanh", "tanh", "mse", "plus_minus_one", 0.01)
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
    (lambda r: r["tune"]["spaces"]["wide"].update(units_1=[]), r"tune.spaces.wide.units_1: must be a list of at least 1"),
    (lambda r: r["tune"]["spaces"]["wide"].update(learning_rate=[0.1, "fast"]),
     r"tune.spaces.wide.learning_rate\[1\]: must be a number, got str 'fast'"),
    # The space not chosen is checked too: a typo there fails now, not when someone switches to it.
    (lambda r: r["tune"]["spaces"]["seeds"].update(l2=[-1.0]), r"tune.spaces.seeds.l2\[0\]: must be >= 0"),
    (lambda r: r["tune"].update(preset="sedes"),
     r"tune.preset: 'sedes' is not a space of tune.spaces \(did you mean 'seeds'\?\); known: seeds, wide"),
    (lambda r: r["tune"].update(preset=["wide"]), r"tune.preset: \['wide'\] is not a space of tune.spaces"),
    (lambda r: r["tune"].update(spaces={}), r"tune.spaces: must map each space's name to its axes, got"),
    (lambda r: r["tune"].update(space=r["tune"].pop("spaces")), r"tune: unknown key 'space' \(did you mean 'spaces'\?\)"),
    (lambda r: r["tune"].update(objective="val_auc"), r"tune.objective: 'val_auc' is not one of: val_accuracy, val_f1"),
    (lambda r: r["tune"].update(factor=1), r"tune.factor: must be a whole number >= 2"),
    (lambda r: r["tune"].update(workers=0), r"tune.workers: must be a whole number >= 1, got 0"),
    (lambda r: r["tune"].update(workers="2"), r"tune.workers: must be a whole number >= 1, got str '2'"),
    (lambda r: r["final"].update(max_epochs=0), r"final.max_epochs: must be a whole number >= 1"),
    (lambda r: r["final"].update(monitor="loss"), r"final.monitor: 'loss' is not one of: val_loss, val_accuracy"),
    (lambda r: r.update(backend="torch"), r"backend: 'torch' is not one of: jax, tensorflow"),
    (lambda r: r.update(loop="scan"), r"loop: 'scan' is not one of: compiled, fit"),
    (lambda r: r.update(seeds_together="yes"), r"seeds_together: must be true or false, got str 'yes'"),
    (lambda r: r.update(backend="tensorflow", loop="compiled"),
     r"loop: 'compiled' runs on the JAX backend only \(backend is 'tensorflow'\); set `loop: fit`"),
    (lambda r: r.update(seeds=[]), r"seeds: must be a list of at least 1 value"),
    (lambda r: r.update(seeds=[1, 1]), r"seeds: each seed may appear once, got \[1, 1\]"),
    (lambda r: r.update(seeds=[1, -2]), r"seeds\[1\]: must be a whole number >= 0, got -2"),
    (lambda r: r["stats"].update(base="batch_mni"),
     r"stats.base: 'batch_mni' is not a variant \(did you mean 'batch_mini'\?\)"),
    (lambda r: r["stats"]["questions"].update({"Depth": ["batch_mini"]}),
     r"stats.questions.Depth: must be a list of at least 2"),
    (lambda r: r["stats"]["questions"].update({"Depth": ["batch_mini", "deep"]}),
     r"stats.questions.Depth: 'deep' is not a variant"),
    (lambda r: r["stats"].update(confidence=1.5), r"stats.confidence: must be <= 1.0"),
    (lambda r: r["tune"]["spaces"]["wide"].update(dropout=[0.2, 1.2]), r"tune.spaces.wide.dropout\[1\]: must be <= 0.99"),
    (lambda r: r["tune"]["spaces"]["wide"].update(batch_sizes=[64]),
     r"tune.spaces.wide: unknown key 'batch_sizes' \(did you mean 'batch_size'\?\)"),
    (lambda r: r.update(targets="plus_minus_one"),
     r"^targets 'plus_minus_one' needs output_activation 'tanh' \(a softmax output cannot reach -1\)"),
    (lambda r: r["variants"]["batch_mini"].update(output_activation="tanh"),
     r"variants.batch_mini: loss 'categorical_crossentropy' needs output_activation 'softmax'"),
    (lambda r: r["variants"]["batch_mini"].update(loss="hinge"), r"variants.batch_mini.loss: 'hinge' is not one of"),
    (lambda r: r["variants"].update({"sweep_x": {}}), r"the prefix 'sweep_' of 'sweep_x' is kept for sweep points"),
    (lambda r: r["sweeps"].update(depth=[1, 1]), r"sweeps.depth: 1 is listed twice"),
    (lambda r: r["sweeps"].update(activation=["relu", "mish"]), r"sweeps.activation\[1\]: 'mish' is not one of"),
    (lambda r: r["sweeps"]["optimizer_learning_rates"].update(adamw=0.1),
     r"sweeps.optimizer_learning_rates: unknown key 'adamw'"),
    (lambda r: r["probing"].update(network="nope"), r"probing.network: 'nope' is not a variant"),
    (lambda r: r["probing"]["openset"].update(known=[0, 1, 5]),
     r"probing.openset: `known` needs at least 2 digits, none of them in `train_unknowns`"),
    (lambda r: r["probing"]["openset"].update(known=[0, 12]), r"probing.openset.known: must list distinct digits 0-9"),
    (lambda r: r["probing"]["dreams"].update(start="white"), r"probing.dreams.start: 'white' is not one of: gray, noise"),
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


def test_top_level_messages_have_no_empty_key_path():
    with pytest.raises(ParamError, match=r"^unknown key 'learnig_rate'") as caught:
        parse_with(lambda raw: raw.update(learnig_rate=0.1))
    assert not str(caught.value).startswith(":")


def test_duplicate_key_is_an_error_naming_it(tmp_path):
    text = (ROOT / "params.yaml").read_text()
    duplicated = tmp_path / "params.yaml"
    duplicated.write_text(text + "\nseed: 2\n")
    with pytest.raises(ParamError, match=r"params.yaml: not valid YAML: .*duplicate key 'seed' \(first given on line \d+\)"):
        params.load(duplicated)
    nested = tmp_path / "nested.yaml"
    nested.write_text(text.replace("  dataset: mnist-sample\n", "  dataset: mnist-sample\n  dataset: digits\n"))
    with pytest.raises(ParamError, match=r"duplicate key 'dataset'"):
        params.load(nested)


def test_seeds_preset_is_the_seeds_exact_space():
    seeds = parse_with(lambda raw: raw["tune"].update(preset="seeds")).tune
    assert (seeds.units_1, seeds.units_2, seeds.l2, seeds.learning_rate) == (
        (64, 128), (256, 512), (0.1, 1e-3, 1e-6), (0.1, 1e-2, 1e-3))
    assert seeds.dropout == () and seeds.batch_sizes == () and seeds.preset == "seeds"
    default = params.load(ROOT / "params.yaml").tune
    assert default.preset == "wide" and 0.0 in default.dropout and len(default.dropout) > 1


def test_optional_search_axes_and_settings_files():
    study = parse_with(lambda raw: raw["tune"]["spaces"]["wide"].update(dropout=[0.0, 0.2], batch_size=[64, 256]))
    assert study.tune.dropout == (0.0, 0.2) and study.tune.batch_sizes == (64, 256)
    assert params.load(ROOT / "params.yaml").tune.workers == 1
    assert parse_with(lambda raw: raw["tune"].pop("workers")).tune.workers == 1  # optional: one process
    settings = params.effective_settings(study, "rmsprop_rho0p01")
    assert settings["model"]["optimizer"] == "rmsprop" and settings["seeds"] == list(study.seeds)
    assert params.model_from_settings(settings) == study.variants["rmsprop_rho0p01"]


def test_unknown_variant():
    with pytest.raises(ParamError, match=r"unknown variant 'nope'; params.yaml defines: batch_online"):
        params.variant(params.load(ROOT / "params.yaml"), "nope")


def test_stage_reports_bad_param_without_traceback(tmp_path):
    """A stage given a bad params.yaml exits 2 with one line, before importing Keras, and writes nothing."""
    raw = copy.deepcopy(RAW)
    raw["variants"]["batch_mini"] = {"batch_size": 0}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    run = subprocess.run([sys.executable, "-m", "stages.settings"], cwd=tmp_path,
                         env={"PYTHONPATH": str(ROOT), "PATH": ""}, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip() == (
        "error: params.yaml: variants.batch_mini.batch_size: must be a whole number >= 1 or 'full', got int 0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_sweep_points_change_one_axis_of_the_base_network():
    study = params.load(ROOT / "params.yaml")
    points = study.sweep_points
    assert points["sweep_depth_3"].model.hidden_units == (128, 128, 128)
    assert points["sweep_width_1024"].model.hidden_units == (1024, 1024)
    assert points["sweep_optimizer_sgd"].model.learning_rate == 0.01
    assert points["sweep_learning_rate_0.1"].model.optimizer == "adam"
    assert all(p.model.epochs == 30 for p in points.values())
    unchanged = points["sweep_activation_tanh"].model
    assert unchanged.hidden_units == study.base.hidden_units and unchanged.activation == "tanh"
    assert params.variant(study, "sweep_width_16").hidden_units == (16, 16)


def test_an_empty_sweep_axis_is_not_swept_but_one_point_is_needed():
    raw = copy.deepcopy(RAW)
    raw["sweeps"].update(width=[], activation=[], optimizer=[], learning_rate=[])
    assert {p.axis for p in params.parse(raw).sweep_points.values()} == {"depth"}
    raw["sweeps"]["depth"] = []
    with pytest.raises(ParamError, match=r"^sweeps: every axis \(depth, width, activation, optimizer, "
                                         r"learning_rate\) is empty; list at least one value"):
        params.parse(raw)
