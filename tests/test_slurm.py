"""The study on a real Slurm (Debian's slurm-wlm and munge): munged, slurmctld and slurmd started on
localhost with a generated slurm.conf fit for a container, and the tiny study submitted to it as
jobs that follow dvc.yaml's DAG (nnstudy/slurm.py), handing results over through a local-path DVC
remote.

One submission serves both end-to-end tests: its job holding `tune` is cancelled at once (a job
that failed), so the first round shows what a failed job does to its readers, and the second
submission, which completes the study, shows that only what was missing runs again.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from nnstudy import share, slurm
from nnstudy.core.errors import StudyError
from study_helpers import copy_project, run, shared_team, small_params, without_timing
from test_share import ran, training

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")


# --- Pure functions, on small graphs with known answers.

# t (cheap) feeds everything; a -> b (b cheap: rides with a); c; d reads a and c; e reads d; j (cheap)
# reads a and c and feeds nothing: left to the gather.
DEPS = {"t": set(), "a": {"t"}, "b": {"a"}, "c": {"t"}, "d": {"a", "c"}, "e": {"d"}, "j": {"a", "c"},
        "s1": {"t"}, "s2": {"t"}, "s3": {"t"}}
TIMED = {"a", "c", "d", "e", "s1", "s2", "s3"}


def test_jobs_follow_the_dag_cheap_stages_ride_along_and_joins_are_gathered():
    jobs, gather = slurm.plan_jobs(DEPS, {"a": 10, "c": 10, "d": 10, "e": 10, "s1": 4, "s2": 4, "s3": 4}, TIMED)
    by_name = {job.name: job for job in jobs}
    assert by_name["trunk"].stages == ("t",) and by_name["trunk"].after == ()
    assert by_name["a+1"].stages == ("a", "b") and by_name["a+1"].after == ("trunk",)
    assert by_name["d"].after == ("a+1", "c") and by_name["e"].after == ("d",)
    assert gather == ("j",)
    assert sorted(s for job in jobs for s in job.stages) == sorted(set(DEPS) - {"j"})
    # Siblings nobody reads share a job up to min_job_seconds; a, c (read by d) stay alone.
    jobs, _ = slurm.plan_jobs(DEPS, {"a": 10, "c": 10, "d": 10, "e": 10, "s1": 4, "s2": 4, "s3": 4}, TIMED, 8)
    assert [job.stages for job in jobs if job.stages[0].startswith("s")] == [("s1", "s2"), ("s3",)]
    assert {"a+1", "c"} <= {job.name for job in jobs}
    # As Slurm would run them: on one machine the sum, on many the longest chain, then the gather.
    assert slurm.dag_schedule(jobs, 5, 1) == sum(job.seconds for job in jobs) + 5
    assert slurm.dag_schedule(jobs, 5, 8) == 5 + 15 + 10 + 10 + 5  # t, a+b (b untimed: 5 s), d, e, the gather


def test_only_pending_stages_are_planned_placed_as_in_the_whole_study():
    costs = {"a": 10, "c": 10, "d": 10, "e": 10}
    jobs, gather = slurm.plan_jobs(DEPS, costs, TIMED, pending={"c", "d", "e", "j"})
    assert [(job.name, job.stages, job.after) for job in jobs] == [("c", ("c",), ()), ("d", ("d",), ("c",)),
                                                                   ("e", ("e",), ("d",))]
    assert gather == ("j",)  # cheap, reads from two jobs: still the gather's, with a done
    # A cheap stage whose job is done (b's is a's) runs in a job of its own, named after it.
    jobs, gather = slurm.plan_jobs(DEPS, costs, TIMED, pending={"b"})
    assert [(job.name, job.stages, job.after) for job in jobs] == [("b", ("b",), ())] and gather == ()


def test_the_real_study_runs_every_training_stage_in_a_job():
    deps, outs = share.stage_graph(Path(__file__).resolve().parents[1])
    jobs, gather = slurm.plan_jobs(deps, {}, share.timed_stages(outs))
    placed = [s for job in jobs for s in job.stages]
    assert sorted(placed + list(gather)) == sorted(deps) and len(placed) == len(set(placed))
    assert not training(gather) and {"evaluate", "summarize", "report"} <= set(gather)
    assert next(job for job in jobs if "final" in job.stages).after == ("trunk", "tune")


def test_pending_is_what_changed_less_what_is_done_and_its_readers():
    assert slurm.pending_stages(DEPS, set(DEPS), {"t", "a", "b", "c"}) == set(DEPS) - {"t", "a", "b", "c"}
    assert slurm.pending_stages(DEPS, set(DEPS), {"t", "c", "d", "s1", "s2", "s3"}) == {"a", "b", "d", "e", "j"}  # d reads a
    assert slurm.pending_stages(DEPS, {"c"}, set()) == {"c", "d", "e", "j"}


def test_settings_are_validated_and_raise_resources_by_pattern():
    settings = slurm.parse_settings({"cpus": 1, "mem": "2g", "gpu": ["train@*"],
                                     "stages": {"tune": {"cpus": 4, "mem": "16G"}, "final": {"gpu": True}}})
    assert slurm.resources(settings, ("tune", "s1")) == slurm.Resources(4, "16G", False)
    assert slurm.resources(settings, ("train@batch_mini",)) == slurm.Resources(1, "2G", True)
    assert slurm.resources(settings, ("final",)).gpu and slurm.resources(slurm.Settings(), ("x",)).cpus == 2
    assert slurm.minutes(settings, 0) == 10 and slurm.minutes(settings, 600) == 30 + 5
    for raw, message in [({"cpu": 2}, "unknown setting 'cpu'"), ({"cpus": 0}, "cpus: must be a whole number >= 1"),
                         ({"mem": "lots"}, "mem: must be Slurm's --mem"), ({"gpu": "train@*"}, "gpu must be a list"),
                         ({"stages": {"tune": {"gpus": 1}}}, "stages.tune: must map some of cpus, mem, gpu"),
                         ({"time_margin": 0.5}, "time_margin: must be a number >= 1.0"), ([], "must be a mapping")]:
        with pytest.raises(StudyError, match=message):
            slurm.parse_settings(raw, "cluster.yaml")


def test_job_script_asks_for_its_resources_and_runs_its_stages_in_a_clone_of_the_commit(tmp_path):
    settings = slurm.parse_settings({"gpu": ["final"], "partition": "gpu", "account": "lab", "workdir": "/scratch/me"})
    submission = slurm.Submission(tmp_path, "c0ffee" * 6 + "abcd", "git@host:lab/study.git", tmp_path / "state",
                                  Path("/home/me/study/.venv/bin"), None, False)
    script = slurm.job_script(slurm.Job("final+1", ("final", "evaluate_final"), ("tune",), 600.0), settings, submission)
    lines = script.splitlines()
    for wanted in ("#SBATCH --job-name=nnstudy:final+1", "#SBATCH --cpus-per-task=2", "#SBATCH --mem=8G",
                   "#SBATCH --time=35", "#SBATCH --gres=gpu:1", "#SBATCH --partition=gpu", "#SBATCH --account=lab",
                   "git clone -q --no-checkout git@host:lab/study.git \"$workspace\"",
                   f"git checkout -q --detach {submission.commit}",
                   f"python -m nnstudy.slurm job --state {tmp_path / 'state'} -- final evaluate_final"):
        assert wanted in lines, (wanted, script)
    assert "workspace=/scratch/me/nnstudy-$SLURM_JOB_ID" in lines and any(line.startswith("trap ") for line in lines)
    gather = slurm.job_script(slurm.Job("gather", ("report",), ("final+1",), 5.0),
                              slurm.Settings(), slurm.Submission(**{**submission.__dict__, "branch": "results"}), True)
    assert "--gather --branch results -- report" in gather and "--gres" not in gather and "--partition" not in gather


def test_the_project_cluster_file_is_valid():
    root = Path(__file__).resolve().parents[1]
    assert slurm.load_settings(root / slurm.SETTINGS).min_job_seconds >= 0


def test_submit_refuses_bad_settings_and_a_missing_remote_in_one_line(tmp_path):
    repo = copy_project(tmp_path / "study", small_params("jax"))
    (repo / "cluster.yaml").write_text("cpus: many\n")
    done = run(repo, "python", "-m", "nnstudy.slurm", "--dry-run", check=False)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "slurm: cluster.yaml: cpus: must be a whole number >= 1, got 'many'"], done.stderr
    (repo / "cluster.yaml").unlink()
    done = run(repo, "python", "-m", "nnstudy.slurm", "--dry-run", check=False)
    assert done.returncode == 2 and "no DVC remote is configured" in done.stderr and len(done.stderr.splitlines()) == 1
    assert not (repo / slurm.STATE_DIR).exists()


# --- A real Slurm on localhost.

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def node_line() -> str:
    """This machine as slurmd sees it (`slurmd -C`): its CPUs and memory, so that slurmd accepts it."""
    probed = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.split()
    fields = dict(word.split("=", 1) for word in probed if "=" in word)
    return f"NodeName={fields['NodeName']} NodeAddr=127.0.0.1 CPUs={fields['CPUs']} RealMemory={fields['RealMemory']}"


def slurm_conf(folder: Path, socket_path: Path) -> str:
    return f"""ClusterName=nnstudy
