"""Tests of nnstudy.transfer.data: CIFAR-100 download and reading, class selection, tasks, save and load."""

import dataclasses
import hashlib
import io
import json
import pickle
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from nnstudy.core.data import PreparedData, Split
from nnstudy.core.errors import DataError
from nnstudy.transfer import data
from nnstudy.transfer.data import ImageSet, TransferData

NAMES = ("apple", "bear", "cloud", "dolphin", "forest", "girl")
HINT = r"run `dvc repro` \(the transfer_data stage writes it\)"


# --- helpers and fixtures ---

def write_cifar(path: Path, n_train: int = 120, n_test: int = 30, members: tuple[str, ...] = ("train", "test", "meta"),
                ) -> Path:
    """A tiny archive laid out like cifar-100-python.tar.gz: pickled dicts of bytes keys, rows channel-first."""
    rng = np.random.default_rng(0)

    def batch(n: int) -> dict:
        return {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                b"fine_labels": [i % len(NAMES) for i in range(n)], b"coarse_labels": [0] * n}

    train, test = batch(n_train), batch(n_test)
    # Image 0: red pixel (row r, column c) = (32 r + c) % 256, green all 7, blue all 9.
    train[b"data"][0] = np.concatenate([np.arange(1024) % 256, np.full(1024, 7), np.full(1024, 9)])
    meta = {b"fine_label_names": [name.encode() for name in NAMES], b"coarse_label_names": [b"things"]}
    with tarfile.open(path, "w:gz") as tar:
        for name, content in (("train", train), ("test", test), ("meta", meta)):
            if name in members:
                blob = pickle.dumps(content, protocol=2)  # the real archive's protocol
                info = tarfile.TarInfo(f"cifar-100-python/{name}")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def images(labels: list[int]) -> ImageSet:
    """One 2x2x1 image per label, its first pixel its index, so rows can be traced back."""
    x = np.zeros((len(labels), 2, 2, 1), dtype=np.uint8)
    x[:, 0, 0, 0] = np.arange(len(labels))
    return ImageSet(x, np.array(labels, dtype=np.int64))


@pytest.fixture(scope="module")
def cifar(tmp_path_factory) -> tuple[ImageSet, ImageSet, tuple[str, ...]]:
    return data.read_cifar100(write_cifar(tmp_path_factory.mktemp("cifar") / data.CIFAR100_FILE))


@pytest.fixture(scope="module")
def digit_task(digits: PreparedData) -> TransferData:
    return data.digits_task(digits, [0, 1, 2, 3, 4], [5, 6, 7, 8, 9])


def assert_same(a: ImageSet | None, b: ImageSet | None) -> None:
    assert (a is None) == (b is None)
    if a is not None:
        assert a.x.dtype == b.x.dtype and a.y.dtype == b.y.dtype
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)


# --- ImageSet ---

def test_image_set_checks_shapes_and_dtypes():
    with pytest.raises(DataError, match=r"images must be \(N, H, W, C\) uint8, got \(3, 2, 2\)"):
        ImageSet(np.zeros((3, 2, 2), np.uint8), np.zeros(3, np.int64))
    with pytest.raises(DataError, match=r"labels must be \(3,\) int64, got \(3,\) int32"):
        ImageSet(np.zeros((3, 2, 2, 1), np.uint8), np.zeros(3, np.int32))


# --- fetch_cifar100 and read_cifar100 ---

def test_fetch_and_read_cifar100(tmp_path):
    origin = write_cifar(tmp_path / "origin.tar.gz")
    cache = tmp_path / "cache"
    path = data.fetch_cifar100(origin.as_uri(), sha256(origin).upper(), cache)
    assert path == cache / "cifar-100-python.tar.gz"
    assert path.read_bytes() == origin.read_bytes()
    assert list(cache.iterdir()) == [path]  # no temp file left beside it

    train, test, names = data.read_cifar100(path)
    assert names == NAMES
    assert train.x.shape == (120, 32, 32, 3) and train.x.dtype == np.uint8 and train.x.flags.c_contiguous
    assert test.x.shape == (30, 32, 32, 3) and test.y.dtype == np.int64
    assert train.y[:7].tolist() == [0, 1, 2, 3, 4, 5, 0]
    # Channels last: red is channel 0 and row-major, so pixel (1, 2) holds 32 + 2.
    assert train.x[0, 1, 2].tolist() == [34, 7, 9]
    np.testing.assert_array_equal(train.x[0, :, :, 0], np.arange(1024).reshape(32, 32) % 256)


