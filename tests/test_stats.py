"""Tests of nnstudy.evaluation.stats against hand computations and the reference libraries."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import scipy.special
import scipy.stats
from mlxtend.evaluate import mcnemar as mlxtend_mcnemar
from statsmodels.stats.contingency_tables import mcnemar as statsmodels_mcnemar

from statsmodels.stats.weightstats import ttost_ind

from nnstudy.evaluation.stats import (
    COMPARE_COLUMNS, best_variant, compare, difference_interval, holm, mcnemar_p, paired_p, seeds_agree,
    seedwise_mcnemar, series_finding, spread, sampling_points, tost_p, welch_p,
)


# --- spread ---

def test_spread_matches_a_hand_computed_t_interval():
    result = spread([0.91, 0.93, 0.95])
    # mean 0.93, s = 0.02, t(0.975, df=2) = 4.3027 from a t table: half-width 4.3027 * 0.02 / sqrt(3)
    half = 4.3027 * 0.02 / math.sqrt(3)
    assert result["mean"] == pytest.approx(0.93)
    assert result["std"] == pytest.approx(0.02)
    assert (result["min"], result["max"], result["n"]) == (pytest.approx(0.91), pytest.approx(0.95), 3)
    assert result["ci_low"] == pytest.approx(0.93 - half, abs=1e-5)
    assert result["ci_high"] == pytest.approx(0.93 + half, abs=1e-5)
    # 90 %: t(0.95, df=2) = 2.9200
    assert spread([0.91, 0.93, 0.95], confidence=0.90)["ci_high"] == pytest.approx(0.93 + 2.92 * 0.02 / math.sqrt(3), abs=1e-5)


def test_spread_drops_non_finite_values_and_is_json_ready():
    result = spread([0.9, float("nan"), 0.92, float("inf")])
    assert result["n"] == 2 and result["mean"] == pytest.approx(0.91)
    assert all(type(v) in (float, int) for v in result.values())
    json.dumps(result, allow_nan=False)  # plain Python numbers, no NaN


def test_spread_of_one_value_has_no_interval_and_of_none_no_numbers():
    assert spread([0.9]) == {"mean": 0.9, "std": 0.0, "min": 0.9, "max": 0.9, "n": 1, "ci_low": None, "ci_high": None}
    assert spread([float("nan")])["n"] == 0 and spread([])["mean"] is None
    constant = spread([0.9, 0.9, 0.9])
    assert constant["std"] == 0.0 and constant["ci_low"] == constant["ci_high"] == 0.9
    assert spread([0.9, 0.9, 0.9], bounded=True)["ci_low"] == 0.9


def test_a_bounded_spread_stays_on_the_scale_and_is_the_logit_t_interval():
    """Three seeds of which one collapsed: the plain t-interval runs past both ends of [0, 1]."""
    seeds = [0.93, 0.10, 0.42]
    plain, bounded = spread(seeds), spread(seeds, bounded=True)
    assert plain["ci_low"] < 0 and plain["ci_high"] > 1
    assert 0 < bounded["ci_low"] < min(seeds) and max(seeds) < bounded["ci_high"] < 1
    z = scipy.special.logit(seeds)
    half = scipy.stats.t.ppf(0.975, 2) * z.std(ddof=1) / math.sqrt(3)
    assert bounded["ci_low"] == pytest.approx(scipy.special.expit(z.mean() - half))
    assert bounded["ci_high"] == pytest.approx(scipy.special.expit(z.mean() + half))


def test_a_difference_interval_stays_within_100_points_and_is_near_welch_for_tight_seeds():
    collapsed = difference_interval([0.93, 0.935, 0.94], [0.93, 0.10, 0.42])
    assert -100 <= collapsed[0] < -30 and 0 < collapsed[1] <= 100
    a, b = [0.930, 0.935, 0.940, 0.933, 0.937, 0.931], [0.921, 0.925, 0.930, 0.922, 0.927, 0.926]
    welch = scipy.stats.ttest_ind(b, a, equal_var=False).confidence_interval()
    low, high = difference_interval(a, b)
    assert low < (np.mean(b) - np.mean(a)) * 100 < high < 0  # a clear drop is an interval below zero
    assert low == pytest.approx(welch.low * 100, rel=0.25) and high == pytest.approx(welch.high * 100, rel=0.25)
    assert all(math.isnan(v) for v in difference_interval([0.9], [0.8, 0.85]))


def test_sampling_is_the_binomial_standard_error():
    # The figure: 1,000 test images at 93 % give 0.81 points.
    assert sampling_points(0.93, 1000) == pytest.approx(0.807, abs=1e-3)


# --- McNemar ---

def predictions_with_table(both: int, only_a: int, only_b: int, neither: int) -> tuple[np.ndarray, ...]:
    """Labels and two classifiers' predictions whose correctness contingency table is the given one."""
    n = both + only_a + only_b + neither
    y_true = np.arange(n) % 10
    wrong = (y_true + 1) % 10
    a_right = np.r_[np.ones(both + only_a, bool), np.zeros(only_b + neither, bool)]
    b_right = np.r_[np.ones(both, bool), np.zeros(only_a, bool), np.ones(only_b, bool), np.zeros(neither, bool)]
    return y_true, np.where(a_right, y_true, wrong), np.where(b_right, y_true, wrong)


