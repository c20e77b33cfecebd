"""Hyperband on several processes or machines, through keras-tuner's own distributed mode.

keras-tuner runs one *chief* (the oracle, behind a gRPC server) and any number of *workers* that
ask it for trials, run them and report back; each process learns its role from three environment
variables: KERASTUNER_TUNER_ID ("chief" or a worker's name), KERASTUNER_ORACLE_IP and
KERASTUNER_ORACLE_PORT. With `tune.workers: N > 1` the tune stage becomes the chief and starts N
workers on this machine (`python -m stages.tune` with a worker's environment). Workers on other
machines join by address: they run the same command with the chief's address, in a clone at the
same commit whose `tuner/` folder is the chief's (a shared path: Hyperband's promoted trials start
from the checkpoint an earlier trial wrote).
"""

import os
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from nnstudy.core.errors import StudyError

CHIEF = "chief"
LISTEN = "NNSTUDY_TUNE_LISTEN"   # host:port the chief listens on; default 127.0.0.1 and a free port


def is_worker() -> bool:
    """This process is a keras-tuner worker (started by a chief, or joining one from another machine)."""
    return "KERASTUNER_ORACLE_IP" in os.environ and CHIEF not in os.environ.get("KERASTUNER_TUNER_ID", "")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def become_chief() -> tuple[str, int]:
    """Set this process's keras-tuner environment to the chief's; the address it will serve on."""
    host, _, port = os.environ.get(LISTEN, "").rpartition(":")
    if os.environ.get(LISTEN) and not (host and port.isdigit()):
        raise StudyError(f"{LISTEN}: expected host:port (e.g. 0.0.0.0:8000), got {os.environ[LISTEN]!r}")
    host, port = host or "127.0.0.1", int(port) if port else free_port()
    os.environ.update(KERASTUNER_TUNER_ID=CHIEF, KERASTUNER_ORACLE_IP=host, KERASTUNER_ORACLE_PORT=str(port))
    return host, port


@contextmanager
def local_workers(count: int, host: str, port: int, cwd: Path = Path(".")) -> Iterator[list[subprocess.Popen]]:
    """`count` worker processes of this stage on this machine, joined to the chief at host:port.

    keras-tuner's chief serves until the search is done, however its workers fare: if every local
    worker has died with an error, a watchdog ends the stage rather than leave it waiting forever.
    """
    connect = "127.0.0.1" if host in ("0.0.0.0", "") else host
    workers = []
    for index in range(count):
        env = dict(os.environ, KERASTUNER_TUNER_ID=f"worker{index}", KERASTUNER_ORACLE_IP=connect,
                   KERASTUNER_ORACLE_PORT=str(port))
        workers.append(subprocess.Popen([sys.executable, "-m", "stages.tune"], cwd=cwd, env=env))
    done = threading.Event()

    def watch() -> None:
        while not done.wait(2.0):
            codes = [w.poll() for w in workers]
            if all(code is not None for code in codes) and any(codes):
                print(f"tune: every worker has stopped, exit codes {codes}; the search cannot finish",
                      file=sys.stderr, flush=True)
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
    try:
        yield workers
        for worker in workers:
            worker.wait(timeout=600)
    finally:
        done.set()
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    failed = [w.returncode for w in workers if w.returncode]
    if failed:
        raise StudyError(f"tune: {len(failed)} of {count} workers failed (exit codes {failed}); see their errors above")

