"""Stage train@<variant>: train one network of the design study, once per seed.

    python -m stages.train batch_mini

Its only inputs are the prepared data and results/settings/<variant>.json (the settings stage
writes it from params.yaml), so it re-runs only when this variant's own settings change.

Killed (kill -9, a power cut), a rerun keeps the seeds it finished and resumes the running one
from its last finished epoch (nnstudy.training.resume), with the same results.
"""

import argparse
import time

from nnstudy.core import backend, params, paths
from nnstudy.core.errors import run_stage
from nnstudy.core.jsonio import write_json
from nnstudy.core.files import check_writable, save_model, write_csv


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
        from nnstudy.training.loop import learning_curves, open_live, record_summary, train, train_seeds
        from nnstudy.training.models import enable_determinism
        from nnstudy.training.resume import StageCheckpoints
        from nnstudy.training.weights import save_weights

    data = load_prepared()
    checkpoints = StageCheckpoints.open(f"train@{variant}", settings,
                                        [paths.settings_file(variant), paths.PREPARED_DIR])
    histories, fit_seconds, startup = {}, {}, None
    pending = []
    for seed in settings.seeds:
        kept = checkpoints.finished(seed)
        if kept is not None:
            histories[seed] = kept["history"]
            fit_seconds[paths.seed_name(seed)] = kept["fit_seconds"]
        else:
            pending.append(seed)

    def trained():
        """(seed, its DVCLive run, its result) for each seed to train: one by one, or all in one program."""
        if settings.vmapped and pending:
            lives = [open_live(paths.train_live_dir(variant, seed)) for seed in pending]
            results = train_seeds(model, data, pending, lives, settings.diverged_loss,
                                  [f"{variant} seed {seed}" for seed in pending],
                                  checkpoint=checkpoints.seeds_together())
            yield from zip(pending, lives, results)
            return
        for seed in pending:
            enable_determinism(seed)
            live = open_live(paths.train_live_dir(variant, seed))
            yield seed, live, train(model, data, seed, live, settings.diverged_loss, settings.loop,
                                    label=f"{variant} seed {seed}", checkpoint=checkpoints.seed(seed))

    for seed, live, result in trained():
        record_summary(live, result)
        save_model(result.network, paths.model_file(variant, seed))
        save_weights(result.weights_before, result.weights_after, paths.weights_file(variant, seed))
        histories[seed] = result.history
        startup = startup or result.built_at - backend.process_start()
        fit_seconds[paths.seed_name(seed)] = round(result.fit_seconds, 2)
        checkpoints.finish_seed(seed, {"history": result.history, "fit_seconds": fit_seconds[paths.seed_name(seed)]},
                                [paths.model_file(variant, seed), paths.weights_file(variant, seed),
                                 paths.train_live_dir(variant, seed)])
        state = "DIVERGED" if result.diverged else "ok"
        print(f"{variant} seed {seed}: {result.epochs_run} epochs, {result.weight_updates} updates, "
              f"val accuracy {result.history['val_accuracy'][-1]:.4f}, {result.fit_seconds:.1f} s, {state}")
    histories = [histories[seed] for seed in settings.seeds]
    fit_seconds = {paths.seed_name(seed): fit_seconds[paths.seed_name(seed)] for seed in settings.seeds}

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
