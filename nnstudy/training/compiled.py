"""Train a compiled Keras model on the JAX backend with one XLA program per epoch.

`keras.Model.fit` dispatches one jitted `train_step` per batch (or per `steps_per_execution`
batches, unrolled in Python). At batch size 1 that dispatch, not the arithmetic, is the cost.
Here the whole epoch is a `jax.lax.scan` over the model's own pure `train_step`, so an epoch
is one call into XLA, following the Keras guide "Writing a training loop from scratch in JAX".

The math is fit's: the same `train_step`/`test_step` (loss, regularization losses, Dropout's
seed state, optimizer, loss and accuracy trackers), the same metric resets, the same last,
smaller batch, and the state is written back to the Keras variables after every epoch as fit
does. Only the shuffling differs: it comes from `np.random.default_rng(seed)`.

The data sets are copied to the device once per run; each step gathers its batch's rows on
the device, so nothing crosses between host and device inside an epoch.
"""

import math
from collections.abc import Callable, Iterator
from itertools import repeat
from typing import Any

import keras
import numpy as np

# Checked before importing JAX: on another backend JAX may not even be installed, and the
# pure train_step/test_step this module relies on exist only on Keras' JAXTrainer.
if keras.backend.backend() != "jax":
    raise ValueError(
        "nnstudy.training.compiled needs the Keras JAX backend, but Keras is using "
        f"{keras.backend.backend()!r}: set KERAS_BACKEND=jax before keras is first imported."
    )

import jax  # noqa: E402  (after the backend check on purpose, see above)

Arrays = list[jax.Array]
# The state tuples JAXTrainer.train_step and test_step take and return, in their order.
TrainState = tuple[Arrays, Arrays, Arrays, Arrays]  # trainable, non-trainable, optimizer, metrics
EvalState = tuple[Arrays, Arrays, Arrays]  # trainable, non-trainable, metrics
Batch = tuple[jax.Array, jax.Array]  # features, targets
# One epoch's row order: the full batches' row indices stacked (steps, batch_size), and the
# indices of the last, smaller batch (None when len(x) is a multiple of batch_size).
EpochRows = tuple[jax.Array, jax.Array | None]
MetricsResult = dict[str, jax.Array]
Logs = dict[str, float]
History = dict[str, list[float]]
TrainEpoch = Callable[[TrainState, Batch, jax.Array, jax.Array | None], tuple[TrainState, MetricsResult]]
Evaluate = Callable[[EvalState, Batch], tuple[EvalState, MetricsResult]]
EpochCallback = Callable[[int, Logs], None]

TRAIN_STATE_KEYS = ("trainable_variables", "non_trainable_variables", "optimizer_variables", "metrics_variables")
EVAL_STATE_KEYS = ("trainable_variables", "non_trainable_variables", "metrics_variables")


