"""Calibrate the regression gate and the study's verdicts on replicate studies (bench/gate_calibration.json).

    python -m bench.gate_calibration --study ../studyA:1,2,3 --study ../calib:4,5,6,7,8,9 \
        --study ../calibT:10,11,...,24 --family-seeds transfer@10=8 --compare transfer@10=3,5,6,8 \
        --plant batch_mini=plant_mini_3ep --plant batch_mini=plant_mini_10ep \
        --plant transfer_partial_10=transfer_frozen_10

Each --study is a folder holding a reproduced study (its results/ or, for older layouts, metrics/
folder; the transfer stages alone will do) and the seeds it trained; together they give every
gated entry per-seed test accuracies from disjoint seeds, possibly from other machines. Each
family (the MLP networks, the transfer runs at each labels value) has its own pool of seeds and
its own seeds per study: 3, or what --family-seeds gives it (params.yaml: transfer.min_seeds).

1. Replicates: the k-th block of each family's seeds (MLP seeds 1-3, 4-6, 7-9 with transfer@10
   seeds 1-8, 9-16, 17-24) are whole replicate studies; every replicate is gated against every
   other, and every alarm is a false alarm.
2. Random draws: DRAWS times, per family two disjoint random sets of its seeds, one the baseline
   and one the current study; the share of draws with any alarm is the family-wise false-alarm rate
   (target: the gate's family alpha, 5 %). The gate's old rule is measured on the same draws.
3. Power: a planted regression replaces an entry's current seeds with those of a broken variant
   trained on the same seeds (`--plant entry=broken`): the 3-epoch `batch_mini`, a transfer run with
   its base frozen by mistake; the share of draws in which the gate fails that entry, and in which
   the study's verdict calls the two different.
4. Verdicts: every entry against itself on disjoint seeds, with the study's rule (Welch across
   seeds, the seeds moving the same way, alpha 0.05 before Holm): the share called significant
   (target: at most the nominal 5 %).
5. --compare: 2.-4. again with other seed counts for one family, and the difference Welch's test
   finds with 80 % power at each: what choosing transfer.min_seeds trades.
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
    """Per-seed test accuracy and divergence of every gated entry a reproduced study holds (a study
    of the transfer runs alone has no MLP entries)."""
    pool: Pool = {}
    evaluate = first(folder, "results/evaluate.json", "metrics/evaluate.json")
    evaluated = json.loads(evaluate.read_text()) if evaluate else {}
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


# {family: the seeds of one study}
Draw = dict[str, tuple[int, ...]]


def summary(pool: Pool, seeds: Draw, names: list[str]) -> dict[str, Entry]:
    """The gate's view of one study: each entry over its family's seeds."""
    out = {}
    for name in names:
        runs = [pool[name]["seeds"][s] for s in seeds[pool[name]["family"]]]
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


def family_pools(pool: Pool, broken: set[str]) -> tuple[dict[str, list[int]], list[str], list[str]]:
    """Per family, the seeds every one of its entries holds; the entries gated (those holding them,
    `final` last) and those left out. An entry missing a seed most of its family has is left out
    rather than shrinking the family's pool (a sweep point an older study did not have)."""
    by_family: dict[str, list[str]] = {}
    for name, entry in pool.items():
        by_family.setdefault(entry["family"], []).append(name)
    seeds, names = {}, []
    for family, members in by_family.items():
        counts = [len(pool[n]["seeds"]) for n in members]
        core = [n for n in members if len(pool[n]["seeds"]) >= statistics.median(counts)]
        shared = sorted(set.intersection(*(set(pool[n]["seeds"]) for n in core)))
        seeds[family] = shared
        names += [n for n in members if set(shared) <= set(pool[n]["seeds"])]
    names = [n for n in names if n != FINAL] + ([FINAL] if FINAL in names else [])
    missing = sorted(n for n in pool if n not in names and n not in broken)
    return seeds, names, missing


def random_draws(pools: dict[str, list[int]], per: dict[str, int], count: int, seed: int = 0) -> list[tuple[Draw, Draw]]:
    """`count` pairs of disjoint studies: per family, two disjoint random sets of its seeds."""
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(count):
        a, b = {}, {}
        for family, seeds in pools.items():
            n = per[family]
            chosen = rng.permutation(seeds)[:2 * n]
            a[family], b[family] = tuple(sorted(chosen[:n].tolist())), tuple(sorted(chosen[n:].tolist()))
        draws.append((a, b))
    return draws


def verdict_rate(values: dict[int, float], draws: list[tuple[Draw, Draw]], family: str,
                 other: dict[int, float] | None = None) -> float:
    """How often the study's verdict rule calls b different from a over the draws (an entry against
    itself on disjoint seeds, or against `other`, a broken variant, on the current seeds)."""
    hits = 0
    for sa, sb in draws:
        a = {s: values[s] for s in sa[family]}
        b = {s: (other if other is not None else values)[s] for s in sb[family]}
        # Disjoint seeds share no seed: pair them by rank, as the study pairs seed s with seed s.
        paired_a, paired_b = dict(enumerate(a.values())), dict(enumerate(b.values()))
        hits += welch_p(list(a.values()), list(b.values())) < ALPHA and seeds_agree(paired_a, paired_b)
    return hits / len(draws)


