"""The transfer study's networks: a base (one of three CNNs, or a Keras application) under a
dropout + softmax head, and the Keras guide's fine-tuning recipe for it.

    inputs -> [resize] -> [augment] -> [scale as the base's weights expect] -> base(training=False)
           -> dropout -> dense softmax

The base is always called with training=False, so its BatchNorm layers run in inference mode
in both phases ("Transfer learning & fine-tuning", keras.io): unfrozen BatchNorm statistics
computed on a few target batches would wreck what the base learned. They also stay frozen.
"""

import math
from pathlib import Path

import keras
import numpy as np
from keras import layers

from nnstudy.core import paths
from nnstudy.transfer.params import CNNS, Recipe

# Keras' constructor for each application (keras.applications.<name>).
CONSTRUCTORS = {
    "vgg16": "VGG16", "xception": "Xception", "efficientnetb7": "EfficientNetB7", "resnet50": "ResNet50",
    "resnet152v2": "ResNet152V2", "densenet121": "DenseNet121", "densenet169": "DenseNet169",
    "densenet201": "DenseNet201", "mobilenetv2": "MobileNetV2", "inceptionv3": "InceptionV3",
}
# How each application's ImageNet weights expect their input (keras.applications.*.preprocess_input):
# caffe: BGR, 0..255 minus the ImageNet mean; tf: -1..1; torch: 0..1 standardised per channel;
# raw255: 0..255 (EfficientNet scales inside the model).
PREPROCESSING = {
    "vgg16": "caffe", "resnet50": "caffe", "xception": "tf", "inceptionv3": "tf", "mobilenetv2": "tf",
    "resnet152v2": "tf", "densenet121": "torch", "densenet169": "torch", "densenet201": "torch",
    "efficientnetb7": "raw255",
}
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN, TORCH_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
EFFICIENTNET_STDDEV_RGB = (0.229, 0.224, 0.225)  # keras.applications.efficientnet.IMAGENET_STDDEV_RGB

# The no-top ImageNet weights Keras 3.15 loads for `weights="imagenet"`, with the checksum Keras
# publishes (MD5). We download them ourselves so that offline fails at once with a clear message
# and the path can be tested against a local file:// copy.
_KERAS = "https://storage.googleapis.com/tensorflow/keras-applications/"
IMAGENET_WEIGHTS = {
    "vgg16": (_KERAS + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "6d6bbae143d832006294945121d1f1fc"),
    "xception": (_KERAS + "xception/xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
                 "b0042744bf5b25fce3cb969f33bebb97"),
    "inceptionv3": (_KERAS + "inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
                    "bcbd6486424b2319ff4ef7d526e38f63"),
    "resnet50": (_KERAS + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                 "4d473c1dd8becc155b73f8504c6f6626"),
    "resnet152v2": (_KERAS + "resnet/resnet152v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
                    "ed17cf2e0169df9d443503ef94b23b33"),
    "densenet121": (_KERAS + "densenet/densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
                    "30ee3e1110167f948a6b9946edeeb738"),
    "densenet169": (_KERAS + "densenet/densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5",
                    "b8c4d4c20dd625c148057b9ff1c1176b"),
    "densenet201": (_KERAS + "densenet/densenet201_weights_tf_dim_ordering_tf_kernels_notop.h5",
                    "c13680b51ded0fb44dff2d8f86ac8bb1"),
    "efficientnetb7": ("https://storage.googleapis.com/keras-applications/efficientnetb7_notop.h5",
                       "cbcfe4450ddf6f3ad90b1b398090fe4a"),
    # Keras publishes no checksum for MobileNetV2's files (one per input size): see imagenet_weights().
    "mobilenetv2": (_KERAS + "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5", None),
}
MOBILENET_ROWS = (96, 128, 160, 192, 224)

# The study's own CNNs: conv blocks (filters per conv), then global average pooling and a dense
# feature layer, so the base ends in a vector like the applications (pooling="avg") and its
# weights fit any input size. The medium and large ones use BatchNorm, as most applications do.
CNN_BLOCKS = {"cnn_small": ((8,), (16,)), "cnn_medium": ((16, 16), (32, 32)),
              "cnn_large": ((32, 32), (64, 64), (128, 128))}
