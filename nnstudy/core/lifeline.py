"""A process of the study ends when the process that started it is gone.

A stage killed with its parent's whole process group stops at once, but a parent killed alone (a
closed terminal, the OOM killer, `kill -9` of `dvc` or of `run.py study`) leaves its children
training with PID 1 as their parent. A rerun then races them for the workspace, DVC's lock and the
checkpoints ("another process is training the same settings").

Two mechanisms, because `dvc repro` starts a stage through a shell (`$SHELL -c "python -m
stages.train ..."`), which may or may not exec the command:

- `die_with_parent`: Linux's PR_SET_PDEATHSIG, for a child this code starts itself (the study's
  workers, a stage's helpers). It fires when the *thread* that started the child ends, so the child
  must be started from a thread that lives as long as its parent (here: the main thread).
- `watch_starter`: a thread in a stage `dvc` started (nnstudy.core.errors.run_stage) that polls the chain of processes above it, through any
  shells, up to the first that is not a shell (`dvc`, pytest, a terminal): once one of them has a new
  parent (the kernel re-parents the orphans of a dead process), the stage kills itself, exactly as
  a kill of its process group would; the checkpoints make the rerun resume.
"""

import ctypes
import os
import signal
import sys
import threading
import time
from pathlib import Path

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
SHELLS = frozenset({"sh", "dash", "bash", "zsh", "fish", "ksh", "mksh", "busybox"})
POLL_SECONDS = 1.0

try:  # resolved once, here: `die_with_parent` runs between fork and exec, where little is safe
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def die_with_parent(signum: int = signal.SIGKILL) -> None:
    """Ask the kernel to send this process `signum` when its parent (thread) ends; a no-op off Linux."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signum)


def _stat(pid: int) -> tuple[str, int] | None:
    """(command name, parent PID) of a process, from /proc; None when it is gone or /proc is absent."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The name is in parentheses and may hold spaces or parentheses itself: split at the last ')'.
    name = text[text.index("(") + 1:text.rindex(")")]
    return name, int(text[text.rindex(")") + 2:].split()[1])


def starter_chain(pid: int | None = None) -> list[tuple[int, int]]:
    """The links (process, its parent) from `pid` (default: this process) up through the shells
    above it to the first process that is not a shell: the one that started it."""
    links, pid = [], os.getpid() if pid is None else pid
    while (stat := _stat(pid)) is not None and stat[1] > 1:
        links.append((pid, stat[1]))
        parent = _stat(stat[1])
        if parent is None or parent[0] not in SHELLS:
            break
        pid = stat[1]
    if not links and not Path("/proc/self/stat").exists():  # no /proc: the direct parent alone
        links = [(os.getpid(), os.getppid())]
    return links


def broken_link(links: list[tuple[int, int]]) -> int | None:
    """The parent PID of the first link whose process has a new parent (its old parent died), or
    whose process is gone; None while the whole chain stands."""
    for pid, parent in links:
        now = os.getppid() if pid == os.getpid() else (_stat(pid) or (None, None))[1]
        if now != parent:
            return parent
    return None


def watch_starter(label: str, interval: float = POLL_SECONDS) -> threading.Thread | None:
    """Kill this process (SIGKILL, as a kill of its process group would) once the process that
    started it is gone; a daemon thread. None when there is nothing to watch (started by PID 1)."""
    links = starter_chain()
    if not links:
        return None

    def watch() -> None:
        while (gone := broken_link(links)) is None:
            time.sleep(interval)
        try:
            print(f"{label}: the process that started it (PID {gone}) is gone; stopping (a rerun resumes "
                  "from the last finished epoch)", file=sys.stderr, flush=True)
        except OSError:  # its terminal went with it
            pass
        os.kill(os.getpid(), signal.SIGKILL)

    thread = threading.Thread(target=watch, name="lifeline", daemon=True)
    thread.start()
    return thread
