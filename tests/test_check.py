"""Tests of the regression gate (nnstudy.check): the band, the verdicts, reading revisions, the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scipy.special import polygamma

from nnstudy import check
from nnstudy.check import (
    FINAL, Entry, family_alarms, family_priors, fit_f_dist, format_table, gate, notes, parse_summary,
    parse_transfer, robust_prior, summary_line, tetragamma, trigamma, trigamma_inverse,
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


# --- the family's prior (limma's fitFDist) and the simulated critical values ---

def test_trigamma_and_its_inverse_match_scipy():
    x = np.geomspace(1e-3, 1e4, 500)
    assert trigamma(x) == pytest.approx(polygamma(1, x), rel=1e-8)
    assert tetragamma(x) == pytest.approx(polygamma(2, x), rel=1e-7)
    assert polygamma(1, trigamma_inverse(x)) == pytest.approx(x, rel=1e-7)


def test_fit_f_dist_recovers_a_known_prior_from_simulated_variances():
    """The reference: variances s^2 = sigma^2 chi2_d / d with sigma^2 = s0^2 d0 / chi2_d0 (limma's
    model); the fit must recover d0 and s0^2 from them."""
    rng = np.random.default_rng(0)
    for d0, s02, d in ((8.0, 2.0, 4), (3.0, 0.5e-4, 4), (20.0, 1.0, 10)):
        sigma2 = s02 * d0 / rng.chisquare(d0, (400, 300))
        variances = sigma2 * rng.chisquare(d, (400, 300)) / d
        got_s02, got_d0 = fit_f_dist(variances, np.full(variances.shape, float(d)))
        assert np.median(got_s02) == pytest.approx(s02, rel=0.05)
        assert np.median(got_d0) == pytest.approx(d0, rel=0.15)
    equal = rng.chisquare(4, (200, 300)) / 4            # one sigma for all: no spread beyond chi-square
    assert np.mean(np.isinf(fit_f_dist(equal, np.full(equal.shape, 4.0))[1])) > 0.3
    assert fit_f_dist(np.array([1.0, 2.0]), np.array([4, 4]))[1] == 0.0  # too few entries to fit


def test_a_collapsing_entry_is_an_outlier_left_out_of_its_family_prior():
    variances = np.array([1.0, 1.2, 0.8, 0.9, 1.1, 1.05, 0.95, 500.0]) * 1e-5
    s02, d0, outlier = robust_prior(variances, np.full(8, 4.0))
    assert outlier.tolist() == [False] * 7 + [True]
    assert s02 == pytest.approx(fit_f_dist(variances[:7], np.full(7, 4.0))[0])
    pairs = {f"v{i}": (Entry(tuple(around(0.9)), False, "mlp"), Entry(tuple(around(0.9)), False, "mlp")) for i in range(5)}
    pairs["wild"] = (Entry((0.2, 0.7, 0.77), False, "mlp"),) * 2
    pairs["t"] = (Entry((0.55, 0.65, 0.75), False, "transfer@10"),) * 2
    priors = family_priors(pairs)
    assert priors["mlp"].outliers == {"wild"} and "transfer@10" in priors


def simulated_alarms(sigmas: list[float], collapse: list[float], planted: float = 0.0, draws: int = 3000,
                     seed: int = 1) -> np.ndarray:
    """Which entries the gate alarms on in `draws` studies of one family (3 seeds a study, normal seed
    noise of sigmas points; an entry collapses to chance on a seed with its `collapse` probability),
    the first entry's current seeds moved by `planted` points, with the gate's own vectorised code."""
    from bench.gate_alternatives import studies

    rng = np.random.default_rng(seed)
    calm = np.zeros((draws, len(sigmas)), dtype=bool)
    base, now = studies(sigmas, collapse, draws, rng), studies(sigmas, collapse, draws, rng)
    now[:, 0] += planted / 100
    return family_alarms(base, now, calm, calm, 0.05, 0.0)


def test_the_gate_simulated_holds_its_family_wise_rate():
    """12 entries (the MLP family's size) at 3 seeds a study: one noise size for all, the MLP's
    spread of noise sizes (0.35-1.6 points), and one entry that collapses on a fifth of its seeds:
    4-6 % of 3,000 unchanged studies alarm in each case (measured 4.3 %, 5.2 %, 4.7 %; the gate with
    its prior uncapped gave 3.2 %, 6.3 %, 3.6 %)."""
    equal = simulated_alarms([0.46] * 12, [0.0] * 12).any(axis=1).mean()
    unequal = simulated_alarms(list(np.geomspace(0.35, 1.6, 12)), [0.0] * 12).any(axis=1).mean()
    collapsing = simulated_alarms([0.46] * 12, [0.0] * 11 + [0.2]).any(axis=1).mean()
    assert 0.04 <= equal <= 0.06 and 0.04 <= unequal <= 0.06 and 0.04 <= collapsing <= 0.06


def test_the_family_prior_buys_power_over_each_entry_alone(monkeypatch):
    """The shrinkage, capped as it is, still pays: the planted -1.65 points on one entry of 12 at
    0.46 points of noise is caught in ~69 % of 3,000 studies, against ~46 % with each entry's own
    variance alone (no prior)."""
    shrunk = simulated_alarms([0.46] * 12, [0.0] * 12, planted=-1.65, seed=2)[:, 0].mean()
    monkeypatch.setattr(check, "PRIOR_DF_CAP", 0.0)
    check.grid_critical.cache_clear()  # its critical values were simulated with the committed cap
    try:
        alone = simulated_alarms([0.46] * 12, [0.0] * 12, planted=-1.65, seed=2)[:, 0].mean()
    finally:
        check.grid_critical.cache_clear()
    assert shrunk > 0.6 and alone < 0.55 and shrunk - alone > 0.1


def test_the_vectorised_gate_agrees_with_gate():
    rng = np.random.default_rng(5)
    base, now = rng.normal(0.9, 0.005, (4, 6, 3)), rng.normal(0.9, 0.005, (4, 6, 3))
    now[1, 2] -= 0.05  # one regression
    calm = np.zeros((4, 6), dtype=bool)
    fast = family_alarms(base, now, calm, calm, 0.05, 0.5)
    for k in range(4):
        rows = gate({f"e{i}": Entry(tuple(base[k, i]), False, "mlp") for i in range(6)},
                    {f"e{i}": Entry(tuple(now[k, i]), False, "mlp") for i in range(6)}, 0.5)
        assert [row.failed for row in rows] == fast[k].tolist()
    assert fast[1, 2]  # the regression (study 0's entry 1, -0.85 points on seeds that agree by luck, alarms too)


def test_one_wild_seed_does_not_fail_an_unchanged_study():
    current = study()
    current["batch_mini"] = entry([0.91 - 0.006, 0.12, 0.91 + 0.007])  # one seed collapsed, the median holds
    assert failed(gate(parse_summary(study()), parse_summary(current), 0.5)) == []


def test_a_wild_entry_does_not_blunt_the_others():
    baseline, current = study(), study(shift={"batch_mini": -5.0})
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
    assert lucky.band.points > 6.0  # the rule before the moderated one gave ~2.7 points here


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
    assert "median" in text and "fitFDist" in text and "family" in text
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
