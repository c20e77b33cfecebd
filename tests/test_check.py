"""Tests of the regression gate (nnstudy.check): the band, the verdicts, reading revisions, the CLI."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from nnstudy.check import (
    FINAL, PRIOR_DF, Entry, band, family_variances, format_table, gate, median_variance, notes, parse_summary,
    parse_transfer, summary_line,
)
from nnstudy.core import paths
from nnstudy.core.errors import StudyError

ROOT = Path(__file__).resolve().parents[1]  # the project, for PYTHONPATH and params.yaml
VARIANTS = ["batch_online", "batch_mini", "batch_full", "rmsprop_rho0p01", "rmsprop_rho0p99"]
WIGGLE = (-0.006, 0.0, 0.007)  # three seeds around a mean: std ~0.0065


def entry(values: list[float], diverged: bool = False, **extra) -> dict:
    """A summary entry as stages.summarize writes it (accuracy spread with per-seed values)."""
    array = np.asarray(values, dtype=float)
    accuracy = {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
                "n": len(values), "min": float(array.min()), "max": float(array.max()),
                "ci_low": None, "ci_high": None, "values": list(map(float, values))}
    return {"seeds": list(range(1, len(values) + 1)), "diverged": diverged,
            "diverged_seeds": len(values) if diverged else 0, "accuracy": accuracy, **extra}


def around(mean: float, wiggle=WIGGLE) -> list[float]:
    return [mean + w for w in wiggle]


def study(shift: dict[str, float] | None = None, wiggle=WIGGLE) -> dict:
    """Five variants, the diverging sgd_mean10 and final; `shift` moves every seed by accuracy points."""
    shift = shift or {}
    raw = {name: entry(around(0.90 + i / 100 + shift.get(name, 0) / 100, wiggle)) for i, name in enumerate(VARIANTS)}
    raw["sgd_mean10"] = entry(around(0.098 + shift.get("sgd_mean10", 0) / 100, (0, 0.001, 0.002)), diverged=True)
    raw[FINAL] = entry(around(0.97 + shift.get(FINAL, 0) / 100, wiggle))
    return raw


def verdicts(rows) -> dict[str, str]:
    return {row.name: row.verdict for row in rows}


def failed(rows) -> list[str]:
    return [row.name for row in rows if row.failed]


# --- the band ---

def test_median_variance_matches_a_simulation():
    draws = np.random.default_rng(7).standard_normal((200_000, 3))
    assert median_variance(3) == pytest.approx(np.median(draws, axis=1).var(), rel=0.02)
    assert median_variance(2) == 0.5 and median_variance(40) == pytest.approx(math.pi / 80)


def test_band_formula_matches_a_hand_computation():
    base = Entry((0.90, 0.91, 0.92), False, "mlp")
    cur = Entry((0.89, 0.90, 0.93), False, "mlp")
    family = 0.005 ** 2
    got = band(base, cur, family, m=4, alpha=0.05, tolerance=0.1)
    own = (np.var(base.values, ddof=1) * 2 + np.var(cur.values, ddof=1) * 2) / 4
    s2 = (PRIOR_DF * family + 4 * own) / (PRIOR_DF + 4)
    t = scipy.stats.t.ppf(1 - 0.05 / 4, PRIOR_DF + 4)
    assert got.points == pytest.approx(t * math.sqrt(s2 * 2 * median_variance(3)) * 100)
    assert got.df == PRIOR_DF + 4 and got.t == pytest.approx(t)


def test_families_pool_apart_and_leave_an_outlier_out():
    pairs = {f"v{i}": (Entry(tuple(around(0.9)), False, "mlp"), Entry(tuple(around(0.9)), False, "mlp")) for i in range(5)}
    wild = Entry((0.2, 0.7, 0.77), False, "mlp")
    pairs["wild"] = (wild, wild)
    noisy = Entry((0.55, 0.65, 0.75), False, "transfer@10")
    pairs["t"] = (noisy, noisy)
    pooled = family_variances(pairs)
    median_of_chi2 = scipy.stats.chi2.ppf(0.5, 4) / 4  # each entry's variance has 4 df (3 + 3 seeds)
    assert pooled["mlp"] == pytest.approx(np.var(around(0.9), ddof=1) / median_of_chi2)  # the wild entry did not widen it
    assert pooled["transfer@10"] == pytest.approx(0.01 / median_of_chi2)                  # nor did the transfer runs


def test_one_wild_seed_does_not_fail_an_unchanged_study():
    current = study()
    current["batch_mini"] = entry([0.91 - 0.006, 0.12, 0.91 + 0.007])  # one seed collapsed, the median holds
    assert failed(gate(parse_summary(study()), parse_summary(current), 0.5)) == []


def test_a_wild_entry_does_not_blunt_the_others():
    baseline, current = study(), study(shift={"batch_mini": -3.0})
    for raw in (baseline, current):
        raw["rmsprop_l1_dropout"] = entry([0.2, 0.7, 0.77])
    assert failed(gate(parse_summary(baseline), parse_summary(current), 0.5)) == ["batch_mini"]


def test_lucky_agreeing_seeds_do_not_make_a_narrow_band():
    """A baseline whose three seeds agree by luck, against a current run as noisy as its family."""
    baseline = {f"t{i}": entry(around(0.70, (-0.06, 0.0, 0.06))) for i in range(4)}
    baseline["lucky"] = entry([0.69, 0.70, 0.705])
    current = dict(baseline, lucky=entry([0.59, 0.64, 0.70]))
    rows = gate(parse_transfer({"runs": baseline}), parse_transfer({"runs": current}), 0.5)
    assert verdicts(rows)["lucky"] == "ok"
    lucky = next(row for row in rows if row.name == "lucky")
    assert lucky.band.points > 6.0  # the old rule gave ~2.7 points here


def test_unchanged_study_with_other_seeds_passes():
    other = study(wiggle=(0.004, -0.008, 0.001))
    assert failed(gate(parse_summary(study()), parse_summary(other), 0.5)) == []


def test_drop_beyond_the_band_fails():
    rows = gate(parse_summary(study()), parse_summary(study(shift={"batch_mini": -5.0})), 0.5)
    assert failed(rows) == ["batch_mini"]
    assert verdicts(rows)["batch_mini"] == "REGRESSION"


def test_diverged_flag_flip_fails_either_way():
    baseline = study()
    now_diverges = study()
    now_diverges["batch_full"] = entry(around(0.92), diverged=True)
    assert verdicts(gate(parse_summary(baseline), parse_summary(now_diverges), 0.5))["batch_full"] == "NOW DIVERGES"
    recovered = study()
    recovered["sgd_mean10"] = entry(around(0.5))
    assert verdicts(gate(parse_summary(baseline), parse_summary(recovered), 0.5))["sgd_mean10"] == "NO LONGER DIVERGES"


def test_diverged_variant_is_gated_only_on_its_flag():
    rows = gate(parse_summary(study()), parse_summary(study(shift={"sgd_mean10": -5.0})), 0.5)
    row = next(r for r in rows if r.name == "sgd_mean10")
    assert row.band is None and row.verdict == "ok"


def test_missing_variant_fails_and_new_variant_passes():
    current = study()
    del current["batch_full"]
    current["wide"] = entry(around(0.95))
    result = verdicts(gate(parse_summary(study()), parse_summary(current), 0.5))
    assert result["batch_full"] == "MISSING" and result["wide"] == "new"


def test_final_with_another_pick_within_band_passes_and_a_drop_fails():
    assert failed(gate(parse_summary(study()), parse_summary(study(shift={FINAL: -0.4})), 0.5)) == []
    assert failed(gate(parse_summary(study()), parse_summary(study(shift={FINAL: -6.0})), 0.5)) == [FINAL]


def test_improvement_passes():
    assert verdicts(gate(parse_summary(study()), parse_summary(study(shift={"batch_mini": 6.0})), 0.5))["batch_mini"] == "improved"


def test_single_seeds_fall_back_to_the_tolerance():
    baseline = parse_summary({"a": entry([0.90])})
    rows = gate(baseline, parse_summary({"a": entry([0.893])}), 0.5)
    assert rows[0].band.points == 0.5 and failed(rows) == ["a"]


def test_a_summary_without_per_seed_values_reads_as_its_mean_and_std():
    raw = entry([0.90, 0.91, 0.92])
    del raw["accuracy"]["values"]
    parsed = parse_summary({"a": raw})["a"]
    assert parsed.n == 3 and parsed.median == pytest.approx(0.91)
    assert np.std(parsed.values, ddof=1) == pytest.approx(0.01)


def test_table_and_notes_say_which_test_ran():
    rows = gate(parse_summary(study()), parse_summary(study()), 0.5)
    table = format_table(rows)
    assert "batch_mini" in table and "| mlp" in table
    text = " ".join(notes(rows, 0.05, 0.5))
    assert "median" in text and "1 - 0.05/6" in text and "family" in text
    assert summary_line(rows, "HEAD") == "check: PASS: 7 of 7 within their noise bands of HEAD"


@pytest.mark.parametrize("content, message", [
    ([1, 2], "not a summary"),
    ({}, "not a summary"),
    ({"batch_mini": {"diverged": False}}, "'batch_mini' has no accuracy spread"),
    ({"batch_mini": {"accuracy": {"n": "three"}, "diverged": False}}, "accuracy.n must be a count"),
    ({"batch_mini": {"accuracy": {"n": 3}, "diverged": "no"}}, "'diverged' must be true or false"),
])
def test_malformed_summary_is_an_input_error(content, message):
    with pytest.raises(StudyError, match=message):
        parse_summary(content)


def test_transfer_runs_form_a_family_per_labels_value():
    runs = {"transfer_partial_10": entry([0.7, 0.72, 0.71], recipe={"labels": 10}),
            "transfer_partial_50": entry([0.9, 0.92, 0.91], recipe={"labels": 50})}
    parsed = parse_transfer({"runs": runs})
    assert parsed["transfer_partial_10"].family == "transfer@10"
    assert parsed["transfer_partial_50"].family == "transfer@50"
    with pytest.raises(StudyError, match="not a transfer summary"):
        parse_transfer({"reference": "x"})


# --- the command line, on a real git repository ---

def write(repo: Path, relative: Path, content) -> None:
    path = repo / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2) if not isinstance(content, str) else content)


def test_cli_passes_noise_fails_regression_and_says_what_is_wrong(tmp_path: Path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), DVC_NO_ANALYTICS="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")

    def run(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"]
    assert run("git", "init", "-q").returncode == 0
    assert run(sys.executable, "-m", "dvc", "init", "-q").returncode == 0
    (tmp_path / "params.yaml").write_bytes((ROOT / "params.yaml").read_bytes())  # the default tolerance
    write(tmp_path, paths.SUMMARY, study())
    transfer = {"runs": {"transfer_partial_10": entry([0.70, 0.72, 0.74], recipe={"labels": 10})}}
    write(tmp_path, paths.TRANSFER_SUMMARY, transfer)
    assert run(*git, "add", "-A").returncode == 0
    assert run(*git, "commit", "-q", "-m", "baseline").returncode == 0

    write(tmp_path, paths.SUMMARY, study(shift={"batch_online": -1.0, "batch_mini": +0.5, FINAL: -0.7}))
    noise = run(sys.executable, "-m", "nnstudy.check")
    assert noise.returncode == 0, noise.stdout + noise.stderr
    lines = noise.stdout.strip().splitlines()
    assert lines[-1] == "check: PASS: 8 of 8 within their noise bands of HEAD"
    assert lines[-3].startswith("note: test: median accuracy")

    write(tmp_path, paths.SUMMARY, study(shift={"batch_mini": -4.4}))
    regressed = run(sys.executable, "-m", "nnstudy.check", "--tolerance", "0.5", "--family-alpha", "0.05")
    assert regressed.returncode == 1, regressed.stdout + regressed.stderr
    assert "check: FAIL: 1 of 8 against HEAD: batch_mini (REGRESSION)" in regressed.stdout

    unknown = run(sys.executable, "-m", "nnstudy.check", "--baseline", "no-such-rev")
    assert unknown.returncode == 2
    assert "no-such-rev" in unknown.stderr and "no such commit, branch, tag or experiment" in unknown.stderr

    for content, message in (([1, 2], "not a summary"), ("{not json", "not JSON")):
        write(tmp_path, paths.SUMMARY, content)
        bad = run(sys.executable, "-m", "nnstudy.check")
        assert bad.returncode == 2 and message in bad.stderr, bad.stdout + bad.stderr

    (tmp_path / paths.SUMMARY).unlink()
    missing = run(sys.executable, "-m", "nnstudy.check")
    assert missing.returncode == 2 and f"{paths.SUMMARY}: missing in the workspace" in missing.stderr