def calibrate(pool: Pool, names: list[str], pools: dict[str, list[int]], per: dict[str, int],
              plants: list[tuple[str, str]], count: int) -> dict:
    """False alarms, bands, plant catches and verdict self-comparisons on random disjoint draws."""
    draws = random_draws(pools, per, count)
    new_alarms = old_alarms = 0
    bands: dict[str, list[float]] = {}
    per_entry = dict.fromkeys(names, 0)
    caught = {f"{entry}={bad}": 0 for entry, bad in plants}
    verdict_caught = dict.fromkeys(caught, 0)
    plant_draws = dict.fromkeys(caught, 0)
    for sa, sb in draws:
        base, cur = summary(pool, sa, names), summary(pool, sb, names)
        fails = new_rule_fails(base, cur, bands)
        new_alarms += bool(fails)
        old_alarms += bool(old_rule_fails(base, cur))
        for name in fails:
            per_entry[name] += 1
        for entry, bad in plants:
            family = pool[entry]["family"]
            if not set(sb[family]) <= set(pool[bad]["seeds"]):
                continue  # the broken variant was not trained on these seeds
            key = f"{entry}={bad}"
            plant_draws[key] += 1
            planted = dict(cur)
            broken = summary({bad: {**pool[bad], "family": family}}, sb, [bad])[bad]
            planted[entry] = Entry(broken.values, broken.diverged, family)
            caught[key] += entry in new_rule_fails(base, planted)
            good = [pool[entry]["seeds"][s][0] for s in sa[family]]
            worse = [pool[bad]["seeds"][s][0] for s in sb[family]]
            verdict_caught[key] += (welch_p(good, worse) < ALPHA
                                    and seeds_agree(dict(enumerate(good)), dict(enumerate(worse))))
    verdicts = {}
    for name in names:
        if name == FINAL or any(d for _, d in pool[name]["seeds"].values()):
            continue
        values = {s: a for s, (a, _) in pool[name]["seeds"].items()}
        verdicts[name] = verdict_rate(values, draws, pool[name]["family"])
    return {
        "random_draws": len(draws),
        "seeds_per_study": dict(per),
        "family_wise_false_alarm_rate": {"new_rule": new_alarms / len(draws), "old_rule": old_alarms / len(draws),
                                         "target": ALPHA},
        "detectable_drop_points": {
            "what": "the gate's median band per family: a drop of the median accuracy larger than this fails",
            **{family: round(float(np.median(values)), 2) for family, values in sorted(bands.items())}},
        "false_alarms_per_entry": {n: c / len(draws) for n, c in per_entry.items() if c},
        "planted_regressions": {key: {"draws": plant_draws[key],
                                      "gate_caught_rate": caught[key] / plant_draws[key] if plant_draws[key] else None,
                                      "verdict_caught_rate": (verdict_caught[key] / plant_draws[key]
                                                              if plant_draws[key] else None)}
                                for key in caught},
        "verdict_self_comparison": {n: round(r, 4) for n, r in verdicts.items()},
        "verdict_self_comparison_mean": round(float(np.mean(list(verdicts.values()))), 4) if verdicts else None,
    }


