"""Dream images: what each class looks like to the network, found by gradient ascent on the input.

For each class, start from a flat gray (or noise) image and move its pixels up the gradient of
that class's logit (its pre-softmax score), clipping them to [0, 1] after every step. Raising the
logit rather than the softmax probability makes the image look *like the class*, not merely
unlike the others (Simonyan, Vedaldi & Zisserman, 2014). Unpenalized ascent finds adversarial
noise; an L2 penalty (towards black, MNIST's background) and a squared total-variation penalty
(towards smooth strokes) keep the result an image.

The objective is Keras 3 backend-agnostic (keras.ops); only its gradient comes from the backend's
own autodiff: jax.value_and_grad on JAX, tf.GradientTape on TensorFlow, which is imported on that
branch alone (a JAX process never loads TensorFlow).
"""

import math
from collections.abc import Callable
from typing import Any

import keras
import matplotlib

matplotlib.use("Agg")  # no display on servers and CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

STARTS = ("gray", "noise")
GRAY = 0.5  # the start image's every pixel: no class evidence yet, and room to move either way

# (image (1, D), target class) -> (target logit, gradient of the penalized objective), backend tensors.
Gradient = Callable[[Any, Any], tuple[Any, Any]]
# (start image (D,), target class, steps, learning rate) -> (final image (D,), start logit, logit after each step)
Ascent = Callable[[np.ndarray, int, int, float], tuple[np.ndarray, float, list[float]]]


class PreActivation(keras.layers.Layer):
    """A Dense layer's output before its activation: inputs @ kernel + bias, with *that layer's* variables.

    Wrapping the trained layer (rather than cloning it with activation=None and copying weights)
    shares its variables: nothing is copied, the logits can never go stale if the network trains
    on, and the wrapped layer is tracked, so the logits model's variables are the network's own and
    `stateless_call` takes exactly them.
    """

    def __init__(self, dense: keras.layers.Dense, **kwargs: Any):
        super().__init__(**kwargs)
        self.dense = dense

    def call(self, inputs: Any) -> Any:
        logits = ops.matmul(inputs, self.dense.kernel)
        return ops.add(logits, self.dense.bias) if self.dense.use_bias else logits

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape[:-1], self.dense.units)


def logits_model(network: keras.Model) -> keras.Model:
    """The same network, ending in the `output` layer's logits instead of its softmax.

    The hidden layers are called again on a new input, which in Keras reuses them (same weights);
    only the last layer is swapped for its PreActivation. Dropout layers are inactive at inference.
    """
    output = network.get_layer("output")
    if network.layers[-1] is not output:
        raise ValueError(f"{network.name}: the layer named 'output' must be the last layer")
    inputs = keras.Input(shape=network.input_shape[1:])
    hidden = inputs
    for layer in network.layers[:-1]:
        hidden = layer(hidden)
    return keras.Model(inputs, PreActivation(output, name="output_logits")(hidden), name=f"{network.name}_logits")


def total_variation(images: Any, image_shape: tuple[int, int]) -> Any:
    """Squared total variation of each flattened image (N, D) -> (N,): the sum of squared
    differences between vertical and horizontal neighbours.

    Squared, not absolute: |a - b| has no gradient where neighbours are equal, which is every pixel
    of the flat gray start; the square is smooth there and punishes isolated specks hardest.
    """
    grid = ops.reshape(images, (-1, *image_shape))
    down = grid[:, 1:, :] - grid[:, :-1, :]
    right = grid[:, :, 1:] - grid[:, :, :-1]
    return ops.sum(ops.square(down), axis=(1, 2)) + ops.sum(ops.square(right), axis=(1, 2))


def _objective(logits: Any, image: Any, target: Any, l2: float, tv: float,
               image_shape: tuple[int, int]) -> tuple[Any, Any]:
    """What the ascent maximizes, and the target logit it is for (the trace records the latter).

    Penalties are sums over the image's pixels, so their weights compare with the logit itself.
    """
    logit = ops.take(logits[0], target)
    penalty = l2 * ops.sum(ops.square(image)) + tv * total_variation(image, image_shape)[0]
    return logit - penalty, logit


def _jax_score(model: keras.Model, l2: float, tv: float, image_shape: tuple[int, int]) -> tuple[Callable, list, list]:
    """The objective as a pure function of (image, target, trainable, non_trainable), and the weights."""
    # Passed as arguments, not closed over: jit would otherwise bake the weights into the program.
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def score(image: Any, target: Any, trainable: list, non_trainable: list) -> tuple:
        logits, _ = model.stateless_call(trainable, non_trainable, image, training=False)
        return _objective(logits, image, target, l2, tv, image_shape)

    return score, trainable, non_trainable


