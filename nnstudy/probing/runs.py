"""One seed's run of each probe: open-set recognition, non-digit inputs and dream images.

The stages (openset, nondigit, dreams) call these once per training seed and summarise the
spread; the pieces they combine live in openset.py, nondigit.py and dreams.py.
"""

from dataclasses import dataclass, replace
from pathlib import Path

import keras
import numpy as np

from nnstudy.core.data import PreparedData, Split
from nnstudy.core.errors import DataError
from nnstudy.core.params import DataParams, ModelParams
from nnstudy.probing import openset
from nnstudy.probing.nondigit import nondigit_inputs

METHODS = ("max_softmax", "centroid", "known_head")


@dataclass(frozen=True)
class OpenSetRun:
    metrics: dict[str, dict[str, float]]          # method -> open_set_metrics(...)
    scores: dict[str, np.ndarray]                 # method -> knownness of every test example
    nondigit_accepted: dict[str, dict[str, float]]  # method -> kind -> share accepted as a known digit


def known_subset(split: Split, known: tuple[int, ...]) -> Split:
    """The examples of the known digits, their one-hot targets over the K known classes."""
    mask = openset.known_mask(split.labels, known)
    targets = keras.utils.to_categorical(openset.remap_known(split.labels[mask], known), len(known))
    return Split(split.x[mask], targets.astype(np.float32))


def fashion_images(data_params: DataParams, image_shape: tuple[int, int]) -> tuple[np.ndarray | None, str]:
    """Fashion-MNIST test images as non-digits, when the Debian package put them on this machine."""
    from nnstudy.core.data import fetch

    try:
        raw = fetch(replace(data_params, dataset="fashion-mnist"))
    except DataError as error:
        return None, (f"Fashion-MNIST is not on this machine ({error.__class__.__name__}: its IDX files are missing "
                      "from data.fashion_mnist_dir), so it is left out; `apt-get install dataset-fashion-mnist` adds it")
    return raw.x_test, f"Fashion-MNIST test images from {data_params.fashion_mnist_dir}, resized to {image_shape}"


def probe_inputs(data: PreparedData, n: int, seed: int, fashion: np.ndarray | None) -> dict[str, np.ndarray]:
    """The non-digit kinds; inverted digits come from the test split (never trained on)."""
    return nondigit_inputs(data.image_shape, n, seed, digits=data.test.x[:n], fashion=fashion)


def run_openset(model: ModelParams, data: PreparedData, known: tuple[int, ...], train_unknowns: tuple[int, ...],
                tpr: float, seed: int, live, loss_limit: float, loop: str,
                nondigit: dict[str, np.ndarray], checkpoint_dir: Path | None = None) -> OpenSetRun:
    """Train on the known digits, score every test digit, pick each threshold on validation knowns.

    (a) max softmax and (b) distance to the nearest class centroid in the last hidden layer use
    one classifier that never saw an unknown; (c) the known head is trained with the training
    split's examples of `train_unknowns` (the test split is never trained on).
    checkpoint_dir: where each network's state goes every epoch (nnstudy.training.resume), so that a
    killed run resumes; None for none.
    """
    from nnstudy.training.loop import train  # Keras-heavy: only the openset stage needs it
    from nnstudy.training.resume import SeedCheckpoint

    def checkpoint(network: str) -> SeedCheckpoint | None:
        return None if checkpoint_dir is None else SeedCheckpoint(checkpoint_dir / network, seed)

    known_data = PreparedData(known_subset(data.train, known), known_subset(data.val, known),
                              known_subset(data.test, known), data.image_shape, len(known))
    classifier = train(model, known_data, seed, live, loss_limit, loop, label=f"open set seed {seed}",
                       checkpoint=checkpoint("classifier")).network
    features = openset.feature_model(classifier)
    centroids = openset.class_centroids(predict(features, known_data.train.x), known_data.train.labels, len(known))
    val_known = known_data.val.x

    def max_softmax(x: np.ndarray) -> np.ndarray:
        return openset.max_softmax_scores(predict(classifier, x))

    def centroid(x: np.ndarray) -> np.ndarray:
        return openset.centroid_scores(predict(features, x), centroids)

    head = openset.build_known_head_model(model.hidden_units, model.activation, len(known), data.train.x.shape[1],
                                          seed, model.learning_rate)
    unknown_train = np.isin(data.train.labels, train_unknowns)
    unknown_val = np.isin(data.val.labels, train_unknowns)
    openset.fit_known_head(head, known_data.train.x, known_data.train.y, data.train.x[unknown_train], model.epochs,
                           int(min(256 if model.batch_size == "full" else model.batch_size, len(data.train.x))), seed,
                           validation=(val_known, known_data.val.y, data.val.x[unknown_val]),
                           checkpoint=checkpoint("known_head"))

    def known_head(x: np.ndarray) -> np.ndarray:
        return predict(head, x)["known"].ravel()

    closed = {"max_softmax": predict(classifier, data.test.x).argmax(axis=1),
              "known_head": predict(head, data.test.x)["classes"].argmax(axis=1)}
    closed["centroid"] = closed["max_softmax"]
    is_known = openset.known_mask(data.test.labels, known)
    metrics, scores, accepted = {}, {}, {}
    for name, score in (("max_softmax", max_softmax), ("centroid", centroid), ("known_head", known_head)):
        threshold = openset.choose_threshold(score(val_known), tpr)
        scores[name] = score(data.test.x)
        metrics[name] = openset.open_set_metrics(scores[name], is_known, threshold, closed[name], data.test.labels,
                                                 known)
        accepted[name] = {kind: float((score(x) >= threshold).mean()) for kind, x in nondigit.items()}
    return OpenSetRun(metrics, scores, accepted)


def predict(network: keras.Model, x: np.ndarray):
    return network.predict(x, batch_size=1024, verbose=0)