CNN_FEATURES = {"cnn_small": 32, "cnn_medium": 64, "cnn_large": 256}
# Keras' default BatchNorm momentum (0.99) needs hundreds of steps before its moving statistics
# mean anything; a few thousand images give tens of steps per epoch, so validation in inference
# mode would judge the network by its initial statistics. 0.9 settles within an epoch or two.
BN_MOMENTUM = 0.9
BASE_NAME = "base"


@keras.saving.register_keras_serializable(package="nnstudy")
class ImageScaling(layers.Layer):
    """Images in [0, 1] -> the input a base's weights were trained on (gray repeated to RGB if asked)."""

    def __init__(self, mode: str = "none", to_rgb: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.mode, self.to_rgb = mode, to_rgb

    def call(self, x):
        ops = keras.ops
        if self.to_rgb:
            x = ops.repeat(x, 3, axis=-1)
        if self.mode == "caffe":
            return ops.flip(x, axis=-1) * 255.0 - ops.convert_to_tensor(CAFFE_MEAN_BGR, dtype=x.dtype)
        if self.mode == "tf":
            return x * 2.0 - 1.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor(TORCH_MEAN, dtype=x.dtype)
            return (x - mean) / ops.convert_to_tensor(TORCH_STD, dtype=x.dtype)
        if self.mode == "raw255":
            return x * 255.0
        return x

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 3) if self.to_rgb else input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode, "to_rgb": self.to_rgb}


