"""Sharing and scaling out on DVC's own machinery: a remote (a local path and a real sshd on
localhost), the run-cache, experiments pushed and pulled, and one study split over two workers.

One tiny study (tests/study_helpers.py: shared_team) is produced once per session, by two workers in
two clones of one bare git repository; a third clone gathers it and publishes it. Every other test
starts from there, and so does tests/test_pipeline.py's JAX study (a clone that pulls it).
"""

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import run as run_py
from nnstudy import share
from nnstudy.core.errors import StudyError
from study_helpers import (ROOT, TIMED, clone, copy_project, processes_in, run, shared_team, small_params,
                           wait_for_no_processes_in, without_timing)

TRAINING = ("train@", "sweep_", "tune", "final", "openset", "transfer_pretrain", "transfer_train@", "transfer_sweep_")


def ran(output: str) -> list[str]:
    """Every stage a `dvc repro` output says it ran (not the ones restored from the run-cache)."""
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


def training(stages) -> list[str]:
    return sorted(s for s in stages if s.startswith(TRAINING))


# --- The split and the simulation: pure functions, on small graphs with known answers.

# a -> b -> c (a chain), a -> d, and e reads c and d; x is on its own; trunk t feeds everything.
DEPS = {"t": set(), "a": {"t"}, "b": {"a"}, "c": {"b"}, "d": {"a"}, "e": {"c", "d"}, "x": {"t"}, "y": {"t"}}


def test_partition_keeps_chains_on_one_worker_and_leaves_joins_to_the_gather():
    costs = {"a": 10, "b": 10, "c": 10, "d": 5, "x": 30, "y": 3}
    plan = share.partition(DEPS, costs, timed={"a", "b", "c", "d", "x", "y"}, workers=2)
    assert plan.trunk == ("t",)
    # a's subtree needs a's outputs: one worker; e reads only from that group, so it joins it.
    assert set(plan.workers[0]) == {"a", "b", "c", "d", "e"} and plan.workers[1] == ("x", "y")
    assert plan.gather == () and plan.loads == (40.0, 33.0)
    # Every stage in exactly one place.
    placed = [*plan.trunk, *plan.gather, *(s for w in plan.workers for s in w)]
    assert sorted(placed) == sorted(DEPS)


def test_partition_balances_groups_longest_first():
    deps = {"t": set(), **{f"s{i}": {"t"} for i in range(5)}, "join": {f"s{i}" for i in range(5)}}
    costs = {"s0": 50, "s1": 40, "s2": 30, "s3": 20, "s4": 10}
    plan = share.partition(deps, costs, timed=set(costs), workers=2)
    assert plan.gather == ("join",)  # it reads from both workers
    assert [set(w) for w in plan.workers] == [{"s0", "s3", "s4"}, {"s1", "s2"}] and plan.loads == (80.0, 70.0)
    assert share.partition(deps, costs, timed=set(costs), workers=1).workers == (("s0", "s1", "s2", "s3", "s4"),)
    with pytest.raises(ValueError, match="at least 1"):
        share.partition(deps, costs, set(costs), workers=0)


def test_simulation_by_critical_path_and_list_scheduling():
    costs = {"t": 1, "a": 10, "b": 10, "c": 10, "d": 5, "e": 2, "x": 30, "y": 3}
    assert share.critical_path(DEPS, costs) == 33  # t a b c e
    assert share.list_schedule(DEPS, costs, 1) == sum(costs.values()) == 71
    # Two machines: x (longest to the end) starts with a; b, c, e follow a; d and y fit beside them.
    assert share.list_schedule(DEPS, costs, 2) == 38
    assert share.list_schedule(DEPS, costs, 8) == 33  # the critical path
    result = share.simulate(DEPS, costs, machines=(1, 2))
    assert result["machines"]["2"]["list_schedule_seconds"] == 38 and result["critical_path_seconds"] == 33
    with pytest.raises(ValueError, match="cycle"):
        share.critical_path({"a": {"b"}, "b": {"a"}}, {})


