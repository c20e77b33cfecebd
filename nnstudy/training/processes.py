"""Train a stage's seeds in processes side by side, where one process leaves cores idle.

A training process on the compiled loop keeps less than two cores busy: at small batch sizes an
update is a few thin matrix products, which XLA runs on one thread, and even at batch size 256 its
products are too small to split well. Measured on 2 cores (`bench/seed_processes.json`, full
Fashion-MNIST): two processes side by side train 1.93x as much as one alone at batch size 1, 1.52x
at 256; three, 2.06x and 1.68x. The seeds are independent, so the stage trains them all at once,
one process each. Each runs the very program the sequential stage runs, from a fresh process as a
resumed stage does, so the outputs are the same bytes (tests/test_seed_processes.py).

A helper pays a process's start-up (~2-3 s: imports, JAX, the data), so it pays only where a seed's
training is long: at small batch sizes, or over many examples (the full-size data sets; not the
default sample, whose batch-256 seeds fit in ~3 s). The transfer study's source networks (CNNs,
~10 s a seed on the default sample, ~2 min at full size) train side by side too, one process a core.

    NNSTUDY_SEED_PROCESSES=auto   (default, Linux) every seed at once, up to PER_CORE processes a
                                  core, for batch sizes up to ONE_CORE_BATCH or seeds of at least
                                  LONG_SEED examples (rows x epochs); otherwise one process
    NNSTUDY_SEED_PROCESSES=1      one process trains the seeds in turn
    NNSTUDY_SEED_PROCESSES=N      N processes (at most one per seed)

It changes no result, so it is a setting of the machine, not of the study: it is not in params.yaml
and no stage re-runs for it (as NNSTUDY_RESUME).
"""

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from nnstudy.core.errors import StudyError
from nnstudy.core.lifeline import die_with_parent

ENV = "NNSTUDY_SEED_PROCESSES"
ONE_CORE_BATCH = 16        # two processes still train 1.51x one alone at 16 (bench/seed_processes.json)
LONG_SEED = 1_000_000      # examples a seed trains on (rows x epochs): ~7 s at batch 256 on 2 cores
PER_CORE = 2               # at most this many processes a core: each holds the data and a JAX runtime
LONG_SOURCE_SEED = 2_000_000  # pixels a source network trains on: ~2.5 s of cnn_medium


def cores() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def count_setting(environ: Mapping[str, str] | None, name: str, what: str, one_means: str) -> int | None:
    """The environment variable `name`: None for 'auto' (its default), else a whole number >= 1 of
    `what`; anything else is a StudyError whose message says what 1 means (`one_means`)."""
    value = (os.environ if environ is None else environ).get(name, "auto").strip().lower()
    if value == "auto":
        return None
    try:
        wanted = int(value)
    except ValueError:
        wanted = 0
    if wanted < 1:
        raise StudyError(f"{name}={value!r}: must be 'auto' or a whole number of {what} >= 1 (1 {one_means})")
    return wanted


def processes_for(seeds: int, pays: bool, per_core: int = PER_CORE, environ: Mapping[str, str] | None = None) -> int:
    """How many processes train `seeds` pending seeds: NNSTUDY_SEED_PROCESSES if set, else (auto)
    one a seed up to `per_core` a core where side by side `pays`, and one process where it does not."""
    wanted = count_setting(environ, ENV, "processes", "trains the seeds one after another")
    if wanted is None:
        if seeds < 2 or not pays or not sys.platform.startswith("linux"):
            return 1
        return min(seeds, per_core * cores())
    return max(1, min(seeds, wanted))


def seed_processes(batch_size: int, seeds: int, examples: int = 0, environ: Mapping[str, str] | None = None) -> int:
    """How many processes train an MLP stage's `seeds` pending seeds at `batch_size`, each on
    `examples` examples (rows x epochs); see the module."""
    return processes_for(seeds, batch_size <= ONE_CORE_BATCH or examples >= LONG_SEED, environ=environ)


def source_processes(seeds: int, pixels: int, environ: Mapping[str, str] | None = None) -> int:
    """How many processes train the transfer study's source networks (`seeds` of them, each on
    `pixels` pixels: images x height x width x epochs). A CNN's convolutions keep ~1.4 of 2 cores
    busy, and a third process adds nothing (default sample: 1 seed alone 10.0 s, 2 side by side
    14.0 s, 3 21.3 s), so one process a core, where a seed is long enough to pay its start-up."""
    return processes_for(seeds, pixels >= LONG_SOURCE_SEED, per_core=1, environ=environ)


def _die_with_parent(parent: int) -> None:
    """A helper must not outlive the stage: killed (kill -9) while its helpers train, a stage's
    rerun would otherwise race them for the workspace and the checkpoints."""
    die_with_parent()  # off Linux a no-op: the helpers end with their seed
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
