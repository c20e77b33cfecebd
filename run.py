#!/usr/bin/env python3
"""The project's one entry point; it sets itself up on first use.

    python3 run.py study     # the whole study: dvc repro (creates .venv from requirements.txt first)
    python3 run.py test      # the test suite
    python3 run.py check     # the regression gate: reproduced metrics vs the committed baseline
    python3 run.py bench     # time the study from clean (writes bench/results.json)
    python3 run.py worker --workers N --index I   # this machine's share of the study (README: Working as a team)
    python3 run.py publish   # every stage into the run-cache, pushed with its outputs to the DVC remote

With a DVC remote configured, `study` runs `dvc repro --pull`: whatever the remote (or its
run-cache) already holds is pulled instead of retrained.

Any further arguments go to the underlying command (e.g. `python3 run.py test -k params`).
"""

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
REQUIREMENTS = ROOT / "requirements.txt"
STAMP = VENV / "requirements.sha256"  # the requirements the venv was last installed from

COMMANDS = {
    "study": ["dvc", "repro"],
    "test": ["python", "-m", "pytest", "-q"],
    "check": ["python", "-m", "nnstudy.check"],
    "bench": ["python", "-m", "bench.study"],
    "worker": ["python", "-m", "nnstudy.share", "worker"],
    "publish": ["python", "-m", "nnstudy.share", "publish"],
}


def study_command(env: dict[str, str]) -> list[str]:
    """`dvc repro`, or `dvc repro --pull` when a DVC remote is configured (pull rather than retrain)."""
    remotes = subprocess.run(["dvc", "remote", "list"], cwd=ROOT, env=env, capture_output=True, text=True)
    return ["dvc", "repro", "--pull"] if remotes.returncode == 0 and remotes.stdout.strip() else ["dvc", "repro"]


def ensure_venv() -> None:
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    if not (BIN / "python").exists():
        print(f"run.py: creating {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    print("run.py: installing requirements.txt (a few minutes the first time)", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    STAMP.write_text(wanted + "\n")


def main() -> int:
    if sys.version_info < (3, 11):
        sys.exit(f"run.py: needs Python 3.11 or newer, this is {sys.version.split()[0]}")
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python3 run.py {{{'|'.join(COMMANDS)}}} [args...]")
    ensure_venv()
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", VIRTUAL_ENV=str(VENV))
    command = (study_command(env) if sys.argv[1] == "study" else COMMANDS[sys.argv[1]]) + sys.argv[2:]
    return subprocess.run(command, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
