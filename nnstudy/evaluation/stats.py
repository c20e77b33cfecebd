"""Spread over training seeds and the verdict on every difference between variants (pure functions).

Single-run point estimates moved by up to 2.2 accuracy points across machines, so every
comparison in the study is judged with its spread: each difference is printed with its 95 %
interval and one of three verdicts, *significant*, *equivalent within ±m* (two one-sided tests,
the margin m from params.yaml) or *inconclusive* (the data cannot tell). The tests come from
libraries (scipy.stats, statsmodels); this module only chooses them, pairs the data and defines
the degenerate cases the libraries leave as NaN or warnings.
"""

import functools
import math
import warnings
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats as scipy_stats
from scipy.special import expit, logit
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

# The columns of compare()'s table, in order (also the columns of an empty table).
COMPARE_COLUMNS = [
    "question", "a", "b", "mean_a", "mean_b", "diff_points", "ci_low_points", "ci_high_points", "test",
    "mcnemar_p", "mcnemar_p_holm", "welch_p", "welch_p_holm", "p", "p_holm", "tost_p", "tost_p_holm", "margin_points",
    "seeds_agree", "significant", "equivalent", "verdict", "detectable_points",
]
SIGNIFICANT = "significant"
INCONCLUSIVE = "inconclusive"
NOT_TESTED = "not tested"
# Logit intervals need values strictly inside (0, 1): an accuracy of exactly 0 or 1 is moved in by this.
EDGE = 1e-6
# Differences of accuracies below this are float rounding (0.9 - 0.8 and 0.8 - 0.7 differ by 1e-16).
TIE = 1e-12


def equivalent_words(margin_points: float) -> str:
    """The verdict for a difference shown to lie within ±margin (tuning_markdown may reuse it)."""
    return f"equivalent within ±{margin_points:g}"


# --- spread over seeds ---

def finite(values: Sequence[float] | ArrayLike) -> np.ndarray:
    """The finite values as float64: a diverged seed's NaN/inf would poison every statistic."""
    array = np.asarray(values, dtype=float).ravel()
    return array[np.isfinite(array)]


def t_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """Student-t interval of the mean; a constant sample gives a zero-width interval (scipy: NaN)."""
    mean, std = float(values.mean()), float(values.std(ddof=1))
    if std == 0.0:
        return mean, mean
    low, high = scipy_stats.t.interval(confidence, df=values.size - 1, loc=mean, scale=std / math.sqrt(values.size))
    return float(low), float(high)


def bounded_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """A t-interval on the logit scale, mapped back: it never leaves [0, 1] (an accuracy, an AUROC).

    On the plain scale three seeds of which one collapsed gave 48.3 ± 70.6 %, an interval past
    both ends of the scale; on the logit scale the same seeds give one inside it.
    """
    low, high = t_interval(logit(np.clip(values, EDGE, 1 - EDGE)), confidence)
    return float(expit(low)), float(expit(high))


def spread(values: Sequence[float], confidence: float = 0.95, bounded: bool = False) -> dict[str, Any]:
    """Mean, sample std, range and an interval of the mean over the finite values.

    Returns plain Python numbers (JSON-ready): mean, std (ddof=1; 0.0 for a single value), min,
    max, n (the count of finite values), ci_low, ci_high (None when n < 2: one value has no
    spread to build an interval from). The interval is Student's t, or with `bounded` (a share
    between 0 and 1) Student's t on the logit scale, so it stays within [0, 1]. With no finite
    value at all, every number is None and n = 0.
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
        ci_low, ci_high = (bounded_interval if bounded else t_interval)(kept, confidence)
        if bounded and std == 0.0:
            ci_low = ci_high = mean  # identical seeds: no spread, whatever the clipping did
    return {"mean": mean, "std": std, "min": float(kept.min()), "max": float(kept.max()), "n": n,
            "ci_low": ci_low, "ci_high": ci_high}


def difference_interval(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Interval of mean(b) - mean(a), two shares in [0, 1], in points; it stays within [-100, 100].

    MOVER (Zou & Donner 2008, Newcombe's method for two proportions): the two means' own logit
    intervals are combined, L = d - sqrt((m_b - l_b)^2 + (u_a - m_a)^2) and U alike. Both
    intervals lie in [0, 1], so the difference's lies in [-1, 1]; for two well-behaved samples it
    is close to Welch's. (NaN, NaN) when a side has fewer than two finite values.
    """
    x, y = finite(a), finite(b)
    if x.size < 2 or y.size < 2:
        return math.nan, math.nan
    (la, ua), (lb, ub) = bounded_interval(x, confidence), bounded_interval(y, confidence)
    ma, mb = float(x.mean()), float(y.mean())
    la, ua, lb, ub = min(la, ma), max(ua, ma), min(lb, mb), max(ub, mb)  # a skewed sample's mean may sit outside
    d = mb - ma
    low = d - math.hypot(mb - lb, ua - ma)
    high = d + math.hypot(ub - mb, ma - la)
    return max(low, -1.0) * 100, min(high, 1.0) * 100


