"""Non-digit inputs and the network's confidence on them: every kind's shape, range and seed; the table by hand."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from nnstudy.probing.nondigit import (
    DIGITS,
    NOISE_KINDS,
    SALT_SHARE,
    confidence_histograms,
    confidence_table,
    nondigit_inputs,
)

SHAPE = (8, 8)


@pytest.fixture(scope="module")
def fashion() -> np.ndarray:
    """Stand-in Fashion-MNIST: uint8 28x28 images, as nnstudy.core.data reads the real ones."""
    return np.random.default_rng(7).integers(0, 256, size=(30, 28, 28), dtype=np.uint8)


def test_every_kind_has_its_shape_range_and_seed(digits, fashion):
    kinds = nondigit_inputs(SHAPE, n=50, seed=3, digits=digits.test.x, fashion=fashion)
    assert list(kinds) == [*NOISE_KINDS, "inverted_digits", "fashion_mnist"]
    again = nondigit_inputs(SHAPE, n=50, seed=3, digits=digits.test.x, fashion=fashion)
    other = nondigit_inputs(SHAPE, n=50, seed=4, digits=digits.test.x, fashion=fashion)
    for kind, images in kinds.items():
        assert images.shape == (50, 64) and images.dtype == np.float32, kind
        assert images.min() >= 0.0 and images.max() <= 1.0, kind
        assert np.array_equal(images, again[kind]), kind
        if kind not in ("blank", "white"):
            assert not np.array_equal(images, other[kind]), kind  # the seed matters
    assert (kinds["blank"] == 0).all() and (kinds["white"] == 1).all()
    assert kinds["gaussian_noise"].mean() == pytest.approx(0.5, abs=0.02)
    assert 0.0 < kinds["gaussian_noise"].std() < 0.25  # clipping narrows N(0.5, 0.25)
    salt = kinds["salt_and_pepper"]
    assert set(np.unique(salt)) == {0.0, 1.0} and salt.mean() == pytest.approx(SALT_SHARE, abs=0.02)
    # Each inverted image is 1 - one of the real test digits.
    inverted = 1.0 - kinds["inverted_digits"]
    assert all(np.isclose(digits.test.x, row, atol=1e-6).all(axis=1).any() for row in inverted)


def test_noise_kinds_do_not_depend_on_the_optional_images(digits, fashion):
    alone = nondigit_inputs(SHAPE, n=20, seed=1)
    assert list(alone) == list(NOISE_KINDS)  # no images given: no inverted digits, no clothes
    full = nondigit_inputs(SHAPE, n=20, seed=1, digits=digits.test.x, fashion=fashion)
    assert all(np.array_equal(alone[kind], full[kind]) for kind in NOISE_KINDS)


def test_fashion_images_are_scaled_and_area_resized():
    image = np.zeros((28, 28), np.uint8)
    image[:, :14] = 255  # left half white: 28 -> 8 columns puts the edge exactly between columns 3 and 4
    resized = nondigit_inputs(SHAPE, n=3, seed=0, fashion=image[None])["fashion_mnist"]
    expected = np.zeros(SHAPE, np.float32)
    expected[:, :4] = 1.0
    assert resized.shape == (3, 64)  # one image, drawn three times
    np.testing.assert_allclose(resized, np.tile(expected.ravel(), (3, 1)), atol=1e-6)
    # Floats already in [0, 1] stay as they are; images the same size as the digits are not resampled.
    same = np.random.default_rng(0).random((5, 8, 8), dtype=np.float32)
    picked = nondigit_inputs(SHAPE, n=5, seed=0, fashion=same)["fashion_mnist"]
    assert all(np.isclose(same.reshape(5, 64), row).all(axis=1).any() for row in picked)


def test_mismatched_digits_are_refused():
    with pytest.raises(ValueError, match="784 pixels"):
        nondigit_inputs(SHAPE, n=2, seed=0, digits=np.zeros((3, 784), np.float32))


DIGIT_PROBA = np.array([[0.95, 0.03, 0.02], [0.1, 0.8, 0.1], [0.05, 0.05, 0.9], [0.02, 0.97, 0.01]])
NOISE_PROBA = np.array([[0.5, 0.3, 0.2], [0.2, 0.7, 0.1], [0.92, 0.04, 0.04]])


def test_confidence_table_by_hand():
    table = confidence_table({"noise": NOISE_PROBA}, DIGIT_PROBA).set_index("kind")
    assert list(table.index) == [DIGITS, "noise"]
    digits, noise = table.loc[DIGITS], table.loc["noise"]
    # Real digits: max probabilities .95 .8 .9 .97; predicted 0 1 2 1.
    assert digits["n"] == 4
    assert digits["mean_confidence"] == pytest.approx(0.905)
    assert digits["median_confidence"] == pytest.approx(0.925)
    assert digits["share_confident"] == pytest.approx(0.5)  # .95 and .97; .9 itself is not above 0.9
    assert (digits["top_digit"], digits["top_digit_share"]) == (1, pytest.approx(0.5))
    assert np.isnan(digits["auroc"])
    # Noise: max probabilities .5 .7 .92; predicted 0 1 0.
    assert noise["n"] == 3
    assert noise["mean_confidence"] == pytest.approx((0.5 + 0.7 + 0.92) / 3)
    assert noise["median_confidence"] == pytest.approx(0.7)
    assert noise["share_confident"] == pytest.approx(1 / 3)
    assert (noise["top_digit"], noise["top_digit_share"]) == (0, pytest.approx(2 / 3))
    # 10 of the 12 (digit, noise) pairs have the digit more confident: .8 and .9 lose to .92.
    assert noise["auroc"] == pytest.approx(10 / 12)
    truth = [1, 1, 1, 1, 0, 0, 0]
    scores = np.concatenate([DIGIT_PROBA.max(axis=1), NOISE_PROBA.max(axis=1)])
    assert noise["auroc"] == pytest.approx(roc_auc_score(truth, scores))


def test_confidence_that_tells_nothing_gives_auroc_one_half():
    constant = np.tile([0.6, 0.3, 0.1], (5, 1))
    table = confidence_table({"constant": constant}, constant[:4])
    assert table.set_index("kind").loc["constant", "auroc"] == pytest.approx(0.5)
    # Inputs whose confidences are distributed exactly like the digits' cannot be told apart either.
    table = confidence_table({"look_alike": DIGIT_PROBA[::-1]}, DIGIT_PROBA)
    assert table.set_index("kind").loc["look_alike", "auroc"] == pytest.approx(0.5)


def test_histograms_build_one_panel_per_kind():
    proba = {"noise": NOISE_PROBA, "blank": np.tile([0.2, 0.7, 0.1], (4, 1)), "white": NOISE_PROBA[::-1]}
    figure = confidence_histograms(proba, DIGIT_PROBA)
    panels = [axes for axes in figure.axes if axes.get_title()]
    assert [axes.get_title().split(" ")[0] for axes in panels] == ["noise", "blank", "white"]
    assert "AUROC 0.83" in panels[0].get_title()
    plt.close(figure)
