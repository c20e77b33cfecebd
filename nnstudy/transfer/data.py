"""Images for the transfer-learning study: a source task and a target task, as (N, H, W, C) uint8.

Two sources of images: CIFAR-100 (downloaded once, 161 MB, checksum-verified) and, offline, the
study's own prepared digits. Either becomes a TransferData: the source task a network learns
first (None when pretrained ImageNet weights stand in for it) and the target task it transfers to.
Every problem with a file raises DataError naming it, as nnstudy.core.data does.
"""

import json
import pickle
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnstudy.core import paths
from nnstudy.core.data import SPLITS, PreparedData, _read_npz, _stratified_split, cached_download
from nnstudy.core.errors import DataError
from nnstudy.core.files import write_npz, write_text

CIFAR100_FILE = "cifar-100-python.tar.gz"
CIFAR100_MEMBERS = ("train", "test", "meta")  # each a pickle under cifar-100-python/
CIFAR100_TIMEOUT = 10  # seconds without a byte: offline fails fast, a slow but live link still works
TASK_SPLITS = ("source_train", "source_val", "target_train", "target_val", "target_test")
TASK_HINT = "run `dvc repro` (the transfer_data stage writes it)"


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images for the CNNs: x (N, H, W, C) uint8, y (N,) int64 class indices 0..K-1 of the task."""
    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if self.x.ndim != 4 or self.x.dtype != np.uint8:
            raise DataError(f"images must be (N, H, W, C) uint8, got {self.x.shape} {self.x.dtype}")
        if self.y.shape != (len(self.x),) or self.y.dtype != np.int64:
            raise DataError(f"labels must be ({len(self.x)},) int64, got {self.y.shape} {self.y.dtype}")


@dataclass(frozen=True, eq=False)
class TransferData:
    """One source task (may be None: pretrained ImageNet weights stand in for it) and one target task."""
    source_train: ImageSet | None
    source_val: ImageSet | None
    target_train: ImageSet
    target_val: ImageSet
    target_test: ImageSet
    source_names: tuple[str, ...]  # class names, index i = label i of the source task (() if none)
    target_names: tuple[str, ...]

    def __post_init__(self) -> None:
        # load_task builds one of these too, so files that disagree with classes.json fail here.
        if (self.source_train is None) != (self.source_val is None) or \
                (self.source_train is None) != (not self.source_names):
            raise DataError("the source task needs train and val images and class names, or none of them")
        if not self.target_names:
            raise DataError("the target task has no classes")
        for name in TASK_SPLITS:
            images: ImageSet | None = getattr(self, name)
            names = self.source_names if name.startswith("source") else self.target_names
            if images is not None and len(images.y) and not 0 <= images.y.min() <= images.y.max() < len(names):
                raise DataError(f"{name}: labels {images.y.min()}..{images.y.max()} outside "
                                f"the task's {len(names)} classes")


# --- CIFAR-100 ---

def fetch_cifar100(url: str, sha256: str, cache: Path | None = None) -> Path:
    """The CIFAR-100 python archive in the cache, downloaded and verified on first use."""
    dest = (cache or paths.cache_dir()) / CIFAR100_FILE
    return cached_download(url, dest, sha256, f"CIFAR-100 needs internet once (161 MB, kept in {dest.parent}), "
                           "or put a verified copy there; or set transfer.dataset: digits", CIFAR100_TIMEOUT)


def read_cifar100(archive: Path) -> tuple[ImageSet, ImageSet, tuple[str, ...]]:
    """Train (50000) and test (10000) images with the 100 fine labels, and the fine label names."""
    batches = _read_members(archive)
    try:
        names = tuple(name.decode() for name in batches["meta"][b"fine_label_names"])
    except (KeyError, TypeError, AttributeError, UnicodeDecodeError) as error:
        raise DataError(f"{archive}: meta holds no fine label names ({error!r})") from None
    train, test = (_cifar_images(batches[part], len(names), f"{archive}: {part}") for part in ("train", "test"))
    return train, test, names


def _read_members(archive: Path) -> dict[str, dict]:
    # The archive's checksum was verified when it was fetched, so unpickling its members runs
    # nobody else's code. Streaming mode ("r|gz") reads the 161 MB once, front to back, with
    # nothing extracted to disk.
    wanted = {f"cifar-100-python/{part}": part for part in CIFAR100_MEMBERS}
    found: dict[str, dict] = {}
    try:
        with tarfile.open(archive, "r|gz") as tar:
            for member in tar:
                if member.name in wanted and member.isfile():
                    found[wanted[member.name]] = pickle.load(tar.extractfile(member), encoding="bytes")
    except FileNotFoundError:
        raise DataError(f"{archive}: file not found") from None
    except Exception as error:  # a damaged archive fails in gzip, zlib, tarfile or pickle alike
        raise DataError(f"{archive}: corrupt or truncated ({type(error).__name__}: {error}); "
                        "delete it to download it again") from None
    missing = [f"cifar-100-python/{part}" for part in CIFAR100_MEMBERS if part not in found]
    if missing:
        raise DataError(f"{archive}: no member(s) {', '.join(missing)}; not the CIFAR-100 python archive")
    return found


def _cifar_images(batch: dict, num_classes: int, where: str) -> ImageSet:
    try:
        x, y = np.asarray(batch[b"data"]), np.asarray(batch[b"fine_labels"], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{where}: no b'data' and b'fine_labels' arrays ({error!r})") from None
    if x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or x.dtype != np.uint8 or y.shape != (len(x),):
        raise DataError(f"{where}: expected (N, 3072) uint8 data and N labels, got {x.shape} {x.dtype} "
                        f"and {y.shape}")
    if len(y) and not 0 <= y.min() <= y.max() < num_classes:
        raise DataError(f"{where}: labels {y.min()}..{y.max()} outside the {num_classes} fine classes")
    # Each row is the red 32x32 plane, then green, then blue (row-major): channels go last for Keras.
    images = x.reshape(len(x), 3, 32, 32).transpose(0, 2, 3, 1)
    return ImageSet(np.ascontiguousarray(images), y)


# --- choosing classes and examples ---

def select_classes(images: ImageSet, classes: Sequence[int]) -> ImageSet:
    """The examples of `classes` only, relabelled 0..len(classes)-1 in the order given."""
    wanted = np.asarray(classes, dtype=np.int64).reshape(-1)
    if len(np.unique(wanted)) != len(wanted):
        raise DataError(f"classes {list(classes)} list a class twice")
    keep = np.isin(images.y, wanted)
    order = np.argsort(wanted)  # searchsorted needs sorted classes; order maps back to positions in `classes`
    return ImageSet(images.x[keep], order[np.searchsorted(wanted, images.y[keep], sorter=order)])


def labelled_subset(images: ImageSet, per_class: int, seed: int) -> ImageSet:
    """At most `per_class` examples of each class, drawn at random (seeded), in their original order."""
    if per_class < 1:
        raise DataError(f"per_class must be at least 1, got {per_class}")
    shuffled = np.random.default_rng(seed).permutation(len(images.y))
    labels = images.y[shuffled]
    keep = np.concatenate([shuffled[labels == c][:per_class] for c in np.unique(labels)] +
                          [np.empty(0, dtype=np.int64)])  # the empty array: np.concatenate refuses []
    keep.sort()  # original order, so the result depends on the draw only, not on the class loop
    return ImageSet(images.x[keep], images.y[keep])


def _require_classes(images: ImageSet, num_classes: int, where: str) -> None:
    # A class with no example would train or score as if it did not exist: refuse it up front.
    absent = sorted(set(range(num_classes)) - set(np.unique(images.y).tolist()))
    if absent:
        raise DataError(f"{where} has no example of task class(es) {absent}")


def _check_exist(classes: Sequence[int], num_classes: int, dataset: str) -> None:
    unknown = [c for c in classes if not 0 <= c < num_classes]
    if unknown:
        raise DataError(f"class(es) {unknown} do not exist: {dataset} has classes 0..{num_classes - 1}")


# --- tasks ---

def digits_task(prepared: PreparedData, source_classes: Sequence[int],
                target_classes: Sequence[int]) -> TransferData:
    """The offline task: the study's prepared digits as (N, H, W, 1) images, split by class."""
    _check_exist([*source_classes, *target_classes], prepared.num_classes, "the prepared data")
    if len(target_classes) == 0:
        raise DataError("the target task needs at least one class")
    height, width = prepared.image_shape
    images = {}
    for name in SPLITS:
        split = getattr(prepared, name)
        # prepare scaled by the train split's range, so val/test may leave [0, 1] a little: clip.
        pixels = np.clip(np.rint(split.x * 255), 0, 255).astype(np.uint8)
        images[name] = ImageSet(pixels.reshape(len(pixels), height, width, 1), split.labels)

    def task(classes: Sequence[int], splits: tuple[str, ...]) -> list[ImageSet]:
        chosen = [select_classes(images[name], classes) for name in splits]
        for name, subset in zip(splits, chosen):
            _require_classes(subset, len(classes), f"the {name} split of classes {list(classes)}")
        return chosen

    source = task(source_classes, ("train", "val")) if len(source_classes) else [None, None]
    return TransferData(*source, *task(target_classes, SPLITS),
                        tuple(str(c) for c in source_classes), tuple(str(c) for c in target_classes))