def paired_interval(a: Mapping[int, float], b: Mapping[int, float], confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean per-seed difference b - a over the shared seeds, in points,
    cut at the ends of the scale (no difference of two accuracies passes ±100 points): the interval
    of the paired test, so that verdict and interval agree."""
    x, y = shared_pairs(a, b)
    if x.size < 2:
        return math.nan, math.nan
    low, high = t_interval(y - x, confidence)
    return max(low, -1.0) * 100, min(high, 1.0) * 100


def test_draw(y_true: ArrayLike, predictions: Mapping[int, ArrayLike], seeds_interval: tuple[float, float] | None,
              confidence: float = 0.95, draws: int = 2000, seed: int = 0) -> dict[str, float]:
    """The mean test accuracy over seeds with the test set's own draw in its interval.

    Every seed is scored on the same test images, so the seeds' interval leaves out which images
    were drawn. A bootstrap over the test images (each draw resamples the images, the same ones for
    every seed, and recomputes the mean over seeds) gives that part: its standard error and
    percentile interval. The two are independent sources, so the interval with both adds their
    half-widths in quadrature on each side (as MOVER does), cut to [0, 1]. Seeded: the same
    predictions give the same numbers.
    """
    truth = np.asarray(y_true)
    right = np.array([np.asarray(p) == truth for p in predictions.values()], dtype=float).mean(axis=0)
    n = right.size
    rng = np.random.default_rng(seed)
    # Resampling the images is multinomial weights on them; in chunks, so 10,000 images stay small.
    boot = np.concatenate([rng.multinomial(n, np.full(n, 1 / n), size=min(250, draws - start)) @ right / n
                           for start in range(0, draws, 250)])
    tail = (1 - confidence) / 2
    test_low, test_high = (float(q) for q in np.quantile(boot, [tail, 1 - tail]))
    mean = float(right.mean())
    seeds_low, seeds_high = seeds_interval if seeds_interval and None not in seeds_interval else (mean, mean)
    return {"mean": mean, "test_se_points": float(boot.std(ddof=1)) * 100,
            "test_ci_low": test_low, "test_ci_high": test_high,
            "ci_low": max(0.0, mean - math.hypot(mean - min(seeds_low, mean), mean - min(test_low, mean))),
            "ci_high": min(1.0, mean + math.hypot(max(seeds_high, mean) - mean, max(test_high, mean) - mean)),
            "draws": draws}


def sampling_points(accuracy: float, test_size: int) -> float:
    """The standard error, in points, that sampling `test_size` test images alone gives an accuracy
    (binomial): beside the seed-to-seed spread, how much of a result is the test set's draw."""
    return math.sqrt(accuracy * (1 - accuracy) / test_size) * 100


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


def constant(a: Sequence[float], b: Sequence[float]) -> bool:
    """Both sides constant (e.g. two networks diverged to the same chance level): no noise to test
    against, so the row is no hypothesis test and leaves the Holm family."""
    x, y = finite(a), finite(b)
    return x.size >= 1 and y.size >= 1 and np.ptp(x) == 0 and np.ptp(y) == 0


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Welch t-test p-value of two samples (e.g. test accuracy per seed); non-finite values dropped.

    Degenerate cases, which scipy answers with NaN: fewer than 2 values on a side -> NaN (no
    variance estimate); both sides constant -> NaN (not a test: see constant()).
    """
    x, y = finite(a), finite(b)
    if x.size < 2 or y.size < 2 or constant(x, y):
        return math.nan
    with warnings.catch_warnings():
        # One constant side (e.g. a diverged variant stuck at chance) is fine for Welch: its variance
        # term is zero. scipy still warns about "catastrophic cancellation" in computing it.
        warnings.filterwarnings("ignore", message="Precision loss occurred", category=RuntimeWarning)
        return float(scipy_stats.ttest_ind(x, y, equal_var=False).pvalue)


def shared_pairs(a: Mapping[int, float], b: Mapping[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """The two sides' values on the seeds both have, each finite, seed s against seed s."""
    seeds = [s for s in sorted(set(a) & set(b)) if math.isfinite(a[s]) and math.isfinite(b[s])]
    return np.array([a[s] for s in seeds], dtype=float), np.array([b[s] for s in seeds], dtype=float)


def paired_p(a: Mapping[int, float], b: Mapping[int, float]) -> float:
    """Two-sided paired t-test over the shared seeds (the seed still the unit: one difference per seed).
    NaN with fewer than two shared seeds or both sides constant; 0.0 for a constant non-zero shift."""
    x, y = shared_pairs(a, b)
    if x.size < 2 or constant(x, y):
        return math.nan
    diff = y - x
    if np.ptp(diff) <= TIE:  # every seed moved by the same amount: scipy divides by a zero spread
        return 1.0 if abs(diff[0]) <= TIE else 0.0
    return float(scipy_stats.ttest_rel(y, x).pvalue)


def tost_p(a: Mapping[int, float], b: Mapping[int, float], margin: float, paired: bool) -> float:
    """Two one-sided tests (statsmodels) that mean(b) - mean(a) lies within ±margin (accuracy 0..1):
    the larger one-sided p. NaN where no test is possible (as welch_p / paired_p)."""
    if paired:
        x, y = shared_pairs(a, b)
        if x.size < 2 or constant(x, y) or np.ptp(y - x) <= TIE:
            return math.nan
        return float(ttost_paired(y, x, -margin, margin)[0])
    x, y = finite(list(a.values())), finite(list(b.values()))
    if x.size < 2 or y.size < 2 or constant(x, y):
        return math.nan
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        return float(ttost_ind(y, x, -margin, margin, usevar="unequal")[0])


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
    margin_points: float = 1.0,
    diverged: Mapping[str, bool] | None = None,
    paired: bool = False,
    confidence: float = 0.95,
    paired_steps: Collection[tuple[str, str]] = (),
) -> pd.DataFrame:
    """One row per (question, a, b): mean test accuracy of each over its seeds, the change in points
    (b - a) with its interval (paired_interval with `paired`, else difference_interval), the p-values
    and the verdict.

    The verdict is about a design choice, so the seed is its unit: the test is Welch's across seeds
    or, with `paired` (every row) or for the steps in `paired_steps` (either order), the paired t
    over shared seeds (variants of one architecture share a seed's initialisation and shuffling). *significant*: its Holm-adjusted p < alpha and the seeds move
    with the means; *equivalent within ±m*: two one-sided tests (Holm-adjusted) put the change
    within ±margin_points, and neither side diverged (a diverged network is no evidence of
    anything being equal); otherwise *inconclusive*. A row whose two sides are both constant
    (diverged against diverged) is no test: it leaves the Holm families and is *not tested*.
    McNemar asks another question, whether these particular trained networks differ on these
    test images (for some variants two seeds do, for others not): reported, never a verdict.
    """
    flags = diverged or {}
    margin = margin_points / 100
    steps = {frozenset(step) for step in paired_steps}
    rows = []
    for question, a, b in pairs:
        pair = paired or frozenset((a, b)) in steps
        for name in (a, b):
            if name not in predictions or name not in accuracies:
                raise KeyError(f"{question}: no predictions or accuracies for {name!r}")
        values_a, values_b = list(accuracies[a].values()), list(accuracies[b].values())
        mean_a, mean_b = spread(values_a)["mean"], spread(values_b)["mean"]
        low, high = (paired_interval(accuracies[a], accuracies[b], confidence) if pair
                     else difference_interval(values_a, values_b, confidence))
        test_p = paired_p(accuracies[a], accuracies[b]) if pair else welch_p(values_a, values_b)
        rows.append({
            "question": question, "a": a, "b": b, "mean_a": mean_a, "mean_b": mean_b,
            "diff_points": None if mean_a is None or mean_b is None else (mean_b - mean_a) * 100,
            "ci_low_points": low, "ci_high_points": high, "test": "paired t" if pair else "Welch",
            "mcnemar_p": seedwise_mcnemar(y_true, predictions[a], predictions[b])["p"],
            "welch_p": welch_p(values_a, values_b), "p": test_p,
            "tost_p": (math.nan if flags.get(a) or flags.get(b)
                       else tost_p(accuracies[a], accuracies[b], margin, pair)),
            "margin_points": margin_points,
            "seeds_agree": seeds_agree(accuracies[a], accuracies[b]),
        })
    table = pd.DataFrame(rows, columns=COMPARE_COLUMNS)
    for column in ("mcnemar_p", "welch_p", "p", "tost_p"):
        table[f"{column}_holm"] = holm(table[column].tolist())
    # A NaN p (nothing tested) compares False: never significant, never equivalent.
    table["significant"] = ((table["p_holm"] < alpha) & table["seeds_agree"]).astype(bool)
    # TOST is the 90 % interval inside ±m; the printed 95 % interval must be inside too, or the
    # table would show "equivalent within ±1" next to [-1.4, +1.4].
    inside = (table["ci_low_points"] >= -margin_points) & (table["ci_high_points"] <= margin_points)
    table["equivalent"] = (~table["significant"] & (table["tost_p_holm"] < alpha) & inside).astype(bool)
    table["verdict"] = [
        SIGNIFICANT if sig else equivalent_words(margin_points) if eq else NOT_TESTED if pd.isna(p) else INCONCLUSIVE
        for sig, eq, p in zip(table["significant"], table["equivalent"], table["p"])]
    # What an inconclusive row could have seen: the difference found with 80 % power after Holm
    # among the tested rows, at the row's own seed noise and seed count (Welch's test).
    tested = int(table["p"].notna().sum())
    table["detectable_points"] = [
        row_detectable(accuracies[a], accuracies[b], tested, alpha) if not pd.isna(p) else math.nan
        for a, b, p in zip(table["a"], table["b"], table["p"])]
    return table.astype({"diff_points": float, "mean_a": float, "mean_b": float,
                         "ci_low_points": float, "ci_high_points": float})


