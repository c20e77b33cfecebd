"""The regression gate: the workspace's reproduced test metrics against a committed baseline.

    python -m nnstudy.check                          # workspace vs HEAD, params check.tolerance
    python -m nnstudy.check --baseline main --tolerance 1.0

Fails (exit 1) when a variant's test accuracy drops by more than the tolerance (accuracy
points: 0.5 = 0.005), its `diverged` flag flips either way, or a baseline variant is missing;
the tuned network is gated the same way when both sides have it. Exit 2: unreadable input.
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnstudy import params, paths
from nnstudy.compare import (
    EVALUATE_METRICS, FINAL, WORKSPACE, markdown_table, metrics_by_rev, need_file, variant_metrics,
)
from nnstudy.errors import run_stage
from nnstudy.jsonio import as_number

# {variant: {"accuracy": float | None, "diverged": bool | None}}
Outcomes = dict[str, dict[str, Any]]

PASSING = ("ok", "improved", "new")
EPSILON = 1e-9  # a drop of exactly the tolerance passes, whatever float rounding says


@dataclass(frozen=True)
class Row:
    variant: str
    baseline: float | None   # test accuracy, 0..1
    current: float | None
    baseline_diverged: bool | None
    current_diverged: bool | None
    verdict: str

    @property
    def change(self) -> float | None:
        return change_points(self.baseline, self.current)

    @property
    def failed(self) -> bool:
        return self.verdict not in PASSING


# --- pure comparison ---

def change_points(baseline: float | None, current: float | None) -> float | None:
    """Accuracy change in percentage points (0.9 -> 0.89 is -1.0)."""
    return None if baseline is None or current is None else (current - baseline) * 100


def verdict(base: dict[str, Any] | None, cur: dict[str, Any] | None, tolerance: float) -> str:
    """'ok', 'improved' and 'new' pass; the capitalised verdicts fail."""
    if cur is None:
        return "MISSING"
    if base is None:
        return "new"
    problems = []
    change = change_points(base.get("accuracy"), cur.get("accuracy"))
    if base.get("accuracy") is not None and cur.get("accuracy") is None:
        problems.append("NO ACCURACY")
    elif change is not None and change < -tolerance - EPSILON:
        problems.append("REGRESSION")
    b_div, c_div = base.get("diverged"), cur.get("diverged")
    if b_div is not None and c_div is not None and b_div != c_div:
        problems.append("NOW DIVERGES" if c_div else "NO LONGER DIVERGES")
    if problems:
        return ", ".join(problems)
    return "improved" if change is not None and change > tolerance + EPSILON else "ok"


def compare_metrics(baseline: Outcomes, current: Outcomes, tolerance: float) -> list[Row]:
    """One row per variant in either side, baseline order first; 'final' only when both have it."""
    names = [n for n in dict.fromkeys([*baseline, *current]) if n != FINAL]
    if FINAL in baseline and FINAL in current:  # the tuned network is gated only once both sides have it
        names.append(FINAL)
    rows = []
    for name in names:
        base, cur = baseline.get(name), current.get(name)
        b, c = base or {}, cur or {}
        rows.append(Row(name, b.get("accuracy"), c.get("accuracy"), b.get("diverged"), c.get("diverged"),
                        verdict(base, cur, tolerance)))
    return rows


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.2f}"


def _flag(value: bool | None) -> str:
    return "–" if value is None else ("YES" if value else "no")


def format_table(rows: list[Row]) -> str:
    headers = ["variant", "baseline acc %", "current acc %", "change (points)", "diverged", "verdict"]
    body = [
        [
            row.variant,
            _percent(row.baseline),
            _percent(row.current),
            "–" if row.change is None else f"{row.change:+.2f}",
            f"{_flag(row.baseline_diverged)} → {_flag(row.current_diverged)}",
            row.verdict,
        ]
        for row in rows
    ]
    return markdown_table(headers, body)


def summary(rows: list[Row], baseline: str, tolerance: float) -> str:
    failed = [f"{row.variant} ({row.verdict})" for row in rows if row.failed]
    if failed:
        return f"check: FAIL: {len(failed)} of {len(rows)} against {baseline}: {'; '.join(failed)}"
    return f"check: PASS: {len(rows)} of {len(rows)} within {tolerance:g} accuracy points of {baseline}"


# --- reading one revision's outcomes from its metrics files ---

def outcomes(files: dict[str, Any]) -> Outcomes:
    """{variant: accuracy and diverged flag} from the test metrics and each variant's training metrics."""
    result: Outcomes = {
        name: {"accuracy": as_number(metrics.get("accuracy")), "diverged": None}
        for name, metrics in variant_metrics(files).items()
    }
    for path, content in files.items():
        name = trained_variant(Path(path))
        if name in result and isinstance(content, dict) and isinstance(content.get("diverged"), bool):
            result[name]["diverged"] = content["diverged"]
    return result


def trained_variant(path: Path) -> str | None:
    """The variant whose training metrics (DVCLive folder) this file is, if it is one."""
    if path == paths.FINAL_DIR / "metrics.json":
        return FINAL
    if path.name == "metrics.json" and path.parent.parent == paths.TRAIN_DIR:
        return path.parent.name
    return None


# --- command line ---

def points(text: str) -> float:
    value = as_number(text)
    if value is None or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of accuracy points >= 0, got {text!r}")
    return value


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m nnstudy.check", description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="HEAD", metavar="REV",
                        help="commit, branch, tag or experiment to compare against (default: HEAD)")
    parser.add_argument("--tolerance", type=points, default=None, metavar="POINTS",
                        help="accuracy points a variant may lose (default: params.yaml check.tolerance)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    tolerance = params.load().check_tolerance if args.tolerance is None else args.tolerance
    files = metrics_by_rev([args.baseline])
    for rev in (WORKSPACE, args.baseline):
        need_file(files, rev, EVALUATE_METRICS)  # missing test metrics: an input error, not a regression
    rows = compare_metrics(outcomes(files[args.baseline]), outcomes(files[WORKSPACE]), tolerance)
    print(f"Test accuracy: workspace vs {args.baseline} (tolerance {tolerance:g} points)\n")
    print(format_table(rows))
    print()
    print(summary(rows, args.baseline, tolerance))
    if any(row.failed for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    run_stage(main)