def _jax_gradient(model: keras.Model, l2: float, tv: float, image_shape: tuple[int, int]) -> Gradient:
    import jax

    score, trainable, non_trainable = _jax_score(model, l2, tv, image_shape)
    # One compiled program for every class: the target is traced, not a constant.
    value_and_grad = jax.jit(jax.value_and_grad(score, has_aux=True))

    def gradient(image: jax.Array, target: int) -> tuple[jax.Array, jax.Array]:
        (_, logit), grad = value_and_grad(image, np.int32(target), trainable, non_trainable)
        return logit, grad

    return gradient


def _jax_ascent(model: keras.Model, l2: float, tv: float, image_shape: tuple[int, int]) -> Ascent:
    """The whole ascent as one XLA program (a lax.scan over the steps), for every class alike.

    Step by step from Python, each step's image came out of an eager operation, and the next
    gradient's last bits depended on where that buffer happened to lie in memory: the same run
    gave other dreams in the 7th digit from one process to the next (and within one). In one
    program XLA places every buffer itself, and the dreams are the same, run after run.
    """
    import jax
    import jax.numpy as jnp

    score, trainable, non_trainable = _jax_score(model, l2, tv, image_shape)
    value_and_grad = jax.value_and_grad(score, has_aux=True)

    def run(image: jax.Array, target: jax.Array, learning_rate: jax.Array, trainable: list, non_trainable: list,
            steps: int) -> tuple:
        (_, start_logit), grad = value_and_grad(image, target, trainable, non_trainable)

        def step(carry: tuple, _: None) -> tuple:
            current, grad = carry
            current = jnp.clip(current + learning_rate * grad, 0.0, 1.0)
            (_, logit), grad = value_and_grad(current, target, trainable, non_trainable)
            return (current, grad), logit

        (final, _), logits = jax.lax.scan(step, (image, grad), None, length=steps)
        return final, start_logit, logits

    compiled = jax.jit(run, static_argnames="steps")

    def ascend(image: np.ndarray, target: int, steps: int, learning_rate: float) -> tuple[np.ndarray, float, list[float]]:
        final, start_logit, logits = compiled(jnp.asarray(image[None, :]), np.int32(target), np.float32(learning_rate),
                                              trainable, non_trainable, steps=steps)
        return (np.asarray(final)[0].astype(np.float32), float(start_logit),
                [float(v) for v in np.asarray(logits)])

    return ascend


