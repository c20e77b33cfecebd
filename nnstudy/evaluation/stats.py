"""Spread over training seeds and significance tests between variants (pure functions).

Single-run point estimates moved by up to 2.2 accuracy points across machines, so every
comparison in the study is judged with its spread and a significance test. The tests come
from libraries (scipy.stats, statsmodels); this module only chooses them, pairs the data
and defines the degenerate cases the libraries leave as NaN or warnings.
"""

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats as scipy_stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

# The columns of compare()'s table, in order (also the columns of an empty table).
COMPARE_COLUMNS = [
    "question", "a", "b", "mean_a", "mean_b", "diff_points",
    "mcnemar_p", "mcnemar_p_holm", "welch_p", "welch_p_holm", "seeds_agree", "significant", "verdict",
]
SIGNIFICANT = "significant"
WITHIN_NOISE = "within noise"


# --- spread over seeds ---

def finite(values: Sequence[float] | ArrayLike) -> np.ndarray:
    """The finite values as float64: a diverged seed's NaN/inf would poison every statistic."""
    array = np.asarray(values, dtype=float).ravel()
    return array[np.isfinite(array)]


def spread(values: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """Mean, sample std, range and Student-t CI of the mean over the finite values.

    Returns plain Python numbers (JSON-ready): mean, std (ddof=1; 0.0 for a single value), min,
    max, n (the count of finite values), ci_low, ci_high (None when n < 2: one value has no
    spread to build an interval from). With no finite value at all, every number is None and n = 0.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    kept = finite(values)
    n = int(kept.size)
    if n == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0, "ci_low": None, "ci_high": None}
    mean = float(kept.mean())
    std = float(kept.std(ddof=1)) if n > 1 else 0.0
    ci_low = ci_high = None
    if n > 1:
        if std == 0.0:
            # scipy returns NaN for a zero scale; identical seeds give a zero-width interval.
            ci_low = ci_high = mean
        else:
            low, high = scipy_stats.t.interval(confidence, df=n - 1, loc=mean, scale=std / math.sqrt(n))
            ci_low, ci_high = float(low), float(high)
    return {"mean": mean, "std": std, "min": float(kept.min()), "max": float(kept.max()), "n": n,
            "ci_low": ci_low, "ci_high": ci_high}


# --- tests between two variants ---

def mcnemar_p(y_true: ArrayLike, pred_a: ArrayLike, pred_b: ArrayLike) -> float:
    """Exact (binomial) McNemar p-value of two classifiers on the same test examples.

    Only the examples where exactly one of the two is right carry information; p = 1.0 when
    there are none (the classifiers never disagree in correctness: nothing to test).
    """
    truth, a, b = (np.asarray(x).ravel() for x in (y_true, pred_a, pred_b))
    if not truth.shape == a.shape == b.shape:
        raise ValueError(f"y_true, pred_a and pred_b differ in length: {truth.size}, {a.size}, {b.size}")
    right_a, right_b = a == truth, b == truth
    table = np.array([
        [np.sum(right_a & right_b), np.sum(right_a & ~right_b)],
        [np.sum(~right_a & right_b), np.sum(~right_a & ~right_b)],
    ])
    if table[0, 1] + table[1, 0] == 0:
        return 1.0
    # exact=True: a binomial test on the discordant pairs; the chi-square approximation is poor
    # when few examples are discordant, as between close variants.
    return float(mcnemar(table, exact=True).pvalue)


def seedwise_mcnemar(
    y_true: ArrayLike, preds_a: Mapping[int, np.ndarray], preds_b: Mapping[int, np.ndarray],
) -> dict[str, Any]:
    """One exact McNemar test per seed the two variants share (seed s of A vs seed s of B).

    Returns {"p_per_seed": {seed: p}, "p": max of them}. Taking the max is an intersection-union
    test: it claims a difference only if every seed shows one, so it needs no multiplicity
    correction across seeds and a single lucky seed cannot make a difference significant.
    With no shared seed, p_per_seed is empty and p is NaN (not tested).
    """
    shared = sorted(set(preds_a) & set(preds_b))
    per_seed = {seed: mcnemar_p(y_true, preds_a[seed], preds_b[seed]) for seed in shared}
    return {"p_per_seed": per_seed, "p": max(per_seed.values()) if per_seed else math.nan}


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Welch t-test p-value of two samples (e.g. test accuracy per seed); non-finite values dropped.

    Degenerate cases, which scipy answers with NaN: fewer than 2 values on a side -> NaN (no
    variance estimate); both sides constant and equal -> 1.0 (no difference at all); both
    constant and different -> 0.0 (a difference with no noise around it).
    """
    x, y = finite(a), finite(b)
    if x.size < 2 or y.size < 2:
        return math.nan
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return 1.0 if x[0] == y[0] else 0.0
    with warnings.catch_warnings():
        # One constant side (e.g. a diverged variant stuck at chance) is fine for Welch: its variance
        # term is zero. scipy still warns about "catastrophic cancellation" in computing it.
        warnings.filterwarnings("ignore", message="Precision loss occurred", category=RuntimeWarning)
        return float(scipy_stats.ttest_ind(x, y, equal_var=False).pvalue)


# The share of seeds that must move with the means. With three seeds that is every seed, as
# before. A noisy family trains more seeds, and there a real 9-point change still shows up as
# an occasional seed against it (at 6 points of seed noise, one pair in seven): requiring
# every one of eight seeds would throw most real differences away.
AGREE_SHARE = 0.75


def seeds_agree(a: Mapping[int, float], b: Mapping[int, float], share: float = AGREE_SHARE) -> bool:
    """Whether the shared seeds move the same way as the means (b - a), seed s against seed s: all
    of them with up to three, at least `share` of them with more (6 of 8 at the default 3/4).

    With no shared seed, or no difference in the means, there is no direction to agree on: False.
    """
    shared = sorted(set(a) & set(b))
    x, y = finite([a[s] for s in shared]), finite([b[s] for s in shared])
    if not shared or x.size != len(shared) or y.size != len(shared):
        return False
    sign = np.sign(np.mean(list(b.values())) - np.mean(list(a.values())))
    with_means = int(np.sum(np.sign(y - x) == sign))
    return bool(sign != 0 and with_means >= math.ceil(share * len(shared) - 1e-9))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order; NaN entries stay NaN and are not in the family."""
    p = np.asarray(pvalues, dtype=float).ravel()
    adjusted = np.full(p.shape, math.nan)
    tested = ~np.isnan(p)
    if tested.any():
        adjusted[tested] = multipletests(p[tested], method="holm")[1]
    return [float(v) for v in adjusted]


# --- the study's comparison table ---

def compare(
    pairs: Sequence[tuple[str, str, str]],
    y_true: ArrayLike,
    predictions: Mapping[str, Mapping[int, np.ndarray]],
    accuracies: Mapping[str, Mapping[int, float]],
    alpha: float = 0.05,
) -> pd.DataFrame:
    """One row per (question, a, b): mean test accuracy of each over its seeds, the change in
    points (b - a), seedwise McNemar and Welch p-values, each Holm-adjusted over all the pairs of
    the table (separately per test), and the verdict.
    """
    rows = []
    for question, a, b in pairs:
        for name in (a, b):
            if name not in predictions or name not in accuracies:
                raise KeyError(f"{question}: no predictions or accuracies for {name!r}")
        mean_a = spread(list(accuracies[a].values()))["mean"]
        mean_b = spread(list(accuracies[b].values()))["mean"]
        rows.append({
            "question": question, "a": a, "b": b, "mean_a": mean_a, "mean_b": mean_b,
            "diff_points": None if mean_a is None or mean_b is None else (mean_b - mean_a) * 100,
            "mcnemar_p": seedwise_mcnemar(y_true, predictions[a], predictions[b])["p"],
            "welch_p": welch_p(list(accuracies[a].values()), list(accuracies[b].values())),
            "seeds_agree": seeds_agree(accuracies[a], accuracies[b]),
        })
    table = pd.DataFrame(rows, columns=COMPARE_COLUMNS)
    table["mcnemar_p_holm"] = holm(table["mcnemar_p"].tolist())
    table["welch_p_holm"] = holm(table["welch_p"].tolist())
    # A finding is about a training procedure (a design choice), so its unit of replication is
    # the seed: Welch's test across seeds, whose null hypothesis includes seed-to-seed variation,
    # and every seed moving the same way. McNemar asks another question, whether these particular
    # networks differ on these test images: two seeds of one variant already do (p ~ 1e-6), so it
    # is reported ("networks differ") but never decides a verdict about a design choice.
    # A NaN p (nothing tested) compares False: never significant.
    table["significant"] = ((table["welch_p_holm"] < alpha) & table["seeds_agree"]).astype(bool)
    table["verdict"] = np.where(table["significant"], SIGNIFICANT, WITHIN_NOISE)
    return table.astype({"diff_points": float, "mean_a": float, "mean_b": float})


# --- a generated sentence per study question ---

def _percent(value: float) -> str:
    return f"{value * 100:.1f}"


def _p_text(p: float) -> str:
    # Two significant digits, never scientific notation: the reader compares with 0.05.
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def _step(table: pd.DataFrame, a: str, b: str) -> pd.Series | None:
    """The table's row comparing a and b, in either orientation."""
    match = table[((table["a"] == a) & (table["b"] == b)) | ((table["a"] == b) & (table["b"] == a))]
    return None if match.empty else match.iloc[0]


def _direction(shown: list[float]) -> str:
    """The verb for a series of the numbers as printed (1 decimal), so the words agree with them."""
    steps = [later - earlier for earlier, later in zip(shown, shown[1:])]
    ups, downs = any(s > 0 for s in steps), any(s < 0 for s in steps)
    if ups and downs:
        return "changes"
    return "rises" if ups else "falls" if downs else "stays level"


def series_finding(
    question: str,
    names: list[str],
    summary: Mapping[str, dict],
    table: pd.DataFrame,
    labels: Mapping[str, str] | None = None,
) -> str:
    """One English sentence answering a study question from the numbers.

    `names` is the series in the question's order; summary[name]["accuracy"] is a spread() dict
    (± is its CI half-width) and summary[name]["diverged"] marks a diverged variant; each step
    between consecutive names is looked up in `table` (compare()'s, either orientation) and
    reported with its Holm-adjusted Welch p (seeds as the unit). The direction word (rises / falls / changes /
    stays level) is computed from the printed percentages, so it cannot contradict them.
    """
    if not names:
        raise ValueError(f"{question}: no variants to describe")

    def label(name: str) -> str:
        return (labels or {}).get(name, name)

    def shown(name: str) -> str:
        entry = summary[name]
        acc = entry["accuracy"]
        if acc.get("mean") is None:
            text = f"{label(name)} (no accuracy)"
        elif acc.get("ci_low") is None or acc.get("ci_high") is None:
            text = f"{label(name)} {_percent(acc['mean'])} % (single seed, no CI)"
        else:
            half = (acc["ci_high"] - acc["ci_low"]) / 2
            text = f"{label(name)} {_percent(acc['mean'])} % (± {half * 100:.1f})"
        return text + (" (diverged)" if entry.get("diverged") else "")

    measured = [round(summary[n]["accuracy"]["mean"] * 100, 1) for n in names
                if summary[n]["accuracy"].get("mean") is not None]
    if len(names) == 1:
        return f"{question}: test accuracy of {shown(names[0])}."
    values = " to ".join(shown(n) for n in names)
    head = f"test accuracy {_direction(measured)} from {values}"
    steps = []
    for a, b in zip(names, names[1:]):
        row = _step(table, a, b)
        if row is None or pd.isna(row["welch_p_holm"]):
            steps.append(f"{label(a)} → {label(b)} not tested")
        else:
            word = SIGNIFICANT if row["significant"] else WITHIN_NOISE
            steps.append(f"{label(a)} → {label(b)} {word} ({_p_text(float(row['welch_p_holm']))})")
    return f"{question}: {head}; {', '.join(steps)}."


def best_variant(summary: Mapping[str, dict], exclude: str = "final") -> str | None:
    """The entry (not `exclude`, the tuned network; not diverged) with the highest mean validation
    accuracy, or test accuracy where a summary has no validation figures.

    Picked on validation data: the entry that is best on the test set is partly the test set's
    lucky draw, and testing it on that same test set overstates its lead (the winner's curse).
    """
    def score(entry: dict) -> float | None:
        return (entry.get("val_accuracy") or entry["accuracy"])["mean"]

    plain = {n: e for n, e in summary.items() if n != exclude and not e["diverged"] and score(e) is not None}
    return max(plain, key=lambda n: score(plain[n])) if plain else None
