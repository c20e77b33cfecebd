"""The regression gate: the workspace's test accuracy over seeds against a committed baseline.

    python -m nnstudy.check                          # workspace vs HEAD, params check.tolerance
    python -m nnstudy.check --baseline main --tolerance 1.0 --family-alpha 0.05

Reads metrics/summary.json at both revisions (through DVC): per variant and for `final` (the
tuned network) the spread of test accuracy over the training seeds and the `diverged` flag; and
the same for every run of the transfer study (metrics/transfer/summary.json), where it exists.

A variant fails (exit 1) when its mean accuracy drops by more than its noise band, when its
`diverged` flag flips either way, or when it disappears. A variant whose baseline diverged is
gated only on the flag (its accuracy is chance). `final` is gated only by its mean accuracy
against its band: Hyperband may pick another configuration, which alone is no regression.

The band, in accuracy points, comes from the baseline's own spread over seeds:

    band = max(tolerance, t_crit * s * sqrt(1/n_base + 1/n_cur) * 100)
    s = max(the entry's own baseline std, the typical std: the median over non-diverged entries)
    t_crit = one-sided Student-t quantile at 1 - family_alpha / m, pooled degrees of freedom

where m is the number of entries gated on accuracy (Bonferroni). So on an unchanged study the
chance that any entry fails by noise is at most ~5 % (family_alpha 0.05; approximately: under
normality, seeds as independent draws, noise of one size across entries, which the median
estimates; machine/backend changes act like new seeds). With a single seed
per baseline entry there is no spread to measure: s falls back to 0 and the tolerance alone is
the band. Exit 2: unreadable input (missing file, unknown revision, malformed summary).
"""

import argparse
import math
import statistics
import sys
from dataclasses import dataclass
from typing import Any

from scipy import stats as scipy_stats

from nnstudy.compare import FINAL, SUMMARY_METRICS, WORKSPACE, markdown_table, metrics_by_rev, need_file
from nnstudy.core import params, paths
from nnstudy.core.errors import StudyError, run_stage
from nnstudy.core.jsonio import as_number

FAMILY_ALPHA = 0.05
TRANSFER_METRICS = str(paths.TRANSFER_SUMMARY)  # "metrics/transfer/summary.json"
PASSING = ("ok", "improved", "new")
EPSILON = 1e-9  # a drop of exactly the band passes, whatever float rounding says


@dataclass(frozen=True)
class Entry:
    """One variant (or `final`) in one revision's summary: test accuracy over seeds, 0..1."""
    mean: float | None
    std: float | None
    n: int
    ci_low: float | None
    ci_high: float | None
    diverged: bool


Summary = dict[str, Entry]


@dataclass(frozen=True)
class Noise:
    """What the baseline says about seed-to-seed noise, shared by every entry's band."""
    typical_std: float         # accuracy, 0..1: the median entry's std; 0.0 when no entry has two seeds
    df: int                    # pooled degrees of freedom: sum of n_i - 1
    entries: int               # non-diverged baseline entries that pooled at least two seeds
    m: int                     # entries gated on accuracy (the Bonferroni family)
    family_alpha: float
    t_crit: float | None       # None when df == 0: the tolerance alone is the band

    @property
    def measured(self) -> bool:
        return self.t_crit is not None


@dataclass(frozen=True)
class Row:
    variant: str
    baseline: Entry | None
    current: Entry | None
    band: float | None         # accuracy points; None where accuracy is not gated
    verdict: str

    @property
    def change(self) -> float | None:
        return change_points(self.baseline, self.current)

    @property
    def failed(self) -> bool:
        return self.verdict not in PASSING


# --- pure comparison ---

def change_points(baseline: Entry | None, current: Entry | None) -> float | None:
    """Change of mean accuracy in percentage points (0.9 -> 0.89 is -1.0)."""
    if baseline is None or current is None or baseline.mean is None or current.mean is None:
        return None
    return (current.mean - baseline.mean) * 100


def accuracy_gated(name: str, entry: Entry) -> bool:
    """Whether an entry's mean accuracy is gated: not for diverged variants (chance), always for final."""
    return entry.mean is not None and (name == FINAL or not entry.diverged)


