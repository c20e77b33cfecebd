"""Tests of the regression gate (nnstudy.check) and the revision comparison (nnstudy.compare)."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import scipy.stats

from nnstudy.check import (
    TRANSFER_METRICS, band_points, format_table, gate, noise_model, notes, parse_summary, revision_summary, summary,
)
from nnstudy.compare import FINAL, SUMMARY_METRICS, format_comparison
from nnstudy.core.errors import StudyError

ROOT = Path(__file__).resolve().parents[1]  # the project, for PYTHONPATH and params.yaml
VARIANTS = ["batch_online", "batch_mini", "batch_full", "rmsprop_rho0p01", "rmsprop_rho0p99"]


def entry(mean: float | None, std: float = 0.008, n: int = 3, diverged: bool = False, **extra) -> dict:
    """A summary.json entry: accuracy spread (0..1) over n seeds, CI from the t quantile."""
    half = float(scipy.stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n) if n > 1 and mean is not None else None
    accuracy = {"mean": mean, "std": std if n > 1 else 0.0, "min": mean, "max": mean, "n": n,
                "ci_low": None if half is None else mean - half, "ci_high": None if half is None else mean + half}
    return {"seeds": list(range(1, n + 1)), "diverged_seeds": n if diverged else 0, "diverged": diverged,
            "accuracy": accuracy, "loss": dict(accuracy), "f1_macro": dict(accuracy), **extra}


def study(std: float = 0.008, n: int = 3, shift: dict[str, float] | None = None) -> dict:
    """Five variants, the diverging sgd_mean10 and final; `shift` moves means by accuracy points."""
    shift = shift or {}
    raw = {name: entry(0.90 + i / 100 + shift.get(name, 0) / 100, std, n) for i, name in enumerate(VARIANTS)}
    raw["sgd_mean10"] = entry(0.098 + shift.get("sgd_mean10", 0) / 100, 0.002, n, diverged=True)
    raw[FINAL] = entry(0.97 + shift.get(FINAL, 0) / 100, std, n, config={"units": 256})
    return raw


def verdicts(rows) -> dict[str, str]:
    return {row.variant: row.verdict for row in rows}


def failed(rows) -> list[str]:
    return [row.variant for row in rows if row.failed]


# --- the band ---

def test_band_formula_matches_a_hand_computation():
    baseline = parse_summary({"a": entry(0.90, std=0.004), "b": entry(0.92, std=0.010, n=4),
                              "d": entry(0.91, std=0.006), "c": entry(0.10, std=0.2, diverged=True)})  # c: not pooled
    noise = noise_model(baseline, family_alpha=0.05)
    df = 2 + 3 + 2
    typical = 0.006  # the median of 0.004, 0.010, 0.006
    m = 3  # a, b and d are gated on accuracy; c only on its flag
    t = scipy.stats.t.ppf(1 - 0.05 / m, df)
    assert (noise.df, noise.m, noise.entries) == (df, m, 3)
    assert noise.typical_std == pytest.approx(typical) and noise.t_crit == pytest.approx(t)
    # a is quieter than typical: the typical std; b is noisier: its own
    assert band_points(baseline["a"], 3, noise, 0.1) == pytest.approx(t * typical * math.sqrt(1 / 3 + 1 / 3) * 100)
    assert band_points(baseline["b"], 2, noise, 0.1) == pytest.approx(t * 0.010 * math.sqrt(1 / 4 + 1 / 2) * 100)
    assert band_points(baseline["a"], 3, noise, 5.0) == 5.0  # the tolerance is the floor
    rows = {row.variant: row for row in gate(baseline, baseline, tolerance=0.1)}
    assert rows["a"].band == pytest.approx(band_points(baseline["a"], 3, noise, 0.1))
    assert rows["c"].band is None


def test_one_wild_variant_does_not_blunt_the_gate():
    """A variant ranging 20-77 % over seeds keeps its own wide band; the others keep theirs narrow."""
    quiet = {f"v{i}": entry(0.93, std=0.004) for i in range(8)}
    baseline = parse_summary({**quiet, "wild": entry(0.48, std=0.284)})
    current = parse_summary({**quiet, "v0": entry(0.886, std=0.004), "wild": entry(0.30, std=0.3)})
    rows = {row.variant: row for row in gate(baseline, current, tolerance=0.5)}
    assert rows["v0"].verdict == "REGRESSION"  # -4.4 points
    assert rows["wild"].verdict == "ok" and rows["wild"].band > 30


def test_unchanged_study_with_other_seeds_passes():
    # another machine: every mean moved by up to a point, seed-to-seed std 0.8 points
    moved = {"batch_online": -1.0, "batch_mini": +0.6, "batch_full": -0.7, "rmsprop_rho0p99": -0.9, FINAL: -0.8}
    rows = gate(parse_summary(study()), parse_summary(study(shift=moved)), tolerance=0.5)
    assert failed(rows) == [], format_table(rows)
    assert verdicts(rows)["batch_online"] == "ok"
    assert all(row.band > 1.0 for row in rows if row.band is not None)
    assert summary(rows, "HEAD").startswith("check: PASS")


def test_drop_beyond_the_band_fails():
    rows = gate(parse_summary(study(std=0.005)), parse_summary(study(std=0.005, shift={"batch_mini": -4.4})),
                tolerance=0.5)
    assert failed(rows) == ["batch_mini"]
    assert verdicts(rows)["batch_mini"] == "REGRESSION"
    line = next(line for line in format_table(rows).splitlines() if "batch_mini" in line)
    assert "-4.40" in line and "91.00 ± " in line and "86.60 ± " in line and "REGRESSION" in line
    assert summary(rows, "HEAD").startswith("check: FAIL: 1 of 7 against HEAD: batch_mini (REGRESSION)")


def test_diverged_flag_flip_fails_either_way():
    baseline = study()
    flipped = study()
    flipped["batch_mini"] = entry(0.91, diverged=True)
    flipped["sgd_mean10"] = entry(0.85)
    rows = gate(parse_summary(baseline), parse_summary(flipped), tolerance=0.5)
    assert verdicts(rows)["batch_mini"] == "NOW DIVERGES"
    assert verdicts(rows)["sgd_mean10"] == "NO LONGER DIVERGES"
    assert "no → YES" in format_table(rows) and "YES → no" in format_table(rows)


def test_diverged_variant_is_gated_only_on_its_flag():
    rows = gate(parse_summary(study()), parse_summary(study(shift={"sgd_mean10": -5.0})), tolerance=0.5)
    assert verdicts(rows)["sgd_mean10"] == "ok"
    assert next(row for row in rows if row.variant == "sgd_mean10").band is None


def test_missing_variant_fails_and_new_variant_passes():
    current = study()
    del current["batch_full"]
    current["rmsprop_l2_0p1"] = entry(0.5)
    rows = gate(parse_summary(study()), parse_summary(current), tolerance=0.5)
    assert verdicts(rows)["batch_full"] == "MISSING" and verdicts(rows)["rmsprop_l2_0p1"] == "new"
    assert failed(rows) == ["batch_full"]


def test_final_with_another_pick_within_band_passes_and_a_drop_fails():
    other_pick = study(shift={FINAL: -0.6})
    other_pick[FINAL] = entry(0.964, diverged=False, config={"units": 64, "learning_rate": 0.01})
    rows = gate(parse_summary(study()), parse_summary(other_pick), tolerance=0.5)
    assert verdicts(rows)[FINAL] == "ok" and rows[-1].variant == FINAL
    rows = gate(parse_summary(study()), parse_summary(study(shift={FINAL: -5.0})), tolerance=0.5)
    assert failed(rows) == [FINAL]


def test_improvement_passes():
    rows = gate(parse_summary(study()), parse_summary(study(shift={"batch_full": +5.0})), tolerance=0.5)
    assert verdicts(rows)["batch_full"] == "improved" and failed(rows) == []


def test_single_seed_baseline_falls_back_to_the_tolerance():
    baseline = parse_summary(study(n=1))
    noise = noise_model(baseline)
    assert noise.t_crit is None and noise.typical_std == 0.0
    within = gate(baseline, parse_summary(study(n=1, shift={"batch_mini": -0.5})), tolerance=0.5)
    assert failed(within) == []  # exactly the tolerance passes
    assert {row.band for row in within if row.band is not None} == {0.5}
    beyond = gate(baseline, parse_summary(study(n=1, shift={"batch_mini": -0.6})), tolerance=0.5)
    assert failed(beyond) == ["batch_mini"]
    assert "the tolerance alone (0.5 points) is the band" in notes(noise, 0.5)[0]
    assert "91.00 (n=1)" in format_table(within)


def test_notes_state_the_family_wise_guarantee():
    lines = notes(noise_model(parse_summary(study())), 0.5)
    assert "at most ~5 %" in lines[-1] and "of the 6 gated entries" in lines[-1]


def test_malformed_summary_is_an_input_error():
    with pytest.raises(StudyError, match="batch_mini"):
        parse_summary({"batch_mini": {"diverged": False}})
    with pytest.raises(StudyError, match="diverged"):
        parse_summary({"batch_mini": {**entry(0.9), "diverged": "no"}})
    nan_mean = parse_summary({"batch_mini": entry(None)})["batch_mini"]
    assert nan_mean.mean is None
    rows = gate(parse_summary(study()), {**parse_summary(study()), "batch_mini": nan_mean}, tolerance=0.5)
    assert verdicts(rows)["batch_mini"] == "NO ACCURACY"


# --- compare's table (unchanged by the gate) ---

def test_compare_table_has_one_column_per_revision():
    by_rev = {
        "workspace": {"batch_mini": {"accuracy": 0.91, "f1_macro": 0.9}, FINAL: {"accuracy": 0.97, "f1_macro": 0.96}},
        "HEAD": {"batch_mini": {"accuracy": 0.9, "f1_macro": "nan"}},
    }
    lines = format_comparison(by_rev, ["accuracy", "f1_macro"]).splitlines()
    header, rule, *body = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines]
    assert header == ["variant", "metric", "workspace", "HEAD"]
    assert all(set(cell) <= {"-", ":"} for cell in rule)  # a Markdown table
    assert body == [
        ["batch_mini", "accuracy", "0.9100", "0.9000"],
        ["batch_mini", "f1_macro", "0.9000", "nan"],
        [FINAL, "accuracy", "0.9700", "–"],
        [FINAL, "f1_macro", "0.9600", "–"],
    ]


def test_compare_reads_the_means_over_seeds_from_the_summary():
    from nnstudy.compare import variant_metrics

    summary = {"batch_mini": {"seeds": [1, 2], "diverged": False, "accuracy": {"mean": 0.9, "std": 0.01},
                              "f1_macro": {"mean": 0.89}}}
    assert variant_metrics({SUMMARY_METRICS: summary}) == {"batch_mini": {"accuracy": 0.9, "f1_macro": 0.89}}
    assert variant_metrics({}) == {}


# --- the real command line, in a throwaway DVC repository ---

DVC_YAML = f"""\
metrics:
  - {SUMMARY_METRICS}
