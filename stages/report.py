"""Stage report: the study's table (CSV), comparison figure, per-variant figures and Markdown report."""

import pandas as pd

from nnstudy import params, paths
from nnstudy.errors import run_stage
from nnstudy.jsonio import read_json
from nnstudy.plots import learning_curves, save, variant_comparison, weight_violins
from nnstudy.report import study_markdown, tuning_markdown, variant_table
from nnstudy.weights import load_weights


def main() -> None:
    study = params.load()
    table = variant_table(study)
    paths.REPORT_DIR.mkdir(parents=True, exist_ok=True)
    table.to_csv(paths.REPORT_DIR / "variants.csv", index=False)

    figures_dir = paths.REPORT_DIR / "figures"
    comparison = figures_dir / "comparison.png"
    save(variant_comparison(table), comparison)

    figures = {}
    for name in study.variants:
        curves = {metric: pd.read_csv(paths.curve_file(metric, name)) for metric in ("accuracy", "loss")}
        figures[name] = {
            "learning curves": figures_dir / "curves" / f"{name}.png",
            "weights": figures_dir / "weights" / f"{name}.png",
            "confusion matrix": figures_dir / "confusion" / f"{name}.png",
        }
        save(learning_curves(curves, f"{name}: learning curves"), figures[name]["learning curves"])
        save(weight_violins(load_weights(paths.weights_file(name)), f"{name}: kernel weights"),
             figures[name]["weights"])

    final_curves = {metric: pd.read_csv(paths.curve_file(metric, "final")) for metric in ("accuracy", "loss")}
    final_figures = {
        "learning curves": figures_dir / "curves" / "final.png",
        "confusion matrix": figures_dir / "final" / "confusion.png",
        "ROC curves": figures_dir / "final" / "roc.png",
        "misclassified test images": figures_dir / "final" / "misclassified.png",
        "errors per class": figures_dir / "final" / "errors.png",
    }
    save(learning_curves(final_curves, "tuned network: learning curves"), final_figures["learning curves"])
    tuning = tuning_markdown(
        pd.read_csv(paths.TUNE_DIR / "trials.csv", dtype={"trial_id": str}),
        read_json(paths.TUNE_DIR / "best.json"),
        read_json(paths.FINAL_DIR / "metrics.json"),
        read_json(paths.FINAL_EVAL_DIR / "metrics.json"),
        study.tune.top_n,
        final_figures,
    )
    splits = read_json(paths.SPLITS_SUMMARY)
    markdown = study_markdown(study, table, splits, figures, comparison) + "\n" + tuning
    (paths.REPORT_DIR / "report.md").write_text(markdown, encoding="utf-8")
    print(f"report: {paths.REPORT_DIR / 'report.md'} ({len(table)} variants)")


if __name__ == "__main__":
    run_stage(main)
