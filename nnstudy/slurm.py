"""The study on a Slurm cluster: one job per stage (or per small group of siblings), each submitted
with `sbatch --dependency=afterok:<the jobs it reads from>`, so that Slurm, not our code, decides
what runs where and when; DVC's remote and run-cache carry every result from job to job.

Each job clones the study's commit into a workspace of its own (on the node's disk by default),
runs `dvc repro --pull <its stages>` (what its stages read is restored from the remote's
run-cache, not run again), then publishes its stages (nnstudy.share.publish) and runs
`dvc push --run-cache`. A last job gathers the study with `dvc repro --pull`, which trains nothing,
runs the stages that read from many jobs (evaluate, summarize, report, ...), publishes them too,
and, where asked, commits the results to a git branch.

Which stages share a job is a pure function of the DAG (`plan_jobs`):

- the cheap **trunk** (nnstudy.share's: fetch, prepare, settings, ...) is one job every job waits for;
- every stage with a committed timing file (real work) is a job of its own, and a cheap stage
  without one rides in the job of the one job it reads from (train@batch_mini → dreams, nondigit;
  final → evaluate_final);
- a cheap stage that reads from several jobs and feeds no real work is left to the gathering job;
- with `min_job_seconds`, jobs that read from the same jobs (siblings) and that no other job reads
  from share one job until it holds that many seconds of work by the committed timings: each job
  pays a clone, DVC's start-up, a pull and a push, which a stage of a few seconds does not repay (a
  job others read from, such as tune or the source network, runs alone, so as not to hold them up).

A submission records its jobs under .dvc/tmp/slurm/<commit>/ (logs, scripts, jobs.json), and each
job, once its stages are in the remote, marks them done there. Submitting again runs only what is
missing: stages up to date in this workspace (`dvc status`) or marked done for this commit are
left out; the rest, and what reads from them, are submitted again.

    python -m nnstudy.slurm submit [--partition P] [--account A] [--branch B] [--dry-run]
    python -m nnstudy.slurm job --state DIR [--gather] [--branch B] STAGE...   # inside a job
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import yaml

from nnstudy import share
from nnstudy.core.errors import StudyError

SETTINGS = Path("cluster.yaml")
STATE_DIR = Path(".dvc/tmp/slurm")   # DVC's scratch folder: git ignores it, DVC looks for no stages in it
TRUNK = "trunk"
GATHER = "gather"
JOB_PREFIX = "nnstudy:"
MEMORY = re.compile(r"^[1-9][0-9]*[KMGT]?$")


# --- The settings: cluster.yaml, validated once.

@dataclass(frozen=True)
class Resources:
    cpus: int
    mem: str                    # Slurm's --mem: a number with an optional K/M/G/T
    gpu: bool                   # --gres=gpu:1


@dataclass(frozen=True)
class Settings:
    cpus: int = 2
    mem: str = "8G"
    time_margin: float = 3.0    # a job's wall time: its stages' committed seconds times this ...
    startup_minutes: int = 5    # ... plus this for the clone, DVC's start-up, the pull and the push,
    min_minutes: int = 10       # and at least this
    min_job_seconds: float = 0.0
    gpu: tuple[str, ...] = ()   # stage patterns whose jobs ask for a GPU
    stages: Mapping[str, Mapping[str, object]] = field(default_factory=dict)  # pattern -> {cpus, mem, gpu}
    partition: str | None = None
    account: str | None = None
    workdir: str | None = None  # where each job clones the study; None: ${TMPDIR:-/tmp} on its node


def _whole(where: str, value: object, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise StudyError(f"{where}: must be a whole number >= {least}, got {value!r}")
    return value


def _number(where: str, value: object, least: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < least:
        raise StudyError(f"{where}: must be a number >= {least}, got {value!r}")
    return float(value)


def _memory(where: str, value: object) -> str:
    text = str(value).strip().upper()
    if not MEMORY.match(text):
        raise StudyError(f"{where}: must be Slurm's --mem, a whole number with an optional K, M, G or T (e.g. 8G), "
                         f"got {value!r}")
    return text


def _text(where: str, value: object) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise StudyError(f"{where}: must be a name or null, got {value!r}")
    return value


def parse_settings(raw: object, source: str = str(SETTINGS)) -> Settings:
    """cluster.yaml's content as Settings; any unknown key or bad value is one StudyError naming it."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise StudyError(f"{source}: must be a mapping of settings, got {type(raw).__name__}")
    known = set(Settings.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise StudyError(f"{source}: unknown setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
    gpu = raw.get("gpu", [])
    if not isinstance(gpu, list) or not all(isinstance(p, str) for p in gpu):
        raise StudyError(f"{source}: gpu must be a list of stage patterns (e.g. ['train@*']), got {gpu!r}")
    overrides = raw.get("stages") or {}
    if not isinstance(overrides, dict):
        raise StudyError(f"{source}: stages must map stage patterns to {{cpus, mem, gpu}}, got {overrides!r}")
    checked: dict[str, dict[str, object]] = {}
    for pattern, values in overrides.items():
        where = f"{source}: stages.{pattern}"
        if not isinstance(values, dict) or set(values) - {"cpus", "mem", "gpu"}:
            raise StudyError(f"{where}: must map some of cpus, mem, gpu to values, got {values!r}")
        one = {}
        if "cpus" in values:
            one["cpus"] = _whole(f"{where}.cpus", values["cpus"], 1)
        if "mem" in values:
            one["mem"] = _memory(f"{where}.mem", values["mem"])
        if "gpu" in values:
            if not isinstance(values["gpu"], bool):
                raise StudyError(f"{where}.gpu: must be true or false, got {values['gpu']!r}")
            one["gpu"] = values["gpu"]
        checked[str(pattern)] = one
    defaults = Settings()
    return Settings(
        cpus=_whole(f"{source}: cpus", raw.get("cpus", defaults.cpus), 1),
        mem=_memory(f"{source}: mem", raw.get("mem", defaults.mem)),
        time_margin=_number(f"{source}: time_margin", raw.get("time_margin", defaults.time_margin), 1.0),
        startup_minutes=_whole(f"{source}: startup_minutes", raw.get("startup_minutes", defaults.startup_minutes), 0),
        min_minutes=_whole(f"{source}: min_minutes", raw.get("min_minutes", defaults.min_minutes), 1),
        min_job_seconds=_number(f"{source}: min_job_seconds", raw.get("min_job_seconds", 0), 0.0),
        gpu=tuple(gpu), stages=checked,
        partition=_text(f"{source}: partition", raw.get("partition")),
        account=_text(f"{source}: account", raw.get("account")),
        workdir=_text(f"{source}: workdir", raw.get("workdir")),
    )


def load_settings(path: Path) -> Settings:
    """The settings of `path`, the defaults where it does not exist."""
    if not path.exists():
        return Settings()
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise StudyError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    return parse_settings(raw, str(path))


def resources(settings: Settings, stages: tuple[str, ...]) -> Resources:
    """What a job of `stages` asks for: the defaults, raised by every override whose pattern matches
    one of them (the most CPUs and memory any of them asks for; a GPU if any gains from one)."""
    cpus, mem = settings.cpus, settings.mem
    gpu = any(fnmatch.fnmatchcase(s, p) for s in stages for p in settings.gpu)
    for pattern, values in settings.stages.items():
        if any(fnmatch.fnmatchcase(s, pattern) for s in stages):
            cpus = max(cpus, int(values.get("cpus", cpus)))
            mem = max(mem, str(values.get("mem", mem)), key=megabytes)
            gpu = gpu or bool(values.get("gpu", False))
    return Resources(cpus, mem, gpu)


def megabytes(mem: str) -> float:
    units = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 ** 2}
    return float(mem[:-1]) * units[mem[-1]] if mem[-1] in units else float(mem)


def minutes(settings: Settings, seconds: float) -> int:
    """A job's wall-time limit: its committed seconds with the margin, plus the start-up."""
    return max(settings.min_minutes, math.ceil(seconds * settings.time_margin / 60) + settings.startup_minutes)


# --- Which stages share a job: a pure function of the DAG and the committed timings.

@dataclass(frozen=True)
class Job:
    name: str
    stages: tuple[str, ...]     # in DVC's order
    after: tuple[str, ...]      # the jobs whose outputs it reads
    seconds: float              # its stages' committed seconds


def plan_jobs(deps: share.Graph, costs: Mapping[str, float], timed: set[str], min_job_seconds: float = 0.0,
              pending: set[str] | None = None) -> tuple[list[Job], tuple[str, ...]]:
    """The jobs, each after the jobs it reads from (in an order where every job follows those), and
    the stages left to the gathering job (see the module doc); of the `pending` stages only (default:
    all), placed as in the whole study, and waiting only for pending jobs (the rest is in the remote)."""
    order = share.topological(deps)
    trunk = set(share.partition(deps, costs, timed, 1).trunk)
    children = share.dependents(deps)
    feeds_work = {s: bool(share.reachable(children, children[s]) & timed) for s in deps}
    job_of: dict[str, str | None] = {}   # stage -> its job's first stage; None: the gather
    for stage in order:
        parents = {job_of[d] for d in deps[stage] if d not in trunk}
        if stage in trunk:
            job_of[stage] = TRUNK
        elif stage in timed or not parents:
            job_of[stage] = stage
        elif len(parents) == 1 and None not in parents:
            job_of[stage] = parents.pop()
        elif feeds_work[stage]:
            job_of[stage] = stage
        else:
            job_of[stage] = None

    def cost(stage: str) -> float:
        return float(costs.get(stage, share.DEFAULT_STAGE_SECONDS))

    # Of what is to run only: a stage done already is pulled, nobody waits for it.
    rank = {s: i for i, s in enumerate(order)}
    rank[TRUNK] = -1
    order = [s for s in order if pending is None or s in pending]
    job_of = {s: job_of[s] for s in order}

    # Jobs in the order of their first stage; siblings (the same jobs read) fill a bundle up to min_job_seconds.
    members: dict[str, list[str]] = {}
    for stage in order:
        if job_of[stage] is not None:
            members.setdefault(job_of[stage], []).append(stage)
    bundle_of: dict[str, str] = {}
    open_bundle: dict[frozenset[str], str] = {}
    bundles: dict[str, list[str]] = {}
    has_readers: set[str] = set()
    for head, stages in members.items():
        # A job other jobs read from runs alone: in a bundle it would hold its readers up.
        read = any(job_of.get(c) not in (None, head) for s in stages for c in children[s])
        reads = frozenset(bundle_of[job_of[d]] for s in stages for d in deps[s] if job_of.get(d) not in (None, head))
        current = open_bundle.get(reads)
        full = current is not None and sum(map(cost, bundles[current])) >= min_job_seconds
        if read or head == TRUNK or current in (None, TRUNK) or current in has_readers or full:
            current = open_bundle[reads] = head
            bundles[head] = []
            if read:
                has_readers.add(head)
        bundles[current].extend(stages)
        bundle_of[head] = current
    # A job is named after its first stage (and how many more it holds); the trunk is the trunk.
    name_of = {head: TRUNK if head == TRUNK else stages[0] + (f"+{len(stages) - 1}" if len(stages) > 1 else "")
               for head, stages in bundles.items()}
    jobs = []
    for head, stages in bundles.items():
        after = sorted({bundle_of[job_of[d]] for s in stages for d in deps[s]
                        if job_of.get(d) is not None and bundle_of[job_of[d]] != head}, key=rank.__getitem__)
        jobs.append(Job(name_of[head], tuple(sorted(stages, key=rank.__getitem__)), tuple(name_of[a] for a in after),
                        round(sum(map(cost, stages)), 2)))
    gather = tuple(s for s in order if job_of[s] is None)
    return jobs, gather


def dag_schedule(jobs: list[Job], gather_seconds: float, machines: int) -> float:
    """The wall time of these jobs on `machines` as Slurm runs them (each job starts once the jobs it
    reads from are done and a machine is free; the longest path to the end first), then the gather."""
    deps = {job.name: set(job.after) for job in jobs}
    costs = {job.name: job.seconds for job in jobs}
    return (share.list_schedule(deps, costs, machines) if jobs else 0.0) + gather_seconds


# --- Submitting.

@dataclass(frozen=True)
class Submission:
    root: Path
    commit: str
    url: str                    # where each job clones the study from
    state: Path                 # logs, scripts, jobs.json and the done markers of this commit
    python_bin: Path            # the venv whose dvc and python the jobs use
    branch: str | None
    keep: bool


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def clone_url(root: Path) -> str:
    """Where the jobs clone the study from: git's `origin` (which must hold the commit), else this
    workspace itself (a path every node sees: a shared home or project folder)."""
    remotes = git(root, "remote").split()
    if "origin" not in remotes:
        return str(root.resolve())
    if not git(root, "branch", "-r", "--contains", "HEAD"):
        raise StudyError("the study's commit is not on git's `origin`, where the jobs clone it from: "
                         "`git push` it first")
    return git(root, "remote", "get-url", "origin")


def done_marker(state: Path, stage: str) -> Path:
    return state / "done" / stage.replace("/", "%2F")


def done_stages(state: Path) -> set[str]:
    folder = state / "done"
    return {p.name.replace("%2F", "/") for p in folder.iterdir()} if folder.is_dir() else set()


def job_script(job: Job, settings: Settings, submission: Submission, gather: bool = False) -> str:
    """The batch script of `job`: its resources as #SBATCH lines, a workspace of its own at the
    study's commit, then `python -m nnstudy.slurm job` there."""
    need = resources(settings, job.stages)
    slug = re.sub(r"[^A-Za-z0-9_.@=+-]", "_", job.name)
    lines = ["#!/bin/bash",
             f"#SBATCH --job-name={JOB_PREFIX}{job.name}",
             f"#SBATCH --output={submission.state / 'logs'}/%j-{slug}.out",
             f"#SBATCH --cpus-per-task={need.cpus}",
             f"#SBATCH --mem={need.mem}",
             f"#SBATCH --time={minutes(settings, job.seconds)}"]
    lines += ["#SBATCH --gres=gpu:1"] if need.gpu else []
    lines += [f"#SBATCH --partition={settings.partition}"] if settings.partition else []
    lines += [f"#SBATCH --account={settings.account}"] if settings.account else []
    workdir = shlex.quote(settings.workdir) if settings.workdir else '"${TMPDIR:-/tmp}"'
    command = ["python", "-m", "nnstudy.slurm", "job", "--state", str(submission.state)]
    command += ["--gather"] if gather else []
    command += ["--branch", submission.branch] if gather and submission.branch else []
    local_config = submission.root / ".dvc" / "config.local"
    lines += [f"# {len(job.stages)} stages: {' '.join(job.stages)}",
              "set -euo pipefail",
              f"export PATH={shlex.quote(str(submission.python_bin))}:\"$PATH\" DVC_NO_ANALYTICS=1",
              f"workspace={workdir}/nnstudy-$SLURM_JOB_ID"]
    lines += [] if submission.keep else ["trap 'rm -rf \"$workspace\"' EXIT"]
    lines += [f"git clone -q --no-checkout {shlex.quote(submission.url)} \"$workspace\"",
              "cd \"$workspace\"",
              f"git checkout -q --detach {submission.commit}",
              # The remote's credentials, which git never sees, from the submitting workspace.
              f"if [ -f {shlex.quote(str(local_config))} ]; then cp {shlex.quote(str(local_config))} .dvc/; fi",
              " ".join([*map(shlex.quote, command), "--", *map(shlex.quote, job.stages)]), ""]
    return "\n".join(lines)


def still_queued(state: Path) -> list[str]:
    """The ids of this commit's last submission that Slurm still holds (pending or running)."""
    record = state / "jobs.json"
    if not record.exists():
        return []
    ids = [job["id"] for job in json.loads(record.read_text())["jobs"] if job.get("id")]
    if not ids:
        return []
    shown = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(ids)], capture_output=True, text=True)
    return shown.stdout.split() if shown.returncode == 0 else []


