"""Stage train@<variant>: train one network of the design study, once per seed.

    python -m stages.train batch_mini

Its only inputs are the prepared data and results/settings/<variant>.json (the settings stage
writes it from params.yaml), so it re-runs only when this variant's own settings change.

The seeds train one after another, all together as one XLA program (`seeds_together`), or side by
side in processes of their own where one process would leave cores idle: small batches, long
seeds (NNSTUDY_SEED_PROCESSES, nnstudy.training.processes). Every way gives each seed's own outputs.

Killed (kill -9, a power cut), a rerun keeps the seeds it finished and resumes the running one
from its last finished epoch (nnstudy.training.resume), with the same results.
"""

import argparse
import time

from nnstudy.core import backend, params, paths
from nnstudy.core.errors import run_stage
from nnstudy.core.jsonio import write_json
from nnstudy.core.files import adopt, check_writable, handed_over, save_model, write_csv
from nnstudy.training.processes import ENV as SEED_PROCESSES, in_processes, seed_processes


def finish_seed(variant: str, seed: int, live, result, checkpoints) -> dict:
    """Write a trained seed's outputs and keep them for a rerun; what the stage needs of the seed."""
    from nnstudy.training.loop import record_summary
    from nnstudy.training.weights import save_weights

    record_summary(live, result)
    save_model(result.network, paths.model_file(variant, seed))
    save_weights(result.weights_before, result.weights_after, paths.weights_file(variant, seed))
    record = {"history": result.history, "fit_seconds": round(result.fit_seconds, 2), "built_at": result.built_at}
    checkpoints.finish_seed(seed, record, [paths.model_file(variant, seed), paths.weights_file(variant, seed),
                                           paths.train_live_dir(variant, seed)])
    state = "DIVERGED" if result.diverged else "ok"
    print(f"{variant} seed {seed}: {result.epochs_run} epochs, {result.weight_updates} updates, "
          f"val accuracy {result.history['val_accuracy'][-1]:.4f}, {result.fit_seconds:.1f} s, {state}", flush=True)
    return record


def train_seed(variant: str, settings: params.RunSettings, data, seed: int, checkpoints) -> dict:
    """Train one seed (resuming its checkpoint, if a killed run left one) and write its outputs."""
    from nnstudy.training.loop import open_live, train
    from nnstudy.training.models import enable_determinism

    enable_determinism(seed)
    live = open_live(paths.train_live_dir(variant, seed))
    result = train(settings.model, data, seed, live, settings.diverged_loss, settings.loop,
                   label=f"{variant} seed {seed}", checkpoint=checkpoints.seed(seed))
    return finish_seed(variant, seed, live, result, checkpoints)


def train_alone(seed: int, variant: str, checkpoint_folder: str | None) -> tuple[dict, dict]:
    """train_seed in a helper process of the stage: the seed's record, and its finished files,
    which the stage's process adopts (they are replaced with its own outputs, or not at all)."""
    settings = params.read_settings(variant)
    with backend.startup_imports():
        backend.activate(settings.backend)
        from nnstudy.core.data import load_prepared
        from nnstudy.training.resume import StageCheckpoints

    checkpoints = StageCheckpoints.held_by_the_stage(f"train@{variant}", checkpoint_folder)
    with handed_over() as files:
        record = train_seed(variant, settings, load_prepared(), seed, checkpoints)
    return record, files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", help="a key of `variants` in params.yaml")
    variant = parser.parse_args().variant
    settings = params.read_settings(variant)
    model = settings.model
    # Every output can be written (a read-only folder fails now, not after the training).
    check_writable(paths.model_dir(variant), paths.weights_file(variant, 0).parent, paths.TRAIN_DIR / variant,
                   *(paths.curve_file(metric, variant) for metric in ("accuracy", "loss")),
                   paths.timing_file(f"train_{variant}"))

    # Keras (and TensorFlow or JAX) only now: a bad setting fails in a fraction of a second.
    with backend.startup_imports():
        backend.activate(settings.backend)
        from nnstudy.core.data import load_prepared
        from nnstudy.training.loop import learning_curves, open_live, resolve_batch_size, train_seeds
        from nnstudy.training.resume import StageCheckpoints

    data = load_prepared()
    checkpoints = StageCheckpoints.open(f"train@{variant}", settings,
                                        [paths.settings_file(variant), paths.PREPARED_DIR])
    records, pending = {}, []
    for seed in settings.seeds:
        kept = checkpoints.finished(seed)
        if kept is not None:
            records[seed] = kept
        else:
            pending.append(seed)

    processes = seed_processes(resolve_batch_size(model.batch_size, len(data.train.x)), len(pending),
                               examples=len(data.train.x) * model.epochs)
    if settings.vmapped and pending:
        # All the seeds in one XLA program.
        lives = [open_live(paths.train_live_dir(variant, seed)) for seed in pending]
        results = train_seeds(model, data, pending, lives, settings.diverged_loss,
                              [f"{variant} seed {seed}" for seed in pending], checkpoint=checkpoints.seeds_together())
        for seed, live, result in zip(pending, lives, results):
            records[seed] = finish_seed(variant, seed, live, result, checkpoints)
    elif processes > 1:
        # One process would leave cores idle (a small batch, or a long seed): a process per seed.
        print(f"{variant}: {len(pending)} seeds in {processes} processes side by side ({SEED_PROCESSES})", flush=True)
        for seed, (record, files) in in_processes(train_alone, pending, processes, variant,
                                                  None if checkpoints.folder is None else str(checkpoints.folder)):
            adopt(files)
            records[seed] = record
    else:
        for seed in pending:
            records[seed] = train_seed(variant, settings, data, seed, checkpoints)

    histories = [records[seed]["history"] for seed in settings.seeds]
    fit_seconds = {paths.seed_name(seed): records[seed]["fit_seconds"] for seed in settings.seeds}
    built = [records[seed]["built_at"] for seed in pending]
    startup = min(built) - backend.process_start() if built else None

    for metric, table in learning_curves(histories).items():
        write_csv(table, paths.curve_file(metric, variant))
    write_json(paths.timing_file(f"train_{variant}"), {
        "backend": settings.backend, "loop": settings.loop, "seeds_together": settings.vmapped,
        "fit_seconds": fit_seconds,
        # Process start to data loaded and the first network built: what each stage pays up front.
        "startup_seconds": round(startup or time.time() - backend.process_start(), 2),
        "stage_seconds": round(time.time() - backend.process_start(), 2),
    })
    checkpoints.complete()


if __name__ == "__main__":
    run_stage(main)
