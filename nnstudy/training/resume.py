"""Resume a killed training stage: finished seeds are kept, the running seed restarts from its last epoch.

DVC deletes a stage's outputs before it runs it, so the checkpoints live outside them, in the cache
(`NNSTUDY_CACHE`, default ~/.cache/nnstudy) under `resume/<key>/`. The key hashes everything the
stage's results depend on: its name, its settings, the bytes of the files it reads (data, settings
files), the study's code and the library versions. A changed setting is another key, so a stale
checkpoint is never resumed; and the key does not name the workspace, so a queued experiment (run
in a temporary copy of the repository) finds the checkpoint its killed worker left.

    resume/<key>/about.json               the stage and workspace that hold the folder
    resume/<key>/seed_<s>/epoch_<k>.ckpt  the running seed after k finished epochs (the last one only)
    resume/<key>/seed_<s>/record.json     a finished seed: what the stage needs of it, and
    resume/<key>/seed_<s>/files/...       the outputs it wrote, copied back on a rerun
    resume/<key>/seeds_together/epoch_<k>.ckpt  with `seeds_together`: all the seeds, trained as one
                                          program, after k epochs, in one file (a seed that stopped
                                          early is in it with its final state)

An epoch's state is everything the next epoch reads, so a resumed run is the uninterrupted run:
every variable of the network (weights, BatchNorm statistics, the Dropout/augmentation
SeedGenerator states), of its optimizer (slots, iteration count) and of its metrics; the shuffle
RNG (NumPy's global one for `fit` on JAX; the compiled loop's own generator is replayed from its
seed; on TensorFlow, once keras.utils.set_random_seed has run, fit's tf.data pipeline shuffles in
the same order every epoch, so there is no state to keep);
early stopping's state (wait, best value, best epoch, best weights); the history so far; the
DVCLive step and summary. The file is written to a temporary name and renamed, so a kill during a
write leaves the previous epoch's file whole. The stage deletes its folder when it completes.

NNSTUDY_RESUME=0 turns checkpointing off (to measure what it costs).
"""

import fcntl
import hashlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from nnstudy.core import paths
from nnstudy.core.files import copy_as_committed

ABOUT = "about.json"
FORMAT = 1  # bump when the checkpoint's layout changes: old checkpoints get another key
STALE_DAYS = 30  # a checkpoint untouched this long is deleted by the next stage that opens one
_PACKAGE = Path(__file__).resolve().parents[1]  # nnstudy/
CODE_DIRS = (_PACKAGE, _PACKAGE.parent / "stages")


def enabled() -> bool:
    return os.environ.get("NNSTUDY_RESUME", "1") != "0"


def _hash_path(digest: "hashlib._Hash", path: Path, name: str) -> None:
    """A file's or folder's name and bytes (folders in sorted order, caches skipped)."""
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            if child.is_file() and "__pycache__" not in child.parts:
                _hash_path(digest, child, f"{name}/{child.relative_to(path).as_posix()}")
        return
    digest.update(f"\0{name}\0".encode())
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)


def stage_key(stage: str, settings: Any, inputs: Iterable[Path]) -> str:
    """A hash of what the stage's results depend on: a new value of any of them is a new key."""
    versions = {"python": sys.version, "numpy": np.__version__, "keras": keras.__version__,
                "backend": keras.backend.backend(), "format": FORMAT}
    for library in ("jax", "jaxlib", "tensorflow"):
        module = sys.modules.get(library)
        versions[library] = getattr(module, "__version__", None)
    digest = hashlib.sha256(json.dumps({"stage": stage, "settings": settings, "versions": versions},
                                       sort_keys=True, default=str).encode())
    for path in inputs:
        _hash_path(digest, Path(path), Path(path).as_posix())
    for folder in CODE_DIRS:
        for source in sorted(folder.rglob("*.py")):
            _hash_path(digest, source, source.relative_to(folder.parent).as_posix())
    return digest.hexdigest()[:32]


