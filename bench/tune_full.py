"""The fine-tune at full size: is the tuned network at least the base network on full Fashion-MNIST?

    python -m bench.tune_full            # bench/tune_full.json (Debian: apt-get install dataset-fashion-mnist)

In a scratch copy of HEAD with `data.dataset: fashion-mnist` and only the base network as a
variant, the stages run as `dvc repro` runs them: fetch, prepare, tune (Hyperband and the selection
round), final, evaluate_final, train@batch_mini and evaluate. It records the pick, the candidates,
the tuned and the base network's test accuracy per seed, and every stage's wall and CPU seconds.
"""

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from bench.clone import ROOT, head_commit, merge_params, replace_params, this_machine
from bench.tune_replicates import BASE, run_stage, scratch_copy

RESULTS = ROOT / "bench" / "tune_full.json"
OVERRIDES = {"data": {"dataset": "fashion-mnist"}, "variants": {BASE: {}},
             "stats": {"questions": {"The tuned network vs the base network": [BASE, "final"]}, "paired_steps": []}}
STAGES = ("fetch", "prepare", "tune", "final", "evaluate_final", f"train {BASE}", "evaluate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="tune_full_") as folder:
        repo = scratch_copy(commit, Path(folder) / "study")
        merge_params(repo, {"data": OVERRIDES["data"]})
        # Replaced whole, not merged: only the base network trains, and the one question asks about it.
        replace_params(repo, {"variants": OVERRIDES["variants"]})
        merge_params(repo, {"stats": {"questions": None}})
        merge_params(repo, {"stats": OVERRIDES["stats"]})
        stages = {stage: run_stage(repo, *stage.split()) for stage in STAGES}
        best = json.loads((repo / "results/tune/best.json").read_text())
        with (repo / "results/tune/candidates.csv").open() as handle:
            candidates = list(csv.DictReader(handle))
        tuned = json.loads((repo / "results/final_evaluate.json").read_text())
        base = json.loads((repo / "results/evaluate.json").read_text())[BASE]
        timing = json.loads((repo / "results/timing/tune.json").read_text())
        pick = json.loads((repo / "results/tune/final_pick.json").read_text())
    tuned_acc = [tuned[name]["accuracy"] for name in sorted(tuned) if name.startswith("seed_")]
    base_acc = [base[name]["accuracy"] for name in sorted(base) if name.startswith("seed_")]
    record = {
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": head_commit(),
        "machine": this_machine(),
        "command": "python -m bench.tune_full " + " ".join(sys.argv[1:]),
        "params_overrides": OVERRIDES,
        "pick": {"trial_id": best["trial_id"], "hyperparameters": best["hyperparameters"], "why": best["why"],
                 "search_best": best["search_best"]},
        "candidates": candidates,
        "final_pick": pick,
        "tuned": {"per_seed": tuned_acc, "mean_test_accuracy": sum(tuned_acc) / len(tuned_acc)},
        "base": {"name": BASE, "per_seed": base_acc, "mean_test_accuracy": sum(base_acc) / len(base_acc)},
        "tuned_at_least_base": sum(tuned_acc) / len(tuned_acc) >= sum(base_acc) / len(base_acc),
        "tune_timing": timing,
        "stages": stages,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("pick", "tuned", "base", "tuned_at_least_base", "tune_timing")}, indent=2))


if __name__ == "__main__":
    main()