def test_mcnemar_matches_statsmodels_mlxtend_and_the_binomial():
    y_true, pred_a, pred_b = predictions_with_table(50, 12, 3, 5)
    table = np.array([[50, 12], [3, 5]])
    p = mcnemar_p(y_true, pred_a, pred_b)
    assert p == pytest.approx(statsmodels_mcnemar(table, exact=True).pvalue)
    assert p == pytest.approx(mlxtend_mcnemar(table, exact=True)[1])
    assert p == pytest.approx(2 * (1 + 15 + 105 + 455) / 2**15)  # 2 * P(X <= 3), X ~ Bin(15, 1/2)
    assert mcnemar_p(y_true, pred_b, pred_a) == pytest.approx(p)  # symmetric


def test_mcnemar_is_one_when_the_classifiers_never_disagree_in_correctness():
    y_true, pred_a, _ = predictions_with_table(40, 0, 0, 10)
    other_wrong = np.where(pred_a == y_true, y_true, (y_true + 2) % 10)  # wrong differently, same correctness
    assert mcnemar_p(y_true, pred_a, other_wrong) == 1.0
    with pytest.raises(ValueError):
        mcnemar_p(y_true, pred_a, pred_a[:-1])


def test_seedwise_mcnemar_pairs_seeds_and_takes_the_max():
    y1, a1, b1 = predictions_with_table(50, 12, 3, 5)
    _, a2, b2 = predictions_with_table(50, 20, 0, 0)
    result = seedwise_mcnemar(y1, {1: a1, 2: a2, 3: a1}, {1: b1, 2: b2, 4: b1})
    assert set(result["p_per_seed"]) == {1, 2}  # seeds 3 and 4 have no partner
    assert result["p_per_seed"][1] == pytest.approx(mcnemar_p(y1, a1, b1))
    assert result["p"] == max(result["p_per_seed"].values()) == result["p_per_seed"][1]
    assert math.isnan(seedwise_mcnemar(y1, {1: a1}, {2: b1})["p"])


# --- Welch and Holm ---

def test_welch_matches_scipy_and_defines_degenerate_cases():
    a, b = [0.91, 0.93, 0.92], [0.88, 0.90, 0.86, 0.87]
    assert welch_p(a, b) == pytest.approx(scipy.stats.ttest_ind(a, b, equal_var=False).pvalue)
    # Both sides constant (diverged against diverged): no noise to test against, no test.
    assert math.isnan(welch_p([0.9, 0.9, 0.9], [0.9, 0.9])) and math.isnan(welch_p([0.9, 0.9, 0.9], [0.8, 0.8]))
    assert math.isnan(welch_p([0.9], [0.8, 0.85]))
    assert math.isnan(welch_p([0.9, float("nan")], [0.8, 0.85]))  # one finite value left


def test_holm_matches_the_textbook_and_skips_nan():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.01, float("nan"), 0.04])  # a family of two
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)
    assert holm([]) == [] and math.isnan(holm([float("nan")])[0])
    assert holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1


# --- compare ---

@pytest.fixture
def study():
    """Three variants, two seeds: 'worse' loses 20 examples per seed against 'base', 'same' only 2."""
    y_true, base, worse = predictions_with_table(70, 20, 0, 10)
    _, _, same = predictions_with_table(88, 2, 0, 10)
    predictions = {"base": {1: base, 2: base}, "worse": {1: worse, 2: worse}, "same": {1: same, 2: same}}
    accuracies = {name: {seed: float(np.mean(p == y_true)) for seed, p in by_seed.items()}
                  for name, by_seed in predictions.items()}
    accuracies["base"] = {1: 0.89, 2: 0.91}
    accuracies["worse"] = {1: 0.69, 2: 0.71}
    accuracies["same"] = {1: 0.90, 2: 0.885}  # the seeds disagree in direction: inconclusive
    return y_true, predictions, accuracies


