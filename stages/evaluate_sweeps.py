"""Stage evaluate_sweeps: every sweep point (one network per seed) on the test set, axis by axis.

results/sweeps.json: per axis and value, test accuracy, loss and macro F1 over seeds (mean,
spread, CI), validation accuracy, parameter count and diverged seeds (fit times stay in
results/timing/). metrics/sweeps.json: the headline, each axis's best value (picked on validation
accuracy) and its test accuracy. results/stats/sweeps.csv: within each axis, that best value
against every other. plots/overlays/sweeps/<axis>.csv: the points' validation curves, one chart per axis.
"""

from nnstudy.core import backend, params, paths
from nnstudy.core.errors import run_stage
from nnstudy.core.jsonio import read_json, write_json
from nnstudy.evaluation.headline import best_point, sweeps_headline
from nnstudy.report.overlays import write_overlay
from nnstudy.core.files import write_csv


def main() -> None:
    study = params.load()

    backend.activate(study.backend)
    from nnstudy.core.data import load_split
    from nnstudy.evaluation.metrics import predicted_labels
    from nnstudy.evaluation.runs import per_seed_metrics, predict_runs
    from nnstudy.evaluation.stats import compare, spread
    from nnstudy.training.loop import load_network

    test = load_split("test")
    result, pairs, predictions, accuracies = {}, [], {}, {}
    for name, point in study.sweep_points.items():
        probas = predict_runs(name, study.seeds, test)
        runs = per_seed_metrics(test.labels, probas, point.model)
        live = [read_json(paths.train_live_dir(name, s) / "metrics.json") for s in study.seeds]
        diverged = [run["diverged"] for run in live]
        result.setdefault(point.axis, {})[str(point.value)] = {
            "point": name,
            "parameters": load_network(paths.model_file(name, study.seeds[0])).count_params(),
            "diverged_seeds": sum(diverged),
            "diverged": sum(diverged) > len(diverged) / 2,
            **{m: spread([run[m] for run in runs.values()], study.stats.confidence, bounded=m != "loss")
               for m in ("accuracy", "loss", "f1_macro")},
            "val_accuracy": spread([run["eval"]["accuracy"] for run in live], study.stats.confidence, bounded=True),
        }
        predictions[name] = {seed: predicted_labels(p) for seed, p in probas.items()}
        accuracies[name] = {seed: runs[paths.seed_name(seed)]["accuracy"] for seed in study.seeds}
        print(f"{name}: test accuracy {result[point.axis][str(point.value)]['accuracy']['mean']:.4f}")
    for axis, points in result.items():
        best = points[best_point(points) or next(iter(points))]
        pairs += [(axis, best["point"], p["point"]) for p in points.values() if p is not best]
        write_overlay(f"sweeps/{axis}", {f"{axis} {value}": paths.curve_file("accuracy", p["point"])
                                        for value, p in points.items()})
    write_json(paths.SWEEPS_METRICS, result)
    write_json(paths.SWEEPS_HEADLINE, sweeps_headline(result))
    diverged = {p["point"]: p["diverged"] for points in result.values() for p in points.values()}
    write_csv(compare(pairs, test.labels, predictions, accuracies, alpha=study.stats.alpha,
                      margin_points=study.stats.margins.mlp, diverged=diverged, paired=study.stats.paired,
                      confidence=study.stats.confidence), paths.SWEEP_COMPARISONS)


if __name__ == "__main__":
    run_stage(main)
