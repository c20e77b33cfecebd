"""Collect every variant's results into one table and one Markdown report."""

from pathlib import Path

import pandas as pd

from nnstudy import paths
from nnstudy.compare import markdown_table as format_markdown
from nnstudy.jsonio import as_number, read_json
from nnstudy.params import ModelParams, Params

SETTINGS = ("optimizer", "learning_rate", "rho", "batch_size", "initializer", "init_mean",
            "regularizer", "reg_alpha", "dropout", "hidden_units", "activation")


def variant_row(name: str, model: ModelParams, test: dict) -> dict:
    """One variant: its settings, how training went, and its test measures."""
    train = read_json(paths.TRAIN_DIR / name / "metrics.json")
    timing = read_json(paths.timing_file(f"train_{name}"))
    settings = {key: getattr(model, key) for key in SETTINGS}
    settings["hidden_units"] = "-".join(map(str, model.hidden_units))
    if model.initializer != "normal":
        settings["init_mean"] = None  # only the normal initializer has a mean
    return {
        "variant": name,
        **settings,
        "epochs_run": train["epochs_run"],
        "weight_updates": train["weight_updates"],
        "fit_seconds": timing["fit_seconds"],
        "diverged": train["diverged"],
        "val_accuracy": as_number(train["eval"]["accuracy"]),
        "test_accuracy": as_number(test["accuracy"]),
        "test_loss": as_number(test["loss"]),
        "test_f1_macro": as_number(test["f1_macro"]),
    }


def variant_table(study: Params) -> pd.DataFrame:
    test = read_json(paths.EVALUATE_DIR / "metrics.json")
    return pd.DataFrame([variant_row(name, model, test[name]) for name, model in study.variants.items()])


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "—"
    if isinstance(value, bool):
        return "**yes**" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_table(table: pd.DataFrame, columns: list[str]) -> str:
    rows = [[_fmt(row[c]) for c in columns] for _, row in table.iterrows()]
    return format_markdown(columns, rows) + "\n"


def relative(figure: Path) -> str:
    return figure.relative_to(paths.REPORT_DIR).as_posix()


def study_markdown(study: Params, table: pd.DataFrame, splits: dict, figures: dict[str, dict[str, Path]],
                   comparison: Path) -> str:
    sizes = ", ".join(f"{name} {splits['splits'][name]['size']:,}" for name in ("train", "val", "test"))
    best = table.sort_values("test_accuracy", ascending=False).iloc[0]
    lines = [
        "# nnstudy: MLP design study report",
        "",
        f"Dataset **{study.data.dataset}** ({sizes} examples; images {splits['image_shape'][0]}×"
        f"{splits['image_shape'][1]}, {splits['num_classes']} classes), seed {study.seed}. "
        "Every number below comes from `dvc repro` with the `params.yaml` and `dvc.lock` of the same commit.",
        "",
        f"Best variant on the test set: **{best['variant']}** (accuracy {best['test_accuracy']:.4f}, "
        f"macro F1 {best['test_f1_macro']:.4f}).",
        "",
        "## Every variant",
        "",
        "Sorted by test accuracy. `weight_updates` counts optimizer steps; `fit_seconds` is wall time on "
        "the machine that ran the study; a diverged run has a NaN/inf or exploding training loss.",
        "",
        markdown_table(table.sort_values("test_accuracy", ascending=False, na_position="last"), [
            "variant", "optimizer", "learning_rate", "batch_size", "initializer", "init_mean", "regularizer",
            "reg_alpha", "dropout", "epochs_run", "weight_updates", "fit_seconds", "diverged",
            "test_accuracy", "test_loss", "test_f1_macro",
        ]),
        f"![Variant comparison]({relative(comparison)})",
        "",
        "## Each variant",
        "",
        "Learning curves (train vs validation), each layer's weights before and after training, "
        "and the test confusion matrix (rows: true class, normalized).",
        "",
    ]
    for name, figs in figures.items():
        lines += [f"### {name}", ""] + [f"![{name} {kind}]({relative(path)})" for kind, path in figs.items()] + [""]
    return "\n".join(lines)


def tuning_markdown(trials: pd.DataFrame, best: dict, final_train: dict, final_test: dict, top_n: int,
                    figures: dict[str, Path]) -> str:
    """The fine-tuning section: search, best configuration, and the tuned network's test results."""
    per_class = pd.DataFrame([{"class": k, **v} for k, v in final_test["per_class"].items()])
    lines = [
        "## Fine-tuning (Hyperband)",
        "",
        f"keras-tuner Hyperband ran {len(trials)} trials, judged by `{best['objective']}`. "
        f"Top {min(top_n, len(trials))} (all of them in `results/tune/trials.csv`):",
        "",
        markdown_table(trials.head(top_n), ["trial_id", "units_1", "units_2", "l2", "learning_rate", "bracket",
                                             "epoch_budget", "epochs_run", "objective", "status"]),
        "Best hyperparameters (trial {trial}, {objective} {value:.4f}): {hps}.".format(
            trial=best["trial_id"], objective=best["objective"], value=best["value"],
            hps=", ".join(f"`{k}` = {v}" for k, v in best["hyperparameters"].items())),
        "",
        "### The tuned network, retrained from scratch",
        "",
        f"{final_train['epochs_run']} epochs (final validation accuracy {float(final_train['eval']['accuracy']):.4f}). "
        "On the test set:",
        "",
        markdown_table(pd.DataFrame([final_test]), ["accuracy", "loss", "precision_macro", "recall_macro",
                                                    "f1_macro", "auc_macro"]),
        "Per class:",
        "",
        markdown_table(per_class, ["class", "precision", "recall", "f1", "auc", "support"]),
    ]
    lines += [f"![tuned network: {kind}]({relative(path)})" for kind, path in figures.items()]
    return "\n".join(lines) + "\n"