SlurmctldHost={socket.gethostname().split('.')[0]}(127.0.0.1)
SlurmUser=root
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
AuthType=auth/munge
AuthInfo=socket={socket_path}
# A container: no cgroups to track or bind processes with.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# Each finished job's state, for the test to read (no accounting database here).
JobCompType=jobcomp/filetxt
JobCompLoc={folder / 'jobs.txt'}
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
MpiDefault=none
ReturnToService=2
MinJobAge=3600
StateSaveLocation={folder / 'state'}
SlurmdSpoolDir={folder / 'spool'}
SlurmctldPidFile={folder / 'slurmctld.pid'}
SlurmdPidFile={folder / 'slurmd.pid'}
SlurmctldLogFile={folder / 'slurmctld.log'}
SlurmdLogFile={folder / 'slurmd.log'}
{node_line()} State=UNKNOWN
PartitionName=study Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """munged, slurmctld and slurmd on localhost, in a folder of their own; SLURM_CONF points every
    Slurm command of the test (and of its jobs) at them."""
    missing = [name for name in DAEMONS if not shutil.which(name) and not Path(f"/usr/sbin/{name}").exists()]
    if missing:
        pytest.skip(f"no Slurm here ({', '.join(missing)} missing): apt-get install slurm-wlm munge "
                    "(.ci/run installs them where apt is available)")
    if os.geteuid() != 0:
        pytest.skip("slurmd must run as root to start jobs; run the tests as root (as CI does) to test on Slurm")
    folder = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (folder / sub).mkdir()
    (folder / "munge").mkdir(mode=0o700)
    key = folder / "munge" / "munge.key"
    subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True)
    # munged wants its socket's folder, and every folder above it, open to all (pytest's are not).
    sockets = Path(tempfile.mkdtemp(prefix="nnstudy-munge-"))
    sockets.chmod(0o755)
    socket_path = sockets / "munge.socket"
    subprocess.run(["munged", f"--socket={socket_path}", f"--key-file={key}", f"--log-file={folder / 'munged.log'}",
                    f"--pid-file={folder / 'munged.pid'}", f"--seed-file={folder / 'munge' / 'seed'}"], check=True)
    conf = folder / "slurm.conf"
    conf.write_text(slurm_conf(folder, socket_path))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLURM_CONF", str(conf))
        started = []
        try:
            for daemon in ("slurmctld", "slurmd"):
                subprocess.run([daemon, "-f", str(conf)], check=True)
                started.append(daemon)
            deadline = time.monotonic() + 60
            while "idle" not in subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout:
                if time.monotonic() > deadline:
                    pytest.fail(f"slurmd did not come up: {(folder / 'slurmd.log').read_text()[-2000:]}")
                time.sleep(0.5)
            yield {"folder": folder, "conf": conf}
        finally:
            subprocess.run(["scancel", "--user", "root"], capture_output=True)
            for name in (*reversed(started), "munged"):
                pid_file = folder / f"{name}.pid"
                if pid_file.exists():
                    subprocess.run(["kill", pid_file.read_text().strip()], capture_output=True)
            shutil.rmtree(sockets, ignore_errors=True)


