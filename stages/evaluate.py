"""Stage evaluate: every variant's model on the held-out test set.

Writes one DVCLive metrics file (variant → accuracy, loss, macro precision/recall/F1),
confusion-matrix plot data for `dvc plots`, and a normalized confusion heat map per variant.
"""

from nnstudy import params, paths
from nnstudy.errors import run_stage


def main() -> None:
    study = params.load()

    from nnstudy.data import load_split
    from nnstudy.evaluation import classification_metrics, normalized_confusion, predicted_labels
    from nnstudy.plots import confusion_heatmap, save
    from nnstudy.training import load_network, open_live, predict_proba

    test = load_split("test")
    live = open_live(paths.EVALUATE_DIR)
    for variant in study.variants:
        network = load_network(paths.model_file(variant))
        proba = predict_proba(network, test)
        metrics = classification_metrics(test.labels, proba)
        for name, value in metrics.items():
            live.log_metric(f"{variant}/{name}", value, plot=False)
        y_pred = predicted_labels(proba)
        live.log_sklearn_plot("confusion_matrix", test.labels, y_pred, name=f"confusion/{variant}.json",
                              title=f"{variant}: confusion matrix")
        matrix = normalized_confusion(test.labels, y_pred, proba.shape[1])
        save(confusion_heatmap(matrix, f"{variant}: test accuracy {metrics['accuracy']:.3f}"),
             paths.REPORT_DIR / "figures" / "confusion" / f"{variant}.png")
        print(f"{variant}: test accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['f1_macro']:.4f}")
    live.end()


if __name__ == "__main__":
    run_stage(main)
