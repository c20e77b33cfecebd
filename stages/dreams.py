"""Stage dreams: for each digit, the input the base network finds most like it.

Gradient ascent on the input image (gradients from the backend) raises one class's pre-softmax
score from a gray start, pixels clipped to [0, 1], with small L2 and smoothness penalties so the
result is an image and not adversarial noise. One set per seed of the network; the figure shows
the first seed's, with the network's confidence under each image.
"""

import numpy as np

from nnstudy.core import backend, params, paths
from nnstudy.core.errors import run_stage
from nnstudy.core.files import check_writable, write_npz
from nnstudy.core.jsonio import write_json


def main() -> None:
    study = params.load()
    # Every output can be written (a read-only folder fails now, not after the training).
    check_writable(paths.DREAMS_RESULTS, paths.RESULTS_DIR / "dreams", paths.FIGURES_DIR / "dreams")
    name, cfg = study.probing.network, study.probing.dreams

    backend.activate(study.backend)
    from nnstudy.core.data import load_prepared
    from nnstudy.evaluation.stats import spread
    from nnstudy.probing.dreams import dream_all, dream_figure
    from nnstudy.report.plots import save
    from nnstudy.training.loop import load_network

    data = load_prepared()
    summaries, images = {}, {}
    for seed in study.seeds:
        network = load_network(paths.model_file(name, seed))
        dreamt = dream_all(network, data.num_classes, data.train.x.shape[1], cfg.steps, cfg.learning_rate, cfg.l2,
                           cfg.tv, data.image_shape, start=cfg.start, seed=seed)
        summaries[paths.seed_name(seed)] = dreamt["summary"]
        images[paths.seed_name(seed)] = np.round(dreamt["images"], 4)
        if seed == study.seeds[0]:
            save(dream_figure(dreamt["images"], dreamt["confidence"], data.image_shape),
                 paths.FIGURES_DIR / "dreams" / f"{name}.png")
        print(f"dreams seed {seed}: {dreamt['summary']['classes_won']} of {data.num_classes} classes won, "
              f"mean confidence {dreamt['summary']['mean_confidence']:.3f}")

    write_json(paths.DREAMS_RESULTS, {
        "network": name,
        "classes_won": spread([s["classes_won"] for s in summaries.values()], study.stats.confidence),
        "mean_confidence": spread([s["mean_confidence"] for s in summaries.values()], study.stats.confidence),
        **summaries,
    })
    # The images as data: one row per (seed, class), one column per pixel.
    write_npz(paths.RESULTS_DIR / "dreams" / f"{name}.npz", **images)


if __name__ == "__main__":
    run_stage(main)
