"""Calibrate the regression gate and the study's verdicts on replicate studies (bench/gate_calibration.json).

    python -m bench.gate_calibration --study A=.:1,2,3 --study B=../calib:4,5,6,7,8,9 \
        --plant batch_mini=plant_mini_3ep --plant batch_mini=plant_mini_10ep \
        --plant transfer_partial_10=transfer_frozen_10

Each --study is a folder holding a reproduced default study (its results/ or, for older layouts,
metrics/ folder) and the seeds it trained; together they give every gated entry per-seed test
accuracies from disjoint seeds, possibly from other machines. From them:

1. Replicates: the seeds of each folder in threes (seeds 1-3, 4-6, 7-9) are whole replicate studies;
   every replicate is gated against every other, and every alarm is a false alarm.
2. Random draws: DRAWS times, two disjoint sets of three seeds out of all of them, one the baseline
   and one the current study; the share of draws with any alarm is the family-wise false-alarm rate
   (target: the gate's family alpha, 5 %). The gate's old rule is measured on the same draws.
3. Power: a planted regression replaces an entry's current seeds with those of a broken variant
   trained on the same seeds (`--plant entry=broken`): the 3-epoch `batch_mini`, a transfer run with
   its base frozen by mistake; the share of draws in which the gate fails that entry.
4. Verdicts: every entry against itself on disjoint seeds, with the study's rule (Welch across
   seeds, every seed moving the same way, alpha 0.05 before Holm): the share called significant
   (target: at most the nominal 5 %).
"""

import argparse
import itertools
import json
import math
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from scipy import stats as scipy_stats

from nnstudy.check import FINAL, MLP_FAMILY, Entry, gate
from nnstudy.evaluation.stats import seeds_agree, welch_p

ROOT = Path(__file__).resolve().parents[1]
DRAWS = 2000
SEEDS_PER_STUDY = 3
TOLERANCE = 0.5
ALPHA = 0.05

# {entry: {"family": str, "seeds": {seed: (accuracy, diverged)}}}
Pool = dict[str, dict]


def first(folder: Path, *candidates: str) -> Path | None:
    return next((folder / c for c in candidates if (folder / c).exists()), None)


def read_study(folder: Path, seeds: list[int]) -> Pool:
    """Per-seed test accuracy and divergence of every gated entry a reproduced study holds."""
    pool: Pool = {}
    evaluated = json.loads(first(folder, "results/evaluate.json", "metrics/evaluate.json").read_text())
    final = first(folder, "results/final_evaluate.json", "metrics/final_evaluate.json")
    if final is not None:
        evaluated[FINAL] = json.loads(final.read_text())
    for name, per_seed in evaluated.items():
        entry = pool.setdefault(name, {"family": MLP_FAMILY, "seeds": {}})
        for seed in seeds:
            live = first(folder, f"results/train/{name}/seed_{seed}/metrics.json", f"metrics/train/{name}/seed_{seed}/metrics.json")
            if f"seed_{seed}" in per_seed and live is not None:
                entry["seeds"][seed] = (per_seed[f"seed_{seed}"]["accuracy"], json.loads(live.read_text())["diverged"])
    train = first(folder, "results/transfer/train", "metrics/transfer/train")
    for run_dir in sorted(train.iterdir()) if train else []:
        settings = json.loads((folder / "results/transfer/settings" / f"{run_dir.name}.json").read_text())
        entry = pool.setdefault(run_dir.name, {"family": f"transfer@{settings['recipe']['labels']}", "seeds": {}})
        for seed in seeds:
            metrics = run_dir / f"seed_{seed}" / "metrics.json"
            if metrics.exists():
                raw = json.loads(metrics.read_text())
                entry["seeds"][seed] = (raw["accuracy"], raw["diverged"])
    return pool


def merge(pools: list[Pool]) -> Pool:
    merged: Pool = {}
    for pool in pools:
        for name, entry in pool.items():
            merged.setdefault(name, {"family": entry["family"], "seeds": {}})["seeds"].update(entry["seeds"])
    return merged


