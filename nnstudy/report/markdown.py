"""Collect every variant's results into one table and one Markdown report.

Every number is a mean over the training seeds with its confidence interval (`93.1 ± 0.6`, or
`48.3 [0.3, 99.8]` where the logit scale made it asymmetric), every difference carries its interval
and a verdict (significant, equivalent within ±m, inconclusive), and every claim is generated from
results/summary.json and the comparisons table, so no sentence of the report can contradict the
numbers it stands on.
"""

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

from nnstudy.report.tables import markdown_table as format_markdown
from nnstudy.core import paths
from nnstudy.core.jsonio import read_json
from nnstudy.core.params import ModelParams, Params
from nnstudy.evaluation.stats import best_variant, change_text, sampling_points, series_finding

SETTINGS = ("optimizer", "learning_rate", "rho", "batch_size", "initializer", "init_mean",
            "regularizer", "reg_alpha", "dropout", "hidden_units", "activation")


def half_width(spread: dict) -> float | None:
    if spread.get("ci_low") is None or spread.get("ci_high") is None:
        return None
    return (spread["ci_high"] - spread["ci_low"]) / 2


def mean_ci(spread: dict, scale: float = 100.0, digits: int = 1) -> str:
    """'93.1 ± 0.6' (mean ± CI half-width), scaled to percent by default; '48.3 [0.3, 99.8]' when the
    interval is asymmetric as printed (a logit-scale interval near an end of the scale); '—' when
    there is no mean."""
    mean = spread.get("mean")
    if mean is None:
        return "—"
    width = half_width(spread)
    text = f"{mean * scale:.{digits}f}"
    if width is None:
        return text
    below, above = (mean - spread["ci_low"]) * scale, (spread["ci_high"] - mean) * scale
    if f"{below:.{digits}f}" != f"{above:.{digits}f}":
        return f"{text} [{spread['ci_low'] * scale:.{digits}f}, {spread['ci_high'] * scale:.{digits}f}]"
    return f"{text} ± {width * scale:.{digits}f}"


def run_facts(name: str, seeds: list[int]) -> dict:
    """Epochs and weight updates (the same for every seed unless a run stopped early) and fit time."""
    runs = [read_json(paths.train_live_dir(name, seed) / "metrics.json") for seed in seeds]
    timing = read_json(paths.timing_file("final" if name == paths.FINAL else f"train_{name}"))
    return {
        "epochs_run": "/".join(sorted({str(r["epochs_run"]) for r in runs})),
        "weight_updates": "/".join(sorted({str(r["weight_updates"]) for r in runs})),
        "fit_seconds": float(np.mean(list(timing["fit_seconds"].values()))),
    }


def variant_row(name: str, model: ModelParams, entry: dict) -> dict:
    """One variant: its settings, how training went, and its test measures over seeds."""
    settings = {key: getattr(model, key) for key in SETTINGS}
    settings["hidden_units"] = "-".join(map(str, model.hidden_units))
    if model.initializer != "normal":
        settings["init_mean"] = None  # only the normal initializer has a mean
    return {
        "variant": name,
        **settings,
        **run_facts(name, entry["seeds"]),
        "seeds": len(entry["seeds"]),
        "diverged_seeds": entry["diverged_seeds"],
        "diverged": entry["diverged"],
        **{f"test_{m}_{k}": entry[m][k] for m in ("accuracy", "loss", "f1_macro")
           for k in ("mean", "std", "ci_low", "ci_high")},
    }


def variant_table(study: Params, summary: dict) -> pd.DataFrame:
    return pd.DataFrame([variant_row(name, model, summary[name]) for name, model in study.variants.items()])


def pair_row(comparisons: pd.DataFrame, a: str, b: str) -> pd.Series | None:
    """The tested comparison of a and b, in either orientation."""
    match = comparisons[((comparisons["a"] == a) & (comparisons["b"] == b)) | ((comparisons["a"] == b) & (comparisons["b"] == a))]
    return match.iloc[0] if len(match) else None


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "—"
    if isinstance(value, bool | np.bool_):
        return "**yes**" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_table(table: pd.DataFrame, columns: list[str]) -> str:
    rows = [[_fmt(row[c]) for c in columns] for _, row in table.iterrows()]
    return format_markdown(columns, rows) + "\n"


