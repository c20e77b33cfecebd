"""Load params.yaml once and validate every value before any work starts.

Each check names the key (`variants.sgd_mean10.optimizer`) and what is allowed, so a typo
in params.yaml costs seconds, not a training run.
"""

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from nnstudy import paths
from nnstudy.errors import ParamError

DATASETS = ("mnist-sample", "mnist", "fashion-mnist", "digits")
OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam")
ACTIVATIONS = ("relu", "sigmoid", "tanh", "elu", "selu", "gelu", "swish", "linear")
INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "normal", "zeros")
REGULARIZERS = ("none", "l1", "l2")
OBJECTIVES = ("val_accuracy", "val_f1")

Check = Callable[[str, Any], Any]


# --- value checks: each returns the clean value or raises ParamError naming the key ---

def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def number(low: float | None = None, high: float | None = None, low_open: bool = False) -> Check:
    def check(key: str, value: Any) -> float:
        if isinstance(value, str):
            hint = " (YAML reads 1e-3 as text: write 1.0e-3)" if _is_float_text(value) else ""
            raise ParamError(f"{key}: must be a number, got {_describe(value)}{hint}")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ParamError(f"{key}: must be a finite number, got {_describe(value)}")
        if low is not None and (value <= low if low_open else value < low):
            raise ParamError(f"{key}: must be {'>' if low_open else '>='} {low}, got {value}")
        if high is not None and value > high:
            raise ParamError(f"{key}: must be <= {high}, got {value}")
        return float(value)
    return check


def integer(low: int) -> Check:
    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamError(f"{key}: must be a whole number >= {low}, got {_describe(value)}")
        if value < low:
            raise ParamError(f"{key}: must be a whole number >= {low}, got {value}")
        return value
    return check


def choice(allowed: tuple[str, ...]) -> Check:
    def check(key: str, value: Any) -> str:
        if value not in allowed:
            raise ParamError(f"{key}: {value!r} is not one of: {', '.join(allowed)}")
        return value
    return check


def text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ParamError(f"{key}: must be a non-empty string, got {_describe(value)}")
    return value


def batch_size(key: str, value: Any) -> int | str:
    if value == "full":
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParamError(f"{key}: must be a whole number >= 1 or 'full', got {_describe(value)}")
    return value


def list_of(item: Check, min_len: int = 1) -> Check:
    def check(key: str, value: Any) -> tuple:
        if not isinstance(value, list) or len(value) < min_len:
            raise ParamError(f"{key}: must be a list of at least {min_len} value(s), got {_describe(value)}")
        return tuple(item(f"{key}[{i}]", v) for i, v in enumerate(value))
    return check


