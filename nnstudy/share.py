"""One study split across machines, on DVC's own machinery: which stages each worker takes.

DVC does the rest: every worker runs `dvc repro --pull <its stages>` (outputs already in the
remote, or in its run-cache, are restored instead of re-run), then puts its stages into the
run-cache and pushes them (`publish`, below, and `dvc push --run-cache`);
any clone then gathers the whole study with `dvc repro --pull`, which restores every worker's
stages from the run-cache and runs only the stages that read from several workers (evaluate,
summarize, report, ...).

Ours are only the split (`partition`), a pure function of the DAG (from DVC's own stage graph)
and the per-stage costs (from the committed timing files), and `publish`, which works around two
DVC rules that keep this pipeline's stages out of a shared run-cache (see its doc):

- **trunk**: stages without a timing file of their own that lead to at least two timed stages
  (fetch, prepare, settings, transfer_data, ...): cheap and deterministic, so every worker runs
  (or restores) them rather than waiting for one to publish them;
- **groups**: every other stage joins the group of its non-trunk parents when they all lie in one
  group (tune → final → evaluate_final; transfer_pretrain → every transfer run), else starts a group
  of its own when it has none: a worker never needs another worker's output;
- **gather**: a stage whose parents lie in two or more groups (or in the gather set): left to the
  gathering `dvc repro --pull`.

Groups go to workers by list scheduling, longest first (LPT), on their committed stage times.
`simulate` gives the study's wall time on 1..N machines by the critical path and by list
scheduling over the whole DAG (an ideal scheduler at stage level), for bench/scaleout.py.

    python -m nnstudy.share plan --workers 2          # who takes what (JSON)
    python -m nnstudy.share worker --workers 2 --index 0
    python -m nnstudy.share publish                    # every up-to-date stage into the remote's run-cache
    python -m nnstudy.share study                      # `python3 run.py study`: the study on two
                                                       # `dvc repro` side by side on this machine (below)
    python -m nnstudy.share pull [ARGS]                # `python3 run.py study` with a remote:
                                                       # `dvc repro --pull ARGS`, a failing remote in one line
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from nnstudy.core import paths
from nnstudy.core.errors import StudyError
from nnstudy.core.lifeline import die_with_parent
from nnstudy.remotes import RemoteError, check_remote, missing_outputs, remote_errors
from nnstudy.training.processes import cores, count_setting

# Stages without a committed timing file (fetch, evaluate, summarize, ...) are assumed to take this
# long: they load data or models and compute tables, a few seconds each on 2 cores.
DEFAULT_STAGE_SECONDS = 5.0

Graph = Mapping[str, frozenset[str] | set[str]]  # stage -> the stages whose outputs it reads


@dataclass(frozen=True)
class Plan:
    trunk: tuple[str, ...]                 # every worker runs (or restores) these
    workers: tuple[tuple[str, ...], ...]   # each worker's own stages
    gather: tuple[str, ...]                # left to the gathering `dvc repro --pull`
    loads: tuple[float, ...]               # each worker's seconds, from the committed timings


def topological(deps: Graph) -> list[str]:
    """The stages in an order where every stage follows its deps; ties by name (deterministic)."""
    unknown = {d for ds in deps.values() for d in ds} - set(deps)
    if unknown:
        raise ValueError(f"stages depend on unknown stages: {', '.join(sorted(unknown))}")
    children = dependents(deps)
    waiting = {s: len(set(ds)) for s, ds in deps.items()}
    ready = sorted(s for s, n in waiting.items() if n == 0)
    heapq.heapify(ready)
    order = []
    while ready:
        stage = heapq.heappop(ready)
        order.append(stage)
        for child in children[stage]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, child)
    if len(order) != len(deps):
        raise ValueError("the stage graph has a cycle")
    return order


def reachable(edges: Graph, starts) -> set[str]:
    """`starts` and every stage reached from them along `edges` (stage -> its neighbours)."""
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        stage = todo.pop()
        if stage not in seen:
            seen.add(stage)
            todo.extend(edges[stage])
    return seen


def ancestors(deps: Graph, stage: str) -> set[str]:
    return reachable(deps, deps[stage])


def partition(deps: Graph, costs: Mapping[str, float], timed: set[str], workers: int) -> Plan:
    """Split the stages among `workers` so that no worker needs another's outputs (see the module doc).

    `timed`: the stages with a committed timing file (they do real work); `costs`: seconds per
    stage (missing ones count DEFAULT_STAGE_SECONDS).
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    order = topological(deps)
    below = {s: ancestors(deps, s) for s in deps}
    trunk = {s for s in deps if s not in timed and sum(1 for t in timed if s in below[t]) >= 2}
    group_of: dict[str, str | None] = {}   # stage -> its group's first stage; None: gather
    for stage in order:
        if stage in trunk:
            continue
        parents = {group_of[d] for d in deps[stage] if d not in trunk}
        if not parents:
            group_of[stage] = stage
        elif len(parents) == 1 and None not in parents:
            group_of[stage] = parents.pop()
        else:
            group_of[stage] = None
    groups: dict[str, list[str]] = {}
    for stage in order:
        if group_of.get(stage):
            groups.setdefault(group_of[stage], []).append(stage)

    def cost(stage: str) -> float:
        return float(costs.get(stage, DEFAULT_STAGE_SECONDS))

    # LPT: the longest group first, each to the least loaded worker (ties: the lower index).
    loads = [0.0] * workers
    shares: list[list[str]] = [[] for _ in range(workers)]
    for head in sorted(groups, key=lambda h: (-sum(cost(s) for s in groups[h]), h)):
        index = min(range(workers), key=lambda i: (loads[i], i))
        shares[index].extend(groups[head])
        loads[index] += sum(cost(s) for s in groups[head])
    rank = {s: i for i, s in enumerate(order)}
    return Plan(
        trunk=tuple(s for s in order if s in trunk),
        workers=tuple(tuple(sorted(share, key=rank.__getitem__)) for share in shares),
        gather=tuple(s for s in order if s in group_of and group_of[s] is None),
        loads=tuple(round(load, 2) for load in loads),
    )


