"""Generated report text. (The tuned pick's margin against the candidates' noise: tests/test_selection.py.)"""

import pandas as pd


def test_the_fine_tuning_section_names_the_searched_space():
    from nnstudy.report.markdown import space_name

    assert space_name({"space": "seeds", "objective": "val_accuracy"}) == ", space `seeds`"
    assert space_name({"objective": "val_accuracy"}) == ""  # a best.json from before the spaces had names


# --- intervals, the forest plot's rows, the test set's noise ---

def test_mean_ci_prints_an_asymmetric_interval_as_its_ends():
    from nnstudy.report.markdown import mean_ci

    assert mean_ci({"mean": 0.931, "ci_low": 0.925, "ci_high": 0.937}) == "93.1 ± 0.6"
    assert mean_ci({"mean": 0.483, "ci_low": 0.036, "ci_high": 0.958}) == "48.3 [3.6, 95.8]"
    assert mean_ci({"mean": 0.9, "ci_low": None, "ci_high": None}) == "90.0"


def test_versus_turns_every_row_to_read_as_a_change_from_the_base():
    from nnstudy.report.markdown import versus

    table = pd.DataFrame([
        {"a": "base", "b": "x", "diff_points": -2.0, "ci_low_points": -3.0, "ci_high_points": -1.0},
        {"a": "y", "b": "base", "diff_points": -1.5, "ci_low_points": -2.5, "ci_high_points": 0.5},
        {"a": "x", "b": "y", "diff_points": 0.5, "ci_low_points": 0.0, "ci_high_points": 1.0},
    ])
    rows = versus(table, "base")
    assert rows["b"].tolist() == ["x", "y"] and (rows["a"] == "base").all()
    assert rows["diff_points"].tolist() == [-2.0, 1.5]
    assert rows["ci_low_points"].tolist() == [-3.0, -0.5] and rows["ci_high_points"].tolist() == [-1.0, 2.5]


def test_the_forest_plot_zooms_to_the_working_variants_and_marks_collapses_off_scale():
    from nnstudy.report.plots import on_scale, variant_comparison

    diffs = [0.7, -0.5, 0.0, 0.6, -5.8, -1.0, -8.3, 1.5, -44.6, -82.9, -82.9]
    assert on_scale(__import__("numpy").array(diffs)).tolist() == [True] * 8 + [False] * 3
    rows = pd.DataFrame({"b": [f"v{i}" for i in range(len(diffs))], "diff_points": diffs,
                         "ci_low_points": [d - 1 for d in diffs], "ci_high_points": [d + 1 for d in diffs],
                         "verdict": ["inconclusive"] * 8 + ["significant"] * 3})
    figure = variant_comparison(rows, "base")
    left, right = figure.axes[0].get_xlim()
    assert -10 < left < -9.3 and 2.5 < right < 3.1  # -8.3 - 1 - 0.5 .. 1.5 + 1 + 0.5
    notes = [t.get_text() for t in figure.axes[0].texts]
    assert "-82.9 [-83.9, -81.9]" in notes and len(notes) == 3


def test_the_noise_note_sets_the_test_sets_draw_beside_the_seeds():
    from nnstudy.report.markdown import noise_note

    summary = {"a": {"diverged": False, "accuracy": {"mean": 0.93, "std": 0.005, "n": 3}},
               "b": {"diverged": True, "accuracy": {"mean": 0.1, "std": 0.0, "n": 3}}}
    text = noise_note(summary, 1000)
    assert "0.81 points" in text and "0.50 points" in text and "1,000 test images" in text
    # With the summary's bootstrap over the test images, the note gives its median standard error.
    summary["a"]["test_draw"] = {"test_se_points": 0.62, "ci_low": 0.915, "ci_high": 0.944}
    text = noise_note(summary, 1000)
    assert "a bootstrap over them gives the mean over seeds a standard error of 0.62 points" in text
    assert "the binomial formula says 0.81" in text


def test_an_axis_finding_names_each_other_value_by_its_verdict():
    from nnstudy.report.sections import axis_finding

    table = pd.DataFrame({
        "value": ["1", "2", "3", "4"], "point": ["p1", "p2", "p3", "p4"],
        "accuracy_mean": [0.90, 0.95, 0.949, 0.80], "val_accuracy_mean": [0.90, 0.96, 0.95, 0.81],
        "accuracy": ["90.0", "95.0", "94.9", "80.0"]})
    comparisons = pd.DataFrame([
        {"a": "p2", "b": "p1", "verdict": "inconclusive"},
        {"a": "p2", "b": "p3", "verdict": "equivalent within ±1"},
        {"a": "p4", "b": "p2", "verdict": "significant"}])
    text = axis_finding("depth", table, comparisons)
    assert "the best on validation is 2" in text
    assert "2 differs significantly from 1 of the 3 other values (4)" in text
    assert "is equivalent to 3 (equivalent within ±1)" in text and "inconclusive against 1." in text
    assert "within noise" not in text


def test_the_significance_table_marks_each_paired_row_among_welch_rows():
    from nnstudy.report.markdown import comparisons_markdown

    row = {"question": "Q", "diff_points": -0.6, "ci_low_points": -1.1, "ci_high_points": -0.1, "tost_p_holm": 0.5,
           "mcnemar_p_holm": 1.0, "seeds_agree": True, "verdict": "inconclusive"}
    mixed = pd.DataFrame([{**row, "a": "x", "b": "y", "test": "Welch", "p_holm": 0.8},
                          {**row, "a": "y", "b": "z", "test": "paired t", "p_holm": 0.4}])
    text = comparisons_markdown(mixed)
    assert "Welch or paired t p (Holm)" in text
    lines = [line for line in text.splitlines() if line.startswith("| Q")]
    assert "(paired t)" not in lines[0] and "0.400 (paired t)" in lines[1]
    welch_only = comparisons_markdown(mixed.iloc[:1])
    assert "Welch p (Holm)" in welch_only and "(paired t)" not in welch_only
