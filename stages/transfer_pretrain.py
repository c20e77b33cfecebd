"""Stage transfer_pretrain: the source network, once per seed: the recipe's CNN trained from scratch
on the source classes (digits 0-4 by default). Its base's weights are what `weights: source` loads.

With no run starting from it (ImageNet weights, or every run from scratch) it trains nothing.
"""

import time

from nnstudy.core import backend, paths
from nnstudy.core.errors import DataError, run_stage
from nnstudy.core.files import check_writable, remove_tree, save_model
from nnstudy.core.jsonio import write_json
from nnstudy.transfer.params import PretrainParams
from nnstudy.transfer.settings import read_settings


def main() -> None:
    settings, recipe = read_settings("pretrain")
    # Every output can be written (a read-only folder fails now, not after the training).
    check_writable(paths.TRANSFER_SOURCE_DIR, paths.TRANSFER_PRETRAIN, paths.timing_file("transfer_pretrain"))
    remove_tree(paths.TRANSFER_SOURCE_DIR)
    paths.TRANSFER_SOURCE_DIR.mkdir(parents=True)
    if not settings["needed"]:
        write_json(paths.TRANSFER_PRETRAIN, {"needed": False})
        print("transfer_pretrain: no run starts from the source network; nothing to train")
        return

    backend.activate(settings["backend"])
    from nnstudy.evaluation.stats import spread
    from nnstudy.training.models import enable_determinism
    from nnstudy.transfer.data import as_float, load_task
    from nnstudy.transfer.models import base_of
    from nnstudy.transfer.training import Task, pretrain

    data = load_task(paths.TRANSFER_DATA_DIR)
    if data.source_train is None:
        raise DataError("weights 'source' need source classes, and data/transfer has none; "
                        "set transfer.source_classes")
    task = Task(as_float(data.source_train), data.source_train.y, as_float(data.source_val), data.source_val.y,
                len(data.source_names))
    per_seed = {}
    for seed in settings["seeds"]:
        enable_determinism(seed)
        result = pretrain(recipe, PretrainParams(**settings["pretrain"]), task)
        save_model(base_of(result.network), paths.source_weights_file(seed))
        phase = result.phases[0]
        per_seed[paths.seed_name(seed)] = {
            "val_accuracy": result.history["val_accuracy"][phase.kept_epoch - 1],
            "epochs_run": phase.epochs_run, "kept_epoch": phase.kept_epoch, "fit_seconds": round(result.fit_seconds, 2),
        }
        print(f"source network seed {seed}: {recipe.model} on {len(task.x_train)} images of "
              f"{task.num_classes} classes, val accuracy {per_seed[paths.seed_name(seed)]['val_accuracy']:.4f}, "
              f"{phase.epochs_run} epochs, {result.fit_seconds:.1f} s")
    write_json(paths.TRANSFER_PRETRAIN, {
        "needed": True, "model": recipe.model, "classes": list(data.source_names),
        "val_accuracy": spread([run["val_accuracy"] for run in per_seed.values()]),
        "seeds": {name: {k: v for k, v in run.items() if k != "fit_seconds"} for name, run in per_seed.items()},
    })
    write_json(paths.timing_file("transfer_pretrain"), {
        "fit_seconds": {name: run["fit_seconds"] for name, run in per_seed.items()},
        "stage_seconds": round(time.time() - backend.process_start(), 2),
    })


if __name__ == "__main__":
    run_stage(main)
