"""Calibrate the regression gate and the study's verdicts from committed per-seed data alone.

    python -m bench.gate_calibration        # reads bench/gate_calibration_seeds.csv, writes bench/gate_calibration.json

bench/gate_calibration_seeds.csv (bench/calibration_data.py collects it) holds every entry x seed
x machine with its test accuracy and diverged flag: the committed study's seeds 1-3 and, for the
MLP variants but batch_online, seeds 4-12 with two planted regressions. Each family (the MLP
networks, the transfer runs at each labels value) is calibrated on the entries that hold all its
seeds, 3 seeds a study as the default study trains them:

1. False alarms: every ordered split of a family's seeds into two disjoint studies of 3 (12 MLP
   seeds: 18,480 splits; 6 transfer@10 seeds: 20) gated against each other with the gate's own
   code (nnstudy.check.family_alarms); exact over the splits. Its uncertainty is the seeds': the
   interval of the rate over subsamples of 3 in 4 of the seeds (random splits of each, with the
   Monte Carlo error of their mean).
2. Replicates: the blocks of 3 seeds (1-3, 4-6, ...) as whole studies, every one against every other.
3. Planted regressions: batch_mini's current seeds replaced by a broken variant's on the same
   seeds (3 and 10 epochs; transfer_partial_10 by transfer_frozen_10), over every split whose
   current seeds the broken variant has: how often the gate fails it, and how often the study's
   verdict (one pair, Welch before Holm, seeds agreeing) calls the two different.
4. Verdicts: every entry against itself on disjoint seeds with the verdict rule: the share called
   significant (nominal 5 %).
5. Pairing: how strongly two variants' accuracies move together seed by seed, the efficiency of a
   paired test (Var a + Var b) / Var(b - a) for the study's questions.
6. Power after Holm: the smallest difference each family's comparisons detect with 80 % power
   (nnstudy.evaluation.stats.detectable_effect) at its median seed std, for 3 to 12 seeds.
"""

import argparse
import itertools
import json
import math
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from bench.clone import commit_of_tree, this_machine
from nnstudy.check import family_alarms
from nnstudy.core import params
from nnstudy.evaluation.stats import detectable_effect, seeds_agree, welch_p

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "gate_calibration_seeds.csv"
OUT = ROOT / "bench" / "gate_calibration.json"
PER_STUDY = 3
TOLERANCE = 0.5     # params.yaml check.tolerance
ALPHA = 0.05
BOOTSTRAP = 200     # seed-bootstrap replicates
BOOTSTRAP_SPLITS = 200
PLANTS = {"plant_mini_3ep": "batch_mini", "plant_mini_10ep": "batch_mini", "transfer_frozen_10": "transfer_partial_10"}


def load(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)


