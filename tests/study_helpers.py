"""The tiny end-to-end study shared by the pipeline and sharing tests: scikit-learn's digits, a few
variants and epochs, in a throwaway git repo driven by the real `dvc`.

`make_repo` copies the project into a folder, writes the tiny params and reproduces it;
`copy_project` does the first half only (for tests that reproduce it their own way).

The JAX study is trained once per session, by a team (`shared_team`): two workers in two clones of
one bare git repository split its stages, push their outputs and run-cache to a DVC remote, and a
third clone gathers and publishes it. The JAX study of tests/test_pipeline.py is then a fresh clone
that pulls it (`shared_study("jax")`): one training of the study serves both modules, and the
pipeline tests run on a study that was trained on two machines.
"""

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["nnstudy", "stages", "plots", "dvc.yaml", "params.yaml", "run.py", ".dvcignore", ".gitignore",
                 "pyproject.toml", ".dvc/config", ".dvc/plots"]
VARIANTS = ["batch_mini", "sgd_mean10", "rmsprop_l1_dropout"]
BACKENDS = {"jax": "compiled", "tensorflow": "fit"}
# What a re-run of the study may change: wall-clock times, and with them the report's fit-time columns
# and bars, and their hashes in dvc.lock.
TIMED = ("results/timing/", "report/report.md", "report/variants.csv", "report/figures/sweeps/", "dvc.lock",
         "results/transfer/zoo.csv", "report/transfer.md", "report/figures/transfer/")
# Saved models, weight archives and keras-tuner's trial folder carry the time they were written: the
# same weights, another hash.
STAMPED = ("results/timing/", "models/", "results/weights", "tuner")


def small_params(backend: str) -> dict:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"]["dataset"] = "digits"
    # TensorFlow trains its seeds one after another, and pays seconds of start-up in every stage: its
    # study has two seeds (an interval needs two), the JAX study three (a third agrees or not).
    seeds = [1, 2, 3] if backend == "jax" else [1, 2]
    raw.update(epochs=10, batch_size=64, seeds=seeds, backend=backend, loop=BACKENDS[backend])
    # On JAX the seeds train together (one vmapped program; off by default, see params.yaml), so the end-to-end
    # tests run that path through every training stage (train@, the sweeps, final with early stopping).
    raw["seeds_together"] = backend == "jax"
    raw["variants"] = {name: raw["variants"][name] for name in VARIANTS}
    raw["tune"].update(max_epochs=2, factor=3, patience=1)
    raw["tune"].update(preset="small", spaces={
        "small": {"units_1": [16], "units_2": [32, 64], "l2": [1.0e-3], "learning_rate": [1.0e-2]}})
    raw["final"].update(max_epochs=8, patience=2)
    raw["stats"]["questions"] = {
        "L1 + dropout": ["batch_mini", "rmsprop_l1_dropout"],
        "The tuned network vs the base network": ["batch_mini", "final"],
    }
    raw["stats"]["paired_steps"] = []  # the default study's steps name variants this one leaves out
    # One value per sweep axis: every sweep stage runs; a test adds a value.
    raw["sweeps"].update(epochs=5, depth=[1], width=[16], activation=["tanh"], optimizer=["sgd"], learning_rate=[1.0e-2])
    if backend != "jax":  # a sweep point is trained by train@'s code: one axis runs it on TensorFlow
        raw["sweeps"].update(width=[], activation=[], optimizer=[], learning_rate=[])
    raw["probing"]["nondigit_samples"] = 50
    raw["probing"]["openset"]["epochs"] = 10
    raw["probing"]["dreams"].update(steps=20)
    # The transfer study on the 8x8 digits: every arm at 5 labels per class, one sweep point, a
    # one-model zoo (the full zoo is measured by the default study, not by the tests).
    raw["transfer"].update(input_size=8, labels=[5], val_per_class=10, epochs=4, patience=1)
    raw["transfer"]["pretrain"].update(epochs=2)
    # The transfer sweeps on JAX only: a sweep point is trained by the arms' own code, which the
    # TensorFlow study runs (the augmentation layers are the same Keras code on both backends).
    raw["transfer"]["sweeps"] = {axis: [] for axis in raw["transfer"]["sweeps"]}
    if backend == "jax":
        raw["transfer"]["sweeps"].update(unfreeze=[1.0], augment=[True])
        raw["transfer"]["min_seeds"] = {5: 4}  # a noisy family asks for a seed more than `seeds` (once is enough)
    else:
        raw["transfer"]["min_seeds"] = {}
    raw["transfer"]["zoo"].update(models=["cnn_small"], steps=1, input_size=8)
    return raw


