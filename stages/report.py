"""Stage report: the study's table (CSV), comparison figure, per-variant figures and Markdown report."""

import pandas as pd

from nnstudy.core import params, paths
from nnstudy.core.errors import run_stage
from nnstudy.core.files import write_csv, write_text
from nnstudy.core.jsonio import read_json, read_text
from nnstudy.report.markdown import study_markdown, tuning_markdown, variant_table, versus
from nnstudy.report.plots import learning_curves, save, sweep_axis, variant_comparison, weight_violins
from nnstudy.report.sections import (
    dreams_markdown, epochs_finding, nondigit_markdown, openset_markdown, sweep_table, sweeps_markdown,
)
from nnstudy.training.weights import load_weights


def curves(name: str) -> dict[str, pd.DataFrame]:
    return {metric: pd.read_csv(paths.curve_file(metric, name)) for metric in ("accuracy", "loss")}


def main() -> None:
    study = params.load()
    summary = read_json(paths.SUMMARY)
    comparisons = pd.read_csv(paths.COMPARISONS)
    table = variant_table(study, summary)
    paths.REPORT_DIR.mkdir(parents=True, exist_ok=True)
    write_csv(table, paths.REPORT_DIR / "variants.csv")

    comparison = paths.FIGURES_DIR / "comparison.png"
    save(variant_comparison(versus(comparisons, study.stats.base), study.stats.base), comparison)

    figures = {}
    first = study.seeds[0]
    for name in study.variants:
        figures[name] = {
            "learning curves": paths.FIGURES_DIR / "curves" / f"{name}.png",
            "weights": paths.FIGURES_DIR / "weights" / f"{name}.png",
            "confusion matrix": paths.FIGURES_DIR / "confusion" / f"{name}.png",
        }
        save(learning_curves(curves(name), f"{name}: learning curves ({len(study.seeds)} seeds)"),
             figures[name]["learning curves"])
        save(weight_violins(load_weights(paths.weights_file(name, first)), f"{name}: kernel weights (seed {first})"),
             figures[name]["weights"])

    final_figures = {
        "learning curves": paths.FIGURES_DIR / "curves" / "final.png",
        "confusion matrix": paths.FIGURES_DIR / "final" / "confusion.png",
        "ROC curves": paths.FIGURES_DIR / "final" / "roc.png",
        "misclassified test images": paths.FIGURES_DIR / "final" / "misclassified.png",
        "errors per class": paths.FIGURES_DIR / "final" / "errors.png",
    }
    save(learning_curves(curves(paths.FINAL), "tuned network: learning curves"), final_figures["learning curves"])
    tuning = tuning_markdown(
        pd.read_csv(paths.TUNE_TRIALS, dtype={"trial_id": str}),
        read_json(paths.TUNE_BEST),
        pd.read_csv(paths.TUNE_CANDIDATES, dtype={"trial_id": str}),
        read_json(paths.FINAL_PICK),
        summary,
        read_json(paths.FINAL_EVALUATE_METRICS),
        comparisons,
        study.tune.top_n,
        final_figures,
        study.stats.confidence,
    )
    splits = read_json(paths.SPLITS_SUMMARY)
    markdown = "\n".join([
        study_markdown(study, table, splits, summary, comparisons, figures, comparison),
        tuning,
        sweeps_section(study),
        openset_markdown(read_json(paths.OPENSET_RESULTS), paths.FIGURES_DIR / "openset" / "roc.png"),
        nondigit_markdown(read_json(paths.NONDIGIT_RESULTS),
                          paths.FIGURES_DIR / "nondigit" / "confidence.png"),
        dreams_markdown(read_json(paths.DREAMS_RESULTS),
                        paths.FIGURES_DIR / "dreams" / f"{study.probing.network}.png", splits["num_classes"]),
        # The transfer study's section, written by its own summarize stage.
        read_text(paths.TRANSFER_REPORT),
    ])
    write_text(paths.REPORT_DIR / "report.md", markdown)
    print(f"report: {paths.REPORT_DIR / 'report.md'} ({len(table)} variants x {len(study.seeds)} seeds)")


def sweeps_section(study: params.Params) -> str:
    stored = read_json(paths.SWEEPS_METRICS)
    # In params.yaml's order (the JSON file is sorted by key: "10" before "2").
    sweeps: dict[str, dict] = {}
    for name, point in study.sweep_points.items():
        timing = read_json(paths.timing_file(f"train_{name}"))
        sweeps.setdefault(point.axis, {})[str(point.value)] = {
            **stored[point.axis][str(point.value)],
            "fit_seconds": sum(timing["fit_seconds"].values()) / len(timing["fit_seconds"]),
        }
    figures = {axis: paths.FIGURES_DIR / "sweeps" / f"{axis}.png" for axis in sweeps}
    for axis, points in sweeps.items():
        save(sweep_axis(sweep_table(points), axis), figures[axis])
    base = curves(study.stats.base)
    epochs = epochs_finding(base["accuracy"], base["loss"], study.stats.base)
    return sweeps_markdown(sweeps, pd.read_csv(paths.SWEEP_COMPARISONS), epochs, figures,
                           next(iter(study.sweep_points.values())).model.epochs, len(study.seeds))


if __name__ == "__main__":
    run_stage(main)