def family_tables(data: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """Per family: (accuracy, diverged) tables, seeds x entries, of the entries holding every seed the
    family's fullest entries hold (planted variants apart); families too small for two studies are left out."""
    out = {}
    for family, rows in data[~data["entry"].isin([p for p in PLANTS if p.startswith("plant")])].groupby("family"):
        accuracy = rows.pivot(index="seed", columns="entry", values="accuracy")
        diverged = rows.pivot(index="seed", columns="entry", values="diverged")
        full = accuracy.columns[accuracy.notna().sum() == accuracy.notna().sum().max()]
        seeds = accuracy[full].dropna().index
        if len(seeds) < 2 * PER_STUDY:
            continue
        out[family] = (accuracy.loc[seeds, full], diverged.loc[seeds, full].astype(bool))
    return out


def splits(seeds: list[int]) -> np.ndarray:
    """Every ordered pair of disjoint PER_STUDY-seed studies: (splits, 2, PER_STUDY) seed labels."""
    out = []
    for first in itertools.combinations(seeds, PER_STUDY):
        rest = [s for s in seeds if s not in first]
        out += [(first, second) for second in itertools.combinations(rest, PER_STUDY)]
    return np.array(out)


def gate_family(accuracy: pd.DataFrame, diverged: pd.DataFrame, pairs: np.ndarray, alpha: float) -> np.ndarray:
    """(splits, entries) alarms of the gate on one family, every split at once."""
    where = {seed: i for i, seed in enumerate(accuracy.index)}
    index = np.vectorize(where.get)(pairs)
    values, flags = accuracy.to_numpy().T, diverged.to_numpy().T       # entries x seeds
    base, now = values[:, index[:, 0]].transpose(1, 0, 2), values[:, index[:, 1]].transpose(1, 0, 2)
    base_div = flags[:, index[:, 0]].sum(axis=-1).T > PER_STUDY / 2
    now_div = flags[:, index[:, 1]].sum(axis=-1).T > PER_STUDY / 2
    return family_alarms(base, now, base_div, now_div, alpha, TOLERANCE)


def shares(tables: dict) -> dict[str, float]:
    """Each family's share of the family-wise alpha, by its count of entries gated on accuracy
    (those not diverged on most seeds), as gate() splits it."""
    counts = {f: int((d.mean() <= 0.5).sum()) for f, (_, d) in tables.items()}
    return {f: ALPHA * c / sum(counts.values()) for f, c in counts.items()}


def bootstrap_rate(accuracy: pd.DataFrame, diverged: pd.DataFrame, alpha: float, rng: np.random.Generator) -> list[float]:
    """The family's false-alarm rate on BOOTSTRAP subsamples of its seeds, each over BOOTSTRAP_SPLITS
    random splits. Subsamples (3 in 4 of the seeds, without replacement), not resamples: a seed
    drawn twice into one study would give it a variance of zero and the gate a band of nothing.
    A family with just enough seeds for two studies has no subsample: no interval."""
    size = max(2 * PER_STUDY, round(0.75 * len(accuracy)))
    if size >= len(accuracy):
        return []
    rates = []
    for _ in range(BOOTSTRAP):
        drawn = rng.choice(accuracy.index.to_numpy(), size=size, replace=False)
        acc = accuracy.loc[drawn].set_axis(range(len(drawn)))
        div = diverged.loc[drawn].set_axis(range(len(drawn)))
        pairs = np.array([rng.permutation(len(drawn))[:2 * PER_STUDY].reshape(2, PER_STUDY)
                          for _ in range(BOOTSTRAP_SPLITS)])
        rates.append(float(gate_family(acc, div, pairs, alpha).any(axis=1).mean()))
    return rates


def false_alarms(tables: dict, alphas: dict, rng: np.random.Generator) -> dict:
    out, per_family = {}, {}
    for family, (accuracy, diverged) in tables.items():
        pairs = splits(list(accuracy.index))
        alarms = gate_family(accuracy, diverged, pairs, alphas[family])
        rate = float(alarms.any(axis=1).mean())
        boot = bootstrap_rate(accuracy, diverged, alphas[family], rng)
        per_family[family] = rate
        out[family] = {
            "seeds": [int(s) for s in accuracy.index], "entries": list(accuracy.columns), "splits": len(pairs),
            "alpha_share": round(alphas[family], 5), "false_alarm_rate": round(rate, 4),
            "seed_subsample_95": [round(float(np.quantile(boot, q)), 4) for q in (0.025, 0.975)] if boot else None,
            "subsample_mean_monte_carlo_error": round(float(np.std(boot) / math.sqrt(len(boot))), 4) if boot else None,
            "alarms_per_entry_vs_fair_share": {
                name: round(float(alarms[:, i].mean() / (rate / len(accuracy.columns))), 2) if rate else 0.0
                for i, name in enumerate(accuracy.columns)},
        }
    # Families train on separate seeds: a study's splits combine independently.
    whole = 1 - math.prod(1 - r for r in per_family.values())
    return {"families": out, "study_false_alarm_rate": round(whole, 4), "target": ALPHA}


def replicates(tables: dict, alphas: dict) -> dict:
    """Blocks of PER_STUDY seeds as whole studies (per family), every ordered pair."""
    out = {}
    for family, (accuracy, diverged) in tables.items():
        seeds = list(accuracy.index)
        blocks = [tuple(seeds[i:i + PER_STUDY]) for i in range(0, len(seeds) - PER_STUDY + 1, PER_STUDY)]
        pairs = np.array([(a, b) for a, b in itertools.permutations(blocks, 2)])
        alarms = gate_family(accuracy, diverged, pairs, alphas[family]).any(axis=1)
        unordered = len(blocks) * (len(blocks) - 1) // 2
        out[family] = {"blocks": [list(map(int, b)) for b in blocks], "ordered_pairs": len(pairs),
                       "pairs_with_an_alarm": int(alarms.sum()),
                       "chance_of_none_at_5_percent": round(0.95 ** unordered, 3)}
    return out


def plants(data: pd.DataFrame, tables: dict, alphas: dict) -> dict:
    out = {}
    wide = data.pivot(index="seed", columns="entry", values="accuracy")
    for broken, entry in PLANTS.items():
        family = data.loc[data["entry"] == entry, "family"].iloc[0]
        if family not in tables or broken not in wide:
            continue
        accuracy, diverged = tables[family]
        pairs = splits(list(accuracy.index))
        held = set(wide[broken].dropna().index)
        pairs = pairs[[set(b) <= held for _, b in pairs]]
        column = list(accuracy.columns).index(entry)
        # The current study's seeds of `entry` come from the broken variant (same seeds): a column of
        # its own, swapped in for `entry` on the current side only.
        mixed = pd.concat([accuracy, wide.loc[accuracy.index, [broken]].rename(columns={broken: "_broken"})], axis=1)
        flags = pd.concat([diverged, pd.DataFrame({"_broken": False}, index=diverged.index)], axis=1)
        where = {seed: i for i, seed in enumerate(mixed.index)}
        index = np.vectorize(where.get)(pairs)
        values, div = mixed.to_numpy().T, flags.to_numpy().T
        base = values[:len(accuracy.columns)][:, index[:, 0]].transpose(1, 0, 2)
        now = values[:len(accuracy.columns)][:, index[:, 1]].transpose(1, 0, 2).copy()
        now[:, column, :] = values[-1][index[:, 1]]
        base_div = div[:len(accuracy.columns)][:, index[:, 0]].sum(axis=-1).T > PER_STUDY / 2
        now_div = div[:len(accuracy.columns)][:, index[:, 1]].sum(axis=-1).T > PER_STUDY / 2
        alarms = family_alarms(base, now, base_div, now_div, alphas[family], TOLERANCE)
        caught = float(alarms[:, column].mean())
        good, bad = base[:, column, :], now[:, column, :]
        verdict = float(np.mean([welch_p(g, b) < ALPHA and seeds_agree(dict(enumerate(g)), dict(enumerate(b)))
                                 for g, b in zip(good, bad)]))
        out[f"{entry}={broken}"] = {
            "splits": len(pairs), "median_drop_points": round(float((wide[broken].median() - wide[entry].median()) * 100), 2),
            "gate_caught_rate": round(caught, 4), "verdict_caught_rate": round(verdict, 4)}
    return out


def verdict_self(tables: dict, rng: np.random.Generator) -> dict:
    """Each never-diverging entry against itself on disjoint seeds (rank-paired, as the study pairs
    seed with seed): the share the verdict rule calls significant, before Holm."""
    out = {}
    for family, (accuracy, diverged) in tables.items():
        pairs = splits(list(accuracy.index))
        pairs = pairs[rng.choice(len(pairs), size=min(len(pairs), 2000), replace=False)]
        for name in accuracy.columns:
            if diverged[name].any() or accuracy[name].std() <= 1e-9:
                continue
            values = accuracy[name]
            hits = [welch_p(values[list(a)], values[list(b)]) < ALPHA
                    and seeds_agree(dict(enumerate(values[list(a)])), dict(enumerate(values[list(b)])))
                    for a, b in pairs]
            out[name] = round(float(np.mean(hits)), 4)
    return {"rate_per_entry": out, "mean_rate": round(float(np.mean(list(out.values()))), 4), "nominal": ALPHA}


def pairing(tables: dict, study: params.Params) -> dict:
    """Seed-by-seed correlation and the paired test's efficiency for the study's question steps."""
    accuracy, _ = tables["mlp"]
    rows = {}
    steps = [(a, b) for series in study.stats.questions.values() for a, b in zip(series, series[1:])]
    steps += [(study.stats.base, name) for name in study.variants if name != study.stats.base]
    for a, b in dict.fromkeys(steps):
        if a in accuracy and b in accuracy and accuracy[a].std() > 1e-9 and accuracy[b].std() > 1e-9:
            x, y = accuracy[a], accuracy[b]
            if (y - x).var() > 0:
                rows[f"{a} → {b}"] = {"correlation": round(float(x.corr(y)), 2),
                                      "efficiency": round(float((x.var() + y.var()) / (y - x).var()), 2)}
    efficiencies = [r["efficiency"] for r in rows.values()]
    return {"what": "efficiency = (Var a + Var b) / Var(b - a) over the MLP seeds: how much smaller a paired "
                    "test's variance is; at 3 seeds the paired t has 2 d.f. to Welch's ~4, so pairing pays "
                    "beyond an efficiency of ~2.4 ((t(0.975, 2) / t(0.975, 4))^2)",
            "seeds": len(accuracy), "steps": rows, "median_efficiency": round(float(np.median(efficiencies)), 2),
            "steps_where_pairing_pays": sorted(k for k, r in rows.items() if r["efficiency"] > 2.4)}


def power(tables: dict, study: params.Params) -> dict:
    """The smallest difference each family's comparisons detect with 80 % power after Holm."""
    tested = {"mlp": 20, "transfer@10": 15}  # the tested rows of results/stats and results/transfer comparisons
    out = {}
    for family, (accuracy, diverged) in tables.items():
        working = [c for c in accuracy.columns if not diverged[c].any() and accuracy[c].std() > 1e-9]
        sigma = float(np.median(accuracy[working].std())) * 100
        out[family] = {"median_seed_std_points": round(sigma, 3), "comparisons_in_holm_family": tested.get(family, 20),
                       "detectable_points_at_80pct": {
                           str(n): round(detectable_effect(sigma, n, tested.get(family, 20), simulations=10_000), 2)
                           for n in (3, 4, 6, 8, 12)}}
    out["what"] = ("Welch's t, Holm among that many comparisons (the others true nulls), every seed (3 in 4 of "
                   "more) moving with the means: stats.detectable_effect, 10,000 simulations each")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    data = load(args.data)
    tables = family_tables(data)
    alphas = shares(tables)
    rng = np.random.default_rng(0)
    study = params.load()
    result = {
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit_of_tree(), "machine": this_machine(),
        "command": " ".join(["python -m bench.gate_calibration", *sys.argv[1:]]),
        "data": str(args.data.relative_to(ROOT)) if args.data.is_relative_to(ROOT) else str(args.data),
        "machines": sorted(data["machine"].unique()),
        "seeds_per_study": PER_STUDY, "tolerance_points": TOLERANCE,
        "left_out_families": sorted(set(data["family"]) - set(tables)),
        "false_alarms": false_alarms(tables, alphas, rng),
        "replicates": replicates(tables, alphas),
        "planted_regressions": plants(data, tables, alphas),
        "verdict_self_comparison": verdict_self(tables, rng),
        "pairing": pairing(tables, study),
        "power_after_holm": power(tables, study),
    }
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
