"""The MLP study at full size, from clean: `python3 run.py bench --full` (writes bench/full.json).

Full Fashion-MNIST (48k train / 12k validation / 10k test; `apt-get install dataset-fashion-mnist`),
three seeds, everything but the transfer study: the 15 variants (batch size 1 included), the sweep
points, Hyperband, the tuned network, the evaluations and the summary, the open set, the non-digit
inputs and the dream images. It runs in a fresh clone of HEAD with no outputs, no dvc.lock and no
run cache, and records every stage's time, the total, and the tuned network against the base
network: each one's mean test accuracy with its interval over seeds, and the p-values the
summary's test gives for the pair. Target on 2 cores: <= 20 min.

    python3 run.py bench --full                    # the MLP study (bench/full.json)
    python3 run.py bench --full --with-transfer    # then the transfer study, zoo and report on top
    python3 run.py bench --full --transfer-only    # the transfer study alone, merged into bench/full.json
    python3 run.py bench --full --params tiny.yaml --out /tmp/full.json   # a smoke run

`--params FILE` is a YAML mapping whose top-level keys replace params.yaml's, after the full-size
settings (`data: {dataset: digits, ...}` replaces the whole `data:`), so a smoke run can use the
8x8 digits and a few epochs; the file then records what was overridden.
"""

import csv
import json
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import yaml

from bench.clone import ROOT, fresh_clone, merge_params, replace_params, this_machine, timed
from nnstudy.core import params, paths
from nnstudy.core.data import FASHION_FILES
from nnstudy.core.errors import StudyError

RESULTS = ROOT / "bench" / "full.json"
TARGET_SECONDS = 20 * 60  # the MLP study at full size on 2 cores
FULL_SIZE = {"data": {"dataset": "fashion-mnist"}, "seeds": [1, 2, 3]}
# The MLP study's last stages: every variant, sweep point, Hyperband and the tuned network come in
# as what they need. (`report` needs the transfer study's section, so it comes only with it.)
MLP_TARGETS = ("summarize", "evaluate_sweeps", "openset", "nondigit", "dreams")
TRANSFER_TARGETS = ("transfer_summarize", "report")
# Stage name prefixes -> the part of the study they belong to (the first that matches).
PARTS = (("train@", "variants"), ("sweep_", "sweeps"), ("tune", "hyperband"), ("final", "tuned_network"),
         ("evaluate", "evaluations"), ("summarize", "evaluations"), ("openset", "openset"),
         ("nondigit", "probes"), ("dreams", "probes"), ("fetch", "data"), ("prepare", "data"),
         ("settings", "data"), ("transfer_", "transfer"), ("report", "report"))


def part_of(stage: str) -> str:
    return next((part for prefix, part in PARTS if stage.startswith(prefix)), "other")


def by_part(stages: dict[str, float]) -> dict[str, float]:
    parts: dict[str, float] = {}
    for stage, seconds in stages.items():
        parts[part_of(stage)] = round(parts.get(part_of(stage), 0.0) + seconds, 1)
    return parts


def tuned_vs_base(repo: Path) -> dict:
    """Both networks' test accuracy over seeds (mean, interval, per seed) and the summary's test of
    the pair (McNemar per seed and Welch over seeds, raw and after Holm), as the report states it."""
    study = yaml.safe_load((repo / "params.yaml").read_text())
    base, tuned = study["stats"]["base"], paths.FINAL
    summary = json.loads((repo / paths.SUMMARY).read_text())

    def network(name: str) -> dict:
        accuracy = summary[name]["accuracy"]
        return {"name": name, "mean_test_accuracy": accuracy["mean"], "ci_low": accuracy["ci_low"],
                "ci_high": accuracy["ci_high"], "per_seed": accuracy["values"],
                "diverged_seeds": summary[name]["diverged_seeds"]}

    with (repo / paths.COMPARISONS).open(newline="") as table:
        rows = [row for row in csv.DictReader(table) if {row["a"], row["b"]} == {base, tuned}]
    if not rows:
        sys.exit(f"bench: {paths.COMPARISONS} has no comparison of {base} and {tuned}; add "
                 f"'The tuned network vs the base network: [{base}, {tuned}]' to stats.questions")
    row = rows[0]
    test = {key: float(row[key]) for key in ("diff_points", "mcnemar_p", "mcnemar_p_holm", "welch_p", "welch_p_holm")}
    return {
        "base": network(base), "tuned": network(tuned),
        "tuned_minus_base_points": round((summary[tuned]["accuracy"]["mean"] - summary[base]["accuracy"]["mean"]) * 100, 3),
        "tuned_at_least_base": summary[tuned]["accuracy"]["mean"] >= summary[base]["accuracy"]["mean"],
        "question": row["question"], **test,
        "significant": row["significant"] == "True", "verdict": row["verdict"],
    }


