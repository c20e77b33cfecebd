"""The selection round after Hyperband: the one-standard-error rule, the fallback of `final`, the
report's margin sentence, and a real configuration that wins its one run but collapses on other seeds."""

import pandas as pd
import pytest

from nnstudy.core.errors import StudyError
from nnstudy.report.markdown import pick_margin
from nnstudy.training.selection import (Candidate, candidates_table, first_that_holds, one_se_order,
                                        parameter_count, space_position, top_configurations)


def candidate(trial_id, scores, units=(128, 256), diverged=(), position=(0,)):
    return Candidate(trial_id, {"units_1": units[0], "units_2": units[1]}, max(scores), tuple(range(1, len(scores) + 1)),
                     tuple(scores), tuple(diverged), parameter_count(units, 784, 10), position)


def test_one_se_rule_takes_the_simplest_within_one_standard_error_of_the_best():
    best = candidate("a", [0.960, 0.962, 0.958], units=(256, 512))          # mean 0.960, SE 0.00115
    close = candidate("b", [0.959, 0.960, 0.958], units=(128, 256))         # mean 0.959: within one SE
    far = candidate("c", [0.950, 0.951, 0.949], units=(128, 128))           # simplest, but 1 point behind
    order, why = one_se_order([best, close, far])
    assert [c.trial_id for c in order] == ["b", "a", "c"]
    assert "the fewest parameters among them: trial b" in why and "trial b, trial a;" in why


def test_a_clear_winner_beyond_one_standard_error_is_kept_even_when_larger():
    big = candidate("a", [0.970, 0.971, 0.969], units=(256, 512))
    small = candidate("b", [0.960, 0.961, 0.959], units=(128, 256))
    order, why = one_se_order([small, big])
    assert order[0].trial_id == "a" and "only trial a" in why


def test_equal_size_and_accuracy_fall_back_to_the_order_of_the_space():
    late = candidate("a", [0.96, 0.96, 0.96], position=(1, 0))
    early = candidate("b", [0.96, 0.96, 0.96], position=(0, 1))
    assert [c.trial_id for c in one_se_order([late, early])[0]] == ["b", "a"]


def test_a_candidate_that_diverged_on_any_seed_is_out_however_good_its_mean():
    lucky = candidate("a", [0.99, 0.10, 0.99], diverged=(2,))
    steady = candidate("b", [0.95, 0.95, 0.951])
    order, why = one_se_order([lucky, steady])
    assert [c.trial_id for c in order] == ["b"] and "trial a diverged on seed 2" in why
    table = candidates_table([lucky, steady], order)
    assert table.set_index("trial_id").loc["a", "diverged_seeds"] == "2"
    assert pd.isna(table.set_index("trial_id").loc["a", "order"])
    assert one_se_order([lucky]) == ([], "every candidate diverged on some seed (trial a diverged on seed 2)")


def test_top_configurations_are_distinct_and_ranked_by_their_best_single_trial():
    trials = pd.DataFrame({"trial_id": ["4", "3", "2", "1"], "units_1": [64, 64, 128, 64], "units_2": [256] * 4,
                           "l2": [1e-6] * 4, "learning_rate": [1e-3, 1e-3, 1e-2, 1e-2],
                           "objective": [0.95, 0.94, 0.93, None]})
    top = top_configurations(trials, 3)
    assert list(top["trial_id"]) == ["4", "2"]  # trial 3 repeats trial 4's values; trial 1 never finished


def test_parameters_and_the_space_order():
    assert parameter_count((128, 256), 784, 10) == 784 * 128 + 128 + 128 * 256 + 256 + 256 * 10 + 10

    class Space:
        units_1, units_2, l2, learning_rate, dropout, batch_sizes = (128, 256), (256, 512), (1e-3, 1e-6), (1e-2, 1e-3), (0.0, 0.2), ()
    values = {"units_1": 256, "units_2": 256, "l2": 1e-6, "learning_rate": 1e-2, "dropout": 0.2}
    assert space_position(values, Space) == (1, 0, 1, 0, 1)


def test_final_falls_back_to_the_next_candidate_and_fails_in_one_line_when_none_holds(capsys):
    order = [{"trial_id": "7", "hyperparameters": {"learning_rate": 0.01}},
             {"trial_id": "9", "hyperparameters": {"learning_rate": 0.001}}]
    tried = []

    def retrain(c):
        tried.append(c["trial_id"])
        return (1, 3) if c["trial_id"] == "7" else ()

    chosen, passed = first_that_holds(order, retrain)
    assert chosen["trial_id"] == "9" and tried == ["7", "9"]
    assert passed == ["trial 7 (learning_rate 0.01) DIVERGED on seeds 1, 3"]
    assert "falling back to the next candidate" in capsys.readouterr().out
    with pytest.raises(StudyError, match=r"none of the 2 tuned candidates held on every seed") as failure:
        first_that_holds(order, lambda c: (2,))
    assert "\n" not in str(failure.value)


def table(*rows):
    return pd.DataFrame([dict(zip(["trial_id", "mean", "se", "seeds", "order"], r)) for r in rows])


def test_the_margin_uses_the_candidates_spread_and_t_at_welch_degrees_of_freedom():
    # SEs 0.1 and 0.1 points: the gap's SE 0.141; t(0.975, df 4) = 2.776 -> needs 0.39 points.
    text = pick_margin(table(("3", 0.955, 0.001, 3, 1), ("5", 0.957, 0.001, 3, 2)))
    assert "trial 5" in text and "-0.20 points" in text and "4.0 degrees of freedom" in text
    assert "needs 0.39 points" in text and "not distinguishable" in text
    clear = pick_margin(table(("3", 0.965, 0.001, 3, 1), ("5", 0.955, 0.001, 3, 2)))
    assert "the pick is distinguishable from it." in clear


