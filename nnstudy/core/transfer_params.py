"""The `transfer:` section of params.yaml: validated once, into typed records.

The transfer study has one base recipe (the top-level keys of `transfer:`); each arm and each
sweep point is that recipe with a few keys changed, exactly as the MLP study's variants and
sweep points change its base network. nnstudy.core.params validates the whole of params.yaml with
it; each run's effective settings file is the transfer room's (nnstudy.transfer.params).
"""

from dataclasses import dataclass, replace
from typing import Any

from nnstudy.core.errors import ParamError
from nnstudy.core.checks import _describe, boolean, check_mapping, choice, integer, list_of, number, text

# Every model the study knows, with the smallest square input it accepts (include_top=False).
# The three CNNs are the study's own; the ten applications are Keras' (keras.applications),
# each with the input scaling its ImageNet weights were trained with.
CNNS = ("cnn_small", "cnn_medium", "cnn_large")
APPLICATIONS = ("vgg16", "xception", "efficientnetb7", "resnet50", "resnet152v2",
                "densenet121", "densenet169", "densenet201", "mobilenetv2", "inceptionv3")
MODELS = CNNS + APPLICATIONS
MIN_INPUT_SIZE = {
    "cnn_small": 8, "cnn_medium": 8, "cnn_large": 8,   # their pooling halves the size 2-3 times
    "vgg16": 32, "xception": 71, "efficientnetb7": 32, "resnet50": 32, "resnet152v2": 32,
    "densenet121": 32, "densenet169": 32, "densenet201": 32, "mobilenetv2": 32, "inceptionv3": 75,
}
DATASETS = ("digits", "cifar100")
WEIGHTS = ("source", "imagenet", "none")
OPTIMIZERS = ("adam", "adamax", "sgd")
AUGMENTATIONS = ("flip", "rotation", "zoom", "contrast")
# The keys a run is made of; an arm or a sweep point may change any of them.
RUN_KEYS = ("model", "weights", "input_size", "classes", "labels", "augment", "dropout", "optimizer",
            "learning_rate", "fine_tune_learning_rate", "unfreeze", "batch_size", "epochs", "patience")
SWEEP_AXES = ("input_size", "augment", "unfreeze", "dropout", "patience", "fine_tune_learning_rate",
              "batch_size", "optimizer", "classes", "labels")


@dataclass(frozen=True)
class Recipe:
    """One transfer run: which network, from which weights, on how much data, trained how."""
    model: str
    weights: str                    # source: pretrained here on the source classes | imagenet | none
    input_size: int                 # square side the images are resized to
    classes: int                    # the first N target classes (0: all of them)
    labels: int                     # training labels per target class (0: all of them)
    augment: bool
    dropout: float
    optimizer: str
    learning_rate: float            # phase 1: the head (or, with weights none, the whole network)
    fine_tune_learning_rate: float  # phase 2: the unfrozen top of the base
    unfreeze: float                 # share of the base's weighted layers unfrozen in phase 2
    batch_size: int
    epochs: int                     # the most per phase
    patience: int                   # early stopping on val_loss, best weights restored


@dataclass(frozen=True)
class PretrainParams:
    epochs: int
    batch_size: int
    learning_rate: float
    patience: int


@dataclass(frozen=True)
class ZooParams:
    models: tuple[str, ...]
    input_size: int       # each model at least its minimum
    batch_size: int
    steps: int            # timed training steps per model (after one untimed compile step)
    train: str            # head: the base frozen (phase 1) | all: every layer (from scratch, unfreeze 1)
    epochs: int           # training of the models whose weights are available (0: timing only)


@dataclass(frozen=True)
class TransferRun:
    name: str             # transfer_<arm>_<labels> or transfer_sweep_<axis>_<value>
    arm: str | None
    axis: str | None
    value: Any
    recipe: Recipe


@dataclass(frozen=True)
class TransferParams:
    dataset: str
    cifar100_url: str
    cifar100_sha256: str
    source_classes: tuple[int, ...]
    target_classes: tuple[int, ...]   # empty: every class not in source_classes
    val_fraction: float
    val_per_class: int                # target validation examples per class (0: all)
    augmentations: tuple[str, ...]
    augment_factor: float
    base: Recipe
    arm_labels: tuple[int, ...]
    pretrain: PretrainParams
    zoo: ZooParams
    runs: dict[str, TransferRun]      # every arm at every labels value, then every sweep point
    min_seeds: dict[int, int]         # labels value (0: all) -> the fewest seeds its runs train

    def run_seeds(self, name: str, seeds: tuple[int, ...]) -> tuple[int, ...]:
        """The seeds one run trains: the study's `seeds`, extended for a noisy labels value."""
        return extended_seeds(seeds, self.min_seeds.get(self.runs[name].recipe.labels, 0))

    @property
    def arms(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.arm for r in self.runs.values() if r.arm))