def _replace_atomically(path: Path, write) -> None:
    """Write to a temporary name, then rename: a kill mid-write leaves the previous file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        if error.filename is None:  # a write to the open file names none: the full cache's message needs it
            raise OSError(error.errno, error.strerror, str(path)) from None
        raise


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target)
    else:
        shutil.copy2(source, target)


@dataclass
class EpochState:
    """A seed's training state after `epoch` finished epochs."""
    epoch: int
    variables: list[np.ndarray]
    history: dict[str, list[float]]
    fit_seconds: float
    live_step: int | None = None
    live_summary: dict = field(default_factory=dict)
    numpy_rng: tuple | None = None
    early_stop: dict | None = None  # wait, best, best_epoch, stopped_epoch
    best_weights: list[np.ndarray] | None = None
    extra: dict = field(default_factory=dict)  # the caller's own (e.g. the transfer run's phase)


def _state_variables(network: keras.Model) -> list:
    """Every variable a training epoch reads or writes, in a fixed order for a given network."""
    seen, ordered = set(), []
    optimizer = network.optimizer.variables if network.optimizer is not None and network.optimizer.built else []
    for variable in [*network.variables, *optimizer, *network.metrics_variables]:
        if id(variable) not in seen:
            seen.add(id(variable))
            ordered.append(variable)
    return ordered


def capture(network: keras.Model) -> list[np.ndarray]:
    """Copies of every state variable's value (taken now: training goes on changing them)."""
    variables = _state_variables(network)
    if keras.backend.backend() == "jax":
        import jax

        # One transfer for all of them: a third of the time of one convert_to_numpy per variable.
        return [np.array(value) for value in jax.device_get([v.value for v in variables])]
    return [keras.ops.convert_to_numpy(v.value).copy() for v in variables]


def restore(network: keras.Model, values: list[np.ndarray]) -> None:
    variables = _state_variables(network)
    if len(variables) != len(values) or any(tuple(v.shape) != a.shape for v, a in zip(variables, values)):
        raise ValueError("the checkpoint does not fit this network (another layout); delete it and rerun")
    for variable, value in zip(variables, values):
        variable.assign(value)


MAGIC = b"nnstudy-checkpoint\n"
SUFFIX = ".ckpt"


