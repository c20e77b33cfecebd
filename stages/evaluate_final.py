"""Stage evaluate_final: the tuned network on the test set, with every measure and figure.

Metrics (accuracy, loss, macro and per-class precision/recall/F1, one-vs-rest AUC) go to one
DVCLive file; ROC and confusion data to `dvc plots`; the figures to report/figures/final/.
"""

from nnstudy import params, paths
from nnstudy.errors import run_stage


def main() -> None:
    params.load()  # validates params.yaml like every stage

    from sklearn.metrics import roc_auc_score

    from nnstudy.data import load_prepared
    from nnstudy.evaluation import classification_metrics, normalized_confusion, per_class_metrics, predicted_labels
    from nnstudy.plots import confusion_heatmap, error_histograms, misclassified_gallery, roc_curves, save
    from nnstudy.training import load_network, open_live, predict_proba

    data = load_prepared()
    test = data.test
    proba = predict_proba(load_network(paths.FINAL_MODEL), test)
    y_true, y_pred = test.labels, predicted_labels(proba)

    live = open_live(paths.FINAL_EVAL_DIR)
    metrics = classification_metrics(y_true, proba)
    metrics["auc_macro"] = float(roc_auc_score(y_true, proba, multi_class="ovr", average="macro"))
    for name, value in metrics.items():
        live.log_metric(name, value, plot=False)
    for k, measures in per_class_metrics(y_true, proba).items():
        measures["auc"] = float(roc_auc_score(y_true == int(k), proba[:, int(k)]))
        for name, value in measures.items():
            live.log_metric(f"per_class/{k}/{name}", value, plot=False)
    for k in range(data.num_classes):
        # DVCLive's ROC is binary: one-vs-rest, one file per class.
        live.log_sklearn_plot("roc", y_true == k, proba[:, k], name=f"roc/class_{k}.json")
    live.log_sklearn_plot("confusion_matrix", y_true, y_pred, name="confusion_matrix.json")
    live.end()

    figures = paths.REPORT_DIR / "figures" / "final"
    matrix = normalized_confusion(y_true, y_pred, data.num_classes)
    save(confusion_heatmap(matrix, f"tuned network: test accuracy {metrics['accuracy']:.3f}"),
         figures / "confusion.png")
    save(roc_curves(y_true, proba), figures / "roc.png")
    save(misclassified_gallery(test.x, y_true, proba, data.image_shape), figures / "misclassified.png")
    save(error_histograms(y_true, y_pred, data.num_classes), figures / "errors.png")
    print(f"final model: test accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['f1_macro']:.4f}, "
          f"macro AUC {metrics['auc_macro']:.4f}")


if __name__ == "__main__":
    run_stage(main)
