"""The seeds of a small-batch stage, trained side by side in processes of their own
(nnstudy.training.processes): the same outputs as one after another, helpers that never outlive
the stage, and a bad NNSTUDY_SEED_PROCESSES refused in one line."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from nnstudy.core import files, paths
from nnstudy.core.errors import StudyError
from nnstudy.training.processes import (ENV, LONG_SEED, LONG_SOURCE_SEED, ONE_CORE_BATCH, PER_CORE, cores,
                                        seed_processes, source_processes)
from tests.study_helpers import copy_project, run, small_params

VARIANT = "batch_online"
LONG = "batch_online_long"  # long enough to be killed while its helpers train
SEEDS = [1, 2, 3]


def test_how_many_processes():
    every = min(3, PER_CORE * cores())
    assert seed_processes(1, 3, 1000, {}) == every                   # auto, small batches: every seed at once
    assert seed_processes(1, 100, 1000, {}) == PER_CORE * cores()    # ... up to PER_CORE a core
    assert seed_processes(ONE_CORE_BATCH, 1, 1000, {}) == 1          # one seed: nothing to share out
    assert seed_processes(ONE_CORE_BATCH + 1, 3, LONG_SEED - 1, {}) == 1  # a bigger batch, a short seed
    assert seed_processes(256, 3, LONG_SEED, {}) == every            # a long seed at any batch size
    assert seed_processes(256, 3, 0, {ENV: "2"}) == 2                # asked for: any batch size
    assert seed_processes(1, 2, 0, {ENV: "8"}) == 2                  # never more than one per seed
    assert seed_processes(1, 3, 0, {ENV: " 1 "}) == 1
    for bad in ("0", "-2", "two", "1.5", ""):
        with pytest.raises(StudyError, match=f"{ENV}=.*'auto' or a whole number"):
            seed_processes(1, 3, 0, {ENV: bad})
    # The transfer study's source networks: one process a core, where a seed is long enough.
    assert source_processes(6, LONG_SOURCE_SEED, {}) == min(6, cores())
    assert source_processes(6, LONG_SOURCE_SEED - 1, {}) == 1       # the tests' 8x8 digits, 2 epochs
    assert source_processes(1, LONG_SOURCE_SEED, {}) == 1
    assert source_processes(6, 0, {ENV: "3"}) == 3
    with pytest.raises(StudyError, match=f"{ENV}='x'"):
        source_processes(6, 0, {ENV: "x"})


def test_a_helpers_files_are_replaced_with_the_stages(tmp_path):
    target, other = tmp_path / "model.bin", tmp_path / "curve.csv"
    target.write_bytes(b"old")
    with files.handed_over() as handed:      # in the helper
        files.write_bytes(target, b"new")
        assert target.read_bytes() == b"old"  # held back
    assert set(handed) == {target}
    try:
        with files.all_or_nothing():         # in the stage
            files.adopt(handed)
            files.write_bytes(other, b"curve")
            assert target.read_bytes() == b"old" and not other.exists()
            raise RuntimeError("the stage fails after adopting")
    except RuntimeError:
        pass
    assert target.read_bytes() == b"old" and not other.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]  # no temporary left behind

    with files.handed_over() as handed:
        files.write_bytes(target, b"new")
    with files.all_or_nothing():
        files.adopt(handed)
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["model.bin"]

    with pytest.raises(ValueError), files.handed_over():  # a failing helper leaves nothing
        files.write_bytes(other, b"half")
        raise ValueError
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A tiny study whose batch-size-1 variant trains three seeds (prepared, nothing trained)."""
    raw = small_params("jax")
    raw.update(seeds=SEEDS, seeds_together=False)
    raw["variants"].update({VARIANT: {"batch_size": 1, "epochs": 3}, LONG: {"batch_size": 1, "epochs": 100}})
    folder = copy_project(tmp_path_factory.mktemp("seed_processes"), raw)
    run(folder, "dvc", "repro", "-q", "settings", "prepare")
    return folder


