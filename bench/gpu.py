"""The full-size study on a machine that has a GPU and Python but neither DVC nor git: the lent GPU
machine, which starts bare and has no package registry (nothing DVC needs can be installed there).

It runs the very stage commands of dvc.yaml, in the order of its DAG, from clean, and times each:
what `dvc repro` would run, without DVC's own bookkeeping (hashing, dvc.lock, the cache). Stages
run `--slots` at a time: whenever a slot is free it takes the ready stage with the longest path to
the end of the study, by the full-size stage times of bench/full.json (share.list_schedule's rule,
for real). It writes its figures after every stage, so a run stopped at its deadline keeps what it
measured.

    # here, where DVC is: the stages, their commands and the full-size params.yaml, in one file
    python -m bench.gpu plan --out .gpu/plan.json --set seeds_together=true \\
        --set data.fashion_mnist_dir=.gpu/fashion-mnist
    # there (a copy of the checkout with .gpu/ beside it):
    python -m bench.gpu params .gpu/plan.json           # the plan's params.yaml, for other benchmarks
    python -m bench.gpu run .gpu/plan.json --slots 6 --deadline 400 --out $OUT/gpu_study.json
"""

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


# --- Here: the plan, from DVC's own stage graph.

def parse_setting(text: str) -> tuple[list[str], object]:
    """`a.b=value` -> (['a', 'b'], value parsed as YAML), as `dvc exp run -S` reads it."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set {text!r}: expected KEY=VALUE (e.g. seeds_together=true)")
    return key.split("."), yaml.safe_load(value)


def make_plan(settings: list[tuple[list[str], object]], overrides: dict) -> dict:
    from bench.clone import fresh_clone, merge_params, replace_params
    from bench.full import FULL_SIZE
    from bench.scaleout import full_size_costs
    from nnstudy import share

    with tempfile.TemporaryDirectory(prefix="nnstudy-gpu-plan-") as folder:
        repo, commit = fresh_clone(folder)
        merge_params(repo, FULL_SIZE)
        replace_params(repo, overrides)
        for keys, value in settings:
            nested: object = value
            for key in reversed(keys):
                nested = {key: nested}
            merge_params(repo, nested)
        deps, _ = share.stage_graph(repo)
        from dvc.repo import Repo

        with Repo(str(repo)) as dvc:
            commands = {share.name(dvc, stage): stage.cmd for stage in dvc.index.stages}
        costs, source = full_size_costs()
        level = share.levels(deps, costs)
        order = share.topological(deps)
        return {
            "commit": commit, "params_yaml": (repo / "params.yaml").read_text(),
            "settings": {".".join(keys): value for keys, value in settings}, "params_overrides": overrides or None,
            "priority_from": source,
            "stages": [{"name": s, "cmd": commands[s], "deps": sorted(deps[s]), "level": round(level[s], 1)}
                       for s in order],
        }


# --- There: the run, with the standard library alone until the stages start.

def write_params(plan: dict, root: Path = ROOT) -> None:
    (root / "params.yaml").write_text(plan["params_yaml"])


def machine() -> dict:
    info = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        info["gpu"] = gpu.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["gpu"] = None
    return info


def run_plan(plan: dict, slots: int, deadline: float, out: Path, logs: Path, root: Path = ROOT) -> dict:
    """Run the plan's stages in `root`, `slots` at a time, until done or `deadline` seconds: a stage
    still running then is stopped and reported as such; a failed stage's readers never start."""
    write_params(plan, root)
    logs.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    stages = {s["name"]: s for s in plan["stages"]}
    state: dict[str, str] = {name: "waiting" for name in stages}
    result = {
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": plan["commit"],
        "params_overrides": plan.get("params_overrides"),
        "command": f"python -m bench.gpu run PLAN --slots {slots} --deadline {deadline:g}",
        "machine": machine(), "settings": plan["settings"], "slots": slots, "deadline_seconds": deadline,
        "stages_seconds": {}, "started_at_seconds": {}, "failed": {}, "stopped_at_deadline": [],
        "not_started": [],
    }
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    log_files = {}
    start = time.perf_counter()

    def save() -> None:
        result["wall_seconds"] = round(time.perf_counter() - start, 1)
        result["complete"] = all(v == "done" for v in state.values())
        result["sum_of_stage_seconds"] = round(sum(result["stages_seconds"].values()), 1)
        out.write_text(json.dumps(result, indent=2) + "\n")

    while True:
        now = time.perf_counter() - start
        for name, (process, began) in list(running.items()):
            if process.poll() is None:
                continue
            del running[name]
            log_files.pop(name).close()
            seconds = round(time.perf_counter() - start - began, 2)
            if process.returncode == 0:
                state[name] = "done"
                result["stages_seconds"][name] = seconds
            else:
                state[name] = "failed"
                tail = (logs / f"{name}.log").read_text(errors="replace").strip().splitlines()[-3:]
                result["failed"][name] = {"returncode": process.returncode, "seconds": seconds, "last_lines": tail}
            print(f"[{time.perf_counter() - start:7.1f} s] {name}: {state[name]} in {seconds} s", flush=True)
            save()
        if now > deadline:
            for name, (process, began) in running.items():
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:  # it ended just now
                    pass
                result["stopped_at_deadline"].append({"stage": name, "ran_seconds": round(now - began, 1)})
            for name, (process, _) in running.items():
                process.wait()
                log_files.pop(name).close()
            break
        # Ready: every dep done. A failed dep means the stage can never run.
        for name in stages:
            if state[name] == "waiting" and any(state[d] in ("failed", "skipped") for d in stages[name]["deps"]):
                state[name] = "skipped"
        ready = sorted((n for n in stages if state[n] == "waiting" and all(state[d] == "done" for d in stages[n]["deps"])),
                       key=lambda n: -stages[n]["level"])
        for name in ready[:max(0, slots - len(running))]:
            log_files[name] = (logs / f"{name}.log").open("w")
            process = subprocess.Popen(stages[name]["cmd"], shell=True, cwd=root, stdout=log_files[name], stderr=subprocess.STDOUT,
                                       start_new_session=True)
            running[name] = (process, time.perf_counter() - start)
            state[name] = "running"
            result["started_at_seconds"][name] = round(time.perf_counter() - start, 1)
            print(f"[{time.perf_counter() - start:7.1f} s] {name}: started", flush=True)
        if not running:
            break
        time.sleep(0.05)
    result["not_started"] = sorted(n for n, v in state.items() if v in ("waiting", "skipped"))
    save()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan", help="write the stages, their commands and the full-size params (needs DVC)")
    plan.add_argument("--out", type=Path, required=True)
    plan.add_argument("--set", dest="settings", type=parse_setting, action="append", default=[],
                      help="KEY=VALUE merged into the full-size params.yaml (a.b=v for nested keys)")
    plan.add_argument("--params", type=Path, default=None,
                      help="a YAML mapping whose top-level keys replace the full-size params' (a smoke run)")
    params = commands.add_parser("params", help="write the plan's params.yaml into this checkout")
    params.add_argument("plan", type=Path)
    run = commands.add_parser("run", help="run the plan's stages in this checkout, timed")
    run.add_argument("plan", type=Path)
    run.add_argument("--slots", type=int, default=1, help="stages at a time")
    run.add_argument("--deadline", type=float, default=float("inf"), help="stop after this many seconds")
    run.add_argument("--out", type=Path, required=True, help="the figures (JSON)")
    run.add_argument("--logs", type=Path, default=None, help="a folder for each stage's output")
    args = parser.parse_args()
    if args.command == "plan":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if args.params and not args.params.is_file():
            sys.exit(f"bench.gpu: --params {args.params}: no such file")
        overrides = yaml.safe_load(args.params.read_text()) if args.params else {}
        if not isinstance(overrides, dict):
            sys.exit(f"bench.gpu: --params {args.params}: expected a mapping of params.yaml's top-level keys")
        args.out.write_text(json.dumps(make_plan(args.settings, overrides), indent=2) + "\n")
        print(f"written to {args.out}")
        return
    if not args.plan.is_file():
        sys.exit(f"bench.gpu: no plan at {args.plan}; make one with `python -m bench.gpu plan --out {args.plan}`")
    loaded = json.loads(args.plan.read_text())
    if args.command == "params":
        write_params(loaded)
        return
    if args.slots < 1:
        parser.error(f"--slots must be at least 1, got {args.slots}")
    result = run_plan(loaded, args.slots, args.deadline, args.out, args.logs or args.out.parent / "gpu_logs")
    print(f"{len(result['stages_seconds'])} of {len(loaded['stages'])} stages in {result['wall_seconds']} s"
          f"{'' if result['complete'] else ' (incomplete)'}")


if __name__ == "__main__":
    main()
