"""A killed training stage resumes (kill -9 of `dvc repro`'s whole process group), end to end.

Each test makes a tiny study of its own (study_helpers.copy_project, batch_online only), so this
module runs on whichever pytest-xdist worker is free, beside the shared studies.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from study_helpers import copy_project, run, small_params


# Seeds one by one (killed in seed 2: seed 1 is kept, seed 2 resumes) and together (one program: all resume).
@pytest.mark.parametrize("together", [False, True], ids=["seeds_one_by_one", "seeds_together"])
def test_a_killed_stage_resumes_with_the_same_results(tmp_path, monkeypatch, together):
    """kill -9 during seed 2 of `dvc repro train@batch_online` (or during the seeds trained together); the
    rerun keeps seed 1, resumes seed 2 from its last epoch (or all the seeds from theirs), and every output
    hash in dvc.lock is an uninterrupted run's (timings and the saved archives aside, which carry their
    write time: their weights are compared instead)."""
    study = small_params("jax")
    # Online learning (batch size 1, ~1,150 updates an epoch on the digits, ~0.2 s): epochs long enough that the
    # kill lands inside seed 2, not after it. Only this stage and the ones it depends on run.
    study["epochs"] = 6
    study["seeds_together"] = together
    study["variants"]["batch_online"] = {"batch_size": 1}
    repo = copy_project(tmp_path / "repo", study)
    monkeypatch.setenv("NNSTUDY_CACHE", str(tmp_path / "cache"))  # its checkpoints, where the test sees them
    # One by one in one process: the kill must land in seed 2 with seed 1 finished. (Side by side, the
    # default at batch size 1, is killed and resumed in tests/test_seed_processes.py.)
    monkeypatch.setenv("NNSTUDY_SEED_PROCESSES", "1")
    run(repo, "dvc", "repro", "train@batch_online")
    uninterrupted = yaml.safe_load((repo / "dvc.lock").read_text())
    weights = {seed: dict(np.load(repo / f"results/weights/batch_online/seed_{seed}.npz")) for seed in (1, 2, 3)}

    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1")
    killed = subprocess.Popen(["dvc", "repro", "--force", "--single-item", "train@batch_online"], cwd=repo, env=env,
                              start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    resume_dir = tmp_path / "cache" / "resume"
    running = "seeds_together" if together else "seed_2"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and killed.poll() is None and not list(resume_dir.glob(f"*/{running}/epoch_*")):
        time.sleep(0.01)
    os.killpg(killed.pid, signal.SIGKILL)  # dvc and the stage's python: the whole process group
    killed.wait()
    # The latest (a kill between writing one and deleting the one before leaves two).
    checkpoint = max(resume_dir.glob(f"*/{running}/epoch_*.ckpt"), key=lambda p: int(p.stem.split("_")[1]))
    resumes_at = int(checkpoint.stem.split("_")[1]) + 1
    stage_dir = checkpoint.parent.parent
    assert (stage_dir / "seed_1" / "record.json").exists() != together
    assert not (stage_dir / "seed_2" / "record.json").exists(), "the kill came after seed 2 had finished"
    assert not (repo / "models/variants/batch_online/seed_2.keras").exists()

    rerun = run(repo, "dvc", "repro", "train@batch_online")
    said = rerun.stdout + rerun.stderr
    if together:
        assert all(f"batch_online seed {seed}: resuming at epoch {resumes_at} of 6" in said for seed in (1, 2, 3))
    else:
        assert "seed 1 kept from the interrupted run" in said
        assert f"batch_online seed 2: resuming at epoch {resumes_at} of 6" in said
    assert not any(resume_dir.iterdir())  # the completed stage removed its checkpoints

    stamped = ("results/timing/", "models/", "results/weights")
    def hashes(lock: dict) -> dict:
        return {name: [entry for entry in stage.get("deps", []) + stage.get("outs", [])
                       if not entry["path"].startswith(stamped)] for name, stage in lock["stages"].items()}
    assert hashes(yaml.safe_load((repo / "dvc.lock").read_text())) == hashes(uninterrupted)
    for seed, before in weights.items():
        after = np.load(repo / f"results/weights/batch_online/seed_{seed}.npz")
        assert before.keys() == set(after.files) and all(np.array_equal(before[k], after[k]) for k in before)
