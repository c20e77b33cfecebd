"""Load params.yaml once and validate every value before any work starts.

Each check names the key (`variants.sgd_mean10.optimizer`) and what is allowed, so a typo
in params.yaml costs seconds, not a training run.
"""

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from nnstudy.core import paths, transfer_params
from nnstudy.core.backend import BACKENDS
from nnstudy.core.checks import (  # noqa: F401 (seed_list, boolean, ... are this module's API too)
    Check, _at, _describe, boolean, check_mapping, choice, integer, list_of, number, seed_list, text,
)
from nnstudy.core.errors import ParamError
from nnstudy.core.paths import FINAL
from nnstudy.core.transfer_params import TransferParams

DATASETS = ("mnist-sample", "mnist", "fashion-mnist", "digits")
LOOPS = ("compiled", "fit")
OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam")
ACTIVATIONS = ("relu", "sigmoid", "tanh", "elu", "selu", "gelu", "swish", "linear")
INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "normal", "zeros")
REGULARIZERS = ("none", "l1", "l2")
OBJECTIVES = ("val_accuracy", "val_f1")
LOSSES = ("categorical_crossentropy", "mse")
TARGETS = ("one_hot", "plus_minus_one")
OUTPUT_ACTIVATIONS = ("softmax", "tanh")
SWEEP_AXES = ("depth", "width", "activation", "optimizer", "learning_rate")
MONITORS = ("val_loss", "val_accuracy")

# --- checks of the MLP study's own (the shared ones are in nnstudy.core.checks) ---

def batch_size(key: str, value: Any) -> int | str:
    if value == "full":
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParamError(f"{key}: must be a whole number >= 1 or 'full', got {_describe(value)}")
    return value


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
    loss: str                # categorical_crossentropy | mse
    targets: str             # one_hot | plus_minus_one (the classic tanh formulation's ±1)
    output_activation: str   # softmax | tanh


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep: the base network with one axis set to one value."""
    axis: str
    value: Any
    model: ModelParams


@dataclass(frozen=True)
class OpenSetParams:
    known: tuple[int, ...]           # the digits trained on; every other digit is unknown
    train_unknowns: tuple[int, ...]  # unknown digits whose training-split examples train the known head
    epochs: int
    tpr: float                       # each threshold accepts this share of the known validation digits


@dataclass(frozen=True)
class DreamParams:
    steps: int
    learning_rate: float
    l2: float
    tv: float
    start: str


@dataclass(frozen=True)
class ProbingParams:
    network: str             # the variant nondigit and dreams look at (every seed of it)
    nondigit_samples: int
    openset: OpenSetParams
    dreams: DreamParams


@dataclass(frozen=True)
class TuneParams:
    preset: str        # the name of the searched space in `tune.spaces` (its values are the fields below)
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
    # Optional axes: searched only when params.yaml lists them (the seeds' space has neither).
    dropout: tuple[float, ...] = ()
    batch_sizes: tuple[int, ...] = ()
    workers: int = 1   # keras-tuner workers running trials; above 1, a chief oracle hands them out
    # The selection round: this many distinct configurations, the best by their single trial, are
    # retrained from scratch on every seed of `seeds`; the one-standard-error rule picks among them.
    candidates: int = 3


@dataclass(frozen=True)
class FinalParams:
    """The tuned network as a practitioner keeps it: early stopping, best epoch's weights restored."""
    max_epochs: int
    patience: int    # epochs without improvement of `monitor` before a seed stops
    monitor: str     # val_loss | val_accuracy


@dataclass(frozen=True)
class Margins:
    """Equivalence margins in accuracy points, per family: a difference shown (by two one-sided
    tests) to lie within ±margin is reported *equivalent within ±margin*."""
    mlp: float
    transfer: float


@dataclass(frozen=True)
class StatsParams:
    confidence: float                       # of the intervals over seeds
    alpha: float                            # family-wise, after Holm's correction
    base: str                               # every variant is compared with this one
    questions: dict[str, tuple[str, ...]]   # the study's questions: a series of variants each
    margins: Margins                        # equivalence margins (points) per family
    paired: bool                            # paired t over shared seeds in place of Welch's t
    paired_steps: tuple[tuple[str, str], ...] = ()  # steps tested paired when `paired` is false


