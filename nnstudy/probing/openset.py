"""Open-set recognition: train on some digits ("known"), test on all of them, reject the rest ("unknown").

Every method gives each test example a *knownness score* (higher = more likely known) and accepts it
when the score reaches a threshold picked on known validation examples only:

(a) the maximum softmax probability of a K-class classifier (MSP, the standard baseline);
(b) minus the distance to the nearest class centroid in that classifier's last hidden layer
    (centroids of the known training examples: no unknown example is used to fit it);
(c) the output of an extra sigmoid "known" head trained next to the class head, with unknown
    examples taken from a part of the data that is never tested (outlier exposure).

The scoring and the measures are NumPy + scikit-learn; Keras is imported only by the functions that
build or train a network, so importing this module does not fix the Keras backend.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from sklearn.metrics import accuracy_score, pairwise_distances, roc_auc_score, roc_curve

if TYPE_CHECKING:
    import keras
    import pandas as pd

# The operating point the open-set literature reports: accept 95% of the known examples.
TPR_TARGET = 0.95

# tpr * n computed in floating point can land a hair above a whole number (0.7 * 10 = 7.000000000000001),
# and its ceiling would then ask for one example too many.
_COUNT_DECIMALS = 9

_HIDDEN = re.compile(r"hidden_(\d+)$")


# --- labels ---

def known_mask(labels: np.ndarray, known: Sequence[int]) -> np.ndarray:
    """True where the label is one of the known digits."""
    return np.isin(np.asarray(labels), np.asarray(list(known)))


def remap_known(labels: np.ndarray, known: Sequence[int]) -> np.ndarray:
    """Known digit -> its position in `known` (0..K-1), the class index the K-way networks use;
    every other label -> -1, so the result can still be lined up with all the test examples."""
    known = list(known)
    if len(set(known)) != len(known):
        raise ValueError(f"known digits must be distinct, got {known}")
    labels = np.asarray(labels)
    index = np.full(labels.shape, -1, dtype=np.int64)
    for position, digit in enumerate(known):
        index[labels == digit] = position
    return index


# --- knownness scores ---

def max_softmax_scores(proba: np.ndarray) -> np.ndarray:
    """(a) The largest class probability per row: a confident network is taken to know the input."""
    return np.asarray(proba, dtype=np.float64).max(axis=1)


def class_centroids(features: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, D): the mean feature vector of each class 0..K-1 (every class must have an example)."""
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=num_classes)
    if len(counts) > num_classes or (counts == 0).any():
        raise ValueError(f"labels must cover each class 0..{num_classes - 1} and nothing else, "
                         f"got counts {counts.tolist()}")
    sums = np.zeros((num_classes, features.shape[1]))
    np.add.at(sums, labels, features)
    return sums / counts[:, None]