def detectable_difference(pool: Pool, names: list[str], family: str, n: int) -> float:
    """The difference (points) that Welch's test finds with 80 % power at alpha 0.05, n seeds a side,
    at the family's median seed-to-seed std (measured, over every seed the pool holds)."""
    stds = [statistics.stdev([a for a, _ in pool[name]["seeds"].values()]) for name in names
            if pool[name]["family"] == family and name != FINAL
            and not any(d for _, d in pool[name]["seeds"].values())]
    sigma = statistics.median(stds)
    df = 2 * (n - 1)
    return round((scipy_stats.t.ppf(1 - ALPHA / 2, df) + scipy_stats.t.ppf(0.8, df)) * sigma * math.sqrt(2 / n) * 100, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", action="append", required=True, metavar="FOLDER:SEEDS")
    parser.add_argument("--plant", action="append", default=[], metavar="ENTRY=BROKEN")
    parser.add_argument("--draws", type=int, default=DRAWS)
    parser.add_argument("--seeds-per-study", type=int, default=SEEDS_PER_STUDY,
                        help="seeds of each study, for every family not in --family-seeds")
    parser.add_argument("--family-seeds", action="append", default=[], metavar="FAMILY=N",
                        help="seeds of each study for one family, as params.yaml's transfer.min_seeds gives it")
    parser.add_argument("--compare", action="append", default=[], metavar="FAMILY=N,N,...",
                        help="also calibrate with these seed counts for one family (fewer draws)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "gate_calibration.json")
    args = parser.parse_args()

    sources, pools = {}, []
    for spec in args.study:
        rest = spec.split("=", 1)[1] if "=" in spec.split(":", 1)[0] else spec  # an old LABEL= prefix is fine
        folder, seeds = rest.rsplit(":", 1)
        seed_list = [int(s) for s in seeds.split(",")]
        pools.append(read_study(Path(folder), seed_list))
        sources[folder] = seed_list
    pool = merge(pools)
    plants = [tuple(p.split("=", 1)) for p in args.plant]
    broken = {bad for _, bad in plants}
    family_seeds, names, missing = family_pools(pool, broken)
    if missing:
        print(f"calibration: left out (not trained on every seed of its family): {', '.join(missing)}", file=sys.stderr)
    per = {family: args.seeds_per_study for family in family_seeds}
    for spec in args.family_seeds:
        family, n = spec.split("=")
        per[family] = int(n)

    # 1. Whole replicate studies: the k-th block of each family's seeds (seeds 1-3, 4-6, ... of the
    #    MLP with seeds 1-8, 9-16, ... of a family that trains 8), every one gated against every other.
    count = min(len(seeds) // per[family] for family, seeds in family_seeds.items())
    studies = {f"R{k + 1}": {family: tuple(seeds[k * per[family]:(k + 1) * per[family]])
                             for family, seeds in family_seeds.items()} for k in range(count)}
    replicates = []
    for (a, sa), (b, sb) in itertools.permutations(studies.items(), 2):
        base, cur = summary(pool, sa, names), summary(pool, sb, names)
        replicates.append({"baseline": a, "current": b, "new_rule_fails": new_rule_fails(base, cur),
                           "old_rule_fails": old_rule_fails(base, cur)})

    # 2.-4. Random disjoint draws at the chosen seed counts, then at the compared ones.
    chosen = calibrate(pool, names, family_seeds, per, plants, args.draws)
    compared = {}
    for spec in args.compare:
        family, counts = spec.split("=")
        for n in map(int, counts.split(",")):
            if 2 * n > len(family_seeds[family]):
                print(f"calibration: {family} has {len(family_seeds[family])} seeds, too few for 2 x {n}", file=sys.stderr)
                continue
            result = calibrate(pool, names, family_seeds, per | {family: n}, plants, args.draws // 4)
            compared[f"{family}={n}"] = {
                "family_wise_false_alarm_rate": result["family_wise_false_alarm_rate"]["new_rule"],
                "gate_band_points": result["detectable_drop_points"].get(family),
                "welch_detects_80pct_points": detectable_difference(pool, names, family, n),
                "planted": {k: {"gate": v["gate_caught_rate"], "verdict": v["verdict_caught_rate"]}
                            for k, v in result["planted_regressions"].items()
                            if pool[k.split("=")[0]]["family"] == family},
                "verdict_self_comparison_mean": round(float(np.mean([
                    r for n_, r in result["verdict_self_comparison"].items() if pool[n_]["family"] == family])), 4),
            }

    differences = {}
    for entry, bad in plants:
        family = pool[entry]["family"]
        good = [pool[entry]["seeds"][s][0] for s in family_seeds[family]]
        worse = [a for a, _ in pool[bad]["seeds"].values()]
        differences[f"{entry}={bad}"] = round((statistics.median(worse) - statistics.median(good)) * 100, 2)
    for key, value in chosen["planted_regressions"].items():
        value["median_drop_points"] = differences[key]

    result = {
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m bench.gate_calibration " + " ".join(sys.argv[1:]),
        "sources": sources,
        "family_seed_pools": {family: len(seeds) for family, seeds in family_seeds.items()},
        "entries_gated": names,
        "families": sorted({pool[n]["family"] for n in names}),
        "replicate_studies": {label: {f: list(s) for f, s in seeds.items()} for label, seeds in studies.items()},
        "replicate_pairs": len(replicates),
        "replicate_pairs_with_a_false_alarm": {"new_rule": sum(bool(r["new_rule_fails"]) for r in replicates),
                                               "old_rule": sum(bool(r["old_rule_fails"]) for r in replicates)},
        "replicates": replicates,
        **{k: v for k, v in chosen.items() if k not in ("verdict_self_comparison", "verdict_self_comparison_mean")},
        "welch_detects_80pct_points": {
            "what": "the difference Welch's test finds with 80 % power (alpha 0.05, before Holm) at each family's "
                    "median seed std and its seeds per study",
            **{family: detectable_difference(pool, names, family, n) for family, n in sorted(per.items())}},
        "verdict_self_comparison": {
            "rule": "Welch p < 0.05 (before Holm) and the seeds moving the same way (all of three, 3 in 4 of more), "
                    "disjoint seeds at each family's count",
            "rate_per_entry": chosen["verdict_self_comparison"],
            "mean_rate": chosen["verdict_self_comparison_mean"],
            "nominal": ALPHA,
        },
        "seed_counts_compared": compared,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("replicates", "verdict_self_comparison", "entries_gated")}, indent=2))
    print(f"verdicts, an entry against itself: mean rate {result['verdict_self_comparison']['mean_rate']}")


if __name__ == "__main__":
    main()