def _write_arrays(path: Path, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """One file: MAGIC, the header's length (8 bytes), a JSON header, then every array's raw bytes.

    (np.savez, a zip archive, took ~4x as long for the MLP's 1.6 MB: at 100 epochs a seed, the
    difference is seconds per stage.)
    """
    # (not np.ascontiguousarray: it makes a 0-d array, such as the iteration count, 1-d)
    arrays = {name: np.require(array, requirements="C") for name, array in arrays.items()}
    specs, offset = [], 0
    for name, array in arrays.items():
        specs.append({"name": name, "dtype": array.dtype.str, "shape": list(array.shape), "offset": offset})
        offset += array.nbytes
    # NaN/Infinity stay JSON's extensions: a diverging epoch's NaN loss must come back as NaN.
    header = json.dumps({"meta": meta, "arrays": specs, "size": offset}, default=_plain).encode()
    with path.open("wb") as handle:
        handle.write(MAGIC + len(header).to_bytes(8, "little") + header)
        for array in arrays.values():
            handle.write(array.data)


def _read_arrays(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise ValueError("not a checkpoint")
    start = len(MAGIC) + 8
    length = int.from_bytes(data[len(MAGIC):start], "little")
    header = json.loads(data[start:start + length])
    body = memoryview(data)[start + length:]
    if len(body) != header["size"]:
        raise ValueError(f"{len(body)} bytes of arrays, {header['size']} expected (truncated)")
    arrays = {}
    for spec in header["arrays"]:
        dtype = np.dtype(spec["dtype"])
        count = int(np.prod(spec["shape"], dtype=np.int64))
        arrays[spec["name"]] = np.frombuffer(body, dtype, count, spec["offset"]).reshape(tuple(spec["shape"])).copy()
    return header["meta"], arrays


class SeedCheckpoint:
    """The running seed's last epoch, in `folder` (one file, replaced every epoch)."""

    def __init__(self, folder: Path, seed: int):
        self.folder, self.seed = folder, seed

    def files(self) -> list[Path]:
        return sorted(self.folder.glob(f"epoch_*{SUFFIX}"), key=lambda p: int(p.stem.split("_")[1]))

    def load(self) -> EpochState | None:
        for path in reversed(self.files()):
            try:
                meta, arrays = _read_arrays(path)
                state = _decode(meta, arrays)
            except (OSError, ValueError, KeyError) as error:  # damaged (a full disk): try the one before
                print(f"  {path}: unreadable checkpoint ({error}); ignored", file=sys.stderr)
                continue
            return state
        return None

    def save(self, state: EpochState) -> None:
        meta, arrays = _encode(state)
        path = self.folder / f"epoch_{state.epoch}{SUFFIX}"
        _replace_atomically(path, lambda target: _write_arrays(target, meta, arrays))
        for older in self.files():
            if older != path:
                older.unlink(missing_ok=True)


def _encode(state: EpochState, prefix: str = "") -> tuple[dict, dict[str, np.ndarray]]:
    """One seed's state as a JSON-able header and named arrays (names prefixed by `prefix`)."""
    arrays = {f"{prefix}v{i}": v for i, v in enumerate(state.variables)}
    arrays |= {f"{prefix}b{i}": w for i, w in enumerate(state.best_weights or [])}
    rng = None
    if state.numpy_rng is not None:
        arrays[f"{prefix}rng_keys"] = np.asarray(state.numpy_rng[1])
        rng = [state.numpy_rng[0], *(_plain(x) for x in state.numpy_rng[2:])]
    meta = {"epoch": state.epoch, "variables": len(state.variables), "history": state.history,
            "fit_seconds": state.fit_seconds, "live_step": state.live_step, "live_summary": state.live_summary,
            "numpy_rng": rng, "early_stop": state.early_stop,
            "best_weights": None if state.best_weights is None else len(state.best_weights),
            "extra": state.extra}
    return meta, arrays


def _decode(meta: dict, arrays: dict[str, np.ndarray], prefix: str = "") -> EpochState:
    variables = [arrays[f"{prefix}v{i}"] for i in range(meta["variables"])]
    best = [arrays[f"{prefix}b{i}"] for i in range(meta["best_weights"])] if meta["best_weights"] is not None else None
    rng = meta["numpy_rng"]
    if rng is not None:
        rng = (rng[0], arrays[f"{prefix}rng_keys"], *rng[1:])
    return EpochState(meta["epoch"], variables, meta["history"], meta["fit_seconds"], meta["live_step"],
                      meta["live_summary"], rng, meta["early_stop"], best, meta["extra"])


@dataclass
class SeedsState:
    """Seeds trained together (one vmapped program) after `epoch` epochs of the run: each seed's state,
    and whether it had already ended (early stopping, NaN) at its own state's epoch."""
    epoch: int
    seeds: dict[int, EpochState]
    stopped: dict[int, bool]


class SeedsCheckpoint:
    """The seeds trained together, all after the same epoch, in one file (one atomic rename): a kill
    between two seeds' saves cannot leave them at different epochs, which one program cannot resume.

    Each seed's Checkpointing callback hands its state to `slot(seed)`; `commit` writes them all.
    A seed that stopped keeps the state it stopped with, re-written with every later epoch.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.pending: dict[int, EpochState] = {}

    def slot(self, seed: int) -> "SeedSlot":
        return SeedSlot(self, seed)

    def files(self) -> list[Path]:
        return sorted(self.folder.glob(f"epoch_*{SUFFIX}"), key=lambda p: int(p.stem.split("_")[1]))

    def commit(self, epoch: int, stopped: dict[int, bool]) -> None:
        meta = {"epoch": epoch, "seeds": {}}
        arrays: dict[str, np.ndarray] = {}
        for seed, state in self.pending.items():
            seed_meta, seed_arrays = _encode(state, prefix=f"s{seed}/")
            meta["seeds"][str(seed)] = seed_meta | {"stopped": stopped[seed]}
            arrays |= seed_arrays
        path = self.folder / f"epoch_{epoch}{SUFFIX}"
        _replace_atomically(path, lambda target: _write_arrays(target, meta, arrays))
        for older in self.files():
            if older != path:
                older.unlink(missing_ok=True)

    def load(self, seeds: Iterable[int]) -> SeedsState | None:
        """The last epoch saved, for `seeds` (all of them in the file; a subset when the killed run
        finished some seeds' outputs already). None: nothing to resume."""
        for path in reversed(self.files()):
            try:
                meta, arrays = _read_arrays(path)
                found = {seed: (_decode(meta["seeds"][str(seed)], arrays, prefix=f"s{seed}/"),
                                bool(meta["seeds"][str(seed)]["stopped"])) for seed in seeds}
            except (OSError, ValueError, KeyError) as error:
                print(f"  {path}: unreadable checkpoint ({error}); ignored", file=sys.stderr)
                continue
            self.pending = {seed: state for seed, (state, _) in found.items()}
            return SeedsState(meta["epoch"], self.pending.copy(), {seed: stop for seed, (_, stop) in found.items()})
        return None


class SeedSlot:
    """One seed's place in a SeedsCheckpoint, with SeedCheckpoint's `save` (what Checkpointing calls)."""

    def __init__(self, group: SeedsCheckpoint, seed: int):
        self.group, self.seed = group, seed

    def save(self, state: EpochState) -> None:
        self.group.pending[self.seed] = state


def _plain(value: Any) -> Any:
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class Checkpointing(keras.callbacks.Callback):
    """Saves the seed's state at the end of every epoch after which training goes on, and puts early
    stopping's state back at the start of a resumed run. Must come after the other callbacks: it
    sees their decisions (EarlyStopping's, TerminateOnNaN's stop) and restores what their
    on_train_begin reset.

    The last epoch is not saved: a run killed after it resumes from the one before (one epoch lost),
    which spares restoring the end of training (early stopping's restored weights, the optimizer's
    final values) from a file.
    """

    def __init__(self, checkpoint: SeedCheckpoint, epochs: int, resumed: EpochState | None, live=None,
                 early_stop: keras.callbacks.EarlyStopping | None = None, numpy_rng: bool = True,
                 extra: dict | None = None, history_offset: int = 0):
        super().__init__()
        self.checkpoint, self.epochs, self.live, self.early_stop = checkpoint, epochs, live, early_stop
        self.numpy_rng, self.extra, self.history_offset = numpy_rng, extra or {}, history_offset
        self.resumed = resumed
        self.history = {name: list(values) for name, values in resumed.history.items()} if resumed else {}
        self.seconds_before = resumed.fit_seconds if resumed else 0.0
        self.start = time.perf_counter()

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.start = time.perf_counter()
        if self.resumed is not None and self.early_stop is not None and self.resumed.early_stop is not None:
            for name, value in self.resumed.early_stop.items():
                setattr(self.early_stop, name, value)
            self.early_stop.best_weights = self.resumed.best_weights

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = dict(logs or {})
        for name, value in logs.items():
            self.history.setdefault(name, []).append(float(value))
        done = epoch + 1
        if done >= self.epochs or self.model.stop_training or not math.isfinite(float(logs.get("loss", 0.0))):
            return
        self.save(done)

    def save(self, done: int) -> None:
        """The state after `done` epochs of this fit (0: before its first, when early stopping is fresh)."""
        stop = self.early_stop if done > 0 else None
        self.checkpoint.save(EpochState(
            epoch=self.history_offset + done,
            variables=capture(self.model),
            history=self.history,
            fit_seconds=self.seconds_before + time.perf_counter() - self.start,
            live_step=None if self.live is None else self.live.step,
            live_summary={} if self.live is None else dict(self.live.summary),
            numpy_rng=np.random.get_state() if self.numpy_rng else None,
            early_stop=None if stop is None else {"wait": stop.wait, "best": _plain_float(stop.best),
                                                   "best_epoch": stop.best_epoch, "stopped_epoch": stop.stopped_epoch},
            best_weights=None if stop is None or stop.best_weights is None else list(stop.best_weights),
            extra=self.extra | {"epoch_in_fit": done},
        ))


def _plain_float(value: Any) -> Any:
    return None if value is None else float(value)


def resume_network(network: keras.Model, state: EpochState, first_batch: tuple[np.ndarray, np.ndarray] | None,
                   live=None) -> None:
    """Put a freshly built, compiled network (and its DVCLive run) back in the state after `state.epoch`.

    `first_batch` builds the optimizer's and metrics' variables, to take the saved values; None for a
    state saved before fit built them (the start of a phase), which fit then builds as it would have.
    """
    if first_batch is not None:
        network._symbolic_build(data_batch=first_batch)
    restore(network, state.variables)
    if state.numpy_rng is not None:
        np.random.set_state(state.numpy_rng)
    if live is not None:
        live.summary.update(state.live_summary)
        live.step = state.live_step


def holder(folder: Path) -> str:
    """' (PID n, in workspace w)': who holds a stage's checkpoints, from the note it left; '' if unknown."""
    try:
        about = json.loads((folder / ABOUT).read_text())
        return f" (PID {about['pid']}, in {about['workspace']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def _delete(folder: Path) -> None:
    """Delete a key's folder so that a kill midway leaves no half of it under the key: renamed first
    (at once) to a name no stage asks for, then deleted. (A kill inside rmtree once left a finished
    seed's record without its model, and every later run of the stage failed on it.)"""
    doomed = folder.with_name(f"{folder.name}.deleting-{os.getpid()}")
    try:
        os.rename(folder, doomed)
    except FileNotFoundError:
        return
    shutil.rmtree(doomed, ignore_errors=True)


def _hold(lock_path: Path):
    """The lock file `lock_path`, open and locked by this process; None if another process holds it.

    Its holder deletes the lock file once the stage completes: a process that opened the file just
    before that holds a lock on a file nobody else will open, while a third creates a new one. So the
    lock counts only if the path still names the locked file; else it is taken again on the new one."""
    while True:
        lock = lock_path.open("a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            return None
        try:
            same = os.stat(lock_path).st_ino == os.fstat(lock.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return lock
        lock.close()


class StageCheckpoints:
    """One stage's checkpoints: the seeds it finished and the running seed's last epoch.

    A second process with the same key (two queued experiments training the same thing at once)
    runs without checkpoints rather than write over the first one's.
    """

    def __init__(self, stage: str, key: str | None, root: Path | None = None):
        self.stage = stage
        self.folder = None if key is None else (root or paths.cache_dir() / "resume") / key
        self._lock = None
        if self.folder is not None:
            self.folder.parent.mkdir(parents=True, exist_ok=True)
            lock = _hold(self.folder.parent / f"{key}.lock")
            if lock is None:
                print(f"{stage}: another process{holder(self.folder)} is training the same settings; running "
                      "without checkpoints", file=sys.stderr)
                self.folder = None
            else:
                self._lock = lock
                # Who holds the folder: its stage and workspace (a queued experiment's is a temporary
                # copy inside its repository), for a user (or a test) looking at the cache.
                self.folder.mkdir(exist_ok=True)
                _replace_atomically(self.folder / ABOUT, lambda target: target.write_text(
                    json.dumps({"stage": stage, "workspace": str(Path.cwd()), "pid": os.getpid()})))

    @classmethod
    def open(cls, stage: str, settings: Any, inputs: Iterable[Path], root: Path | None = None) -> "StageCheckpoints":
        if not enabled():
            return cls(stage, None, root)
        root = root or paths.cache_dir() / "resume"
        prune(root)
        return cls(stage, stage_key(stage, settings, inputs), root)

    @classmethod
    def held_by_the_stage(cls, stage: str, folder: str | None) -> "StageCheckpoints":
        """The stage's checkpoints, in a helper process that trains some of its seeds: the stage's
        process holds the folder (and its lock); each helper writes only its own seeds' folders."""
        checkpoints = cls(stage, None)
        checkpoints.folder = None if folder is None else Path(folder)
        return checkpoints

    @property
    def active(self) -> bool:
        return self.folder is not None

    def seed(self, seed: int) -> SeedCheckpoint | None:
        return SeedCheckpoint(self.folder / paths.seed_name(seed), seed) if self.active else None

    def seeds_together(self) -> SeedsCheckpoint | None:
        """The checkpoint of the seeds trained together (`seeds_together`), None when inactive."""
        return SeedsCheckpoint(self.folder / "seeds_together") if self.active else None

    def finished(self, seed: int) -> dict | None:
        """A seed the killed run finished: its outputs copied back into the workspace, and its record."""
        if not self.active:
            return None
        folder = self.folder / paths.seed_name(seed)
        try:
            record = json.loads((folder / "record.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        try:
            for name in record["outputs"]:
                _copy(folder / "files" / name, Path(name))
        except FileNotFoundError as missing:
            # A file the record names is gone (deleted by hand, or by a cache clean-up): the seed
            # trains again rather than fail the stage.
            print(f"{self.stage}: seed {seed}'s checkpoint lacks {missing.filename}; training it again",
                  file=sys.stderr, flush=True)
            (folder / "record.json").unlink(missing_ok=True)
            return None
        print(f"{self.stage}: seed {seed} kept from the interrupted run", file=sys.stderr, flush=True)
        return record["record"]

    def finish_seed(self, seed: int, record: dict, outputs: Iterable[Path]) -> None:
        """Keep a finished seed's outputs (relative paths) and `record` until the stage completes."""
        if not self.active:
            return
        folder = self.folder / paths.seed_name(seed)
        names = []
        for output in outputs:
            copy_as_committed(Path(output), folder / "files" / Path(output).as_posix())
            names.append(Path(output).as_posix())
        _replace_atomically(folder / "record.json",
                            lambda target: target.write_text(json.dumps({"outputs": names, "record": record})))
        for epoch_file in folder.glob(f"epoch_*{SUFFIX}"):
            epoch_file.unlink()

    def complete(self) -> None:
        """The stage wrote every output: its checkpoints are no longer needed."""
        if self.folder is not None:
            _delete(self.folder)
        if self._lock is not None:
            Path(self._lock.name).unlink(missing_ok=True)
            self._lock.close()
            self._lock = None


def prune(root: Path, max_age_days: float = STALE_DAYS) -> None:
    """Delete checkpoints nobody will resume: a killed stage whose settings then changed leaves one
    under a key no run will ask for again. Untouched for `max_age_days`, and not held by a running stage."""
    if not root.is_dir():
        return
    cutoff = time.time() - max_age_days * 86400
    for folder in root.iterdir():
        if ".deleting-" in folder.name:  # a deletion that was killed midway: nobody's
            shutil.rmtree(folder, ignore_errors=True)
            continue
        if not folder.is_dir() or folder.stat().st_mtime > cutoff:
            continue
        lock_path = root / f"{folder.name}.lock"
        lock = _hold(lock_path)
        if lock is None:
            continue
        with lock:
            _delete(folder)
            lock_path.unlink(missing_ok=True)


def announce(label: str, state: EpochState, epochs: int) -> None:
    print(f"{label}: resuming at epoch {state.epoch + 1} of {epochs} ({state.epoch} epochs restored "
          "from the interrupted run)", file=sys.stderr, flush=True)
