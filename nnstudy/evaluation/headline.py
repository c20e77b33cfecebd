"""Headline metrics: the few numbers `dvc exp show` and `dvc metrics diff` show (pure functions).

DVC shows every value of every file that dvc.yaml declares as a metric, one column each. Declaring
the full summaries made `dvc exp show` 6,721 columns wide, so the metrics files hold only what a
user compares between experiments (about 55 values); every detail (per seed, per class, per epoch,
timings) stays a plain output under results/, where the report and the gate read it.

Values are rounded to 4 decimals: a column of 0.9233 reads, and a change below that is noise.
"""

from collections.abc import Mapping
from typing import Any

DIGITS = 4


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), DIGITS)


def accuracy_cell(entry: Mapping[str, Any]) -> dict[str, float | None]:
    """Mean test accuracy over seeds and the half-width of its confidence interval.

    A diverged variant keeps its (chance-level) mean; its flag stays in the full summary.
    """
    accuracy = entry["accuracy"]
    low, high = accuracy.get("ci_low"), accuracy.get("ci_high")
    half = None if low is None or high is None else (high - low) / 2
    return {"acc": _round(accuracy.get("mean")), "ci": _round(half)}


def study_headline(summary: Mapping[str, Mapping[str, Any]], significant: int) -> dict[str, Any]:
    """Per variant and the tuned network: accuracy and CI; then three study-wide figures (the number
    of seeds, of diverged variants, and of the report's differences that are significant)."""
    headline: dict[str, Any] = {name: accuracy_cell(entry) for name, entry in summary.items()}
    seeds = max((entry["accuracy"].get("n") or 0 for entry in summary.values()), default=0)
    headline["study"] = {
        "seeds": seeds,
        "diverged_variants": sum(bool(entry.get("diverged")) for entry in summary.values()),
        "significant": significant,
    }
    return headline


def best_point(points: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The sweep value with the highest mean *validation* accuracy (test accuracy would pick the
    test set's lucky point and then report it on that same test set: the winner's curse)."""
    scored = {value: p.get("val_accuracy", {}).get("mean") for value, p in points.items()}
    scored = {value: score for value, score in scored.items() if score is not None}
    return max(scored, key=scored.get) if scored else None


def sweeps_headline(sweeps: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Per axis: the best value (on validation) and its mean test accuracy."""
    headline = {}
    for axis, points in sweeps.items():
        best = best_point(points)
        headline[axis] = {"best": best, "acc": None if best is None else _round(points[best]["accuracy"]["mean"])}
    return headline


def openset_headline(openset: Mapping[str, Any], methods: tuple[str, ...]) -> dict[str, float | None]:
    """AUROC (known vs unknown, mean over seeds) per method."""
    return {method: _round(openset[method]["summary"]["auroc"]["mean"]) for method in methods}


def transfer_headline(arm_runs: Mapping[str, Mapping[str, str]], runs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Mean test accuracy of each arm at each labels value: {"partial_10": 0.7133, ...}."""
    return {f"{arm}_{labels}": _round(runs[run]["accuracy"]["mean"])
            for labels, arms in arm_runs.items() for arm, run in arms.items()}
