"""The `transfer:` section of params.yaml: the shipped study, its runs, and a clear message per bad value."""

import copy
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from nnstudy.core import params
from nnstudy.core.errors import ParamError
from nnstudy.transfer import params as transfer_params
from nnstudy.transfer.params import APPLICATIONS, MIN_INPUT_SIZE, MODELS

ROOT = Path(__file__).resolve().parents[1]
RAW = yaml.safe_load((ROOT / "params.yaml").read_text())
NO_SWEEPS = {axis: [] for axis in transfer_params.SWEEP_AXES}


def transfer_with(edit) -> transfer_params.TransferParams:
    raw = copy.deepcopy(RAW["transfer"])
    edit(raw)
    return transfer_params.parse(raw)


def test_shipped_transfer_study_is_the_offline_digits_experiment():
    transfer = params.load(ROOT / "params.yaml").transfer
    assert transfer.dataset == "digits" and transfer.base.weights == "source"
    assert transfer.source_classes == (0, 1, 2, 3, 4) and transfer.target_classes == (5, 6, 7, 8, 9)
    assert transfer.arms == ("scratch", "frozen", "partial")
    scratch, frozen = transfer.runs["transfer_scratch_10"].recipe, transfer.runs["transfer_frozen_10"].recipe
    assert scratch.weights == "none" and frozen.unfreeze == 0.0 and frozen.weights == "source"
    assert transfer.runs["transfer_partial_10"].recipe == transfer.base
    # Each sweep point is the recipe with one key changed, at the first labels value.
    point = transfer.runs["transfer_sweep_unfreeze_1.0"]
    assert (point.axis, point.value, point.recipe.unfreeze, point.recipe.labels) == ("unfreeze", 1.0, 1.0, 10)
    assert asdict(point.recipe) | {"unfreeze": transfer.base.unfreeze} == asdict(transfer.base)
    assert transfer.zoo.models == MODELS and len(MODELS) == 13


def test_run_names_follow_dvc_stage_values():
    transfer = transfer_with(lambda t: t.update(labels=[5, "all"], sweeps=NO_SWEEPS | {
        "augment": [True], "classes": [3], "fine_tune_learning_rate": [1.0e-5]}))
    assert {"transfer_partial_5", "transfer_partial_all", "transfer_sweep_augment_true", "transfer_sweep_classes_3",
            "transfer_sweep_fine_tune_learning_rate_1e-05"} <= set(transfer.runs)
    assert transfer.runs["transfer_partial_all"].recipe.labels == 0


def test_settings_round_trip():
    transfer = transfer_with(lambda t: None)
    settings = transfer_params.run_settings(transfer, "transfer_frozen_50", (1, 2), "jax", 7)
    assert settings["seeds"] == [1, 2] and settings["subset_seed"] == 7 and settings["arm"] == "frozen"
    assert transfer_params.recipe_from_settings(settings) == transfer.runs["transfer_frozen_50"].recipe
    with pytest.raises(ParamError, match="unknown transfer run 'transfer_nope'"):
        transfer_params.run_settings(transfer, "transfer_nope", (1,), "jax", 1)
    settings["recipe"]["input_size"] = 4
    with pytest.raises(ParamError, match="input_size: must be a whole number >= 8, got 4"):
        transfer_params.recipe_from_settings(settings)


def test_pretraining_is_needed_only_when_a_run_starts_from_the_source():
    transfer = transfer_with(lambda t: None)
    assert transfer_params.pretrain_settings(transfer, (1,), "jax")["needed"]
    scratch_only = transfer_with(lambda t: t.update(weights="none", arms={"scratch": {}}, sweeps=NO_SWEEPS))
    assert not transfer_params.pretrain_settings(scratch_only, (1,), "jax")["needed"]


def test_a_noisy_labels_value_extends_the_studys_seeds():
    transfer = transfer_with(lambda t: t.update(min_seeds={10: 5}))
    assert transfer.min_seeds == {10: 5}
    # The study's own seeds first (paired with every other run), then the next unused numbers.
    assert transfer.run_seeds("transfer_partial_10", (1, 2, 3)) == (1, 2, 3, 4, 5)
    assert transfer.run_seeds("transfer_sweep_dropout_0.5", (7, 3)) == (7, 3, 8, 9, 10)  # a sweep point: 10 labels
    assert transfer.run_seeds("transfer_partial_50", (1, 2, 3)) == (1, 2, 3)
    assert transfer.run_seeds("transfer_partial_10", (1, 2, 3, 4, 5, 6)) == (1, 2, 3, 4, 5, 6)  # never fewer
    settings = transfer_params.run_settings(transfer, "transfer_frozen_10", (1, 2, 3), "jax", 1)
    assert settings["seeds"] == [1, 2, 3, 4, 5]
    # The source network is trained for every seed a run starting from it trains.
    assert transfer_params.pretrain_settings(transfer, (1, 2, 3), "jax")["seeds"] == [1, 2, 3, 4, 5]
    only_scratch = transfer_with(lambda t: t.update(min_seeds={10: 5}, arms={"scratch": {"weights": "none"},
                                                                             "frozen": {"unfreeze": 0.0}},
                                                    labels=[50, 10], sweeps=NO_SWEEPS))
    assert only_scratch.run_seeds("transfer_scratch_10", (1,)) == (1, 2, 3, 4, 5)
    # Without the key (an older params.yaml) every run trains `seeds`.
    assert transfer_with(lambda t: t.pop("min_seeds")).run_seeds("transfer_partial_10", (1, 2)) == (1, 2)
    assert transfer_with(lambda t: t.update(min_seeds={"all": 4}, labels=["all"])).min_seeds == {0: 4}


