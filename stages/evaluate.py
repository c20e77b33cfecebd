"""Stage evaluate: every variant's networks (one per seed) on the held-out test set.

Writes results/evaluate.json (variant → seed → accuracy, loss, macro precision/recall/F1), each
run's predicted labels (for the significance tests), confusion data for `dvc plots` (all seeds
pooled) and a normalized confusion heat map per variant.
"""

from pathlib import Path

import numpy as np

from nnstudy.core import backend, params, paths
from nnstudy.core.errors import run_stage
from nnstudy.core.jsonio import write_json


def main() -> None:
    study = params.load()

    backend.activate(study.backend)
    from nnstudy.core.data import load_split
    from nnstudy.evaluation.metrics import normalized_confusion, predicted_labels
    from nnstudy.evaluation.runs import per_seed_metrics, predict_runs, save_predictions
    from nnstudy.report.plots import confusion_heatmap, save
    from nnstudy.training.loop import open_live

    test = load_split("test")
    live = open_live(paths.EVALUATE_PLOTS)
    metrics = {}
    for variant in study.variants:
        probas = predict_runs(variant, study.seeds, test)
        metrics[variant] = per_seed_metrics(test.labels, probas, study.variants[variant])
        save_predictions(variant, test.labels, probas)
        # Every seed's predictions pooled: the confusion of the variant, not of one lucky run.
        y_true = np.tile(test.labels, len(probas))
        y_pred = np.concatenate([predicted_labels(p) for p in probas.values()])
        live.log_sklearn_plot("confusion_matrix", y_true, y_pred, name=f"confusion/{variant}.json",
                              title=f"{variant}: confusion matrix")
        accuracy = np.mean([m["accuracy"] for m in metrics[variant].values()])
        matrix = normalized_confusion(y_true, y_pred, test.y.shape[1])
        save(confusion_heatmap(matrix, f"{variant}: mean test accuracy {accuracy:.3f} ({len(probas)} seeds)"),
             paths.FIGURES_DIR / "confusion" / f"{variant}.png")
        print(f"{variant}: test accuracy {accuracy:.4f} (mean of {len(probas)} seeds)")
    live.end()
    Path(live.dir, "metrics.json").unlink(missing_ok=True)  # DVCLive's empty summary: nothing to read
    write_json(paths.EVALUATE_METRICS, metrics)


if __name__ == "__main__":
    run_stage(main)
