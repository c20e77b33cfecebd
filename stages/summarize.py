"""Stage summarize: spread over seeds and significance of every comparison the study makes.

results/summary.json: per variant and the tuned network, the mean, std, min, max and an interval
of test accuracy, loss and macro F1 over seeds (with the per-seed accuracies; accuracy and F1 on
the logit scale, so the interval stays within 0-100 %), and how many seeds diverged (the regression
gate reads this file). metrics/study.json: the headline, accuracy and CI per network.
results/stats/comparisons.csv: every tested difference with its interval, p-values and verdict.
plots/overlays/variants_{accuracy,loss}.csv: every network's validation curve, for one DVC chart.
"""

from nnstudy.core import params, paths
from nnstudy.core.errors import run_stage
from nnstudy.core.jsonio import read_json, write_json
from nnstudy.evaluation.headline import study_headline
from nnstudy.core.files import write_csv
from nnstudy.evaluation.runs import load_predictions
from nnstudy.evaluation.stats import best_variant, compare, spread, test_draw
from nnstudy.report.overlays import write_overlay

MEASURES = ("accuracy", "loss", "f1_macro")
BOUNDED = ("accuracy", "f1_macro")  # shares in [0, 1]: intervals on the logit scale


def summarize(name: str, per_seed: dict, seeds: tuple[int, ...], confidence: float) -> dict:
    runs = [per_seed[paths.seed_name(seed)] for seed in seeds]
    live = [read_json(paths.train_live_dir(name, seed) / "metrics.json") for seed in seeds]
    diverged = [run["diverged"] for run in live]
    entry = {
        "seeds": list(seeds),
        "diverged_seeds": sum(diverged),
        "diverged": sum(diverged) > len(seeds) / 2,
        **{measure: spread([run[measure] for run in runs], confidence, bounded=measure in BOUNDED)
           for measure in MEASURES},
    }
    # Validation accuracy at the end of training: the best variant is picked on it, not on the test set.
    entry["val_accuracy"] = spread([run["eval"]["accuracy"] for run in live], confidence, bounded=True)
    # Per seed, in `seeds` order: the gate compares medians (one wild seed must not fail a run).
    entry["accuracy"]["values"] = [run["accuracy"] for run in runs]
    if name == paths.FINAL:
        kept = [run["kept_epoch"] for run in live]
        entry["kept_epoch"] = spread(kept, confidence)
    return entry


def pairs(study: params.Params, summary: dict) -> list[tuple[str, str, str]]:
    """(question, a, b): every variant vs the base, each step of each question, and the tuned
    network vs the best plain variant. A pair asked twice is tested once (under its first question)."""
    base = study.stats.base
    wanted = [("vs the base network", base, name) for name in study.variants if name != base]
    for question, series in study.stats.questions.items():
        wanted += [(question, a, b) for a, b in zip(series, series[1:])]
    best = best_variant(summary)
    if best is not None:
        wanted.append(("The tuned network vs the best variant", best, paths.FINAL))
    seen, unique = set(), []
    for question, a, b in wanted:
        if frozenset((a, b)) not in seen and a != b:
            seen.add(frozenset((a, b)))
            unique.append((question, a, b))
    return unique


def main() -> None:
    study = params.load()
    evaluated = read_json(paths.EVALUATE_METRICS) | {paths.FINAL: read_json(paths.FINAL_EVALUATE_METRICS)}
    names = [*study.variants, paths.FINAL]
    summary = {name: summarize(name, evaluated[name], study.seeds, study.stats.confidence) for name in names}
    predictions, labels = {}, None
    for name in names:
        labels, predictions[name] = load_predictions(name)
        # Every seed is scored on the same test images: the interval with the images' own draw too.
        accuracy = summary[name]["accuracy"]
        summary[name]["test_draw"] = test_draw(labels, predictions[name], (accuracy["ci_low"], accuracy["ci_high"]),
                                               study.stats.confidence)
    write_json(paths.SUMMARY, summary)

    accuracies = {name: {seed: evaluated[name][paths.seed_name(seed)]["accuracy"] for seed in study.seeds}
                  for name in names}
    table = compare(pairs(study, summary), labels, predictions, accuracies, alpha=study.stats.alpha,
                    margin_points=study.stats.margins.mlp, diverged={n: summary[n]["diverged"] for n in names},
                    paired=study.stats.paired, confidence=study.stats.confidence,
                    paired_steps=study.stats.paired_steps)
    write_csv(table, paths.COMPARISONS)
    write_json(paths.STUDY_HEADLINE, study_headline(summary, int(table["significant"].sum())))
    for metric in ("accuracy", "loss"):
        write_overlay(f"variants_{metric}", {name: paths.curve_file(metric, name) for name in names})
    verdicts = table["verdict"].value_counts()
    print(f"summarize: {len(names)} networks x {len(study.seeds)} seeds; of {len(table)} differences "
          + ", ".join(f"{count} {verdict}" for verdict, count in verdicts.items())
          + f" (Holm, alpha {study.stats.alpha:g})")


if __name__ == "__main__":
    run_stage(main)
