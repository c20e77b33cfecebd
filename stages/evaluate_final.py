"""Stage evaluate_final: the tuned network (one per seed) on the test set, with every measure and figure.

Metrics per seed (accuracy, loss, macro precision/recall/F1, macro one-vs-rest AUC) and per class
(mean over seeds) go to results/final_evaluate.json; ROC and confusion data (seeds pooled) to
`dvc plots`; the figures to report/figures/final/.
"""

from pathlib import Path

import numpy as np

from nnstudy.core import backend, params, paths
from nnstudy.core.errors import run_stage
from nnstudy.core.jsonio import make_strict, write_json


def main() -> None:
    study = params.load()

    backend.activate(study.backend)
    from sklearn.metrics import roc_auc_score

    from nnstudy.core.data import load_prepared
    from nnstudy.evaluation.metrics import normalized_confusion, per_class_metrics, predicted_labels
    from nnstudy.evaluation.runs import per_seed_metrics, predict_runs, save_predictions
    from nnstudy.report.plots import confusion_heatmap, error_histograms, misclassified_gallery, roc_curves, save
    from nnstudy.training.loop import open_live

    data = load_prepared()
    test, k_all = data.test, range(data.num_classes)
    probas = predict_runs(paths.FINAL, study.seeds, test)
    save_predictions(paths.FINAL, test.labels, probas)
    metrics = per_seed_metrics(test.labels, probas)
    per_class = {}
    for seed, proba in probas.items():
        metrics[paths.seed_name(seed)]["auc_macro"] = float(roc_auc_score(test.labels, proba, multi_class="ovr"))
        for k, measures in per_class_metrics(test.labels, proba).items():
            measures["auc"] = float(roc_auc_score(test.labels == int(k), proba[:, int(k)]))
            for name, value in measures.items():
                per_class.setdefault(k, {}).setdefault(name, []).append(value)
    metrics["per_class_mean"] = {k: {name: float(np.mean(v)) for name, v in measures.items()}
                                 for k, measures in per_class.items()}
    write_json(paths.FINAL_EVALUATE_METRICS, metrics)

    # Plot data: every seed's scores pooled. DVCLive's ROC is binary: one-vs-rest, one file per class.
    y_true = np.tile(test.labels, len(probas))
    pooled = np.concatenate(list(probas.values()))
    y_pred = predicted_labels(pooled)
    live = open_live(paths.FINAL_EVALUATE_PLOTS)
    for k in k_all:
        live.log_sklearn_plot("roc", y_true == k, pooled[:, k], name=f"roc/class_{k}.json")
    live.log_sklearn_plot("confusion_matrix", y_true, y_pred, name="confusion_matrix.json")
    live.end()
    Path(live.dir, "metrics.json").unlink(missing_ok=True)  # DVCLive's empty summary: nothing to read
    make_strict(paths.FINAL_EVALUATE_PLOTS)

    figures = paths.FIGURES_DIR / "final"
    accuracy = np.mean([metrics[paths.seed_name(seed)]["accuracy"] for seed in probas])
    save(confusion_heatmap(normalized_confusion(y_true, y_pred, data.num_classes),
                           f"tuned network: mean test accuracy {accuracy:.3f} ({len(probas)} seeds)"),
         figures / "confusion.png")
    save(roc_curves(y_true, pooled), figures / "roc.png")
    first = probas[study.seeds[0]]  # one network's own mistakes: pooling would repeat images
    save(misclassified_gallery(test.x, test.labels, first, data.image_shape), figures / "misclassified.png")
    save(error_histograms(y_true, y_pred, data.num_classes), figures / "errors.png")
    aucs = [m["auc_macro"] for name, m in metrics.items() if name.startswith("seed_")]
    print(f"final model: mean test accuracy {accuracy:.4f}, mean macro AUC {np.mean(aucs):.4f} "
          f"({len(probas)} seeds)")


if __name__ == "__main__":
    run_stage(main)