def test_plan_of_the_real_study_splits_every_training_stage_once():
    deps, outs = share.stage_graph(ROOT)
    plan = share.plan(2, ROOT)
    owner = {s: i for i, stages in enumerate(plan.workers) for s in stages}
    assert sorted([*plan.trunk, *plan.gather, *owner]) == sorted(deps)
    assert {"fetch", "prepare", "settings"} <= set(plan.trunk) and {"evaluate", "summarize", "report"} <= set(plan.gather)
    assert all(owner.get(s) is not None for s in training(deps)), "a training stage left to the gather"
    # No worker waits on another: every non-trunk ancestor of a worker's stage is its own.
    for stage, worker in owner.items():
        assert all(owner[a] == worker for a in share.ancestors(deps, stage) if a not in plan.trunk), stage
    assert abs(plan.loads[0] - plan.loads[1]) < 0.2 * max(plan.loads)  # balanced on the committed timings


def test_downstream_is_what_repro_runs_again():
    assert share.downstream(DEPS, {"b"}) == {"b", "c", "e"}
    assert share.downstream(DEPS, {"t"}) == set(DEPS)
    assert share.downstream(DEPS, set()) == set()


def test_study_workers_from_the_environment():
    assert share.study_workers({}) == min(2, share.cores())
    assert share.study_workers({"NNSTUDY_STUDY_WORKERS": " 3 "}) == 3
    assert share.study_workers({"NNSTUDY_STUDY_WORKERS": "1"}) == 1
    for bad in ("many", "0", "-2", "1.5"):
        with pytest.raises(StudyError, match=rf"NNSTUDY_STUDY_WORKERS='{bad}': must be 'auto' or a whole number"):
            share.study_workers({"NNSTUDY_STUDY_WORKERS": bad})


def test_run_py_study_is_the_side_by_side_study_unless_given_stages():
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    assert "" == subprocess.run(["dvc", "remote", "list"], cwd=ROOT, env=env, capture_output=True, text=True).stdout
    assert run_py.study_command(env) == ["python", "-m", "nnstudy.share", "study"]
    assert run_py.study_command(env, ["-s", "train@batch_mini"]) == ["dvc", "repro", "-s", "train@batch_mini"]


