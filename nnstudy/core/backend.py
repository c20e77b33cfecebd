"""Pick the Keras backend before Keras is imported, and make each stage start in about a second.

Keras reads KERAS_BACKEND once, at its first import, so every stage calls `activate()` with the
`backend` param before it imports anything that imports Keras (nnstudy.training.*).
"""

import gc
import importlib.abc
import os
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from nnstudy.core import paths

BACKENDS = ("jax", "tensorflow")

# Keras imports these at start-up only for optional features the study never uses (its scikit-learn
# wrappers, its image-gallery plots, pandas inputs): about 1.2 s of the 2.3 s `import keras` on JAX.
# Keras guards each import with `except ImportError`, so hiding them while Keras loads is safe; the
# study's own later imports of the same modules work as usual.
KERAS_OPTIONAL = ("sklearn", "matplotlib", "pandas")


class _Hide(importlib.abc.MetaPathFinder):
    def __init__(self, top_level: tuple[str, ...]):
        self.top_level = top_level

    def find_spec(self, name, path, target=None):  # noqa: ANN001 - importlib's protocol
        if name.partition(".")[0] in self.top_level:
            raise ImportError(f"{name} is hidden while Keras loads")
        return None


@contextmanager
def _hidden(top_level: tuple[str, ...]) -> Iterator[None]:
    hide = [name for name in top_level if name not in sys.modules]
    finder = _Hide(tuple(hide))
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


@contextmanager
def startup_imports() -> Iterator[None]:
    """Imports without Python's cyclic garbage collector; what they built is then set aside for good.

    Importing JAX, Keras, DVCLive and pandas allocates a large heap and next to no garbage, yet
    the collector's full passes over that growing heap took ~1 s of a stage's start-up on the
    study's machine (`python -m stages.train`'s imports: 4.0 s with it, 3.0 s without, under load).
    The imported modules live as long as the process, so gc.freeze() moves them out of every later
    collection too: training's, and the one at exit. Nesting is fine: the outermost one re-enables.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def activate(backend: str) -> None:
    """Select `backend` for this process and import Keras on it.

    On JAX, compiled XLA programs are kept on disk between processes (under NNSTUDY_CACHE): a
    stage that builds the same network as the last one loads its initialisers and training
    epoch in milliseconds instead of compiling them again (~1 s per stage). A cached program is
    the same program, so results do not change.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    loaded = sys.modules.get("keras")
    if loaded is not None:
        current = loaded.backend.backend()
        if current != backend:
            raise RuntimeError(f"Keras was already imported on {current!r}; cannot switch to {backend!r}")
        return
    os.environ["KERAS_BACKEND"] = backend
    with startup_imports():
        if backend == "jax":
            import jax

            jax.config.update("jax_compilation_cache_dir", str(paths.cache_dir() / "jax"))
            # Only programs that took a while to compile are worth a disk round-trip.
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.05)
            # A program that cannot be cached (a full NNSTUDY_CACHE) is compiled again next time: no
            # reason for a warning a program. A full cache stops the stage at its next checkpoint,
            # in one line that names the cache (nnstudy.core.errors.machine_fault).
            warnings.filterwarnings("ignore", message="Error writing persistent compilation cache entry")
        with _hidden(KERAS_OPTIONAL):
            import keras  # noqa: F401
    if backend != "tensorflow":
        # Keras asks `tensorflow.available` in keras.utils.set_random_seed and when saving a model,
        # and that question imports TensorFlow whenever it is installed (5-10 s, and TF's C++
        # start-up) although nothing on another backend uses it. Answer it once, with the truth
        # for this process: TensorFlow is not in use.
        from keras.src.utils import module_utils

        module_utils.tensorflow._available = False


def process_start() -> float:
    """When this process started (epoch seconds): stage start-up is measured from here.

    psutil's create_time adds the start tick to the boot time of /proc/stat, which Linux gives in
    whole seconds: every stage's start-up and stage time came out too long by the same fraction of
    a second (0.93 s on the study's machine). Here the process's age is read on the kernel's own
    clock instead (its start tick against CLOCK_BOOTTIME, both since boot), exact to a tick (10 ms).
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            # Field 22, starttime; the command name (field 2) may hold spaces, so count from its ')'.
            start_ticks = int(stat.read().rpartition(")")[2].split()[19])
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - age
    except (OSError, ValueError, IndexError, AttributeError):  # not Linux: psutil's figure
        import psutil

        return psutil.Process().create_time()
