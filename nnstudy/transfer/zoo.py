"""The zoo table: every model of the transfer study side by side, at the zoo's input size.

Per model: parameters, size on disk, peak memory of a training step, time per step and per
epoch, and (when zoo.epochs > 0 and the model's weights are available) test accuracy on the
target task. The timing is deliberately cheap: one untimed step that compiles, then `zoo.steps`
timed ones on random images, so even EfficientNetB7 costs seconds, not an epoch.

Every network is built and trained whole (everything trainable): the most a step can cost, as
training from scratch or unfreezing the whole base does.
"""

import ctypes
import gc
import math
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import psutil

from nnstudy.core.errors import DataError
from nnstudy.transfer.evaluate import TestSet
from nnstudy.transfer.models import (
    build_network, compile_network, freeze, imagenet_weights, trainable_count, unfreeze_all,
)
from nnstudy.transfer.params import APPLICATIONS, CNNS, MIN_INPUT_SIZE, Recipe, ZooParams
from nnstudy.transfer.training import Task, train_recipe

# The table's columns, in order: what the model is, what it weighs, what a step costs, how well it does.
COLUMNS = (
    "model", "kind", "input_size", "trained", "parameters", "trainable_parameters", "size_mb",
    "build_seconds", "first_step_seconds", "step_seconds", "batch_size", "train_size", "epoch_seconds",
    "peak_memory_mb", "memory_source", "accuracy", "note",
)
MB = 2 ** 20          # sizes and memory in MiB
SAMPLE_SECONDS = 0.005  # how often the process RSS is read while the timed steps run


def input_size(model: str, zoo: ZooParams) -> int:
    """The zoo's input size, raised to the model's minimum (xception 71, inceptionv3 75)."""
    return max(zoo.input_size, MIN_INPUT_SIZE[model])


def kind(model: str) -> str:
    return "cnn" if model in CNNS else "application"


# --- memory ---

def _release_freed_memory() -> None:
    """Collect garbage and hand freed heap back to the OS, so the next model's RSS starts from the truth.

    Without malloc_trim, glibc keeps a freed model's memory and reuses it: the next model would
    grow into it and look smaller than it is.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim, the RSS figures are rougher
        pass


def _device_stats() -> dict | None:
    """The accelerator allocator's statistics (JAX on a GPU or TPU); None on CPU."""
    if keras.backend.backend() != "jax":
        return None
    import jax

    device = jax.devices()[0]
    if device.platform == "cpu":
        return None
    stats = device.memory_stats()
    return stats if stats and "peak_bytes_in_use" in stats else None


class MemoryProbe:
    """Peak memory during the timed steps, above what was in use before the network was built.

    On an accelerator (JAX): device memory. Its `peak_bytes_in_use` is the peak since the process
    started, so it counts only when this model raised it; otherwise the highest `bytes_in_use`
    sampled during the steps is this model's peak.
    On CPU: the process's resident memory (RSS), sampled every SAMPLE_SECONDS in a thread:
    weights, optimizer state, activations, the compiled step and what XLA's runtime keeps, as
    the OS sees them. An estimate: a spike between samples is missed, and the first model of a
    process also carries the runtime's one-time start-up (tens of MB).
    """

    def __init__(self) -> None:
        _release_freed_memory()
        stats = _device_stats()
        self.source = "process RSS" if stats is None else "device"
        self._process = psutil.Process()
        self._baseline = self._in_use()
        self._peak_before = stats["peak_bytes_in_use"] if stats else 0
        self._highest = self._baseline

    def _in_use(self) -> int:
        if self.source == "device":
            return int(_device_stats()["bytes_in_use"])
        return int(self._process.memory_info().rss)

    @contextmanager
    def sampling(self) -> Iterator[None]:
        """Sample memory in use while the body runs."""
        # What compiling the step freed goes back to the OS first: XLA's compiler peaks at hundreds
        # of MB and glibc would keep it resident, so RSS would measure the compiler, not the step.
        _release_freed_memory()
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                self._highest = max(self._highest, self._in_use())
                done.wait(SAMPLE_SECONDS)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            self._highest = max(self._highest, self._in_use())

    def peak_mb(self) -> float:
        peak = self._highest
        if self.source == "device":
            device_peak = int(_device_stats()["peak_bytes_in_use"])
            if device_peak > self._peak_before:
                peak = device_peak
        return (peak - self._baseline) / MB


# --- one model ---

def saved_size_mb(network: keras.Model) -> float:
    """The network's size as a .keras file (weights and config; uncompiled, so no optimizer state)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "network.keras"
        network.save(path)
        return path.stat().st_size / MB


def random_batch(image_shape: tuple[int, int, int], num_classes: int, batch_size: int,
                 seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images like the task's (whole 0..255 levels scaled to [0, 1]) with random labels: a step's
    cost does not depend on what the pixels show."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (batch_size, *image_shape)).astype(np.float32) / np.float32(255)
    return x, rng.integers(0, num_classes, batch_size)


def free_session() -> None:
    """Drop Keras' global state so the next model starts from an empty session (drop the network first)."""
    keras.backend.clear_session()
    gc.collect()


