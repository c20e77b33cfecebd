"""Figures for the report: matplotlib + seaborn, drawn off-screen, saved as PNG."""

from pathlib import Path

from nnstudy.core.files import atomic

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from sklearn.metrics import auc, roc_curve  # noqa: E402

# A violin's shape is settled long before 100k points; sampling keeps each figure under a second.
VIOLIN_SAMPLE = 20_000


def save(figure: plt.Figure, path: Path) -> None:
    # No timestamp in the PNG, so an unchanged figure stays byte-identical.
    with atomic(path) as temporary:
        figure.savefig(temporary, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)


def weight_violins(weights: dict[str, dict[str, np.ndarray]], title: str, seed: int = 0) -> plt.Figure:
    """Each layer's kernel weights before vs after training, as split violins."""
    rng = np.random.default_rng(seed)
    rows, dropped = [], 0
    for when in ("before", "after"):
        for name, values in weights[when].items():
            if not name.endswith("kernel"):
                continue
            flat = values.ravel()
            finite = flat[np.isfinite(flat)]
            dropped += flat.size - finite.size
            if finite.size > VIOLIN_SAMPLE:
                finite = rng.choice(finite, VIOLIN_SAMPLE, replace=False)
            rows.append(pd.DataFrame({"layer": name.split("/")[0], "training": when, "weight": finite}))
    table = pd.concat(rows, ignore_index=True)
    figure, axes = plt.subplots(figsize=(7, 4))
    sns.violinplot(data=table, x="layer", y="weight", hue="training", split=True, inner="quart",
                   density_norm="width", cut=0, ax=axes)
    if dropped:
        title += f"\n({dropped:,} non-finite weights omitted)"
    axes.set_title(title)
    return figure


def confusion_heatmap(matrix: np.ndarray, title: str) -> plt.Figure:
    """A row-normalized confusion matrix: row = true class, column = predicted."""
    figure, axes = plt.subplots(figsize=(6, 5))
    sns.heatmap(matrix, annot=True, fmt=".2f", cmap="Blues", vmin=0, vmax=1, square=True,
                annot_kws={"size": 7}, ax=axes)
    axes.set(xlabel="predicted", ylabel="true", title=title)
    return figure


VERDICT_COLOURS = {"significant": "tab:red", "inconclusive": "tab:gray", "not tested": "tab:gray"}
EQUIVALENT_COLOUR = "tab:green"


def on_scale(diff: np.ndarray) -> np.ndarray:
    """The differences the axis is zoomed to: within 5 median absolute deviations of the median
    difference (at least 2 points). A collapse to chance (-83 points) would otherwise stretch the
    axis until the one-point differences among the working variants vanish."""
    centre = np.median(diff)
    scale = max(np.median(np.abs(diff - centre)), 0.4)
    return np.abs(diff - centre) <= 5 * scale


def variant_comparison(rows: pd.DataFrame, base: str) -> plt.Figure:
    """A forest plot: each variant's change of mean test accuracy from `base` (points, b - a) with its
    95 % interval, coloured by verdict. The axis spans the differences near the others; a collapse is
    an arrow at the axis' edge with its value written beside it, not a line across the figure."""
    ordered = rows.sort_values("diff_points")
    diff = ordered["diff_points"].to_numpy(float)
    low = ordered["ci_low_points"].fillna(ordered["diff_points"]).to_numpy(float)
    high = ordered["ci_high_points"].fillna(ordered["diff_points"]).to_numpy(float)
    near = on_scale(diff)
    left = min(low[near].min(), 0.0) - 0.5
    right = max(high[near].max(), 0.0) + 0.5
    figure, axes = plt.subplots(figsize=(8, 0.35 * len(ordered) + 1.5))
    y = np.arange(len(ordered))
    colours = [EQUIVALENT_COLOUR if str(v).startswith("equivalent") else VERDICT_COLOURS.get(str(v), "tab:blue")
               for v in ordered["verdict"]]
    for row, (d, lo, hi, colour, inside) in enumerate(zip(diff, low, high, colours, near)):
        if inside:
            axes.plot([max(lo, left), min(hi, right)], [row, row], color=colour, lw=2)
            axes.plot(d, row, "o", color=colour)
        else:
            edge = left if d < left else right
            axes.plot(edge, row, "<" if d < left else ">", color=colour, ms=9, clip_on=False)
            axes.annotate(f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}]", (edge, row), xytext=(10 if d < left else -10, 0),
                          textcoords="offset points", va="center", ha="left" if d < left else "right", fontsize=8)
    axes.axvline(0, color="black", lw=0.8)
    axes.set_yticks(y, ordered["b"].tolist())
    axes.set_xlim(left, right)
    axes.set(xlabel=f"change of mean test accuracy from {base} (points, 95 % interval)",
             title="red: significant, green: equivalent, gray: inconclusive; arrows: off the scale")
    axes.grid(axis="x", alpha=0.3)
    return figure


def roc_curves(y_true: np.ndarray, proba: np.ndarray) -> plt.Figure:
    """One-vs-rest ROC curve per class, with its AUC."""
    figure, axes = plt.subplots(figsize=(6, 6))
    for k in range(proba.shape[1]):
        fpr, tpr, _ = roc_curve(y_true == k, proba[:, k])
        axes.plot(fpr, tpr, lw=1, label=f"{k} (AUC {auc(fpr, tpr):.3f})")
    axes.plot([0, 1], [0, 1], "k--", lw=0.8)
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title="One-vs-rest ROC")
    axes.legend(fontsize=7, loc="lower right")
    return figure


