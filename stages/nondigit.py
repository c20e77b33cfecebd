"""Stage nondigit: what the base network says about inputs that are not digits.

Blank and all-white images, uniform, Gaussian and salt-and-pepper noise, inverted digits and,
when installed, Fashion-MNIST: the distribution of the network's maximum softmax confidence per
kind against real test digits, the digit each kind gets called, and the AUROC of confidence as
a detector of each kind. Every seed of the network; the tables are the mean over seeds.
"""

import numpy as np

from nnstudy.core import backend, params, paths
from nnstudy.core.errors import run_stage
from nnstudy.core.files import check_writable
from nnstudy.core.jsonio import write_json


def main() -> None:
    study = params.load()
    # Every output can be written (a read-only folder fails now, not after the training).
    check_writable(paths.NONDIGIT_RESULTS, paths.FIGURES_DIR / "nondigit")
    name = study.probing.network

    backend.activate(study.backend)
    from nnstudy.core.data import load_prepared
    from nnstudy.evaluation.runs import predict_runs
    from nnstudy.evaluation.stats import spread
    from nnstudy.probing.nondigit import confidence_histograms, confidence_table
    from nnstudy.probing.runs import fashion_images, probe_inputs
    from nnstudy.report.plots import save
    from nnstudy.training.loop import load_network

    data = load_prepared()
    fashion, fashion_note = fashion_images(study.data, data.image_shape)
    digit_probas = predict_runs(name, study.seeds, data.test)
    tables = []
    for seed in study.seeds:
        network = load_network(paths.model_file(name, seed))
        inputs = probe_inputs(data, study.probing.nondigit_samples, seed, fashion)
        probas = {kind: np.asarray(network.predict(x, verbose=0), dtype=np.float64) for kind, x in inputs.items()}
        tables.append(confidence_table(probas, digit_probas[seed]).set_index("kind"))
        if seed == study.seeds[0]:
            save(confidence_histograms(probas, digit_probas[seed]), paths.FIGURES_DIR / "nondigit" / "confidence.png")

    kinds = list(tables[0].index)
    result = {"network": name, "fashion_mnist": fashion_note, "kinds": {}}
    for kind in kinds:
        rows = [table.loc[kind] for table in tables]
        result["kinds"][kind] = {
            "n": int(rows[0]["n"]),
            "top_digit_per_seed": [int(row["top_digit"]) for row in rows],
            **{column: spread([float(row[column]) for row in rows], study.stats.confidence)
               for column in ("mean_confidence", "share_confident", "top_digit_share", "auroc")
               if kind != "digits" or column != "auroc"},
        }
    write_json(paths.NONDIGIT_RESULTS, result)
    print("nondigit: " + ", ".join(f"{k} {v['mean_confidence']['mean']:.2f}" for k, v in result["kinds"].items()))


if __name__ == "__main__":
    run_stage(main)