def cifar100_task(train: ImageSet, test: ImageSet, names: tuple[str, ...], source_classes: Sequence[int],
                  target_classes: Sequence[int], val_fraction: float, seed: int) -> TransferData:
    """Source and target tasks from CIFAR-100: train/val split stratified from train, test from test."""
    _check_exist([*source_classes, *target_classes], len(names), "CIFAR-100")
    if len(target_classes) == 0:
        raise DataError("the target task needs at least one class")

    def train_val(classes: Sequence[int]) -> list[ImageSet]:
        subset = select_classes(train, classes)
        _require_classes(subset, len(classes), f"the CIFAR-100 train set for classes {list(classes)}")
        x_train, x_val, y_train, y_val = _stratified_split(subset.x, subset.y, val_fraction, seed)
        return [ImageSet(x_train, y_train), ImageSet(x_val, y_val)]

    target_test = select_classes(test, target_classes)
    _require_classes(target_test, len(target_classes), f"the CIFAR-100 test set for classes {list(target_classes)}")
    source = train_val(source_classes) if len(source_classes) else [None, None]
    return TransferData(*source, *train_val(target_classes), target_test,
                        tuple(names[c] for c in source_classes), tuple(names[c] for c in target_classes))


# --- save and load ---

def save_task(data: TransferData, folder: Path) -> None:
    """One .npz per split and classes.json with the class names."""
    for name in TASK_SPLITS:
        images: ImageSet | None = getattr(data, name)
        if images is None:
            (folder / f"{name}.npz").unlink(missing_ok=True)  # a stale source must not outlive its task
        else:
            write_npz(folder / f"{name}.npz", x=images.x, y=images.y)
    classes = {"source": list(data.source_names), "target": list(data.target_names)}
    write_text(folder / "classes.json", json.dumps(classes, indent=2) + "\n")