def _is_float_text(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def check_mapping(key: str, value: Any, schema: Mapping[str, Check], required: bool = True) -> dict:
    """Check a mapping against a schema: unknown keys are named with the closest allowed key."""
    if not isinstance(value, dict):
        raise ParamError(f"{key}: must be a mapping of keys to values, got {_describe(value)}")
    for name in value:
        if name not in schema:
            close = difflib.get_close_matches(str(name), schema, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ParamError(f"{key}: unknown key {name!r}{hint}; allowed keys: {', '.join(schema)}")
    if required:
        missing = [name for name in schema if name not in value]
        if missing:
            raise ParamError(f"{key}: missing key(s): {', '.join(missing)}")
    return {name: schema[name](f"{key}.{name}" if key else name, v) for name, v in value.items()}


# --- the params, as typed records ---

@dataclass(frozen=True)
class DataParams:
    dataset: str
    fashion_mnist_dir: str
    mnist_url: str
    mnist_sha256: str
    test_fraction: float
    val_fraction: float


@dataclass(frozen=True)
class ModelParams:
    """One network and how to train it: the base keys of params.yaml, or a variant of them."""
    optimizer: str
    learning_rate: float
    rho: float
    momentum: float
    batch_size: int | str
    epochs: int
    hidden_units: tuple[int, ...]
    activation: str
    initializer: str
    init_mean: float
    init_stddev: float
    regularizer: str
    reg_alpha: float
    regularize_output: bool
    dropout: float


@dataclass(frozen=True)
class TuneParams:
    objective: str
    max_epochs: int
    factor: int
    hyperband_iterations: int
    patience: int
    batch_size: int
    top_n: int
    units_1: tuple[int, ...]
    units_2: tuple[int, ...]
    l2: tuple[float, ...]
    learning_rate: tuple[float, ...]


@dataclass(frozen=True)
class Params:
    seed: int
    diverged_loss: float
    data: DataParams
    base: ModelParams
    variants: dict[str, ModelParams]
    tune: TuneParams
    final_epochs: int
    check_tolerance: float


def boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ParamError(f"{key}: must be true or false, got {_describe(value)}")
    return value


DATA_SCHEMA: dict[str, Check] = {
    "dataset": choice(DATASETS),
    "fashion_mnist_dir": text,
    "mnist_url": text,
    "mnist_sha256": text,
    "test_fraction": number(0.0, 0.9, low_open=True),
    "val_fraction": number(0.0, 0.9, low_open=True),
}

MODEL_SCHEMA: dict[str, Check] = {
    "optimizer": choice(OPTIMIZERS),
    "learning_rate": number(0.0, low_open=True),
    "rho": number(0.0, 1.0),
    "momentum": number(0.0, 1.0),
    "batch_size": batch_size,
    "epochs": integer(1),
    "hidden_units": list_of(integer(1)),
    "activation": choice(ACTIVATIONS),
    "initializer": choice(INITIALIZERS),
    "init_mean": number(),
    "init_stddev": number(0.0, low_open=True),
    "regularizer": choice(REGULARIZERS),
    "reg_alpha": number(0.0),
    "regularize_output": boolean,
    "dropout": number(0.0, 0.99),
}

TUNE_SCHEMA: dict[str, Check] = {
    "objective": choice(OBJECTIVES),
    "max_epochs": integer(1),
    "factor": integer(2),
    "hyperband_iterations": integer(1),
    "patience": integer(0),
    "batch_size": integer(1),
    "top_n": integer(1),
    "space": lambda key, value: value,  # checked below, as its own mapping
}

SPACE_SCHEMA: dict[str, Check] = {
    "units_1": list_of(integer(1)),
    "units_2": list_of(integer(1)),
    "l2": list_of(number(0.0)),
    "learning_rate": list_of(number(0.0, low_open=True)),
}

TOP_SCHEMA: dict[str, Check] = {
    "seed": integer(0),
    "diverged_loss": number(0.0, low_open=True),
    "data": lambda key, value: check_mapping(key, value, DATA_SCHEMA),
    **MODEL_SCHEMA,
    "variants": lambda key, value: value,
    "tune": lambda key, value: value,
    "final": lambda key, value: check_mapping(key, value, {"epochs": integer(1)}),
    "check": lambda key, value: check_mapping(key, value, {"tolerance": number(0.0)}),
}


def parse(raw: Any) -> Params:
    """Validate the whole params tree; the first problem found raises ParamError."""
    top = check_mapping("", raw, TOP_SCHEMA)
    base = ModelParams(**{name: top[name] for name in MODEL_SCHEMA})

    if not isinstance(raw["variants"], dict) or not raw["variants"]:
        raise ParamError(f"variants: must be a mapping of variant names to overrides, got {_describe(raw['variants'])}")
    variants = {}
    for name, overrides in raw["variants"].items():
        if not isinstance(name, str) or not name.replace("_", "").isalnum():
            raise ParamError(f"variants: name {name!r} must use only letters, digits and _")
        if name == "final":
            raise ParamError("variants: the name 'final' is taken by the tuned network; choose another")
        # An empty variant (`name: {}`) is the base network itself.
        checked = check_mapping(f"variants.{name}", overrides or {}, MODEL_SCHEMA, required=False)
        variants[name] = replace(base, **checked)

    tune_raw = check_mapping("tune", raw["tune"], TUNE_SCHEMA)
    space = check_mapping("tune.space", tune_raw.pop("space"), SPACE_SCHEMA)
    tune = TuneParams(**tune_raw, **space)

    return Params(
        seed=top["seed"],
        diverged_loss=top["diverged_loss"],
        data=DataParams(**top["data"]),
        base=base,
        variants=variants,
        tune=tune,
        final_epochs=top["final"]["epochs"],
        check_tolerance=top["check"]["tolerance"],
    )


def load(path: Path = paths.PARAMS) -> Params:
    """Read and validate params.yaml."""
    try:
        text_ = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ParamError(f"{path}: cannot read the params file ({error.strerror})") from None
    try:
        raw = yaml.safe_load(text_)
    except yaml.YAMLError as error:
        raise ParamError(f"{path}: not valid YAML: {error}") from None
    try:
        return parse(raw)
    except ParamError as error:
        raise ParamError(f"{path}: {error}") from None


def variant(params: Params, name: str) -> ModelParams:
    if name not in params.variants:
        raise ParamError(f"unknown variant {name!r}; params.yaml defines: {', '.join(params.variants)}")
    return params.variants[name]


def as_dict(model: ModelParams) -> dict[str, Any]:
    """The variant's settings as plain values (for reports and JSON)."""
    return {f.name: (list(v) if isinstance(v := getattr(model, f.name), tuple) else v) for f in fields(model)}