@pytest.mark.parametrize("model", APPLICATIONS)
def test_every_application_is_accepted_at_its_minimum_input_size(model):
    size = MIN_INPUT_SIZE[model]
    transfer = transfer_with(lambda t: t.update(model=model, input_size=size, sweeps=NO_SWEEPS))
    assert transfer.base.model == model and transfer.base.input_size == size


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.update(model="resnet18"), r"transfer.model: 'resnet18' is not one of: cnn_small, .*inceptionv3"),
    (lambda t: t.update(model="xception", input_size=32, sweeps=NO_SWEEPS),
     r"transfer: input_size 32 is below xception's minimum of 71"),
    (lambda t: t.update(model="inceptionv3", input_size=74, sweeps=NO_SWEEPS), r"below inceptionv3's minimum of 75"),
    (lambda t: t.update(weights="imagenet"), r"weights 'imagenet' exist only for the Keras applications, not cnn_medium"),
    (lambda t: t.update(model="vgg16", input_size=32, weights="imagenet", sweeps=NO_SWEEPS),
     r"weights 'imagenet' need 3-channel photos; the digits study uses `source`"),
    (lambda t: t.update(source_classes=[]), r"weights 'source' pretrains on transfer.source_classes, which is empty"),
    (lambda t: t.update(target_classes=[4, 5]), r"source_classes and target_classes share \[4\]"),
    (lambda t: t.update(target_classes=[5, 10]), r"classes of digits are 0..9, got \[10\]"),
    (lambda t: t.update(target_classes=[5]), r"target_classes: needs at least 2 classes"),
    (lambda t: t.update(classes=6), r"classes 6 must be 2..5 \(the target classes\)"),
    (lambda t: t.update(labels=[]), r"transfer.labels: must be a list of at least 1"),
    (lambda t: t.update(labels=[0.5]), r"transfer.labels\[0\]: must be a whole number >= 1"),
    (lambda t: t.update(unfreeze=1.5), r"transfer.unfreeze: must be <= 1.0, got 1.5"),
    (lambda t: t.update(optimizer="rmsprop"), r"transfer.optimizer: 'rmsprop' is not one of: adam, adamax, sgd"),
    (lambda t: t.update(augmentations=["blur"]), r"augmentations\[0\]: 'blur' is not one of: flip, rotation"),
    (lambda t: t.update(fine_tune_learning_rate="1e-5"), r"fine_tune_learning_rate: must be a number.*1.0e-3"),
    (lambda t: t.update(dataset="cifar10"), r"transfer.dataset: 'cifar10' is not one of: digits, cifar100"),
    (lambda t: t.update(arms={"from-scratch": {"weights": "none"}}), r"name 'from-scratch' must use only letters"),
    (lambda t: t.update(arms={"x": {"weigths": "none"}}), r"transfer.arms.x: unknown key 'weigths' \(did you mean 'weights'\?\)"),
    (lambda t: t["sweeps"].update(unfreeze=[0.25, 0.25]), r"transfer.sweeps.unfreeze: 0.25 is listed twice"),
    (lambda t: t["sweeps"].update(depth=[2]), r"transfer.sweeps: unknown key 'depth'"),
    (lambda t: t["sweeps"].update(input_size=[16], model=None), r"unknown key 'model'"),
    (lambda t: t["sweeps"].update(input_size=[4]), r"transfer.sweeps.input_size\[0\]: must be a whole number >= 8"),
    (lambda t: t["zoo"].update(models=["vgg19"]), r"transfer.zoo.models\[0\]: 'vgg19' is not one of"),
    (lambda t: t["zoo"].update(steps=0), r"transfer.zoo.steps: must be a whole number >= 1, got 0"),
    (lambda t: t.update(min_seeds=8), r"transfer.min_seeds: must map a labels value to the fewest seeds"),
    (lambda t: t.update(min_seeds={10: 0}), r"transfer.min_seeds.10: must be a whole number >= 1, got 0"),
    (lambda t: t.update(min_seeds={"ten": 8}), r"transfer.min_seeds \(a labels value\): must be a whole number >= 1"),
    (lambda t: t["pretrain"].pop("epochs"), r"transfer.pretrain: missing key\(s\): epochs"),
    (lambda t: t["sweeps"].pop("dropout"), r"transfer.sweeps: missing key\(s\): dropout"),
    (lambda t: t["arms"].update(big={"model": "cnn_large"}),
     r"transfer.arms.big: weights 'source' come from the pretrained cnn_medium"),
])
def test_bad_transfer_values_are_named(edit, message):
    with pytest.raises(ParamError, match=message):
        transfer_with(edit)


def test_a_bad_transfer_value_fails_the_whole_params_file_with_its_path():
    raw = copy.deepcopy(RAW)
    raw["transfer"]["model"] = "vgg"
    with pytest.raises(ParamError, match=r"transfer.model: 'vgg' is not one of"):
        params.parse(raw)
