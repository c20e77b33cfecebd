"""Stage final: the best tuned configuration, retrained from scratch once per seed.

Early stopping on `final.monitor` with `final.patience`, and the best epoch's weights restored:
the network a practitioner would keep. The epoch kept is recorded per seed. The candidates of
`tune`'s selection round are tried in order: one that diverges on a seed is passed over, and none
holding fails the stage (nnstudy.training.selection.first_that_holds).
"""

import time
from dataclasses import asdict

from nnstudy.core import backend, params, paths
from nnstudy.core.errors import run_stage
from nnstudy.core.jsonio import read_json, write_json
from nnstudy.core.files import check_writable, save_model, write_csv


def main() -> None:
    study = params.load()
    best = read_json(paths.TUNE_BEST)
    # Every output can be written (a read-only folder fails now, not after the training).
    check_writable(paths.model_dir(paths.FINAL), paths.TRAIN_DIR / paths.FINAL, paths.timing_file("final"), paths.FINAL_PICK,
                   *(paths.curve_file(metric, paths.FINAL) for metric in ("accuracy", "loss")))

    backend.activate(study.backend)
    from nnstudy.core.data import load_prepared
    from nnstudy.training.loop import EarlyStop, learning_curves, open_live, record_summary, train, train_seeds
    from nnstudy.training.models import enable_determinism
    from nnstudy.training.resume import StageCheckpoints
    from nnstudy.training.selection import first_that_holds
    from nnstudy.training.tuning import tuned_model

    stop = EarlyStop(study.final.monitor, study.final.patience)
    data = load_prepared()
    opened = []
    # best.json written before the selection round has no candidates: its one pick is the only one.
    candidates = best.get("candidates") or [{"trial_id": best["trial_id"], "hyperparameters": best["hyperparameters"]}]

    def retrain(candidate):
        model = tuned_model(study.base, candidate["hyperparameters"], study.tune.batch_size, study.final.max_epochs)
        checkpoints = StageCheckpoints.open(
            "final", {"model": asdict(model), "stop": asdict(stop), "seeds": study.seeds, "loop": study.loop,
                      "seeds_together": study.vmapped, "backend": study.backend, "diverged_loss": study.diverged_loss},
            [paths.TUNE_BEST, paths.PREPARED_DIR])
        opened.append(checkpoints)
        histories, fit_seconds = {}, {}
        pending, diverged = [], []
        for seed in study.seeds:
            kept = checkpoints.finished(seed)
            if kept is not None:
                histories[seed] = kept["history"]
                fit_seconds[paths.seed_name(seed)] = kept["fit_seconds"]
                diverged += [seed] if kept.get("diverged") else []
            else:
                pending.append(seed)

        def trained():
            """(seed, its DVCLive run, its result) for each seed to train: one by one, or all in one program
            (each seed with its own early stopping: a stopped seed's state stops changing)."""
            if study.vmapped and pending:
                lives = [open_live(paths.train_live_dir(paths.FINAL, seed)) for seed in pending]
                results = train_seeds(model, data, pending, lives, study.diverged_loss,
                                      [f"final seed {seed}" for seed in pending], stop=stop,
                                      checkpoint=checkpoints.seeds_together())
                yield from zip(pending, lives, results)
                return
            for seed in pending:
                enable_determinism(seed)
                live = open_live(paths.train_live_dir(paths.FINAL, seed))
                yield seed, live, train(model, data, seed, live, study.diverged_loss, study.loop,
                                        label=f"final seed {seed}", stop=stop, checkpoint=checkpoints.seed(seed))

        for seed, live, result in trained():
            record_summary(live, result)
            save_model(result.network, paths.model_file(paths.FINAL, seed))
            histories[seed] = result.history
            fit_seconds[paths.seed_name(seed)] = round(result.fit_seconds, 2)
            checkpoints.finish_seed(seed, {"history": result.history, "fit_seconds": fit_seconds[paths.seed_name(seed)],
                                           "diverged": result.diverged},
                                    [paths.model_file(paths.FINAL, seed), paths.train_live_dir(paths.FINAL, seed)])
            diverged += [seed] if result.diverged else []
            kept = result.kept_epoch
            print(f"final seed {seed}: stopped after {result.epochs_run} epochs, kept epoch {kept} "
                  f"(val accuracy {result.history['val_accuracy'][kept - 1]:.4f}), {result.fit_seconds:.1f} s, "
                  f"{'DIVERGED' if result.diverged else 'ok'}")
        trained_with.update(histories=histories, fit_seconds=fit_seconds)
        return tuple(sorted(diverged))

    trained_with = {}
    chosen, passed_over = first_that_holds(candidates, retrain)
    histories, fit_seconds = trained_with["histories"], trained_with["fit_seconds"]
    histories = [histories[seed] for seed in study.seeds]
    fit_seconds = {paths.seed_name(seed): fit_seconds[paths.seed_name(seed)] for seed in study.seeds}

    for metric, table in learning_curves(histories).items():
        write_csv(table, paths.curve_file(metric, paths.FINAL))
    write_json(paths.timing_file("final"), {
        "backend": study.backend, "loop": study.loop, "seeds_together": study.vmapped,
        "fit_seconds": fit_seconds,
        "stage_seconds": round(time.time() - backend.process_start(), 2),
    })
    write_json(paths.FINAL_PICK, {"trial_id": chosen["trial_id"], "hyperparameters": chosen["hyperparameters"],
                                  "passed_over": passed_over})
    for checkpoints in opened:
        checkpoints.complete()


if __name__ == "__main__":
    run_stage(main)