def test_compare_adjusts_each_test_over_the_table(study):
    y_true, predictions, accuracies = study
    pairs = [("Q1", "base", "worse"), ("Q2", "base", "same")]
    table = compare(pairs, y_true, predictions, accuracies)
    assert list(table.columns) == COMPARE_COLUMNS
    raw = [mcnemar_p(y_true, predictions["base"][1], predictions[b][1]) for _, _, b in pairs]
    assert table["mcnemar_p"].tolist() == pytest.approx(raw)
    assert table["mcnemar_p_holm"].tolist() == pytest.approx(holm(raw))
    welch = [welch_p(list(accuracies["base"].values()), list(accuracies[b].values())) for _, _, b in pairs]
    assert table["welch_p"].tolist() == pytest.approx(welch) and table["p"].tolist() == pytest.approx(welch)
    assert table["welch_p_holm"].tolist() == pytest.approx(holm(welch))
    first = table.iloc[0]
    assert first["diff_points"] == pytest.approx((0.70 - 0.90) * 100)
    assert -100 <= first["ci_low_points"] < first["diff_points"] < first["ci_high_points"] <= 100  # two seeds: wide
    assert table["seeds_agree"].tolist() == [True, False]
    assert table["significant"].tolist() == [True, False]
    assert table["verdict"].tolist() == ["significant", "inconclusive"]
    assert compare([], y_true, predictions, accuracies).empty


def test_compare_calls_tight_seeds_equivalent_and_never_a_diverged_network(study):
    y_true, predictions, _ = study
    accuracies = {"base": {1: 0.930, 2: 0.935, 3: 0.940}, "same": {1: 0.931, 2: 0.934, 3: 0.941},
                  "worse": {1: 0.931, 2: 0.934, 3: 0.941}}
    three = {name: {1: p[1], 2: p[2], 3: p[1]} for name, p in predictions.items()}
    pairs = [("Q", "base", "same"), ("Q", "base", "worse")]
    paired = compare(pairs, y_true, three, accuracies, margin_points=1.0, paired=True)
    assert paired["test"].tolist() == ["paired t", "paired t"]
    assert paired["verdict"].tolist() == ["equivalent within ±1", "equivalent within ±1"]
    assert paired["tost_p"].iloc[0] == pytest.approx(tost_p(accuracies["base"], accuracies["same"], 0.01, True))
    flagged = compare(pairs, y_true, three, accuracies, margin_points=1.0, paired=True, diverged={"worse": True})
    assert flagged["verdict"].tolist() == ["equivalent within ±1", "inconclusive"]
    # Welch's TOST on three seeds a side is weaker: the same seeds need a wider margin.
    welch = tost_p(accuracies["base"], accuracies["same"], 0.01, False)
    assert welch == pytest.approx(ttost_ind(np.array([0.931, 0.934, 0.941]), np.array([0.930, 0.935, 0.940]),
                                            -0.01, 0.01, usevar="unequal")[0])
    assert welch > paired["tost_p"].iloc[0]
    # Paired for the listed steps only (either order), Welch for the rest.
    some = compare(pairs, y_true, three, accuracies, margin_points=1.0, paired_steps=[("same", "base")])
    assert some["test"].tolist() == ["paired t", "Welch"]
    assert some["tost_p"].tolist() == pytest.approx([paired["tost_p"].iloc[0],
                                                     tost_p(accuracies["base"], accuracies["worse"], 0.01, False)])


def test_rows_with_both_sides_constant_leave_the_holm_family(study):
    """Diverged against diverged (both at chance on every seed) is no test and must not raise the
    others' Holm multiplier."""
    y_true, predictions, _ = study
    accuracies = {"base": {1: 0.89, 2: 0.91, 3: 0.90}, "worse": {1: 0.69, 2: 0.71, 3: 0.70},
                  "same": {1: 0.1135, 2: 0.1135, 3: 0.1135}, "other": {1: 0.098, 2: 0.098, 3: 0.098}}
    predictions = {**predictions, "other": predictions["same"]}
    table = compare([("Q", "base", "worse"), ("Q", "same", "other")], y_true, predictions, accuracies)
    assert table["welch_p_holm"].iloc[0] == pytest.approx(table["welch_p"].iloc[0])  # a family of one
    assert math.isnan(table["p_holm"].iloc[1]) and table["verdict"].tolist() == ["significant", "not tested"]