def cnn(name: str, input_size: int | None, channels: int) -> keras.Model:
    """One of the study's CNNs as a base (no head)."""
    batch_norm = name != "cnn_small"
    inputs = keras.Input((input_size, input_size, channels))
    x = inputs
    for b, filters in enumerate(CNN_BLOCKS[name], start=1):
        for c, width in enumerate(filters, start=1):
            x = layers.Conv2D(width, 3, padding="same", use_bias=not batch_norm, kernel_initializer="he_normal",
                              name=f"block{b}_conv{c}")(x)
            if batch_norm:
                x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"block{b}_bn{c}")(x)
            x = layers.Activation("relu", name=f"block{b}_relu{c}")(x)
        x = layers.MaxPooling2D(2, padding="same", name=f"block{b}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dense(CNN_FEATURES[name], activation="relu", kernel_initializer="he_normal", name="features")(x)
    return keras.Model(inputs, x, name=BASE_NAME)


def application(name: str, input_size: int, weights: Path | None = None) -> keras.Model:
    """A Keras application without its top, global-average-pooled, from ImageNet weights or random.

    `weights` is the application's ImageNet weights file (imagenet_weights()).
    """
    constructor = getattr(keras.applications, CONSTRUCTORS[name])
    base = constructor(include_top=False, weights=None if weights is None else str(weights),
                       input_shape=(input_size, input_size, 3), pooling="avg")
    if weights is not None and name.startswith("efficientnet"):
        fold_efficientnet_rescaling(base)
    # One name for every base, so the fine-tuning code and saved models find it the same way. Its
    # single input and output, not the lists `inputs`/`outputs`: a Model built on lists returns a
    # list when called, which the head's layers refuse.
    return keras.Model(base.input, base.output, name=BASE_NAME)


def fold_efficientnet_rescaling(base: keras.Model) -> None:
    """Make an EfficientNet loaded from an ImageNet file compute what Keras' `weights="imagenet"` does.

    For `weights="imagenet"`, and only then, Keras adds a Rescaling by 1/sqrt(stddev) right after
    the stem's Normalization, to scale inputs as the original weights were trained
    (tensorflow/tensorflow#49930). Loading the same file from a path builds the graph without
    that layer; folding its factor into the variance restores the function exactly:
    (x - mean) / sqrt(variance) / sqrt(stddev) = (x - mean) / sqrt(variance * stddev).
    """
    normalization = next(layer for layer in base.layers if isinstance(layer, layers.Normalization))
    variance = keras.ops.convert_to_numpy(normalization.adapt_variance)
    normalization.adapt_variance.assign(variance * np.asarray(EFFICIENTNET_STDDEV_RGB, dtype=variance.dtype))
    normalization.finalize_state()  # the layer computes with a copy of its variables, taken here


def imagenet_weights(model: str, input_size: int, table: dict | None = None, cache: Path | None = None) -> Path:
    """The application's no-top ImageNet weights: downloaded once, verified, kept in the cache.

    MobileNetV2's files have no published checksum: they are downloaded as Keras itself does, and
    Keras checks the layer shapes when it loads them.
    """
    from nnstudy.core.data import cached_download

    url, checksum = (table or IMAGENET_WEIGHTS)[model]
    if model == "mobilenetv2":
        url = url.format(rows=input_size if input_size in MOBILENET_ROWS else 224)
    dest = (cache or paths.cache_dir()) / "weights" / url.rsplit("/", 1)[-1]
    return cached_download(url, dest, checksum, "ImageNet weights need internet once; offline, use "
                           "`transfer.weights: none` (or `source` to pretrain here)", timeout=20)


def augmentation(names: tuple[str, ...], factor: float) -> list[layers.Layer]:
    """Keras preprocessing layers, active only in training (random flip, rotation, zoom, contrast)."""
    made = {
        "flip": lambda: layers.RandomFlip("horizontal", name="augment_flip"),
        "rotation": lambda: layers.RandomRotation(factor, fill_mode="constant", name="augment_rotation"),
        "zoom": lambda: layers.RandomZoom(factor, fill_mode="constant", name="augment_zoom"),
        "contrast": lambda: layers.RandomContrast(factor, value_range=(0, 1), name="augment_contrast"),
    }
    return [made[name]() for name in names]


def build_network(recipe: Recipe, image_shape: tuple[int, int, int], num_classes: int,
                  augmentations: tuple[str, ...] = (), factor: float = 0.1,
                  imagenet: Path | None = None) -> keras.Model:
    """The whole classifier for one recipe; `imagenet` is the weights file for weights: imagenet.

    A pretrained base (weights source or imagenet) runs in inference mode; a base trained from
    scratch (weights none, and the pretraining on the source classes) is an ordinary layer whose
    BatchNorm layers learn their statistics.
    """
    height, width, channels = image_shape
    size = recipe.input_size
    inputs = keras.Input(image_shape, name="image")
    x = inputs
    if (height, width) != (size, size):
        x = layers.Resizing(size, size, name="resize")(x)
    if recipe.augment:
        for layer in augmentation(augmentations, factor):
            x = layer(x)
    if recipe.model in CNNS:
        base = cnn(recipe.model, size, channels)
    else:
        x = ImageScaling(PREPROCESSING[recipe.model], to_rgb=channels == 1, name="scale")(x)
        base = application(recipe.model, size, imagenet)
    x = base(x) if recipe.weights == "none" else base(x, training=False)
    x = layers.Dropout(recipe.dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name=f"{recipe.model}_transfer")


def base_of(network: keras.Model) -> keras.Model:
    return network.get_layer(BASE_NAME)


def weighted_layers(base: keras.Model) -> list[layers.Layer]:
    """The base's layers that fine-tuning may unfreeze, bottom to top (BatchNorm never is)."""
    return [layer for layer in base.layers
            if layer.weights and not isinstance(layer, layers.BatchNormalization)]


def freeze(network: keras.Model) -> None:
    """Phase 1: only the head trains."""
    base_of(network).trainable = False


def unfreeze_top(network: keras.Model, share: float) -> int:
    """Phase 2: unfreeze the top `share` of the base's weighted layers (any share > 0 unfreezes at
    least one); BatchNorm layers stay frozen. Returns how many layers were unfrozen."""
    base = base_of(network)
    candidates = weighted_layers(base)
    count = min(len(candidates), math.ceil(share * len(candidates) - 1e-9))
    top = {id(layer) for layer in candidates[len(candidates) - count:]} if count else set()
    base.trainable = True
    for layer in base.layers:
        layer.trainable = id(layer) in top
    return count


def unfreeze_all(network: keras.Model) -> None:
    """From scratch: every layer trains (BatchNorm included: there are no statistics to protect)."""
    base_of(network).trainable = True


def build_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    if name == "adamax":
        return keras.optimizers.Adamax(learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9)  # plain SGD barely moves at fine-tuning rates
    return keras.optimizers.Adam(learning_rate)


def compile_network(network: keras.Model, optimizer: str, learning_rate: float) -> None:
    """(Re)compile: Keras takes a change of `trainable` into account only at compile time."""
    network.compile(optimizer=build_optimizer(optimizer, learning_rate),
                    loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def trainable_count(network: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in network.trainable_weights))