def critical_path(deps: Graph, costs: Mapping[str, float]) -> float:
    """The longest chain of stage times: no number of machines finishes sooner."""
    finish: dict[str, float] = {}
    for stage in topological(deps):
        finish[stage] = max((finish[d] for d in deps[stage]), default=0.0) + costs.get(stage, DEFAULT_STAGE_SECONDS)
    return max(finish.values(), default=0.0)


def dependents(deps: Graph) -> dict[str, list[str]]:
    """Each stage's readers: the stages that list it in their deps."""
    children: dict[str, list[str]] = {s: [] for s in deps}
    for stage, ds in deps.items():
        for d in set(ds):
            children[d].append(stage)
    return children


def levels(deps: Graph, costs: Mapping[str, float]) -> dict[str, float]:
    """Each stage's longest path to the end of the study, its own time included: list scheduling's
    priority (the stage that holds up the most goes first)."""
    children = dependents(deps)
    level: dict[str, float] = {}
    for stage in reversed(topological(deps)):
        level[stage] = costs.get(stage, DEFAULT_STAGE_SECONDS) + max((level[c] for c in children[stage]), default=0.0)
    return level


def list_schedule(deps: Graph, costs: Mapping[str, float], machines: int) -> float:
    """The wall time of greedy list scheduling on `machines`: whenever a machine is free it takes the
    ready stage with the longest path to the end (HLFET), the classic heuristic within 2x of optimal."""
    if machines < 1:
        raise ValueError(f"machines must be at least 1, got {machines}")
    order = topological(deps)
    children = dependents(deps)
    level = levels(deps, costs)
    waiting = {s: len(set(deps[s])) for s in deps}
    ready = [(-level[s], s) for s in order if waiting[s] == 0]
    heapq.heapify(ready)
    running: list[tuple[float, str]] = []   # (finish time, stage)
    free, now = machines, 0.0
    while ready or running:
        while ready and free:
            _, stage = heapq.heappop(ready)
            heapq.heappush(running, (now + costs.get(stage, DEFAULT_STAGE_SECONDS), stage))
            free -= 1
        now, stage = heapq.heappop(running)
        free += 1
        for child in children[stage]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (-level[child], child))
    return now