def centroid_scores(features: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(b) Minus the Euclidean distance to the nearest centroid: near some class's centre = known."""
    # scikit-learn computes float32 inputs in float64 blocks, so the distances are as exact as cdist's.
    distances = pairwise_distances(np.asarray(features, dtype=np.float64), np.asarray(centroids, dtype=np.float64),
                                   metric="euclidean")
    return -distances.min(axis=1)


# --- threshold and measures ---

def choose_threshold(known_val_scores: np.ndarray, tpr: float = TPR_TARGET) -> float:
    """The score that accepts `tpr` of the known validation examples, accepting score >= threshold.

    It is the ceil(tpr * n)-th highest score (the empirical (1 - tpr) quantile taken from above), so
    at least that share is accepted. Tie rule: every example scoring exactly the threshold is
    accepted, so a tie at the threshold can push the accepted share above `tpr`, never below it.
    """
    scores = np.asarray(known_val_scores, dtype=np.float64).ravel()
    if not 0.0 < tpr <= 1.0:
        raise ValueError(f"tpr must be in (0, 1], got {tpr}")
    if len(scores) == 0 or not np.isfinite(scores).all():
        raise ValueError("need at least one known validation score, all finite")
    count = max(1, math.ceil(round(tpr * len(scores), _COUNT_DECIMALS)))
    return float(np.sort(scores)[len(scores) - count])


def _check_scores(scores: np.ndarray, is_known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    is_known = np.asarray(is_known, dtype=bool).ravel()
    if scores.shape != is_known.shape:
        raise ValueError(f"scores and is_known must have the same length, got {len(scores)} and {len(is_known)}")
    # A diverged network scores NaN; ROC measures are undefined then, and scikit-learn's error is cryptic.
    if not np.isfinite(scores).all():
        raise ValueError("knownness scores must be finite (did the network diverge?)")
    if is_known.all() or not is_known.any():
        raise ValueError("need both known and unknown examples to measure open-set recognition")
    return scores, is_known


def open_set_metrics(scores: np.ndarray, is_known: np.ndarray, threshold: float, closed_pred: np.ndarray,
                     true_labels: np.ndarray, known: Sequence[int]) -> dict[str, float]:
    """How well one method separates known from unknown test examples, as plain floats.

    scores: knownness per test example; is_known: the truth (must agree with true_labels and known);
    closed_pred: the K-way prediction (0..K-1, positions in `known`); true_labels: the digits.

    auroc: known is the positive class (1 = perfect, 0.5 = chance), free of any threshold.
    fpr_at_95_tpr: the share of unknowns accepted at the highest threshold accepting >= 95% of the
    test knowns (the first ROC point with TPR >= 0.95).
    closed_set_accuracy: the K-way accuracy on the known examples, as if no unknown existed.
    open_set_accuracy: (K+1)-way accuracy at `threshold`: a known example counts when accepted and
    classified right, an unknown one when rejected.
    """
    scores, is_known = _check_scores(scores, is_known)
    true_index = remap_known(np.asarray(true_labels).ravel(), known)
    if not np.array_equal(true_index >= 0, is_known):
        raise ValueError("is_known disagrees with true_labels and known")
    closed_pred = np.asarray(closed_pred).ravel()
    accepted = scores >= threshold

    # drop_intermediate=False: the default drops collinear ROC points, and the first point reaching
    # TPR 0.95 may be one of them, which would report the FPR of a later, worse threshold.
    fpr, tpr, _ = roc_curve(is_known, scores, drop_intermediate=False)
    at_target = int(np.argmax(tpr >= TPR_TARGET - 1e-12))  # TPRs are ratios: allow rounding at exactly 0.95

    # The K+1-way task: "unknown" is class K, predicted wherever the example is rejected.
    num_known = len(list(known))
    open_truth = np.where(is_known, true_index, num_known)
    open_pred = np.where(accepted, closed_pred, num_known)
    return {
        "auroc": float(roc_auc_score(is_known, scores)),
        "fpr_at_95_tpr": float(fpr[at_target]),
        "closed_set_accuracy": float(accuracy_score(true_index[is_known], closed_pred[is_known])),
        "open_set_accuracy": float(accuracy_score(open_truth, open_pred)),
        "threshold": float(threshold),
        "accepted_known": float(accepted[is_known].mean()),
        "accepted_unknown": float(accepted[~is_known].mean()),
    }


def roc_table(scores: np.ndarray, is_known: np.ndarray) -> pd.DataFrame:
    """The ROC curve as fpr, tpr columns for `dvc plots`.

    No threshold column: scikit-learn's first threshold is inf (the "accept nothing" point), which
    strict JSON cannot hold.
    """
    import pandas as pd

    scores, is_known = _check_scores(scores, is_known)
    fpr, tpr, _ = roc_curve(is_known, scores)
    return pd.DataFrame({"fpr": fpr.astype(np.float64), "tpr": tpr.astype(np.float64)})


# --- networks (Keras) ---

def feature_model(network: keras.Model) -> keras.Model:
    """The last hidden layer's activations of a network whose hidden Dense layers are named hidden_1,
    hidden_2, ... (nnstudy.training.models.build_model, or build_known_head_model)."""
    import keras

    hidden = [(int(match.group(1)), layer) for layer in network.layers if (match := _HIDDEN.match(layer.name))]
    if not hidden:
        raise ValueError(f"{network.name}: no layer named hidden_<n>; build it with build_model")
    # By number, not by name: "hidden_10" sorts before "hidden_2".
    last = max(hidden, key=lambda pair: pair[0])[1]
    return keras.Model(inputs=network.inputs, outputs=last.output, name=f"{network.name}_features")


def build_known_head_model(hidden_units: Sequence[int], activation: str, num_known: int, input_dim: int,
                           seed: int, learning_rate: float) -> keras.Model:
    """(c) One MLP body, two heads: a `classes` softmax over the K known digits and a one-neuron
    sigmoid `known`. Compiled with Adam; the class loss is a mean over the known examples only."""
    import keras

    inputs = keras.Input(shape=(input_dim,), name="pixels")
    hidden = inputs
    for index, units in enumerate(hidden_units):
        hidden = keras.layers.Dense(
            units, activation=activation,
            # Seeded per layer, as build_model does: one shared seed would correlate the layers.
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed + index),
            name=f"hidden_{index + 1}",
        )(hidden)
    head_seed = seed + len(hidden_units)
    classes = keras.layers.Dense(num_known, activation="softmax", name="classes",
                                 kernel_initializer=keras.initializers.GlorotUniform(seed=head_seed))(hidden)
    known = keras.layers.Dense(1, activation="sigmoid", name="known",
                               kernel_initializer=keras.initializers.GlorotUniform(seed=head_seed + 1))(hidden)
    network = keras.Model(inputs, {"classes": classes, "known": known}, name="mlp_known_head")
    network.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss={
            # Divided by the summed sample weights (the number of known examples in the batch), not
            # by the batch size: the class loss stays a per-known-example mean however many
            # unknowns share the batch, so it is comparable with the plain classifier's loss.
            "classes": keras.losses.CategoricalCrossentropy(reduction="mean_with_sample_weight"),
            "known": keras.losses.BinaryCrossentropy(),
        },
        # Weighted: the class accuracy counts known examples only (the unknowns have weight 0).
        weighted_metrics={"classes": ["accuracy"], "known": ["accuracy"]},
    )
    return network


