"""Stage final: train the best tuned configuration from scratch for `final.epochs` epochs."""

from dataclasses import replace

from nnstudy import params, paths
from nnstudy.errors import run_stage
from nnstudy.jsonio import read_json, write_json


def main() -> None:
    study = params.load()
    best = read_json(paths.TUNE_DIR / "best.json")

    from nnstudy.data import load_prepared
    from nnstudy.models import enable_determinism
    from nnstudy.training import learning_curves, open_live, record_summary, train
    from nnstudy.tuning import tuned_model

    model = replace(tuned_model(study.base, best["hyperparameters"]),
                    epochs=study.final_epochs, batch_size=study.tune.batch_size)
    data = load_prepared()
    enable_determinism(study.seed)
    live = open_live(paths.FINAL_DIR)
    result = train(model, data, study.seed, live, study.diverged_loss)
    record_summary(live, result)

    paths.FINAL_MODEL.parent.mkdir(parents=True, exist_ok=True)
    result.network.save(paths.FINAL_MODEL)
    for metric, table in learning_curves(result.history).items():
        paths.curve_file(metric, "final").parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(paths.curve_file(metric, "final"), index=False)
    write_json(paths.timing_file("final"), {"fit_seconds": round(result.fit_seconds, 2)})
    print(f"final: {result.epochs_run} epochs, val accuracy {result.history['val_accuracy'][-1]:.4f}, "
          f"{result.fit_seconds:.1f} s")


if __name__ == "__main__":
    run_stage(main)