# --- The team: a bare git repository, a DVC remote, two workers and a gatherer.

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A real OpenSSH server on a free localhost port: its own host key, a client key for this user."""
    binary = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(binary).exists() or not shutil.which("ssh-keygen"):
        pytest.skip("no sshd: apt-get install openssh-server (.ci/run installs it where apt is available)")
    folder = tmp_path_factory.mktemp("sshd")
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / key)], check=True)
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    port = free_port()
    (folder / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {folder / 'host_key'}
AuthorizedKeysFile {folder / 'authorized_keys'}
PidFile {folder / 'sshd.pid'}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
Subsystem sftp internal-sftp
""")
    Path("/run/sshd").mkdir(exist_ok=True)  # Debian's privilege-separation folder
    server = subprocess.Popen([binary, "-D", "-e", "-f", str(folder / "sshd_config")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"sshd did not start: {server.communicate()[0]}")
            time.sleep(0.2)
    yield {"port": port, "keyfile": str(folder / "client_key"), "user": getpass.getuser(), "folder": folder}
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """The JAX study, trained by two workers and gathered by a third clone (tests/study_helpers.py), once
    per session: tests/test_pipeline.py's JAX study is a clone of it."""
    return shared_team(tmp_path_factory)


def lock(repo: Path) -> dict:
    return yaml.safe_load((repo / "dvc.lock").read_text())["stages"]


def test_two_workers_train_every_stage_once_and_a_clone_gathers_without_training(team):
    plan = share.plan(2, team["base"] / "author")  # what the workers saw: the study before it ran, no timings
    runs = [ran(w["output"]) for w in team["workers"]]
    for share_of, stages in zip(plan.workers, runs):
        assert training(stages) == training(share_of), stages
    both = training(runs[0]) + training(runs[1])
    assert both and sorted(both) == sorted(set(both)), "a training stage ran on both workers"
    assert set(both) == set(training(lock(team["gatherer"]))), "a training stage ran on neither worker"
    gathered = ran(team["gather"])
    assert training(gathered) == [], team["gather"]
    assert set(gathered) <= set(plan.gather), gathered
    assert "is cached - skipping run" in team["gather"]
    # The gathered dvc.lock holds every worker's stage exactly as the worker recorded it.
    gathered_lock = lock(team["gatherer"])
    for worker in team["workers"]:
        for stage, entry in lock(worker["repo"]).items():
            assert gathered_lock[stage] == entry, (stage, entry, gathered_lock[stage])
    assert "up to date" in run(team["gatherer"], "dvc", "status").stdout


# From the local remote: tests/test_pipeline.py's JAX study is such a clone (`dvc pull`, then its
# test_second_repro_does_nothing); here, from a real SSH server.
@pytest.mark.parametrize("remote", ["ssh"])
def test_fresh_clone_pulls_a_complete_study(team, remote, request):
    repo = clone(team, f"fresh-{remote}")
    if remote == "ssh":
        ssh = request.getfixturevalue("sshd")
        url = f"ssh://{ssh['user']}@127.0.0.1:{ssh['port']}{ssh['folder'] / 'remote'}"
        # The server's address in git; the key only in .dvc/config.local, which git never sees.
        run(team["gatherer"], "dvc", "remote", "add", "-f", "ssh", url)
        run(team["gatherer"], "dvc", "remote", "modify", "--local", "ssh", "keyfile", ssh["keyfile"])
        run(team["gatherer"], "dvc", "push", "--run-cache", "-r", "ssh")
        pushed = [p for p in (ssh["folder"] / "remote").rglob("*") if p.is_file()]
        assert any("runs" in p.parts for p in pushed) and len(pushed) > 50
        run(repo, "dvc", "remote", "add", "--local", "-d", "ssh", url)
        run(repo, "dvc", "remote", "modify", "--local", "ssh", "keyfile", ssh["keyfile"])
        assert "keyfile" not in run(repo, "git", "diff").stdout
    # What `python3 run.py study` runs on a clone with a remote: pull, not retrain (`dvc repro --pull`,
    # after a look at the remote).
    command = json.loads(run(repo, "python", "-c", "import json, os, run; print(json.dumps(run.study_command(dict(os.environ))))").stdout)
    assert command == ["python", "-m", "nnstudy.share", "pull"]
    started = time.perf_counter()
    done = run(repo, *command)
    seconds = time.perf_counter() - started
    assert ran(done.stdout) == [], done.stdout
    assert "up to date" in run(repo, "dvc", "status").stdout
    assert run(repo, "git", "status", "--porcelain").stdout == ""
    for model in ("models/variants/batch_mini/seed_1.keras", "tuner", "models/transfer/source/seed_1.weights.h5"):
        assert (repo / model).exists(), model
    print(f"fresh clone -> complete tiny study via {remote}: {seconds:.1f} s "
          f"(the workers trained it in {sum(w['seconds'] for w in team['workers']):.0f} s)")


def test_changed_variant_retrains_only_it_and_pulls_the_rest(team):
    repo = clone(team, "changed")
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["variants"]["sgd_mean10"]["epochs"] = 3
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    # Up to the summary (the report, drawn again on each side, adds nothing to what is pulled or trained).
    done = run(repo, "dvc", "repro", "--pull", "summarize")
    assert training(ran(done.stdout)) == ["train@sgd_mean10"], done.stdout
    assert (repo / "models/variants/batch_mini/seed_1.keras").exists()
    # A variant changed back restores from the run-cache, training nothing.
    run(repo, "git", "checkout", "params.yaml")
    again = run(repo, "dvc", "repro", "--pull", "summarize")
    assert training(ran(again.stdout)) == [], again.stdout
    assert "Stage 'train@sgd_mean10' is cached - skipping run" in again.stdout


def test_experiment_pushed_from_one_clone_is_pulled_in_another(team):
    alice, bob = clone(team, "alice"), clone(team, "bob")
    # One variant's own key: it and what reads it run again, nothing else (a base key such as
    # `optimizer` reaches the sweeps and the open set too: test_pipeline.py covers that). `--pull` fetches
    # what the run reads and does not change.
    done = run(alice, "dvc", "exp", "run", "--pull", "-n", "alice-rmsprop", "-S", "variants.rmsprop_l1_dropout.rho=0.5",
               "summarize")
    assert [s for s in ran(done.stdout) if s.startswith(TRAINING)] == ["train@rmsprop_l1_dropout"], done.stdout
    run(alice, "dvc", "exp", "push", "origin", "alice-rmsprop")

    run(bob, "dvc", "exp", "pull", "origin", "alice-rmsprop")
    shown = json.loads(run(bob, "dvc", "exp", "show", "--json").stdout)
    names = [exp.get("name") for rev in shown for group in (rev.get("experiments") or [])
             for exp in group.get("revs", [])]
    assert "alice-rmsprop" in names, shown
    run(bob, "dvc", "exp", "apply", "alice-rmsprop")
    applied = run(bob, "dvc", "repro", "--pull", "summarize")
    assert ran(applied.stdout) == [], applied.stdout  # pulled, not retrained
    model = "models/variants/rmsprop_l1_dropout/seed_1.keras"
    assert (bob / model).read_bytes() == (alice / model).read_bytes()
    assert yaml.safe_load((bob / "params.yaml").read_text())["variants"]["rmsprop_l1_dropout"]["rho"] == 0.5


def test_worker_refuses_bad_arguments_and_a_missing_remote(tmp_path):
    repo = copy_project(tmp_path / "study", small_params("jax"))
    done = run(repo, "python", "-m", "nnstudy.share", "worker", "--workers", "2", "--index", "0", check=False)
    assert done.returncode == 2 and "no DVC remote is configured" in done.stderr, done.stderr
    done = run(repo, "python", "-m", "nnstudy.share", "worker", "--workers", "2", "--index", "2", check=False)
    assert done.returncode == 2 and "--index must be in 0..1, got 2" in done.stderr, done.stderr
    done = run(repo, "python", "-m", "nnstudy.share", "plan", "--workers", "0", check=False)
    assert done.returncode == 2 and "--workers must be at least 1, got 0" in done.stderr, done.stderr
    assert "Running stage" not in done.stdout and not (repo / "dvc.lock").exists()


# --- One machine, two workers: `python3 run.py study` on a machine with two cores.

# Four stages to train again, two for each worker.
GONE = ["train@sgd_mean10", "train@rmsprop_l1_dropout", "sweep_depth@depth-1", "sweep_width@width-16"]


def forget(repo: Path, lock: dict, stages: list[str]) -> None:
    """As if `stages` had never run here: their outputs gone, from the workspace and the DVC cache."""
    for stage in stages:
        for out in lock["stages"][stage]["outs"]:
            path = repo / out["path"]
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
            if "md5" in out:
                (repo / ".dvc/cache/files/md5" / out["md5"][:2] / out["md5"][2:]).unlink(missing_ok=True)


def start_study(repo: Path) -> subprocess.Popen:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.Popen([sys.executable, "-m", "nnstudy.share", "study", "--workers", "2"], cwd=repo, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def read_until(study: subprocess.Popen, prefix: str, times: int = 1) -> list[str]:
    """The study's lines up to the `times`-th that starts with `prefix`."""
    seen = []
    for line in study.stdout:
        seen.append(line)
        if line.startswith(prefix):
            times -= 1
            if times == 0:
                break
    return seen


def test_study_on_two_workers_side_by_side_is_the_study_and_stops_as_one(team):
    repo = clone(team, "side-by-side")
    run(repo, "dvc", "pull", "-q")
    committed = yaml.safe_load((repo / "dvc.lock").read_text())
    forget(repo, committed, GONE)

    # `kill -9` of the study while both workers train (the probe: both kept training, with no
    # parent): the workers die with it, and their stages with them.
    study = start_study(repo)
    seen = read_until(study, "[worker 2] Running stage")
    study.kill()
    study.wait()
    assert wait_for_no_processes_in(repo) == [], "".join(seen)

    # SIGTERM (as Ctrl-C) once the second worker has finished a stage: it is handed over, not lost.
    run(repo, "git", "checkout", "--", "dvc.lock")
    forget(repo, committed, GONE)
    study = start_study(repo)
    seen = read_until(study, "[worker 2] Running stage", times=2)
    study.terminate()
    seen += study.stdout.readlines()
    assert study.wait(timeout=120) == 128 + 15, "".join(seen)
    assert wait_for_no_processes_in(repo, seconds=5) == [], "".join(seen)  # no worker, no stage left running
    assert not any((repo / ".dvc/tmp/team").glob("*")), "".join(seen)
    stopped = [line for line in seen if line.startswith("study: stopped (SIGTERM)")]
    assert len(stopped) == 1 and "Traceback" not in "".join(seen), "".join(seen)
    handed = stopped[0].split("from the other workspaces: ")[1].split(")")[0].split()
    assert handed and set(handed) <= set(GONE), stopped[0]
    started_here = [line.split("'")[1] for line in seen if line.startswith("Running stage '")]

    # The rerun trains only what was not finished: never a stage the second worker handed over.
    done = run(repo, "python", "-m", "nnstudy.share", "study", "--workers", "2")
    output = done.stdout + done.stderr
    lines = output.splitlines()
    second = [line.split("'")[1] for line in lines if line.startswith("[worker 2] Running stage '")]
    first = [line.split("'")[1] for line in lines if line.startswith("Running stage '")]
    rerun = training(first) + training(second)
    assert not set(rerun) & set(handed) and sorted(rerun) == sorted(set(rerun)), output
    assert set(rerun) | set(handed) | set(started_here) == set(GONE), output
    for stage in second:  # the second worker's stages came back checked out, not run
        assert f"Stage '{stage}' is cached - skipping run" in done.stdout, output
    assert "up to date" in run(repo, "dvc", "status").stdout
    assert without_timing(yaml.safe_load((repo / "dvc.lock").read_text())) == without_timing(committed)
    changed = [line[3:] for line in run(repo, "git", "status", "--porcelain").stdout.splitlines()]
    assert all(path.startswith(TIMED) for path in changed), changed
    assert not any((repo / ".dvc/tmp/team").glob("*"))


HOLD_LOCK = ("import time; from dvc.repo import Repo; repo = Repo('.'); repo.lock.lock(); print('held', flush=True); "
             "time.sleep(300)")


def test_a_busy_lock_is_one_line_and_an_orphaned_workers_is_cleared(team, tmp_path):
    repo = clone(team, "busy-lock")
    run(repo, "dvc", "pull", "-q")
    # A live `dvc` here, started by someone: named, and left alone.
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK], cwd=repo, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        done = share_command(repo, "study")
        line = one_line(done, f"study: this workspace ({repo}) is busy: DVC's lock is held by PID {holder.pid} (`")
        assert f"(`kill {holder.pid}`), then re-run" in line and holder.poll() is None, line
    finally:
        holder.kill()
        holder.wait()
    # One whose parent is gone (a worker of a killed study, by an older version): stopped, and the study runs.
    held = tmp_path / "held"
    subprocess.run(["sh", "-c", f"{sys.executable} -c \"{HOLD_LOCK}\" > {held} &"], cwd=repo, start_new_session=True,
                   check=True)
    deadline = time.monotonic() + 60
    while not (held.exists() and "held" in held.read_text()) and time.monotonic() < deadline:  # sh's & opens it later
        time.sleep(0.1)
    orphans = [pid for pid in processes_in(repo) if "Repo('.')" in share.command_line(pid)]
    assert len(orphans) == 1
    done = share_command(repo, "study")
    assert done.returncode == 0 and done.stderr.startswith(
        f"study: stopping 1 `dvc repro` left running by an earlier study that was killed (PID {orphans[0]})"), done.stderr
    assert not Path(f"/proc/{orphans[0]}").exists() and "up to date" in run(repo, "dvc", "status").stdout
    # The rwlock a `dvc` killed while writing it leaves empty (DVC writes it in place; every `dvc` then fails
    # on it): with no `dvc` running here, removed in one line, and the study runs.
    (repo / ".dvc/tmp/rwlock").write_text("")
    assert run(repo, "dvc", "status", check=False).returncode != 0
    done = share_command(repo, "study")
    assert done.returncode == 0 and done.stderr.startswith(
        f"study: {repo}/.dvc/tmp/rwlock was left unreadable by a `dvc` that was killed; no `dvc` runs here"), done.stderr
    assert "up to date" in run(repo, "dvc", "status").stdout


def test_study_refuses_a_bad_number_of_workers(team):
    repo = clone(team, "bad-workers")
    env_run = subprocess.run([sys.executable, "-m", "nnstudy.share", "study"], cwd=repo, capture_output=True, text=True,
                             env=dict(os.environ, NNSTUDY_STUDY_WORKERS="many"))
    assert env_run.returncode == 2 and env_run.stderr.strip().splitlines() == [
        "study: NNSTUDY_STUDY_WORKERS='many': must be 'auto' or a whole number of workers >= 1 "
        "(1 runs the study in one `dvc repro`)"], env_run.stderr
    assert "Running stage" not in env_run.stdout


# --- Remotes that fail: one line each, exit 2, nothing local lost.

def one_line(done: subprocess.CompletedProcess, prefix: str) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith(prefix), (done.returncode, done.stderr)
    return lines[0]


def share_command(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return run(repo, "python", "-m", "nnstudy.share", *args, check=False)


def test_an_unreachable_remote_is_one_line_and_without_anything_to_pull_the_study_runs_here(team):
    repo = clone(team, "remote-down")
    url = f"ssh://127.0.0.1:{free_port()}/srv/remote"  # a closed port: a server that is down
    run(repo, "dvc", "remote", "add", "--local", "-d", "down", url)
    down = f"the DVC remote 'down' ({url}) cannot be reached: connect call failed"
    # A fresh clone: its outputs are to come from the remote.
    line = one_line(share_command(repo, "pull"), f"study: {down}")
    assert "outputs are to come from it" in line and "your local work is kept" in line, line
    worker = share_command(repo, "worker", "--workers", "2", "--index", "0")
    one_line(worker, f"worker: {down}")
    assert "Running stage" not in worker.stdout, worker.stdout
    # With the study here (pulled from the team's own remote), `publish` saves it in the run-cache,
    # and the push alone fails.
    run(repo, "dvc", "pull", "-q", "-r", "shared")
    one_line(share_command(repo, "publish"), f"publish: {down}")
    assert any((repo / ".dvc/cache/runs").rglob("*")), "the run-cache entries were not kept"
    # Nothing to pull: a warning, and the study runs here (nothing to do).
    done = share_command(repo, "pull")
    assert done.returncode == 0 and done.stderr.strip().splitlines() == [
        f"study: warning: {down.split(': connect')[0]}: connect call failed ('127.0.0.1', {url.split(':')[2].split('/')[0]}); "
        "nothing needs pulling from it, so the study runs here (`dvc push` once it is back)"], done.stderr
    assert ran(done.stdout) == [] and "up to date" in run(repo, "dvc", "status").stdout
    assert run(repo, "git", "status", "--porcelain").stdout == ""


def test_a_misconfigured_ssh_remote_is_one_line(team, sshd):
    repo = clone(team, "remote-misconfigured")
    url = f"ssh://{sshd['user']}@127.0.0.1:{sshd['port']}{sshd['folder'] / 'remote'}"
    run(repo, "dvc", "remote", "add", "--local", "-d", "server", url)
    run(repo, "dvc", "remote", "modify", "--local", "server", "keyfile", str(sshd["folder"] / "no_such_key"))
    line = one_line(share_command(repo, "publish"), f"publish: the DVC remote 'server' ({url}) is misconfigured: ")
    assert "no_such_key" in line and "dvc remote modify [--local] server" in line, line


def test_a_read_only_remote_is_one_line(team, tmp_path):
    from test_faults import in_namespace

    repo = clone(team, "remote-read-only")
    remote = tmp_path / "read-only-remote"
    remote.mkdir()
    run(repo, "dvc", "remote", "add", "--local", "-d", "ro", str(remote))
    run(repo, "dvc", "pull", "-q", "-r", "shared", "models/variants/batch_mini")
    done = in_namespace(f"mount --bind {remote} {remote}\nmount -o remount,bind,ro {remote}\ncd {repo}\nset +e\n"
                        f"PATH={Path(sys.executable).parent}:$PATH {sys.executable} -m nnstudy.share publish "
                        f"2> {tmp_path}/stderr\necho $? > {tmp_path}/rc")
    assert done.returncode == 0, done.stderr
    result = subprocess.CompletedProcess([], int((tmp_path / "rc").read_text()), "", (tmp_path / "stderr").read_text())
    line = one_line(result, f"publish: the DVC remote 'ro' ({remote}) cannot be written: read-only file system")
    assert "your local work is kept" in line, line