def row_detectable(a: Mapping[int, float], b: Mapping[int, float], tested: int, alpha: float) -> float:
    """detectable_effect at the two sides' root-mean-square std over seeds and the fewer seeds."""
    x, y = finite(list(a.values())), finite(list(b.values()))
    if x.size < 2 or y.size < 2:
        return math.nan
    sigma = math.sqrt((x.var(ddof=1) + y.var(ddof=1)) / 2) * 100
    return detectable_effect(sigma, int(min(x.size, y.size)), max(tested, 1), alpha, simulations=4000) if sigma else 0.0


# --- a generated sentence per study question ---

def _percent(value: float) -> str:
    return f"{value * 100:.1f}"


def _p_text(p: float) -> str:
    # Two significant digits, never scientific notation: the reader compares with 0.05.
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def step_row(table: pd.DataFrame, a: str, b: str) -> tuple[pd.Series, int] | None:
    """The table's row comparing a and b, in either orientation, and +1 / -1 for which."""
    forward = table[(table["a"] == a) & (table["b"] == b)]
    if not forward.empty:
        return forward.iloc[0], 1
    backward = table[(table["a"] == b) & (table["b"] == a)]
    return (backward.iloc[0], -1) if not backward.empty else None


def change_text(row: Mapping[str, Any], sign: int = 1) -> str:
    """'-0.3 points [-1.2, +0.6]': the change b - a (or a - b with sign -1) with its interval."""
    diff = row["diff_points"] * sign
    low, high = row["ci_low_points"], row["ci_high_points"]
    if pd.isna(low) or pd.isna(high):
        return f"{diff:+.1f} points"
    low, high = sorted((low * sign + 0.0, high * sign + 0.0))  # + 0.0: no "-0.0"
    return f"{diff:+.1f} points [{low:+.1f}, {high:+.1f}]"