def pending_stages(deps: share.Graph, changed: set[str], done: set[str]) -> set[str]:
    """What a submission runs: the stages `dvc status` finds changed here, less those a job of this
    commit already finished, and everything that reads from what is left."""
    return share.downstream(deps, share.downstream(deps, changed) - done)


def sbatch(script: Path, after: list[str]) -> str:
    command = ["sbatch", "--parsable", "--kill-on-invalid-dep=yes"]
    command += [f"--dependency=afterok:{':'.join(after)}"] if after else []
    done = subprocess.run([*command, str(script)], capture_output=True, text=True)
    if done.returncode != 0:
        raise StudyError(f"sbatch refused {script.name}: {(done.stderr or done.stdout).strip().splitlines()[-1]}")
    return done.stdout.strip().split(";")[0]


def submit(root: Path, settings: Settings, branch: str | None, keep: bool, dry_run: bool) -> int:
    root = root.resolve()
    if not dry_run and not shutil.which("sbatch"):
        raise StudyError("no `sbatch` here: run this on a Slurm login node (or --dry-run to see the jobs)")
    if not subprocess.run(["dvc", "remote", "list"], cwd=root, capture_output=True, text=True, check=True).stdout.strip():
        raise StudyError("no DVC remote is configured: the jobs hand their results over through one "
                         "(docs/cluster.md: `dvc remote add -d ...`)")
    dirty = [line[3:] for line in git(root, "status", "--porcelain", "--untracked-files=no").splitlines()]
    if dirty:
        raise StudyError(f"commit first: the jobs clone the last commit, which lacks your changes to {', '.join(dirty[:3])}"
                         + (f" and {len(dirty) - 3} more" if len(dirty) > 3 else ""))
    commit = git(root, "rev-parse", "HEAD")
    submission = Submission(root, commit, clone_url(root), root / STATE_DIR / commit[:12],
                            Path(sys.executable).parent, branch, keep)
    queued = still_queued(submission.state)
    if queued and not dry_run:
        raise StudyError(f"{len(queued)} jobs of this commit's last submission are still queued or running "
                         f"({', '.join(queued)}): wait for them (`squeue --me`) or `scancel` them first")

    deps, outs = share.stage_graph(root)
    pending = pending_stages(deps, share.changed_stages(root), done_stages(submission.state))
    if not pending:
        print(f"slurm: nothing to submit: every stage of {commit[:7]} is done; "
              "`python3 run.py study` pulls the study (it trains nothing)")
        return 0
    costs = share.timing_of(outs, root)
    jobs, gather = plan_jobs(deps, costs, share.timed_stages(outs), settings.min_job_seconds, pending)
    gathering = Job(GATHER, gather, tuple(job.name for job in jobs),
                    round(sum(costs.get(s, share.DEFAULT_STAGE_SECONDS) for s in gather), 2))

    for folder in ("logs", "scripts", "done"):
        (submission.state / folder).mkdir(parents=True, exist_ok=True)
    ids: dict[str, str] = {}
    record = []
    print(f"slurm: {len(jobs) + 1} jobs for the {len(pending)} stages of {commit[:7]} to run "
          f"({len(deps) - len(pending)} are done), cloned from {submission.url}", flush=True)
    for index, job in enumerate([*jobs, gathering]):
        is_gather = job is gathering
        script = submission.state / "scripts" / f"{index:03d}.sh"
        script.write_text(job_script(job, settings, submission, gather=is_gather))
        if dry_run:
            ids[job.name] = f"${{job{index}}}"
            after = ":".join(ids[a] for a in job.after)
            print(f"job{index}=$(sbatch --parsable --kill-on-invalid-dep=yes"
                  + (f" --dependency=afterok:{after}" if after else "") + f" {script})   # {job.name}")
            continue
        try:
            ids[job.name] = sbatch(script, [ids[a] for a in job.after])
        except StudyError as error:
            raise StudyError(f"{error} (the {len(record)} jobs submitted before it are in "
                             f"{submission.state / 'jobs.json'}: `scancel` them, or let them run)") from None
        need = resources(settings, job.stages)
        record.append({"id": ids[job.name], "name": job.name, "stages": list(job.stages), "after": list(job.after)})
        # Written as it grows: whatever happens next, a later submission knows these are queued.
        (submission.state / "jobs.json").write_text(json.dumps({"commit": commit, "jobs": record}, indent=1) + "\n")
        print(f"  {ids[job.name]:>8}  {job.name:<40} {len(job.stages):>2} stage{'s' if len(job.stages) > 1 else ' '}  {need.cpus} cpus {need.mem}"
              f"{' 1 gpu' if need.gpu else ''}  {minutes(settings, job.seconds)} min"
              + (f"  after {len(job.after)} jobs" if job.after else ""), flush=True)
    if dry_run:
        return 0
    print(f"slurm: watch them with `squeue --me` (logs in {submission.state / 'logs'}); after a failure, "
          "`python3 run.py slurm` again submits only what is missing", flush=True)
    subprocess.run(["squeue", "--me"])
    return 0


