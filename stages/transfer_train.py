"""Stage transfer_train@<arm>-<labels> and transfer_sweep_<axis>@...: train one transfer run, once
per seed, and test each network on the target test set.

    python -m stages.transfer_train transfer_partial_10

Its inputs are the tasks (data/transfer), the source network and results/transfer/settings/<run>.json.
Killed, a rerun keeps the finished seeds and resumes the running one in the phase and at the epoch it
had reached (nnstudy.training.resume), with the same results.
"""

import argparse
import time

from nnstudy.core import backend, paths
from nnstudy.core.errors import run_stage
from nnstudy.core.jsonio import write_json
from nnstudy.core.files import check_writable, save_model, write_csv
from nnstudy.transfer.settings import read_settings


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

    from nnstudy.evaluation.metrics import predicted_labels
    from nnstudy.training.loop import Progress, epoch_logger, learning_curves, open_live
    from nnstudy.training.models import enable_determinism
    from nnstudy.training.resume import StageCheckpoints
    from nnstudy.core.jsonio import make_strict
    from nnstudy.transfer.data import load_task
    from nnstudy.transfer.evaluate import run_metrics, target_task
    from nnstudy.transfer.models import imagenet_weights
    from nnstudy.transfer.training import most_epochs, train_recipe

    task, test, names = target_task(load_task(paths.TRANSFER_DATA_DIR), recipe, settings["subset_seed"],
                                    settings["val_per_class"])
    imagenet = imagenet_weights(recipe.model, recipe.input_size) if recipe.weights == "imagenet" else None
    checkpoints = StageCheckpoints.open(
        f"transfer_train@{run}", settings,
        [paths.transfer_settings_file(run), paths.TRANSFER_DATA_DIR]
        + ([paths.TRANSFER_SOURCE_DIR] if recipe.weights == "source" else []))
    histories, predictions, fit_seconds, startup = [], {"label": test.y}, {}, None
    for seed in settings["seeds"]:
        kept = checkpoints.finished(seed)
        if kept is not None:
            histories.append(kept["history"])
            predictions[paths.seed_name(seed)] = np.asarray(kept["predictions"])
            fit_seconds[paths.seed_name(seed)] = kept["fit_seconds"]
            continue
        enable_determinism(seed)
        live = open_live(paths.transfer_live_dir(run, seed))
        startup = startup or time.time() - backend.process_start()
        result = train_recipe(
            recipe, task, base_weights=paths.source_weights_file(seed) if recipe.weights == "source" else None,
            imagenet=imagenet, augmentations=tuple(settings["augmentations"]), factor=settings["augment_factor"],
            log=epoch_logger(live, Progress(f"{run} seed {seed}", most_epochs(recipe))),
            checkpoint=checkpoints.seed(seed), live=live)
        proba = np.asarray(result.network.predict(test.x_float, batch_size=256, verbose=0), dtype=np.float64)
        metrics = run_metrics(test.y, proba)
        for name, value in metrics.items():
            live.summary[name] = value
        live.summary["diverged"] = result.diverged
        live.summary["phases"] = {p.name: {"epochs_run": p.epochs_run, "kept_epoch": p.kept_epoch,
                                           "trainable_weights": p.trainable_weights,
                                           "unfrozen_layers": p.unfrozen_layers} for p in result.phases}
        live.summary["training_examples"] = len(task.x_train)
        live.summary["parameters"] = result.network.count_params()
        live.make_summary()
        live.end()
        make_strict(paths.transfer_live_dir(run, seed))
        save_model(result.network, paths.transfer_model_file(run, seed))
        histories.append(result.history)
        predictions[paths.seed_name(seed)] = predicted_labels(proba)
        fit_seconds[paths.seed_name(seed)] = round(result.fit_seconds, 2)
        phases = ", ".join(f"{p.name} {p.epochs_run} epochs (kept {p.kept_epoch})" for p in result.phases)
        print(f"{run} seed {seed}: {phases}; test accuracy {metrics['accuracy']:.4f}, {result.fit_seconds:.1f} s")
        checkpoints.finish_seed(seed, {"history": result.history, "fit_seconds": fit_seconds[paths.seed_name(seed)],
                                       "predictions": predictions[paths.seed_name(seed)].tolist()},
                                [paths.transfer_model_file(run, seed), paths.transfer_live_dir(run, seed)])

    write_csv(pd.DataFrame(predictions), paths.transfer_predictions_file(run))
    for metric, table in learning_curves(histories).items():
        write_csv(table, paths.transfer_curve_file(metric, run))
    write_json(paths.timing_file(run), {
        "fit_seconds": fit_seconds, "startup_seconds": round(startup or time.time() - backend.process_start(), 2),
        "stage_seconds": round(time.time() - backend.process_start(), 2),
    })
    checkpoints.complete()


if __name__ == "__main__":
    run_stage(main)
