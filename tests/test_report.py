"""Generated report text. (The tuned pick's margin against the candidates' noise: tests/test_selection.py.)"""


def test_the_fine_tuning_section_names_the_searched_space():
    from nnstudy.report.markdown import space_name

    assert space_name({"space": "seeds", "objective": "val_accuracy"}) == ", space `seeds`"
    assert space_name({"objective": "val_accuracy"}) == ""  # a best.json from before the spaces had names
