"""One Hyperband trial on each loop: keras-tuner's path (StudyHyperModel.build, then its fit) with
`loop: fit` and with `loop: compiled`, wall and CPU seconds, compilation included.

    python -m bench.tune_trial_loops PREPARED_DIR [fit compiled]   # e.g. a full Fashion-MNIST data/prepared

The trial is 256/512, L2 1e-6, learning rate 1e-3, dropout 0.2, 3 epochs at tune.batch_size, with
the search's EarlyStopping. It prints one line per loop (no JSON: a spot check of a trial's cost).
"""

import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.clone import ROOT

TRIAL = {"units_1": 256, "units_2": 512, "l2": 1e-6, "learning_rate": 1e-3, "dropout": 0.2}


def main() -> None:
    if len(sys.argv) < 2 or not Path(sys.argv[1]).is_dir():
        sys.exit("usage: python -m bench.tune_trial_loops PREPARED_DIR [fit compiled]")
    work = Path(tempfile.mkdtemp())
    shutil.copytree(sys.argv[1], work / "data" / "prepared")
    os.chdir(work)  # load_prepared reads data/prepared
    from nnstudy.core import backend, params
    backend.activate("jax")
    import keras
    import keras_tuner as kt

    from nnstudy.core.data import load_prepared
    from nnstudy.training.tuning import StudyHyperModel

    study = params.load(ROOT / "params.yaml")
    data = load_prepared()
    for loop in sys.argv[2:] or ["fit", "compiled"]:
        hypermodel = StudyHyperModel(study.base, study.tune, data, study.seed, loop)
        hp = kt.HyperParameters()
        hypermodel.build(hp)
        hp.values.update(TRIAL)
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        network = hypermodel.build(hp)
        history = hypermodel.fit(hp, network, data.train.x, data.train.y, batch_size=study.tune.batch_size,
                                 validation_data=(data.val.x, data.val.y), epochs=3, shuffle=True, verbose=0,
                                 callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss",
                                                                          patience=study.tune.patience)])
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        print(f"{loop}: {time.perf_counter() - start:.1f} s wall, {cpu:.1f} s CPU, val accuracy "
              f"{', '.join(f'{v:.4f}' for v in history.history['val_accuracy'])}", flush=True)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