def noise_model(baseline: Summary, family_alpha: float = FAMILY_ALPHA) -> Noise:
    """The typical seed-to-seed std of the non-diverged baseline entries and the Bonferroni t quantile."""
    pooled = [e for e in baseline.values() if not e.diverged and e.std is not None and e.n >= 2]
    df = sum(e.n - 1 for e in pooled)
    # Every entry measures the same kind of noise, so they are pooled: 3 seeds alone give an entry 2
    # degrees of freedom and a useless t quantile. The *median* std, not the df-weighted mean of
    # the variances: one variant on the edge of collapse (rmsprop_l1_dropout ranged 20-77 % over
    # three seeds) would otherwise widen every band past any real regression. Such a variant still
    # gets a band as wide as its own spread (band_points takes the larger of the two).
    typical_std = float(statistics.median(e.std for e in pooled)) if pooled else 0.0
    m = max(1, sum(accuracy_gated(name, e) for name, e in baseline.items()))
    # One-sided: only drops fail. Bonferroni over the m entries bounds the family-wise error.
    t_crit = float(scipy_stats.t.ppf(1 - family_alpha / m, df)) if df else None
    return Noise(typical_std, df, len(pooled), m, family_alpha, t_crit)


def band_points(base: Entry, n_current: int, noise: Noise, tolerance: float) -> float:
    """The drop in accuracy points this entry may show by noise; the tolerance is its floor."""
    if not noise.measured or base.n < 1 or n_current < 1:
        return tolerance  # single-seed baseline: no spread to measure
    # max: a variant noisier than the pool keeps a band at least as wide as its own spread.
    s = max(base.std or 0.0, noise.typical_std)
    return max(tolerance, noise.t_crit * s * math.sqrt(1 / base.n + 1 / n_current) * 100)


def verdict(name: str, base: Entry | None, cur: Entry | None, band: float | None) -> str:
    """'ok', 'improved' and 'new' pass; the capitalised verdicts fail."""
    if cur is None:
        return "MISSING"
    if base is None:
        return "new"
    problems = []
    change = change_points(base, cur)
    if band is not None:
        if cur.mean is None:
            problems.append("NO ACCURACY")
        elif change < -band - EPSILON:
            problems.append("REGRESSION")
    if name != FINAL and base.diverged != cur.diverged:
        problems.append("NOW DIVERGES" if cur.diverged else "NO LONGER DIVERGES")
    if problems:
        return ", ".join(problems)
    return "improved" if band is not None and change is not None and change > band + EPSILON else "ok"


def gate(baseline: Summary, current: Summary, tolerance: float, family_alpha: float = FAMILY_ALPHA) -> list[Row]:
    """One row per entry in either side, baseline order first, `final` last."""
    noise = noise_model(baseline, family_alpha)
    names = [n for n in dict.fromkeys([*baseline, *current]) if n != FINAL]
    if FINAL in baseline or FINAL in current:
        names.append(FINAL)
    rows = []
    for name in names:
        base, cur = baseline.get(name), current.get(name)
        band = None
        if base is not None and cur is not None and accuracy_gated(name, base):
            band = band_points(base, cur.n, noise, tolerance)
        rows.append(Row(name, base, cur, band, verdict(name, base, cur, band)))
    return rows


# --- output ---

def _accuracy(entry: Entry | None) -> str:
    if entry is None:
        return "–"
    if entry.mean is None:
        return f"– (n={entry.n})"
    if entry.ci_low is None or entry.ci_high is None:
        return f"{entry.mean * 100:.2f} (n={entry.n})"
    return f"{entry.mean * 100:.2f} ± {(entry.ci_high - entry.ci_low) / 2 * 100:.2f} (n={entry.n})"


def _flag(entry: Entry | None) -> str:
    return "–" if entry is None else ("YES" if entry.diverged else "no")


def format_table(rows: list[Row]) -> str:
    headers = ["variant", "baseline acc % ± CI", "current acc % ± CI", "change (points)", "band (points)",
               "diverged", "verdict"]
    body = [
        [
            row.variant,
            _accuracy(row.baseline),
            _accuracy(row.current),
            "–" if row.change is None else f"{row.change:+.2f}",
            "–" if row.band is None else f"{row.band:.2f}",
            f"{_flag(row.baseline)} → {_flag(row.current)}",
            row.verdict,
        ]
        for row in rows
    ]
    return markdown_table(headers, body)


