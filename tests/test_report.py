"""Generated report text: the tuned pick judged against the seeds' noise."""

import pandas as pd

from nnstudy.report.markdown import pick_margin

SEARCHED = ["units", "learning_rate"]


def trials(*rows):
    return pd.DataFrame([dict(zip(["trial_id", "units", "learning_rate", "epoch_budget", "objective"], r)) for r in rows])


def test_the_pick_is_raced_at_the_largest_budget_both_ran():
    table = trials(("3", 128, 0.001, 27, 0.946), ("2", 128, 0.001, 9, 0.925), ("1", 64, 0.01, 9, 0.9237),
                   ("0", 64, 0.01, 3, 0.95))
    text = pick_margin(table, {"trial_id": "3"}, 0.004, SEARCHED)
    assert "(9 epochs)" in text and "trial 1" in text and "+0.13 points" in text
    assert "not distinguishable" in text and "1.11 points" in text


def test_a_clear_lead_is_distinguishable_and_a_lone_pick_says_so():
    table = trials(("3", 128, 0.001, 9, 0.95), ("1", 64, 0.01, 9, 0.90))
    assert "the pick is distinguishable from the runner-up." in pick_margin(table, {"trial_id": "3"}, 0.004, SEARCHED)
    assert "no noise figure" in pick_margin(table, {"trial_id": "3"}, None, SEARCHED)
    alone = trials(("3", 128, 0.001, 9, 0.95))
    assert "cannot tell" in pick_margin(alone, {"trial_id": "3"}, 0.004, SEARCHED)


def test_the_fine_tuning_section_names_the_searched_space():
    from nnstudy.report.markdown import space_name

    assert space_name({"space": "seeds", "objective": "val_accuracy"}) == ", space `seeds`"
    assert space_name({"objective": "val_accuracy"}) == ""  # a best.json from before the spaces had names