def fit_compiled(
    network: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    validation: tuple[np.ndarray, np.ndarray],
    batch_size: int,
    epochs: int,
    seed: int,
    shuffle: bool = True,
    on_epoch_end: EpochCallback | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    initial_epoch: int = 0,
) -> History:
    """Same math as network.fit(x, y, batch_size, epochs, validation_data=validation, shuffle=...).

    Returns fit's History.history: loss, accuracy, val_loss, val_accuracy, one float per epoch.
    On return the network's variables (weights, optimizer incl. iterations, metrics) hold the
    trained state, as after fit. An epoch whose training loss is NaN or infinite is the last one
    run (TerminateOnNaN at epoch granularity); it is validated and kept in the history.

    Keras callbacks get fit's epoch-level calls (on_train_begin, on_epoch_begin/end with the
    epoch's logs, on_train_end) and may stop training with `model.stop_training`, so Keras'
    own EarlyStopping(restore_best_weights=True) works unchanged. Batch-level calls are not made:
    there is no Python between the batches of an epoch.

    `initial_epoch`, as in fit: the network already holds the state after that many epochs (a
    resumed run); the shuffle order of the epochs before it is drawn and skipped, so epoch k
    sees the same order as in an uninterrupted run. The history returned starts there.
    """
    _check_network(network)
    x, y = _as_floatx(x), _as_floatx(y)
    val_x, val_y = _as_floatx(validation[0]), _as_floatx(validation[1])
    _check_data(x, y, val_x, val_y, batch_size)

    # fit builds the model, its compiled loss/metrics and the optimizer from the first batch;
    # their variables must exist before their values can be threaded through the state.
    network._symbolic_build(data_batch=(x[:batch_size], y[:batch_size]))
    train_epoch = _compile_train_epoch(network)
    evaluate = _compile_evaluate(network)
    # The data goes to the device once for the whole run; each epoch only sends its row order.
    train_data: Batch = jax.device_put((x, y))
    val_data: Batch = jax.device_put((val_x, val_y))
    epoch_rows = _epoch_rows(len(x), batch_size, shuffle, seed, skip=initial_epoch)

    history: History = {}
    callback_list = keras.callbacks.CallbackList(callbacks, model=network)
    network.stop_training = False
    callback_list.on_train_begin()
    logs: Logs = {}
    try:
        for epoch in range(initial_epoch, epochs):
            callback_list.on_epoch_begin(epoch)
            logs = _train_one_epoch(network, train_epoch, train_data, next(epoch_rows))
            logs |= {f"val_{name}": value for name, value in _validate(network, evaluate, val_data).items()}
            for name, value in logs.items():
                history.setdefault(name, []).append(value)
            callback_list.on_epoch_end(epoch, dict(logs))
            if on_epoch_end is not None:
                on_epoch_end(epoch, logs)
            if not math.isfinite(logs["loss"]) or network.stop_training:
                break
    finally:
        # fit's last act: optimizers with EMA swap the averaged weights in here.
        if epochs > 0:
            network.optimizer.finalize_variable_values(network.trainable_weights)
    callback_list.on_train_end(logs)  # EarlyStopping restores the best epoch's weights here
    return history


def _check_network(network: keras.Model) -> None:
    if not network.compiled or network.optimizer is None:
        raise ValueError("fit_compiled needs a compiled network: call network.compile(optimizer, loss, metrics) first")