@dataclass(frozen=True)
class Params:
    seed: int                # the data split and the Hyperband search
    seeds: tuple[int, ...]   # training repeats: every variant and the tuned network, once per seed
    backend: str
    loop: str
    seeds_together: bool     # compiled loop: the seeds of a stage as one vmapped XLA program
    diverged_loss: float
    data: DataParams
    base: ModelParams
    variants: dict[str, ModelParams]
    tune: TuneParams
    final: FinalParams
    stats: StatsParams
    sweep_points: dict[str, SweepPoint]   # "sweep_<axis>_<value>" -> its point, each trained like a variant
    probing: ProbingParams
    check_tolerance: float
    transfer: TransferParams     # the transfer-learning study (nnstudy.core.transfer_params)

    @property
    def vmapped(self) -> bool:
        """Train the seeds as one program: asked for, and possible (the compiled loop, on JAX)."""
        return self.seeds_together and self.loop == "compiled"


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
    "loss": choice(LOSSES),
    "targets": choice(TARGETS),
    "output_activation": choice(OUTPUT_ACTIVATIONS),
}


def check_formulation(key: str, model: ModelParams) -> None:
    """Refuse loss/targets/output combinations that cannot train (naming the keys involved)."""
    where = _at(key)
    if model.targets == "plus_minus_one" and model.output_activation != "tanh":
        raise ParamError(f"{where}targets 'plus_minus_one' needs output_activation 'tanh' "
                         f"(a {model.output_activation} output cannot reach -1)")
    if model.loss == "categorical_crossentropy" and model.output_activation != "softmax":
        raise ParamError(f"{where}loss 'categorical_crossentropy' needs output_activation 'softmax' "
                         f"(cross-entropy takes probabilities; {model.output_activation} outputs are not)")
    if model.loss == "categorical_crossentropy" and model.targets != "one_hot":
        raise ParamError(f"{where}loss 'categorical_crossentropy' needs targets 'one_hot', got {model.targets!r}")

TUNE_SCHEMA: dict[str, Check] = {
    "objective": choice(OBJECTIVES),
    "max_epochs": integer(1),
    "factor": integer(2),
    "hyperband_iterations": integer(1),
    "patience": integer(0),
    "batch_size": integer(1),
    "top_n": integer(1),
    "workers": integer(1),
    "candidates": integer(1),
    "preset": lambda key, value: value,  # checked below, against `spaces`
    "spaces": lambda key, value: value,  # checked below, each its own mapping
}

SPACE_SCHEMA: dict[str, Check] = {
    "units_1": list_of(integer(1)),
    "units_2": list_of(integer(1)),
    "l2": list_of(number(0.0)),
    "learning_rate": list_of(number(0.0, low_open=True)),
    "dropout": list_of(number(0.0, 0.99)),
    "batch_size": list_of(integer(1)),
}
SPACE_OPTIONAL = ("dropout", "batch_size")


