"""Three searches standing in for three machines: does the fine-tune hold whatever the search draws?

    python -m bench.tune_replicates                      # tuner seeds 1 2 3 (bench/tune_replicates.json)
    python -m bench.tune_replicates --baseline 0c2a182   # also time that commit's `tune` the same way
    python -m bench.tune_replicates --seeds 1 --params '{tune: {max_epochs: 3}}' --out /tmp/t.json  # a smoke run

Each replicate runs `tune` (Hyperband and the selection round), `final` and `evaluate_final` in a
scratch copy of HEAD, on this worktree's prepared data (`dvc repro prepare` first: the split stays
the one of `seed` in params.yaml), with `seed` set to the replicate's tuner seed: Hyperband's draws,
the trials' initialisation and shuffling change, as they would between machines; the selection and
the final retrain use `seeds` as ever. It records each search's best single trial, the pick, the
candidates (mean and standard error over seeds), the final network on every seed (diverged or not,
test accuracy), whether the picks agree or lie within one standard error of each other, and every
stage's wall and CPU seconds. The base network to beat is the committed study's `batch_mini`.
"""

import argparse
import csv
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

from bench.clone import ROOT, head_commit, merge_params

RESULTS = ROOT / "bench" / "tune_replicates.json"
BASE = "batch_mini"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def scratch_copy(commit: str, folder: Path) -> Path:
    """`commit`'s tracked files with this worktree's prepared data: no DVC, the stages run directly."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    shutil.copytree(ROOT / "data" / "prepared", folder / "data" / "prepared")
    return folder


def run_stage(repo: Path, stage: str, *arguments: str) -> dict:
    """One stage, as `dvc repro` runs its command: wall and CPU seconds (nice 5: others share the cores)."""
    env = dict(os.environ, PYTHONPATH=str(repo))
    cpu, start = cpu_seconds(), time.perf_counter()
    done = subprocess.run(["nice", "-n", "5", sys.executable, "-m", f"stages.{stage}", *arguments], cwd=repo, env=env,
                          capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    if done.returncode != 0:
        sys.exit(f"bench: {stage} in {repo} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    print(f"{repo.name}: {stage} {' '.join(arguments)} {wall:.0f} s wall, {cpu:.0f} s CPU", flush=True)
    return {"wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
            "load_average_after": round(os.getloadavg()[0], 2), "stdout_tail": done.stdout.strip().splitlines()[-6:]}


def replicate(commit: str, folder: Path, tuner_seed: int, overrides: dict) -> dict:
    repo = scratch_copy(commit, folder / f"seed_{tuner_seed}")
    merge_params(repo, {**overrides, "seed": tuner_seed})
    stages = {stage: run_stage(repo, stage) for stage in ("tune", "final", "evaluate_final")}
    best = json.loads((repo / "results/tune/best.json").read_text())
    with (repo / "results/tune/candidates.csv").open() as handle:
        candidates = list(csv.DictReader(handle))
    tests = json.loads((repo / "results/final_evaluate.json").read_text())
    pick = json.loads((repo / "results/tune/final_pick.json").read_text())
    kept = {}
    for seed_dir in sorted((repo / "results/train/final").glob("seed_*")):
        metrics = json.loads((seed_dir / "metrics.json").read_text())
        kept[seed_dir.name] = {"diverged": metrics["diverged"], "kept_epoch": metrics["kept_epoch"]}
    accuracy = [tests[name]["accuracy"] for name in sorted(tests) if name.startswith("seed_")]
    return {
        "tuner_seed": tuner_seed,
        "search_best": {"trial_id": best["search_best"],
                        "single_run": next((float(c["single_run"]) for c in candidates
                                            if c["trial_id"] == best["search_best"]), None)},
        "pick": {"trial_id": best["trial_id"], "hyperparameters": best["hyperparameters"],
                 "mean": best["candidates"][0]["mean"], "se": best["candidates"][0]["se"]},
        "why": best["why"],
        "candidates": candidates,
        "final": {"trained": pick["trial_id"], "passed_over": pick["passed_over"], "seeds": kept,
                  "test_accuracy": accuracy, "mean_test_accuracy": sum(accuracy) / len(accuracy),
                  "holds_on_every_seed": not any(seed["diverged"] for seed in kept.values())},
        "timing": json.loads((repo / "results/timing/tune.json").read_text()),
        "stages": stages,
    }


def agreement(runs: list[dict]) -> dict:
    """The picks the same, or each within one standard error of the other (all were judged on the
    same seeds, from scratch, so one configuration scores the same in every replicate)."""
    picks = [run["pick"] for run in runs]
    same = all(p["hyperparameters"] == picks[0]["hyperparameters"] for p in picks)
    within = all(abs(a["mean"] - b["mean"]) <= max(a["se"], b["se"]) for a in picks for b in picks)
    return {"same_pick": same, "within_one_se": within,
            "picks": [{"tuner_seed": r["tuner_seed"], **r["pick"]} for r in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="the tuner seeds (machines)")
    parser.add_argument("--baseline", help="a commit whose `tune` stage is timed the same way (before/after)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--params", default="{}", help="YAML merged into params.yaml (a smoke run: a short search)")
    args = parser.parse_args()
    if not (ROOT / "data" / "prepared").is_dir():
        sys.exit("bench: data/prepared is missing: run `dvc repro prepare` first")
    summary = json.loads((ROOT / "results" / "summary.json").read_text())
    base = summary[BASE]["accuracy"]
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="tune_replicates_") as folder:
        baseline = None
        if args.baseline:
            old = scratch_copy(args.baseline, Path(folder) / "baseline")
            baseline = {"commit": args.baseline, "tune": run_stage(old, "tune"),
                        "timing": json.loads((old / "results/timing/tune.json").read_text())}
        runs = [replicate(commit, Path(folder), seed, yaml.safe_load(args.params)) for seed in args.seeds]
    record = {
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": head_commit(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "command": "python -m bench.tune_replicates " + " ".join(sys.argv[1:]),
        "dataset": yaml.safe_load((ROOT / "params.yaml").read_text())["data"]["dataset"],
        "params_overrides": yaml.safe_load(args.params),
        "base": {"name": BASE, "mean_test_accuracy": base["mean"], "per_seed": base["values"],
                 "source": "results/summary.json (the committed study)"},
        "replicates": runs,
        "agreement": agreement(runs),
        "every_final_holds": all(run["final"]["holds_on_every_seed"] for run in runs),
        "every_final_at_least_base": all(run["final"]["mean_test_accuracy"] >= base["mean"] for run in runs),
        "baseline": baseline,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("agreement", "every_final_holds", "every_final_at_least_base")},
                     indent=2))


if __name__ == "__main__":
    main()