def simulate(deps: Graph, costs: Mapping[str, float], machines: tuple[int, ...] = (1, 2, 4, 8)) -> dict:
    """Wall time of the study on each number of machines: list scheduling, and the critical-path bound."""
    total = sum(costs.get(s, DEFAULT_STAGE_SECONDS) for s in deps)
    bound = critical_path(deps, costs)
    rows = {}
    for n in machines:
        seconds = list_schedule(deps, costs, n)
        rows[str(n)] = {"list_schedule_seconds": round(seconds, 1), "speedup": round(total / seconds, 2),
                        "lower_bound_seconds": round(max(bound, total / n), 1)}
    return {"stages": len(deps), "serial_seconds": round(total, 1), "critical_path_seconds": round(bound, 1),
            "machines": rows}


# --- Reading the study: DVC's own stage graph and the committed timing files.

def stage_graph(root: Path = Path(".")) -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    """Every stage of dvc.yaml (by its `dvc repro` name, e.g. train@batch_mini) with the stages it
    reads from, from DVC's own index; and each stage's output paths."""
    from dvc.repo import Repo  # DVC loads slowly; only the commands that need it pay for it

    with Repo(str(root)) as repo:
        graph = repo.index.graph
        deps = {name(repo, stage): set() for stage in graph.nodes}
        for stage, dep in graph.edges:  # DVC's edges run from a stage to the stage it depends on
            deps[name(repo, stage)].add(name(repo, dep))
        outs = {name(repo, stage): [str(out.def_path) for out in stage.outs] for stage in graph.nodes}
    return deps, outs


def name(repo, stage) -> str:
    """The stage's `dvc repro` name from the repository root (DVC's `addressing` is relative to the
    current folder: 'train@batch_mini' there, 'other/dvc.yaml:train@batch_mini' elsewhere)."""
    where = os.path.relpath(stage.path, repo.root_dir)
    return stage.name if where == "dvc.yaml" else f"{where}:{stage.name}"


def timing_of(outs: Mapping[str, list[str]], root: Path = Path(".")) -> dict[str, float]:
    """Seconds per stage from its timing file (its output under paths.TIMING_DIR), where committed."""
    seconds = {}
    for stage, files in outs.items():
        for file in files:
            path = Path(file)
            if path.suffix == ".json" and path.is_relative_to(paths.TIMING_DIR) and (root / path).is_file():
                timing = json.loads((root / path).read_text())
                value = timing.get("stage_seconds") or timing.get("search_seconds")
                if isinstance(value, (int, float)):
                    seconds[stage] = float(value)
    return seconds


def timed_stages(outs: Mapping[str, list[str]]) -> set[str]:
    """The stages that count as real work: those with a timing output, committed or not (a fresh
    study has none)."""
    return {s for s, files in outs.items()
            if any(Path(f).is_relative_to(paths.TIMING_DIR) and f.endswith(".json") for f in files)}


def plan(workers: int, root: Path = Path(".")) -> Plan:
    deps, outs = stage_graph(root)
    return partition(deps, timing_of(outs, root), timed_stages(outs), workers)


def publish(stages: set[str] | None = None, root: Path = Path("."), remote: str | None = None) -> int:
    """Put `stages` (default: every stage) into the run-cache and push the entries with every object
    they name, then what `dvc push --run-cache` pushes; returns how many entries were saved. A remote
    that fails is a RemoteError (one line); what was saved locally stays.

    Two DVC rules stand in the way of `dvc push --run-cache` alone. `dvc repro` saves no run-cache
    entry for a stage with a `cache: false` output that is not a stage-level metric or plot
    (treeverse/dvc#8738): here that is nearly every stage, whose results git tracks. And
    `dvc push --run-cache` sends the entries but only the workspace's *cached* outputs, so an
    entry whose `cache: false` files are missing from the remote cannot be restored elsewhere. So,
    through DVC's own API: `Stage.save` with the run-cache (which also copies the uncached outputs
    into DVC's cache), then the entries (`stage_cache.push`) and their objects (`cloud.push`).
    """
    from dvc.repo import Repo

    saved = len(save_run_cache(stages, root))
    with remote_errors(root, remote):
        with Repo(str(root)) as repo, repo.lock:
            cache = repo.stage_cache
            runs = Path(cache.cache_dir)
            entries = [(entry.parent.name, entry.name) for entry in sorted(runs.glob("*/*/*"))] if runs.is_dir() else []
            cache.push(remote)
            for objs in cache.get_used_objs(entries).values():
                repo.cloud.push(objs, remote=remote)
        with Repo(str(root)) as repo:  # `dvc push --run-cache` (it takes DVC's lock itself)
            repo.push(remote=remote, run_cache=True)
    return saved