def check_params(path: Path) -> str:
    """The study's own validation of the merged params, and the full-size data at hand, before any
    training: a bad --params file or a missing data set is one line, not a failed stage later."""
    try:
        study = params.load(path)
    except StudyError as error:
        sys.exit(f"bench: {error}")
    if study.data.dataset == "fashion-mnist":
        missing = [name for name in FASHION_FILES if not (Path(study.data.fashion_mnist_dir) / name).is_file()]
        if missing:
            sys.exit(f"bench: Fashion-MNIST not found in {study.data.fashion_mnist_dir} (missing {', '.join(missing)}); "
                     "`apt-get install dataset-fashion-mnist` provides it (or set data.fashion_mnist_dir)")
    return study.data.dataset


def full_size_clone(folder: str, overrides: dict) -> tuple[Path, str, str]:
    """A fresh clone of HEAD in `folder` with the full-size params and `overrides`, checked: (repo, commit, dataset)."""
    repo, commit = fresh_clone(folder)
    merge_params(repo, FULL_SIZE)
    replace_params(repo, overrides)
    return repo, commit, check_params(repo / "params.yaml")


def full_study(env: dict[str, str], overrides: dict, with_transfer: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="nnstudy-bench-full-") as folder:
        repo, commit, dataset = full_size_clone(folder, overrides)
        total, stages, _ = timed(["dvc", "repro", "--no-run-cache", *MLP_TARGETS], repo, env)
        results = {
            "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
            "machine": this_machine(),
            "command": "python3 run.py bench --full" + (" --with-transfer" if with_transfer else ""),
            "dataset": dataset, "params_overrides": overrides or None,
            "study": "the MLP study from clean: " + ", ".join(MLP_TARGETS) + " and everything they need",
            "total_seconds": round(total, 1),
            "target_seconds": TARGET_SECONDS,
            "meets_target": total <= TARGET_SECONDS,
            "parts_seconds": by_part(stages),
            "stages_seconds": stages,
            "tuned_vs_base": tuned_vs_base(repo),
        }
        if with_transfer:
            transfer, transfer_stages, _ = timed(["dvc", "repro", "--no-run-cache", *TRANSFER_TARGETS], repo, env)
            results["transfer_adds"] = {"seconds": round(transfer, 1), "parts_seconds": by_part(transfer_stages),
                                        "stages_seconds": transfer_stages}
    return results


def transfer_alone(env: dict[str, str], overrides: dict) -> dict:
    """The transfer study at full size alone, from clean (its data and the MLP study's fetch and prepare
    included; not the report, which needs the MLP study): what it adds to the MLP study's figures."""
    with tempfile.TemporaryDirectory(prefix="nnstudy-bench-full-") as folder:
        repo, commit, dataset = full_size_clone(folder, overrides)
        total, stages, _ = timed(["dvc", "repro", "--no-run-cache", "transfer_summarize"], repo, env)
    return {
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
        "command": "python3 run.py bench --full --transfer-only", "dataset": dataset,
        "params_overrides": overrides or None,
        "seconds": round(total, 1), "parts_seconds": by_part(stages), "stages_seconds": stages,
    }


def main(env: dict[str, str], overrides: dict, with_transfer: bool, out: Path | None,
         transfer_only: bool = False) -> None:
    out = out or RESULTS
    if transfer_only:
        # Merged into the MLP study's results (kept as measured) under transfer_adds.
        results = json.loads(out.read_text()) if out.exists() else {}
        results["transfer_adds"] = transfer_alone(env, overrides)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results["transfer_adds"]["parts_seconds"], indent=2))
        print(f"bench: wrote {out} (transfer_adds: {results['transfer_adds']['seconds']} s)")
        return
    results = full_study(env, overrides, with_transfer)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({key: results[key] for key in ("total_seconds", "meets_target", "parts_seconds", "tuned_vs_base")},
                     indent=2))
    print(f"bench: wrote {out}")
