"""The transfer study's summary, figures and report section (pure functions over stored results).

Every sentence is generated from the numbers it sits next to, as in the MLP study's report.
"""

from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from nnstudy.report.tables import markdown_table as format_markdown
from nnstudy.evaluation.stats import step_row, best_variant, series_finding, step_text
from nnstudy.report.markdown import mean_ci, relative
from nnstudy.report.sections import axis_finding, sweep_table
from nnstudy.transfer.params import value_name

AXIS_LABELS = {
    "input_size": "input size (pixels)", "augment": "augmentation", "unfreeze": "share of the base unfrozen",
    "dropout": "dropout", "patience": "early-stopping patience", "fine_tune_learning_rate": "fine-tuning learning rate",
    "batch_size": "batch size", "optimizer": "optimizer", "classes": "target classes", "labels": "labels per class",
    "learning_rate": "head learning rate", "model": "model", "weights": "weights", "epochs": "epochs",
}
PHASES = ("scratch", "head", "fine_tune")  # in the order they train

# --- which runs form which comparison ---

def axis_points(recipes: Mapping[str, dict], reference: str, axes: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """{axis: {value: run}}: the reference run plus every run whose recipe differs from it in that
    key alone (the sweep points, and the arms or labels values that happen to be one step away,
    e.g. the frozen arm is the `unfreeze: 0` point). Values in ascending order where they compare."""
    ref = recipes[reference]
    found: dict[str, dict] = {}
    for name, recipe in recipes.items():
        changed = [key for key in recipe if recipe[key] != ref[key]]
        if len(changed) == 1 and changed[0] in axes:
            found.setdefault(changed[0], {})[name] = recipe[changed[0]]
    result = {}
    for axis, runs in found.items():
        runs[reference] = ref[axis]
        try:
            order = sorted(runs, key=lambda n: runs[n])
        except TypeError:
            order = list(runs)
        result[axis] = {str(runs[n]).lower() if isinstance(runs[n], bool) else
                        ("all" if axis in ("classes", "labels") and runs[n] == 0 else str(runs[n])): n for n in order}
    return result


def comparison_pairs(arms: tuple[str, ...], arm_runs: Mapping[str, Mapping[str, str]],
                     axes: Mapping[str, Mapping[str, str]], reference: str) -> list[tuple[str, str, str]]:
    """(question, a, b): every pair of arms at each labels value, and every axis point vs the reference.
    The classes axis is left out: fewer classes is another test set, so McNemar cannot pair it."""
    pairs = []
    for labels, runs in arm_runs.items():
        names = [runs[arm] for arm in arms if arm in runs]
        pairs += [(f"{labels} labels per class", a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    for axis, points in axes.items():
        if axis == "classes":
            continue
        pairs += [(AXIS_LABELS.get(axis, axis), reference, run) for run in points.values()
                  if run != reference and (AXIS_LABELS.get(axis, axis), reference, run) not in pairs]
    unique, seen = [], set()
    for question, a, b in pairs:
        if frozenset((a, b)) not in seen:
            seen.add(frozenset((a, b)))
            unique.append((question, a, b))
    return unique


# --- figures ---

def arms_figure(arm_runs: Mapping[str, Mapping[str, str]], summary: Mapping[str, dict], arms: tuple[str, ...]) -> plt.Figure:
    """Test accuracy (mean, CI over seeds) of each arm against the labels per class."""
    figure, axes = plt.subplots(figsize=(6, 3.8))
    labels = list(arm_runs)
    positions = np.arange(len(labels))
    for offset, arm in zip(np.linspace(-0.08, 0.08, len(arms)), arms):
        entries = [summary[arm_runs[lab][arm]]["accuracy"] for lab in labels]
        means = np.array([e["mean"] if e["mean"] is not None else np.nan for e in entries])
        low = np.array([e["mean"] - e["ci_low"] if e["ci_low"] is not None else 0 for e in entries])
        high = np.array([e["ci_high"] - e["mean"] if e["ci_high"] is not None else 0 for e in entries])
        axes.errorbar(positions + offset, means, yerr=[low.clip(0), high.clip(0)], fmt="o-", capsize=3, label=arm)
    axes.set(xticks=positions, xticklabels=labels, xlabel="training labels per target class",
             ylabel="test accuracy (mean, 95 % CI)", title="Transfer: pretrained base vs from scratch")
    axes.grid(alpha=0.3)
    axes.legend()
    return figure


def curves_figure(curves: Mapping[str, pd.DataFrame], title: str) -> plt.Figure:
    """Validation accuracy per epoch (both phases in a row), mean over seeds with ± 1 sd, one line per run."""
    figure, axes = plt.subplots(figsize=(7, 3.8))
    for name, table in curves.items():
        axes.plot(table["epoch"], table["validation"], label=name)
        axes.fill_between(table["epoch"], table["validation"] - table["validation_sd"],
                          table["validation"] + table["validation_sd"], alpha=0.15, linewidth=0)
    axes.set(xlabel="epoch (head phase, then fine-tuning)", ylabel="validation accuracy", title=title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return figure


def confused_pairs_figure(pairs: pd.DataFrame, title: str) -> plt.Figure:
    figure, axes = plt.subplots(figsize=(6, max(2.0, 0.3 * len(pairs) + 1)))
    names = [f"{t} → {p}" for t, p in zip(pairs["true"], pairs["predicted"])]
    axes.barh(names[::-1], (pairs["share"] * 100).to_numpy()[::-1], color="tab:red")
    axes.set(xlabel="% of the true class's test images (all seeds)", title=title)
    axes.grid(axis="x", alpha=0.3)
    return figure


def zoo_figure(zoo: pd.DataFrame) -> plt.Figure:
    """Time per training step against parameters (marker area: size on disk); accuracy where measured."""
    measured = zoo.dropna(subset=["accuracy"]) if "accuracy" in zoo else zoo.iloc[0:0]
    figure, panels = plt.subplots(1, 2 if len(measured) else 1, figsize=(11 if len(measured) else 6, 4), squeeze=False)
    left = panels[0][0]
    colors = zoo["kind"].map({"cnn": "tab:orange", "application": "tab:blue"}).fillna("tab:gray")
    left.scatter(zoo["parameters"], zoo["step_seconds"], s=20 + zoo["size_mb"].fillna(0), c=colors, alpha=0.7)
    for _, row in zoo.iterrows():
        left.annotate(row["model"], (row["parameters"], row["step_seconds"]), fontsize=7, xytext=(3, 3),
                      textcoords="offset points")
    left.set(xscale="log", yscale="log", xlabel="parameters", ylabel="seconds per training step",
             title="Zoo: cost (marker area: size on disk)")
    left.grid(alpha=0.3, which="both")
    if len(measured):
        right = panels[0][1]
        right.scatter(measured["epoch_seconds"], measured["accuracy"] * 100, s=20 + measured["size_mb"].fillna(0))
        for _, row in measured.iterrows():
            right.annotate(row["model"], (row["epoch_seconds"], row["accuracy"] * 100), fontsize=7, xytext=(3, 3),
                           textcoords="offset points")
        right.set(xscale="log", xlabel="seconds per epoch", ylabel="test accuracy %", title="Zoo: accuracy vs time")
        right.grid(alpha=0.3)
    return figure


# --- the report section ---

def _axis_table(points: Mapping[str, str], summary: Mapping[str, dict], fit_seconds: Mapping[str, float]) -> pd.DataFrame:
    return sweep_table({value: {"point": run, "parameters": summary[run].get("parameters") or 0,
                                "fit_seconds": fit_seconds[run],
                                "val_accuracy": summary[run].get("val_accuracy"),
                                "diverged_seeds": summary[run]["diverged_seeds"],
                                "accuracy": summary[run]["accuracy"], "loss": summary[run]["loss"],
                                "f1_macro": summary[run]["f1_macro"]}
                        for value, run in points.items()})


def axis_tables(axes: Mapping[str, Mapping[str, str]], summary: Mapping[str, dict],
                fit_seconds: Mapping[str, float]) -> dict[str, pd.DataFrame]:
    return {axis: _axis_table(points, summary, fit_seconds) for axis, points in axes.items()}


def _zoo_rows(zoo: pd.DataFrame) -> list[list[str]]:
    def number(value: object, digits: str) -> str:
        return "—" if value is None or pd.isna(value) else format(value, digits)

    return [[row["model"], row["kind"], str(row["input_size"]), f"{int(row['parameters']):,}",
             number(row["size_mb"], ".1f"), number(row["peak_memory_mb"], ".0f"), number(row["step_seconds"], ".3f"),
             number(row["epoch_seconds"], ".2f"),
             "—" if pd.isna(row.get("accuracy")) else f"{row['accuracy'] * 100:.1f}",
             str(row.get("note", "") if not pd.isna(row.get("note", "")) else "")]
            for _, row in zoo.iterrows()]


def transfer_markdown(summary: dict, comparisons: pd.DataFrame, data: dict, pretrain: dict, zoo: pd.DataFrame,
                      pairs: pd.DataFrame, figures: Mapping[str, Path], tables: Mapping[str, pd.DataFrame],
                      fit_seconds: Mapping[str, float]) -> str:
    runs, arms, reference = summary["runs"], summary["arms"], summary["reference"]
    arm_runs = summary["arm_runs"]
    per_labels: dict[str, int] = {}
    for run in runs.values():
        per_labels.setdefault(str(run["recipe"]["labels"] or "all"), len(run["seeds"]))
    counts = sorted(set(per_labels.values()))
    seeds = (f"over {counts[0]} seeds" if len(counts) == 1 else "over " + ", ".join(
        f"{n} seeds at {labels} labels per class" for labels, n in per_labels.items()))
    target = data["target"]
    lines = [
        "## Transfer learning: when does a pretrained base help, and how much should be unfrozen?", "",
        f"Data: `{summary['dataset']}`. Source task: "
        + (f"classes {', '.join(data['source']['classes'])}" if data.get("source") else "ImageNet weights (no source task here)")
        + f"; target task: classes {', '.join(target['classes'])}, "
        f"{target['splits']['train']['size']} training, {target['splits']['val']['size']} validation and "
        f"{target['splits']['test']['size']} test images. "
        f"Model `{summary['model']}`. Every run is trained {seeds}; accuracy in %, mean ± CI (logit scale); "
        "each pair's change comes with its 95 % interval and a verdict as in the MLP study's findings: significant "
        f"({comparisons['test'].iloc[0] if len(comparisons) else 'Welch'} across seeds, Holm-corrected over the "
        f"{int(comparisons['p_holm'].notna().sum()) if len(comparisons) else 0} tested comparisons of this section, "
        "the seeds moving the same way: all of three, three in four of more), equivalent within the margin "
        f"(±{comparisons['margin_points'].iloc[0] if len(comparisons) else 0:g} points, two one-sided tests), or "
        "inconclusive. The best arm and the best value of each axis are picked on validation accuracy (the last "
        "epoch's).", "",
    ]
    if pretrain.get("needed"):
        lines += [f"The source network (`{pretrain['model']}` trained from scratch on the source classes) reaches "
                  f"{mean_ci(pretrain['val_accuracy'])} % validation accuracy on them.", ""]
    lines += ["### Findings", ""]
    for labels, by_arm in arm_runs.items():
        names = [by_arm[arm] for arm in arms if arm in by_arm]
        lines.append(f"- {series_finding(f'With {labels} labels per class', names, runs, comparisons, {n: a for a, n in by_arm.items()})}")
    gains = []
    for labels, by_arm in arm_runs.items():
        scratch = next((by_arm[a] for a in arms if runs[by_arm[a]]["recipe"]["weights"] == "none"), None)
        pretrained = [by_arm[a] for a in arms if runs[by_arm[a]]["recipe"]["weights"] != "none"]
        if scratch and pretrained and runs[scratch]["accuracy"]["mean"] is not None:
            best = best_variant({n: runs[n] for n in pretrained}, exclude="")
            if best is None:
                continue
            tested = step_row(comparisons, scratch, best)
            gain = (runs[best]["accuracy"]["mean"] - runs[scratch]["accuracy"]["mean"]) * 100
            verdict = f"{gain:+.1f} points, not tested" if tested is None else step_text(*tested)
            gains.append(f"at {labels} labels per class {verdict} (best on validation: "
                         f"{next(a for a, n in by_arm.items() if n == best)})")
    if gains:
        lines.append("- **When does the pretrained base help?** The pretrained arm best on validation accuracy "
                     "minus from scratch, on the test set: " + "; ".join(gains) + ".")
    for axis, table in tables.items():
        if axis == "classes":  # another task, another test set: compared side by side, not tested
            shown = ", ".join(f"{r['value']}: {r['accuracy']} %" for _, r in table.iterrows())
            lines.append(f"- **{AXIS_LABELS[axis].capitalize()}** (fewer classes is an easier task on other test "
                         f"images, so not tested against the reference): {shown}.")
            continue
        lines.append(f"- {axis_finding(axis, table, comparisons, AXIS_LABELS.get(axis, axis))}")
    lines += ["", "### Arms", "",
              format_markdown(["labels per class", *arms], [
                  [labels, *[mean_ci(runs[by_arm[a]]["accuracy"]) if a in by_arm else "—" for a in arms]]
                  for labels, by_arm in arm_runs.items()]), "",
              f"![arms]({relative(figures['arms'])})", "",
              f"![learning curves]({relative(figures['curves'])})", ""]
    rows = []
    for name, entry in runs.items():
        ordered = sorted(entry["phases"].items(), key=lambda item: PHASES.index(item[0]))
        phases = "; ".join(f"{p}: kept epoch {mean_ci(v['kept_epoch'], scale=1, digits=0)} of "
                           f"{mean_ci(v['epochs_run'], scale=1, digits=0)}" for p, v in ordered)
        sweep = f"{entry['axis']} = {value_name(entry['axis'], entry['value'])}" if entry["axis"] else ""
        rows.append([name, entry["arm"] or sweep, str(entry["training_examples"]),
                     mean_ci(entry["accuracy"]), mean_ci(entry["f1_macro"]),
                     mean_ci(entry["top5_accuracy"]) if entry.get("top5_accuracy") else "—", phases,
                     f"{fit_seconds[name]:.1f}"])
    lines += ["### Every run", "", "Early stopping on validation loss restores each phase's best epoch.", "",
              format_markdown(["run", "arm / sweep", "training images", "accuracy", "macro F1", "top-5", "epochs",
                               "fit s / seed"], rows), ""]
    lines += ["### One axis at a time", "",
              f"Each axis changes one key of the reference run `{reference}`; runs that differ from it in one key "
              "only (the frozen arm is `unfreeze: 0`) join that axis.", ""]
    for axis, table in tables.items():
        rows = [[str(r["value"]), r["point"], f"{r['fit_seconds']:.1f}", str(r["diverged_seeds"]), r["accuracy"],
                 r["loss"], r["f1_macro"]] for _, r in table.iterrows()]
        lines += [f"#### {AXIS_LABELS.get(axis, axis).capitalize()}", "",
                  format_markdown([axis, "run", "fit s / seed", "diverged seeds", "accuracy", "loss", "macro F1"], rows),
                  "", f"![sweep {axis}]({relative(figures[f'axis_{axis}'])})", ""]
    ref = runs[reference]
    names = target["classes"]  # per_class is keyed by the task's class index
    per_class = [[names[int(k)], *(f"{ref['per_class'][k][m] * 100:.1f}" for m in ("precision", "recall", "f1"))]
                 for k in sorted(ref["per_class"], key=int)]
    lines += [f"### Evaluation of `{reference}`", "",
              f"Per class (mean over seeds, %); top-5 accuracy {mean_ci(ref['top5_accuracy']) if ref.get('top5_accuracy') else 'not defined for 5 classes or fewer'}.", "",
              format_markdown(["class", "precision", "recall", "F1"], per_class), "",
              "The most confused pairs (all seeds pooled):", "",
              format_markdown(["true", "predicted", "errors", "% of the class"],
                              [[str(r["true"]), str(r["predicted"]), str(r["errors"]), f"{r['share'] * 100:.1f}"]
                               for _, r in pairs.iterrows()]), "",
              f"![confused pairs]({relative(figures['pairs'])})", ""]
    if "confusion" in figures:
        lines += [f"![confusion]({relative(figures['confusion'])})", ""]
    lines += ["### The model zoo", "",
              "Every model as the study builds it (base, dropout, softmax head), with random weights, training "
              + ("the head on the frozen base (phase 1 of every pretrained arm; `transfer.zoo.train: all` times "
                 "the whole network)" if set(zoo["trained"]) == {"head"} else "every layer")
              + ": parameters, size of the saved `.keras` file, the process's peak memory while training "
              "(resident memory above what it held before building, on CPU; device memory on a GPU), seconds per "
              "training step at the zoo's batch size (median after one compiling step) and per epoch of the target "
              "training set. Accuracy only where weights and data are available (offline: none of the ImageNet "
              "weights); the full CIFAR-100 zoo is for a GPU (README).", "",
              format_markdown(["model", "kind", "input", "parameters", "MB on disk", "peak MB", "s / step",
                               "s / epoch", "accuracy %", "note"], _zoo_rows(zoo)), "",
              f"![zoo]({relative(figures['zoo'])})", ""]
    return "\n".join(lines)