def wait_for(jobs: list[str], timeout: float = 1500) -> None:
    deadline = time.monotonic() + timeout
    while subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(jobs)], capture_output=True, text=True).stdout.strip():
        if time.monotonic() > deadline:
            pytest.fail(f"the jobs {jobs} did not finish in {timeout:.0f} s")
        time.sleep(2)


def job_states(cluster: dict) -> dict[str, dict[str, str]]:
    """Every finished job's record (JobState, NodeList, ...), by id, from Slurm's job-completion file."""
    records = {}
    for line in (cluster["folder"] / "jobs.txt").read_text().splitlines():
        fields = dict(word.split("=", 1) for word in line.split() if "=" in word)
        records[fields["JobId"]] = fields
    return records


def submit(repo: Path) -> tuple[str, list[dict]]:
    done = run(repo, "python", "-m", "nnstudy.slurm", "--branch", "slurm-results")
    commit = run(repo, "git", "rev-parse", "HEAD").stdout.strip()
    jobs = yaml.safe_load((repo / slurm.STATE_DIR / commit[:12] / "jobs.json").read_text())["jobs"]
    return done.stdout, jobs


def logs(repo: Path) -> dict[str, str]:
    """Each job's output, by job id."""
    folder = next((repo / slurm.STATE_DIR).glob("*/logs"))
    return {path.name.split("-", 1)[0]: path.read_text() for path in folder.glob("*.out")}


