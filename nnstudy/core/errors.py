"""The errors a user can fix: bad params, missing or corrupt data files, a machine that cannot write.

Stages turn these into a one-line message and exit code 2 instead of a traceback.
"""

import errno
import gc
import os
import signal
import sys
from collections.abc import Callable


class StudyError(Exception):
    """A problem the user can fix; the message names it."""


class ParamError(StudyError):
    """A value in params.yaml (or in a settings file written from it) is missing, misspelt, of the
    wrong type or out of range."""


class DataError(StudyError):
    """A data file is missing, truncated, corrupt or cannot be downloaded."""


class SetupError(StudyError):
    """The environment cannot hold the study's files: no home folder, an unusable NNSTUDY_CACHE."""


# The machine's faults a user can fix, by errno: what went wrong and what to do about it.
WRITABLE = "make it writable for this user (chmod u+w, or check its owner) and re-run"
MACHINE_FAULTS = {
    errno.EACCES: ("permission denied", WRITABLE),
    errno.EPERM: ("operation not permitted", WRITABLE),
    errno.ENOSPC: ("no space left on the device", "free some space (`dvc gc`, `df -h` shows where) and re-run"),
    errno.EDQUOT: ("disk quota exceeded", "free some space within your quota and re-run"),
    errno.EROFS: ("read-only file system", "work in a clone on a writable file system, or remount it read-write"),
}


# What the study's cache (NNSTUDY_CACHE) holds, and what of it may go: `dvc gc` cleans DVC's cache, not this one.
CACHE_CONTENTS = ("{cache}/resume holds the checkpoints of interrupted stages (delete it unless one is to "
                  "resume), {cache}/jax compiled programs and the rest downloads (both fetched or made again)")
CACHE_FULL = {errno.ENOSPC, errno.EDQUOT}


def study_cache() -> str:
    """The study's cache folder as configured (nnstudy.core.paths.cache_dir, without creating it)."""
    chosen = os.environ.get("NNSTUDY_CACHE")
    return chosen or os.path.join(os.path.expanduser("~"), ".cache", "nnstudy")


def machine_fault(error: OSError) -> str | None:
    """One line for an OSError the user can fix (naming the path, the cause and the remedy), else None.
    A full disk under the study's cache names the cache and what may be deleted there."""
    if error.errno not in MACHINE_FAULTS:
        return None
    cause, remedy = MACHINE_FAULTS[error.errno]
    cache = study_cache()
    # A copy that fills its target's disk names the target second (shutil: source, then target).
    named = error.filename2 if error.errno in CACHE_FULL and error.filename2 is not None else error.filename
    filename = os.fsdecode(named) if named is not None else None
    if error.errno in CACHE_FULL and filename is not None and os.path.abspath(filename).startswith(
            os.path.join(os.path.abspath(cache), "")):
        return (f"{filename}: {cause} (the study's cache, NNSTUDY_CACHE={cache}); free some space there: "
                f"{CACHE_CONTENTS.format(cache=cache)}; or point NNSTUDY_CACHE at a disk with room, and re-run")
    if filename is None:
        # No path to name (a write to an open file): the workspace or the study's cache.
        return f"a file this stage writes (in this workspace, or in the study's cache {cache}): {cause}; {remedy}"
    return f"{filename}: {cause}; {remedy}"


def fail(message: str, code: int = 2) -> None:
    """Print `error: message` and end the process with exit code `code` (2: the user's to fix), at once.

    os._exit, not sys.exit: a stage that imported DVCLive holds dvc and dulwich objects whose
    finalisers can run during interpreter shutdown, and the issue's probes saw "Exception ignored
    ... sys.meta_path is None" blocks printed under a failure. Exiting at once rules them out.
    Nothing is left to save on this path: the stage's outputs are written atomically
    (nnstudy.core.files), so there is no half-written file to flush.
    """
    sys.stdout.flush()
    print(f"error: {message}", file=sys.stderr, flush=True)
    os._exit(code)


INTERRUPTED = ("interrupted; the seeds and epochs it finished are kept as checkpoints "
               "(NNSTUDY_CACHE), and `dvc repro` resumes from them")


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(), its outputs replaced together at the end; a StudyError or a machine
    fault becomes `error: ...` on stderr and exit code 2, and leaves the old outputs. Ctrl-C is one
    line too (exit 130), and a stage `dvc` started stops by itself once that `dvc` is gone
    (nnstudy.core.lifeline)."""
    from nnstudy.core.files import all_or_nothing
    from nnstudy.core.lifeline import watch_starter

    if os.environ.get("DVC_STAGE"):  # started by `dvc` (which sets it): stop when that dvc is gone.
        # A stage started by hand is the user's own process: `nohup python -m stages.train …` outlives its shell.
        watch_starter(os.environ["DVC_STAGE"])
    try:
        with all_or_nothing():
            main()
        # Done: what is left is the interpreter's exit, whose last garbage collection walks every
        # object JAX and Keras made (~1 s of each stage's wall time, after its outputs are written).
        # Frozen objects are skipped; the files are already closed, so nothing waits on a finalizer.
        gc.freeze()
    except StudyError as error:
        fail(str(error))
    except OSError as error:
        message = machine_fault(error)
        if message is None:
            raise
        fail(message)
    except KeyboardInterrupt:
        fail(INTERRUPTED, 128 + signal.SIGINT)
