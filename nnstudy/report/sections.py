"""The report's sections on the rest of the MLP study: sweeps, open set, non-digit inputs, dreams.

Every sentence is generated from the committed metrics, so none can contradict its numbers.
"""

from pathlib import Path

import pandas as pd

from nnstudy.report.tables import markdown_table as format_markdown
from nnstudy.report.markdown import mean_ci, pair_row, relative

AXIS_LABELS = {"depth": "hidden layers", "width": "units per hidden layer", "activation": "activation",
               "optimizer": "optimizer", "learning_rate": "learning rate (Adam)"}


def sweep_table(points: dict) -> pd.DataFrame:
    """One axis: a row per value, in the order params.yaml lists them."""
    return pd.DataFrame([{
        "value": value,
        "point": p["point"],
        "parameters": p["parameters"],
        "fit_seconds": p["fit_seconds"],
        "diverged_seeds": p["diverged_seeds"],
        **{f"accuracy_{k}": p["accuracy"][k] for k in ("mean", "ci_low", "ci_high")},
        "val_accuracy_mean": (p.get("val_accuracy") or {}).get("mean"),
        "accuracy": mean_ci(p["accuracy"]),
        "loss": mean_ci(p["loss"], scale=1, digits=3),
        "f1_macro": mean_ci(p["f1_macro"]),
    } for value, p in points.items()])


def axis_finding(axis: str, table: pd.DataFrame, comparisons: pd.DataFrame, label: str | None = None) -> str:
    """'Depth: test accuracy is highest at 2 hidden layers (97.1 ± 0.3 %) ...; the best value differs
    significantly from 4 of the 6 others (...), is equivalent to 3 (within ±1 point), inconclusive against 2.'"""
    ranked = table.dropna(subset=["accuracy_mean"]).sort_values("accuracy_mean", ascending=False)
    top, worst = ranked.iloc[0], ranked.iloc[-1]
    # The value tested against the others is the best on validation (where known), as evaluate_sweeps
    # picked it: the test set's own best is partly its lucky draw (the winner's curse).
    on_validation = "val_accuracy_mean" in ranked and ranked["val_accuracy_mean"].notna().all()
    best = ranked.loc[ranked["val_accuracy_mean"].astype(float).idxmax()] if on_validation else top
    label = label or AXIS_LABELS.get(axis, axis)
    better, equivalent, unsure, untested = [], [], [], []
    for _, row in ranked[ranked["point"] != best["point"]].iterrows():
        tested = pair_row(comparisons, best["point"], row["point"])
        verdict = "not tested" if tested is None else str(tested["verdict"])
        if verdict == "not tested":
            untested.append(str(row["value"]))
        elif verdict == "significant":
            better.append(str(row["value"]))
        elif verdict.startswith("equivalent"):
            equivalent.append(f"{row['value']} ({verdict})")
        else:
            unsure.append(str(row["value"]))
    sentence = (f"**{label.capitalize()}**: test accuracy is highest at {top['value']} ({top['accuracy']} %) and "
                f"lowest at {worst['value']} ({worst['accuracy']} %)")
    if on_validation:
        sentence += f"; the best on validation is {best['value']}"
    if len(ranked) > 1:
        sentence += (f"; {best['value']} differs significantly from {len(better)} of the {len(ranked) - 1} other "
                     f"values ({', '.join(better) or 'none'})")
        if equivalent:
            sentence += f", is equivalent to {', '.join(equivalent)}"
        if unsure:
            sentence += f", inconclusive against {', '.join(unsure)}"
        sentence += f"; not tested against {', '.join(untested)}." if untested else "."
    return sentence


def epochs_finding(accuracy: pd.DataFrame, loss: pd.DataFrame, name: str) -> str:
    """The epochs axis, read from a variant's learning curves (mean over seeds)."""
    best_acc = accuracy.loc[accuracy["validation"].idxmax()]
    best_loss = loss.loc[loss["validation"].idxmin()]
    last = loss.iloc[-1]
    return (f"**Epochs** (from `{name}`'s learning curves, mean over seeds): validation accuracy peaks at epoch "
            f"{int(best_acc['epoch'])} ({best_acc['validation'] * 100:.1f} % ± {best_acc['validation_sd'] * 100:.1f} sd) "
            f"and validation loss is lowest at epoch {int(best_loss['epoch'])} ({best_loss['validation']:.3f}); "
            f"by epoch {int(last['epoch'])} it is {last['validation']:.3f} while the training loss has fallen to "
            f"{last['train']:.3g}" + (" (overfitting)." if last["validation"] > best_loss["validation"] * 1.05 else "."))


