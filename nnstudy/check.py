"""The regression gate: the workspace's test accuracy over seeds against a committed baseline.

    python -m nnstudy.check                          # workspace vs HEAD, params check.tolerance
    python -m nnstudy.check --baseline main --tolerance 1.0 --family-alpha 0.05

`dvc metrics diff` shows what changed; it cannot say whether a change is more than the seeds'
noise. This gate can: it reads the full summaries (results/summary.json and, where the revision
has it, results/transfer/summary.json; git at the baseline revision, which may be a commit,
branch, tag or `dvc exp` name) with every entry's per-seed test accuracies.

An entry fails (exit 1) when its median accuracy over seeds drops by more than its noise band,
when its `diverged` flag flips either way, or when it disappears. A diverged baseline entry is
gated only on its flag (its accuracy is chance); `final` (the tuned network) only on its accuracy:
Hyperband may pick another configuration, which alone is no regression. Exit 2: unreadable input
(a missing or malformed summary, an unknown revision), with a line saying which.

The test, per entry, is a moderated statistic on medians (docs/statistics.md):
- *Median*, not mean: one wild seed (a collapse) moves a mean of three by a third of its fall,
  and would fail an unchanged study; the median of three ignores it.
- *Noise per family*: entries that share a noise size are pooled, the MLP networks apart from
  the transfer runs at each labels value (3-15 points between seeds at 10 labels, 0.2-1.7 for
  an MLP variant).
- *The family's prior, fitted*: each entry's variance (baseline and current seeds together, each
  around its own mean, d degrees of freedom) is shrunk toward its family's prior variance s0^2,
  s^2 = (d0 s0^2 + d s_own^2) / (d0 + d), and both s0^2 and the prior degrees of freedom d0 are
  estimated from the family's entries as limma's fitFDist does (Smyth 2004: moments of the log
  variances). Robustly: an entry whose variance the other entries' fit calls an outlier (upper
  tail p < 0.05 / entries, e.g. a variant that collapsed on some seeds) is left out of the fit and
  keeps its own variance (d0 = 0 for it).
- *The prior counts as at most one degree of freedom* (d0 <= PRIOR_DF_CAP = 1 in the shrinkage):
  with 12 entries of 4 d.f. each, the fit cannot tell one noise size from a 4.6-fold spread of them
  well, and a family shrunk hard toward a prior that understates its noisiest entries alarms too
  often, one of a single noise size too rarely. Capped, the simulated family-wise rate stays within
  4-6 % whatever the spread, and the prior still buys power over each entry's own variance
  (python -m bench.gate_alternatives; docs/statistics.md gives the figures).
- *Critical values by simulation*: the statistic (median now - median before) / s has no Student
  t distribution (medians, and s shrunk toward a fitted prior). The critical value is simulated
  for the whole family at its fitted d0 (normal seeds, sigma^2 drawn from the prior, the prior
  re-fitted in every simulated family): the value at which any of its entries fails by noise with
  the family's share of the family-wise alpha (shared by entry count across families). Seeded and
  cached per shape. band = max(tolerance, critical * s) points.
The calibration, recomputed from committed per-seed data alone: python -m bench.gate_calibration.
"""

import argparse
import functools
import json
import math
import statistics
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as scipy_stats
from scipy.special import digamma

from nnstudy.core import params, paths
from nnstudy.core.errors import StudyError, run_stage
from nnstudy.core.jsonio import as_number
from nnstudy.report.tables import markdown_table

WORKSPACE = "workspace"
FINAL = paths.FINAL
FAMILY_ALPHA = 0.05
PASSING = ("ok", "improved", "new")
EPSILON = 1e-9        # a drop of exactly the band passes, whatever float rounding says
MLP_FAMILY = "mlp"
# Where each revision keeps its summaries; older revisions kept them under metrics/.
SUMMARY_FILES = (str(paths.SUMMARY), "metrics/summary.json")
TRANSFER_FILES = (str(paths.TRANSFER_SUMMARY), "metrics/transfer/summary.json")
MIN_FIT = 3           # entries a family needs for a prior fit; fewer keep their own variances
FAMILIES = 8_000      # simulated families per critical value: ~400 beyond the 5 % quantile
# Prior degrees of freedom at which the critical values are simulated; others are interpolated
# linearly in 1 / (1 + d0), which runs from 1 (d0 = 0: the entry's own variance) to 0 (d0 = inf).
PRIOR_GRID = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 128.0, math.inf)
# The most degrees of freedom the family's prior gets in an entry's shrunk variance, whatever d0 is
# fitted: the fitted d0 of a dozen entries is too noisy to shrink by (the module's docstring and
# docs/statistics.md give the measurements; bench/gate_alternatives.py measures other caps).
PRIOR_DF_CAP = 1.0