@pytest.fixture(scope="module")
def on_slurm(cluster, tmp_path_factory):
    """The tiny study submitted from a clone of a bare git repository, with a local-path DVC remote:
    first with the job holding `tune` cancelled at once, then again to complete it."""
    base = tmp_path_factory.mktemp("slurm-study")
    author = copy_project(base / "author", small_params("jax"))
    # Two jobs side by side on the test's 2 CPUs; siblings share a job, so that the ~20 stages
    # make a handful of jobs (each pays a clone, DVC's start-up, a pull and a push).
    (author / "cluster.yaml").write_text(yaml.safe_dump({"cpus": 1, "mem": "1G", "min_job_seconds": 30,
                                                         "workdir": str(base / "nodes")}))
    run(author, "dvc", "remote", "add", "-d", "shared", str(base / "remote"))
    run(author, "git", "add", "-A")
    run(author, "git", "commit", "-qm", "a shared DVC remote, the cluster's settings")
    run(base, "git", "clone", "-q", "--bare", str(author), str(base / "origin.git"))
    repo = base / "submitter"
    run(base, "git", "clone", "-q", str(base / "origin.git"), str(repo))

    first_output, first = submit(repo)
    failed = next(job for job in first if "tune" in job["stages"])
    subprocess.run(["scancel", failed["id"]], check=True)  # before its turn: the job failed
    wait_for([job["id"] for job in first])
    first_logs = logs(repo)
    second_output, second = submit(repo)
    wait_for([job["id"] for job in second])
    gathered = base / "gathered"
    run(base, "git", "clone", "-q", "-b", "slurm-results", str(base / "origin.git"), str(gathered))
    run(gathered, "dvc", "pull", "-q")
    return {"repo": repo, "first": first, "second": second, "failed": failed, "outputs": (first_output, second_output),
            "first_logs": first_logs, "logs": logs(repo), "states": job_states(cluster), "gathered": gathered}


def test_the_study_runs_as_slurm_jobs_that_follow_the_dag(on_slurm, tmp_path_factory):
    jobs = on_slurm["first"] + on_slurm["second"]
    states, logs_by_id = on_slurm["states"], on_slurm["logs"]
    ran_in = {job["id"]: ran(logs_by_id.get(job["id"], "")) for job in jobs}
    # Every training stage ran in exactly one job, one of those it was given to.
    everywhere = [s for job in jobs for s in training(ran_in[job["id"]])]
    assert everywhere and len(everywhere) == len(set(everywhere)), ran_in
    lock = yaml.safe_load((on_slurm["gathered"] / "dvc.lock").read_text())
    assert set(everywhere) == set(training(lock["stages"])), ran_in
    for job in jobs:
        assert set(ran_in[job["id"]]) <= set(job["stages"]) or job["name"] == "gather", job
    # The gathering job trained nothing: it restored every job's stages from the run-cache.
    gather = on_slurm["second"][-1]
    assert gather["name"] == "gather" and states[gather["id"]]["JobState"] == "COMPLETED"
    assert training(ran_in[gather["id"]]) == [] and "is cached - skipping run" in logs_by_id[gather["id"]]
    assert set(ran_in[gather["id"]]) <= set(gather["stages"]), ran_in[gather["id"]]
    # The results branch is the study: complete, and equal to the one trained on a single machine's workers.
    assert "up to date" in run(on_slurm["gathered"], "dvc", "status").stdout
    team = shared_team(tmp_path_factory)
    single = yaml.safe_load((team["gatherer"] / "dvc.lock").read_text())
    assert without_timing(lock) == without_timing(single)
    # Nothing is missing now: a third submission submits nothing.
    again = run(on_slurm["repo"], "python", "-m", "nnstudy.slurm")
    assert "nothing to submit" in again.stdout, again.stdout


def test_a_failed_job_stops_its_readers_and_a_resubmission_runs_only_what_is_missing(on_slurm):
    first, second, failed, states = on_slurm["first"], on_slurm["second"], on_slurm["failed"], on_slurm["states"]
    readers = {job["id"] for job in first if failed["name"] in job["after"]}
    gather = first[-1]
    assert readers and gather["name"] == "gather"
    assert states[failed["id"]]["JobState"] == "CANCELLED"
    for job in first:
        state = states[job["id"]]
        if job["id"] in readers or job is gather:
            # Never started: Slurm cancelled it when the job it waited for failed.
            assert state["JobState"] == "CANCELLED" and state["NodeList"] == "(null)", state
            assert job["id"] not in on_slurm["first_logs"]
        elif job is not failed:
            assert state["JobState"] == "COMPLETED", (job, state, on_slurm["first_logs"].get(job["id"]))
    # Submitted again: the failed job's stages, its readers' and the gather, nothing else.
    expected = {s for job in first if job["id"] in readers | {failed["id"], gather["id"]} for s in job["stages"]}
    assert {s for job in second for s in job["stages"]} == expected, second
    assert all(states[job["id"]]["JobState"] == "COMPLETED" for job in second)
    assert "tune" in ran(on_slurm["logs"][next(j["id"] for j in second if "tune" in j["stages"])])