def test_paired_p_is_scipys_paired_t_on_shared_seeds():
    a, b = {1: 0.90, 2: 0.92, 3: 0.91, 4: 0.5}, {1: 0.89, 2: 0.905, 3: 0.90, 5: 0.9}
    assert paired_p(a, b) == pytest.approx(scipy.stats.ttest_rel([0.89, 0.905, 0.90], [0.90, 0.92, 0.91]).pvalue)
    assert paired_p({1: 0.9, 2: 0.8}, {1: 0.8, 2: 0.7}) == 0.0  # the same shift on every seed
    assert math.isnan(paired_p({1: 0.9}, {1: 0.8}))


def test_the_best_variant_is_picked_on_validation_and_a_float_tie_goes_to_the_first_listed():
    def entry(val: float, test: float, diverged: bool = False) -> dict:
        return {"val_accuracy": {"mean": val}, "accuracy": {"mean": test}, "diverged": diverged}

    summary = {"batch_online": entry(0.9359999999999999, 0.95), "batch_mini": entry(0.936, 0.93),
               "lucky": entry(0.93, 0.99), "broken": entry(0.99, 0.1, diverged=True), "final": entry(0.99, 0.99)}
    assert best_variant(summary) == "batch_online"
    assert best_variant(dict(reversed(list(summary.items())))) == "batch_mini"


def test_seeds_agree_needs_three_in_four_seeds_with_many_seeds():
    before = {s: 0.60 for s in range(1, 9)}
    six_of_eight = {s: 0.70 if s <= 6 else 0.55 for s in range(1, 9)}
    five_of_eight = {s: 0.70 if s <= 5 else 0.55 for s in range(1, 9)}
    assert seeds_agree(before, six_of_eight)
    assert not seeds_agree(before, five_of_eight)
    assert seeds_agree({1: 0.6, 2: 0.6, 3: 0.6, 4: 0.6}, {1: 0.7, 2: 0.7, 3: 0.7, 4: 0.5})  # 3 of 4


def test_seeds_agree_needs_every_shared_seed_to_move_with_the_means():
    assert seeds_agree({1: 0.9, 2: 0.91, 3: 0.92}, {1: 0.8, 2: 0.85, 3: 0.9})
    assert not seeds_agree({1: 0.9, 2: 0.91, 3: 0.92}, {1: 0.8, 2: 0.85, 3: 0.95})
    assert not seeds_agree({1: 0.9}, {2: 0.8})             # no shared seed
    assert not seeds_agree({1: 0.9, 2: 0.8}, {1: 0.8, 2: 0.9})  # equal means: no direction


def test_a_variant_against_itself_on_disjoint_seeds_is_rarely_significant():
    """The seed as the unit: two draws of seeds of one variant come out significant (at most the
    nominal rate: bench/gate_calibration.json counts it on the study's replicate seeds)."""
    rng = np.random.default_rng(3)
    draws = rng.normal(0.93, 0.005, size=(200, 6))
    rejected = sum(welch_p(row[:3], row[3:]) < 0.05 and seeds_agree(dict(enumerate(row[:3])), dict(enumerate(row[3:])))
                   for row in draws)
    assert rejected / len(draws) <= 0.05


# --- series_finding ---

def acc(mean: float, half: float | None = 0.005, diverged: bool = False) -> dict:
    ci = (None, None) if half is None else (mean - half, mean + half)
    return {"accuracy": {"mean": mean, "std": 0.004, "min": mean, "max": mean, "n": 3,
                         "ci_low": ci[0], "ci_high": ci[1]}, "diverged": diverged}


def steps_table(*rows: tuple[str, str, float, str]) -> pd.DataFrame:
    """Rows as compare() writes them: a -> b, the change's interval 1 point either side of it."""
    out = []
    for a, b, p, verdict in rows:
        diff = -1.0 if a < b else 1.0
        out.append({"a": a, "b": b, "diff_points": diff, "ci_low_points": diff - 1, "ci_high_points": diff + 1,
                    "p_holm": p, "tost_p_holm": p, "significant": verdict == "significant", "verdict": verdict})
    return pd.DataFrame(out)


