"""What a digit classifier says about inputs that are not digits: blank, noise, inverted digits, clothes.

A softmax network has no "none of these" answer: every input gets a probability distribution over
the digits. This module makes such inputs (NumPy only), tabulates how confident the network is on
them, and asks how well its confidence alone tells real digits from each kind (max-softmax
baseline of out-of-distribution detection: Hendrycks & Gimpel, 2017).
"""

import math

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402  (matplotlib's own dependency: no new package)
from sklearn.metrics import roc_auc_score  # noqa: E402

from nnstudy.evaluation.metrics import predicted_labels  # noqa: E402

# The kinds made without any real images, in the order tables and figures list them.
NOISE_KINDS = ("blank", "white", "uniform_noise", "gaussian_noise", "salt_and_pepper")
# The name of the real test digits' own row and histogram.
DIGITS = "digits"
GAUSSIAN_MEAN, GAUSSIAN_SD = 0.5, 0.25
# Salt and pepper on a black background, as MNIST's digits are drawn: 20 % of the pixels turn
# white (1). "Pepper" (0) would be invisible on black, so only the salt half is drawn. 20 % is
# about MNIST's share of inked pixels (~19 % are non-zero): as much ink as a digit, no strokes.
SALT_SHARE = 0.2
# A prediction this confident counts as "sure" in the table.
CONFIDENT = 0.9
# Confidence histograms: 1/num_classes is the lowest possible max softmax, so [0, 1] holds all.
HISTOGRAM_BINS = np.linspace(0.0, 1.0, 41)


def _stream(seed: int, kind: str) -> np.random.Generator:
    """One random stream per kind, so adding a kind (or passing `digits`) never changes the others."""
    return np.random.default_rng([seed, *kind.encode()])


def _pick(images: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n of the images, drawn at random; with replacement only when there are fewer than n."""
    return images[rng.choice(len(images), size=n, replace=len(images) < n)]


def _to_unit(images: np.ndarray) -> np.ndarray:
    """Integer images (e.g. Fashion-MNIST's uint8) scaled by their type's range; floats clipped to [0, 1]."""
    if np.issubdtype(images.dtype, np.integer):
        return images.astype(np.float32) / np.float32(np.iinfo(images.dtype).max)
    return np.clip(images.astype(np.float32), 0.0, 1.0)


def _resize(images: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    """(N, H, W) in [0, 1] to (N, h, w) by area averaging (PIL's box filter), e.g. 28x28 -> 8x8.

    Averaging every source pixel that covers a target pixel is how sklearn's 8x8 digits were made
    from larger bitmaps (counts of inked pixels per block), so the clothes look like they do.
    """
    if images.shape[1:] == image_shape:
        return images
    height, width = image_shape
    return np.stack([
        # A 2-D float32 array becomes a PIL "F" (32-bit float) image: no rounding to 8 bits.
        np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BOX))
        for image in images.astype(np.float32)
    ])


def nondigit_inputs(image_shape: tuple[int, int], n: int, seed: int, digits: np.ndarray | None = None,
                    fashion: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """n flattened float32 rows in [0, 1] per kind of non-digit input; seeded, deterministic.

    digits: real digits, rows of a prepared split (already in [0, 1]) or (N, H, W) images; they
    give `inverted_digits` (white background, black strokes). fashion: Fashion-MNIST images, any
    size, uint8 or floats in [0, 1]; they give `fashion_mnist`, resized to image_shape. A kind
    whose images are not given is absent.
    """
    size = math.prod(image_shape)
    kinds = {
        "blank": np.zeros((n, size), np.float32),
        "white": np.ones((n, size), np.float32),
        "uniform_noise": _stream(seed, "uniform_noise").random((n, size), dtype=np.float32),
        "gaussian_noise": np.clip(_stream(seed, "gaussian_noise").normal(GAUSSIAN_MEAN, GAUSSIAN_SD, (n, size)),
                                  0.0, 1.0).astype(np.float32),
        "salt_and_pepper": (_stream(seed, "salt_and_pepper").random((n, size)) < SALT_SHARE).astype(np.float32),
    }
    if digits is not None:
        flat = _to_unit(digits.reshape(len(digits), -1))
        if flat.shape[1] != size:
            raise ValueError(f"digits have {flat.shape[1]} pixels each, image_shape {image_shape} needs {size}")
        kinds["inverted_digits"] = 1.0 - _pick(flat, n, _stream(seed, "inverted_digits"))
    if fashion is not None:
        if fashion.ndim != 3:
            raise ValueError(f"fashion images must be (N, H, W), got {fashion.shape}")
        chosen = _pick(fashion, n, _stream(seed, "fashion_mnist"))
        # Box filtering keeps values within their inputs' range; the clip only absorbs rounding.
        kinds["fashion_mnist"] = np.clip(_resize(_to_unit(chosen), image_shape).reshape(n, size), 0.0, 1.0)
    return kinds


def max_confidence(proba: np.ndarray) -> np.ndarray:
    """Each row's largest softmax probability: how sure the network is of its answer."""
    return np.asarray(proba, dtype=np.float64).max(axis=1)


def detection_auroc(digit_confidence: np.ndarray, other_confidence: np.ndarray) -> float:
    """AUROC of "confidence is higher" as a detector of real digits (positive) against another kind.

    1: every real digit gets more confidence than every input of the kind; 0.5: no better than a
    coin; below 0.5: the network is *more* sure of the non-digits. NaN when a score is not finite
    (a diverged network), which scikit-learn would refuse.
    """
    scores = np.concatenate([digit_confidence, other_confidence])
    if not np.isfinite(scores).all():
        return float("nan")
    truth = np.concatenate([np.ones(len(digit_confidence)), np.zeros(len(other_confidence))])
    return float(roc_auc_score(truth, scores))


def _row(kind: str, proba: np.ndarray, auroc: float | None) -> dict:
    confidence = max_confidence(proba)
    labels = predicted_labels(proba)
    # Ties go to the lower digit; rows with non-finite output (label -1) predict nothing.
    counts = np.bincount(labels[labels >= 0], minlength=proba.shape[1])
    return {
        "kind": kind,
        "n": len(proba),
        "mean_confidence": float(confidence.mean()),
        "median_confidence": float(np.median(confidence)),
        "share_confident": float((confidence > CONFIDENT).mean()),
        "top_digit": int(counts.argmax()),
        "top_digit_share": float(counts.max() / len(proba)),
        "auroc": auroc,
    }


def confidence_table(proba_by_kind: dict[str, np.ndarray], digit_proba: np.ndarray) -> pd.DataFrame:
    """One row per kind, the real test digits first: confidence (mean, median, share above
    CONFIDENT), the digit most often predicted and its share, and the AUROC of max-softmax
    confidence at telling real digits from the kind. The digits' own AUROC is empty (NaN).
    """
    digit_confidence = max_confidence(digit_proba)
    rows = [_row(DIGITS, digit_proba, None)]
    rows += [_row(kind, proba, detection_auroc(digit_confidence, max_confidence(proba)))
             for kind, proba in proba_by_kind.items()]
    table = pd.DataFrame(rows)
    table["auroc"] = table["auroc"].astype(float)  # None -> NaN: a float column, empty in CSV
    return table


def confidence_histograms(proba_by_kind: dict[str, np.ndarray], digit_proba: np.ndarray) -> plt.Figure:
    """Small multiples: each kind's max-softmax confidence against the real test digits' (grey).

    Bars are shares of each group, not counts, so 100 noise images and 300 digits compare directly.
    """
    digit_confidence = max_confidence(digit_proba)
    columns = min(4, max(1, len(proba_by_kind)))
    rows = max(1, math.ceil(len(proba_by_kind) / columns))
    figure, grid = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows), squeeze=False,
                                sharex=True, sharey=True)
    for axes in grid.ravel()[len(proba_by_kind):]:
        axes.axis("off")
    for axes, (kind, proba) in zip(grid.ravel(), proba_by_kind.items()):
        confidence = max_confidence(proba)
        for values, color, label in ((digit_confidence, "tab:gray", "real digits"), (confidence, "tab:red", kind)):
            finite = values[np.isfinite(values)]
            axes.hist(finite, bins=HISTOGRAM_BINS, weights=np.full(len(finite), 1 / max(1, len(values))),
                      color=color, alpha=0.55, label=label)
        axes.set_title(f"{kind} (AUROC {detection_auroc(digit_confidence, confidence):.2f})", fontsize=9)
        axes.axvline(CONFIDENT, color="k", lw=0.6, ls="--")
        axes.grid(alpha=0.3)
    for axes in grid[-1]:
        axes.set_xlabel("max softmax probability")
    for axes in grid[:, 0]:
        axes.set_ylabel("share of inputs")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.55) for c in ("tab:gray", "tab:red")]
    figure.legend(handles, ["real test digits", "the panel's kind"], loc="upper right", fontsize=8)
    figure.suptitle("How sure the network is: non-digit inputs vs real digits")
    figure.tight_layout()
    return figure