def save_run_cache(stages: set[str] | None = None, root: Path = Path(".")) -> list[str]:
    """Put `stages` (default: every stage) that are up to date into DVC's run-cache, with their
    uncached outputs (publish's doc says why `dvc repro` alone does not); returns their names."""
    from dvc.repo import Repo

    # DVC resolves a run-cache entry's stage against the current folder: be in the workspace.
    with contextlib.chdir(root), Repo(".") as repo, repo.lock:  # DVC's lock: no `dvc` command runs meanwhile
        saved = []
        for stage in repo.index.stages:
            if stages is None or name(repo, stage) in stages:
                # Only what dvc.lock vouches for: a stage whose code, params or data changed since
                # it ran would record its old outputs under its new inputs.
                if stage.cmd and not stage.changed():
                    stage.save(run_cache=True)
                    saved.append(name(repo, stage))
    return saved


def worker(workers: int, index: int, root: Path = Path(".")) -> int:
    if not 0 <= index < workers:
        print(f"worker: --index must be in 0..{workers - 1}, got {index}", file=sys.stderr)
        return 2
    remotes = subprocess.run(["dvc", "remote", "list"], cwd=root, capture_output=True, text=True, check=True).stdout
    if not remotes.strip():
        print("worker: no DVC remote is configured; add one first (docs/team.md: A remote)", file=sys.stderr)
        return 2
    check_remote(root)  # before hours of training whose outputs it could not push
    share = plan(workers, root)
    stages = share.workers[index]
    print(f"worker {index + 1}/{workers}: {len(stages)} stages, ~{share.loads[index]:.0f} s by the committed "
          f"timings ({DEFAULT_STAGE_SECONDS:.0f} s for a stage without one): {' '.join(stages) or '(none)'}", flush=True)
    if stages:
        code = run_here(["dvc", "repro", "--pull", *stages], root)
        if code:
            return code
    saved = publish({*share.trunk, *stages}, root)
    print(f"worker {index + 1}/{workers}: {saved} stages in the run-cache, pushed with their outputs", flush=True)
    return 0


# --- One machine, several workers: `python3 run.py study`.
#
# A stage keeps about one core busy for most of its time (the interpreter's and JAX's start-up,
# DVC's bookkeeping, the default sample's small products), so on 2 cores two `dvc repro` of
# independent stages side by side do 1.6-1.7x the work of one: measured, four sweep points took
# 17.8 s one after the other and 10.5 s two at a time, four transfer runs 76.3 s and 47.6 s. DVC
# runs one `dvc repro` per workspace at a time, so each further worker works in a copy of the
# workspace that shares this one's DVC cache: it runs its share (the split `worker` uses, of the
# stages that are to run) and hands it over (`hand_over`), and a last `dvc repro` here checks it out
# and runs the stages that read from several workers. The results are those of one `dvc repro`.

TEAM_ENV = "NNSTUDY_STUDY_WORKERS"
# Less pending work than this (by the committed timings), and a copy of the workspace and the
# checkouts of what it made (about a second a stage) cost more than a second worker saves.
MIN_TEAM_SECONDS = 20.0


def study_workers(environ: Mapping[str, str] | None = None) -> int:
    """How many `dvc repro` run side by side in `python3 run.py study`: NNSTUDY_STUDY_WORKERS, 'auto'
    (the default: 2 where the process may use 2 cores or more, the case measured) or a number."""
    wanted = count_setting(environ, TEAM_ENV, "workers", "runs the study in one `dvc repro`")
    return min(2, cores()) if wanted is None else wanted


