"""fit_compiled against keras fit: same weights, optimizer and metric state, same history."""

import os

os.environ["KERAS_BACKEND"] = "jax"  # before keras is first imported: the module needs JAX

import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pytest

from nnstudy.training.compiled import fit_compiled

FEATURES, CLASSES, VAL_ROWS = 12, 3, 20
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Case:
    model: str  # "adam", "rmsprop_l2" or "dropout"
    rows: int
    batch_size: int
    epochs: int


CASES = [
    Case("adam", rows=64, batch_size=16, epochs=3),
    Case("rmsprop_l2", rows=70, batch_size=16, epochs=3),  # 70 = 4 * 16 + 6: a smaller last batch
    Case("dropout", rows=70, batch_size=16, epochs=3),
    Case("adam", rows=24, batch_size=1, epochs=2),  # online learning
    Case("dropout", rows=15, batch_size=1, epochs=2),
]


def dataset(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    y = np.eye(CLASSES, dtype=np.float32)[rng.integers(0, CLASSES, rows)]
    return x, y


VALIDATION = dataset(VAL_ROWS, seed=99)


def build(model: str, seed: int = 7) -> keras.Model:
    """The same network every call for the same arguments (weights and Dropout seeds included).

    Seeded per layer rather than with keras.utils.set_random_seed: that one imports TensorFlow
    whenever it is installed, which would hide whether fit_compiled imports it.
    """
    regularizer = keras.regularizers.L2(1e-2) if model == "rmsprop_l2" else None
    hidden = keras.layers.Dense(
        16, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed), kernel_regularizer=regularizer
    )
    layers = [keras.Input(shape=(FEATURES,)), hidden]
    if model == "dropout":
        layers.append(keras.layers.Dropout(0.3, seed=seed))
    layers.append(keras.layers.Dense(
        CLASSES,
        activation="softmax",
        kernel_initializer=keras.initializers.GlorotUniform(seed + 1),
        kernel_regularizer=regularizer,
    ))
    network = keras.Sequential(layers)
    optimizer = keras.optimizers.RMSprop(1e-2) if model == "rmsprop_l2" else keras.optimizers.Adam(1e-2)
    network.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    return network


@dataclass(frozen=True)
class Pair:
    case: Case
    fitted: keras.Model
    fit_history: dict[str, list[float]]
    compiled: keras.Model
    compiled_history: dict[str, list[float]]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c.model}-n{c.rows}-b{c.batch_size}")
def pair(request) -> Pair:
    """The same network trained by fit and by fit_compiled, both without shuffling."""
    case: Case = request.param
    x, y = dataset(case.rows)
    fitted = build(case.model)
    history = fitted.fit(
        x, y, batch_size=case.batch_size, epochs=case.epochs, validation_data=VALIDATION, shuffle=False, verbose=0
    ).history
    compiled = build(case.model)
    compiled_history = fit_compiled(
        compiled, x, y, VALIDATION, batch_size=case.batch_size, epochs=case.epochs, seed=0, shuffle=False
    )
    return Pair(case, fitted, history, compiled, compiled_history)


def values(variables: list) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v) for v in variables]


def assert_all_close(actual: list[np.ndarray], expected: list[np.ndarray], rtol: float, atol: float) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)


def test_weights_equal_fits(pair):
    # Model variables include Dropout's seed-generator state, which must advance exactly as in fit.
    assert_all_close(values(pair.compiled.variables), values(pair.fitted.variables), rtol=1e-5, atol=1e-6)


def test_optimizer_state_equals_fits(pair):
    steps = math.ceil(pair.case.rows / pair.case.batch_size) * pair.case.epochs
    assert int(pair.compiled.optimizer.iterations) == int(pair.fitted.optimizer.iterations) == steps
    assert_all_close(values(pair.compiled.optimizer.variables), values(pair.fitted.optimizer.variables), 1e-5, 1e-6)