def search_space(preset: Any, spaces: Any) -> dict[str, Any]:
    """The space `tune.preset` names, as TuneParams fields. Every space is checked, not only the
    chosen one, so a typo in the other waits for nobody to switch to it."""
    if not isinstance(spaces, dict) or not spaces:
        raise ParamError(f"tune.spaces: must map each space's name to its axes, got {_describe(spaces)}")
    checked = {name: check_mapping(f"tune.spaces.{name}", axes, SPACE_SCHEMA, optional=SPACE_OPTIONAL)
               for name, axes in spaces.items()}
    if not isinstance(preset, str) or preset not in checked:
        close = difflib.get_close_matches(str(preset), [str(name) for name in checked], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ParamError(f"tune.preset: {preset!r} is not a space of tune.spaces{hint}; "
                         f"known: {', '.join(map(str, checked))}")
    space = dict(checked[preset])
    space["batch_sizes"] = space.pop("batch_size", ())
    return {"preset": preset, **space}


FINAL_SCHEMA: dict[str, Check] = {
    "max_epochs": integer(1),
    "patience": integer(0),
    "monitor": choice(MONITORS),
}


def steps(key: str, value: Any) -> tuple[tuple[str, str], ...]:
    """A list of steps, each two variant names [a, b] (the order does not matter to a test)."""
    if not isinstance(value, list):
        raise ParamError(f"{key}: must be a list of steps, each [a, b], got {_describe(value)}")
    found = []
    for i, step in enumerate(value):
        if not isinstance(step, list) or len(step) != 2:
            raise ParamError(f"{key}[{i}]: must be a step of two variants [a, b], got {_describe(step)}")
        found.append(tuple(text(f"{key}[{i}][{j}]", name) for j, name in enumerate(step)))
    return tuple(found)


def questions(key: str, value: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict) or not value:
        raise ParamError(f"{key}: must map each question to a list of variants, got {_describe(value)}")
    return {str(q): list_of(text, min_len=2)(f"{key}.{q}", names) for q, names in value.items()}


STATS_SCHEMA: dict[str, Check] = {
    "confidence": number(0.5, 1.0, low_open=False),
    "alpha": number(0.0, 0.5, low_open=True),
    "base": text,
    "questions": questions,
    "margins": lambda key, value: Margins(**check_mapping(key, value, {
        "mlp": number(0.0, 100.0, low_open=True), "transfer": number(0.0, 100.0, low_open=True)})),
    "paired": boolean,
    "paired_steps": steps,
}

def _digits(key: str, value: Any) -> tuple[int, ...]:
    digits = list_of(integer(0))(key, value)
    if any(d > 9 for d in digits) or len(set(digits)) != len(digits):
        raise ParamError(f"{key}: must list distinct digits 0-9, got {list(digits)}")
    return digits


OPENSET_SCHEMA: dict[str, Check] = {
    "known": _digits,
    "train_unknowns": _digits,
    "epochs": integer(1),
    "tpr": number(0.0, 1.0, low_open=True),
}

DREAMS_SCHEMA: dict[str, Check] = {
    "steps": integer(1),
    "learning_rate": number(0.0, low_open=True),
    "l2": number(0.0),
    "tv": number(0.0),
    "start": choice(("gray", "noise")),
}

PROBING_SCHEMA: dict[str, Check] = {
    "network": text,
    "nondigit_samples": integer(1),
    "openset": lambda key, value: check_mapping(key, value, OPENSET_SCHEMA),
    "dreams": lambda key, value: check_mapping(key, value, DREAMS_SCHEMA),
}


def _learning_rates(key: str, value: Any) -> dict[str, float]:
    checked = check_mapping(key, value, {name: number(0.0, low_open=True) for name in OPTIMIZERS})
    return checked


SWEEPS_SCHEMA: dict[str, Check] = {
    "epochs": integer(1),
    # An axis may be empty (it is then not swept); sweep_points wants one point in all.
    "depth": list_of(integer(1), min_len=0),
    "depth_width": integer(1),
    "width": list_of(integer(1), min_len=0),
    "activation": list_of(choice(ACTIVATIONS), min_len=0),
    "optimizer": list_of(choice(OPTIMIZERS), min_len=0),
    "optimizer_learning_rates": _learning_rates,
    "learning_rate": list_of(number(0.0, low_open=True), min_len=0),
}


def sweep_points(base: ModelParams, sweeps: dict[str, Any]) -> dict[str, SweepPoint]:
    """Every point of every axis: the base network with that one axis changed, `sweeps.epochs` long."""
    base = replace(base, epochs=sweeps["epochs"])
    rates = sweeps["optimizer_learning_rates"]
    changes = {
        "depth": lambda v: {"hidden_units": (sweeps["depth_width"],) * v},
        "width": lambda v: {"hidden_units": (v,) * len(base.hidden_units)},
        "activation": lambda v: {"activation": v},
        "optimizer": lambda v: {"optimizer": v, "learning_rate": rates.get(v, base.learning_rate)},
        "learning_rate": lambda v: {"learning_rate": v},
    }
    points = {}
    for axis in SWEEP_AXES:
        for value in sweeps[axis]:
            name = f"sweep_{axis}_{value}"
            if name in points:
                raise ParamError(f"sweeps.{axis}: {value!r} is listed twice")
            points[name] = SweepPoint(axis, value, replace(base, **changes[axis](value)))
    if not points:
        raise ParamError(f"sweeps: every axis ({', '.join(SWEEP_AXES)}) is empty; list at least one value "
                         "(evaluate_sweeps reads the sweep points)")
    return points


TOP_SCHEMA: dict[str, Check] = {
    "seed": integer(0),
    "seeds": seed_list,
    "backend": choice(BACKENDS),
    "loop": choice(LOOPS),
    "seeds_together": boolean,
    "diverged_loss": number(0.0, low_open=True),
    "data": lambda key, value: check_mapping(key, value, DATA_SCHEMA),
    **MODEL_SCHEMA,
    "variants": lambda key, value: value,
    "tune": lambda key, value: value,
    "final": lambda key, value: check_mapping(key, value, FINAL_SCHEMA),
    "stats": lambda key, value: check_mapping(key, value, STATS_SCHEMA, optional=("paired_steps",)),
    "sweeps": lambda key, value: check_mapping(key, value, SWEEPS_SCHEMA),
    "probing": lambda key, value: check_mapping(key, value, PROBING_SCHEMA),
    "check": lambda key, value: check_mapping(key, value, {"tolerance": number(0.0)}),
    "transfer": lambda key, value: value,  # checked by nnstudy.core.transfer_params
}


def parse(raw: Any) -> Params:
    """Validate the whole params tree; the first problem found raises ParamError."""

    top = check_mapping("", raw, TOP_SCHEMA)
    base = ModelParams(**{name: top[name] for name in MODEL_SCHEMA})
    check_formulation("", base)

    if not isinstance(raw["variants"], dict) or not raw["variants"]:
        raise ParamError(f"variants: must be a mapping of variant names to overrides, got {_describe(raw['variants'])}")
    variants = {}
    for name, overrides in raw["variants"].items():
        if not isinstance(name, str) or not name.replace("_", "").isalnum():
            raise ParamError(f"variants: name {name!r} must use only letters, digits and _")
        if name.startswith("sweep_"):
            raise ParamError(f"variants: the prefix 'sweep_' of {name!r} is kept for sweep points; choose another name")
        if name == FINAL:
            raise ParamError(f"variants: the name {FINAL!r} is taken by the tuned network; choose another")
        # An empty variant (`name: {}`) is the base network itself.
        checked = check_mapping(f"variants.{name}", overrides or {}, MODEL_SCHEMA, required=False)
        variants[name] = replace(base, **checked)
        check_formulation(f"variants.{name}", variants[name])

    tune_raw = check_mapping("tune", raw["tune"], TUNE_SCHEMA, optional=("workers", "candidates"))
    space = search_space(tune_raw.pop("preset"), tune_raw.pop("spaces"))
    tune = TuneParams(**tune_raw, **space)

    check_loop(top["backend"], top["loop"])
    stats = StatsParams(**top["stats"])
    known = [*variants, FINAL]
    for where, name in [("stats.base", stats.base)] + [
            (f"stats.questions.{q}", n) for q, names in stats.questions.items() for n in names] + [
            (f"stats.paired_steps[{i}]", n) for i, step in enumerate(stats.paired_steps) for n in step]:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ParamError(f"{where}: {name!r} is not a variant{hint}; known: {', '.join(known)}")

    probing_raw = top["probing"]
    if probing_raw["network"] not in variants:
        raise ParamError(f"probing.network: {probing_raw['network']!r} is not a variant; known: {', '.join(variants)}")
    opened = OpenSetParams(**probing_raw["openset"])
    if len(opened.known) < 2 or set(opened.known) & set(opened.train_unknowns):
        raise ParamError("probing.openset: `known` needs at least 2 digits, none of them in `train_unknowns`; "
                         f"got known {list(opened.known)}, train_unknowns {list(opened.train_unknowns)}")
    probing = ProbingParams(probing_raw["network"], probing_raw["nondigit_samples"], opened,
                            DreamParams(**probing_raw["dreams"]))

    return Params(
        seed=top["seed"],
        seeds=top["seeds"],
        backend=top["backend"],
        loop=top["loop"],
        seeds_together=top["seeds_together"],
        diverged_loss=top["diverged_loss"],
        data=DataParams(**top["data"]),
        base=base,
        variants=variants,
        tune=tune,
        final=FinalParams(**top["final"]),
        stats=stats,
        sweep_points=sweep_points(base, top["sweeps"]),
        probing=probing,
        check_tolerance=top["check"]["tolerance"],
        transfer=transfer_params.parse(top["transfer"]),
    )


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML silently keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first given on line {seen[key].line + 1})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def load(path: Path = paths.PARAMS) -> Params:
    """Read and validate params.yaml."""
    try:
        text_ = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ParamError(f"{path}: cannot read the params file ({error.strerror})") from None
    try:
        raw = yaml.load(text_, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        raise ParamError(f"{path}: not valid YAML: {error}") from None
    try:
        return parse(raw)
    except ParamError as error:
        raise ParamError(f"{path}: {error}") from None


def variant(params: Params, name: str) -> ModelParams:
    """A variant's network, or a sweep point's (sweep_<axis>_<value>)."""
    if name in params.sweep_points:
        return params.sweep_points[name].model
    if name not in params.variants:
        raise ParamError(f"unknown variant {name!r}; params.yaml defines: {', '.join(params.variants)}")
    return params.variants[name]


def as_dict(model: ModelParams) -> dict[str, Any]:
    """The variant's settings as plain values (for reports and JSON)."""
    return {f.name: (list(v) if isinstance(v := getattr(model, f.name), tuple) else v) for f in fields(model)}


def effective_settings(params: Params, name: str) -> dict[str, Any]:
    """Everything one variant's training depends on: its network, the seeds and how it runs.

    The settings stage writes this per variant; train@<variant> depends on that file instead of on
    every base key, so `-S optimizer=sgd` re-trains only the variants that inherit `optimizer`.
    """
    return {
        "variant": name,
        "model": as_dict(variant(params, name)),
        "seeds": list(params.seeds),
        "backend": params.backend,
        "loop": params.loop,
        "seeds_together": params.seeds_together,
        "diverged_loss": params.diverged_loss,
    }


SETTINGS_SCHEMA: dict[str, Check] = {
    "variant": text,
    "model": lambda key, value: check_mapping(key, value, MODEL_SCHEMA),
    "seeds": seed_list,
    "backend": choice(BACKENDS),
    "loop": choice(LOOPS),
    "seeds_together": boolean,
    "diverged_loss": number(0.0, low_open=True),
}


@dataclass(frozen=True)
class RunSettings:
    """A settings file (results/settings/<variant>.json), checked: what train@<variant> runs."""
    variant: str
    model: ModelParams
    seeds: tuple[int, ...]
    backend: str
    loop: str
    seeds_together: bool
    diverged_loss: float

    @property
    def vmapped(self) -> bool:
        """Train the seeds as one program: asked for, and possible (the compiled loop, on JAX)."""
        return self.seeds_together and self.loop == "compiled"


def check_loop(backend: str, loop: str) -> None:
    if loop == "compiled" and backend != "jax":
        raise ParamError(f"loop: 'compiled' runs on the JAX backend only (backend is {backend!r}); "
                         "set `loop: fit` or `backend: jax`")


def settings_from_mapping(settings: Any) -> RunSettings:
    """A settings file's content checked in full, with the validators of params.yaml (the file
    may be edited by hand): its shape, every key and type, the seeds, backend and loop."""
    checked = check_mapping("", settings, SETTINGS_SCHEMA)
    model = ModelParams(**checked["model"])
    check_formulation("model", model)
    check_loop(checked["backend"], checked["loop"])
    return RunSettings(**(checked | {"model": model}))


def model_from_settings(settings: Mapping[str, Any]) -> ModelParams:
    """The ModelParams a settings file stands for (the whole file checked)."""
    return settings_from_mapping(settings).model


def read_settings(name: str) -> RunSettings:
    """train@<name>'s settings file, checked; a problem is one line naming the file and the key."""
    from nnstudy.core.jsonio import read_json  # jsonio pulls in NumPy: only the stages need it

    path = paths.settings_file(name)
    if not path.is_file():
        variant(load(), name)  # a name params.yaml does not define gets the list of those it does
        raise ParamError(f"{path}: missing; run `dvc repro settings` to write it")
    try:
        settings = settings_from_mapping(read_json(path))
    except ParamError as error:
        raise ParamError(f"{path}: {error}; fix it, or run `dvc repro settings` to rewrite it "
                         "from params.yaml") from None
    if settings.variant != name:
        raise ParamError(f"{path}: variant: the file is for {settings.variant!r}, not {name!r}; "
                         "run `dvc repro settings` to rewrite it")
    return settings