def test_series_finding_falls_with_verdicts_and_intervals():
    summary = {"batch_online": acc(0.941, 0.006), "batch_mini": acc(0.928, 0.004), "batch_full": acc(0.921, 0.005)}
    table = steps_table(("batch_online", "batch_mini", 0.003, "significant"),
                        ("batch_full", "batch_mini", 0.41, "inconclusive"))
    assert series_finding("Batch size", ["batch_online", "batch_mini", "batch_full"], summary, table) == (
        "Batch size: test accuracy falls from batch_online 94.1 % (± 0.6) to batch_mini 92.8 % (± 0.4) "
        "to batch_full 92.1 % (± 0.5); batch_online → batch_mini significant (+1.0 points [+0.0, +2.0], p = 0.003), "
        "batch_mini → batch_full inconclusive (+1.0 points [+0.0, +2.0], p = 0.41)."
    )


def test_series_finding_rises_and_uses_labels():
    summary = {"l2_a": acc(0.90), "l2_b": acc(0.92), "l2_c": acc(0.95)}
    table = steps_table(("l2_a", "l2_b", 0.2, "inconclusive"), ("l2_b", "l2_c", 0.0001, "significant"))
    text = series_finding("L2", ["l2_a", "l2_b", "l2_c"], summary, table, labels={"l2_a": "α = 0.1"})
    assert text.startswith("L2: test accuracy rises from α = 0.1 90.0 %")
    assert "α = 0.1 → l2_b inconclusive (-1.0 points" in text and "l2_b → l2_c significant (-1.0 points" in text
    assert "p < 0.001" in text
    for word in ("falls", "changes", "within noise"):
        assert word not in text


def test_series_finding_says_equivalent_with_the_tost_p_and_prints_asymmetric_intervals():
    summary = {"a": acc(0.93), "b": {"accuracy": {"mean": 0.483, "ci_low": 0.003, "ci_high": 0.998}, "diverged": False}}
    table = steps_table(("a", "b", 0.01, "equivalent within ±1"))
    text = series_finding("Q", ["a", "b"], summary, table)
    assert "a → b equivalent within ±1 (-1.0 points [-2.0, +0.0], p = 0.01)" in text
    assert "b 48.3 % [0.3, 99.8]" in text


def test_series_finding_mixed_and_diverged():
    summary = {"rho_low": acc(0.91), "base": acc(0.93), "rho_high": acc(0.92), "sgd": acc(0.098, None, diverged=True)}
    table = steps_table(("rho_low", "base", 0.01, "significant"), ("base", "rho_high", 0.5, "inconclusive"))
    text = series_finding("rho", ["rho_low", "base", "rho_high"], summary, table)
    assert "test accuracy changes from" in text
    assert "rises" not in text and "falls" not in text
    diverged = series_finding("Divergence", ["base", "sgd"], summary, table)
    assert "falls from" in diverged and "sgd 9.8 % (single seed, no CI) (diverged)" in diverged
    assert "base → sgd not tested" in diverged  # no row in the table: no significance claimed
    assert "(diverged)" not in text


def test_series_finding_direction_follows_the_printed_numbers():
    summary = {"a": acc(0.9281), "b": acc(0.9279)}  # both print as 92.8
    assert "stays level" in series_finding("Q", ["a", "b"], summary, steps_table(("a", "b", 0.9, "inconclusive")))


# --- power after Holm ---

def test_holm_inside_the_power_simulation_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    from nnstudy.evaluation.stats import _holm_rejects_first

    rng = np.random.default_rng(4)
    p = rng.uniform(0, 0.03, (40, 6))  # statsmodels takes ~0.1 s a call here
    got = _holm_rejects_first(p[:, 0], p[:, 1:], 0.05)
    want = [multipletests(row, alpha=0.05, method="holm")[0][0] for row in p]
    assert got.tolist() == want


def test_power_after_holm_is_welchs_power_for_one_comparison_and_falls_with_more():
    from statsmodels.stats.power import TTestIndPower

    from nnstudy.evaluation.stats import detectable_effect, power_after_holm

    # One comparison, 10 seeds a side: at most Student's power (Welch's at equal variances), the
    # seeds-agree rule (8 of 10 seed pairs moving with the means) taking its toll; all of it at a
    # difference of 3 standard deviations.
    alone = power_after_holm(1.0, 1.0, 10, 1, simulations=20_000)
    student = TTestIndPower().power(effect_size=1.0, nobs1=10, alpha=0.05)
    assert 0.6 * student <= alone <= student + 0.02
    assert power_after_holm(3.0, 1.0, 10, 1, simulations=5000) > 0.95
    assert power_after_holm(1.5, 0.5, 3, 20, simulations=5000) < power_after_holm(1.5, 0.5, 3, 1, simulations=5000)
    smallest = detectable_effect(0.5, 3, 20, simulations=5000)
    assert power_after_holm(smallest, 0.5, 3, 20, simulations=5000) >= 0.8
    assert detectable_effect(0.5, 6, 20, simulations=5000) < smallest


