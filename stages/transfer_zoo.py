"""Stage transfer_zoo: the zoo table, every model of transfer.zoo.models side by side.

    python -m stages.transfer_zoo

For each model: parameters, size on disk, peak memory and time of a training step at the zoo's
input size, the time of an epoch over the target task, and (zoo.epochs > 0) its test accuracy.
Images, classes and the training set's size come from the transfer task on disk (data/transfer).
It takes minutes (the big applications compile for tens of seconds each), so it prints each model
as it goes.
"""

import time

from nnstudy.core import backend, params, paths
from nnstudy.core.errors import run_stage
from nnstudy.core.jsonio import write_json
from nnstudy.core.files import check_writable, write_csv

# Enough digits to compare models, no more: timings vary by more than this from run to run.
DECIMALS = {"size_mb": 2, "build_seconds": 2, "first_step_seconds": 2, "step_seconds": 4, "epoch_seconds": 2,
            "peak_memory_mb": 1, "accuracy": 4}


def main() -> None:
    study = params.load()
    # Every output can be written (a read-only folder fails now, not after the training).
    check_writable(paths.ZOO_TABLE, paths.timing_file("transfer_zoo"))
    transfer = study.transfer
    # Keras (and TensorFlow or JAX) only now: a bad setting fails in a fraction of a second.
    backend.activate(study.backend)
    import pandas as pd

    from nnstudy.training.models import enable_determinism
    from nnstudy.transfer import zoo
    from nnstudy.transfer.data import load_task
    from nnstudy.transfer.evaluate import target_task

    task, test, _ = target_task(load_task(paths.TRANSFER_DATA_DIR), transfer.base, study.seed, transfer.val_per_class)
    print(f"zoo: {len(transfer.zoo.models)} models, {len(task.x_train)} training images "
          f"{'x'.join(map(str, task.image_shape))}, {task.num_classes} classes, "
          f"batch {transfer.zoo.batch_size}, {transfer.zoo.steps} timed steps each, training the "
          f"{'head (base frozen)' if transfer.zoo.train == 'head' else 'whole network'}", flush=True)
    rows, seconds = [], {}
    for model in transfer.zoo.models:
        start = time.perf_counter()
        enable_determinism(study.seed)  # each row as if measured alone, whatever the list's order
        row = zoo.zoo_row(model, transfer.zoo, transfer.base, task, test, study.seed,
                          transfer.augmentations, transfer.augment_factor)
        rows.append(row)
        seconds[model] = round(time.perf_counter() - start, 2)
        accuracy = "" if row["accuracy"] is None else f", test accuracy {row['accuracy']:.4f}"
        print(f"{model:>14} @{row['input_size']}: {row['parameters']:>11,} parameters, "
              f"{row['step_seconds']:.3f} s/step, peak {row['peak_memory_mb']:.0f} MB{accuracy} "
              f"({seconds[model]:.0f} s)", flush=True)

    table = pd.DataFrame(rows, columns=list(zoo.COLUMNS)).round(DECIMALS)
    write_csv(table, paths.ZOO_TABLE)
    write_json(paths.timing_file("transfer_zoo"), {
        "backend": study.backend, "model_seconds": seconds,
        "stage_seconds": round(time.time() - backend.process_start(), 2),
    })


if __name__ == "__main__":
    run_stage(main)