def sweeps_markdown(sweeps: dict, comparisons: pd.DataFrame, epochs: str, figures: dict[str, Path],
                    sweep_epochs: int, seeds: int) -> str:
    lines = ["## Sweeps: how big, which units, which optimizer", "",
             f"One axis at a time over the base network, each point trained {sweep_epochs} epochs over {seeds} seeds. "
             "Accuracy in %, mean ± CI half-width; the best value of each axis is tested against every other "
             "(the t-test across seeds, the seeds moving the same way, Holm over all the sweeps' comparisons; "
             "verdicts significant, equivalent within the margin, or inconclusive, as in the findings); "
             "the best value is picked on validation accuracy, so the test set does not both pick and judge it.", "", f"- {epochs}"]
    for axis, points in sweeps.items():
        lines.append(f"- {axis_finding(axis, sweep_table(points), comparisons)}")
    lines.append("")
    for axis, points in sweeps.items():
        table = sweep_table(points)
        rows = [[str(r["value"]), f"{r['parameters']:,}", f"{r['fit_seconds']:.1f}", f"{r['diverged_seeds']}",
                 r["accuracy"], r["loss"], r["f1_macro"]] for _, r in table.iterrows()]
        lines += [f"### {AXIS_LABELS.get(axis, axis).capitalize()}", "",
                  format_markdown([axis, "parameters", "fit s / seed", "diverged seeds", "accuracy", "loss", "macro F1"],
                                  rows), "", f"![sweep {axis}]({relative(figures[axis])})", ""]
    return "\n".join(lines)


def openset_markdown(result: dict, figure: Path) -> str:
    methods = [m for m in ("max_softmax", "centroid", "known_head") if m in result]
    names = {"max_softmax": "(a) max softmax", "centroid": "(b) distance to class centroids",
             "known_head": "(c) sigmoid 'known' output"}
    rows = [[names[m], *(mean_ci(result[m]["summary"][k], scale=100 if k != "auroc" else 1,
                                 digits=1 if k != "auroc" else 3)
                         for k in ("auroc", "fpr_at_95_tpr", "closed_set_accuracy", "open_set_accuracy"))]
            for m in methods]
    best = max(methods, key=lambda m: result[m]["summary"]["auroc"]["mean"])
    kinds = list(result[methods[0]]["nondigit_accepted"])
    accepted = [[names[m], *(f"{result[m]['nondigit_accepted'][k] * 100:.0f}" for k in kinds)] for m in methods]
    unknown = [d for d in range(10) if d not in result["known"]]
    return "\n".join([
        "## Open set: rejecting digits never trained on", "",
        f"Trained on digits {result['known']}, tested on all ten; {unknown} are unknown. Each method's threshold "
        f"accepts {result['tpr']:.0%} of the known validation digits. (c) learns 'known' from the training split's "
        f"examples of {result['train_unknowns']} (never the tested ones). AUROC of known vs unknown, FPR at 95 % TPR, "
        "accuracy on the known digits, and (K+1)-way accuracy at the threshold, in %, mean ± CI over seeds:", "",
        format_markdown(["method", "AUROC", "FPR @ 95 % TPR", "closed-set accuracy", "open-set accuracy"], rows), "",
        f"**{names[best]}** separates known from unknown best (AUROC {mean_ci(result[best]['summary']['auroc'], 1, 3)}).",
        "",
        "Non-digit inputs accepted as a known digit at each method's threshold (%): whether (c) learned "
        "'a digit 0-4' or only 'not 5-9'.", "",
        format_markdown(["method", *kinds], accepted), "",
        f"![open-set ROC]({relative(figure)})", ""])


def nondigit_markdown(result: dict, figure: Path) -> str:
    kinds = result["kinds"]
    rows = [[kind, mean_ci(k["mean_confidence"], 100), mean_ci(k["share_confident"], 100),
             "/".join(str(d) for d in k["top_digit_per_seed"]), mean_ci(k["top_digit_share"], 100),
             mean_ci(k["auroc"], 1, 3) if "auroc" in k else "—"]
            for kind, k in kinds.items()]
    others = {kind: k for kind, k in kinds.items() if kind != "digits"}
    fooled = max(others, key=lambda kind: others[kind]["mean_confidence"]["mean"])
    hardest = min(others, key=lambda kind: others[kind]["auroc"]["mean"])
    return "\n".join([
        "## Non-digit inputs", "",
        f"The base network `{result['network']}` (every seed) on inputs that are not digits. {result['fashion_mnist']}.",
        "Max softmax confidence (mean, %), the share above 90 %, the digit it names (per seed) and how often, and the "
        "AUROC of confidence at telling real test digits from the kind (0.5: no better than chance):", "",
        format_markdown(["kind", "mean confidence", "share > 90 %", "called", "share called that", "AUROC"], rows), "",
        f"The network is most confident on **{fooled}** ({mean_ci(others[fooled]['mean_confidence'])} % on average, "
        f"real digits {mean_ci(kinds['digits']['mean_confidence'])} %); confidence tells real digits from "
        f"**{hardest}** worst (AUROC {mean_ci(others[hardest]['auroc'], 1, 3)}).", "",
        f"![confidence on non-digits]({relative(figure)})", ""])


def dreams_markdown(result: dict, figure: Path, classes: int) -> str:
    return "\n".join([
        "## Dream images: what the network thinks a digit is", "",
        f"For each digit, gradient ascent on the input raises `{result['network']}`'s pre-softmax score from a gray "
        "image (pixels clipped to [0, 1], small L2 and smoothness penalties). Over seeds, "
        f"{mean_ci(result['classes_won'], 1)} of {classes} dreams are classified as their own digit, with mean "
        f"confidence {mean_ci(result['mean_confidence'])} %. The first seed's:", "",
        f"![dreams]({relative(figure)})", ""])

