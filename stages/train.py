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
from dataclasses import dataclass

from nnstudy.core import backend, params, paths
from nnstudy.core.errors import run_stage
from nnstudy.core.files import check_writable, save_model, write_csv
from nnstudy.core.jsonio import write_json
from nnstudy.training.seeds import Finished, NetworkSeeds, run_seeds


@dataclass(frozen=True)
class VariantSeeds(NetworkSeeds):
    """A variant's seeds; each keeps its network and its weights before and after training."""

    def finish(self, seed: int, live, result) -> Finished:
        from nnstudy.training.loop import record_summary
        from nnstudy.training.weights import save_weights

        record_summary(live, result)
        save_model(result.network, paths.model_file(self.name, seed))
        save_weights(result.weights_before, result.weights_after, paths.weights_file(self.name, seed))
        state = "DIVERGED" if result.diverged else "ok"
        return Finished(self.record(result), [paths.model_file(self.name, seed), paths.weights_file(self.name, seed),
                                              self.live_dir(seed)],
                        f"{self.name} seed {seed}: {result.epochs_run} epochs, {result.weight_updates} updates, "
                        f"val accuracy {result.history['val_accuracy'][-1]:.4f}, {result.fit_seconds:.1f} s, {state}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", help="a key of `variants` in params.yaml")
    variant = parser.parse_args().variant
    settings = params.read_settings(variant)
    # Every output can be written (a read-only folder fails now, not after the training).
    check_writable(paths.model_dir(variant), paths.weights_file(variant, 0).parent, paths.TRAIN_DIR / variant,
                   *(paths.curve_file(metric, variant) for metric in ("accuracy", "loss")),
                   paths.timing_file(f"train_{variant}"))

    # Keras (and TensorFlow or JAX) only now: a bad setting fails in a fraction of a second.
    with backend.startup_imports():
        backend.activate(settings.backend)
        from nnstudy.training.loop import learning_curves
        from nnstudy.training.resume import StageCheckpoints

    job = VariantSeeds(variant, f"train@{variant}", settings.model, settings.backend, settings.loop,
                       settings.vmapped, settings.diverged_loss)
    checkpoints = StageCheckpoints.open(job.stage, settings, [paths.settings_file(variant), paths.PREPARED_DIR])
    runs = run_seeds(job, settings.seeds, checkpoints, job.load())

    built = [runs.records[seed]["built_at"] for seed in runs.trained]
    startup = min(built) - backend.process_start() if built else None
    for metric, table in learning_curves(runs.values("history")).items():
        write_csv(table, paths.curve_file(metric, variant))
    write_json(paths.timing_file(f"train_{variant}"), {
        "backend": settings.backend, "loop": settings.loop, "seeds_together": settings.vmapped,
        "fit_seconds": {paths.seed_name(seed): record["fit_seconds"] for seed, record in runs.records.items()},
        # Process start to data loaded and the first network built: what each stage pays up front.
        "startup_seconds": round(startup or time.time() - backend.process_start(), 2),
        "stage_seconds": round(time.time() - backend.process_start(), 2),
    })
    checkpoints.complete()


if __name__ == "__main__":
    run_stage(main)
