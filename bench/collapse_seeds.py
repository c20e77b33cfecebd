"""Was trial 0062's survival chance? Its configuration from scratch on many seeds, by every path.

    python -m bench.collapse_seeds                 # seeds 1-10, 6 epochs (bench/collapse_seeds.json)

Issue #27: 256/512, L2 1e-6, learning rate 1e-2, no dropout (RMSprop, He-normal) reached 93.4 % in
one Hyperband trial, and collapsed to 10 % in 9 of 10 runs from scratch. This trains it on this
worktree's prepared data (`dvc repro prepare` first) for `--epochs` epochs on each seed, by three
paths, and counts the collapses (nnstudy's `diverged`: a network no better than always guessing
one class):
- `train_fit`, `train_compiled`: the study's own `train` with `loop: fit` / `loop: compiled`;
- `tuner_fit`, `tuner_compiled`: keras-tuner's path, as `tuner.search` runs a trial: the
  StudyHyperModel builds the network and its `fit` trains it, with the search's callbacks
  (the macro-F1 logger, EarlyStopping on val_loss) and the seed set once before, as the stage does.
Where a tuner path and a `train` path ran the same math, their per-epoch validation accuracies
are compared: `same_as_train` says whether nothing in the tuner's path (its shuffling, its
seeding, its callbacks) differs from the study's training.
"""

import argparse
import json
import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from bench.clone import ROOT, head_commit, this_machine

RESULTS = ROOT / "bench" / "collapse_seeds.json"
TRIAL_0062 = {"units_1": 256, "units_2": 512, "l2": 1e-6, "learning_rate": 1e-2, "dropout": 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 11)))
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from nnstudy.core import backend, params
    study = params.load(ROOT / "params.yaml")
    backend.activate("jax")
    import keras
    import keras_tuner as kt

    from nnstudy.core.data import load_prepared
    from nnstudy.training.loop import has_diverged, open_live, train, weight_snapshot
    from nnstudy.training.models import enable_determinism
    from nnstudy.training.tuning import StudyHyperModel, ValidationMacroF1, tuned_model

    os.chdir(ROOT)
    data = load_prepared()
    model = tuned_model(study.base, TRIAL_0062, study.tune.batch_size, args.epochs)
    chance = float(data.train.y.mean(axis=0).max())
    space = study.tune
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for loop in ("fit", "compiled"):
            for seed in args.seeds:
                enable_determinism(seed)
                result = train(model, data, seed, open_live(Path(folder) / f"{loop}_{seed}"), study.diverged_loss,
                               loop, label=f"train {loop} seed {seed}")
                runs.setdefault(f"train_{loop}", []).append(
                    {"seed": seed, "diverged": result.diverged, "val_accuracy": result.history["val_accuracy"]})
                print(f"train {loop} seed {seed}: {result.history['val_accuracy'][-1]:.4f}"
                      f"{' DIVERGED' if result.diverged else ''}", flush=True)

                enable_determinism(seed)  # the stage seeds once, then the trials run
                hypermodel = StudyHyperModel(study.base, space, data, seed, loop)
                hp = kt.HyperParameters()
                hypermodel.build(hp)  # registers the axes
                hp.values.update({k: v for k, v in TRIAL_0062.items() if k in hp.values})
                network = hypermodel.build(hp)
                history = hypermodel.fit(
                    hp, network, data.train.x, data.train.y, batch_size=space.batch_size,
                    validation_data=(data.val.x, data.val.y), shuffle=True, verbose=0, epochs=args.epochs,
                    callbacks=[ValidationMacroF1(data.val),
                               keras.callbacks.EarlyStopping(monitor="val_loss", patience=space.patience)]).history
                diverged = has_diverged(history["loss"], weight_snapshot(network), study.diverged_loss,
                                        history["accuracy"][-1], chance)
                runs.setdefault(f"tuner_{loop}", []).append(
                    {"seed": seed, "diverged": diverged, "val_accuracy": history["val_accuracy"]})
                print(f"tuner {loop} seed {seed}: {history['val_accuracy'][-1]:.4f}{' DIVERGED' if diverged else ''}",
                      flush=True)

    def same(a: str, b: str) -> bool:
        return all(x["val_accuracy"] == y["val_accuracy"] for x, y in zip(runs[a], runs[b]))

    record = {
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": head_commit(),
        "machine": this_machine(),
        "command": "python -m bench.collapse_seeds " + " ".join(sys.argv[1:]),
        "dataset": study.data.dataset,
        "configuration": TRIAL_0062,
        "epochs": args.epochs,
        "collapsed": {path: f"{sum(r['diverged'] for r in rs)} of {len(rs)}" for path, rs in runs.items()},
        "collapsed_seeds": {path: [r["seed"] for r in rs if r["diverged"]] for path, rs in runs.items()},
        "same_as_train": {"tuner_fit": same("tuner_fit", "train_fit"),
                          "tuner_compiled": same("tuner_compiled", "train_compiled")},
        "runs": runs,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("collapsed", "same_as_train")}, indent=2))


if __name__ == "__main__":
    main()