def step_text(row: Mapping[str, Any], sign: int = 1) -> str:
    """A step's verdict, its change with interval and the Holm-adjusted p behind the verdict, and
    for an inconclusive one the smallest difference it could have detected (80 % power after Holm):
    'inconclusive (-0.3 points [-1.2, +0.6], p = 0.41, it could detect 4.9 points)'."""
    verdict = str(row["verdict"])
    p = row["tost_p_holm"] if verdict.startswith("equivalent") else row["p_holm"]
    parts = [change_text(row, sign)] + ([] if pd.isna(p) else [_p_text(float(p))])
    detectable = row.get("detectable_points", math.nan)
    if verdict == INCONCLUSIVE and not pd.isna(detectable):
        parts.append(f"it could detect {detectable:.1f} points" if detectable < 100 else
                     "its seeds spread too far to detect any difference")
    return f"{verdict} ({', '.join(parts)})"


def _direction(shown: list[float]) -> str:
    """The verb for a series of the numbers as printed (1 decimal), so the words agree with them."""
    steps = [later - earlier for earlier, later in zip(shown, shown[1:])]
    ups, downs = any(s > 0 for s in steps), any(s < 0 for s in steps)
    if ups and downs:
        return "changes"
    return "rises" if ups else "falls" if downs else "stays level"


