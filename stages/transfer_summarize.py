"""Stage transfer_summarize: every transfer run over its seeds, the comparisons, figures and the
report's transfer section (report/transfer.md, which the report stage includes).

results/transfer/summary.json: per run, test accuracy, loss, macro F1 and top-5 over seeds (mean,
spread, CI, and the per-seed accuracies), validation accuracy (the picks are made on it), epochs per
phase and diverged seeds (the gate reads it).
metrics/transfer.json: the headline, each arm at each labels value. results/transfer/comparisons.csv:
the arms against each other at every labels value, and every one-key change against the reference
run. plots/overlays/transfer_arms.csv: the arms' validation curves, both phases, for one DVC chart.
"""

from dataclasses import replace

import numpy as np
import pandas as pd

from nnstudy.core import params, paths
from nnstudy.core.errors import run_stage
from nnstudy.core.jsonio import read_json, write_json
from nnstudy.evaluation.headline import transfer_headline
from nnstudy.core.files import remove_tree, write_csv, write_text
from nnstudy.evaluation.stats import compare, spread
from nnstudy.report.overlays import write_overlay
from nnstudy.report.plots import confusion_heatmap, save, sweep_axis
from nnstudy.transfer.evaluate import confused_pairs, pooled_confusion
from nnstudy.transfer.params import SWEEP_AXES, value_name
from nnstudy.transfer.settings import read_settings
from nnstudy.transfer.report import (
    arms_figure, axis_points, axis_tables, comparison_pairs, confused_pairs_figure, curves_figure, transfer_markdown,
    zoo_figure,
)

MEASURES = ("accuracy", "loss", "f1_macro", "top5_accuracy")
HEATMAP_MAX_CLASSES = 20  # beyond this a matrix is unreadable; the confused pairs say it instead


def summarize_run(name: str, settings: dict, confidence: float) -> dict:
    seeds = settings["seeds"]
    runs = [read_json(paths.transfer_live_dir(name, seed) / "metrics.json") for seed in seeds]
    phases = {phase: {key: spread([r["phases"][phase][key] for r in runs], confidence)
                      for key in ("epochs_run", "kept_epoch")} for phase in runs[0]["phases"]}
    top5 = [r["top5_accuracy"] for r in runs]
    accuracy = spread([r["accuracy"] for r in runs], confidence, bounded=True)
    accuracy["values"] = [r["accuracy"] for r in runs]  # per seed: the gate compares medians
    return {
        "arm": settings["arm"], "axis": settings["axis"], "value": settings["value"], "recipe": settings["recipe"],
        "seeds": seeds, "training_examples": runs[0]["training_examples"], "parameters": runs[0]["parameters"],
        "diverged_seeds": sum(r["diverged"] for r in runs),
        "diverged": sum(r["diverged"] for r in runs) > len(runs) / 2,
        "accuracy": accuracy,
        **{m: spread([r[m] for r in runs], confidence, bounded=m != "loss")
           for m in MEASURES if m not in ("accuracy", "top5_accuracy")},
        "top5_accuracy": None if None in top5 else spread(top5, confidence, bounded=True),
        # The last epoch's validation accuracy (DVCLive's eval): the best arm and axis values are
        # picked on it, so the test set does not both pick and judge them.
        "val_accuracy": spread([r["eval"]["accuracy"] for r in runs], confidence, bounded=True),
        "per_class": {c: {m: float(np.mean([r["per_class"][c][m] for r in runs])) for m in ("precision", "recall", "f1")}
                      for c in runs[0]["per_class"]},
        "phases": phases,
    }


def mean_fit_seconds(name: str) -> float:
    """Wall time stays out of the summary (it is never reproducible); the report shows it."""
    return float(np.mean(list(read_json(paths.timing_file(name))["fit_seconds"].values())))


