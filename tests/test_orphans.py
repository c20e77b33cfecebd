"""A stage stops when the process that started it is gone: real processes, real signals.

The issue's probe: `kill -9` of `dvc` alone (a closed terminal, the OOM killer) left the training
stage running with PID 1 as its parent; the rerun then trained the same outputs a second time, at
the same moment, without checkpoints. (`kill -9` of `run.py study` is in tests/test_share.py; a
kill of `dvc repro`'s whole process group in tests/test_pipeline_killed.py.)
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from nnstudy.core import lifeline
from nnstudy.core.errors import INTERRUPTED
from study_helpers import copy_project, processes_in, run, small_params, wait_for_no_processes_in


def test_the_chain_to_the_starter_runs_through_shells_only(tmp_path):
    """Under `sh -c` (as DVC starts a stage) the chain reaches this test's process, and no further."""
    script = "import json, sys; from nnstudy.core import lifeline; print(json.dumps(lifeline.starter_chain()))"
    # `; true` keeps the shell from exec-ing python: a real shell between the two.
    done = subprocess.run(["sh", "-c", f"{sys.executable} -c '{script}'; true"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    links = json.loads(done.stdout)
    assert len(links) == 2 and links[1][1] == os.getpid(), (links, done.stderr)
    assert lifeline.broken_link([tuple(link) for link in lifeline.starter_chain()]) is None
    assert lifeline.broken_link([(os.getpid(), os.getppid() + 1)]) == os.getppid() + 1


def test_a_stage_stops_when_dvc_is_killed_alone_and_the_rerun_resumes(tmp_path, monkeypatch):
    study = small_params("jax")
    study["epochs"] = 6
    study["variants"]["batch_online"] = {"batch_size": 1}  # ~0.2 s an epoch: the kill lands mid-training
    repo = copy_project(tmp_path / "repo", study)
    monkeypatch.setenv("NNSTUDY_CACHE", str(tmp_path / "cache"))  # its checkpoints, where the test sees them
    monkeypatch.setenv("NNSTUDY_SEED_PROCESSES", "1")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1")
    run(repo, "dvc", "repro", "settings")  # the data and settings first: the kill below hits training
    log = (tmp_path / "stderr").open("w")
    dvc = subprocess.Popen(["dvc", "repro", "train@batch_online"], cwd=repo, env=env, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=log)
    resume = tmp_path / "cache" / "resume"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and dvc.poll() is None and not list(resume.glob("*/*/epoch_*")):
        time.sleep(0.01)
    assert dvc.poll() is None, "the stage finished before the kill"
    os.kill(dvc.pid, signal.SIGKILL)  # dvc alone: its stage is another process, in the same group
    dvc.wait()
    assert processes_in(repo), "the stage stopped with dvc by itself: nothing was tested"
    left = wait_for_no_processes_in(repo, seconds=15)
    log.close()
    stderr = (tmp_path / "stderr").read_text()
    assert left == [], f"still running: {left}\n{stderr}"
    assert f"train@batch_online: the process that started it (PID {dvc.pid}) is gone; stopping" in stderr, stderr

    again = run(repo, "dvc", "repro", "train@batch_online")
    output = again.stdout + again.stderr
    assert "another process" not in output, output
    assert "resuming at epoch" in output or "kept from the interrupted run" in output, output

    # Ctrl-C of a training stage (the terminal's SIGINT): one line, not a KeyboardInterrupt traceback.
    stage = subprocess.Popen([sys.executable, "-m", "stages.train", "batch_online"], cwd=repo, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and stage.poll() is None and not list(resume.glob("*/*/epoch_*")):
        time.sleep(0.01)
    stage.send_signal(signal.SIGINT)
    stderr = stage.communicate(timeout=60)[1]
    assert stage.returncode == 130 and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == f"error: {INTERRUPTED}", stderr
