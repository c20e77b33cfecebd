"""Stage tune: keras-tuner Hyperband over the search space in params.yaml (`tune:`).

Writes every trial to a CSV and the best hyperparameters to a JSON; the tuner's own folder is a
DVC output that each run starts afresh.
"""

import time

from nnstudy.core import backend, params, paths
from nnstudy.core.errors import run_stage
from nnstudy.core.jsonio import write_json
from nnstudy.core.files import check_writable, write_csv


def main() -> None:
    study = params.load()
    # Every output can be written (a read-only folder fails now, not after the training).
    check_writable(paths.TUNER_WORKDIR, paths.TUNE_TRIALS, paths.TUNE_BEST, paths.timing_file("tune"))

    backend.activate(study.backend)
    from nnstudy.core.data import load_prepared
    from nnstudy.training.models import enable_determinism
    from nnstudy.training.tuning import best_summary, make_tuner, search, trials_table

    data = load_prepared()
    enable_determinism(study.seed)
    tuner = make_tuner(study.base, study.tune, data, study.seed, paths.TUNER_WORKDIR)
    start = time.perf_counter()
    search(tuner, study.tune, data)
    seconds = time.perf_counter() - start

    table = trials_table(tuner)
    write_csv(table, paths.TUNE_TRIALS)
    best = best_summary(tuner, study.tune)
    write_json(paths.TUNE_BEST, best)
    write_json(paths.timing_file("tune"), {"search_seconds": round(seconds, 2), "trials": len(table)})
    print(f"tune: {len(table)} trials in {seconds:.0f} s; best {best['objective']} {best['value']:.4f} "
          f"with {best['hyperparameters']}")


if __name__ == "__main__":
    run_stage(main)