def _check_data(x: np.ndarray, y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray, batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(f"x and y need the same, non-zero number of rows, got {len(x)} and {len(y)}")
    if len(val_x) == 0 or len(val_x) != len(val_y):
        raise ValueError(
            f"validation x and y need the same, non-zero number of rows, got {len(val_x)} and {len(val_y)}"
        )


def _as_floatx(array: np.ndarray) -> np.ndarray:
    """Floats in Keras' floatx, as fit's array adapter casts them; other dtypes as given."""
    array = np.asarray(array)
    return array.astype(keras.backend.floatx(), copy=False) if np.issubdtype(array.dtype, np.floating) else array


def _epoch_rows(num_rows: int, batch_size: int, shuffle: bool, seed: int, skip: int = 0) -> Iterator[EpochRows]:
    """Each epoch's row order, already on the device; a fresh permutation per epoch when shuffling,
    the first `skip` epochs' permutations drawn and dropped."""
    if not shuffle:
        # Same order every epoch: build and copy it once.
        return repeat(_batch_rows(np.arange(num_rows), batch_size))
    rng = np.random.default_rng(seed)
    for _ in range(skip):
        rng.permutation(num_rows)
    return _shuffled_rows(num_rows, batch_size, rng)


def _shuffled_rows(num_rows: int, batch_size: int, rng: np.random.Generator) -> Iterator[EpochRows]:
    while True:
        yield _batch_rows(rng.permutation(num_rows), batch_size)


def _batch_rows(order: np.ndarray, batch_size: int) -> EpochRows:
    """`order` cut into full batches, stacked (steps, batch_size), plus the smaller last batch.

    Like fit's array adapter, the remainder is one more, smaller batch: not dropped, not padded.
    """
    steps = len(order) // batch_size
    order = order.astype(np.int32)
    full = order[: steps * batch_size].reshape(steps, batch_size)
    tail = order[steps * batch_size :] if len(order) % batch_size else None
    return jax.device_put((full, tail))


def _compile_train_epoch(network: keras.Model) -> TrainEpoch:
    """One jitted program: scan train_step over the epoch's full batches, then the last batch.

    Each step gathers its rows from the device-resident data, so no step touches the host and
    no shuffled copy of the data set is made. jit traces once per input shape, so a run
    compiles this once (the tail's presence and size are fixed by len(x) and batch_size) and
    every later epoch reuses it.
    """

    def train_epoch(
        state: TrainState, data: Batch, batches: jax.Array, tail: jax.Array | None
    ) -> tuple[TrainState, MetricsResult]:
        def train_on(state: TrainState, rows: jax.Array) -> TrainState:
            # The step's logs are dropped (XLA removes their computation): the epoch's logs are
            # read from the metric state once, at the end.
            _, state = network.train_step(state, _take_rows(data, rows))
            return state

        def scan_step(state: TrainState, rows: jax.Array) -> tuple[TrainState, None]:
            return train_on(state, rows), None

        state, _ = jax.lax.scan(scan_step, state, batches)
        if tail is not None:
            state = train_on(state, tail)
        return state, _metrics_result(network, state[3])

    return jax.jit(train_epoch)


def _take_rows(data: Batch, rows: jax.Array) -> Batch:
    features, targets = data
    return features[rows], targets[rows]


def _compile_evaluate(network: keras.Model) -> Evaluate:
    """test_step over the whole validation set as one batch.

    fit's evaluate runs batch_size rows at a time, but its loss tracker weights each batch's
    mean loss by the batch's size and accuracy is a total/count, so one batch gives the same
    means (regularization losses are added to every batch's mean, so to the overall mean too).
    """

    def evaluate(state: EvalState, data: Batch) -> tuple[EvalState, MetricsResult]:
        logs, state = network.test_step(state, data)
        return state, logs

    return jax.jit(evaluate)


def _metrics_result(network: keras.Model, metrics_variables: Arrays) -> MetricsResult:
    """What fit logs at epoch end (Trainer.get_metrics_result), read from traced metric state."""
    with keras.StatelessScope(state_mapping=list(zip(network.metrics_variables, metrics_variables))):
        return network.get_metrics_result()


def _train_one_epoch(network: keras.Model, train_epoch: TrainEpoch, data: Batch, rows: EpochRows) -> Logs:
    # fit resets the metrics at each epoch start, so the logs are this epoch's running means.
    network.reset_metrics()
    state: TrainState = network._get_jax_state(
        trainable_variables=True, non_trainable_variables=True, optimizer_variables=True, metrics_variables=True
    )
    state, logs = train_epoch(state, data, *rows)
    # Written back every epoch, as fit does, so on_epoch_end sees (and may save) the current model.
    _assign_state(network, dict(zip(TRAIN_STATE_KEYS, state)))
    return _to_floats(logs)


def _validate(network: keras.Model, evaluate: Evaluate, data: Batch) -> Logs:
    # evaluate() resets the shared metrics too: after the run they hold the last validation's
    # state, exactly as after fit.
    network.reset_metrics()
    state: EvalState = network._get_jax_state(
        trainable_variables=True, non_trainable_variables=True, metrics_variables=True
    )
    state, logs = evaluate(state, data)
    _assign_state(network, dict(zip(EVAL_STATE_KEYS, state)))
    return _to_floats(logs)


def _assign_state(network: keras.Model, state: dict[str, Arrays]) -> None:
    """Write state arrays back to the Keras variables the way fit does (JAXTrainer.jax_state_sync)."""
    network._jax_state = state
    network._jax_state_synced = False
    network.jax_state_sync()
    network._jax_state = None


def _to_floats(logs: dict[str, Any]) -> Logs:
    # One device-to-host transfer of a few scalars; it also waits for the program to finish.
    return {name: float(value) for name, value in jax.device_get(logs).items()}
