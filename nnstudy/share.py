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
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from nnstudy.core import paths

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
    children: dict[str, list[str]] = {s: [] for s in deps}
    waiting = {s: len(set(ds)) for s, ds in deps.items()}
    for stage, ds in deps.items():
        for d in set(ds):
            children[d].append(stage)
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


def ancestors(deps: Graph, stage: str) -> set[str]:
    seen: set[str] = set()
    todo = list(deps[stage])
    while todo:
        d = todo.pop()
        if d not in seen:
            seen.add(d)
            todo.extend(deps[d])
    return seen


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


def list_schedule(deps: Graph, costs: Mapping[str, float], machines: int) -> float:
    """The wall time of greedy list scheduling on `machines`: whenever a machine is free it takes the
    ready stage with the longest path to the end (HLFET), the classic heuristic within 2x of optimal."""
    if machines < 1:
        raise ValueError(f"machines must be at least 1, got {machines}")
    order = topological(deps)
    children: dict[str, list[str]] = {s: [] for s in deps}
    for stage, ds in deps.items():
        for d in ds:
            children[d].append(stage)
    level: dict[str, float] = {}
    for stage in reversed(order):
        level[stage] = costs.get(stage, DEFAULT_STAGE_SECONDS) + max((level[c] for c in children[stage]), default=0.0)
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


def plan(workers: int, root: Path = Path(".")) -> Plan:
    deps, outs = stage_graph(root)
    costs = timing_of(outs, root)
    # A stage counts as real work when it has a timing output, committed or not (a fresh study has none).
    timed = {s for s, files in outs.items()
             if any(Path(f).is_relative_to(paths.TIMING_DIR) and f.endswith(".json") for f in files)}
    return partition(deps, costs, timed, workers)


def publish(stages: set[str] | None = None, root: Path = Path("."), remote: str | None = None) -> int:
    """Put `stages` (default: every stage) into the run-cache and push the entries with every object
    they name; returns how many entries were saved.

    Two DVC rules stand in the way of `dvc push --run-cache` alone. `dvc repro` saves no run-cache
    entry for a stage with a `cache: false` output that is not a stage-level metric or plot
    (treeverse/dvc#8738): here that is nearly every stage, whose results git tracks. And
    `dvc push --run-cache` sends the entries but only the workspace's *cached* outputs, so an
    entry whose `cache: false` files are missing from the remote cannot be restored elsewhere. So,
    through DVC's own API: `Stage.save` with the run-cache (which also copies the uncached outputs
    into DVC's cache), then the entries (`stage_cache.push`) and their objects (`cloud.push`).
    """
    from dvc.repo import Repo

    with Repo(str(root)) as repo, repo.lock:  # DVC's own lock: no `dvc` command runs meanwhile
        saved = 0
        for stage in repo.index.stages:
            if stages is None or name(repo, stage) in stages:
                # Only what dvc.lock vouches for: a stage whose code, params or data changed since
                # it ran would record its old outputs under its new inputs.
                if stage.cmd and not stage.changed():
                    stage.save(run_cache=True)
                    saved += 1
        cache = repo.stage_cache
        runs = Path(cache.cache_dir)
        entries = [(entry.parent.name, entry.name) for entry in sorted(runs.glob("*/*/*"))] if runs.is_dir() else []
        cache.push(remote)
        for objs in cache.get_used_objs(entries).values():
            repo.cloud.push(objs, remote=remote)
    return saved


def worker(workers: int, index: int, root: Path = Path(".")) -> int:
    if not 0 <= index < workers:
        print(f"worker: --index must be in 0..{workers - 1}, got {index}", file=sys.stderr)
        return 2
    remotes = subprocess.run(["dvc", "remote", "list"], cwd=root, capture_output=True, text=True, check=True).stdout
    if not remotes.strip():
        print("worker: no DVC remote is configured; add one first (README: Working as a team)", file=sys.stderr)
        return 2
    share = plan(workers, root)
    stages = share.workers[index]
    print(f"worker {index + 1}/{workers}: {len(stages)} stages, ~{share.loads[index]:.0f} s by the committed "
          f"timings ({DEFAULT_STAGE_SECONDS:.0f} s for a stage without one): {' '.join(stages) or '(none)'}", flush=True)
    if stages:
        done = subprocess.run(["dvc", "repro", "--pull", *stages], cwd=root)
        if done.returncode:
            return done.returncode
    saved = publish({*share.trunk, *stages}, root)
    print(f"worker {index + 1}/{workers}: {saved} stages in the run-cache, pushed with their outputs", flush=True)
    return subprocess.run(["dvc", "push", "--run-cache"], cwd=root).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nnstudy.share", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for verb in ("plan", "worker"):
        command = commands.add_parser(verb)
        command.add_argument("--workers", type=int, required=True)
        if verb == "worker":
            command.add_argument("--index", type=int, required=True, help="this worker, 0..workers-1")
    commands.add_parser("publish", help="every stage of the workspace into the run-cache, pushed with its outputs")
    args = parser.parse_args(argv)
    if args.command == "publish":
        print(f"publish: {publish()} stages in the run-cache, pushed with their outputs")
        return subprocess.run(["dvc", "push", "--run-cache"]).returncode
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