def known_head_data(x_known: np.ndarray, y_known_onehot: np.ndarray, x_unknown: np.ndarray,
                    unknown_class_targets: np.ndarray | None = None,
                    ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Inputs, targets and per-output sample weights for the two-headed network.

    Known examples: their class, known = 1. Unknown examples: known = 0 and class weight 0, so
    whatever their class target says (zeros unless `unknown_class_targets` is given) never reaches
    the class loss or its gradient.
    """
    y_known_onehot = np.asarray(y_known_onehot, dtype=np.float32)
    n_known, n_unknown = len(x_known), len(x_unknown)
    if unknown_class_targets is None:
        unknown_class_targets = np.zeros((n_unknown, y_known_onehot.shape[1]), dtype=np.float32)
    x = np.concatenate([x_known, x_unknown]).astype(np.float32)
    targets = {
        "classes": np.concatenate([y_known_onehot, np.asarray(unknown_class_targets, dtype=np.float32)]),
        "known": np.concatenate([np.ones(n_known), np.zeros(n_unknown)]).astype(np.float32)[:, None],
    }
    weights = {
        "classes": np.concatenate([np.ones(n_known), np.zeros(n_unknown)]).astype(np.float32),
        "known": np.ones(n_known + n_unknown, dtype=np.float32),
    }
    return x, targets, weights


def fit_known_head(network: keras.Model, x_known: np.ndarray, y_known_onehot: np.ndarray, x_unknown: np.ndarray,
                   epochs: int, batch_size: int, seed: int,
                   validation: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                   checkpoint=None) -> dict[str, list[float]]:
    """Train the two-headed network on known and unknown examples, mixed and shuffled each epoch.

    validation: (x_known, y_known_onehot, x_unknown) held out the same way, or None.
    checkpoint: a nnstudy.training.resume.SeedCheckpoint: the state is saved there after every
    epoch, and a killed run's state is resumed from it.
    Returns the Keras history as plain floats (loss, classes_loss, known_loss, accuracies, val_*).
    """
    import keras

    x, targets, weights = known_head_data(x_known, y_known_onehot, x_unknown)
    validation_data = None if validation is None else known_head_data(*validation)
    # Seeds the shuffling order (NumPy's global generator); same seed, same run.
    keras.utils.set_random_seed(seed)
    batch_size = min(batch_size, len(x))
    callbacks, resumed, initial_epoch = [], None, 0
    if checkpoint is not None:
        from nnstudy.training.resume import Checkpointing, resume_network

        resumed = checkpoint.load()
        if resumed is not None:
            first = (x[:batch_size], {k: v[:batch_size] for k, v in targets.items()},
                     {k: v[:batch_size] for k, v in weights.items()})
            resume_network(network, resumed, first)
            initial_epoch = resumed.epoch
            print(f"  resuming the known head at epoch {initial_epoch + 1} of {epochs}", flush=True)
        callbacks.append(Checkpointing(checkpoint, epochs, resumed))
    history = network.fit(x, targets, sample_weight=weights, batch_size=batch_size, epochs=epochs,
                          validation_data=validation_data, shuffle=True, verbose=0, callbacks=callbacks,
                          initial_epoch=initial_epoch).history
    before = resumed.history if resumed is not None else {}
    return {name: [*before.get(name, []), *(float(v) for v in values)] for name, values in history.items()}