def run(repo: Path, *command: str, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def strict_json(path: Path):
    def refuse(constant):
        raise AssertionError(f"{path} holds bare {constant}")
    return json.loads(path.read_text(), parse_constant=refuse)


def trained(output: str) -> set[str]:
    """The train@ stages a `dvc repro`/`dvc exp run` output says it ran."""
    return {line.split("'")[1].removeprefix("train@") for line in output.splitlines()
            if line.startswith("Running stage 'train@")}


def without_timing(lock: dict) -> dict:
    """dvc.lock less what carries a wall-clock time: every data and result hash a re-run must reproduce."""
    for timed_stage in ("report", "transfer_zoo", "transfer_summarize"):  # their reports show wall times
        lock["stages"].pop(timed_stage)
    for stage in lock["stages"].values():
        for kind in ("deps", "outs"):
            stage[kind] = [entry for entry in stage.get(kind, []) if not entry["path"].startswith(STAMPED)]
    return lock


def restore(repo: Path) -> None:
    """Back to the committed study after an experiment: tracked files, then the untracked files an
    experiment left in output folders (e.g. results/train/<variant>/seed_4 after `-S seeds=[4,5,6]`,
    which would make the committed stage look changed), then DVC's cached outputs."""
    run(repo, "git", "checkout", "--", ".")
    run(repo, "git", "clean", "-fdq")
    run(repo, "dvc", "checkout", "-q")


def copy_project(folder: Path, raw_params: dict) -> Path:
    """The project's pipeline with the given params, committed in a new git repo (nothing reproduced)."""
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, folder / name)
    (folder / "params.yaml").write_text(yaml.safe_dump(raw_params, sort_keys=False))
    run(folder, "git", "init", "-q")
    run(folder, "git", "add", "-A")
    run(folder, "git", "commit", "-qm", "small study")
    return folder


def make_repo(folder: Path, backend: str) -> Path:
    copy_project(folder, small_params(backend))
    run(folder, "dvc", "repro", timeout=1800)  # ~2-4 min on 2 quiet cores; far more on a loaded machine
    run(folder, "git", "add", "-A")
    run(folder, "git", "commit", "-qm", "results")
    return folder


def _session_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test session's temp folder: under pytest-xdist each worker has its own, one level below it."""
    root = tmp_path_factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


def _once(root: Path, name: str, build) -> Path:
    """`root/name`, built by `build(folder)` once per session however many workers ask for it: a lock
    makes the second worker that wants it wait for the first to finish it."""
    folder, done = root / name, root / f"{name}.done"
    with (root / f"{name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a half-built one (its builder failed)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


def clone(team: dict, name: str, branch: str | None = None) -> Path:
    """A new clone of the team's git repository, in the team's folder."""
    folder = Path(team["base"]) / name
    run(Path(team["base"]), "git", "clone", "-q", str(team["origin"]), str(folder))
    if branch:
        run(folder, "git", "checkout", "-q", branch)
    return folder


def _make_team(base: Path) -> None:
    remote = base / "remote"
    remote.mkdir()
    author = copy_project(base / "author", small_params("jax"))
    run(author, "dvc", "remote", "add", "-d", "shared", str(remote))
    run(author, "git", "commit", "-qam", "a shared DVC remote")
    origin = base / "origin.git"
    run(base, "git", "clone", "-q", "--bare", str(author), str(origin))
    team = {"base": str(base), "origin": str(origin), "remote": str(remote), "workers": []}

    # Two workers, one after the other (2 cores): each runs its share, then pushes outputs and run-cache.
    for index in range(2):
        worker = clone(team, f"worker{index}")
        started = time.perf_counter()
        done = run(worker, "python", "-m", "nnstudy.share", "worker", "--workers", "2", "--index", str(index),
                   timeout=1200)
        team["workers"].append({"repo": str(worker), "output": done.stdout + done.stderr,
                                "seconds": time.perf_counter() - started})

    # A third clone gathers the whole study and publishes it: git for the code and dvc.lock, the remote for the rest.
    gatherer = clone(team, "gatherer")
    started = time.perf_counter()
    team["gather"] = run(gatherer, "dvc", "repro", "--pull").stdout
    team["gather_seconds"] = time.perf_counter() - started
    team["gatherer"] = str(gatherer)
    run(gatherer, "git", "add", "-A")
    run(gatherer, "git", "commit", "-qm", "the study, gathered")
    run(gatherer, "python", "-m", "nnstudy.share", "publish")  # `dvc push --run-cache`, and what it leaves out
    run(gatherer, "git", "push", "-q", "origin", "HEAD")
    (base / "team.json").write_text(json.dumps(team))


def shared_team(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The JAX study trained by two workers and gathered by a third clone, once per session: a dict of
    its folders (base, origin, remote, gatherer), each worker's repo, output and seconds, and the
    gather's output and seconds."""
    base = _once(_session_root(tmp_path_factory), "team", _make_team)
    team = json.loads((base / "team.json").read_text())
    for key in ("base", "origin", "remote", "gatherer"):
        team[key] = Path(team[key])
    for worker in team["workers"]:
        worker["repo"] = Path(worker["repo"])
    return team


def shared_study(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny study on `backend`, in a folder of its own, made once per test session however many
    workers ask for it: on JAX a fresh clone of the team's study that pulls it, on TensorFlow
    reproduced (the TensorFlow study's gate test compares the two, made on two workers)."""
    if backend != "jax":
        return _once(_session_root(tmp_path_factory), f"study-{backend}", lambda folder: make_repo(folder, backend))
    team = shared_team(tmp_path_factory)

    def pull(folder: Path) -> None:
        run(folder.parent, "git", "clone", "-q", str(team["origin"]), str(folder))
        run(folder, "dvc", "pull", "-q")
    return _once(_session_root(tmp_path_factory), "study-jax", pull)


def processes_in(folder: Path) -> list[int]:
    """The processes whose current folder is `folder` or inside it (a stage, a `dvc`, a study's worker)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and Path(os.readlink(proc / "cwd")).is_relative_to(folder):
                found.append(int(proc.name))
        except OSError:  # gone meanwhile, or not ours to read
            pass
    return found


def wait_for_no_processes_in(folder: Path, seconds: float = 15) -> list[int]:
    """processes_in(folder) once it is empty, or after `seconds` (what is still running then)."""
    deadline = time.monotonic() + seconds
    while (left := processes_in(folder)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left
