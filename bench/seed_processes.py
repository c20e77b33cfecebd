"""How many cores one training process keeps busy, by batch size: the measurement behind
NNSTUDY_SEED_PROCESSES (nnstudy.training.processes), written to bench/seed_processes.json.

For each data set and batch size, one process trains the base network (compiled loop, one seed)
for a few epochs alone; then 2 (and 3) identical processes train side by side. If one process kept
every core busy, two would each take about twice as long (`gain` 1.0); if it kept one core busy, two
take about as long as one (`gain` near the number of processes). `gain` = processes x alone / the
slowest side by side, from each run's median epoch (the first epoch, which compiles, left out).

`--stage` also times the real stage, `python -m stages.train batch_online` (three seeds, the default
sample, 100 epochs), with NNSTUDY_SEED_PROCESSES=1, 2 and 3, in a fresh clone of HEAD.

    python -m bench.seed_processes                      # both data sets, batch 1, 4, 16, 64, 256
    python -m bench.seed_processes --datasets mnist-sample --stage
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench.clone import head_commit

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "seed_processes.json"


def worker(dataset: str, batch_size: int, epochs: int) -> None:
    """Train the base network at `batch_size`; print its epoch times as JSON (run as a process of its own)."""
    from nnstudy.core import backend, params

    backend.activate("jax")
    from nnstudy.core.data import fetch, prepare
    from nnstudy.training.compiled import fit_compiled
    from nnstudy.training.models import build_model, enable_determinism, encode_targets
    from bench.vmap_seeds import EpochClock

    study = params.load(ROOT / "params.yaml")
    cfg = replace(study.data, dataset=dataset)
    data = prepare(fetch(cfg), cfg.test_fraction, cfg.val_fraction, study.seed)
    model = replace(study.base, batch_size=batch_size, epochs=epochs)
    enable_determinism(1)
    network = build_model(model, data.train.x.shape[1], data.num_classes, 1)
    clock = EpochClock()
    start = time.perf_counter()
    fit_compiled(network, data.train.x, encode_targets(model, data.train.y),
                 (data.val.x, encode_targets(model, data.val.y)), batch_size, epochs, seed=1,
                 callbacks=[clock.callback])
    print(json.dumps({"epochs": clock.epochs(start), "rows": len(data.train.x)}))


def side_by_side(dataset: str, batch_size: int, epochs: int, processes: int) -> list[dict]:
    command = [sys.executable, "-m", "bench.seed_processes", "--worker", dataset, str(batch_size), str(epochs)]
    running = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    results = []
    for process in running:
        out, _ = process.communicate()
        if process.returncode != 0:
            sys.exit(f"bench: {' '.join(command)} failed with exit code {process.returncode}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def measure(dataset: str, batch_size: int, epochs: int, counts: list[int]) -> dict:
    alone = side_by_side(dataset, batch_size, epochs, 1)[0]
    alone_epoch = statistics.median(alone["epochs"][1:])
    updates = -(-alone["rows"] // batch_size)
    row = {"batch_size": batch_size, "train_rows": alone["rows"], "updates_per_epoch": updates,
           "alone_epoch_seconds": round(alone_epoch, 4), "alone_us_per_update": round(alone_epoch / updates * 1e6, 1)}
    for processes in counts:
        together = side_by_side(dataset, batch_size, epochs, processes)
        together_epoch = max(statistics.median(run["epochs"][1:]) for run in together)
        row[f"{processes}_side_by_side"] = {"epoch_seconds": round(together_epoch, 4),
                                            "gain": round(processes * alone_epoch / together_epoch, 2)}
    return row


def stage_times(repeats: int) -> dict:
    """`python -m stages.train batch_online` in 1, 2 and 3 processes, the order alternating, in a fresh clone."""
    from bench.clone import fresh_clone

    settings = ["1", "2", "3"]
    seconds: dict[str, list[float]] = {setting: [] for setting in settings}
    with tempfile.TemporaryDirectory(prefix="nnstudy-bench-") as folder:
        repo, commit = fresh_clone(folder)
        # dvc from this interpreter's environment (run.py's .venv), as the stages' python.
        env = dict(os.environ, DVC_NO_ANALYTICS="1", NNSTUDY_RESUME="0",
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        subprocess.run(["dvc", "repro", "settings", "prepare"], cwd=repo, env=env, check=True, capture_output=True)
        for repeat in range(repeats):
            for setting in (settings if repeat % 2 == 0 else settings[::-1]):
                begun = time.perf_counter()
                subprocess.run([sys.executable, "-m", "stages.train", "batch_online"], cwd=repo, check=True,
                               env=dict(env, NNSTUDY_SEED_PROCESSES=setting), capture_output=True)
                seconds[setting].append(round(time.perf_counter() - begun, 1))
                print(f"  train@batch_online, NNSTUDY_SEED_PROCESSES={setting}: {seconds[setting][-1]} s", flush=True)
    return {"commit": commit, "command": "python -m stages.train batch_online (3 seeds, 100 epochs, default sample)",
            "seconds": seconds, "speedup": {setting: round(statistics.median(seconds["1"]) / statistics.median(times), 2)
                                            for setting, times in seconds.items()}}


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["mnist-sample", "fashion-mnist"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16, 64, 256])
    parser.add_argument("--epochs", type=int, default=3, help="per run; the first is left out (compilation)")
    parser.add_argument("--processes", type=int, nargs="+", default=[2, 3], help="side by side, each count in turn")
    parser.add_argument("--stage", action="store_true", help="also time train@batch_online both ways")
    parser.add_argument("--repeats", type=int, default=1, help="of the --stage timing")
    parser.add_argument("--output", type=Path, default=RESULT)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch compiles and is left out")

    result = {
        "started_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "cpus": os.cpu_count(),
        "machine": platform.machine(), "processes": args.processes, "epochs": args.epochs,
        "load_average_at_start": os.getloadavg()[0], "results": {},
        "commit": head_commit(),
    }
    for dataset in args.datasets:
        for batch_size in args.batch_sizes:
            row = measure(dataset, batch_size, args.epochs, args.processes)
            result["results"][f"{dataset}/batch_{batch_size}"] = row
            args.output.write_text(json.dumps(result, indent=2) + "\n")  # a later failure keeps what was measured
            print(f"{dataset} batch {batch_size}: alone {row['alone_epoch_seconds']:.3f} s/epoch "
                  f"({row['alone_us_per_update']} us/update); side by side: " + ", ".join(
                      f"{n}: {row[f'{n}_side_by_side']['epoch_seconds']:.3f} s (gain {row[f'{n}_side_by_side']['gain']})"
                      for n in args.processes), flush=True)
    if args.stage:
        result["stage"] = stage_times(args.repeats)
    result["load_average_at_end"] = os.getloadavg()[0]
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
