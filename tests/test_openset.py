"""Open-set recognition: scores and measures against hand-computed values, scikit-learn and SciPy,
then the three methods end to end on the 8x8 digits (known 0-4, unknown 5-9)."""

import json
import math
from dataclasses import replace

import keras
import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.stats import mannwhitneyu
from sklearn.neighbors import NearestCentroid

from nnstudy.probing.openset import (
    build_known_head_model,
    centroid_scores,
    choose_threshold,
    class_centroids,
    feature_model,
    fit_known_head,
    known_head_data,
    known_mask,
    max_softmax_scores,
    open_set_metrics,
    remap_known,
    roc_table,
)
from nnstudy.training.models import build_model

KNOWN = (0, 1, 2, 3, 4)


# --- labels ---

def test_known_mask_and_remap_follow_the_order_of_known():
    labels = np.array([3, 0, 7, 4, 9])
    assert known_mask(labels, (0, 3, 4)).tolist() == [True, True, False, True, False]
    assert remap_known(labels, (4, 0, 3)).tolist() == [2, 1, -1, 0, -1]
    with pytest.raises(ValueError, match="distinct"):
        remap_known(labels, (1, 1))


# --- scores ---

def test_centroid_distances_by_hand():
    features = np.array([[0, 0], [2, 0], [0, 4], [0, 6]], dtype=np.float32)
    centroids = class_centroids(features, np.array([0, 0, 1, 1]), num_classes=2)
    np.testing.assert_allclose(centroids, [[1, 0], [0, 5]])
    # (1, 3): 3 from class 0, sqrt(5) from class 1. (4, 0): 3 from class 0, sqrt(41) from class 1.
    scores = centroid_scores(np.array([[1, 3], [4, 0]], dtype=np.float32), centroids)
    np.testing.assert_allclose(scores, [-math.sqrt(5), -3.0], rtol=1e-12)
    with pytest.raises(ValueError, match="cover each class"):
        class_centroids(features, np.array([0, 0, 2, 2]), num_classes=3)


def test_centroids_match_scikit_learn_and_distances_match_cdist():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 16)).astype(np.float32)
    labels = rng.integers(0, 5, size=200)
    centroids = class_centroids(features, labels, num_classes=5)
    np.testing.assert_allclose(centroids, NearestCentroid().fit(features, labels).centroids_, rtol=1e-6, atol=1e-7)
    queries = rng.normal(size=(50, 16)).astype(np.float32) * 3
    expected = -cdist(queries.astype(np.float64), centroids).min(axis=1)
    np.testing.assert_allclose(centroid_scores(queries, centroids), expected, rtol=1e-9)


def test_max_softmax_scores():
    proba = np.array([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4]], dtype=np.float32)
    np.testing.assert_allclose(max_softmax_scores(proba), [0.7, 0.4], rtol=1e-6)


# --- threshold ---

def test_threshold_accepts_exactly_the_requested_share():
    scores = np.random.default_rng(0).permutation(np.arange(1.0, 21.0))  # 1..20, shuffled
    threshold = choose_threshold(scores, 0.95)
    assert threshold == 2.0 and (scores >= threshold).sum() == 19
    assert (scores >= choose_threshold(scores, 0.5)).sum() == 10
    assert choose_threshold(scores, 1.0) == 1.0
    # 0.7 * 10 is 7.000000000000001 in floating point: still 7 examples, not 8.
    assert (np.arange(10.0) >= choose_threshold(np.arange(10.0), 0.7)).sum() == 7


@pytest.mark.parametrize("n", [1, 2, 7, 20, 33])
@pytest.mark.parametrize("tpr", [0.05, 0.3, 0.5, 0.9, 0.95, 0.99])
def test_threshold_accepts_the_fewest_examples_reaching_tpr(n, tpr):
    scores = np.random.default_rng(n).normal(size=n)
    accepted = (scores >= choose_threshold(scores, tpr)).sum()
    assert accepted / n >= tpr and (accepted - 1) / n < tpr


def test_threshold_tie_rule_accepts_every_tied_score():
    # The 3rd-highest score is 2, shared by three examples: all of them are accepted (4 of 5 > 60%).
    scores = np.array([3.0, 2.0, 2.0, 1.0, 2.0])
    threshold = choose_threshold(scores, 0.6)
    assert threshold == 2.0 and (scores >= threshold).mean() == pytest.approx(0.8)
    with pytest.raises(ValueError):
        choose_threshold(scores, 0.0)
    with pytest.raises(ValueError):
        choose_threshold(np.array([1.0, np.nan]))


# --- measures ---