def extended_seeds(seeds: tuple[int, ...], wanted: int) -> tuple[int, ...]:
    """`seeds` first, then the next unused whole numbers above them until there are `wanted`: a
    family that asks for more seeds keeps the study's own, so its runs stay paired with the rest."""
    out = list(seeds)
    candidate = max(seeds, default=0) + 1
    while len(out) < wanted:
        out.append(candidate)
        candidate += 1
    return tuple(out)


def _min_seeds(key: str, value: Any) -> dict[int, int]:
    """{labels value: seeds}, e.g. {10: 8}; `all` as a key stands for every label."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ParamError(f"{key}: must map a labels value to the fewest seeds its runs train (e.g. {{10: 8}}), "
                         f"got {_describe(value)}")
    return {_count_or_all(f"{key} (a labels value)", labels): integer(1)(f"{key}.{labels}", count)
            for labels, count in value.items()}


def _classes(key: str, value: Any) -> tuple[int, ...]:
    if value == "all":
        return ()
    found = list_of(integer(0), min_len=0)(key, value)
    if len(set(found)) != len(found):
        raise ParamError(f"{key}: each class may appear once, got {list(found)}")
    return found


def _count_or_all(key: str, value: Any) -> int:
    """A whole number >= 1, or `all` (stored as 0, which settings files hold and is read back)."""
    if value == "all" or (value == 0 and not isinstance(value, bool)):
        return 0
    return integer(1)(key, value)


def _share(key: str, value: Any) -> float:
    return number(0.0, 1.0)(key, value)


RECIPE_SCHEMA = {
    "model": choice(MODELS),
    "weights": choice(WEIGHTS),
    "input_size": integer(8),
    "classes": _count_or_all,
    "labels": _count_or_all,
    "augment": boolean,
    "dropout": number(0.0, 0.99),
    "optimizer": choice(OPTIMIZERS),
    "learning_rate": number(0.0, low_open=True),
    "fine_tune_learning_rate": number(0.0, low_open=True),
    "unfreeze": _share,
    "batch_size": integer(1),
    "epochs": integer(1),
    "patience": integer(0),
}

PRETRAIN_SCHEMA = {"epochs": integer(1), "batch_size": integer(1), "learning_rate": number(0.0, low_open=True),
                   "patience": integer(0)}

SCHEMA = {
    "dataset": choice(DATASETS),
    "cifar100_url": text,
    "cifar100_sha256": text,
    "source_classes": _classes,
    "target_classes": _classes,
    "val_fraction": number(0.0, 0.9, low_open=True),
    "val_per_class": _count_or_all,
    "augmentations": list_of(choice(AUGMENTATIONS)),
    "augment_factor": number(0.0, 1.0, low_open=True),
    **{key: RECIPE_SCHEMA[key] for key in RECIPE_SCHEMA if key != "labels"},
    "labels": list_of(_count_or_all),
    "min_seeds": _min_seeds,
    "pretrain": lambda key, value: check_mapping(key, value, PRETRAIN_SCHEMA),
    "arms": lambda key, value: value,
    "sweeps": lambda key, value: value,
    "zoo": lambda key, value: value,
}

SWEEPS_SCHEMA = {axis: list_of(RECIPE_SCHEMA[axis], min_len=0) for axis in SWEEP_AXES}

ZOO_SCHEMA = {
    "models": lambda key, value: MODELS if value == "all" else list_of(choice(MODELS))(key, value),
    "input_size": integer(8),
    "batch_size": integer(1),
    "steps": integer(1),
    "train": choice(("head", "all")),
    "epochs": integer(0),
}


def check_recipe(key: str, recipe: Recipe, dataset: str, has_source: bool) -> None:
    """Combinations no single value shows: input sizes each model accepts, weights it can have."""
    where = f"{key}: " if key else ""
    minimum = MIN_INPUT_SIZE[recipe.model]
    if recipe.input_size < minimum:
        raise ParamError(f"{where}input_size {recipe.input_size} is below {recipe.model}'s minimum of {minimum}")
    if recipe.weights == "imagenet" and recipe.model in CNNS:
        raise ParamError(f"{where}weights 'imagenet' exist only for the Keras applications, not {recipe.model} "
                         "(use `source` or `none`)")
    if recipe.weights == "source" and not has_source:
        raise ParamError(f"{where}weights 'source' pretrains on transfer.source_classes, which is empty")
    if recipe.weights == "imagenet" and dataset == "digits":
        raise ParamError(f"{where}weights 'imagenet' need 3-channel photos; the digits study uses `source` "
                         "(set transfer.dataset: cifar100)")


def value_name(axis: str, value: Any) -> str:
    """A value as DVC writes it into a stage name (`true`, `1e-05`; 0 classes or labels is `all`)."""
    if axis in ("classes", "labels") and value == 0:
        return "all"
    return str(value).lower() if isinstance(value, bool) else str(value)


def parse(raw: Any) -> TransferParams:
    """Validate `transfer:`; the first problem raises ParamError naming its key."""
    top = check_mapping("transfer", raw, SCHEMA, optional=("min_seeds",))
    source, target = top["source_classes"], top["target_classes"]
    if set(source) & set(target):
        raise ParamError(f"transfer: source_classes and target_classes share {sorted(set(source) & set(target))}")
    if target and len(target) < 2:
        raise ParamError("transfer.target_classes: needs at least 2 classes (or `all`)")
    limit = 10 if top["dataset"] == "digits" else 100
    if any(c >= limit for c in (*source, *target)):
        raise ParamError(f"transfer: classes of {top['dataset']} are 0..{limit - 1}, "
                         f"got {sorted(c for c in (*source, *target) if c >= limit)}")
    available = len(target) or limit - len(source)
    base = Recipe(**{key: top[key] for key in RECIPE_SCHEMA if key != "labels"}, labels=top["labels"][0])

    def checked(key: str, recipe: Recipe) -> Recipe:
        check_recipe(key, recipe, top["dataset"], bool(source))
        if recipe.weights == "source" and recipe.model != base.model:
            raise ParamError(f"{key}: weights 'source' come from the pretrained {base.model} (transfer.model); "
                             f"{recipe.model} has no source network")
        if recipe.classes and not 2 <= recipe.classes <= available:
            raise ParamError(f"{key}: classes {recipe.classes} must be 2..{available} (the target classes)")
        return recipe

    checked("transfer", base)  # the recipe's own values first, so a message names them where they are set
    runs: dict[str, TransferRun] = {}
    arms = top["arms"]
    if not isinstance(arms, dict) or not arms:
        raise ParamError(f"transfer.arms: must map each arm's name to the keys it changes, got {_describe(arms)}")
    for arm, overrides in arms.items():
        if not isinstance(arm, str) or not arm.isalnum():
            raise ParamError(f"transfer.arms: name {arm!r} must use only letters and digits")
        changed = check_mapping(f"transfer.arms.{arm}", overrides or {}, RECIPE_SCHEMA, required=False)
        changed.pop("labels", None)
        for labels in top["labels"]:
            recipe = checked(f"transfer.arms.{arm}", replace(base, **changed, labels=labels))
            name = f"transfer_{arm}_{value_name('labels', labels)}"
            runs[name] = TransferRun(name, arm, None, None, recipe)

    # Every axis is named, [] for none: dvc.yaml's sweep stages read each list.
    sweeps = check_mapping("transfer.sweeps", top["sweeps"], SWEEPS_SCHEMA)
    for axis, values in sweeps.items():
        for value in values:
            name = f"transfer_sweep_{axis}_{value_name(axis, value)}"
            if name in runs:
                raise ParamError(f"transfer.sweeps.{axis}: {value!r} is listed twice")
            runs[name] = TransferRun(name, None, axis, value,
                                     checked(f"transfer.sweeps.{axis}", replace(base, **{axis: value})))

    zoo = ZooParams(**check_mapping("transfer.zoo", top["zoo"], ZOO_SCHEMA))
    return TransferParams(
        dataset=top["dataset"], cifar100_url=top["cifar100_url"], cifar100_sha256=top["cifar100_sha256"],
        source_classes=source, target_classes=target, val_fraction=top["val_fraction"],
        val_per_class=top["val_per_class"],
        augmentations=top["augmentations"], augment_factor=top["augment_factor"],
        base=base, arm_labels=top["labels"], pretrain=PretrainParams(**top["pretrain"]), zoo=zoo, runs=runs,
        min_seeds=top.get("min_seeds", {}),
    )