def test_fetch_cifar100_reuses_a_verified_copy_and_replaces_a_bad_one(tmp_path):
    origin = write_cifar(tmp_path / "origin.tar.gz")
    digest, content = sha256(origin), origin.read_bytes()
    path = data.fetch_cifar100(origin.as_uri(), digest, tmp_path)
    origin.unlink()
    assert data.fetch_cifar100(origin.as_uri(), digest, tmp_path) == path  # no download: the source is gone
    path.write_bytes(b"damaged")
    with pytest.raises(DataError, match="origin.tar.gz failed"):  # a bad copy is not trusted: it downloads again
        data.fetch_cifar100(origin.as_uri(), digest, tmp_path)
    origin.write_bytes(content)
    data.fetch_cifar100(origin.as_uri(), digest, tmp_path)
    assert path.read_bytes() == content


def test_fetch_cifar100_default_cache_is_the_study_cache(tmp_path, monkeypatch):
    origin = write_cifar(tmp_path / "origin.tar.gz")
    monkeypatch.setenv("NNSTUDY_CACHE", str(tmp_path / "study-cache"))
    assert data.fetch_cifar100(origin.as_uri(), sha256(origin)) == tmp_path / "study-cache" / data.CIFAR100_FILE


def test_fetch_cifar100_wrong_checksum_leaves_nothing(tmp_path):
    origin = write_cifar(tmp_path / "origin.tar.gz")
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=rf"failed its checksum: expected sha256 {'ab' * 32}, got {sha256(origin)}.*"
                                        "set transfer.dataset: digits"):
        data.fetch_cifar100(origin.as_uri(), "ab" * 32, cache)
    assert list(cache.iterdir()) == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/cifar-100-python.tar.gz", "file:///nonexistent/cifar.tar.gz"])
def test_fetch_cifar100_unreachable_fails_fast(tmp_path, url):
    start = time.monotonic()
    with pytest.raises(DataError, match=rf"download of {url} failed.*CIFAR-100 needs internet once \(161 MB"
                                        r".*or set transfer\.dataset: digits"):
        data.fetch_cifar100(url, "0" * 64, tmp_path / "cache")
    assert time.monotonic() - start < 5
    assert list((tmp_path / "cache").iterdir()) == []


def test_read_cifar100_truncated_archive(tmp_path):
    whole = write_cifar(tmp_path / "whole.tar.gz")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    path = data.fetch_cifar100(cut.as_uri(), sha256(cut), tmp_path / "cache")  # the checksum given matches
    with pytest.raises(DataError, match=r"cache/cifar-100-python\.tar\.gz: corrupt or truncated"):
        data.read_cifar100(path)


def test_read_cifar100_not_gzip_or_missing(tmp_path):
    plain = tmp_path / "plain.tar.gz"
    plain.write_bytes(b"not an archive at all")
    with pytest.raises(DataError, match=r"plain\.tar\.gz: corrupt or truncated"):
        data.read_cifar100(plain)
    with pytest.raises(DataError, match=r"absent\.tar\.gz: file not found"):
        data.read_cifar100(tmp_path / "absent.tar.gz")


def test_read_cifar100_missing_member(tmp_path):
    path = write_cifar(tmp_path / "nometa.tar.gz", members=("train", "test"))
    with pytest.raises(DataError, match=r"nometa\.tar\.gz: no member\(s\) cifar-100-python/meta"):
        data.read_cifar100(path)


def test_read_cifar100_wrong_row_length(tmp_path):
    path = tmp_path / "odd.tar.gz"
    blob = pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"fine_labels": [0, 1]})
    meta = pickle.dumps({b"fine_label_names": [b"a", b"b"]})
    with tarfile.open(path, "w:gz") as tar:
        for name, content in (("train", blob), ("test", blob), ("meta", meta)):
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    with pytest.raises(DataError, match=r"odd\.tar\.gz: train: expected \(N, 3072\) uint8 data"):
        data.read_cifar100(path)


# --- select_classes and labelled_subset ---

def test_select_classes_relabels_in_the_order_given():
    chosen = data.select_classes(images([0, 1, 2, 3, 1, 3, 0]), [3, 1])
    assert chosen.y.tolist() == [1, 0, 1, 0]  # class 3 becomes 0, class 1 becomes 1
    assert chosen.x[:, 0, 0, 0].tolist() == [1, 3, 4, 5]  # original rows, original order
    assert data.select_classes(images([0, 1]), []).x.shape == (0, 2, 2, 1)
    with pytest.raises(DataError, match=r"classes \[1, 1\] list a class twice"):
        data.select_classes(images([0, 1]), [1, 1])