def relative(figure: Path) -> str:
    return figure.relative_to(paths.REPORT_DIR).as_posix()


def _p(value: float) -> str:
    if value is None or pd.isna(value):
        return "—"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def versus(comparisons: pd.DataFrame, base: str) -> pd.DataFrame:
    """Every tested row with `base` on one side, turned so that `a` is base (b - a is each entry's
    change from it): the forest plot's rows."""
    rows = comparisons[(comparisons["a"] == base) | (comparisons["b"] == base)].copy()
    turned = rows["b"] == base
    rows.loc[turned, ["a", "b"]] = rows.loc[turned, ["b", "a"]].to_numpy()
    rows.loc[turned, "diff_points"] = -rows.loc[turned, "diff_points"]
    low, high = rows.loc[turned, "ci_low_points"].copy(), rows.loc[turned, "ci_high_points"].copy()
    rows.loc[turned, "ci_low_points"], rows.loc[turned, "ci_high_points"] = -high, -low
    return rows


def with_test_draw(entry: dict) -> str:
    """'[92.4, 94.1]': the accuracy's interval with the test set's draw (stats.test_draw), in %."""
    draw = entry.get("test_draw")
    return "—" if not draw else f"[{draw['ci_low'] * 100:.1f}, {draw['ci_high'] * 100:.1f}]"


def noise_note(summary: dict, test_size: int) -> str:
    """How large the test set's own sampling is beside the seed-to-seed spread: every interval of
    the report is over seeds on one fixed test set, so it leaves the test set's draw out."""
    working = [e for e in summary.values() if not e["diverged"] and e["accuracy"].get("std") is not None
               and e["accuracy"]["n"] > 1]
    if not working:
        return ""
    seed_sd = float(np.median([e["accuracy"]["std"] for e in working])) * 100
    accuracy = float(np.median([e["accuracy"]["mean"] for e in working]))
    sampling = sampling_points(accuracy, test_size)
    drawn = [e["test_draw"]["test_se_points"] for e in working if e.get("test_draw")]
    bootstrap = (f"a bootstrap over them gives the mean over seeds a standard error of {np.median(drawn):.2f} points "
                 f"(median over the working networks; the binomial formula says {sampling:.2f} for one network)"
                 if drawn else f"an accuracy near {accuracy:.1%} has a binomial standard error of {sampling:.2f} points")
    return (f"The test set's own draw: with {test_size:,} test images {bootstrap}, beside a median seed-to-seed "
            f"standard deviation of {seed_sd:.2f} points. The intervals of the findings and of the comparisons are "
            "over seeds on this one test set: they say how reliably a design choice changes accuracy on these "
            "images. How well a network does on digits at large is the wider `with_test_draw` interval of the "
            "table below (the seeds' and the images' draws together).")


def findings_markdown(study: Params, summary: dict, comparisons: pd.DataFrame, test_size: int | None = None) -> str:
    """The study's questions, each answered in a generated sentence."""
    test = "the paired t-test over seeds" if study.stats.paired else "Welch's t-test across seeds" + (
        f", the paired t over seeds for {', '.join(f'{a} → {b}' for a, b in study.stats.paired_steps)}"
        if study.stats.paired_steps else "")
    tested = comparisons["p_holm"].notna().sum() if "p_holm" in comparisons else len(comparisons)
    lines = ["## Findings", "",
             "Generated from the numbers below. A finding is about a design choice, so the seed is its unit. Each "
             f"step of a question is a change in mean test accuracy (points) with its {study.stats.confidence:.0%} "
             "interval (each mean's logit-scale t-interval, combined by MOVER, so no interval leaves the scale) "
             "and one verdict: **significant** "
             f"({test}, Holm-corrected over the {tested} tested comparisons at α = {study.stats.alpha:g}, the seeds "
             "also moving the same way: all of three, three in four of more); **equivalent within "
             f"±{study.stats.margins.mlp:g}** (two one-sided tests at that margin in points, Holm-corrected; never "
             "for a diverged network); or **inconclusive**: the data cannot tell, and the interval says how large a "
             "change it leaves open. Rows whose two sides are constant (diverged against diverged) are *not tested* "
             "and stay out of the Holm family. The best variant is picked on validation accuracy. A mean's ± is "
             f"its {study.stats.confidence:.0%} interval over {len(study.seeds)} seeds.", ""]
    for question, names in study.stats.questions.items():
        lines.append(f"- {series_finding(question, list(names), summary, comparisons)}")
    best = best_variant(summary)
    if best is not None:
        lines.append(f"- {series_finding('The tuned network vs the best variant', [best, paths.FINAL], summary, comparisons)}")
    versus_base = comparisons[comparisons["question"] == "vs the base network"]
    counts = versus_base["verdict"].value_counts()
    lines += ["", f"Against the base network `{study.stats.base}`, of {len(versus_base)} variants: "
              + ", ".join(f"{count} {verdict}" for verdict, count in counts.items())
              + f" (significant: {', '.join(f'`{b}`' for b in versus_base[versus_base['significant']]['b']) or 'none'}).",
              ""]
    if test_size:
        lines += [noise_note(summary, test_size), ""]
    return "\n".join(lines)