def load_task(folder: Path) -> TransferData:
    """What save_task wrote; the source task is None when classes.json lists no source classes."""
    names = _read_classes(folder / "classes.json")
    sets: dict[str, ImageSet | None] = {}
    for name in TASK_SPLITS:
        path = folder / f"{name}.npz"
        if name.startswith("source") and not names["source"]:
            sets[name] = None
            continue
        arrays = _read_npz(path, ("x", "y"), TASK_HINT)
        try:
            sets[name] = ImageSet(arrays["x"], arrays["y"])
        except DataError as error:
            raise DataError(f"{path}: {error}; {TASK_HINT}") from None
    try:
        return TransferData(**sets, source_names=names["source"], target_names=names["target"])
    except DataError as error:
        raise DataError(f"{folder}: {error}; {TASK_HINT}") from None


def _read_classes(path: Path) -> dict[str, tuple[str, ...]]:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        return {task: tuple(str(name) for name in content[task]) for task in ("source", "target")}
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; {TASK_HINT}") from None
    except (OSError, ValueError, KeyError, TypeError) as error:  # JSONDecodeError is a ValueError
        raise DataError(f"{path}: not a class-name file ({type(error).__name__}: {error}); {TASK_HINT}") from None


# --- for the networks and the metrics ---

def as_float(images: ImageSet) -> np.ndarray:
    """The networks' input: x as float32 in [0, 1]."""
    return images.x.astype(np.float32) / np.float32(255)


def task_summary(data: TransferData) -> dict:
    """Per-split sizes and per-class counts as plain ints, and the class names, ready for json.dumps."""
    def part(names: tuple[str, ...], prefix: str, splits: tuple[str, ...]) -> dict:
        counts = {split: np.bincount(getattr(data, f"{prefix}_{split}").y, minlength=len(names))
                  for split in splits}
        return {
            "classes": list(names),
            "splits": {split: {"size": int(n.sum()), "per_class": {name: int(c) for name, c in zip(names, n)}}
                       for split, n in counts.items()},
        }

    return {
        "image_shape": [int(n) for n in data.target_train.x.shape[1:]],
        "source": None if data.source_train is None else part(data.source_names, "source", ("train", "val")),
        "target": part(data.target_names, "target", SPLITS),
    }