# --- Inside a job.

def run_job(stages: list[str], state: Path, gather: bool, branch: str | None) -> int:
    """Run `stages` here (the gather: the whole study, pulled), put them into the remote with their
    run-cache entries, then mark them done for the next submission."""
    done = subprocess.run(["dvc", "repro", "--pull", *([] if gather else stages)])
    if done.returncode:
        return done.returncode
    saved = share.publish(None if gather else set(stages))
    print(f"slurm job: {saved} stages in the run-cache, pushed with their outputs", flush=True)
    pushed = subprocess.run(["dvc", "push", "--run-cache"])
    if pushed.returncode:
        return pushed.returncode
    if gather and branch:
        for command in (["git", "checkout", "-q", "-B", branch], ["git", "add", "-A"],
                        ["git", "commit", "-qm", "The study, gathered on Slurm"],
                        # The results branch is this tool's: a study submitted again replaces it.
                        ["git", "push", "-q", "-f", "origin", f"HEAD:refs/heads/{branch}"]):
            if subprocess.run(command).returncode:
                return 1
        print(f"slurm job: the results are on git branch {branch!r}", flush=True)
    for stage in stages:
        marker = done_marker(state, stage)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("done\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 run.py slurm", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    command = commands.add_parser("submit", help="submit the study's missing stages as Slurm jobs (the default)")
    command.add_argument("--settings", type=Path, default=SETTINGS, help=f"resources per job (default {SETTINGS})")
    command.add_argument("--partition", help="Slurm partition (default: cluster.yaml's, else the cluster's default)")
    command.add_argument("--account", help="Slurm account to charge")
    command.add_argument("--branch", help="the gathering job commits the results to this git branch and pushes it")
    command.add_argument("--keep", action="store_true", help="keep each job's workspace (default: removed)")
    command.add_argument("--dry-run", action="store_true", help="write the job scripts, print the sbatch lines")
    command = commands.add_parser("job", help="inside a job: run, publish and mark its stages")
    command.add_argument("--state", type=Path, required=True)
    command.add_argument("--gather", action="store_true")
    command.add_argument("--branch")
    command.add_argument("stages", nargs="*")
    argv = sys.argv[1:] if argv is None else argv
    # `python3 run.py slurm [options]`: submitting is what a user asks for; `job` is for the jobs.
    args = parser.parse_args(argv if argv[:1] in (["submit"], ["job"], ["-h"], ["--help"]) else ["submit", *argv])
    if args.command == "job":
        return run_job(args.stages, args.state, args.gather, args.branch)
    try:
        settings = load_settings(args.settings)
        overrides = {k: v for k, v in (("partition", args.partition), ("account", args.account)) if v}
        if overrides:
            settings = parse_settings({**_raw(args.settings), **overrides}, str(args.settings))
        return submit(Path("."), settings, args.branch, args.keep, args.dry_run)
    except StudyError as error:
        print(f"slurm: {error}", file=sys.stderr)
        return 2


def _raw(path: Path) -> dict:
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


if __name__ == "__main__":
    sys.exit(main())