def comparisons_markdown(comparisons: pd.DataFrame) -> str:
    tests = list(dict.fromkeys(comparisons["test"])) or ["Welch"]
    # One test for every row names the column; with paired steps among Welch rows, each paired row says so.
    test = tests[0] if len(tests) == 1 else "Welch or paired t"
    marked = len(tests) > 1
    rows = [[r["question"], f"`{r['a']}` → `{r['b']}`", change_text(r),
             _p(r["p_holm"]) + (f" ({r['test']})" if marked and r["test"] != "Welch" else ""), _p(r["tost_p_holm"]),
             _p(r["mcnemar_p_holm"]), "yes" if r["seeds_agree"] else "no", r["verdict"]]
            for _, r in comparisons.iterrows()]
    return "\n".join([
        "## Significance",
        "",
        "Every comparison: the change in mean test accuracy (points) with its 95 % interval; the test across seeds "
        f"({test}, Holm-corrected), the two one-sided tests of equivalence within the margin (Holm-corrected), "
        "and whether the seeds move the same way, which together give the verdict about the design choice; and "
        "the exact McNemar test (the largest p over seeds, Holm-corrected), which answers another question: "
        "whether these particular trained networks differ on these test images (for some variants two seeds "
        "already do, for others not). "
        f"All of it in `{paths.COMPARISONS.as_posix()}`.",
        "",
        format_markdown(["question", "comparison", "change (points) [95 % interval]", f"{test} p (Holm)",
                         "equivalence p (Holm)", "networks differ: McNemar p (Holm)", "seeds agree", "verdict"], rows),
        "",
    ])


def study_markdown(study: Params, table: pd.DataFrame, splits: dict, summary: dict, comparisons: pd.DataFrame,
                   figures: dict[str, dict[str, Path]], comparison_figure: Path) -> str:
    sizes = ", ".join(f"{name} {splits['splits'][name]['size']:,}" for name in ("train", "val", "test"))
    ranked = table.assign(
        accuracy=[mean_ci(summary[n]["accuracy"]) for n in table["variant"]],
        loss=[mean_ci(summary[n]["loss"], scale=1, digits=3) for n in table["variant"]],
        f1_macro=[mean_ci(summary[n]["f1_macro"]) for n in table["variant"]],
        with_test_draw=[with_test_draw(summary[n]) for n in table["variant"]],
        diverged_runs=[f"{d}/{s}" for d, s in zip(table["diverged_seeds"], table["seeds"])],
    ).sort_values("test_accuracy_mean", ascending=False, na_position="last", kind="stable")
    # Named by validation accuracy, as the findings pick it: the test set's own best is partly its
    # lucky draw (and won a float tie, 0.936 against 0.9359999999999999).
    best = ranked.set_index("variant").loc[best_variant(summary) or ranked.iloc[0]["variant"]]
    lines = [
        "# nnstudy: MLP design study report",
        "",
        f"Dataset **{study.data.dataset}** ({sizes} examples; images {splits['image_shape'][0]}×"
        f"{splits['image_shape'][1]}, {splits['num_classes']} classes; split seed {study.seed}). Every network "
        f"is trained once per seed {list(study.seeds)} on the **{study.backend}** backend (`loop: {study.loop}`). "
        "Every number below comes from `dvc repro` with the `params.yaml` and `dvc.lock` of the same commit.",
        "",
        f"Best variant on validation accuracy: **{best.name}** (test accuracy {best['accuracy']} % over seeds, "
        f"{best['with_test_draw']} % with the test set's draw too; macro F1 {best['f1_macro']} %).",
        "",
        findings_markdown(study, summary, comparisons, splits["splits"]["test"]["size"]),
        "## Every variant",
        "",
        "Sorted by mean test accuracy; accuracy and F1 in %, mean ± CI half-width over seeds; `with_test_draw`: "
        "the accuracy's interval with the test images' own draw added (a bootstrap over them). `weight_updates` "
        "counts optimizer steps; `fit_seconds` is the mean wall time per seed on the machine that ran the study; "
        "`diverged` counts the seeds whose training loss went NaN/inf or exploded.",
        "",
        markdown_table(ranked, [
            "variant", "optimizer", "learning_rate", "batch_size", "initializer", "init_mean", "regularizer",
            "reg_alpha", "dropout", "epochs_run", "weight_updates", "fit_seconds", "diverged_runs",
            "accuracy", "with_test_draw", "loss", "f1_macro",
        ]),
        f"![Each variant's change from {study.stats.base}]({relative(comparison_figure)})",
        "",
        comparisons_markdown(comparisons),
        "## Each variant",
        "",
        "Learning curves (train vs validation: the mean over seeds, the band ± one standard deviation), each "
        f"layer's weights before and after training (seed {study.seeds[0]}), and the test confusion matrix "
        "(rows: true class, normalized; every seed's predictions pooled).",
        "",
    ]
    for name, figs in figures.items():
        lines += [f"### {name}", ""] + [f"![{name} {kind}]({relative(path)})" for kind, path in figs.items()] + [""]
    return "\n".join(lines)


