#!/usr/bin/env python3
"""The project's one entry point; it sets itself up on first use.

    python3 run.py study     # the whole study: dvc repro (creates .venv from requirements.txt first),
                             # on two `dvc repro` side by side where 2 cores are free
    python3 run.py test      # the test suite
    python3 run.py check     # the regression gate: reproduced metrics vs the committed baseline
    python3 run.py bench     # time the study from clean (writes bench/results.json)
    python3 run.py worker --workers N --index I   # this machine's share of the study (docs/team.md)
    python3 run.py publish   # every stage into the run-cache, pushed with its outputs to the DVC remote
    python3 run.py slurm     # the study as Slurm jobs that follow dvc.yaml's DAG (docs/cluster.md)

With a DVC remote configured, `study` runs `dvc repro --pull`: whatever the remote (or its
run-cache) already holds is pulled instead of retrained (a remote that fails is one line; with
nothing to pull, the study runs without it).

Any further arguments go to the underlying command (e.g. `python3 run.py test -k params`).
"""

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
REQUIREMENTS = ROOT / "requirements.txt"
STAMP_NAME = "requirements.sha256"  # in the venv: the requirements it was last completely installed from

COMMANDS = {
    "study": ["dvc", "repro"],
    # Two workers (pytest-xdist), each module's tests on one of them, the longest modules first
    # (tests/conftest.py orders them).
    "test": ["python", "-m", "pytest", "-q", "-n", "2", "--dist", "loadfile", "--no-loadscope-reorder"],
    "check": ["python", "-m", "nnstudy.check"],
    "bench": ["python", "-m", "bench.study"],
    "worker": ["python", "-m", "nnstudy.share", "worker"],
    "publish": ["python", "-m", "nnstudy.share", "publish"],
    "slurm": ["python", "-m", "nnstudy.slurm"],
}


class SetupFailed(Exception):
    """The venv cannot be built or filled; the message is one line that says what to do."""


def bin_dir(env: Path) -> Path:
    return env / ("Scripts" if os.name == "nt" else "bin")


def pip_works(env: Path) -> bool:
    python = bin_dir(env) / "python"
    return python.exists() and subprocess.run([str(python), "-m", "pip", "--version"],
                                              capture_output=True).returncode == 0


def venv_package() -> str:
    return f"python{sys.version_info.major}.{sys.version_info.minor}-venv"


def create_venv(env: Path) -> None:
    """A fresh venv with pip; a half-built one (a python but no pip, as Debian leaves it without
    its -venv package) is removed first and, should creating fail, afterwards too."""
    # Asked first: Debian's venv, without its python3.X-venv package, prints a screenful and exits
    # with the venv half-built.
    if subprocess.run([sys.executable, "-m", "ensurepip", "--version"], capture_output=True).returncode != 0:
        raise SetupFailed(f"this Python ({sys.executable}) cannot create a venv with pip: its ensurepip is "
                          f"missing; on Debian/Ubuntu install it with `sudo apt-get install {venv_package()}`, "
                          "then re-run")
    if env.exists():
        print(f"run.py: {env} has no working pip; building it again", flush=True)
        shutil.rmtree(env)
    print(f"run.py: creating {env}", flush=True)
    try:
        venv.create(env, with_pip=True)
    except (subprocess.CalledProcessError, OSError, SystemExit) as error:
        shutil.rmtree(env, ignore_errors=True)  # never leave a python without pip behind
        raise SetupFailed(f"creating {env} failed ({error}); re-run, or create it with "
                          f"`{sys.executable} -m venv {env}` to see why") from None


def pip_install(env: Path, *args: str) -> None:
    """pip, quiet; a failure (offline, an unreachable index, a missing wheel) becomes one line."""
    command = [str(bin_dir(env) / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR:")] or lines or ["no output"]
        raise SetupFailed(f"`pip install {' '.join(args)}` failed: {errors[-1].removeprefix('ERROR: ')} "
                          "(offline? check the internet connection, or PIP_INDEX_URL / a proxy, and re-run)")


def study_command(env: dict[str, str], args: list[str] | None = None) -> list[str]:
    """`dvc repro --pull` when a DVC remote is configured (pull rather than retrain; through
    `python -m nnstudy.share pull`, which looks at the remote first); `dvc repro ARGS` when given
    arguments; else the whole study on two `dvc repro` side by side where two cores are free
    (`python -m nnstudy.share study`, NNSTUDY_STUDY_WORKERS; the same results)."""
    remotes = subprocess.run(["dvc", "remote", "list"], cwd=ROOT, env=env, capture_output=True, text=True)
    if remotes.returncode == 0 and remotes.stdout.strip():
        return ["python", "-m", "nnstudy.share", "pull", *(args or [])]
    if args:
        return ["dvc", "repro", *args]
    return ["python", "-m", "nnstudy.share", "study"]


def ensure_venv(env: Path = VENV, requirements: Path = REQUIREMENTS) -> None:
    """A venv holding exactly `requirements`; it repairs a half-built or half-installed one."""
    wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()
    stamp = env / STAMP_NAME
    if stamp.exists() and stamp.read_text().strip() == wanted:
        return
    if not pip_works(env):
        create_venv(env)
    stamp.unlink(missing_ok=True)  # written again only once everything below is installed
    print(f"run.py: installing {requirements.name} (a few minutes the first time)", flush=True)
    pip_install(env, "--upgrade", "pip")
    pip_install(env, "-r", str(requirements))
    stamp.write_text(wanted + "\n")


def setup(env: Path = VENV, requirements: Path = REQUIREMENTS) -> int:
    """ensure_venv; a failure is one line on stderr and exit code 2."""
    try:
        ensure_venv(env, requirements)
    except SetupFailed as error:
        print(f"run.py: {error}", file=sys.stderr)
        return 2
    return 0


def absolute_cache(env: dict[str, str]) -> str | None:
    """A relative NNSTUDY_CACHE made absolute, once, from the folder run.py was started in (the
    stages run elsewhere: the repository, a worker's copy of it, and refuse a relative one); the
    line that reports it, or None when there was nothing to resolve."""
    chosen = env.get("NNSTUDY_CACHE")
    if not chosen or os.path.isabs(chosen):
        return None
    env["NNSTUDY_CACHE"] = os.path.abspath(chosen)
    return f"run.py: NNSTUDY_CACHE={chosen} is relative: using {env['NNSTUDY_CACHE']}"


def main() -> int:
    if sys.version_info < (3, 11):
        sys.exit(f"run.py: needs Python 3.11 or newer, this is {sys.version.split()[0]}")
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python3 run.py {{{'|'.join(COMMANDS)}}} [args...]")
    if setup() != 0:
        return 2
    env = dict(os.environ, PATH=f"{bin_dir(VENV)}{os.pathsep}{os.environ.get('PATH', '')}", VIRTUAL_ENV=str(VENV))
    if (resolved := absolute_cache(env)) is not None:
        print(resolved, file=sys.stderr, flush=True)
    if sys.argv[1] == "study":
        command = study_command(env, sys.argv[2:])
    else:
        command = COMMANDS[sys.argv[1]] + sys.argv[2:]
    # This process becomes the command, so that a `kill` of it (not only Ctrl-C) reaches the
    # command itself, which then stops what it started (nnstudy/share.py: study); nothing is left
    # running with run.py gone.
    os.chdir(ROOT)
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    sys.exit(main())