"""


def write_summary(repo: Path, content: dict) -> None:
    path = repo / SUMMARY_METRICS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2))


def test_cli_passes_noise_fails_regression_and_rejects_unknown_baseline(tmp_path: Path):
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        DVC_NO_ANALYTICS="1",
    )

    def run(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"]
    assert run("git", "init", "-q").returncode == 0
    assert run(sys.executable, "-m", "dvc", "init", "-q").returncode == 0
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")  # the default tolerance
    write_summary(tmp_path, study())
    assert run(*git, "add", "-A").returncode == 0
    assert run(*git, "commit", "-q", "-m", "baseline").returncode == 0

    write_summary(tmp_path, study(shift={"batch_online": -1.0, "batch_mini": +0.5, FINAL: -0.7}))
    noise = run(sys.executable, "-m", "nnstudy.check")
    assert noise.returncode == 0, noise.stdout + noise.stderr
    lines = noise.stdout.strip().splitlines()
    assert lines[-1].startswith("check: PASS") and "at most ~5 %" in lines[-2]

    write_summary(tmp_path, study(shift={"batch_mini": -4.4}))
    regressed = run(sys.executable, "-m", "nnstudy.check", "--tolerance", "0.5", "--family-alpha", "0.05")
    assert regressed.returncode == 1, regressed.stdout + regressed.stderr
    assert "check: FAIL: 1 of 7 against HEAD: batch_mini (REGRESSION)" in regressed.stdout

    unknown = run(sys.executable, "-m", "nnstudy.check", "--baseline", "no-such-rev")
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == ["error: dvc cannot read the metrics: unknown Git revision 'no-such-rev'"]

    (tmp_path / SUMMARY_METRICS).unlink()
    missing = run(sys.executable, "-m", "nnstudy.check")
    assert missing.returncode == 2 and f"{SUMMARY_METRICS}: missing in the workspace" in missing.stderr


def test_transfer_runs_join_the_gate_where_the_revision_has_them():
    transfer = {"reference": "transfer_partial_10", "runs": {"transfer_partial_10": entry(0.72, std=0.01)}}
    old = {"HEAD": {SUMMARY_METRICS: study()}}
    new = {"workspace": {SUMMARY_METRICS: study(),
                         TRANSFER_METRICS: {**transfer, "runs": {"transfer_partial_10": entry(0.60, std=0.01)}}}}
    before = revision_summary(old, "HEAD")
    assert "transfer_partial_10" not in before  # an older revision without the transfer study
    assert verdicts(gate(before, revision_summary(new, "workspace"), 0.5))["transfer_partial_10"] == "new"
    baseline = revision_summary({"HEAD": {SUMMARY_METRICS: study(), TRANSFER_METRICS: transfer}}, "HEAD")
    assert failed(gate(baseline, revision_summary(new, "workspace"), 0.5)) == ["transfer_partial_10"]