def pick_margin(candidates: pd.DataFrame, confidence: float = 0.95) -> str:
    """How far the pick is from the runner-up, against the candidates' own spread across seeds.

    Each candidate of the selection round was retrained on every seed: the gap between two means
    has the standard error sqrt(se1^2 + se2^2), judged against Student's t at Welch's degrees of
    freedom. Only candidates that held on every seed take part: a diverged run's spread (a collapse
    sits at exactly 10 %, seed after seed) says nothing about a working network's noise.
    """
    held = candidates[candidates["order"].notna()].sort_values("order")
    if held.empty:
        return ""
    pick = held.iloc[0]
    others = held.iloc[1:].sort_values("mean", ascending=False)
    if others.empty:
        return "No other candidate held on every seed: there is nothing to race the pick against."
    runner = others.iloc[0]
    gap = (pick["mean"] - runner["mean"]) * 100
    text = (f"Over {int(pick['seeds'])} seeds the pick averaged {pick['mean'] * 100:.2f} % validation accuracy "
            f"(standard error {pick['se'] * 100:.2f} points); the best other candidate, trial {runner['trial_id']}, "
            f"{runner['mean'] * 100:.2f} % ({runner['se'] * 100:.2f}): a gap of {gap:+.2f} points.")
    se = math.hypot(pick["se"], runner["se"])
    n1, n2 = int(pick["seeds"]), int(runner["seeds"])
    if se == 0 or min(n1, n2) < 2:
        return text + " With no spread across seeds there is no noise figure to judge the gap by."
    df = se ** 4 / (pick["se"] ** 4 / (n1 - 1) + runner["se"] ** 4 / (n2 - 1))
    threshold = student_t.ppf(0.5 + confidence / 2, df) * se * 100
    verdict = "distinguishable from" if abs(gap) > threshold else "not distinguishable from"
    return (text + f" The gap's standard error is {se * 100:.2f} points; at {df:.1f} degrees of freedom (Welch) a "
            f"gap needs {threshold:.2f} points to stand out ({confidence:.0%}): the pick is {verdict} it"
            + ("." if abs(gap) > threshold else
               ", and the one-standard-error rule chose by simplicity, which no machine's rounding can flip."))


def space_name(best: dict) -> str:
    # best.json written before the spaces had names carries none.
    return f", space `{best['space']}`" if best.get("space") else ""


