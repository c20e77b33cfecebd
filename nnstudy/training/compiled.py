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
from itertools import count, repeat
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
import jax.numpy as jnp  # noqa: E402

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
# Seeds trained together: called after every epoch, once all the seeds' callbacks ran, with the
# seeds still training (a seed that stopped, early or on NaN, is False from its last epoch on).
SeedsEpochCallback = Callable[[int, list[bool]], None]

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
    return jax.device_put(_host_rows(order, batch_size))


def _host_rows(order: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """`order` cut into full batches, stacked (steps, batch_size), plus the smaller last batch.

    Like fit's array adapter, the remainder is one more, smaller batch: not dropped, not padded.
    """
    steps = len(order) // batch_size
    order = order.astype(np.int32)
    full = order[: steps * batch_size].reshape(steps, batch_size)
    tail = order[steps * batch_size :] if len(order) % batch_size else None
    return full, tail


def _seeds_rows(num_rows: int, batch_size: int, shuffle: bool, seeds: list[int], skip: int = 0) -> Iterator[EpochRows]:
    """Each epoch's row orders of all the seeds, stacked on a leading seed axis: seed i's order is
    the one `_epoch_rows(..., seeds[i], skip)` gives, so each seed shuffles as when trained alone."""
    if not shuffle:
        full, tail = _host_rows(np.arange(num_rows), batch_size)
        return repeat(jax.device_put(_stack_rows([(full, tail)] * len(seeds))))
    rngs = [np.random.default_rng(seed) for seed in seeds]
    for rng in rngs:
        for _ in range(skip):
            rng.permutation(num_rows)
    return (jax.device_put(_stack_rows([_host_rows(rng.permutation(num_rows), batch_size) for rng in rngs]))
            for _ in count())


def _stack_rows(parts: list[tuple[np.ndarray, np.ndarray | None]]) -> tuple[np.ndarray, np.ndarray | None]:
    full = np.stack([part[0] for part in parts])
    tail = None if parts[0][1] is None else np.stack([part[1] for part in parts])
    return full, tail


def _compile_train_epoch(network: keras.Model) -> TrainEpoch:
    return jax.jit(_train_epoch_fn(network))


def _train_epoch_fn(network: keras.Model) -> TrainEpoch:
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

    return train_epoch


def _take_rows(data: Batch, rows: jax.Array) -> Batch:
    features, targets = data
    return features[rows], targets[rows]


def _compile_seeds(network: keras.Model) -> tuple[Callable, Callable]:
    """The train epoch and the validation, vmapped over a leading seed axis of the state, the row
    orders and an `active` flag per seed; the data is shared (not stacked).

    A seed that is not active keeps its state unchanged: it still runs (a vmapped program runs every
    seed), but its results are dropped, so a seed stopped early (or on NaN) ends as it would alone.
    """
    train_epoch = _train_epoch_fn(network)

    def masked_epoch(state: TrainState, data: Batch, batches: jax.Array, tail: jax.Array | None,
                     active: jax.Array) -> tuple[TrainState, MetricsResult]:
        new_state, logs = train_epoch(state, data, batches, tail)
        return _keep_unless(active, new_state, state), logs

    def masked_evaluate(state: EvalState, data: Batch, active: jax.Array) -> tuple[EvalState, MetricsResult]:
        logs, new_state = network.test_step(state, data)
        return _keep_unless(active, new_state, state), logs

    return (jax.jit(jax.vmap(masked_epoch, in_axes=(0, None, 0, 0, 0))),
            jax.jit(jax.vmap(masked_evaluate, in_axes=(0, None, 0))))


def _keep_unless(active: jax.Array, new: Any, old: Any) -> Any:
    return jax.tree.map(lambda n, o: jnp.where(active, n, o), new, old)


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


def fit_compiled_seeds(
    networks: list[keras.Model],
    x: np.ndarray,
    y: np.ndarray,
    validation: tuple[np.ndarray, np.ndarray],
    batch_size: int,
    epochs: int,
    seeds: list[int],
    shuffle: bool = True,
    callbacks: list[list[keras.callbacks.Callback]] | None = None,
    initial_epoch: int = 0,
    stopped: list[bool] | None = None,
    on_epochs_end: SeedsEpochCallback | None = None,
) -> list[History]:
    """fit_compiled for several seeds of one network at once, in one XLA program per epoch.

    `networks[i]` is the network built (and compiled) with `seeds[i]`: all the same architecture,
    each with its own initial weights and Dropout seed state. Their states (weights, optimizer
    slots and iteration count, SeedGenerator states, metrics) are stacked on a leading axis and
    the epoch is jax.vmap'ed over it, each seed with its own shuffle order (the one fit_compiled
    draws for that seed). Each seed does fit_compiled's math, to float rounding: vmapped matrix
    products may sum in another order than the unbatched ones.

    Per seed, as fit_compiled: its callbacks get the epoch-level calls with its own logs, its
    network holds its state after every epoch (written back for the callbacks to read and save)
    and at the end; a NaN epoch or `stop_training` ends that seed (its state stops changing) while
    the others go on. Callbacks may read a running seed's network but not change it: the next epoch
    starts from the stacked state. `stopped[i]`: seed i already ended in a resumed run (its
    network holds its final state and has `stop_training` set). Returns each seed's history.
    """
    if not networks or len(networks) != len(seeds):
        raise ValueError(f"one network per seed is needed, got {len(networks)} networks for {len(seeds)} seeds")
    for network in networks:
        _check_network(network)
    x, y = _as_floatx(x), _as_floatx(y)
    val_x, val_y = _as_floatx(validation[0]), _as_floatx(validation[1])
    _check_data(x, y, val_x, val_y, batch_size)
    for network in networks:
        network._symbolic_build(data_batch=(x[:batch_size], y[:batch_size]))
    # One network's pure train_step/test_step serves all: the state they read is the argument.
    lead = networks[0]
    train_epoch, evaluate = _compile_seeds(lead)
    train_data: Batch = jax.device_put((x, y))
    val_data: Batch = jax.device_put((val_x, val_y))
    epoch_rows = _seeds_rows(len(x), batch_size, shuffle, seeds, skip=initial_epoch)
    count = len(networks)
    unstack = jax.jit(lambda stacked: [jax.tree.map(lambda a: a[i], stacked) for i in range(count)])

    active = [not done for done in (stopped or [False] * count)]
    histories: list[History] = [{} for _ in networks]
    last_logs: list[Logs] = [{} for _ in networks]
    callback_lists = [keras.callbacks.CallbackList(seed_callbacks, model=network)
                      for network, seed_callbacks in zip(networks, callbacks or [[] for _ in networks])]
    for network, running in zip(networks, active):
        network.stop_training = not running
    for callback_list in callback_lists:
        callback_list.on_train_begin()
    # fit resets the metrics at every epoch start (and evaluate() before validating): their reset
    # values are the same for every seed, stacked once.
    lead.reset_metrics()
    reset_metrics = [jnp.broadcast_to(v.value, (count, *v.shape)) for v in lead.metrics_variables]
    stacked = [network._get_jax_state(trainable_variables=True, non_trainable_variables=True,
                                      optimizer_variables=True) for network in networks]
    trainable, non_trainable, optimizer = (jax.tree.map(lambda *a: jnp.stack(a), *parts) for parts in zip(*stacked))
    try:
        for epoch in range(initial_epoch, epochs if any(active) else initial_epoch):
            for i in range(count):
                if active[i]:
                    callback_lists[i].on_epoch_begin(epoch)
            mask = jnp.asarray(active)
            (trainable, non_trainable, optimizer, _), logs = train_epoch(
                (trainable, non_trainable, optimizer, reset_metrics), train_data, *next(epoch_rows), mask)
            (trainable, non_trainable, metrics), val_logs = evaluate(
                (trainable, non_trainable, reset_metrics), val_data, mask)
            logs = jax.device_get(logs | {f"val_{name}": value for name, value in val_logs.items()})
            states = unstack((trainable, non_trainable, optimizer, metrics))
            for i, network in enumerate(networks):
                if not active[i]:
                    continue
                seed_logs = {name: float(values[i]) for name, values in logs.items()}
                # What the network holds after fit's epoch: the trained weights and optimizer, and
                # the metrics of the validation that followed.
                _assign_state(network, dict(zip(TRAIN_STATE_KEYS, states[i])))
                for name, value in seed_logs.items():
                    histories[i].setdefault(name, []).append(value)
                last_logs[i] = seed_logs
                callback_lists[i].on_epoch_end(epoch, dict(seed_logs))
                if not math.isfinite(seed_logs["loss"]) or network.stop_training:
                    active[i] = False
            if on_epochs_end is not None:
                on_epochs_end(epoch, list(active))
            if not any(active):
                break
    finally:
        if epochs > 0:
            for network in networks:
                network.optimizer.finalize_variable_values(network.trainable_weights)
    for callback_list, logs in zip(callback_lists, last_logs):
        callback_list.on_train_end(logs)
    return histories