def synthetic(seed: int = 0, ties: bool = False):
    rng = np.random.default_rng(seed)
    is_known = np.r_[np.ones(300, bool), np.zeros(200, bool)]
    scores = np.where(is_known, rng.normal(1.0, 1.0, 500), rng.normal(0.0, 1.0, 500))
    if ties:
        scores = np.round(scores, 1)
    labels = np.where(is_known, rng.integers(0, 5, 500), rng.integers(5, 10, 500))
    return scores, is_known, labels


@pytest.mark.parametrize("ties", [False, True])
def test_auroc_and_fpr_match_independent_computations(ties):
    scores, is_known, labels = synthetic(ties=ties)
    metrics = open_set_metrics(scores, is_known, 0.5, labels, labels, KNOWN)
    # AUROC = P(known score > unknown score) + P(tie) / 2: the Mann-Whitney U over n1 * n0.
    u = mannwhitneyu(scores[is_known], scores[~is_known]).statistic
    assert metrics["auroc"] == pytest.approx(u / (is_known.sum() * (~is_known).sum()))
    # The first ROC point with TPR >= 95% is the threshold accepting 95% of the test knowns.
    threshold = choose_threshold(scores[is_known], 0.95)
    assert metrics["fpr_at_95_tpr"] == pytest.approx((scores[~is_known] >= threshold).mean())
    assert 0.5 < metrics["auroc"] < 1 and 0 < metrics["fpr_at_95_tpr"] < 1


def test_perfect_and_useless_scores():
    is_known = np.array([True, True, True, False, False])
    labels = np.array([0, 1, 2, 7, 8])
    perfect = open_set_metrics(np.array([5.0, 4.0, 3.0, 1.0, 0.0]), is_known, 3.0, labels, labels, KNOWN)
    assert perfect["auroc"] == 1.0 and perfect["fpr_at_95_tpr"] == 0.0 and perfect["open_set_accuracy"] == 1.0
    constant = open_set_metrics(np.ones(5), is_known, 1.0, labels, labels, KNOWN)
    assert constant["auroc"] == 0.5 and constant["fpr_at_95_tpr"] == 1.0 and constant["accepted_unknown"] == 1.0


def test_open_and_closed_set_accuracy_by_hand():
    true_labels = np.array([0, 1, 1, 0, 5, 7])
    closed_pred = np.array([0, 1, 0, 0, 1, 0])   # positions in known = (0, 1)
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.1])
    metrics = open_set_metrics(scores, known_mask(true_labels, (0, 1)), 0.5, closed_pred, true_labels, (0, 1))
    # Known: right + accepted, right + accepted, wrong + accepted, right + rejected -> closed 3/4, open 2 of them.
    # Unknown: accepted (wrong), rejected (right).
    assert metrics["closed_set_accuracy"] == pytest.approx(3 / 4)
    assert metrics["open_set_accuracy"] == pytest.approx(3 / 6)
    assert metrics["accepted_known"] == pytest.approx(3 / 4) and metrics["accepted_unknown"] == pytest.approx(1 / 2)
    assert metrics["threshold"] == 0.5
    assert all(type(value) is float for value in metrics.values())
    json.dumps(metrics, allow_nan=False)
    wrong_truth = known_mask(true_labels, (0, 1)) | (true_labels == 7)
    with pytest.raises(ValueError, match="disagrees"):
        open_set_metrics(scores, wrong_truth, 0.5, closed_pred, true_labels, (0, 1))
    with pytest.raises(ValueError, match="finite"):
        open_set_metrics(np.r_[scores[:-1], np.nan], known_mask(true_labels, (0, 1)), 0.5, closed_pred,
                         true_labels, (0, 1))


def test_roc_table_is_finite_and_json_ready():
    scores, is_known, _ = synthetic(ties=True)
    table = roc_table(scores, is_known)
    assert list(table.columns) == ["fpr", "tpr"]
    assert np.isfinite(table.to_numpy()).all()
    assert table.iloc[0].tolist() == [0.0, 0.0] and table.iloc[-1].tolist() == [1.0, 1.0]
    assert (np.diff(table["fpr"]) >= 0).all() and (np.diff(table["tpr"]) >= 0).all()
    json.dumps(table.to_dict(orient="records"), allow_nan=False)


# --- the known head ---

