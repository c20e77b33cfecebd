"""Stage tune: keras-tuner Hyperband over the search space in params.yaml (`tune:`).

Writes every trial to a CSV; then the selection round (nnstudy.training.selection): the best
`tune.candidates` configurations retrained on every seed, the pick by the one-standard-error rule,
the candidates to a CSV and the pick with its fallbacks to the best-hyperparameters JSON. The
tuner's own folder is a DVC output that each run starts afresh. With `tune.workers: N > 1` this process is keras-tuner's
chief and N worker processes run the trials (nnstudy.training.distributed); the same command,
started with a worker's KERASTUNER_* environment, is a worker.
"""

import json
import time

from nnstudy.core import backend, params, paths
from nnstudy.core.errors import run_stage
from nnstudy.core.jsonio import write_json
from nnstudy.core.files import check_writable, write_csv
from nnstudy.training import distributed


def worker_record(tuner_id: str):
    return paths.TUNER_WORKDIR / f"worker_{tuner_id}.json"


def main() -> None:
    study = params.load()
    # Every output can be written (a read-only folder fails now, not after the training).
    check_writable(paths.TUNER_WORKDIR, paths.TUNE_TRIALS, paths.TUNE_BEST, paths.TUNE_CANDIDATES,
                   paths.timing_file("tune"))

    backend.activate(study.backend)
    from nnstudy.core.data import load_prepared
    from nnstudy.training.models import enable_determinism
    from nnstudy.training.selection import selection_round
    from nnstudy.training.tuning import best_summary, chance_warning, make_tuner, search, trials_table

    data = load_prepared()
    enable_determinism(study.seed)
    if distributed.is_worker():
        # Trials come from the chief; the epochs each one ran go back through a file in the shared folder.
        tuner = make_tuner(study.base, study.tune, data, study.seed, paths.TUNER_WORKDIR, fresh=False,
                           loop=study.loop)
        search(tuner, study.tune, data)
        write_json(worker_record(tuner.tuner_id), {"epochs_run": tuner.epochs_run})
        return

    workers = study.tune.workers
    if workers > 1:
        host, port = distributed.become_chief()
    tuner = make_tuner(study.base, study.tune, data, study.seed, paths.TUNER_WORKDIR, loop=study.loop)
    start = time.perf_counter()
    timing = {}
    if workers > 1:
        print(f"tune: chief at {host}:{port}, {workers} workers on this machine", flush=True)
        with distributed.local_workers(workers, host, port):
            search(tuner, study.tune, data)  # serves the oracle until every trial has ended
        ran = {}
        for record in sorted(paths.TUNER_WORKDIR.glob("worker_*.json")):
            epochs = json.loads(record.read_text())["epochs_run"]
            tuner.epochs_run.update(epochs)
            ran[record.stem.removeprefix("worker_")] = sorted(epochs)
        timing = {"workers": ran}
    else:
        search(tuner, study.tune, data)
    seconds = time.perf_counter() - start

    table = trials_table(tuner)
    write_csv(table, paths.TUNE_TRIALS)
    best = best_summary(tuner, study.tune)
    warning = chance_warning(best["value"], float(data.val.y.mean(axis=0).max()), best["objective"])
    if warning:
        print(warning, flush=True)
    start = time.perf_counter()
    candidates, order, why = selection_round(study, data, table, paths.TUNER_WORKDIR / "selection")
    selection_seconds = time.perf_counter() - start
    write_csv(candidates, paths.TUNE_CANDIDATES)
    pick = order[0]
    write_json(paths.TUNE_BEST, {**best, "trial_id": pick["trial_id"], "hyperparameters": pick["hyperparameters"],
                                 "value": float(table.loc[table["trial_id"] == pick["trial_id"], "objective"].iloc[0]),
                                 "search_best": best["trial_id"], "candidates": order, "why": why})
    write_json(paths.timing_file("tune"), {"search_seconds": round(seconds, 2), "trials": len(table),
                                           "selection_seconds": round(selection_seconds, 2), "loop": study.loop,
                                           "stage_seconds": round(time.time() - backend.process_start(), 2),
                                           **timing})
    print(f"tune: {len(table)} trials in {seconds:.0f} s; best single trial {best['trial_id']} "
          f"({best['objective']} {best['value']:.4f}); {len(candidates)} candidates on {len(study.seeds)} seeds in "
          f"{selection_seconds:.0f} s; picked trial {pick['trial_id']} {pick['hyperparameters']}: {why}")


if __name__ == "__main__":
    run_stage(main)