def downstream(deps: Graph, stages: set[str]) -> set[str]:
    """`stages` and every stage that reads from them, directly or not: what `dvc repro` runs again."""
    return reachable(dependents(deps), stages)


def changed_stages(root: Path = Path(".")) -> set[str]:
    """The stages whose code, params, data or outputs differ from dvc.lock (missing ones included)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo, repo.lock:
        return {name(repo, stage) for stage in repo.index.stages if stage.cmd and stage.changed()}


def pending_plan(workers: int, root: Path = Path(".")) -> tuple[Plan, float]:
    """The split of the stages `dvc repro` would run now, and their seconds by the committed timings."""
    deps, outs = stage_graph(root)
    pending = downstream(deps, changed_stages(root))
    costs = timing_of(outs, root)
    # Up-to-date parents are in every workspace already: the split is of the pending stages alone.
    subgraph = {s: deps[s] & pending for s in pending}
    work = sum(costs.get(s, DEFAULT_STAGE_SECONDS) for s in pending)
    return partition(subgraph, costs, timed_stages(outs) & pending, workers), work


def _dvc_cache_dir(root: Path) -> str:
    return subprocess.run(["dvc", "cache", "dir"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def copy_workspace(root: Path, target: Path) -> None:
    """Another workspace of the study in `target`: a clone of `root`'s git repository holding the
    files git sees in `root` (committed or not; not ignored ones), DVC's local config, and DVC's
    outputs, hard-linked from `root`'s cache, which the copy shares (what it trains goes straight
    into it)."""
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A git repository at this one's commit (DVCLive reads it), whose files are then this workspace's.
    subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout", str(root), str(target)], check=True)
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=root, capture_output=True, check=True).stdout.decode()
    for relative in [*filter(None, listed.split("\0")), ".dvc/config.local"]:
        source = root / relative
        if source.is_file():  # git also lists a committed file deleted since
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / relative)
    cache = _dvc_cache_dir(root)
    for command in (["dvc", "cache", "dir", "--local", cache],
                    ["dvc", "config", "--local", "cache.type", "hardlink,copy"],
                    # What is not in the cache (a fresh study) is what the workers are about to make.
                    ["dvc", "checkout", "-q", "--allow-missing"]):
        subprocess.run(command, cwd=target, check=True, stdout=subprocess.DEVNULL)


def hand_over(copy: Path, stages: set[str], root: Path) -> list[str]:
    """Give `root` the `stages` that are up to date in the workspace `copy` (which shares its DVC
    cache): their outputs, uncached ones too, into the cache (the run-cache entry), and their
    dvc.lock entries into `root`'s dvc.lock, so that `dvc repro` in `root` checks them out instead
    of running them. Returns their names.

    The run-cache entry alone is not enough where `root`'s dvc.lock already has an entry for the
    stage with the same inputs (a committed study, re-run): `dvc repro` then looks only for that
    entry's outputs, and saved models carry the time they were written, so it would run the stage."""
    from dvc.repo import Repo
    from dvc.utils.serialize import dump_yaml, load_yaml

    done = save_run_cache(stages, copy)
    if not done:
        return done
    entries = load_yaml(copy / "dvc.lock")["stages"]
    with contextlib.chdir(root), Repo(".") as repo, repo.lock:
        lock = load_yaml("dvc.lock") if Path("dvc.lock").exists() else {"schema": "2.0", "stages": {}}
        lock.setdefault("stages", {}).update({stage: entries[stage] for stage in done})
        dump_yaml("dvc.lock", lock)
    return done


class Interrupted(Exception):
    """Ctrl-C (SIGINT) or `kill` (SIGTERM) of the study: it stops its workers and keeps their work."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum: int, frame) -> None:
    raise Interrupted(signum)


def catch_interrupts(handler=_interrupt) -> None:
    """Ctrl-C and `kill` as Interrupted (or, with signal.SIG_IGN, held off: while work is handed over)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)