def measure(model: str, zoo: ZooParams, recipe: Recipe, image_shape: tuple[int, int, int], num_classes: int,
            train_size: int, imagenet: Path | None = None, seed: int = 0) -> dict:
    """Size, speed and peak memory of training `model` whole: the timing columns of its row.

    `imagenet` is its ImageNet weights file (applications only); without it the weights are random,
    which costs the same per step. The first step compiles (or, on JAX, loads the program from
    the persistent compilation cache of an earlier run): it is reported apart and not timed again.
    """
    size = input_size(model, zoo)
    # zoo.train "head": the step every pretrained arm starts with (base frozen, in inference mode);
    # "all": the whole network, as from scratch or with the whole base unfrozen.
    pretrained = zoo.train == "head" or imagenet is not None
    weights = ("imagenet" if model in APPLICATIONS else "source") if pretrained else "none"
    network_recipe = replace(recipe, model=model, input_size=size, augment=False, weights=weights)
    memory = MemoryProbe()  # before building: the network's own weights count too
    start = time.perf_counter()
    network = build_network(network_recipe, image_shape, num_classes, imagenet=imagenet)
    build_seconds = time.perf_counter() - start
    size_mb = saved_size_mb(network)

    freeze(network) if zoo.train == "head" else unfreeze_all(network)
    compile_network(network, recipe.optimizer, recipe.learning_rate)
    x, y = random_batch(image_shape, num_classes, zoo.batch_size, seed)
    start = time.perf_counter()
    network.train_on_batch(x, y)  # returns numbers, so the step has finished (JAX dispatches asynchronously)
    first_step_seconds = time.perf_counter() - start
    steps = []
    with memory.sampling():
        for _ in range(zoo.steps):
            start = time.perf_counter()
            network.train_on_batch(x, y)
            steps.append(time.perf_counter() - start)
    step_seconds = statistics.median(steps)
    row = {
        "model": model, "kind": kind(model), "input_size": size, "trained": zoo.train,
        "parameters": int(network.count_params()),
        "trainable_parameters": trainable_count(network),
        "size_mb": size_mb, "build_seconds": build_seconds, "first_step_seconds": first_step_seconds,
        "step_seconds": step_seconds, "batch_size": zoo.batch_size, "train_size": train_size,
        # An epoch over the target training set at the zoo's batch size, from the median step.
        "epoch_seconds": step_seconds * math.ceil(train_size / zoo.batch_size),
        "peak_memory_mb": memory.peak_mb(), "memory_source": memory.source,
    }
    del network
    free_session()
    return row


# --- accuracy ---

def trained_weights(model: str, recipe: Recipe, zoo: ZooParams) -> tuple[str | None, str]:
    """Which weights the zoo trains `model` from ("none" | "imagenet"), or None and why not.

    The CNNs train from scratch (their `source` weights need the pretraining stage); an application
    only from ImageNet weights: from scratch, a few epochs on a small target task say nothing.
    """
    if zoo.epochs == 0:
        return None, "zoo.epochs is 0: timing only"
    if model in CNNS:
        return "none", f"from scratch, {zoo.epochs} epoch(s)"
    if recipe.weights != "imagenet":
        return None, f"transfer.weights is {recipe.weights}: applications train only from ImageNet weights"
    return "imagenet", f"ImageNet weights, at most {zoo.epochs} epoch(s) per phase"


def accuracy_on(network: keras.Model, test: TestSet, batch_size: int) -> float:
    probabilities = network.predict(test.x_float, batch_size=batch_size, verbose=0)
    return float(np.mean(probabilities.argmax(axis=1) == test.y))


def zoo_row(model: str, zoo: ZooParams, recipe: Recipe, task: Task, test: TestSet, seed: int = 0,
            augmentations: tuple[str, ...] = (), factor: float = 0.1,
            fetch: Callable[[str, int], Path] = imagenet_weights) -> dict:
    """One row of the table (every column of COLUMNS): measure the model, then train and test it
    when its weights are available. `fetch` finds the ImageNet weights (imagenet_weights)."""
    weights, note = trained_weights(model, recipe, zoo)
    imagenet = None
    if weights == "imagenet":  # fetched only to train: random weights time the same
        try:
            imagenet = fetch(model, input_size(model, zoo))
        except DataError:
            weights, note = None, "no ImageNet weights offline (random weights timed)"
    row = measure(model, zoo, recipe, task.image_shape, task.num_classes, len(task.x_train), imagenet, seed)
    accuracy = None
    if weights is not None:
        trained = replace(recipe, model=model, input_size=input_size(model, zoo), epochs=zoo.epochs,
                          weights=weights)
        result = train_recipe(trained, task, imagenet=imagenet, augmentations=augmentations, factor=factor)
        accuracy = None if result.diverged else accuracy_on(result.network, test, recipe.batch_size)
        if result.diverged:
            note += "; diverged"
        del result
        free_session()
    return {**row, "accuracy": accuracy, "note": note}
