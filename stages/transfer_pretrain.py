"""Stage transfer_pretrain: the source network, once per seed: the recipe's CNN trained from scratch
on the source classes (digits 0-4 by default). Its base's weights are what `weights: source` loads.

The seeds train side by side, one process a core, where a seed is long enough to pay a process's
start-up (NNSTUDY_SEED_PROCESSES, nnstudy.training.processes); every way gives the same weights.
With no run starting from it (ImageNet weights, or every run from scratch) it trains nothing.
"""

import time

from nnstudy.core import backend, paths
from nnstudy.core.errors import DataError, run_stage
from nnstudy.core.files import adopt, check_writable, handed_over, remove_tree, save_model
from nnstudy.core.jsonio import write_json
from nnstudy.training.processes import ENV as SEED_PROCESSES, in_processes, source_processes
from nnstudy.transfer.params import PretrainParams
from nnstudy.transfer.settings import read_settings


def source_task():
    """The source classes' training and validation images, as the source network learns them, and
    the classes' names."""
    from nnstudy.transfer.data import as_float, load_task
    from nnstudy.transfer.training import Task

    data = load_task(paths.TRANSFER_DATA_DIR)
    if data.source_train is None:
        raise DataError("weights 'source' need source classes, and data/transfer has none; "
                        "set transfer.source_classes")
    return Task(as_float(data.source_train), data.source_train.y, as_float(data.source_val), data.source_val.y,
                len(data.source_names)), data.source_names


def train_source(seed: int, settings: dict, recipe, task) -> dict:
    """Train one seed's source network, save its base, and return what pretrain.json says of it."""
    import keras

    from nnstudy.training.models import enable_determinism
    from nnstudy.transfer.models import base_of
    from nnstudy.transfer.training import pretrain

    # Keras numbers unnamed layers within a process (input_layer, input_layer_1, ...) and the weights
    # file keeps the name: a fresh count per seed makes the file the same bytes in any process.
    keras.backend.clear_session()
    enable_determinism(seed)
    result = pretrain(recipe, PretrainParams(**settings["pretrain"]), task)
    save_model(base_of(result.network), paths.source_weights_file(seed))
    phase = result.phases[0]
    run = {"val_accuracy": result.history["val_accuracy"][phase.kept_epoch - 1], "epochs_run": phase.epochs_run,
           "kept_epoch": phase.kept_epoch, "fit_seconds": round(result.fit_seconds, 2)}
    print(f"source network seed {seed}: {recipe.model} on {len(task.x_train)} images of {task.num_classes} "
          f"classes, val accuracy {run['val_accuracy']:.4f}, {phase.epochs_run} epochs, {result.fit_seconds:.1f} s",
          flush=True)
    return run


def train_source_alone(seed: int) -> tuple[dict, dict]:
    """train_source in a helper process of the stage: the seed's record, and its finished files,
    which the stage's process adopts (replaced together with its own outputs, or not at all)."""
    settings, recipe = read_settings("pretrain")
    backend.activate(settings["backend"])
    with handed_over() as files:
        run = train_source(seed, settings, recipe, source_task()[0])
    return run, files


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

    task, classes = source_task()
    seeds = settings["seeds"]
    pixels = task.x_train[0].size * len(task.x_train) * settings["pretrain"]["epochs"]
    processes = source_processes(len(seeds), pixels)
    if processes > 1:
        print(f"transfer_pretrain: {len(seeds)} seeds in {processes} processes side by side ({SEED_PROCESSES})",
              flush=True)
        per_seed = {}
        for seed, (run, files) in in_processes(train_source_alone, seeds, processes):
            adopt(files)
            per_seed[paths.seed_name(seed)] = run
    else:
        per_seed = {paths.seed_name(seed): train_source(seed, settings, recipe, task) for seed in seeds}
    write_json(paths.TRANSFER_PRETRAIN, {
        "needed": True, "model": recipe.model, "classes": list(classes),
        "val_accuracy": spread([run["val_accuracy"] for run in per_seed.values()]),
        "seeds": {name: {k: v for k, v in run.items() if k != "fit_seconds"} for name, run in per_seed.items()},
    })
    write_json(paths.timing_file("transfer_pretrain"), {
        "fit_seconds": {name: run["fit_seconds"] for name, run in per_seed.items()},
        "stage_seconds": round(time.time() - backend.process_start(), 2),
    })


if __name__ == "__main__":
    run_stage(main)