def _start(command: list[str], cwd: Path, prefix: str | None) -> subprocess.Popen:
    """`command` in a process group of its own (to stop it with everything it started), killed by
    the kernel should this process die first (a `kill -9` of the study: its stages then stop too,
    nnstudy.core.lifeline); its output on ours, each line after `prefix` when given."""
    if prefix is None:
        return subprocess.Popen(command, cwd=cwd, start_new_session=True, preexec_fn=die_with_parent)
    process = subprocess.Popen(command, cwd=cwd, start_new_session=True, preexec_fn=die_with_parent,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)

    def relay() -> None:
        for line in process.stdout:
            print(prefix + line, end="", flush=True)
    threading.Thread(target=relay, daemon=True).start()
    return process


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def run_here(command: list[str], root: Path) -> int:
    """`command` (a `dvc repro`) in `root`, stopped with all it started should this process be
    interrupted or die; its exit code."""
    process = _start(command, root, None)
    try:
        return process.wait()
    except BaseException:
        _stop([process])
        raise


def study(workers: int, root: Path = Path(".")) -> int:
    """The whole study, as `dvc repro` would run it, on `workers` side by side (see above)."""
    root = root.resolve()
    plan, work = pending_plan(workers, root)
    shares = [stages for stages in plan.workers if stages]
    if workers < 2 or len(shares) < 2 or work < MIN_TEAM_SECONDS:
        return run_here(["dvc", "repro"], root)
    print(f"study: {len(shares)} workers side by side ({TEAM_ENV}), each a share of the {len(plan.trunk) + sum(map(len, shares)) + len(plan.gather)} "
          f"stages to run (~{work:.0f} s of work by the committed timings); then one `dvc repro` here "
          f"gathers them and runs {' '.join(plan.gather) or 'nothing more'}", flush=True)
    started = time.perf_counter()
    copies = [root / paths.TEAM_DIR / f"worker-{index}" for index in range(2, len(shares) + 1)]
    processes: list[subprocess.Popen] = []
    # The workers run in process groups of their own (so that each can be stopped with all it
    # started): Ctrl-C and `kill` reach only this process, which then stops them (below).
    try:
        for copy in copies:  # before this workspace's outputs start to be replaced
            copy_workspace(root, copy)
        processes = [_start(["dvc", "repro", *shares[0]], root, None)]
        processes += [_start(["dvc", "repro", *stages], copy, f"[worker {index}] ")
                      for index, (copy, stages) in enumerate(zip(copies, shares[1:]), start=2)]
        while all(process.poll() is None or process.returncode == 0 for process in processes) \
                and any(process.poll() is None for process in processes):
            time.sleep(0.5)
        failed = [(index, process.returncode) for index, process in enumerate(processes, start=1)
                  if process.poll() not in (None, 0)]
        if failed:
            _stop(processes)
        side_by_side = time.perf_counter() - started
        # What the other workers finished comes here, failed or not: a re-run does not train it again.
        handed = hand_over_all(copies, shares[1:], root)
        if failed:
            index, code = failed[0]
            print(f"study: worker {index}'s `dvc repro` failed (exit {code}), its output above; the other "
                  f"workers were stopped. The {len(handed)} stages the other workspaces finished "
                  "are here; `python3 run.py study` again runs the rest", file=sys.stderr)
            return code
        # Restores the other workers' stages from the shared cache, and runs what reads from several.
        gathered = run_here(["dvc", "repro"], root)
        print(f"study: the workers side by side {side_by_side:.0f} s, the gathering `dvc repro` "
              f"{time.perf_counter() - started - side_by_side:.0f} s", flush=True)
        return gathered
    except Interrupted as stop:
        _stop(processes)
        catch_interrupts(signal.SIG_IGN)  # a second Ctrl-C must not cut the hand-over short
        handed = hand_over_all(copies, shares[1:], root)
        kept = f" ({len(handed)} of them from the other workspaces: {' '.join(handed)})" if handed else ""
        print(f"study: stopped ({stop}); the stages the workers finished are kept{kept}, and a stage "
              "stopped mid-training resumes from its checkpoints: `python3 run.py study` runs the rest",
              file=sys.stderr, flush=True)
        return 128 + stop.signum
    except BaseException:
        _stop(processes)
        raise
    finally:
        for copy in copies:
            shutil.rmtree(copy, ignore_errors=True)


