"""A DVC remote that fails says so in one line: its name, its URL, the cause and what to do.

DVC reports an unreachable, read-only or misconfigured remote as a few `ERROR: failed to transfer`
lines per file and then a traceback through our code (or, from `dvc repro --pull`, "unexpected
error", exit 255, even when nothing needed pulling). Here the remote's failure is a RemoteError
whose message is one line; DVC's own log lines about it are kept back while it works
(`quiet_transfers`), the first of them becoming the cause where the exception says less.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

from nnstudy.core.errors import StudyError

# The loggers DVC's transfers log their per-file failures to (else printed by logging's last resort).
DVC_LOGGERS = ("dvc", "dvc_data", "dvc_objects")
UNREACHABLE = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT, errno.ECONNRESET,
               errno.EHOSTDOWN}
UNWRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT}
KEPT = "your local work is kept"


class RemoteError(StudyError):
    """The DVC remote cannot be reached, written or used as configured; the message is one line:
    `problem` (the remote's name and URL, and the cause), then `remedy` (what to do)."""

    def __init__(self, problem: str, remedy: str):
        super().__init__(f"{problem}; {remedy}")
        self.problem, self.remedy = problem, remedy


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        cause = record.exc_info[1] if record.exc_info else None
        self.messages.append(f"{record.getMessage()}: {cause}" if cause else record.getMessage())


def remote_name_and_url(root: Path, name: str | None = None) -> tuple[str, str]:
    """The remote `name` (default: the default remote) and its URL, from DVC's config; ('?', '?')
    where the config names none."""
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            config = repo.config
            name = name or config["core"].get("remote") or "?"
            return name, str(config["remote"].get(name, {}).get("url", "?"))
    except Exception:  # a config DVC cannot read: the caller's error says so
        return name or "?", "?"


def describe(error: BaseException, name: str, url: str, logged: list[str] = ()) -> RemoteError:
    """The RemoteError for `error`, raised while working with the remote `name` at `url`."""
    from dvc.config import ConfigError, NoRemoteError

    while isinstance(error.__cause__, (OSError, ConfigError)):  # DVC wraps the real cause (RunCacheNotSupported)
        error = error.__cause__
    where = f"the DVC remote '{name}'" + (f" ({url})" if url != "?" else "")
    if isinstance(error, NoRemoteError):
        return RemoteError("no default DVC remote is configured", "add one (`dvc remote add -d NAME URL`) and re-run")
    if isinstance(error, ConfigError):
        return RemoteError(f"{where} is misconfigured: {error}",
                           f"fix it (`dvc remote list`, `dvc remote modify`), then re-run; {KEPT}")
    code = error.errno if isinstance(error, OSError) else None
    cause = (error.strerror or str(error)) if isinstance(error, OSError) else str(error)
    if isinstance(error, OSError) and error.filename:
        cause = f"{cause}: {error.filename}"
    cause = cause.strip() or (logged[0] if logged else type(error).__name__)
    if code in UNREACHABLE or isinstance(error, (socket.gaierror, TimeoutError, ConnectionError)):
        return RemoteError(f"{where} cannot be reached: {cause[0].lower()}{cause[1:]}",
                           f"check that the server is up and the URL is right (`dvc remote modify {name} url "
                           f"...`), then re-run; {KEPT}")
    if code in UNWRITABLE:
        return RemoteError(f"{where} cannot be written: {cause[0].lower()}{cause[1:]}",
                           f"get write access to it, or push to another remote (`dvc remote default NAME`), "
                           f"then re-run; {KEPT}")
    if code == errno.ENOENT:  # a key file or a folder the remote's config names
        return RemoteError(f"{where} is misconfigured: {cause[0].lower()}{cause[1:]}",
                           f"fix it (`dvc remote modify [--local] {name} ...`), then re-run; {KEPT}")
    return RemoteError(f"{where} failed: {cause}", f"check it (`dvc remote list`), then re-run; {KEPT}")


@contextlib.contextmanager
def quiet_transfers() -> Iterator[list[str]]:
    """DVC's log records at WARNING and above are kept in the yielded list instead of printed (DVC's
    own handlers, which print them, are set aside meanwhile)."""
    keep = _Keep()
    loggers = [logging.getLogger(name) for name in DVC_LOGGERS]
    saved = [(logger.handlers[:], logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.handlers = [handler for handler in logger.handlers if handler.level < logging.WARNING] + [keep]
        logger.propagate = False
    try:
        yield keep.messages
    finally:
        for logger, (handlers, propagate) in zip(loggers, saved):
            logger.handlers, logger.propagate = handlers, propagate


@contextlib.contextmanager
def remote_errors(root: Path, name: str | None = None) -> Iterator[None]:
    """Any failure of the remote inside becomes a RemoteError (one line); DVC's lines stay quiet."""
    from dvc.exceptions import DvcException

    with quiet_transfers() as logged:
        try:
            yield
        except (OSError, DvcException) as error:
            raise describe(error, *remote_name_and_url(root, name), logged) from None


def check_remote(root: Path, name: str | None = None) -> None:
    """Raise RemoteError unless the remote answers: a look at its top folder (seconds at most)."""
    from dvc.repo import Repo

    with remote_errors(root, name), Repo(str(root)) as repo:
        odb = repo.cloud.get_remote_odb(name)
        odb.fs.exists(odb.path)


def missing_outputs(root: Path) -> list[str]:
    """The outputs dvc.lock records (by their hash) that are neither in the workspace nor in the
    local cache: what `dvc repro --pull` would have to pull."""
    from dvc.repo import Repo

    missing = []
    with Repo(str(root)) as repo:
        for stage in repo.index.stages:
            for out in stage.outs:
                if out.hash_info and out.hash_info.value and not out.exists and \
                        not out.cache.exists(out.hash_info.value):
                    missing.append(str(out.def_path))
    return sorted(missing)
