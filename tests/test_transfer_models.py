"""Tests of nnstudy.transfer.models and nnstudy.transfer.zoo: the bases, the classifier, freezing by
share, BatchNorm in inference mode, the input scaling, the ImageNet weights download, the zoo table."""

import hashlib
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest

from nnstudy.core.errors import DataError
from nnstudy.transfer import models, zoo
from nnstudy.transfer.data import digits_task
from nnstudy.transfer.evaluate import target_task
from nnstudy.transfer.models import (
    CNN_FEATURES, ImageScaling, application, base_of, build_network, cnn, compile_network, freeze,
    imagenet_weights, unfreeze_all, unfreeze_top, weighted_layers,
)
from nnstudy.transfer.params import APPLICATIONS, CNNS, ZooParams

ROOT = Path(__file__).resolve().parents[1]

# Each application's parameter count as Keras publishes it (keras.io/api/applications, with the
# 1000-class ImageNet top) and the width of its pooled features: without the top, a base has
# the published count less the top's dense layer (features x 1000 + 1000 biases).
PUBLISHED = {
    "vgg16": (138_357_544, 512), "xception": (22_910_480, 2048), "efficientnetb7": (66_658_687, 2560),
    "resnet50": (25_636_712, 2048), "resnet152v2": (60_380_648, 2048), "densenet121": (8_062_504, 1024),
    "densenet169": (14_307_880, 1664), "densenet201": (20_242_984, 1920), "mobilenetv2": (3_538_984, 1280),
    "inceptionv3": (23_851_784, 2048),
}
# VGG16's published top is three dense layers (4096, 4096, 1000) on the flattened 7x7x512 map.
VGG16_TOP = 7 * 7 * 512 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000

# Building all ten applications costs ~24 s on JAX with a warm compilation cache, and more than
# a minute with a cold one (its initialisers compile per variable shape); on TensorFlow ~20 s
# every time. So one TensorFlow subprocess builds them all and reports what it built: the code
# under test is the same, and the pytest process's JAX session stays small.
BUILD_ALL = """
import json
from nnstudy.core import backend
backend.activate("tensorflow")
import keras
from nnstudy.transfer.models import application
from nnstudy.transfer.params import APPLICATIONS, MIN_INPUT_SIZE
built = {}
for name in APPLICATIONS:
    base = application(name, MIN_INPUT_SIZE[name])
    built[name] = {"parameters": base.count_params(), "output_shape": list(base.output_shape), "name": base.name}
    del base
    keras.backend.clear_session()
print("BUILT " + json.dumps(built))
"""


def recipe(study, **changes):
    return replace(study.transfer.base, **changes)


def values(variables) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v).copy() for v in variables]