def interval_text(acc: Mapping[str, Any]) -> str:
    """'(± 0.4)' for a symmetric interval, '[91.2, 93.0]' for one the logit scale made asymmetric."""
    low, high, mean = acc["ci_low"], acc["ci_high"], acc["mean"]
    if round((high - mean) * 100, 1) == round((mean - low) * 100, 1):
        return f"(± {(high - low) / 2 * 100:.1f})"
    return f"[{low * 100:.1f}, {high * 100:.1f}]"


def series_finding(
    question: str,
    names: list[str],
    summary: Mapping[str, dict],
    table: pd.DataFrame,
    labels: Mapping[str, str] | None = None,
) -> str:
    """One English sentence answering a study question from the numbers.

    `names` is the series in the question's order; summary[name]["accuracy"] is a spread() dict
    (printed with its interval) and summary[name]["diverged"] marks a diverged variant; each step
    between consecutive names is looked up in `table` (compare()'s, either orientation) and
    reported with its change, the change's interval and its verdict. The direction word (rises /
    falls / changes / stays level) is computed from the printed percentages, so it cannot
    contradict them.
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
            text = f"{label(name)} {_percent(acc['mean'])} % {interval_text(acc)}"
        return text + (" (diverged)" if entry.get("diverged") else "")

    measured = [round(summary[n]["accuracy"]["mean"] * 100, 1) for n in names
                if summary[n]["accuracy"].get("mean") is not None]
    if len(names) == 1:
        return f"{question}: test accuracy of {shown(names[0])}."
    values = " to ".join(shown(n) for n in names)
    head = f"test accuracy {_direction(measured)} from {values}"
    steps = []
    for a, b in zip(names, names[1:]):
        found = step_row(table, a, b)
        if found is None:
            steps.append(f"{label(a)} → {label(b)} not tested")
        else:
            steps.append(f"{label(a)} → {label(b)} {step_text(*found)}")
    return f"{question}: {head}; {', '.join(steps)}."


def best_variant(summary: Mapping[str, dict], exclude: str = "final") -> str | None:
    """The entry (not `exclude`, the tuned network; not diverged) with the highest mean validation
    accuracy, or test accuracy where a summary has no validation figures.

    Picked on validation data: the entry that is best on the test set is partly the test set's
    lucky draw, and testing it on that same test set overstates its lead (the winner's curse).
    Scores are compared rounded to 1e-9 (0.936 and 0.9359999999999999 are one score) and a tie
    goes to the entry listed first, so the pick does not hang on float rounding.
    """
    def score(entry: dict) -> float | None:
        return (entry.get("val_accuracy") or entry["accuracy"])["mean"]

    plain = [n for n, e in summary.items() if n != exclude and not e["diverged"] and score(e) is not None]
    if not plain:
        return None
    return max(plain, key=lambda n: (round(score(summary[n]), 9), -plain.index(n)))


# --- power after Holm, by simulation ---

def _welch_p_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Welch p-values row by row (the last axis holds the seeds)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        return scipy_stats.ttest_ind(a, b, axis=-1, equal_var=False).pvalue


def _holm_rejects_first(p_first: np.ndarray, p_others: np.ndarray, alpha: float) -> np.ndarray:
    """Per simulation, whether Holm's step-down at alpha rejects the first hypothesis (p_first)
    among it and the others (p_others: simulations x (m - 1))."""
    m = p_others.shape[-1] + 1
    ordered = np.sort(np.concatenate([p_first[:, None], p_others], axis=1), axis=1)
    passes = np.logical_and.accumulate(ordered <= alpha / (m - np.arange(m)), axis=1)
    rank = (p_others < p_first[:, None]).sum(axis=1)   # where the first one sits in the order
    return passes[np.arange(len(p_first)), rank]


def power_after_holm(effect_points: float, sigma_points: float, n: int, m: int, alpha: float = 0.05,
                     simulations: int = 20_000, seed: int = 0) -> float:
    """The chance that compare() calls a true difference of `effect_points` significant: Welch's
    t on n seeds a side (normal, std sigma_points), Holm among m comparisons whose other m - 1 are
    true nulls (the least favourable case: every other p is noise), and every seed (three in four
    of more) moving with the means."""
    return float(_power_curve([effect_points], sigma_points, n, m, alpha, simulations, seed)[0])


@functools.lru_cache(maxsize=8)
def _null_draws(n: int, m: int, simulations: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The simulation's standard normal seeds of the tested pair and the other m - 1 comparisons'
    p-values: drawn once per shape, so a bisection over the effect reuses them."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((simulations, n)), rng.standard_normal((simulations, n))
    others = _welch_p_rows(rng.standard_normal((simulations, m - 1, n)), rng.standard_normal((simulations, m - 1, n)))
    return a, b, others


def _power_curve(effects: Sequence[float], sigma: float, n: int, m: int, alpha: float, simulations: int,
                 seed: int) -> np.ndarray:
    a, b, others = _null_draws(n, m, simulations, seed)
    need = math.ceil(AGREE_SHARE * n - 1e-9) if n > 3 else n
    powers = []
    for effect in effects:
        shifted = b + effect / sigma
        p = _welch_p_rows(a, shifted)
        direction = np.sign(shifted.mean(axis=1) - a.mean(axis=1))
        agree = (np.sign(shifted - a) == direction[:, None]).sum(axis=1) >= need
        powers.append(float(np.mean(_holm_rejects_first(p, others, alpha) & agree & (direction != 0))))
    return np.array(powers)


def detectable_effect(sigma_points: float, n: int, m: int, alpha: float = 0.05, power: float = 0.8,
                      simulations: int = 20_000, seed: int = 0) -> float:
    """The smallest difference (points) that power_after_holm finds with the given power, by
    bisection on common random numbers (the power curve is then monotone in the effect)."""
    low, high = 0.0, 40.0 * sigma_points
    for _ in range(20):
        middle = (low + high) / 2
        if _power_curve([middle], sigma_points, n, m, alpha, simulations, seed)[0] >= power:
            high = middle
        else:
            low = middle
    return high