def test_labelled_subset_counts_order_and_determinism():
    full = images([0] * 10 + [1] * 3 + [2] * 6)
    subset = data.labelled_subset(full, per_class=4, seed=0)
    assert np.bincount(subset.y).tolist() == [4, 3, 4]  # class 1 has only 3: it keeps them all
    index = subset.x[:, 0, 0, 0]
    assert index.tolist() == sorted(index.tolist())
    np.testing.assert_array_equal(full.y[index], subset.y)
    assert set(index.tolist()) >= {10, 11, 12}
    again = data.labelled_subset(full, per_class=4, seed=0)
    np.testing.assert_array_equal(again.x, subset.x)
    other = data.labelled_subset(full, per_class=4, seed=1)
    assert other.x[:, 0, 0, 0].tolist() != index.tolist()
    with pytest.raises(DataError, match="per_class must be at least 1, got 0"):
        data.labelled_subset(full, per_class=0, seed=0)


# --- digits_task ---

def test_digits_task_shapes_labels_and_pixels(digits, digit_task):
    task = digit_task
    assert task.source_names == ("0", "1", "2", "3", "4") and task.target_names == ("5", "6", "7", "8", "9")
    for name, split in (("source_train", "train"), ("source_val", "val"), ("target_train", "train"),
                        ("target_val", "val"), ("target_test", "test")):
        got: ImageSet = getattr(task, name)
        labels = getattr(digits, split).labels
        wanted = labels < 5 if name.startswith("source") else labels >= 5
        assert got.x.shape == (int(wanted.sum()), 8, 8, 1) and got.x.dtype == np.uint8
        np.testing.assert_array_equal(got.y, labels[wanted] - (0 if name.startswith("source") else 5))
    # The pixels are the prepared rows, rounded to 1/255.
    rows = digits.train.x[digits.train.labels >= 5]
    np.testing.assert_allclose(data.as_float(task.target_train).reshape(len(rows), 64), rows, atol=0.5 / 255 + 1e-6)
    assert task.target_train.x.max() == 255 and task.target_train.x.min() == 0


def test_digits_task_without_source_and_reordered_target(digits):
    task = data.digits_task(digits, [], [7, 2])
    assert task.source_train is None and task.source_val is None and task.source_names == ()
    assert task.target_names == ("7", "2")
    assert np.bincount(task.target_test.y).tolist() == [(digits.test.labels == c).sum() for c in (7, 2)]


def test_digits_task_refuses_absent_classes(digits):
    with pytest.raises(DataError, match=r"class\(es\) \[10\] do not exist: the prepared data has classes 0\.\.9"):
        data.digits_task(digits, [0], [10])
    with pytest.raises(DataError, match="the target task needs at least one class"):
        data.digits_task(digits, [0], [])
    keep = digits.val.labels != 3
    no_threes = dataclasses.replace(digits, val=Split(digits.val.x[keep], digits.val.y[keep]))
    with pytest.raises(DataError, match=r"the val split of classes \[1, 3\] has no example of task class\(es\) \[1\]"):
        data.digits_task(no_threes, [1, 3], [5])


# --- cifar100_task ---

def test_cifar100_task_stratified_split(cifar):
    train, test, names = cifar
    task = data.cifar100_task(train, test, names, [0, 1, 2], [5, 3], val_fraction=0.25, seed=0)
    assert task.source_names == ("apple", "bear", "cloud") and task.target_names == ("girl", "dolphin")
    # 20 training images per class: a quarter of each class goes to val.
    assert np.bincount(task.source_train.y).tolist() == [15] * 3
    assert np.bincount(task.source_val.y).tolist() == [5] * 3
    assert np.bincount(task.target_val.y).tolist() == [5] * 2
    assert np.bincount(task.target_test.y).tolist() == [5] * 2
    # Relabelled consistently: target label 0 (girl, class 5) holds the class-5 images of the test set.
    np.testing.assert_array_equal(task.target_test.x[task.target_test.y == 0], test.x[test.y == 5])
    # Train and val are disjoint and together are all of the class's training images.
    seen = {img.tobytes() for img in np.concatenate([task.target_train.x, task.target_val.x])}
    assert len(seen) == 40 and seen == {img.tobytes() for img in train.x[np.isin(train.y, [3, 5])]}
    same = data.cifar100_task(train, test, names, [0, 1, 2], [5, 3], val_fraction=0.25, seed=0)
    np.testing.assert_array_equal(same.target_val.x, task.target_val.x)