def summary(pool: Pool, seeds: tuple[int, ...], names: list[str]) -> dict[str, Entry]:
    """The gate's view of one study made of these seeds."""
    out = {}
    for name in names:
        runs = [pool[name]["seeds"][s] for s in seeds]
        values = tuple(a for a, _ in runs if a is not None and math.isfinite(a))
        out[name] = Entry(values, sum(d for _, d in runs) > len(runs) / 2, pool[name]["family"])
    return out


def old_rule_fails(baseline: dict[str, Entry], current: dict[str, Entry]) -> list[str]:
    """The gate as it was (commit 3c5775a): means, band = max(tol, t * max(own baseline std, median
    std of the baseline) * sqrt(1/n + 1/n)), t one-sided at 1 - alpha/m with the pooled df."""
    pooled = [e for e in baseline.values() if not e.diverged and e.n >= 2]
    typical = statistics.median(statistics.stdev(e.values) for e in pooled)
    df = sum(e.n - 1 for e in pooled)
    gated = [n for n, e in baseline.items() if n == FINAL or not e.diverged]
    t = scipy_stats.t.ppf(1 - ALPHA / len(gated), df)
    fails = []
    for name in gated:
        base, cur = baseline[name], current[name]
        s = max(statistics.stdev(base.values), typical)
        band = max(TOLERANCE, t * s * math.sqrt(1 / base.n + 1 / cur.n) * 100)
        if (statistics.mean(cur.values) - statistics.mean(base.values)) * 100 < -band - 1e-9:
            fails.append(name)
        elif name != FINAL and base.diverged != cur.diverged:
            fails.append(name)
    return fails