def notes(noise: Noise, tolerance: float) -> list[str]:
    """How the bands were derived, and what they guarantee."""
    if not noise.measured:
        return [
            f"note: the baseline has a single seed per entry, so there is no spread to measure: s falls back "
            f"to 0 and the tolerance alone ({tolerance:g} points) is the band; no noise guarantee holds."
        ]
    return [
        f"note: band = max(tolerance {tolerance:g}, t * s * sqrt(1/n_base + 1/n_cur)) points, "
        f"t = {noise.t_crit:.3f} (one-sided, 1 - {noise.family_alpha:g}/{noise.m}, df = {noise.df}), "
        f"s = max(own baseline std, typical std {noise.typical_std * 100:.2f} points: the median of "
        f"{noise.entries} non-diverged baseline entries).",
        f"note: on an unchanged study the chance that any of the {noise.m} gated entries fails by noise is at "
        f"most ~{noise.family_alpha * 100:g} % (under normality, seeds as independent draws; "
        f"machine/backend changes act like new seeds).",
    ]


def summary(rows: list[Row], baseline: str) -> str:
    failed = [f"{row.variant} ({row.verdict})" for row in rows if row.failed]
    if failed:
        return f"check: FAIL: {len(failed)} of {len(rows)} against {baseline}: {'; '.join(failed)}"
    return f"check: PASS: {len(rows)} of {len(rows)} within their noise bands of {baseline}"


# --- reading one revision's summary ---

def parse_entry(name: str, raw: Any) -> Entry:
    """One entry of metrics/summary.json; a malformed one is a StudyError naming it."""
    where = f"{SUMMARY_METRICS}: {name!r}"
    if not isinstance(raw, dict) or not isinstance(raw.get("accuracy"), dict):
        raise StudyError(f"{where} has no accuracy spread (a mapping with mean, std, n, ...)")
    if not isinstance(raw.get("diverged"), bool):
        raise StudyError(f"{where}: 'diverged' must be true or false, got {raw.get('diverged')!r}")
    accuracy = raw["accuracy"]
    n = accuracy.get("n")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise StudyError(f"{where}: accuracy.n must be a count of seeds, got {n!r}")
    # null (the JSON writer's NaN) reads as None: an entry with no finite accuracy.
    return Entry(*(as_number(accuracy.get(k)) for k in ("mean", "std")), n,
                 *(as_number(accuracy.get(k)) for k in ("ci_low", "ci_high")), raw["diverged"])


def parse_summary(content: dict[str, Any]) -> Summary:
    return {name: parse_entry(name, raw) for name, raw in content.items()}


def revision_summary(files: dict, rev: str) -> Summary:
    """The MLP study's entries and, where the revision has it, every run of the transfer study."""
    entries = parse_summary(need_file(files, rev, SUMMARY_METRICS))
    transfer = files.get(rev, {}).get(TRANSFER_METRICS)
    if isinstance(transfer, dict) and isinstance(transfer.get("runs"), dict):
        entries |= {name: parse_entry(name, raw) for name, raw in transfer["runs"].items()}
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
                        help="the smallest band: accuracy points a variant may always lose "
                             "(default: params.yaml check.tolerance)")
    parser.add_argument("--family-alpha", type=probability, default=FAMILY_ALPHA, metavar="ALPHA",
                        help=f"chance that any entry of an unchanged study fails by noise (default: {FAMILY_ALPHA})")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    tolerance = params.load().check_tolerance if args.tolerance is None else args.tolerance
    files = metrics_by_rev([args.baseline])
    # A missing summary is an input error (exit 2), not a regression.
    baseline, current = (revision_summary(files, rev) for rev in (args.baseline, WORKSPACE))
    rows = gate(baseline, current, tolerance, args.family_alpha)
    print(f"Mean test accuracy over seeds: workspace vs {args.baseline} "
          f"(tolerance {tolerance:g} points, family alpha {args.family_alpha:g})\n")
    print(format_table(rows))
    print()
    for line in notes(noise_model(baseline, args.family_alpha), tolerance):
        print(line)
    print(summary(rows, args.baseline))
    if any(row.failed for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    run_stage(main)