def test_known_head_class_loss_ignores_unknown_examples():
    """One training step from the same weights: the unknowns' class targets change nothing, while
    the same change without the mask does change the weights (so the check can fail)."""
    rng = np.random.default_rng(0)
    x_known, x_unknown = rng.random((12, 6), dtype=np.float32), rng.random((8, 6), dtype=np.float32)
    y_known = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 12)]
    other_targets = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)]
    network = build_known_head_model((8,), "tanh", 3, 6, seed=0, learning_rate=0.1)
    network.optimizer.build(network.trainable_variables)
    initial = network.get_weights()
    initial_optimizer = [variable.numpy() for variable in network.optimizer.variables]

    def one_step(unknown_targets, masked: bool = True) -> list[np.ndarray]:
        network.set_weights(initial)
        # Adam's step count and moments too: each step starts from the same state.
        for variable, value in zip(network.optimizer.variables, initial_optimizer, strict=True):
            variable.assign(value)
        x, targets, weights = known_head_data(x_known, y_known, x_unknown, unknown_targets)
        if not masked:
            weights = {**weights, "classes": np.ones_like(weights["classes"])}
        network.train_on_batch(x, targets, sample_weight=weights)
        return network.get_weights()

    def same(a, b) -> bool:
        return all(np.allclose(u, v, rtol=0, atol=1e-7) for u, v in zip(a, b, strict=True))

    assert not same(one_step(None), initial)
    assert same(one_step(None), one_step(other_targets))
    assert same(one_step(other_targets), one_step(np.full((8, 3), 1e3, np.float32)))
    assert not same(one_step(np.roll(other_targets, 1, axis=1), masked=False), one_step(other_targets, masked=False))


# --- end to end on the 8x8 digits ---

def split_known(split, known=KNOWN):
    mask = known_mask(split.labels, known)
    return split.x[mask], np.eye(len(known), dtype=np.float32)[remap_known(split.labels[mask], known)], split.x[~mask]


@pytest.fixture(scope="module")
def open_set_results(study, digits):
    train_x, train_y, train_unknown = split_known(digits.train)
    val_x, val_y, val_unknown = split_known(digits.val)
    test = digits.test
    is_known = known_mask(test.labels, KNOWN)
    keras.utils.set_random_seed(1)

    # (a) and (b): a plain 5-class classifier from the study's own builder, known digits only.
    model = replace(study.base, hidden_units=(32, 32), activation="relu", initializer="glorot_uniform",
                    optimizer="adam", learning_rate=0.01, regularizer="none", dropout=0.0)
    classifier = build_model(model, input_dim=64, num_classes=len(KNOWN), seed=1)
    classifier.fit(train_x, train_y, epochs=15, batch_size=32, validation_data=(val_x, val_y), verbose=0)
    proba = classifier.predict(test.x, verbose=0)
    closed_pred = proba.argmax(axis=1)
    features = feature_model(classifier)
    centroids = class_centroids(features.predict(train_x, verbose=0), train_y.argmax(axis=1), len(KNOWN))
    msp = max_softmax_scores(proba)
    centroid = centroid_scores(features.predict(test.x, verbose=0), centroids)
    msp_threshold = choose_threshold(max_softmax_scores(classifier.predict(val_x, verbose=0)))
    centroid_threshold = choose_threshold(centroid_scores(features.predict(val_x, verbose=0), centroids))

    # (c): unknowns from the training split only; the test digits 5-9 are never seen.
    two_heads = build_known_head_model((32, 32), "relu", len(KNOWN), input_dim=64, seed=1, learning_rate=0.01)
    history = fit_known_head(two_heads, train_x, train_y, train_unknown, epochs=15, batch_size=32, seed=1,
                             validation=(val_x, val_y, val_unknown))
    heads = two_heads.predict(test.x, verbose=0)
    head_threshold = choose_threshold(two_heads.predict(val_x, verbose=0)["known"].ravel())

    return {
        "msp": open_set_metrics(msp, is_known, msp_threshold, closed_pred, test.labels, KNOWN),
        "centroid": open_set_metrics(centroid, is_known, centroid_threshold, closed_pred, test.labels, KNOWN),
        "known_head": open_set_metrics(heads["known"].ravel(), is_known, head_threshold,
                                       heads["classes"].argmax(axis=1), test.labels, KNOWN),
        "history": history,
    }


def test_softmax_and_centroid_scores_detect_unknown_digits(open_set_results):
    for method in ("msp", "centroid"):
        metrics = open_set_results[method]
        assert metrics["auroc"] > 0.6, (method, metrics)
        assert metrics["closed_set_accuracy"] > 0.9, (method, metrics)
        # A threshold fitted on validation knowns accepts about 95% of the test knowns.
        assert metrics["accepted_known"] > 0.8, (method, metrics)


def test_known_head_rejects_held_out_unknowns(open_set_results):
    metrics, history = open_set_results["known_head"], open_set_results["history"]
    assert metrics["auroc"] > 0.8, metrics
    assert metrics["closed_set_accuracy"] > 0.9, metrics
    assert metrics["accepted_unknown"] < 0.5 and metrics["accepted_known"] > 0.8, metrics
    assert history["known_loss"][-1] < history["known_loss"][0]
    assert {"classes_loss", "known_loss", "val_loss"} <= set(history)