def stage(repo: Path, processes: str, cache: Path, variant: str = VARIANT) -> subprocess.Popen:
    env = dict(os.environ, **{ENV: processes}, NNSTUDY_CACHE=str(cache))
    return subprocess.Popen([sys.executable, "-m", "stages.train", variant], cwd=repo, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def outputs(repo: Path) -> dict[str, object]:
    """What the stage wrote: each seed's weights, DVCLive files and curves (the .keras zip carries a time)."""
    found: dict[str, object] = {}
    for seed in SEEDS:
        network = keras.saving.load_model(repo / paths.model_file(VARIANT, seed))
        found[f"weights {seed}"] = [np.asarray(w) for w in network.get_weights()]
        live = repo / paths.train_live_dir(VARIANT, seed)
        for path in sorted(live.rglob("*")):
            if path.is_file():
                found[str(path.relative_to(repo))] = path.read_bytes()
        found[f"weight archive {seed}"] = dict(np.load(repo / paths.weights_file(VARIANT, seed)))
    for metric in ("accuracy", "loss"):
        found[metric] = (repo / paths.curve_file(metric, VARIANT)).read_bytes()
    return found


def same(a: object, b: object) -> bool:
    if isinstance(a, list):
        return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    return a == b


def test_seeds_side_by_side_give_the_same_outputs_as_one_after_another(repo, tmp_path):
    alone = stage(repo, "1", tmp_path / "cache")
    out, err = alone.communicate(timeout=600)
    assert alone.returncode == 0, err
    assert "processes side by side" not in out
    sequential = outputs(repo)

    together = stage(repo, "auto", tmp_path / "cache")
    out, err = together.communicate(timeout=600)
    assert together.returncode == 0, err
    if cores() > 1:
        assert f"{VARIANT}: 3 seeds in {min(3, PER_CORE * cores())} processes side by side" in out
    for seed in SEEDS:
        assert f"{VARIANT} seed {seed}: 3 epochs" in out
    side_by_side = outputs(repo)
    assert side_by_side.keys() == sequential.keys()
    differ = [name for name in sequential if not same(sequential[name], side_by_side[name])]
    assert not differ, f"differ between 1 and several processes: {differ}"
    # The seeds differ from each other (each its own initialisation and shuffle).
    assert not same(sequential["weights 1"], sequential["weights 2"])
    # No temporary file left by a helper.
    assert not [p for p in (repo / "models").rglob(".tmp-*")]


def helpers_of(pid: int) -> list[int]:
    """The stage's helper processes (not the resource tracker that spawning also starts)."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(child) for child in found if "spawn_main" in command_line(int(child))]


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except OSError:
        return ""


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit status may wait for a reaper in a container)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_a_killed_stage_takes_its_helpers_with_it_and_its_rerun_keeps_their_seeds(repo, tmp_path):
    cache = tmp_path / "cache"
    killed = stage(repo, "2", cache, LONG)
    deadline, helpers, checkpoints = time.time() + 300, [], []
    while time.time() < deadline and killed.poll() is None and not (len(helpers) == 2 and checkpoints):
        time.sleep(0.05)
        helpers = helpers_of(killed.pid)
        checkpoints = list(cache.glob("resume/*/seed_*/epoch_*.ckpt"))
    assert killed.poll() is None and len(helpers) == 2 and checkpoints, killed.communicate()
    os.kill(killed.pid, signal.SIGKILL)  # the stage's process only, not its process group
    killed.communicate()
    deadline = time.time() + 10
    while time.time() < deadline and any(running(helper) for helper in helpers):
        time.sleep(0.05)
    assert not [helper for helper in helpers if running(helper)], "a helper outlived its stage"

    rerun = stage(repo, "2", cache, LONG)
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    assert "resuming at epoch" in err  # a helper's checkpoint, taken up by the rerun's helper
    for seed in SEEDS:
        assert f"{LONG} seed {seed}: 100 epochs" in out
    assert not list((cache / "resume").glob("*/seed_*")), "the completed stage leaves no checkpoint"


def test_a_bad_process_count_is_one_line(repo, tmp_path):
    bad = stage(repo, "many", tmp_path / "cache")
    out, err = bad.communicate(timeout=120)
    assert bad.returncode == 2
    assert err.strip().splitlines() == [f"error: {ENV}='many': must be 'auto' or a whole number of processes >= 1 "
                                        "(1 trains the seeds one after another)"]


def test_source_networks_side_by_side_are_the_same_bytes_as_one_after_another(repo):
    """transfer_pretrain's seeds in two processes: the same weights files (layer names included, which
    Keras counts up within a process) and the same pretrain.json as in one process."""
    run(repo, "dvc", "repro", "-q", "transfer_data", "transfer_settings")

    def pretrain(processes: str) -> tuple[str, dict[str, bytes], bytes]:
        done = subprocess.run([sys.executable, "-m", "stages.transfer_pretrain"], cwd=repo, text=True,
                              env=dict(os.environ, **{ENV: processes}), capture_output=True, timeout=600)
        assert done.returncode == 0, done.stderr
        source = repo / paths.TRANSFER_SOURCE_DIR
        return done.stdout, {p.name: p.read_bytes() for p in sorted(source.iterdir())}, \
            (repo / paths.TRANSFER_PRETRAIN).read_bytes()

    out, one_by_one, record = pretrain("1")
    assert "side by side" not in out
    out, side_by_side, record_side_by_side = pretrain("2")
    assert "transfer_pretrain: 4 seeds in 2 processes side by side" in out
    assert len(one_by_one) == 4 and len(set(one_by_one.values())) == 4  # four seeds, four networks
    assert side_by_side == one_by_one
    assert record_side_by_side == record
    assert not [p for p in (repo / "models").rglob(".tmp-*")]