def test_history_matches_fits(pair):
    assert set(pair.compiled_history) == set(pair.fit_history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    for name, expected in pair.fit_history.items():
        assert all(isinstance(v, float) for v in pair.compiled_history[name])
        np.testing.assert_allclose(pair.compiled_history[name], expected, rtol=1e-5, atol=1e-6, err_msg=name)


def test_metric_state_is_the_last_validations_as_after_fit(pair):
    # fit's last evaluate() leaves the validation totals in the shared metric variables; fit's
    # evaluate sums batch by batch, fit_compiled in one batch, hence the looser atol.
    assert_all_close(values(pair.compiled.metrics_variables), values(pair.fitted.metrics_variables), 1e-5, 1e-5)


def test_saved_network_round_trips(tmp_path):
    x, y = dataset(40)
    network = build("dropout")
    fit_compiled(network, x, y, VALIDATION, batch_size=8, epochs=2, seed=0)
    path = tmp_path / "network.keras"
    network.save(path)
    loaded = keras.saving.load_model(path)
    assert int(loaded.optimizer.iterations) == int(network.optimizer.iterations) == 10
    assert_all_close(values(loaded.optimizer.variables), values(network.optimizer.variables), rtol=0, atol=0)
    np.testing.assert_array_equal(loaded.predict(VALIDATION[0], verbose=0), network.predict(VALIDATION[0], verbose=0))


def test_shuffling_follows_the_seed():
    x, y = dataset(40)

    def weights(seed: int) -> list[np.ndarray]:
        network = build("adam")
        fit_compiled(network, x, y, VALIDATION, batch_size=8, epochs=2, seed=seed)
        return values(network.trainable_variables)

    first, again, other = weights(1), weights(1), weights(2)
    assert_all_close(again, first, rtol=0, atol=0)
    assert not all(np.allclose(a, b) for a, b in zip(first, other))


def test_nan_loss_stops_after_that_epoch():
    x, y = dataset(32)
    x[5, 0] = np.nan  # one poisoned row: the epoch's mean loss is NaN
    network = build("adam")
    history = fit_compiled(network, x, y, VALIDATION, batch_size=8, epochs=5, seed=0)
    assert len(history["loss"]) == len(history["val_loss"]) == 1
    assert math.isnan(history["loss"][0])
    assert int(network.optimizer.iterations) == 4


def test_on_epoch_end_sees_each_epochs_logs_and_the_current_model():
    x, y = dataset(30)
    network = build("adam")
    calls = []

    def record(epoch: int, logs: dict[str, float]) -> None:
        calls.append((epoch, dict(logs), int(network.optimizer.iterations)))

    history = fit_compiled(network, x, y, VALIDATION, batch_size=8, epochs=3, seed=0, on_epoch_end=record)
    assert [epoch for epoch, _, _ in calls] == [0, 1, 2]
    assert [iterations for _, _, iterations in calls] == [4, 8, 12]  # state is written back every epoch
    for epoch, logs, _ in calls:
        assert logs == {name: history[name][epoch] for name in history}


def run_python(code: str, backend: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


NO_TENSORFLOW = """
import sys
import numpy as np
from tests.test_compiled import VALIDATION, build, dataset, fit_compiled
x, y = dataset(16)
fit_compiled(build("dropout"), x, y, VALIDATION, batch_size=4, epochs=1, seed=0)
print("tensorflow" in sys.modules)
"""


def test_fit_compiled_does_not_import_tensorflow():
    # In a fresh process: in this one, Keras' own saving code (the round-trip test) imports
    # TensorFlow whenever it is installed.
    result = run_python(NO_TENSORFLOW, backend="jax")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_import_on_another_backend_raises_a_clear_error():
    result = run_python("import nnstudy.training.compiled", backend="numpy")
    assert result.returncode != 0
    assert "ValueError" in result.stderr and "JAX backend" in result.stderr
