"""Stage openset: train on the known digits (0–4 by default), test on all ten, reject the rest.

Three knownness scores per test image, each with a threshold that accepts `tpr` of the known
validation digits: (a) the maximum softmax probability, (b) minus the distance to the nearest
class centroid in the last hidden layer (no unknowns in training), (c) an extra sigmoid "known"
output trained with the training split's unknown digits. Every seed; spread over seeds. The seeds
train one by one or side by side (nnstudy.training.seeds); killed, a rerun keeps the finished
seeds and resumes the running one (nnstudy.training.resume).
"""

import hashlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from nnstudy.core import backend, params, paths
from nnstudy.core.errors import run_stage
from nnstudy.core.files import check_writable, write_csv
from nnstudy.core.jsonio import write_json
from nnstudy.evaluation.headline import openset_headline
from nnstudy.training.seeds import Finished, network_processes, run_seeds


@dataclass(frozen=True)
class OpenSetSeeds:
    """The open-set networks of one seed: trained, scored and thresholded (probing.runs.run_openset)."""
    model: params.ModelParams
    openset: params.OpenSetParams
    data: params.DataParams
    nondigit_samples: int
    backend: str
    loop: str
    diverged_loss: float
    name: str = "openset"
    stage: str = "openset"
    vmapped: bool = False  # two networks a seed, trained in turn: no one program for all the seeds

    def load(self) -> tuple:
        """The prepared data, and Fashion-MNIST's images where this machine has them (else None)."""
        from nnstudy.core.data import load_prepared
        from nnstudy.probing.runs import fashion_images

        data = load_prepared()
        return data, fashion_images(self.data, data.image_shape)[0]

    def live_dir(self, seed: int) -> Path:
        return paths.OPENSET_TRAIN_DIR / paths.seed_name(seed)

    def processes(self, inputs: tuple, seeds: int) -> int:
        return network_processes(self.model, len(inputs[0].train.x), seeds)

    def train(self, inputs: tuple, seed: int, live, checkpoint):
        from nnstudy.probing.runs import probe_inputs, run_openset

        data, fashion = inputs
        cfg = self.openset
        return run_openset(self.model, data, cfg.known, cfg.train_unknowns, cfg.tpr, seed, live, self.diverged_loss,
                           self.loop, probe_inputs(data, self.nondigit_samples, seed, fashion),
                           checkpoint_dir=None if checkpoint is None else checkpoint.folder)

    def finish(self, seed: int, live, run) -> Finished:
        from nnstudy.probing.runs import METHODS

        live.end()
        record = {"metrics": run.metrics, "scores": {m: v.tolist() for m, v in run.scores.items()},
                  "dtypes": {m: v.dtype.str for m, v in run.scores.items()}, "nondigit_accepted": run.nondigit_accepted}
        return Finished(record, [self.live_dir(seed)], f"open set seed {seed}: " + ", ".join(
            f"{m} AUROC {run.metrics[m]['auroc']:.3f}" for m in METHODS))


def summarise(runs: dict, cfg: params.OpenSetParams, test_labels: np.ndarray, confidence: float) -> tuple[dict, dict]:
    """results/openset.json (every seed's metrics per method, their spread, the non-digits accepted)
    and each method's ROC table over every seed's scores pooled (for `dvc plots`)."""
    from nnstudy.evaluation.stats import spread
    from nnstudy.probing.openset import known_mask, roc_table
    from nnstudy.probing.runs import METHODS

    is_known = np.tile(known_mask(test_labels, cfg.known), len(runs))
    result = {"known": list(cfg.known), "train_unknowns": list(cfg.train_unknowns), "tpr": cfg.tpr}
    curves = {}
    for method in METHODS:
        per_seed = {paths.seed_name(s): run.metrics[method] for s, run in runs.items()}
        result[method] = {
            **per_seed,
            "summary": {name: spread([m[name] for m in per_seed.values()], confidence)
                        for name in ("auroc", "fpr_at_95_tpr", "closed_set_accuracy", "open_set_accuracy")},
            "nondigit_accepted": {kind: float(np.mean([run.nondigit_accepted[method][kind] for run in runs.values()]))
                                  for kind in next(iter(runs.values())).nondigit_accepted[method]},
        }
        curves[method] = roc_table(np.concatenate([run.scores[method] for run in runs.values()]), is_known)
    return result, curves


def main() -> None:
    study = params.load()
    cfg = study.probing.openset
    # Every output can be written (a read-only folder fails now, not after the training).
    check_writable(paths.OPENSET_RESULTS, paths.OPENSET_HEADLINE, paths.OPENSET_TRAIN_DIR,
                   paths.PLOTS_DIR / "openset", paths.FIGURES_DIR / "openset")

    backend.activate(study.backend)
    from nnstudy.probing.runs import OpenSetRun
    from nnstudy.report.plots import open_set_roc, save
    from nnstudy.training.resume import StageCheckpoints

    # The base network, on the known digits only.
    job = OpenSetSeeds(replace(study.base, epochs=cfg.epochs), cfg, study.data, study.probing.nondigit_samples,
                       study.backend, study.loop, study.diverged_loss)
    data, fashion = inputs = job.load()
    checkpoints = StageCheckpoints.open(
        "openset", {"model": asdict(job.model), "openset": asdict(cfg), "seeds": study.seeds, "loop": study.loop,
                    "backend": study.backend, "diverged_loss": study.diverged_loss,
                    "nondigit_samples": study.probing.nondigit_samples,
                    "fashion": None if fashion is None else hashlib.sha256(fashion.tobytes()).hexdigest()},
        [paths.PREPARED_DIR])
    # Scores in their own dtypes (float32 from the network, float64 from the distances): the
    # thresholds and ROC tables computed from them must be the same whichever process trained the seed.
    runs = {seed: OpenSetRun(kept["metrics"], {m: np.asarray(v, dtype=kept["dtypes"][m])
                                               for m, v in kept["scores"].items()}, kept["nondigit_accepted"])
            for seed, kept in run_seeds(job, study.seeds, checkpoints, inputs).records.items()}

    result, curves = summarise(runs, cfg, data.test.labels, study.stats.confidence)
    for method, curve in curves.items():
        write_csv(curve, paths.PLOTS_DIR / "openset" / f"{method}.csv")
    write_json(paths.OPENSET_RESULTS, result)
    write_json(paths.OPENSET_HEADLINE, openset_headline(result, tuple(curves)))
    # The tables themselves, not the CSV files: those are renamed into place only when the stage ends.
    save(open_set_roc(curves, result),
         paths.FIGURES_DIR / "openset" / "roc.png")
    checkpoints.complete()


if __name__ == "__main__":
    run_stage(main)