# --- the family's prior: limma's fitFDist ---

def trigamma(x: np.ndarray) -> np.ndarray:
    """psi'(x) for x > 0, as scipy's polygamma(1, x) (to ~1e-12) but ~100x faster on arrays: the
    simulation test fits thousands of families, and scipy evaluates a zeta series per element.
    The recurrence psi'(x) = psi'(x + 1) + 1/x^2 lifts x to >= 6, then the asymptotic series."""
    x = np.asarray(x, dtype=float)
    total = np.zeros_like(x)
    for _ in range(6):
        low = x < 6
        total = total + np.where(low, 1 / np.where(low, x, 1) ** 2, 0.0)
        x = np.where(low, x + 1, x)
    inv = 1 / x
    inv2 = inv * inv
    return total + inv + inv2 / 2 + inv * inv2 * (1 / 6 - inv2 * (1 / 30 - inv2 * (1 / 42 - inv2 / 30)))


def tetragamma(x: np.ndarray) -> np.ndarray:
    """psi''(x) for x > 0, as scipy's polygamma(2, x), by the same recurrence and asymptotic series."""
    x = np.asarray(x, dtype=float)
    total = np.zeros_like(x)
    for _ in range(6):
        low = x < 6
        total = total - np.where(low, 2 / np.where(low, x, 1) ** 3, 0.0)
        x = np.where(low, x + 1, x)
    inv = 1 / x
    inv2 = inv * inv
    return total - inv2 - inv * inv2 - inv2 * inv2 * (1 / 2 - inv2 * (1 / 6 - inv2 * (1 / 6 - inv2 * 3 / 10)))


def trigamma_inverse(x: np.ndarray) -> np.ndarray:
    """y with trigamma(y) = x, by limma's Newton iteration (trigammaInverse)."""
    x = np.asarray(x, dtype=float)
    y = np.where(x > 1e7, 1 / np.sqrt(np.maximum(x, 1e-300)), 0.5 + 1 / np.maximum(x, 1e-300))
    small = x < 1e-6
    y = np.where(small, 1 / np.maximum(x, 1e-300), y)
    todo = ~small & ~(x > 1e7)
    for _ in range(50):
        tri = trigamma(y)
        step = np.where(todo, tri * (1 - tri / np.where(todo, x, 1)) / tetragamma(y), 0.0)
        y = y + step
        if np.all(np.abs(step) <= 1e-8 * y):
            break
    return y


