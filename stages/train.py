"""Stage train@<variant>: train one network of the design study.

    python -m stages.train batch_mini
"""

import argparse

from nnstudy import params, paths
from nnstudy.errors import run_stage
from nnstudy.jsonio import write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", help="a key of `variants` in params.yaml")
    variant = parser.parse_args().variant
    study = params.load()
    model = params.variant(study, variant)

    # Imported only now: a bad param fails in a second, before the TensorFlow import.
    from nnstudy.data import load_prepared
    from nnstudy.models import enable_determinism
    from nnstudy.training import learning_curves, open_live, record_summary, train
    from nnstudy.weights import save_weights

    data = load_prepared()
    enable_determinism(study.seed)
    live = open_live(paths.TRAIN_DIR / variant)
    result = train(model, data, study.seed, live, study.diverged_loss)
    record_summary(live, result)

    paths.model_file(variant).parent.mkdir(parents=True, exist_ok=True)
    result.network.save(paths.model_file(variant))
    save_weights(result.weights_before, result.weights_after, paths.weights_file(variant))
    for metric, table in learning_curves(result.history).items():
        paths.curve_file(metric, variant).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(paths.curve_file(metric, variant), index=False)
    write_json(paths.timing_file(f"train_{variant}"), {"fit_seconds": round(result.fit_seconds, 2)})

    state = "DIVERGED" if result.diverged else "ok"
    print(f"{variant}: {result.epochs_run} epochs, {result.weight_updates} updates, "
          f"val accuracy {result.history['val_accuracy'][-1]:.4f}, {result.fit_seconds:.1f} s, {state}")


if __name__ == "__main__":
    run_stage(main)
