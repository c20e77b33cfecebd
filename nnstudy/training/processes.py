"""Train a stage's seeds in processes side by side, where one process leaves cores idle.

At small batch sizes an update is a few thin matrix products: XLA (and TensorFlow) run each on one
thread, so a stage that trains its seeds one after another keeps one core busy and the others idle
(batch size 1 on 2 cores: `bench/seed_processes.json`). The seeds are independent, so N processes
train N seeds at once. Each runs the very program the sequential stage runs, from a fresh process
as a resumed stage does, so the outputs are the same bytes (tests/test_seed_processes.py).

    NNSTUDY_SEED_PROCESSES=auto   (default) as many processes as cores, for batch sizes up to
                                  ONE_CORE_BATCH on Linux; otherwise one
    NNSTUDY_SEED_PROCESSES=1      one process trains the seeds in turn
    NNSTUDY_SEED_PROCESSES=N      N processes (at most one per seed)

It changes no result, so it is a setting of the machine, not of the study: it is not in params.yaml
and no stage re-runs for it (as NNSTUDY_RESUME).
"""

import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from nnstudy.core.errors import StudyError

ENV = "NNSTUDY_SEED_PROCESSES"
# Measured (bench/seed_processes.json, 2 cores): up to this batch size a training process keeps one
# core busy, and two processes side by side each train at nearly their speed alone.
ONE_CORE_BATCH = 16
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def cores() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def seed_processes(batch_size: int, seeds: int, environ: dict[str, str] | None = None) -> int:
    """How many processes train a stage's `seeds` pending seeds at `batch_size` (see the module)."""
    value = (os.environ if environ is None else environ).get(ENV, "auto").strip().lower()
    if value == "auto":
        if batch_size > ONE_CORE_BATCH or not sys.platform.startswith("linux"):
            return 1
        return max(1, min(seeds, cores()))
    try:
        wanted = int(value)
    except ValueError:
        wanted = 0
    if wanted < 1:
        raise StudyError(f"{ENV}={value!r}: must be 'auto' or a whole number of processes >= 1 "
                         "(1 trains the seeds one after another)")
    return max(1, min(seeds, wanted))


def _die_with_parent(parent: int) -> None:
    """A helper must not outlive the stage: killed (kill -9) while its helpers train, a stage's
    rerun would otherwise race them for the workspace and the checkpoints."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the helpers end with their seed
        pass
    if os.getppid() != parent:  # the stage died before prctl took effect
        os._exit(1)


def in_processes(function: Callable[..., Any], seeds: list[int], processes: int, *args: Any) -> Iterator[tuple[int, Any]]:
    """(seed, function(seed, *args)) for every seed, computed in `processes` fresh processes and
    yielded in the order of `seeds`. `function` must be importable by name (a module's top level).

    Fresh processes ("spawn", not fork): JAX's runtime is multithreaded and must not be forked.
    A helper's exception is raised here (the others are then stopped); a helper that died is one line.
    """
    pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_die_with_parent, initargs=(os.getpid(),))
    try:
        futures = [(seed, pool.submit(function, seed, *args)) for seed in seeds]
        for seed, future in futures:
            try:
                yield seed, future.result()
            except BrokenProcessPool:
                raise StudyError(f"the process training seed {seed} died (killed, or out of memory); re-run the "
                                 f"stage: seeds already finished are kept ({ENV}=1 trains them in one process)") from None
    except BaseException:
        # Stop the helpers still training: the stage has failed, their seeds are wasted work.
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.kill()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