def test_cifar100_task_without_source_and_bad_classes(cifar):
    train, test, names = cifar
    task = data.cifar100_task(train, test, names, [], [0, 1], val_fraction=0.2, seed=0)
    assert task.source_train is None and task.source_names == ()
    with pytest.raises(DataError, match=r"class\(es\) \[6\] do not exist: CIFAR-100 has classes 0\.\.5"):
        data.cifar100_task(train, test, names, [6], [0], val_fraction=0.2, seed=0)
    few = ImageSet(train.x[:6], train.y[:6])  # one image per class: too few to stratify
    with pytest.raises(DataError, match="cannot split 2 examples"):
        data.cifar100_task(few, test, names, [], [0, 1], val_fraction=0.2, seed=0)


# --- save_task and load_task ---

def test_save_and_load_round_trip(tmp_path, digit_task):
    data.save_task(digit_task, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*(f"{n}.npz" for n in data.TASK_SPLITS),
                                                                   "classes.json"])
    loaded = data.load_task(tmp_path)
    for name in data.TASK_SPLITS:
        assert_same(getattr(loaded, name), getattr(digit_task, name))
    assert loaded.source_names == digit_task.source_names and loaded.target_names == digit_task.target_names


def test_save_without_source_removes_a_stale_one(tmp_path, digit_task):
    data.save_task(digit_task, tmp_path)
    no_source = dataclasses.replace(digit_task, source_train=None, source_val=None, source_names=())
    data.save_task(no_source, tmp_path)
    assert not (tmp_path / "source_train.npz").exists() and not (tmp_path / "source_val.npz").exists()
    loaded = data.load_task(tmp_path)
    assert loaded.source_train is None and loaded.source_val is None and loaded.source_names == ()
    assert_same(loaded.target_test, digit_task.target_test)


@pytest.mark.parametrize("name", ["target_val.npz", "source_train.npz", "classes.json"])
def test_load_task_missing_file(tmp_path, digit_task, name):
    data.save_task(digit_task, tmp_path)
    (tmp_path / name).unlink()
    with pytest.raises(DataError, match=rf"{name}: file not found; {HINT}"):
        data.load_task(tmp_path)


def test_load_task_damaged_files(tmp_path, digit_task):
    data.save_task(digit_task, tmp_path)
    (tmp_path / "target_train.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match=rf"target_train\.npz: not an \.npz file \(it does not start like a zip "
                                        rf"archive\); {HINT}"):
        data.load_task(tmp_path)
    data.save_task(digit_task, tmp_path)
    (tmp_path / "classes.json").write_text('{"target": ["5"]}')
    with pytest.raises(DataError, match=rf"classes\.json: not a class-name file \(KeyError.*{HINT}"):
        data.load_task(tmp_path)
    (tmp_path / "classes.json").write_text('{"source": ["0"], "target": ["5"]}')  # fewer names than labels
    with pytest.raises(DataError, match=rf"source_train: labels 0\.\.4 outside the task's 1 classes; {HINT}"):
        data.load_task(tmp_path)


# --- as_float and task_summary ---

def test_as_float():
    x = np.array([0, 51, 255], dtype=np.uint8).reshape(3, 1, 1, 1)
    got = data.as_float(ImageSet(x, np.zeros(3, np.int64)))
    assert got.dtype == np.float32 and got.shape == (3, 1, 1, 1)
    np.testing.assert_allclose(got.reshape(-1), [0.0, 0.2, 1.0])


def test_task_summary(digits, digit_task):
    summary = json.loads(json.dumps(data.task_summary(digit_task)))  # plain ints and strings only
    assert summary["image_shape"] == [8, 8, 1]
    assert summary["target"]["classes"] == ["5", "6", "7", "8", "9"]
    test = summary["target"]["splits"]["test"]
    assert test["size"] == len(digit_task.target_test.y)
    assert test["per_class"]["7"] == int((digits.test.labels == 7).sum())
    assert sum(summary["source"]["splits"]["train"]["per_class"].values()) == len(digit_task.source_train.y)
    assert set(summary["source"]["splits"]) == {"train", "val"}
    no_source = data.digits_task(digits, [], [1])
    assert data.task_summary(no_source)["source"] is None
