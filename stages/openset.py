"""Stage openset: train on the known digits (0–4 by default), test on all ten, reject the rest.

Three knownness scores per test image, each with a threshold that accepts `tpr` of the known
validation digits: (a) the maximum softmax probability, (b) minus the distance to the nearest
class centroid in the last hidden layer (no unknowns in training), (c) an extra sigmoid "known"
output trained with the training split's unknown digits. Every seed; spread over seeds.
Killed, a rerun keeps the finished seeds and resumes the running one (nnstudy.training.resume).
"""

import hashlib
from dataclasses import asdict, replace

import numpy as np

from nnstudy.core import backend, params, paths
from nnstudy.core.errors import run_stage
from nnstudy.core.jsonio import write_json
from nnstudy.evaluation.headline import openset_headline
from nnstudy.core.files import check_writable, write_csv


def main() -> None:
    study = params.load()
    cfg = study.probing.openset
    # Every output can be written (a read-only folder fails now, not after the training).
    check_writable(paths.OPENSET_RESULTS, paths.OPENSET_HEADLINE, paths.OPENSET_TRAIN_DIR,
                   paths.PLOTS_DIR / "openset", paths.FIGURES_DIR / "openset")

    backend.activate(study.backend)
    from nnstudy.core.data import load_prepared
    from nnstudy.evaluation.stats import spread
    from nnstudy.probing.openset import known_mask, roc_table
    from nnstudy.probing.runs import METHODS, OpenSetRun, fashion_images, probe_inputs, run_openset
    from nnstudy.report.plots import open_set_roc, save
    from nnstudy.training.loop import open_live
    from nnstudy.training.models import enable_determinism
    from nnstudy.training.resume import StageCheckpoints

    data = load_prepared()
    fashion, _ = fashion_images(study.data, data.image_shape)
    model = replace(study.base, epochs=cfg.epochs)  # the base network, on the known digits only
    checkpoints = StageCheckpoints.open(
        "openset", {"model": asdict(model), "openset": asdict(cfg), "seeds": study.seeds, "loop": study.loop,
                    "backend": study.backend, "diverged_loss": study.diverged_loss,
                    "nondigit_samples": study.probing.nondigit_samples,
                    "fashion": None if fashion is None else hashlib.sha256(fashion.tobytes()).hexdigest()},
        [paths.PREPARED_DIR])
    runs = {}
    for seed in study.seeds:
        live_dir = paths.OPENSET_TRAIN_DIR / paths.seed_name(seed)
        kept = checkpoints.finished(seed)
        if kept is not None:
            # Scores in their own dtypes (float32 from the network, float64 from the distances): the
            # thresholds and ROC tables computed from them must be the uninterrupted run's.
            runs[seed] = OpenSetRun(kept["metrics"], {m: np.asarray(v, dtype=kept["dtypes"][m])
                                                      for m, v in kept["scores"].items()}, kept["nondigit_accepted"])
            continue
        enable_determinism(seed)
        live = open_live(live_dir)
        nondigit = probe_inputs(data, study.probing.nondigit_samples, seed, fashion)
        runs[seed] = run_openset(model, data, cfg.known, cfg.train_unknowns, cfg.tpr, seed, live,
                                 study.diverged_loss, study.loop, nondigit,
                                 checkpoint_dir=checkpoints.folder / paths.seed_name(seed) if checkpoints.active else None)
        live.end()
        run = runs[seed]
        checkpoints.finish_seed(seed, {
            "metrics": run.metrics, "scores": {m: v.tolist() for m, v in run.scores.items()},
            "dtypes": {m: v.dtype.str for m, v in run.scores.items()}, "nondigit_accepted": run.nondigit_accepted,
        }, [live_dir])
        print(f"open set seed {seed}: " + ", ".join(
            f"{m} AUROC {runs[seed].metrics[m]['auroc']:.3f}" for m in METHODS))

    is_known = np.tile(known_mask(data.test.labels, cfg.known), len(runs))
    result = {"known": list(cfg.known), "train_unknowns": list(cfg.train_unknowns), "tpr": cfg.tpr}
    curves = {}
    for method in METHODS:
        per_seed = {paths.seed_name(s): run.metrics[method] for s, run in runs.items()}
        result[method] = {
            **per_seed,
            "summary": {name: spread([m[name] for m in per_seed.values()], study.stats.confidence)
                        for name in ("auroc", "fpr_at_95_tpr", "closed_set_accuracy", "open_set_accuracy")},
            "nondigit_accepted": {kind: float(np.mean([run.nondigit_accepted[method][kind] for run in runs.values()]))
                                  for kind in next(iter(runs.values())).nondigit_accepted[method]},
        }
        # Every seed's scores pooled: one ROC curve per method for `dvc plots`.
        pooled = np.concatenate([run.scores[method] for run in runs.values()])
        curves[method] = roc_table(pooled, is_known)
        write_csv(curves[method], paths.PLOTS_DIR / "openset" / f"{method}.csv")
    write_json(paths.OPENSET_RESULTS, result)
    write_json(paths.OPENSET_HEADLINE, openset_headline(result, METHODS))
    # The tables themselves, not the CSV files: those are renamed into place only when the stage ends.
    save(open_set_roc(curves, result),
         paths.FIGURES_DIR / "openset" / "roc.png")
    checkpoints.complete()


if __name__ == "__main__":
    run_stage(main)