def log_terms(variances: np.ndarray, df: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """limma's per-entry terms: e = log s^2 - digamma(d/2) + log(d/2), whose mean estimates
    log s0^2 + (the same for d0), and trigamma(d/2), the part of e's variance that chi-square noise
    explains; and which entries count (a finite variance with d > 0). Zero variances (three
    identical seeds) are raised to 1e-5 of the family's median, as limma does."""
    s2, d = np.broadcast_arrays(np.asarray(variances, dtype=float), np.asarray(df, dtype=float))
    kept = np.isfinite(s2) & (d > 0)
    median = np.nanmedian(np.where(kept, s2, np.nan), axis=-1, keepdims=True)
    median = np.where((median > 0) & np.isfinite(median), median, 1.0)
    half = np.where(kept, d / 2, 1.0)
    e = np.where(kept, np.log(np.maximum(np.where(kept, s2, 1.0), 1e-5 * median)) - digamma(half) + np.log(half), 0.0)
    return e, np.where(kept, trigamma(half), 0.0), kept


def prior_from_moments(e_mean: np.ndarray, e_var: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(s0^2, d0) from the mean of e and its variance beyond chi-square noise (limma's fitFDist):
    d0 = 2 trigamma^-1(excess variance), s0^2 = exp(mean + digamma(d0/2) - log(d0/2)); d0 = inf when
    there is no excess (one sigma for all); NaN and 0 with fewer than MIN_FIT entries."""
    positive = e_var > 0
    d0 = np.where(positive, 2 * trigamma_inverse(np.where(positive, e_var, 1.0)), np.inf)
    finite_d0 = np.where(np.isfinite(d0), d0, 1.0)
    s02 = np.where(np.isfinite(d0), np.exp(e_mean + digamma(finite_d0 / 2) - np.log(finite_d0 / 2)), np.exp(e_mean))
    enough = count >= MIN_FIT
    return np.where(enough, s02, np.nan), np.where(enough, d0, 0.0)


def fit_f_dist(variances: np.ndarray, df: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The prior (s0^2, d0) of sample variances s_i^2 ~ s0^2 F(d_i, d0), by limma's fitFDist (Smyth
    2004): the mean and variance of the log variances, corrected by digamma / trigamma of d_i / 2.

    Along the last axis (entries; NaN entries are left out), so a simulation fits many families at
    once.
    """
    e, tri, kept = log_terms(variances, df)
    count = kept.sum(axis=-1)
    e_mean = e.sum(axis=-1) / np.maximum(count, 1)
    spread = (np.where(kept, e - e_mean[..., None], 0.0) ** 2).sum(axis=-1) / np.maximum(count - 1, 1)
    return prior_from_moments(e_mean, spread - tri.sum(axis=-1) / np.maximum(count, 1), count)


def upper_tail(variances: np.ndarray, df: np.ndarray, s02: np.ndarray, d0: np.ndarray) -> np.ndarray:
    """P(s^2 this large or larger) under the prior: F(d, d0) tail of s^2 / s0^2 (chi2_d / d at d0 = inf)."""
    ratio = variances / s02
    chi = scipy_stats.chi2.sf(ratio * df, df)
    f = scipy_stats.f.sf(ratio, df, np.where(np.isfinite(d0) & (d0 > 0), d0, 1.0))
    return np.where(np.isfinite(d0), f, chi)


def robust_prior(variances: np.ndarray, df: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(s0^2, d0, outlier) per family, along the last axis: each entry is judged by the fit of the
    others (leave one out), an entry in the upper tail beyond 0.05 / entries is an outlier, and
    the prior is fitted without the outliers. One collapsing variant (a variance 10^4 times its
    family's) would otherwise drag d0 toward 0 and widen every other band."""
    s2, d = np.broadcast_arrays(np.asarray(variances, dtype=float), np.asarray(df, dtype=float))
    e, tri, kept = log_terms(s2, d)
    # Leave-one-out moments of every entry at once, from the family's sums.
    count = kept.sum(axis=-1, keepdims=True) - kept
    sum_e = e.sum(axis=-1, keepdims=True) - e
    sum_e2 = (e * e).sum(axis=-1, keepdims=True) - e * e
    sum_tri = tri.sum(axis=-1, keepdims=True) - tri
    mean = sum_e / np.maximum(count, 1)
    spread = (sum_e2 - count * mean * mean) / np.maximum(count - 1, 1)
    s02, d0 = prior_from_moments(mean, spread - sum_tri / np.maximum(count, 1), count)
    with np.errstate(invalid="ignore", divide="ignore"):
        tail = upper_tail(s2, d, s02, d0)
    outlier = kept & np.isfinite(s02) & (tail < 0.05 / s2.shape[-1])
    s02, d0 = fit_f_dist(np.where(outlier, np.nan, s2), d)
    return s02, d0, outlier


# --- critical values of the median statistic, by simulation ---

def own_variances(base: np.ndarray, now: np.ndarray) -> tuple[np.ndarray, int]:
    """Each entry's variance from both runs' seeds, each run around its own mean, and its d.f.:
    base and now are (..., entries, seeds) arrays."""
    n_base, n_now = base.shape[-1], now.shape[-1]
    d = max(n_base - 1, 0) + max(n_now - 1, 0)
    squares = (base.var(axis=-1, ddof=1) * (n_base - 1) if n_base > 1 else 0.0) + (
        now.var(axis=-1, ddof=1) * (n_now - 1) if n_now > 1 else 0.0)
    return (squares / d if d else np.zeros(base.shape[:-1])), d


def family_statistics(base: np.ndarray, now: np.ndarray, fitted: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T, moderated s, the family's fitted prior d0) of families of entries: base and now are
    (..., entries, seeds) arrays of accuracies; T = (median now - median before) / s, s the entry's
    own std (both runs' seeds) moderated by its family's robust prior, as the gate computes it.
    `fitted` marks the entries the prior is fitted on (default: all)."""
    own, d = own_variances(base, now)
    s02, d0, outlier = robust_prior(own if fitted is None else np.where(fitted, own, np.nan), np.full(own.shape, float(d)))
    entry_d0 = entry_prior_df(d0[..., None], s02[..., None], outlier)
    s2 = moderated_variance(own, d, s02[..., None], entry_d0)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (np.median(now, axis=-1) - np.median(base, axis=-1)) / np.sqrt(s2)
    return t, np.sqrt(s2), d0


def family_alarms(base: np.ndarray, now: np.ndarray, base_diverged: np.ndarray, now_diverged: np.ndarray,
                  alpha: np.ndarray | float, tolerance: float) -> np.ndarray:
    """The gate on many studies at once, one family: which entries fail (..., entries), for a
    simulation or a calibration over thousands of seed splits. The same rules as gate(): an entry
    diverged in the baseline is gated on its flag alone, the prior is fitted on the entries
    diverged in neither, the family's critical value is for its count of gated entries at its
    share `alpha` of the family-wise rate (one per study, or one for all), band = max(tolerance,
    c * s) points. (`final`, gated on accuracy even when diverged, is left to gate().)"""
    gated = ~base_diverged
    t, s, d0 = family_statistics(base, now, fitted=gated & ~now_diverged)
    change = (np.median(now, axis=-1) - np.median(base, axis=-1)) * 100
    entries = gated.sum(axis=-1)
    alpha = np.broadcast_to(np.asarray(alpha, dtype=float), entries.shape)
    value = np.full(entries.shape, np.inf)
    for k, a in {(int(k), float(a)) for k, a in zip(entries.ravel(), alpha.ravel())}:
        if k:
            at = (entries == k) & (alpha == a)
            value[at] = critical(k, base.shape[-1], now.shape[-1], d0[at], a)
    band = np.maximum(tolerance, value[..., None] * s * 100)
    return (gated & (change < -band - EPSILON)) | (base_diverged != now_diverged)


@functools.lru_cache(maxsize=256)
def grid_critical(entries: int, n_base: int, n_now: int, index: int, alpha: float) -> float:
    """The critical value c with P(min over the family's entries of T < -c) = alpha, simulated for a
    family of `entries` entries whose true variances follow the prior at d0 = PRIOR_GRID[index]
    (s0^2 = 1; T does not depend on s0), the prior re-fitted in every simulated family as the gate
    fits it: the estimate's own noise is in the critical value. Seeded by the shape."""
    d0 = PRIOR_GRID[index]
    rng = np.random.default_rng([entries, n_base, n_now, index, round(alpha * 1e9)])
    sigma = np.ones((FAMILIES, entries, 1))
    if 0 < d0 < math.inf:
        sigma = np.sqrt(d0 / rng.chisquare(d0, (FAMILIES, entries, 1)))
    base = sigma * rng.standard_normal((FAMILIES, entries, n_base))
    now = sigma * rng.standard_normal((FAMILIES, entries, n_now))
    t, _, _ = family_statistics(base, now)
    return -float(np.nanquantile(family_minimum(t), alpha))


def family_minimum(t: np.ndarray) -> np.ndarray:
    """The lowest T of each family (last axis), its entries without a finite T left out: the family
    alarms when it is below minus the critical value."""
    return np.nanmin(np.where(np.isfinite(t), t, np.nan), axis=-1)


def critical(entries: int, n_base: int, n_now: int, d0: float | np.ndarray, alpha: float) -> np.ndarray:
    """The family's critical value at its fitted prior d.f. d0 (any; an array too): the simulated
    values at the two neighbouring grid points (only those are simulated), interpolated linearly
    in 1 / (1 + d0)."""
    grid = 1 / (1 + np.array(PRIOR_GRID))            # falling from 1 (d0 = 0) to 0 (d0 = inf)
    at = 1 / (1 + np.asarray(d0, dtype=float))
    upper = np.clip(np.searchsorted(-grid, -at, side="left"), 1, len(grid) - 1)  # grid[upper] <= at
    needed = np.unique(np.concatenate([upper.ravel(), upper.ravel() - 1]))
    values = np.full(len(grid), np.nan)
    for index in needed:
        values[index] = grid_critical(entries, n_base, n_now, int(index), alpha)
    low, high = grid[upper], grid[upper - 1]
    weight = (at - low) / (high - low)
    return values[upper] + weight * (values[upper - 1] - values[upper])


@dataclass(frozen=True)
class Entry:
    """One variant, `final` or transfer run in one revision's summary: test accuracy, 0..1."""
    values: tuple[float, ...]  # finite per-seed accuracies
    diverged: bool
    family: str

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    @property
    def variance(self) -> float | None:
        return statistics.variance(self.values) if self.n >= 2 else None


Summary = dict[str, Entry]


@dataclass(frozen=True)
class Band:
    points: float
    s: float          # the moderated std, accuracy 0..1
    prior_df: float   # d0 for this entry (0: an outlier, or a family too small to fit)
    critical: float   # the simulated critical value of (median change) / s


@dataclass(frozen=True)
class Row:
    name: str
    baseline: Entry | None
    current: Entry | None
    band: Band | None  # None where accuracy is not gated
    verdict: str

    @property
    def change(self) -> float | None:
        return change_points(self.baseline, self.current)

    @property
    def failed(self) -> bool:
        return self.verdict not in PASSING


# --- pure comparison ---

def change_points(baseline: Entry | None, current: Entry | None) -> float | None:
    """Change of median accuracy in percentage points (0.9 -> 0.89 is -1.0)."""
    if baseline is None or current is None or baseline.median is None or current.median is None:
        return None
    return (current.median - baseline.median) * 100


def accuracy_gated(name: str, entry: Entry) -> bool:
    """Whether an entry's accuracy is gated: not for diverged entries (chance), always for final."""
    return entry.median is not None and (name == FINAL or not entry.diverged)


def own_variance(*entries: Entry) -> tuple[float, int]:
    """The entry's variance from the baseline's and the current seeds together (each around its own
    mean), and its degrees of freedom."""
    squares, df = 0.0, 0
    for entry in entries:
        if entry.n >= 2:
            squares += entry.variance * (entry.n - 1)
            df += entry.n - 1
    return (squares / df if df else 0.0), df


@dataclass(frozen=True)
class Prior:
    s2: float        # s0^2, accuracy^2
    df: float        # d0 for the family's ordinary entries
    outliers: frozenset[str]


def family_priors(pairs: Mapping[str, tuple[Entry, Entry]]) -> dict[str, Prior]:
    """Per family, the robust fitFDist prior of its gated entries' variances (both runs' seeds)."""
    by_family: dict[str, list[tuple[str, float, int]]] = {}
    for name, (base, cur) in pairs.items():
        variance, df = own_variance(base, cur)
        if df:
            by_family.setdefault(base.family, []).append((name, variance, df))
    priors = {}
    for family, members in by_family.items():
        s02, d0, outlier = robust_prior(np.array([v for _, v, _ in members]), np.array([d for _, _, d in members]))
        priors[family] = Prior(float(s02), float(d0), frozenset(n for (n, _, _), o in zip(members, outlier) if o))
    return priors


def entry_prior_df(prior_df: np.ndarray, s02: np.ndarray, outlier: np.ndarray) -> np.ndarray:
    """d0 for each entry's shrinkage: the family's, at most PRIOR_DF_CAP, or 0 (its own variance
    alone) for an outlier or where the family had too few entries to fit a prior."""
    return np.where(outlier | ~np.isfinite(s02), 0.0, np.minimum(prior_df, PRIOR_DF_CAP))


def moderated_variance(own: np.ndarray, df: int, s02: np.ndarray, d0: np.ndarray) -> np.ndarray:
    """s^2 = (d0 s0^2 + d s_own^2) / (d0 + d); s0^2 itself at d0 = inf; the own variance at d0 = 0."""
    own, s02, d0 = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (own, s02, d0)))
    prior = np.where(np.isfinite(s02), s02, 0.0)
    finite = np.where(np.isinf(d0), 0.0, d0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.isinf(d0), prior, (finite * prior + df * own) / (finite + df))


def band(name: str, base: Entry, cur: Entry, prior: Prior | None, entries: int, alpha: float,
         tolerance: float) -> Band:
    """The entry's band: its family's critical value (a family of `entries` gated entries at its
    share `alpha` of the family-wise rate) times its moderated std, at least the tolerance."""
    variance, df = own_variance(base, cur)
    s02 = prior.s2 if prior is not None else math.nan
    d0 = 0.0 if prior is None else float(entry_prior_df(np.array(prior.df), np.array(s02),
                                                      np.array(name in prior.outliers)))
    if df == 0 and d0 == 0:  # single seeds everywhere: no noise to measure, the tolerance alone
        return Band(tolerance, 0.0, 0.0, math.inf)
    s = math.sqrt(float(moderated_variance(np.array(variance), df, np.array(s02), np.array(d0))))
    family_d0 = prior.df if prior is not None else 0.0
    value = float(critical(entries, base.n, cur.n, family_d0, alpha))
    return Band(max(tolerance, value * s * 100), s, d0, value)


def verdict(name: str, base: Entry | None, cur: Entry | None, gated: Band | None) -> str:
    """'ok', 'improved' and 'new' pass; the capitalised verdicts fail."""
    if cur is None:
        return "MISSING"
    if base is None:
        return "new"
    problems = []
    change = change_points(base, cur)
    if gated is not None:
        if cur.median is None:
            problems.append("NO ACCURACY")
        elif change < -gated.points - EPSILON:
            problems.append("REGRESSION")
    if name != FINAL and base.diverged != cur.diverged:
        problems.append("NOW DIVERGES" if cur.diverged else "NO LONGER DIVERGES")
    if problems:
        return ", ".join(problems)
    return "improved" if gated is not None and change is not None and change > gated.points + EPSILON else "ok"


def gate(baseline: Summary, current: Summary, tolerance: float, family_alpha: float = FAMILY_ALPHA) -> list[Row]:
    """One row per entry in either side, baseline order first, `final` last."""
    names = [n for n in dict.fromkeys([*baseline, *current]) if n != FINAL]
    if FINAL in baseline or FINAL in current:
        names.append(FINAL)
    both = {n: (baseline[n], current[n]) for n in names if n in baseline and n in current}
    gated = [n for n, (base, _) in both.items() if accuracy_gated(n, base)]
    priors = family_priors({n: both[n] for n in gated if not (both[n][0].diverged or both[n][1].diverged)})
    # Each family gets its share of the family-wise rate by its size (Bonferroni across families);
    # within a family the simulated critical value holds the rate for all its entries together.
    sizes = Counter(both[n][0].family for n in gated)
    rows = []
    for name in names:
        base, cur = baseline.get(name), current.get(name)
        entry_band = None
        if name in gated:
            size = sizes[base.family]
            entry_band = band(name, base, cur, priors.get(base.family), size,
                              family_alpha * size / len(gated), tolerance)
        rows.append(Row(name, base, cur, entry_band, verdict(name, base, cur, entry_band)))
    return rows


# --- output ---

def _accuracy(entry: Entry | None) -> str:
    if entry is None:
        return "–"
    if entry.median is None:
        return "– (n=0)"
    return f"{entry.median * 100:.2f} ({min(entry.values) * 100:.1f}–{max(entry.values) * 100:.1f}, n={entry.n})"


def _flag(entry: Entry | None) -> str:
    return "–" if entry is None else ("YES" if entry.diverged else "no")


def format_table(rows: list[Row]) -> str:
    headers = ["entry", "family", "baseline median % (range, n)", "current median % (range, n)",
               "change (points)", "band (points)", "diverged", "verdict"]
    body = [
        [
            row.name,
            (row.baseline or row.current).family,
            _accuracy(row.baseline),
            _accuracy(row.current),
            "–" if row.change is None else f"{row.change:+.2f}",
            "–" if row.band is None else f"{row.band.points:.2f}",
            f"{_flag(row.baseline)} → {_flag(row.current)}",
            row.verdict,
        ]
        for row in rows
    ]
    return markdown_table(headers, body)


def notes(rows: list[Row], family_alpha: float, tolerance: float) -> list[str]:
    """Which test ran, and why."""
    m = sum(row.band is not None for row in rows)
    return [
        f"note: test: median accuracy over seeds, current vs baseline, one-sided; band = max(tolerance "
        f"{tolerance:g}, c * s) points, s = each entry's own std over both runs' seeds shrunk toward its family's "
        f"prior (s0 and d0 fitted as limma's fitFDist, outliers left out, the prior worth at most {PRIOR_DF_CAP:g} "
        f"d.f.), c the simulated 1 - {family_alpha:g}/{m} "
        f"critical value of the median change over s (Bonferroni over the {m} entries gated on accuracy).",
        "note: why: medians, so one wild seed does not fail a run; families (MLP; transfer runs per labels "
        "value), so one study's noise does not set the other's bands; both runs' spread and a fitted prior, so "
        "seeds that agree by luck make a band less narrow, and the simulated c allows for the rest. Calibration from committed per-seed data: "
        "python -m bench.gate_calibration (bench/gate_calibration.json).",
    ]


def summary_line(rows: list[Row], baseline: str) -> str:
    failed = [f"{row.name} ({row.verdict})" for row in rows if row.failed]
    if failed:
        return f"check: FAIL: {len(failed)} of {len(rows)} against {baseline}: {'; '.join(failed)}"
    return f"check: PASS: {len(rows)} of {len(rows)} within their noise bands of {baseline}"


# --- reading one revision's summaries ---

def parse_entry(where: str, name: str, raw: Any, family: str) -> Entry:
    """One entry of a summary; a malformed one is a StudyError naming the file and the entry."""
    where = f"{where}: {name!r}"
    if not isinstance(raw, dict) or not isinstance(raw.get("accuracy"), dict):
        raise StudyError(f"{where} has no accuracy spread (a mapping with mean, std, n, ...)")
    if not isinstance(raw.get("diverged"), bool):
        raise StudyError(f"{where}: 'diverged' must be true or false, got {raw.get('diverged')!r}")
    accuracy = raw["accuracy"]
    n = accuracy.get("n")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise StudyError(f"{where}: accuracy.n must be a count of seeds, got {n!r}")
    values = accuracy.get("values")
    if values is None:
        # A summary written before per-seed values were kept: n draws around the mean with that std
        # reproduce its mean and variance (the median is then the mean).
        mean, std = as_number(accuracy.get("mean")), as_number(accuracy.get("std")) or 0.0
        if mean is None or n == 0:
            return Entry((), raw["diverged"], family)
        spread = [mean] if n == 1 else [mean + std * z for z in _unit_spread(n)]
        return Entry(tuple(spread), raw["diverged"], family)
    if not isinstance(values, list):
        raise StudyError(f"{where}: accuracy.values must be a list of per-seed accuracies, got {values!r}")
    numbers = [as_number(v) for v in values]
    return Entry(tuple(v for v in numbers if v is not None and math.isfinite(v)), raw["diverged"], family)


def _unit_spread(n: int) -> list[float]:
    """n points with mean 0 and sample std 1, symmetric."""
    raw = [i - (n - 1) / 2 for i in range(n)]
    scale = statistics.stdev(raw)
    return [r / scale for r in raw]


def parse_summary(content: Any, where: str = str(paths.SUMMARY)) -> Summary:
    if not isinstance(content, dict) or not content:
        raise StudyError(f"{where}: not a summary (a mapping of variant -> spread), got {type(content).__name__}")
    return {name: parse_entry(where, name, raw, MLP_FAMILY) for name, raw in content.items()}


def transfer_family(raw: Any) -> str:
    labels = raw.get("recipe", {}).get("labels") if isinstance(raw, dict) and isinstance(raw.get("recipe"), dict) else None
    return f"transfer@{labels}" if labels is not None else "transfer"


def parse_transfer(content: Any, where: str = str(paths.TRANSFER_SUMMARY)) -> Summary:
    if not isinstance(content, dict) or not isinstance(content.get("runs"), dict):
        raise StudyError(f"{where}: not a transfer summary (a mapping with 'runs')")
    return {name: parse_entry(where, name, raw, transfer_family(raw)) for name, raw in content["runs"].items()}


def resolve(rev: str) -> str:
    """A commit, branch or tag as git knows it, or a `dvc exp` name, as something `git show` reads."""
    found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                           capture_output=True, text=True)
    if found.returncode == 0:
        return found.stdout.strip()
    from dvc.repo import Repo  # only for experiment names: DVC takes a second to import
    from dvc.repo.experiments.utils import resolve_name

    with Repo() as repo:
        ref = resolve_name(repo.scm, rev).get(rev)
    if ref is None:
        raise StudyError(f"--baseline {rev!r}: no such commit, branch, tag or experiment")
    return str(ref)


def read_at(rev: str, candidates: Sequence[str]) -> tuple[str, str] | None:
    """(path, text) of the first candidate file that exists at the revision (or in the workspace)."""
    for path in candidates:
        if rev == WORKSPACE:
            file = Path(path)
            if file.is_file():
                return path, file.read_text(encoding="utf-8")
            continue
        shown = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
        if shown.returncode == 0:
            return path, shown.stdout
    return None


def revision_summary(rev: str, label: str) -> Summary:
    """The MLP study's entries and, where the revision has it, every run of the transfer study."""
    def load(found: tuple[str, str]) -> Any:
        path, text = found
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise StudyError(f"{path} in {label}: not JSON ({error})") from None

    found = read_at(rev, SUMMARY_FILES)
    if found is None:
        fix = "run `dvc repro`" if rev == WORKSPACE else "is the reproduced study committed there?"
        raise StudyError(f"{SUMMARY_FILES[0]}: missing in {label}; {fix}")
    entries = parse_summary(load(found), f"{found[0]} in {label}")
    transfer = read_at(rev, TRANSFER_FILES)
    if transfer is not None:
        entries |= parse_transfer(load(transfer), f"{transfer[0]} in {label}")
    return entries


# --- command line ---

def points(text: str) -> float:
    value = as_number(text)
    if value is None or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of accuracy points >= 0, got {text!r}")
    return value


def probability(text: str) -> float:
    value = as_number(text)
    if value is None or not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a probability between 0 and 1, got {text!r}")
    return value


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m nnstudy.check", description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="HEAD", metavar="REV",
                        help="commit, branch, tag or experiment to compare against (default: HEAD)")
    parser.add_argument("--tolerance", type=points, default=None, metavar="POINTS",
                        help="the smallest band: accuracy points an entry may always lose "
                             "(default: params.yaml check.tolerance)")
    parser.add_argument("--family-alpha", type=probability, default=FAMILY_ALPHA, metavar="ALPHA",
                        help=f"chance that any entry of an unchanged study fails by noise (default: {FAMILY_ALPHA})")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    tolerance = params.load().check_tolerance if args.tolerance is None else args.tolerance
    baseline = revision_summary(resolve(args.baseline), f"revision {args.baseline!r}")
    current = revision_summary(WORKSPACE, "the workspace")
    rows = gate(baseline, current, tolerance, args.family_alpha)
    print(f"Median test accuracy over seeds: workspace vs {args.baseline} "
          f"(tolerance {tolerance:g} points, family alpha {args.family_alpha:g})\n")
    print(format_table(rows))
    print()
    for line in notes(rows, args.family_alpha, tolerance):
        print(line)
    print(summary_line(rows, args.baseline))
    if any(row.failed for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    run_stage(main)
