"""A transfer run's effective settings (results/transfer/settings/<run>.json and pretrain.json):
written from the validated `transfer:` section, and checked again in full when read back.

The section itself (its records, schemas and `parse`) is validated with the rest of params.yaml in
nnstudy.core.transfer_params; its names are this module's API too, as the transfer room uses them.
"""

import math
from dataclasses import asdict
from typing import Any

from nnstudy.core.backend import BACKENDS
from nnstudy.core.checks import Check, boolean, check_mapping, choice, integer, list_of, number, seed_list, text
from nnstudy.core.errors import ParamError
from nnstudy.core.transfer_params import (  # noqa: F401 (the section's names are this module's API too)
    APPLICATIONS, AUGMENTATIONS, CNNS, DATASETS, MIN_INPUT_SIZE, MODELS, OPTIMIZERS, PRETRAIN_SCHEMA, RECIPE_SCHEMA,
    RUN_KEYS, SCHEMA, SWEEP_AXES, SWEEPS_SCHEMA, WEIGHTS, ZOO_SCHEMA, PretrainParams, Recipe, TransferParams,
    TransferRun, ZooParams, _count_or_all, check_recipe, extended_seeds, parse, value_name,
)


def run_settings(transfer: TransferParams, name: str, seeds: tuple[int, ...], backend: str, seed: int) -> dict:
    """Everything one run's training depends on (the transfer_settings stage writes it per run)."""
    if name not in transfer.runs:
        raise ParamError(f"unknown transfer run {name!r}; params.yaml defines: {', '.join(transfer.runs)}")
    run = transfer.runs[name]
    return {
        "run": name, "arm": run.arm, "axis": run.axis, "value": run.value,
        "recipe": asdict(run.recipe),
        "augmentations": list(transfer.augmentations), "augment_factor": transfer.augment_factor,
        "val_per_class": transfer.val_per_class, "seeds": list(transfer.run_seeds(name, seeds)), "subset_seed": seed,
        "backend": backend,
    }


def pretrain_settings(transfer: TransferParams, seeds: tuple[int, ...], backend: str) -> dict:
    """What the source network depends on; `needed` is false when no run starts from it. It is
    trained once for every seed that some run starting from it trains."""
    starting = [name for name, run in transfer.runs.items() if run.recipe.weights == "source"]
    wanted = max((len(transfer.run_seeds(name, seeds)) for name in starting), default=len(seeds))
    return {
        "run": "pretrain", "needed": bool(starting), "recipe": asdict(transfer.base),
        "pretrain": asdict(transfer.pretrain), "seeds": list(extended_seeds(seeds, wanted)), "backend": backend,
    }


def _optional(check: Check) -> Check:
    return lambda key, value: None if value is None else check(key, value)


# The files the transfer_settings stage writes (results/transfer/settings/<run>.json and
# pretrain.json), checked again in full when read: they may be edited by hand.
RUN_SETTINGS_SCHEMA = {
    "run": text,
    "arm": _optional(text),
    "axis": _optional(choice(SWEEP_AXES)),
    "value": lambda key, value: value,  # checked below against its axis
    "recipe": lambda key, value: check_mapping(key, value, RECIPE_SCHEMA),
    "augmentations": list_of(choice(AUGMENTATIONS)),
    "augment_factor": number(0.0, 1.0, low_open=True),
    "val_per_class": _count_or_all,
    "seeds": seed_list,
    "subset_seed": integer(0),
    "backend": choice(BACKENDS),
}

PRETRAIN_SETTINGS_SCHEMA = {
    "run": choice(("pretrain",)),
    "needed": boolean,
    "recipe": lambda key, value: check_mapping(key, value, RECIPE_SCHEMA),
    "pretrain": lambda key, value: check_mapping(key, value, PRETRAIN_SCHEMA),
    "seeds": seed_list,
    "backend": choice(BACKENDS),
}


def recipe_from_settings(settings: Any) -> Recipe:
    """The Recipe a settings file stands for, the whole file checked (it may be edited by hand)."""
    pretrain = isinstance(settings, dict) and settings.get("run") == "pretrain"
    checked = check_mapping("", settings, PRETRAIN_SETTINGS_SCHEMA if pretrain else RUN_SETTINGS_SCHEMA)
    if not pretrain and checked["axis"] is not None:
        RECIPE_SCHEMA[checked["axis"]]("value", checked["value"])
    recipe = Recipe(**checked["recipe"])
    if recipe.input_size < MIN_INPUT_SIZE[recipe.model]:
        raise ParamError(f"recipe.input_size: {recipe.input_size} is below {recipe.model}'s minimum "
                         f"of {MIN_INPUT_SIZE[recipe.model]}")
    return recipe


def steps_per_epoch(examples: int, batch_size: int) -> int:
    return max(1, math.ceil(examples / batch_size))
