"""Stage final: the best tuned configuration, retrained from scratch once per seed.

Early stopping on `final.monitor` with `final.patience`, and the best epoch's weights restored:
the network a practitioner would keep. The epoch kept is recorded per seed. The seeds train as
train@<variant>'s do (nnstudy.training.seeds): one by one, together, or side by side; killed, a
rerun keeps the finished seeds and resumes the running one. The candidates of `tune`'s selection
round are tried in order: one that diverges on a seed is passed over, and none holding fails the
stage (nnstudy.training.selection.first_that_holds).
"""

import time
from dataclasses import asdict, dataclass

from nnstudy.core import backend, params, paths
from nnstudy.core.errors import run_stage
from nnstudy.core.files import check_writable, save_model, write_csv
from nnstudy.core.jsonio import read_json, write_json
from nnstudy.training.seeds import Finished, NetworkSeeds, run_seeds


@dataclass(frozen=True)
class FinalSeeds(NetworkSeeds):
    """The tuned network's seeds, each with early stopping, keeping its best epoch's network."""

    def finish(self, seed: int, live, result) -> Finished:
        from nnstudy.training.loop import record_summary

        record_summary(live, result)
        save_model(result.network, paths.model_file(self.name, seed))
        kept = result.kept_epoch
        return Finished(self.record(result), [paths.model_file(self.name, seed), self.live_dir(seed)],
                        f"final seed {seed}: stopped after {result.epochs_run} epochs, kept epoch {kept} "
                        f"(val accuracy {result.history['val_accuracy'][kept - 1]:.4f}), {result.fit_seconds:.1f} s, "
                        f"{'DIVERGED' if result.diverged else 'ok'}")

    def settings(self, seeds: tuple[int, ...]) -> dict:
        """What the retrained seeds depend on (the checkpoint's key)."""
        return {"model": asdict(self.model), "stop": asdict(self.stop), "seeds": seeds, "loop": self.loop,
                "seeds_together": self.vmapped, "backend": self.backend, "diverged_loss": self.diverged_loss}


def main() -> None:
    study = params.load()
    best = read_json(paths.TUNE_BEST)
    # Every output can be written (a read-only folder fails now, not after the training).
    check_writable(paths.model_dir(paths.FINAL), paths.TRAIN_DIR / paths.FINAL, paths.timing_file("final"),
                   paths.FINAL_PICK, *(paths.curve_file(metric, paths.FINAL) for metric in ("accuracy", "loss")))

    backend.activate(study.backend)
    from nnstudy.core.data import load_prepared
    from nnstudy.training.loop import EarlyStop, learning_curves
    from nnstudy.training.resume import StageCheckpoints
    from nnstudy.training.selection import first_that_holds
    from nnstudy.training.tuning import tuned_model

    stop = EarlyStop(study.final.monitor, study.final.patience)
    # best.json written before the selection round has no candidates: its one pick is the only one.
    candidates = best.get("candidates") or [{"trial_id": best["trial_id"], "hyperparameters": best["hyperparameters"]}]
    data, opened, runs = load_prepared(), [], {}

    def retrain(candidate: dict) -> tuple[int, ...]:  # the seeds the candidate diverged on
        model = tuned_model(study.base, candidate["hyperparameters"], study.tune.batch_size, study.final.max_epochs)
        job = FinalSeeds(paths.FINAL, "final", model, study.backend, study.loop, study.vmapped, study.diverged_loss, stop)
        checkpoints = StageCheckpoints.open("final", job.settings(study.seeds), [paths.TUNE_BEST, paths.PREPARED_DIR])
        opened.append(checkpoints)
        runs["chosen"] = run_seeds(job, study.seeds, checkpoints, data)
        return tuple(runs["chosen"].diverged)

    chosen, passed_over = first_that_holds(candidates, retrain)
    kept = runs["chosen"]
    for metric, table in learning_curves(kept.values("history")).items():
        write_csv(table, paths.curve_file(metric, paths.FINAL))
    write_json(paths.timing_file("final"), {
        "backend": study.backend, "loop": study.loop, "seeds_together": study.vmapped,
        "fit_seconds": {paths.seed_name(seed): record["fit_seconds"] for seed, record in kept.records.items()},
        "stage_seconds": round(time.time() - backend.process_start(), 2),
    })
    write_json(paths.FINAL_PICK, {"trial_id": chosen["trial_id"], "hyperparameters": chosen["hyperparameters"],
                                  "passed_over": passed_over})
    for checkpoints in opened:
        checkpoints.complete()


if __name__ == "__main__":
    run_stage(main)