def misclassified_gallery(
    images: np.ndarray, y_true: np.ndarray, proba: np.ndarray, image_shape: tuple[int, int], limit: int = 36
) -> plt.Figure:
    """The most confident mistakes: true label, predicted label and the network's confidence."""
    y_pred = proba.argmax(axis=1)
    wrong = np.flatnonzero(y_pred != y_true)
    wrong = wrong[np.argsort(-proba[wrong, y_pred[wrong]], kind="stable")][:limit]
    columns = 6
    rows = max(1, int(np.ceil(len(wrong) / columns)))
    figure, grid = plt.subplots(rows, columns, figsize=(columns * 1.6, rows * 1.9), squeeze=False)
    for axes in grid.ravel():
        axes.axis("off")
    for axes, index in zip(grid.ravel(), wrong):
        axes.imshow(images[index].reshape(image_shape), cmap="gray_r")
        axes.set_title(f"true {y_true[index]} → {y_pred[index]}\n{proba[index, y_pred[index]]:.0%}", fontsize=8)
    figure.suptitle(f"{len(wrong)} most confident of {int((y_pred != y_true).sum())} misclassified test images")
    return figure


def error_histograms(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> plt.Figure:
    """Left: errors per true class. Right: for each true class, what it was mistaken for."""
    wrong = y_pred != y_true
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    counts = np.bincount(y_true[wrong], minlength=num_classes)
    left.bar(range(num_classes), counts, color="tab:red")
    left.set(xlabel="true class", ylabel="misclassified test images", title="Which classes are missed",
             xticks=range(num_classes))
    mistaken = pd.crosstab(
        pd.Categorical(y_true[wrong], categories=range(num_classes)),
        pd.Categorical(y_pred[wrong], categories=range(num_classes)),
        dropna=False,
    )
    bottom = np.zeros(num_classes)
    colors = sns.color_palette("tab10", num_classes)
    for k in range(num_classes):
        right.bar(range(num_classes), mistaken[k].to_numpy(), bottom=bottom, color=colors[k], label=str(k))
        bottom += mistaken[k].to_numpy()
    right.set(xlabel="true class", ylabel="misclassified test images", title="…and what each is mistaken for",
              xticks=range(num_classes))
    right.legend(title="predicted", fontsize=7, ncol=2)
    return figure


def learning_curves(curves: dict[str, pd.DataFrame], title: str) -> plt.Figure:
    """Accuracy and loss per epoch, train vs validation: the mean over seeds, the band ± one std."""
    figure, panels = plt.subplots(1, 2, figsize=(10, 3.5))
    for axes, (metric, table) in zip(panels, curves.items()):
        for split, color in (("train", "tab:blue"), ("validation", "tab:orange")):
            axes.plot(table["epoch"], table[split], label=split, color=color)
            axes.fill_between(table["epoch"], table[split] - table[f"{split}_sd"], table[split] + table[f"{split}_sd"],
                              color=color, alpha=0.2, linewidth=0)
        axes.set(xlabel="epoch", ylabel=metric)
        if metric == "loss" and table[["train", "validation"]].abs().max().max() > 100:
            axes.set_yscale("symlog")  # exploding losses would flatten everything else
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle(title)
    return figure


def open_set_roc(curves: dict[str, pd.DataFrame], result: dict) -> plt.Figure:
    """Known-vs-unknown ROC of every open-set method (seeds pooled), AUROC mean ± CI in the legend."""
    figure, axes = plt.subplots(figsize=(6, 6))
    for method, table in curves.items():
        auroc = result[method]["summary"]["auroc"]
        half = (auroc["ci_high"] - auroc["ci_low"]) / 2 if auroc.get("ci_low") is not None else 0.0
        axes.plot(table["fpr"], table["tpr"], lw=1.5, label=f"{method} (AUROC {auroc['mean']:.3f} ± {half:.3f})")
    axes.plot([0, 1], [0, 1], "k--", lw=0.8)
    axes.axhline(result.get("tpr", 0.95), color="gray", lw=0.6, ls=":")
    axes.set(xlabel="false positive rate (unknowns accepted)", ylabel="true positive rate (knowns accepted)",
             title=f"Open set: known {result['known']} vs unknown")
    axes.legend(fontsize=8, loc="lower right")
    return figure


def sweep_axis(table: pd.DataFrame, axis: str) -> plt.Figure:
    """Test accuracy (mean, 95 % CI over seeds) and fit time against one sweep axis's values."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    labels = [str(v) for v in table["value"]]
    positions = np.arange(len(labels))
    low = (table["accuracy_mean"] - table["accuracy_ci_low"].fillna(table["accuracy_mean"])).clip(lower=0)
    high = (table["accuracy_ci_high"].fillna(table["accuracy_mean"]) - table["accuracy_mean"]).clip(lower=0)
    left.errorbar(positions, table["accuracy_mean"], yerr=[low, high], fmt="o-", capsize=3)
    left.set(xticks=positions, xticklabels=labels, xlabel=axis, ylabel="test accuracy (mean, 95 % CI)")
    left.grid(alpha=0.3)
    right.bar(positions, table["fit_seconds"], color="tab:gray")
    right.set(xticks=positions, xticklabels=labels, xlabel=axis, ylabel="fit seconds per seed")
    right.grid(axis="y", alpha=0.3)
    figure.suptitle(f"Sweep: {axis}")
    return figure