def new_rule_fails(baseline: dict[str, Entry], current: dict[str, Entry], bands: dict | None = None) -> list[str]:
    rows = gate(baseline, current, TOLERANCE, ALPHA)
    for row in rows:
        if bands is not None and row.band is not None:
            bands.setdefault(row.baseline.family, []).append(row.band.points)
    return [row.name for row in rows if row.failed]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", action="append", required=True, metavar="LABEL=FOLDER:SEEDS")
    parser.add_argument("--plant", action="append", default=[], metavar="ENTRY=BROKEN")
    parser.add_argument("--draws", type=int, default=DRAWS)
    parser.add_argument("--seeds-per-study", type=int, default=SEEDS_PER_STUDY,
                        help="seeds of each random draw's baseline and current study (the replicates keep 3)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "gate_calibration.json")
    args = parser.parse_args()

    studies, pools = {}, []
    for spec in args.study:
        label, rest = spec.split("=", 1)
        folder, seeds = rest.rsplit(":", 1)
        seed_list = [int(s) for s in seeds.split(",")]
        pools.append(read_study(Path(folder), seed_list))
        for i in range(0, len(seed_list), SEEDS_PER_STUDY):
            chunk = tuple(seed_list[i:i + SEEDS_PER_STUDY])
            studies[f"{label}{{{','.join(map(str, chunk))}}}"] = chunk
    pool = merge(pools)
    all_seeds = sorted({s for chunk in studies.values() for s in chunk})
    plants = [tuple(p.split("=", 1)) for p in args.plant]
    broken = {bad for _, bad in plants}
    # A broken variant trained on some seeds only (a plant) is not gated itself; one that is a
    # study entry (the frozen arm standing in for a base frozen by mistake) is.
    names = [n for n, e in pool.items() if set(all_seeds) <= set(e["seeds"])]
    names = [n for n in names if n != FINAL] + ([FINAL] if FINAL in names else [])
    missing = sorted(n for n in pool if n not in names and n not in broken)
    if missing:
        print(f"calibration: left out (not trained on every seed): {', '.join(missing)}", file=sys.stderr)

    # 1. Replicates against each other.
    replicates = []
    for (a, sa), (b, sb) in itertools.permutations(studies.items(), 2):
        base, cur = summary(pool, sa, names), summary(pool, sb, names)
        replicates.append({"baseline": a, "current": b, "new_rule_fails": new_rule_fails(base, cur),
                           "old_rule_fails": old_rule_fails(base, cur)})

    # 2.-4. Random disjoint draws.
    rng = np.random.default_rng(0)
    per = args.seeds_per_study
    draws = [tuple(map(tuple, np.sort(rng.permutation(all_seeds)[:2 * per].reshape(2, -1)).tolist()))
             for _ in range(args.draws)]
    new_alarms = old_alarms = 0
    bands: dict[str, list[float]] = {}
    per_entry = dict.fromkeys(names, 0)
    caught = {f"{entry}={bad}": 0 for entry, bad in plants}
    plant_draws = dict.fromkeys(caught, 0)
    for sa, sb in draws:
        base, cur = summary(pool, sa, names), summary(pool, sb, names)
        fails = new_rule_fails(base, cur, bands)
        new_alarms += bool(fails)
        old_alarms += bool(old_rule_fails(base, cur))
        for name in fails:
            per_entry[name] += 1
        for entry, bad in plants:
            if not set(sb) <= set(pool[bad]["seeds"]):
                continue  # the broken variant was not trained on these seeds
            key = f"{entry}={bad}"
            plant_draws[key] += 1
            planted = dict(cur)
            planted[entry] = summary(pool, sb, [bad])[bad]
            planted[entry] = Entry(planted[entry].values, planted[entry].diverged, cur[entry].family)
            caught[key] += entry in new_rule_fails(base, planted)

    verdicts = {}
    for name in names:
        if name == FINAL or any(d for _, d in pool[name]["seeds"].values()):
            continue
        hits = 0
        for sa, sb in draws:
            a = {i: pool[name]["seeds"][s][0] for i, s in enumerate(sa)}
            b = {i: pool[name]["seeds"][s][0] for i, s in enumerate(sb)}
            hits += welch_p(list(a.values()), list(b.values())) < ALPHA and seeds_agree(a, b)
        verdicts[name] = hits / len(draws)

    differences = {}
    for entry, bad in plants:
        good = [pool[entry]["seeds"][s][0] for s in all_seeds]
        worse = [a for a, _ in pool[bad]["seeds"].values()]
        differences[f"{entry}={bad}"] = round((statistics.median(worse) - statistics.median(good)) * 100, 2)

    result = {
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m bench.gate_calibration " + " ".join(sys.argv[1:]),
        "studies": {label: list(seeds) for label, seeds in studies.items()},
        "entries_gated": names,
        "families": sorted({pool[n]["family"] for n in names}),
        "replicate_pairs": len(replicates),
        "replicate_pairs_with_a_false_alarm": {"new_rule": sum(bool(r["new_rule_fails"]) for r in replicates),
                                               "old_rule": sum(bool(r["old_rule_fails"]) for r in replicates)},
        "replicates": replicates,
        "random_draws": len(draws),
        "seeds_per_study_in_draws": per,
        "family_wise_false_alarm_rate": {"new_rule": new_alarms / len(draws), "old_rule": old_alarms / len(draws),
                                         "target": ALPHA},
        "detectable_drop_points": {
            "what": "the median band per family: a drop of the median accuracy larger than this fails",
            **{family: round(float(np.median(values)), 2) for family, values in sorted(bands.items())}},
        "false_alarms_per_entry": {n: c / len(draws) for n, c in per_entry.items() if c},
        "planted_regressions": {key: {"median_drop_points": differences[key], "draws": plant_draws[key],
                                      "caught_rate": caught[key] / plant_draws[key] if plant_draws[key] else None}
                                for key in caught},
        "verdict_self_comparison": {
            "rule": f"Welch p < 0.05 (before Holm) and every seed moving the same way, {per} vs {per} disjoint seeds",
            "rate_per_entry": {n: round(r, 4) for n, r in verdicts.items()},
            "mean_rate": round(float(np.mean(list(verdicts.values()))), 4) if verdicts else None,
            "nominal": ALPHA,
        },
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("replicates", "verdict_self_comparison")}, indent=2))
    print(f"verdicts, a variant against itself: mean rate {result['verdict_self_comparison']['mean_rate']}")


if __name__ == "__main__":
    main()