def test_the_margin_never_uses_a_diverged_candidates_spread():
    # Candidate 8 collapsed (no order): its zero spread at 10 % must not be the noise figure.
    text = pick_margin(table(("3", 0.955, 0.001, 3, 1), ("8", 0.10, 0.0, 3, None), ("5", 0.950, 0.002, 3, 2)))
    assert "trial 8" not in text and "trial 5" in text
    assert "nothing to race" in pick_margin(table(("3", 0.955, 0.001, 3, 1), ("8", 0.10, 0.0, 3, None)))


# --- A real one: RMSprop at a learning rate at the edge of divergence on the 8x8 digits. Layers of
# 128/256 at 0.02 reach 98 % on seed 5 and collapse to chance on seed 2 (8 epochs); at 0.001 a small
# network holds on every seed.

EDGE = {"units_1": 128, "units_2": 256, "l2": 1e-6, "learning_rate": 0.02}
SAFE = {"units_1": 16, "units_2": 32, "l2": 1e-6, "learning_rate": 0.001}


def test_a_configuration_that_wins_its_single_run_but_collapses_on_a_seed_is_not_picked(study, digits, tmp_path):
    from dataclasses import replace

    from nnstudy.training.loop import EarlyStop, open_live, train
    from nnstudy.training.models import enable_determinism
    from nnstudy.training.selection import selection_round
    from nnstudy.training.tuning import tuned_model

    tune = replace(study.tune, units_1=(16, 128), units_2=(32, 256), l2=(1e-6,), learning_rate=(0.001, 0.02),
                   dropout=(), batch_sizes=(), batch_size=64, max_epochs=8, candidates=2)
    study = replace(study, seeds=(1, 2, 3), loop="compiled", seeds_together=False, tune=tune)

    def single_run(values, trial_id):  # what one Hyperband trial is: one run, on the search's seed (5)
        enable_determinism(5)
        result = train(tuned_model(study.base, values, 64, 8), digits, 5, open_live(tmp_path / trial_id), 1000.0,
                       "compiled", stop=EarlyStop("val_accuracy", 30))
        return {"trial_id": trial_id, **values, "objective": max(result.history["val_accuracy"])}

    trials = pd.DataFrame([single_run(EDGE, "0"), single_run(SAFE, "1")]).sort_values("objective", ascending=False)
    assert list(trials["trial_id"]) == ["0", "1"], trials  # the edge configuration wins the search

    candidates, order, why = selection_round(study, digits, trials, tmp_path / "selection")
    rows = candidates.set_index("trial_id")
    assert rows.loc["0", "diverged_seeds"] == "2" and pd.isna(rows.loc["0", "order"]), candidates
    assert [c["trial_id"] for c in order] == ["1"] and order[0]["hyperparameters"] == SAFE
    assert rows.loc["1", "mean"] > 0.5 and rows.loc["1", "se"] > 0  # the pick holds, and has a spread
    assert "trial 0 diverged on seed 2" in why


def test_the_tuning_section_shows_the_candidates_the_fallback_and_never_calls_a_collapse_within_noise():
    from nnstudy.report.markdown import tuning_markdown

    spread = {"mean": 0.1, "ci_low": 0.1, "ci_high": 0.1, "std": 0.0, "values": [0.1, 0.1, 0.1]}
    summary = {"batch_mini": {"diverged": False, "accuracy": {**spread, "mean": 0.93}, "val_accuracy": {"mean": 0.93}},
               "final": {"diverged": True, "diverged_seeds": [1, 2, 3], "accuracy": spread, "loss": spread,
                         "f1_macro": spread, "seeds": [1, 2, 3], "kept_epoch": {"mean": 1.0}, "val_accuracy": spread}}
    trials = pd.DataFrame({"trial_id": ["7"], "units_1": [256], "units_2": [512], "bracket": [0], "epoch_budget": [27],
                           "epochs_run": [9], "objective": [0.956], "status": ["COMPLETED"]})
    candidates = table(("7", 0.955, 0.001, 3, None), ("9", 0.950, 0.002, 3, 1)).assign(
        units_1=[256, 128], units_2=[512, 256], single_run=[0.956, 0.951], diverged_seeds=["2", ""],
        parameters=[337_674, 136_074])
    best = {"trial_id": "9", "objective": "val_accuracy", "value": 0.951, "why": "only trial 9",
            "hyperparameters": {"units_1": 128, "units_2": 256}}
    final_pick = {"trial_id": "9", "hyperparameters": {"units_1": 128, "units_2": 256},
                  "passed_over": ["trial 7 (units_1 256) DIVERGED on seed 2"]}
    comparisons = pd.DataFrame([{"a": "batch_mini", "b": "final", "significant": False, "welch_p_holm": 0.5, "p_holm": 0.5,
                                 "test": "Welch", "verdict": "inconclusive", "diff_points": -83.0,
                                 "ci_low_points": -84.0, "ci_high_points": -82.0}])
    final_test = {"per_class_mean": {"0": {"precision": 0.1, "recall": 1.0, "f1": 0.2, "auc": 0.5, "support": 10}},
                  "seed_1": {"auc_macro": 0.5}}
    text = tuning_markdown(trials, best, candidates, final_pick, summary, final_test, comparisons, 10, {})
    assert "| 7 " in text and "| 9 " in text and "Why: only trial 9." in text
    assert "passed over 1 candidate(s): trial 7 (units_1 256) DIVERGED on seed 2" in text
    assert "within noise" not in text and "DIVERGED on seeds [1, 2, 3]" in text