def random_images(n: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# --- the applications ---

@pytest.fixture(scope="module")
def built_on_tensorflow() -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", BUILD_ALL], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("BUILT "))
    return json.loads(line.removeprefix("BUILT "))


@pytest.mark.parametrize("name", APPLICATIONS)
def test_application_is_the_pooled_keras_base(built_on_tensorflow, name):
    published, features = PUBLISHED[name]
    top = VGG16_TOP if name == "vgg16" else features * 1000 + 1000
    built = built_on_tensorflow[name]
    assert built["output_shape"] == [None, features]  # a vector: global average pooled
    assert built["parameters"] == published - top
    assert built["name"] == models.BASE_NAME


def test_classifier_on_small_gray_images(study):
    # 8x8 gray digits into VGG16 (minimum 32): resized, repeated to RGB, scaled as its weights expect.
    network = build_network(recipe(study, model="vgg16", input_size=32, weights="none", augment=False),
                            (8, 8, 1), num_classes=5)
    assert network.get_layer("resize").output.shape == (None, 32, 32, 1)
    scale = network.get_layer("scale")
    assert (scale.mode, scale.to_rgb) == ("caffe", True) and scale.output.shape == (None, 32, 32, 3)
    probabilities = network.predict(random_images(3, (8, 8, 1)), verbose=0)
    assert probabilities.shape == (3, 5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_efficientnet_from_a_file_computes_what_keras_imagenet_graph_does():
    # Keras' weights="imagenet" graph: Rescaling(1/255) -> Normalization -> Rescaling(1/sqrt(stddev)).
    # From a file it lacks the last layer; the fold into the variance must give the same output.
    mean, variance = np.array([0.5, 0.4, 0.3]), np.array([0.05, 0.06, 0.07])
    stddev = np.asarray(models.EFFICIENTNET_STDDEV_RGB)

    def stem(extra: bool) -> keras.Model:
        inputs = keras.Input((4, 4, 3))
        normalization = keras.layers.Normalization(axis=-1)
        x = normalization(keras.layers.Rescaling(1 / 255)(inputs))
        normalization.set_weights([mean, variance, np.array(0)])
        normalization.finalize_state()  # as loading the weights file does
        if extra:
            x = keras.layers.Rescaling(list(1 / np.sqrt(stddev)))(x)
        return keras.Model(inputs, x)

    def output(network: keras.Model) -> np.ndarray:
        # Called directly, not with predict(): predict's compiled function keeps the variance it first saw.
        return keras.ops.convert_to_numpy(network(images))

    keras_graph, from_file = stem(extra=True), stem(extra=False)
    images = random_images(2, (4, 4, 3)) * 255
    before = output(from_file)
    models.fold_efficientnet_rescaling(from_file)
    expected = output(keras_graph)
    np.testing.assert_allclose(output(from_file), expected, rtol=1e-5)
    assert not np.allclose(before, expected, rtol=1e-2)  # the fold mattered


# --- the study's CNNs ---

@pytest.mark.parametrize("name", CNNS)
def test_cnn_ends_in_a_vector_and_its_weights_fit_any_size(tmp_path, name):
    for size in (8, 28):
        assert cnn(name, size, 1).output.shape == (None, CNN_FEATURES[name])
    small, large = cnn(name, 28, 1), cnn(name, 40, 1)
    small.save_weights(tmp_path / "base.weights.h5")
    large.load_weights(tmp_path / "base.weights.h5")  # global average pooling: no weight depends on the size
    for a, b in zip(values(small.weights), values(large.weights), strict=True):
        np.testing.assert_array_equal(a, b)


# --- freezing by share ---

def paths_of(variables) -> list[str]:
    return sorted(v.path for v in variables)


@pytest.mark.parametrize("share", [0.0, 0.25, 0.5, 1.0])
def test_unfreeze_top_share_of_weighted_layers(study, share):
    network = build_network(recipe(study, model="cnn_large", input_size=8), (8, 8, 1), num_classes=5)
    base = base_of(network)
    head = paths_of(network.get_layer("head").weights)
    freeze(network)
    assert paths_of(network.trainable_variables) == head == ["head/bias", "head/kernel"]

    candidates = weighted_layers(base)
    assert len(candidates) == 7  # six convolutions and the feature layer; BatchNorm is no candidate
    count = math.ceil(round(share * len(candidates), 9))
    assert unfreeze_top(network, share) == count
    top = candidates[len(candidates) - count:]
    expected = sorted(head + [v.path for layer in top for v in layer.weights])
    assert paths_of(network.trainable_variables) == expected
    batch_norms = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(batch_norms) == 6 and not any(layer.trainable_variables for layer in batch_norms)


# --- BatchNorm in inference mode ---

def train_steps(study, weights: str) -> tuple[dict, list[np.ndarray], keras.Model]:
    """cnn_medium whole-network trainable for a few steps: its BatchNorm statistics before, and a top kernel before."""
    keras.utils.set_random_seed(1)
    network = build_network(recipe(study, model="cnn_medium", input_size=8, weights=weights), (8, 8, 1), 3)
    if weights == "none":
        unfreeze_all(network)
    else:
        unfreeze_top(network, 1.0)
    compile_network(network, "adam", 1e-2)
    base = base_of(network)
    statistics = {layer.name: values([layer.moving_mean, layer.moving_variance]) for layer in base.layers
                  if isinstance(layer, keras.layers.BatchNormalization)}
    kernel = values([base.get_layer("block2_conv2").kernel])
    x, y = random_images(16, (8, 8, 1), seed=2), np.arange(16) % 3
    for _ in range(3):
        network.train_on_batch(x, y)
    return statistics, kernel, network


def bn_changed(network: keras.Model, statistics: dict) -> list[str]:
    base = base_of(network)
    return [name for name, before in statistics.items()
            if not all(np.array_equal(a, b) for a, b in zip(before, values(
                [base.get_layer(name).moving_mean, base.get_layer(name).moving_variance])))]


def test_pretrained_base_keeps_its_batchnorm_statistics_while_fine_tuning(study):
    statistics, kernel, network = train_steps(study, "source")
    assert len(statistics) == 4 and bn_changed(network, statistics) == []
    assert not np.array_equal(kernel[0], values([base_of(network).get_layer("block2_conv2").kernel])[0])


def test_base_from_scratch_learns_its_batchnorm_statistics(study):
    statistics, _, network = train_steps(study, "none")
    assert sorted(bn_changed(network, statistics)) == sorted(statistics)


# --- input scaling ---

KERAS_PREPROCESS = {
    "vgg16": keras.applications.vgg16, "resnet50": keras.applications.resnet50,
    "xception": keras.applications.xception, "mobilenetv2": keras.applications.mobilenet_v2,
    "inceptionv3": keras.applications.inception_v3, "resnet152v2": keras.applications.resnet_v2,
    "densenet121": keras.applications.densenet, "densenet169": keras.applications.densenet,
    "densenet201": keras.applications.densenet, "efficientnetb7": keras.applications.efficientnet,
}


@pytest.mark.parametrize("name", APPLICATIONS)
def test_image_scaling_matches_keras_preprocess_input(name):
    images = np.random.default_rng(3).integers(0, 256, (2, 5, 5, 3)).astype(np.float32)
    # preprocess_input works in place on float32 arrays: give it a copy.
    expected = KERAS_PREPROCESS[name].preprocess_input(images.copy())
    scaled = ImageScaling(models.PREPROCESSING[name])(images / 255)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(scaled), expected, rtol=1e-5, atol=1e-4)


def test_image_scaling_repeats_gray_and_survives_save_and_load(tmp_path):
    gray = random_images(2, (4, 4, 1))
    rgb = keras.ops.convert_to_numpy(ImageScaling("tf", to_rgb=True)(gray))
    assert rgb.shape == (2, 4, 4, 3)
    for channel in range(3):
        np.testing.assert_allclose(rgb[..., channel], gray[..., 0] * 2 - 1, rtol=1e-6)

    inputs = keras.Input((4, 4, 1))
    x = ImageScaling("caffe", to_rgb=True, name="scale")(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    network = keras.Model(inputs, outputs)
    network.save(tmp_path / "scaled.keras")
    loaded = keras.saving.load_model(tmp_path / "scaled.keras")  # no custom_objects: it is registered
    scale = loaded.get_layer("scale")
    assert isinstance(scale, ImageScaling) and (scale.mode, scale.to_rgb) == ("caffe", True)
    np.testing.assert_allclose(loaded.predict(gray, verbose=0), network.predict(gray, verbose=0), rtol=1e-5)


# --- ImageNet weights ---

@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    """A stand-in for VGG16's ImageNet file: a random base's weights, saved as Keras 3 does.

    VGG16 because its few layer shapes compile fast on JAX (and the classifier test compiled them
    already); MobileNetV2's many cost ~10 s more with a cold compilation cache.
    """
    source = application("vgg16", 32)
    path = tmp_path_factory.mktemp("origin") / "vgg16_notop.weights.h5"
    source.save_weights(path)
    return path, values(source.weights)


def test_imagenet_weights_download_verify_cache_and_load(tmp_path, weights_file):
    origin, expected = weights_file
    table = {"vgg16": (origin.as_uri(), md5(origin))}
    path = imagenet_weights("vgg16", 32, table=table, cache=tmp_path)
    assert path == tmp_path / "weights" / origin.name
    assert path.read_bytes() == origin.read_bytes()
    assert sorted(p.name for p in path.parent.iterdir()) == [origin.name]  # no partial file beside it
    # Cached: found again without the origin.
    missing = {"vgg16": ((origin.parent / "gone" / origin.name).as_uri(), md5(origin))}
    assert imagenet_weights("vgg16", 32, table=missing, cache=tmp_path) == path

    loaded = application("vgg16", 32, weights=path)
    assert len(loaded.weights) == len(expected)
    for a, b in zip(values(loaded.weights), expected, strict=True):
        np.testing.assert_array_equal(a, b)


def test_imagenet_weights_refuse_a_wrong_checksum(tmp_path, weights_file):
    origin, _ = weights_file
    with pytest.raises(DataError, match="failed its checksum"):
        imagenet_weights("vgg16", 32, table={"vgg16": (origin.as_uri(), "0" * 32)}, cache=tmp_path)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_imagenet_weights_offline_says_what_to_do(tmp_path):
    unreachable = {"vgg16": ("http://127.0.0.1:9/vgg16_notop.h5", "0" * 32)}  # the discard port: refused
    with pytest.raises(DataError, match=r"need internet once; offline, use `transfer.weights: none`"):
        imagenet_weights("vgg16", 32, table=unreachable, cache=tmp_path)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_mobilenet_weights_by_input_size_without_a_checksum(tmp_path):
    origin = tmp_path / "origin"
    origin.mkdir()
    for rows in (96, 224):
        (origin / f"mobilenet_{rows}_no_top.h5").write_bytes(f"weights for {rows}".encode())
    table = {"mobilenetv2": (origin.as_uri() + "/mobilenet_{rows}_no_top.h5", None)}
    cache = tmp_path / "cache"
    assert imagenet_weights("mobilenetv2", 96, table, cache).read_bytes() == b"weights for 96"
    assert imagenet_weights("mobilenetv2", 32, table, cache).name == "mobilenet_224_no_top.h5"  # no 32: 224's


# --- the zoo table ---

@pytest.fixture(scope="module")
def target(digits, study):
    task, test, _ = target_task(digits_task(digits, [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]), study.transfer.base, 1)
    return task, test


def test_zoo_input_size_and_which_models_it_trains(study):
    small = ZooParams(models=("cnn_small",), input_size=32, batch_size=8, steps=2, train="all", epochs=1)
    assert [zoo.input_size(m, small) for m in ("cnn_small", "vgg16", "xception", "inceptionv3")] == [32, 32, 71, 75]
    assert zoo.input_size("xception", replace(small, input_size=96)) == 96
    imagenet, source = recipe(study, weights="imagenet"), recipe(study, weights="source")
    assert zoo.trained_weights("cnn_medium", source, small)[0] == "none"
    assert zoo.trained_weights("vgg16", imagenet, small)[0] == "imagenet"
    weights, note = zoo.trained_weights("vgg16", source, small)
    assert weights is None and "ImageNet" in note
    assert zoo.trained_weights("cnn_small", source, replace(small, epochs=0)) == (None, "zoo.epochs is 0: timing only")


def test_target_task_takes_the_recipes_classes_and_labels(study, digits):
    data = digits_task(digits, [0, 1, 2, 3, 4], [5, 6, 7, 8, 9])
    task, test, names = target_task(data, recipe(study, classes=3, labels=4), 1, val_per_class=6)
    assert names == ("5", "6", "7") and np.bincount(task.y_val).tolist() == [6, 6, 6]
    assert task.num_classes == 3 and np.bincount(task.y_train).tolist() == [4, 4, 4]
    assert set(task.y_val) == set(test.y) == {0, 1, 2}
    assert task.x_train.dtype == np.float32 and task.image_shape == (8, 8, 1)


def test_memory_probe_sees_a_short_peak():
    probe = zoo.MemoryProbe()
    with probe.sampling():
        block = np.full(16 * zoo.MB // 4, 2.0, dtype=np.float32)  # 16 MiB, written so resident, for ~50 ms
        time.sleep(0.05)
        del block
    assert probe.source == "process RSS"
    assert 14 < probe.peak_mb() < 200


def test_zoo_row_of_a_cnn(study, target):
    task, test = target
    settings = ZooParams(models=("cnn_small",), input_size=8, batch_size=8, steps=2, train="all", epochs=0)
    row = zoo.zoo_row("cnn_small", settings, study.transfer.base, task, test, seed=1)
    assert list(row) == list(zoo.COLUMNS)
    assert (row["model"], row["kind"], row["input_size"], row["batch_size"]) == ("cnn_small", "cnn", 8, 8)
    assert row["parameters"] == row["trainable_parameters"] == build_network(
        recipe(study, model="cnn_small", input_size=8), task.image_shape, task.num_classes).count_params()
    for column in ("size_mb", "build_seconds", "first_step_seconds", "step_seconds", "epoch_seconds",
                   "peak_memory_mb"):
        assert row[column] > 0, column
    assert row["train_size"] == len(task.x_train) == 50  # 10 labels for each of 5 classes
    assert row["epoch_seconds"] == pytest.approx(row["step_seconds"] * math.ceil(50 / 8))
    assert row["memory_source"] == "process RSS"  # the tests run on CPU
    assert row["accuracy"] is None and "epochs is 0" in row["note"]

    trained = zoo.zoo_row("cnn_small", replace(settings, epochs=1), study.transfer.base, task, test, seed=1)
    assert 0.0 <= trained["accuracy"] <= 1.0 and trained["note"] == "from scratch, 1 epoch(s)"


def test_progress_counts_both_phases_of_a_two_phase_recipe(study):
    from nnstudy.transfer.training import most_epochs

    base = recipe(study, epochs=50)
    assert most_epochs(base) == 100                          # head, then the unfrozen top: 50 each at most
    assert most_epochs(replace(base, unfreeze=0.0)) == 50    # the frozen arm: the head only
    assert most_epochs(replace(base, weights="none")) == 50  # from scratch: one phase