def _tensorflow_gradient(model: keras.Model, l2: float, tv: float, image_shape: tuple[int, int]) -> Gradient:
    import tensorflow as tf  # only on this backend's branch: JAX processes never load TensorFlow

    @tf.function(reduce_retracing=True)
    def value_and_grad(image: tf.Tensor, target: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(image)
            value, logit = _objective(model(image, training=False), image, target, l2, tv, image_shape)
        return logit, tape.gradient(value, image)

    def gradient(image: tf.Tensor, target: int) -> tuple[tf.Tensor, tf.Tensor]:
        # A tensor target, not a Python int: tf.function would trace a new graph for every class.
        return value_and_grad(tf.convert_to_tensor(image), tf.constant(target, tf.int32))

    return gradient


def input_gradient(network: keras.Model, l2: float, tv: float, image_shape: tuple[int, int]) -> Gradient:
    """The penalized objective's gradient with respect to the image, from the backend's autodiff."""
    model = logits_model(network)
    backend = keras.backend.backend()
    if backend == "jax":
        return _jax_gradient(model, l2, tv, image_shape)
    if backend == "tensorflow":
        return _tensorflow_gradient(model, l2, tv, image_shape)
    raise NotImplementedError(f"dreams need the JAX or TensorFlow backend, not {backend!r}")


def start_image(start: str, input_dim: int, seed: int) -> np.ndarray:
    """The image the ascent starts from: flat GRAY, or uniform noise in [0, 1) drawn from `seed`."""
    if start == "gray":
        return np.full(input_dim, GRAY, np.float32)
    if start == "noise":
        return np.random.default_rng(seed).random(input_dim, dtype=np.float32)
    raise ValueError(f"start must be one of {', '.join(STARTS)}, got {start!r}")


def _stepwise_ascent(gradient: Gradient) -> Ascent:
    """The ascent step by step from Python, around any backend's gradient (TensorFlow's)."""

    def ascend(image: np.ndarray, target: int, steps: int, learning_rate: float) -> tuple[np.ndarray, float, list[float]]:
        current = ops.convert_to_tensor(image[None, :])
        start_logit, grad = gradient(current, target)
        logits = []
        for _ in range(steps):
            current = ops.clip(current + learning_rate * grad, 0.0, 1.0)
            # The next step's gradient comes with this image's logit: one evaluation per step.
            logit, grad = gradient(current, target)
            logits.append(logit)
        final = ops.convert_to_numpy(current)[0].astype(np.float32)
        return final, float(ops.convert_to_numpy(start_logit)), [float(ops.convert_to_numpy(v)) for v in logits]

    return ascend


def input_ascent(network: keras.Model, l2: float, tv: float, image_shape: tuple[int, int]) -> Ascent:
    """`steps` of gradient ascent on the penalized objective, clipped to [0, 1]: (image, target, steps,
    learning_rate) -> the image, the start's logit, the logit after each step. One XLA program on JAX."""
    if keras.backend.backend() == "jax":
        return _jax_ascent(logits_model(network), l2, tv, image_shape)
    return _stepwise_ascent(input_gradient(network, l2, tv, image_shape))


def dream(network: keras.Model, target: int, input_dim: int, steps: int, learning_rate: float, l2: float,
          tv: float, image_shape: tuple[int, int], start: str = "gray",
          seed: int = 0) -> tuple[np.ndarray, list[float]]:
    """The image (input_dim,) float32 in [0, 1] that raises class `target`'s logit, and that logit after each step."""
    if math.prod(image_shape) != input_dim:
        raise ValueError(f"image_shape {image_shape} has {math.prod(image_shape)} pixels, input_dim is {input_dim}")
    image, _, logits = input_ascent(network, l2, tv, image_shape)(start_image(start, input_dim, seed), target, steps,
                                                                  learning_rate)
    return image, logits


def dream_all(network: keras.Model, num_classes: int, input_dim: int, steps: int, learning_rate: float,
              l2: float, tv: float, image_shape: tuple[int, int], start: str = "gray", seed: int = 0) -> dict:
    """One dream per class, with the same settings and start image.

    Returns images (num_classes, input_dim) float32; confidence (num_classes,): the network's
    softmax probability of each image's own class; predicted (num_classes,): its argmax; logits:
    each class's logit trace; and summary, plain Python values ready for JSON.
    """
    if math.prod(image_shape) != input_dim:
        raise ValueError(f"image_shape {image_shape} has {math.prod(image_shape)} pixels, input_dim is {input_dim}")
    ascend = input_ascent(network, l2, tv, image_shape)  # built (and compiled) once for every class
    first = start_image(start, input_dim, seed)
    dreams = [ascend(first, target, steps, learning_rate) for target in range(num_classes)]
    images = np.stack([image for image, _, _ in dreams])
    # The softmax network itself, not the logits model: what the study's network says of each image.
    proba = np.asarray(network.predict(images, verbose=0), dtype=np.float64)
    classes = np.arange(num_classes)
    confidence, predicted = proba[classes, classes], proba.argmax(axis=1)
    variation = ops.convert_to_numpy(total_variation(ops.convert_to_tensor(images), image_shape))
    summary = {
        "settings": {"steps": steps, "learning_rate": float(learning_rate), "l2": float(l2), "tv": float(tv),
                     "start": start, "seed": seed},
        "mean_confidence": float(confidence.mean()),
        "classes_won": int((predicted == classes).sum()),  # dreams whose own class is the argmax
        "per_class": {
            str(k): {
                "confidence": float(confidence[k]),
                "predicted": int(predicted[k]),
                "logit_start": start_logit,
                "logit_end": logits[-1] if logits else start_logit,
                "mean_pixel": float(images[k].mean()),
                "total_variation": float(variation[k]),
            }
            for k, (_, start_logit, logits) in enumerate(dreams)
        },
    }
    return {"images": images, "confidence": confidence, "predicted": predicted,
            "logits": [logits for _, _, logits in dreams], "summary": summary}


def dream_figure(images: np.ndarray, confidences: np.ndarray, image_shape: tuple[int, int]) -> plt.Figure:
    """Each class's dream (2 x 5 for ten classes) with the network's confidence in that class below it.

    Pixels are drawn on a fixed [0, 1] scale, ink dark as in the report's other galleries: an
    auto-scaled image would make faint dreams look as bold as strong ones.
    """
    columns = min(5, len(images))
    rows = max(1, math.ceil(len(images) / columns))
    figure, grid = plt.subplots(rows, columns, figsize=(columns * 1.6, rows * 1.9), squeeze=False)
    for axes in grid.ravel():
        axes.axis("off")
    for k, (axes, image, confidence) in enumerate(zip(grid.ravel(), images, confidences)):
        axes.axis("on")
        axes.imshow(image.reshape(image_shape), cmap="gray_r", vmin=0.0, vmax=1.0)
        axes.set(xticks=[], yticks=[])
        axes.set_title(f"class {k}", fontsize=9)
        axes.set_xlabel(f"p({k}) = {confidence:.0%}", fontsize=8)
    figure.suptitle("Dream images: gradient ascent on each class's logit")
    return figure