def main() -> None:
    study = params.load()
    transfer = study.transfer
    confidence, alpha = study.stats.confidence, study.stats.alpha
    settings = {name: read_settings(name)[0] for name in transfer.runs}
    runs = {name: summarize_run(name, settings[name], confidence) for name in transfer.runs}
    arms = transfer.arms
    arm_runs = {value_name("labels", labels): {arm: f"transfer_{arm}_{value_name('labels', labels)}" for arm in arms}
                for labels in transfer.arm_labels}
    # The reference: the arm that keeps the recipe as params.yaml gives it (partial by default), at
    # the first labels value; the sweeps change one key of exactly this run.
    first = next(iter(arm_runs.values()))
    wanted = replace(transfer.base, labels=transfer.arm_labels[0])
    reference = next((run for run in first.values() if transfer.runs[run].recipe == wanted), next(iter(first.values())))
    recipes = {name: entry["recipe"] for name, entry in runs.items()}
    axes = axis_points(recipes, reference, SWEEP_AXES)

    labels_of = {}
    predictions, accuracies = {}, {}
    for name in transfer.runs:
        table = pd.read_csv(paths.transfer_predictions_file(name))
        labels_of[name] = table["label"].to_numpy()
        predictions[name] = {int(c.removeprefix("seed_")): table[c].to_numpy() for c in table if c != "label"}
        accuracies[name] = {int(c.removeprefix("seed_")): float((table[c] == table["label"]).mean())
                            for c in table if c != "label"}
    pairs = [(q, a, b) for q, a, b in comparison_pairs(arms, arm_runs, axes, reference)
             if np.array_equal(labels_of[a], labels_of[b])]  # McNemar pairs the same test images only
    y_true = labels_of[reference]
    comparisons = compare(pairs, y_true, predictions, accuracies, alpha=alpha,
                          margin_points=study.stats.margins.transfer,
                          diverged={name: entry["diverged"] for name, entry in runs.items()},
                          paired=study.stats.paired, confidence=confidence)
    write_csv(comparisons, paths.TRANSFER_COMPARISONS)

    data = read_json(paths.TRANSFER_DATA_SUMMARY)
    names = data["target"]["classes"][:runs[reference]["recipe"]["classes"] or None]
    ref_predictions = list(predictions[reference].values())
    pairs_table = confused_pairs(y_true, ref_predictions, names)
    write_csv(pairs_table, paths.CONFUSED_PAIRS)

    summary = {"dataset": transfer.dataset, "model": transfer.base.model, "reference": reference,
               "arms": list(arms), "arm_runs": arm_runs, "runs": runs}
    write_json(paths.TRANSFER_SUMMARY, summary)
    write_json(paths.TRANSFER_HEADLINE, transfer_headline(arm_runs, runs))
    write_overlay("transfer_arms", {run: paths.transfer_curve_file("accuracy", run)
                                    for by_arm in arm_runs.values() for run in by_arm.values()})

    remove_tree(paths.TRANSFER_FIGURES)  # a removed sweep axis leaves no stale figure
    figures = {"arms": paths.TRANSFER_FIGURES / "arms.png", "curves": paths.TRANSFER_FIGURES / "curves.png",
               "pairs": paths.TRANSFER_FIGURES / "confused_pairs.png", "zoo": paths.TRANSFER_FIGURES / "zoo.png"}
    save(arms_figure(arm_runs, runs, arms), figures["arms"])
    curves = {arm: pd.read_csv(paths.transfer_curve_file("accuracy", run)) for arm, run in first.items()}
    save(curves_figure(curves, f"Validation accuracy at {next(iter(arm_runs))} labels per class"), figures["curves"])
    save(confused_pairs_figure(pairs_table, f"{reference}: most confused pairs"), figures["pairs"])
    if len(names) <= HEATMAP_MAX_CLASSES:
        figures["confusion"] = paths.TRANSFER_FIGURES / "confusion.png"
        matrix = pooled_confusion(y_true, ref_predictions, len(names))
        figure = confusion_heatmap(matrix, f"{reference}: confusion (seeds pooled)")
        figure.axes[0].set_xticklabels(names)
        figure.axes[0].set_yticklabels(names)
        save(figure, figures["confusion"])
    fit_seconds = {name: mean_fit_seconds(name) for name in runs}
    tables = axis_tables(axes, runs, fit_seconds)
    for axis, table in tables.items():
        figures[f"axis_{axis}"] = paths.TRANSFER_FIGURES / f"axis_{axis}.png"
        save(sweep_axis(table, axis), figures[f"axis_{axis}"])
    zoo = pd.read_csv(paths.ZOO_TABLE)
    save(zoo_figure(zoo), figures["zoo"])

    markdown = transfer_markdown(summary, comparisons, data, read_json(paths.TRANSFER_PRETRAIN), zoo, pairs_table,
                                 figures, tables, fit_seconds)
    write_text(paths.TRANSFER_REPORT, markdown)
    for labels, by_arm in arm_runs.items():
        print(f"transfer, {labels} labels per class: " + ", ".join(
            f"{arm} {runs[run]['accuracy']['mean'] * 100:.1f} %" for arm, run in by_arm.items()))


if __name__ == "__main__":
    run_stage(main)