def test_the_paired_interval_is_the_t_interval_of_the_differences():
    from nnstudy.evaluation.stats import paired_interval

    a, b = {1: 0.90, 2: 0.92, 3: 0.91}, {1: 0.89, 2: 0.905, 3: 0.90}
    want = scipy.stats.ttest_rel([0.89, 0.905, 0.90], [0.90, 0.92, 0.91]).confidence_interval()
    assert paired_interval(a, b) == pytest.approx((want.low * 100, want.high * 100))
    wild = paired_interval({1: 0.95, 2: 0.95, 3: 0.95}, {1: 0.10, 2: 0.95, 3: 0.05})
    assert wild[0] == -100.0 and wild[1] <= 100.0  # cut at the end of the scale


# --- the stats section of params.yaml ---

@pytest.mark.parametrize("change, message", [
    (lambda s: s.update(margins={"mlp": 1.0}), r"stats.margins: missing key\(s\): transfer"),
    (lambda s: s.update(margins={"mlp": 0, "transfer": 3.0}), r"stats.margins.mlp: must be > 0.0, got 0"),
    (lambda s: s.update(paired="yes"), r"stats.paired: must be true or false"),
    (lambda s: s.update(paired_steps=[["batch_mini"]]), r"stats.paired_steps\[0\]: must be a step of two variants"),
    (lambda s: s.update(paired_steps=[["batch_mini", "batch_ful"]]),
     r"stats.paired_steps\[0\]: 'batch_ful' is not a variant \(did you mean 'batch_full'\?\)"),
    (lambda s: s.update(paired_steps="batch_mini"), r"stats.paired_steps: must be a list of steps"),
])
def test_bad_margins_or_pairing_are_one_clear_line(change, message):
    import yaml

    from nnstudy.core import params
    from nnstudy.core.errors import ParamError

    raw = yaml.safe_load(params.paths.PARAMS.read_text())
    assert params.parse(raw).stats.margins.transfer == 3.0
    change(raw["stats"])
    with pytest.raises(ParamError, match=message):
        params.parse(raw)


def test_the_test_draw_bootstrap_matches_the_binomial_and_widens_the_seeds_interval():
    from nnstudy.evaluation.stats import sampling_points, test_draw

    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 10, 1000)
    # One seed right on 930 of 1,000 images: the bootstrap's standard error is the binomial one.
    one = {1: np.where(np.arange(1000) < 930, y_true, (y_true + 1) % 10)}
    alone = test_draw(y_true, one, None)
    assert alone["mean"] == pytest.approx(0.93)
    assert alone["test_se_points"] == pytest.approx(sampling_points(0.93, 1000), rel=0.06)
    assert alone["test_ci_low"] < 0.93 < alone["test_ci_high"] and alone["ci_low"] == pytest.approx(alone["test_ci_low"])
    # Three seeds wrong on the same images: the test draw is no smaller for having more seeds.
    same = test_draw(y_true, {1: one[1], 2: one[1], 3: one[1]}, (0.93, 0.93))
    assert same["test_se_points"] == pytest.approx(alone["test_se_points"])
    # Seeds wrong on different images: the mean over seeds is steadier against the images' draw.
    spread_out = {s: np.where(np.roll(np.arange(1000) < 930, 70 * s), y_true, (y_true + 1) % 10) for s in (1, 2, 3)}
    apart = test_draw(y_true, spread_out, (0.92, 0.94))
    assert apart["test_se_points"] < 0.75 * alone["test_se_points"]
    # With the seeds' interval: wider than either part, within [0, 1], and seeded.
    assert apart["ci_low"] < min(0.92, apart["test_ci_low"]) and apart["ci_high"] > max(0.94, apart["test_ci_high"])
    assert apart == test_draw(y_true, spread_out, (0.92, 0.94))
    perfect = test_draw(y_true, {1: y_true, 2: y_true}, (1.0, 1.0))
    assert perfect["ci_low"] == perfect["ci_high"] == 1.0
