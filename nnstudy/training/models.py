"""Build and compile the MLP from a ModelParams record, with Keras APIs only (any backend)."""

import os

import keras
import numpy as np

from nnstudy.core.params import ModelParams


def enable_determinism(seed: int) -> None:
    """Seed Python, NumPy and the backend, and ask TensorFlow for deterministic kernels.

    Same params, same machine, same library versions -> same weights and metrics, run after run.
    """
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # only the TF backend has a global determinism switch

        tf.config.experimental.enable_op_determinism()
    # Other backends on CPU are deterministic once seeded; XLA on GPU may not be.
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


def kernel_initializer(model: ModelParams, seed: int) -> keras.initializers.Initializer:
    if model.initializer == "normal":
        return keras.initializers.RandomNormal(mean=model.init_mean, stddev=model.init_stddev, seed=seed)
    return keras.initializers.get({"class_name": model.initializer, "config": {"seed": seed}})


def kernel_regularizer(model: ModelParams) -> keras.regularizers.Regularizer | None:
    if model.regularizer == "l1":
        return keras.regularizers.L1(model.reg_alpha)
    if model.regularizer == "l2":
        return keras.regularizers.L2(model.reg_alpha)
    return None


def build_optimizer(model: ModelParams) -> keras.optimizers.Optimizer:
    lr = model.learning_rate
    if model.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=model.momentum)
    if model.optimizer == "adagrad":
        return keras.optimizers.Adagrad(learning_rate=lr)
    if model.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=lr, rho=model.rho)
    return keras.optimizers.Adam(learning_rate=lr)


def build_model(
    model: ModelParams, input_dim: int, num_classes: int, seed: int, steps_per_execution: int = 1
) -> keras.Model:
    """Dense hidden layers (each optionally followed by Dropout), then a softmax (or tanh) output; compiled."""
    regularizer = kernel_regularizer(model)
    layers: list[keras.layers.Layer] = [keras.Input(shape=(input_dim,))]
    for index, units in enumerate(model.hidden_units):
        layers.append(keras.layers.Dense(
            units,
            activation=model.activation,
            # A distinct seed per layer: one shared seed would give layers correlated weights.
            kernel_initializer=kernel_initializer(model, seed + index),
            kernel_regularizer=regularizer,
            name=f"hidden_{index + 1}",
        ))
        if model.dropout > 0:
            layers.append(keras.layers.Dropout(model.dropout, seed=seed + index, name=f"dropout_{index + 1}"))
    layers.append(keras.layers.Dense(
        num_classes,
        activation=model.output_activation,
        kernel_initializer=kernel_initializer(model, seed + len(model.hidden_units)),
        kernel_regularizer=regularizer if model.regularize_output else None,
        name="output",
    ))
    network = keras.Sequential(layers, name="mlp")
    network.compile(
        optimizer=build_optimizer(model),
        loss=model.loss,
        # The argmax, whatever the targets (one-hot or ±1) and the output (softmax or tanh).
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        steps_per_execution=steps_per_execution,
    )
    return network


def encode_targets(model: ModelParams, one_hot: np.ndarray) -> np.ndarray:
    """The training targets the network's loss expects: one-hot, or ±1 for the classic tanh formulation."""
    return one_hot * 2 - 1 if model.targets == "plus_minus_one" else one_hot
