"""Stage transfer_train@<arm>-<labels> and transfer_sweep_<axis>@...: train one transfer run, once
per seed, and test each network on the target test set.

    python -m stages.transfer_train transfer_partial_10

Its inputs are the tasks (data/transfer), the source network and results/transfer/settings/<run>.json.
The seeds train one after another (nnstudy.training.seeds). Killed, a rerun keeps the finished seeds
and resumes the running one in the phase and at the epoch it had reached (nnstudy.training.resume),
with the same results.
"""

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from nnstudy.core import backend, paths
from nnstudy.core.errors import run_stage
from nnstudy.core.files import check_writable, save_model, write_csv
from nnstudy.core.jsonio import make_strict, write_json
from nnstudy.training.seeds import Finished, run_seeds
from nnstudy.transfer.params import Recipe
from nnstudy.transfer.settings import read_settings


class Tested(NamedTuple):
    """A seed's network, trained and tested."""
    result: Any            # nnstudy.transfer.training.TransferResult
    metrics: dict          # on the target test set (transfer.evaluate.run_metrics)
    predictions: Any       # the predicted label of every test image
    training_examples: int
    started: float         # when its training began (epoch seconds)


@dataclass(frozen=True)
class TransferSeeds:
    """A transfer run's seeds: each network trained on the target task, then tested on its test set."""
    name: str        # the run
    recipe: Recipe
    settings: dict   # its settings file
    vmapped: bool = False  # Keras' fit, one network at a time

    @property
    def stage(self) -> str:
        return f"transfer_train@{self.name}"

    @property
    def backend(self) -> str:
        return self.settings["backend"]

    def load(self) -> tuple:
        """The target task, its test set, and the ImageNet weights the recipe starts from (else None)."""
        from nnstudy.transfer.data import load_task
        from nnstudy.transfer.evaluate import target_task
        from nnstudy.transfer.models import imagenet_weights

        task, test, _ = target_task(load_task(paths.TRANSFER_DATA_DIR), self.recipe, self.settings["subset_seed"],
                                    self.settings["val_per_class"])
        imagenet = imagenet_weights(self.recipe.model, self.recipe.input_size) if self.recipe.weights == "imagenet" else None
        return task, test, imagenet

    def live_dir(self, seed: int) -> Path:
        return paths.transfer_live_dir(self.name, seed)

    def processes(self, inputs: tuple, seeds: int) -> int:
        return 1  # one after another, as ever: side by side has not been measured for these runs

    def train(self, inputs: tuple, seed: int, live, checkpoint) -> Tested:
        import numpy as np

        from nnstudy.evaluation.metrics import predicted_labels
        from nnstudy.training.loop import Progress, epoch_logger
        from nnstudy.transfer.evaluate import run_metrics
        from nnstudy.transfer.training import most_epochs, train_recipe

        task, test, imagenet = inputs
        started = time.time()
        result = train_recipe(
            self.recipe, task, imagenet=imagenet,
            base_weights=paths.source_weights_file(seed) if self.recipe.weights == "source" else None,
            augmentations=tuple(self.settings["augmentations"]), factor=self.settings["augment_factor"],
            log=epoch_logger(live, Progress(f"{self.name} seed {seed}", most_epochs(self.recipe))),
            checkpoint=checkpoint, live=live)
        proba = np.asarray(result.network.predict(test.x_float, batch_size=256, verbose=0), dtype=np.float64)
        return Tested(result, run_metrics(test.y, proba), predicted_labels(proba), len(task.x_train), started)

    def finish(self, seed: int, live, tested: Tested) -> Finished:
        result, metrics = tested.result, tested.metrics
        for name, value in metrics.items():
            live.summary[name] = value
        live.summary["diverged"] = result.diverged
        live.summary["phases"] = {p.name: {"epochs_run": p.epochs_run, "kept_epoch": p.kept_epoch,
                                           "trainable_weights": p.trainable_weights,
                                           "unfrozen_layers": p.unfrozen_layers} for p in result.phases}
        live.summary["training_examples"] = tested.training_examples
        live.summary["parameters"] = result.network.count_params()
        live.make_summary()
        live.end()
        make_strict(self.live_dir(seed))
        save_model(result.network, paths.transfer_model_file(self.name, seed))
        phases = ", ".join(f"{p.name} {p.epochs_run} epochs (kept {p.kept_epoch})" for p in result.phases)
        record = {"history": result.history, "fit_seconds": round(result.fit_seconds, 2),
                  "predictions": tested.predictions.tolist(), "built_at": tested.started, "diverged": result.diverged}
        return Finished(record, [paths.transfer_model_file(self.name, seed), self.live_dir(seed)],
                        f"{self.name} seed {seed}: {phases}; test accuracy {metrics['accuracy']:.4f}, "
                        f"{result.fit_seconds:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a transfer run: transfer_<arm>_<labels> or transfer_sweep_<axis>_<value>")
    run = parser.parse_args().run
    settings, recipe = read_settings(run)
    # Every output can be written (a read-only folder fails now, not after the training).
    check_writable(paths.transfer_model_file(run, 0).parent, paths.TRANSFER_TRAIN_DIR / run,
                   paths.transfer_predictions_file(run), paths.timing_file(run),
                   *(paths.transfer_curve_file(metric, run) for metric in ("accuracy", "loss")))

    backend.activate(settings["backend"])
    import numpy as np
    import pandas as pd

    from nnstudy.training.loop import learning_curves
    from nnstudy.training.resume import StageCheckpoints

    job = TransferSeeds(run, recipe, settings)
    _, test, _ = inputs = job.load()
    checkpoints = StageCheckpoints.open(
        job.stage, settings, [paths.transfer_settings_file(run), paths.TRANSFER_DATA_DIR]
        + ([paths.TRANSFER_SOURCE_DIR] if recipe.weights == "source" else []))
    runs = run_seeds(job, settings["seeds"], checkpoints, inputs)

    predictions = {"label": test.y} | {paths.seed_name(seed): np.asarray(record["predictions"])
                                       for seed, record in runs.records.items()}
    write_csv(pd.DataFrame(predictions), paths.transfer_predictions_file(run))
    for metric, table in learning_curves(runs.values("history")).items():
        write_csv(table, paths.transfer_curve_file(metric, run))
    started = [runs.records[seed]["built_at"] for seed in runs.trained]
    write_json(paths.timing_file(run), {
        "fit_seconds": {paths.seed_name(seed): record["fit_seconds"] for seed, record in runs.records.items()},
        "startup_seconds": round(min(started, default=time.time()) - backend.process_start(), 2),
        "stage_seconds": round(time.time() - backend.process_start(), 2),
    })
    checkpoints.complete()


if __name__ == "__main__":
    run_stage(main)
