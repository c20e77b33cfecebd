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

The test, per entry, is a moderated t on medians. Measured on replicate studies from two machines
(every MLP variant over 9 seeds, every transfer run over 24; 2,000 random draws of two disjoint
studies with each family's own seed count; bench/gate_calibration.json): an unchanged study fails
by noise in 4.9 % of the draws (the rule before this one: 23 %) and in none of the 6 replicate
pairs (before: 2). A `batch_mini` trained 3 epochs (-4.8 points) fails every time; one trained 10
epochs (-1.65 points) a third of the time. A transfer run at 10 labels per class swings ~6 points
between seeds: with the 6 seeds the study trains there (transfer.min_seeds) the gate fails a
frozen base in place of `partial` (-8.7 points) in 20 % of the draws; the report's verdict, one
pair at a time, calls it worse in 71 %.
- *Median*, not mean: one wild seed (a collapse) moves a mean of three by a third of its fall,
  and would fail an unchanged study; the median of three ignores it.
- *Noise per family*: entries that share a noise size are pooled, the MLP networks apart from
  the transfer runs at each labels value (3-15 points between seeds at 10 labels, 0.2-1.7 for
  an MLP variant). A pool of both studies set the MLP bands by the transfer runs' noise.
- *Both runs' spread*: each entry's own variance, from the baseline's and the current seeds
  together, is shrunk toward its family's pooled variance (empirical Bayes, as limma's moderated
  t): s² = (d0 s_f² + d s_own²) / (d0 + d) with d0 = PRIOR_DF, and t has d0 + d degrees of
  freedom. An entry noisier than its family gets a wider band; three seeds that agree by luck
  do not get a narrow one. The family's variance s_f² is its median entry's (scaled to
  estimate sigma²), so that one variant at the edge of collapse does not widen every other band.
- band = max(tolerance, t(1 - alpha/m, d0 + d) * s * sqrt(c(n_base) + c(n_now))) points, with
  c(n) the variance of a median of n normal draws in units of sigma^2 (1/n for n <= 2) and m the
  number of entries gated on accuracy (Bonferroni: the family-wise false-alarm rate stays near
  alpha across all entries).
"""

import argparse
import json
import math
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scipy import stats as scipy_stats

from nnstudy.core import params, paths
from nnstudy.core.errors import StudyError, run_stage
from nnstudy.core.jsonio import as_number
from nnstudy.report.tables import markdown_table

WORKSPACE = "workspace"
FINAL = paths.FINAL
FAMILY_ALPHA = 0.05
PRIOR_DF = 4          # d0: the family's variance counts like 4 degrees of freedom of the entry's own
PASSING = ("ok", "improved", "new")
EPSILON = 1e-9        # a drop of exactly the band passes, whatever float rounding says
MLP_FAMILY = "mlp"
# Where each revision keeps its summaries; older revisions kept them under metrics/.
SUMMARY_FILES = (str(paths.SUMMARY), "metrics/summary.json")
TRANSFER_FILES = (str(paths.TRANSFER_SUMMARY), "metrics/transfer/summary.json")

# Var(median of n standard normal draws): exact for n <= 2 (the mean), Monte Carlo (10^6 draws)
# for 3..9 (numpy, seed 0), and the large-n limit pi / (2n) beyond.
_MEDIAN_VARIANCE = {1: 1.0, 2: 0.5, 3: 0.4484, 4: 0.2983, 5: 0.2865, 6: 0.2149, 7: 0.2102, 8: 0.1680, 9: 0.1662}


def median_variance(n: int) -> float:
    return _MEDIAN_VARIANCE.get(n, math.pi / (2 * n))


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
    s: float        # the moderated std, accuracy 0..1
    df: float
    t: float


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


def family_variances(pairs: Mapping[str, tuple[Entry, Entry]]) -> dict[str, float]:
    """Per family: the variance of its median entry (both runs' seeds), as an estimate of sigma^2."""
    by_family: dict[str, list[tuple[float, int]]] = {}
    for name, (base, cur) in pairs.items():
        if base.diverged or cur.diverged:
            continue
        variance, df = own_variance(base, cur)
        if df:
            by_family.setdefault(base.family, []).append((variance, df))
    pooled = {}
    for family, members in by_family.items():
        # The median entry's variance, scaled by the median of chi2_d / d so that it estimates sigma^2
        # (a plain mean of variances is dominated by the family's noisiest entry).
        df = round(statistics.median(d for _, d in members))
        pooled[family] = statistics.median(v for v, _ in members) / (scipy_stats.chi2.ppf(0.5, df) / df)
    return pooled


def band(base: Entry, cur: Entry, family_variance: float | None, m: int, alpha: float, tolerance: float) -> Band:
    variance, df = own_variance(base, cur)
    prior_df = PRIOR_DF if family_variance is not None else 0
    total_df = prior_df + df
    if total_df == 0:  # single seeds everywhere: no noise to measure, the tolerance alone
        return Band(tolerance, 0.0, 0, math.inf)
    s2 = ((prior_df * (family_variance or 0.0)) + df * variance) / total_df
    t = float(scipy_stats.t.ppf(1 - alpha / m, total_df))
    points = t * math.sqrt(s2 * (median_variance(base.n) + median_variance(cur.n))) * 100
    return Band(max(tolerance, points), math.sqrt(s2), total_df, t)


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
    variances = family_variances(both)
    rows = []
    for name in names:
        base, cur = baseline.get(name), current.get(name)
        entry_band = None
        if name in gated:
            entry_band = band(base, cur, variances.get(base.family), len(gated), family_alpha, tolerance)
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
        f"{tolerance:g}, t * s * sqrt(c(n_base) + c(n_now))) points, t at 1 - {family_alpha:g}/{m} (Bonferroni over "
        f"the {m} entries gated on accuracy), s = each entry's own std over both runs' seeds shrunk toward "
        f"its family's pooled std (prior df {PRIOR_DF}).",
        "note: why: medians, so one wild seed does not fail a run; families (MLP; transfer runs per labels "
        "value), so one study's noise does not set the other's bands; both runs' spread, so seeds that "
        "agree by luck do not make a band narrow. Measured false alarms and power: bench/gate_calibration.json.",
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