def hand_over_all(copies: list[Path], shares: list[tuple[str, ...]], root: Path) -> list[str]:
    """hand_over from every copy that exists (a copy still being made when the study stopped may not)."""
    return [stage for copy, stages in zip(copies, shares) if (copy / "dvc.lock").exists()
            for stage in hand_over(copy, set(stages), root)]


# --- A DVC lock that is taken when the study starts.

def lock_holders(root: Path, error: Exception) -> list[int]:
    """The live `dvc` (or study) processes that hold `root`'s DVC locks: those DVC's `is busy` message
    names (the rwlock), and the one whose PID is in .dvc/tmp/lock (DVC's repository lock)."""
    pids = {int(pid) for pid in re.findall(r"\(PID (\d+)\)", str(error), re.IGNORECASE)}
    with contextlib.suppress(OSError, ValueError):
        pids.add(int((root / ".dvc" / "tmp" / "lock").read_text().strip()))
    return sorted(pid for pid in pids if pid != os.getpid() and re.search(r"dvc|nnstudy", command_line(pid)))


def command_line(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    return ""


def orphaned_worker(pid: int, root: Path) -> bool:
    """A process working in `root` (or a copy of it the study made) whose parent is gone: a worker
    of a study that was killed, left by a version of this code whose workers did not die with it."""
    try:
        parent = int(re.search(r"^PPid:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(), re.M).group(1))
        where = Path(os.readlink(f"/proc/{pid}/cwd"))
    except (OSError, AttributeError):
        return False
    return parent == 1 and where.is_relative_to(root)


def _signal_orphan(pid: int, signum: int) -> None:
    """`signum` to the orphan's process group where it leads one (a worker does, with its stage in
    it), else to it alone: never to a group it merely belongs to, which may hold anything."""
    with contextlib.suppress(OSError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)


def stop_orphans(pids: list[int], timeout: float = 30) -> None:
    """SIGTERM to each orphan, then SIGKILL to those still there after `timeout`."""
    for pid in pids:
        _signal_orphan(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in pids:
        _signal_orphan(pid, signal.SIGKILL)


def busy_lock_line(root: Path, error: Exception) -> str:
    """One line for a DVC lock held by someone else: who holds it and what to do."""
    holders = lock_holders(root, error)
    if not holders:
        return (f"DVC's lock on {root} is taken ({str(error).splitlines()[0]}), by no running `dvc`: if none runs "
                f"here, remove {root / '.dvc/tmp/lock'} and {root / '.dvc/tmp/rwlock'}, then re-run")
    who = ", ".join(f"PID {pid} (`{command_line(pid)[:80]}`)" for pid in holders)
    return (f"this workspace ({root}) is busy: DVC's lock is held by {who}; wait for it to finish, or stop it "
            f"(`kill {' '.join(map(str, holders))}`), then re-run")


def clear_corrupt_rwlock(root: Path) -> bool:
    """Remove .dvc/tmp/rwlock if it cannot be read, taking the guard DVC itself takes to edit it (so
    no `dvc` is halfway through writing it). DVC writes the file in place: a `dvc` killed while it
    writes leaves it empty, and every later `dvc` command fails on it. Whether it was removed."""
    from dvc.lock import make_lock

    folder = root / ".dvc" / "tmp"
    with make_lock(str(folder / "rwlock.lock"), tmp_dir=str(folder), wait=True):
        try:
            json.loads((folder / "rwlock").read_text())
            return False
        except FileNotFoundError:
            return False
        except ValueError:
            (folder / "rwlock").unlink()
            return True


def study_in_a_free_workspace(workers: int, root: Path = Path(".")) -> int:
    """study(), first stopping what holds the workspace's DVC lock where that is safe (the orphaned
    workers of a killed study, the unreadable rwlock a killed `dvc` left), else one line that names
    the holder (exit 2)."""
    from dvc.lock import LockError
    from dvc.rwlock import RWLockFileCorruptedError

    root = root.resolve()
    try:
        return study(workers, root)
    except RWLockFileCorruptedError as error:
        # Its in-flight entries are lost with it: safe only while no `dvc` works here.
        if lock_holders(root, error):
            print(f"study: {busy_lock_line(root, error)}", file=sys.stderr)
            return 2
        if clear_corrupt_rwlock(root):
            print(f"study: {root / '.dvc/tmp/rwlock'} was left unreadable by a `dvc` that was killed; no `dvc` "
                  "runs here, so it is removed", file=sys.stderr, flush=True)
    except LockError as error:
        holders = lock_holders(root, error)
        orphans = [pid for pid in holders if orphaned_worker(pid, root)]
        if not holders or orphans != holders:
            print(f"study: {busy_lock_line(root, error)}", file=sys.stderr)
            return 2
        print(f"study: stopping {len(orphans)} `dvc repro` left running by an earlier study that was killed "
              f"(PID {' '.join(map(str, orphans))}); what they trained resumes from its checkpoints",
              file=sys.stderr, flush=True)
        stop_orphans(orphans)
    try:
        return study(workers, root)
    except LockError as error:
        print(f"study: {busy_lock_line(root, error)}", file=sys.stderr)
        return 2


# --- `python3 run.py study` with a DVC remote.

def pull_study(args: list[str], root: Path = Path(".")) -> int:
    """`dvc repro --pull ARGS`, after a look at the remote: one that fails is one line (exit 2) where
    something had to come from it, else a one-line warning, and the study runs here without it."""
    try:
        check_remote(root)
    except RemoteError as error:
        missing = missing_outputs(root)
        if missing:
            print(f"study: {error.problem}, and {len(missing)} outputs are to come from it (e.g. {missing[0]}); "
                  f"{error.remedy}", file=sys.stderr)
            return 2
        print(f"study: warning: {error.problem}; nothing needs pulling from it, so the study runs here "
              "(`dvc push` once it is back)", file=sys.stderr, flush=True)
        return run_here(["dvc", "repro", *args], root)
    return run_here(["dvc", "repro", "--pull", *args], root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nnstudy.share", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for verb in ("plan", "worker"):
        command = commands.add_parser(verb)
        command.add_argument("--workers", type=int, required=True)
        if verb == "worker":
            command.add_argument("--index", type=int, required=True, help="this worker, 0..workers-1")
    commands.add_parser("publish", help="every stage of the workspace into the run-cache, pushed with its outputs")
    command = commands.add_parser("study", help="the whole study on several `dvc repro` side by side")
    command.add_argument("--workers", type=int, help=f"default: {TEAM_ENV}, or 2 where 2 cores are free")
    commands.add_parser("pull", help="`dvc repro --pull ARGS`, a remote that fails in one line")
    argv = sys.argv[1:] if argv is None else list(argv)
    # `pull`'s arguments are `dvc repro`'s own (`-s STAGE`, `--force`): passed on, not parsed here.
    args = parser.parse_args(argv[:1] if argv[:1] == ["pull"] else argv)
    args.repro_args = argv[1:]
    catch_interrupts()
    try:
        return run_command(parser, args)
    except RemoteError as error:
        print(f"{args.command}: {error}", file=sys.stderr)
        return 2
    except Interrupted as stop:
        print(f"{args.command}: stopped ({stop}); the stages that finished are kept, and a stage stopped "
              "mid-training resumes from its checkpoints: run the same command again", file=sys.stderr)
        return 128 + stop.signum


def run_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command == "study":
        try:
            workers = study_workers() if args.workers is None else args.workers
        except StudyError as error:
            print(f"study: {error}", file=sys.stderr)
            return 2
        if workers < 1:
            parser.error(f"--workers must be at least 1, got {workers}")
        return study_in_a_free_workspace(workers)
    if args.command == "pull":
        return pull_study(args.repro_args)
    if args.command == "publish":
        print(f"publish: {publish()} stages in the run-cache, pushed with their outputs")
        return 0
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    if args.command == "worker":
        return worker(args.workers, args.index)
    shown = plan(args.workers)
    print(json.dumps({"trunk": shown.trunk, "workers": shown.workers, "loads": shown.loads, "gather": shown.gather},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