def tuning_markdown(trials: pd.DataFrame, best: dict, candidates: pd.DataFrame, final_pick: dict, summary: dict,
                    final_test: dict, comparisons: pd.DataFrame, top_n: int, figures: dict[str, Path],
                    confidence: float = 0.95) -> str:
    """The fine-tuning section: search, selection round over seeds, and the tuned network over seeds."""
    entry = summary[paths.FINAL]
    per_class = pd.DataFrame([{"class": k, **v} for k, v in final_test["per_class_mean"].items()])
    aucs = [m["auc_macro"] for name, m in final_test.items() if name.startswith("seed_")]
    searched = [c for c in ("units_1", "units_2", "l2", "learning_rate", "dropout", "batch_size") if c in trials]
    kept = entry.get("kept_epoch", {})
    lines = [
        "## Fine-tuning (Hyperband)",
        "",
        f"keras-tuner Hyperband ran {len(trials)} trials (one search, split seed{space_name(best)}), "
        f"judged by `{best['objective']}`. "
        f"Top {min(top_n, len(trials))} (all of them in `{paths.TUNE_TRIALS.as_posix()}`):",
        "",
        markdown_table(trials.head(top_n), ["trial_id", *searched, "bracket", "epoch_budget", "epochs_run",
                                            "objective", "status"]),
        "### The pick: the best configurations over seeds, the one-standard-error rule",
        "",
        f"One trial is one run on one seed, and a promoted trial resumes another's weights, so the best "
        f"{len(candidates)} distinct configurations were retrained from scratch on every seed (validation data "
        "only). One that diverged on any seed is out; among those within one standard error of the best mean, the "
        f"fewest parameters won (all in `{paths.TUNE_CANDIDATES.as_posix()}`; `order`: the order `final` tries them in):",
        "",
        markdown_table(candidates, ["trial_id", *[c for c in searched if c in candidates], "single_run", "mean", "se",
                                    "diverged_seeds", "parameters", "order"]),
        f"Why: {best['why']}." if best.get("why") else "",
        "",
        "Picked: trial {trial} ({hps}).".format(
            trial=best["trial_id"], hps=", ".join(f"`{k}` = {v}" for k, v in best["hyperparameters"].items())),
        "",
        pick_margin(candidates, confidence),
        "",
    ]
    if final_pick.get("passed_over"):
        lines += [f"The final retrain passed over {len(final_pick['passed_over'])} candidate(s): "
                  f"{'; '.join(final_pick['passed_over'])}. The tuned network is trial {final_pick['trial_id']} "
                  f"({', '.join(f'`{k}` = {v}' for k, v in final_pick['hyperparameters'].items())}).", ""]
    lines += [
        "### The tuned network, retrained from scratch once per seed",
        "",
        f"Early stopping kept epoch {mean_ci(kept, scale=1)} on average (the best validation epoch, its weights "
        f"restored). On the test set over {len(entry['seeds'])} seeds: accuracy {mean_ci(entry['accuracy'])} % "
        f"({with_test_draw(entry)} % with the test set's draw too), "
        f"loss {mean_ci(entry['loss'], scale=1, digits=3)}, macro F1 {mean_ci(entry['f1_macro'])} %, "
        f"macro AUC {np.mean(aucs):.4f} (mean).",
        "",
    ]
    best = best_variant(summary)
    row = pair_row(comparisons, best, paths.FINAL) if best is not None else None
    if row is not None:
        change = (entry["accuracy"]["mean"] - summary[best]["accuracy"]["mean"]) * 100  # final - best
        beats = "beats" if change > 0 else "does not beat"
        verdict = row["verdict"]
        if entry.get("diverged"):  # a collapsed network is never equivalent to anything
            verdict = f"DIVERGED on seeds {entry.get('diverged_seeds')}"
        lines += [f"The tuned network {beats} the best plain variant `{best}` "
                  f"({mean_ci(entry['accuracy'])} % vs {mean_ci(summary[best]['accuracy'])} %, "
                  f"{change_text(row, 1 if row['b'] == paths.FINAL else -1)}): {verdict} ({row['test']} p = {_p(row['p_holm'])}, Holm, seeds as the unit).", ""]
    lines += [
        "Per class (mean over seeds):",
        "",
        markdown_table(per_class, ["class", "precision", "recall", "f1", "auc", "support"]),
    ]
    lines += [f"![tuned network: {kind}]({relative(path)})" for kind, path in figures.items()]
    return "\n".join(lines) + "\n"
