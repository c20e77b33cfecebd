"""Seeds one by one vs together (`seeds_together`: one vmapped XLA program), on the compiled loop.

For each data set and variant, the seeds are trained both ways, the two conditions interleaved (their
order alternating) and repeated, and the medians over the repeats written to bench/vmap_seeds.json:

- `epoch_seconds`: one epoch of all the seeds (one by one: the sum of the seeds' epochs), the first
  epoch left out (it compiles);
- `first_epoch_seconds`: the first epoch of all the seeds, compilation included (a persistent
  compilation cache may have served it, as it serves the stages);
- `speedup`: one by one / together, from the epoch medians (> 1: together is faster).

JAX picks the device (a GPU where jax[cuda12] finds one, else the CPU); the JSON says which.

    python -m bench.vmap_seeds                                  # both data sets, 3 seeds, 3 repeats
    python -m bench.vmap_seeds --datasets mnist-sample --epochs 4 --repeats 5
"""

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

from bench.clone import head_commit

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "vmap_seeds.json"


class EpochClock:
    """Keras callback: the time at the end of every epoch."""

    def __init__(self):
        import keras

        class Clock(keras.callbacks.Callback):
            def on_epoch_end(inner, epoch, logs=None):  # noqa: N805 (the closure's self is `self`)
                self.ends.append(time.perf_counter())

        self.ends: list[float] = []
        self.callback = Clock()

    def epochs(self, start: float) -> list[float]:
        return [end - begin for begin, end in zip([start, *self.ends], self.ends)]


def targets(model, data):
    from nnstudy.training.models import encode_targets

    return encode_targets(model, data.train.y), encode_targets(model, data.val.y)


def one_by_one(model, data, seeds, epochs, batch_size) -> list[float]:
    """Per epoch, the seconds of all the seeds trained one after the other (epoch k summed over seeds)."""
    from nnstudy.training.compiled import fit_compiled
    from nnstudy.training.models import build_model, enable_determinism

    y_train, y_val = targets(model, data)
    per_seed = []
    for seed in seeds:
        enable_determinism(seed)
        network = build_model(model, data.train.x.shape[1], data.num_classes, seed)
        clock = EpochClock()
        start = time.perf_counter()
        fit_compiled(network, data.train.x, y_train, (data.val.x, y_val), batch_size, epochs, seed=seed,
                     callbacks=[clock.callback])
        per_seed.append(clock.epochs(start))
    return [sum(epoch) for epoch in zip(*per_seed)]


def together(model, data, seeds, epochs, batch_size) -> list[float]:
    from nnstudy.training.compiled import fit_compiled_seeds
    from nnstudy.training.models import build_model, enable_determinism

    y_train, y_val = targets(model, data)
    networks = []
    for seed in seeds:
        enable_determinism(seed)
        networks.append(build_model(model, data.train.x.shape[1], data.num_classes, seed))
    clock = EpochClock()
    start = time.perf_counter()
    # The clock on the first seed: its epoch ends once the program ran and its state was written back.
    fit_compiled_seeds(networks, data.train.x, y_train, (data.val.x, y_val), batch_size, epochs,
                       list(seeds), callbacks=[[clock.callback]] + [[] for _ in seeds[1:]])
    return clock.epochs(start)


def measure(model, data, seeds, epochs, repeats) -> dict:
    from nnstudy.training.loop import resolve_batch_size

    batch_size = resolve_batch_size(model.batch_size, len(data.train.x))
    runs = {"one_by_one": [], "together": []}
    for repeat in range(repeats):
        # Interleaved, the order alternating: a machine that slows down mid-run slows both alike.
        order = ["one_by_one", "together"] if repeat % 2 == 0 else ["together", "one_by_one"]
        for condition in order:
            epoch_times = (one_by_one if condition == "one_by_one" else together)(model, data, seeds, epochs,
                                                                                batch_size)
            runs[condition].append(epoch_times)
            print(f"    {condition:>10}: first epoch {epoch_times[0]:.3f} s, then "
                  f"{' '.join(f'{t:.3f}' for t in epoch_times[1:])} s", flush=True)
    result = {}
    for condition, times in runs.items():
        result[condition] = {
            "epoch_seconds": round(statistics.median(statistics.median(t[1:]) for t in times), 4),
            "first_epoch_seconds": round(statistics.median(t[0] for t in times), 4),
            "repeats": [[round(x, 4) for x in t] for t in times],
        }
    result["speedup"] = round(result["one_by_one"]["epoch_seconds"] / result["together"]["epoch_seconds"], 3)
    result["batch_size"] = batch_size
    result["train_rows"] = len(data.train.x)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["mnist-sample", "fashion-mnist"])
    parser.add_argument("--variants", nargs="+", default=["batch_online", "batch_mini"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=3, help="per run; the first is left out (compilation)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULT)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch compiles and is left out")

    from nnstudy.core import backend, params

    backend.activate("jax")
    import jax

    from nnstudy.core.data import fetch, prepare

    study = params.load(ROOT / "params.yaml")
    result = {
        "device": str(jax.devices()[0]), "platform": jax.default_backend(), "cpus": os.cpu_count(),
        "machine": platform.machine(), "jax": jax.__version__, "seeds": args.seeds, "epochs": args.epochs,
        "repeats": args.repeats, "load_average_at_start": os.getloadavg()[0], "results": {},
        "commit": head_commit(),
        "started_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }
    for dataset in args.datasets:
        cfg = replace(study.data, dataset=dataset)
        data = prepare(fetch(cfg), cfg.test_fraction, cfg.val_fraction, study.seed)
        for variant in args.variants:
            model = replace(params.variant(study, variant), epochs=args.epochs)
            print(f"{dataset} {variant} ({len(data.train.x)} training rows, {len(args.seeds)} seeds):", flush=True)
            result["results"][f"{dataset}/{variant}"] = row = measure(model, data, args.seeds, args.epochs,
                                                                      args.repeats)
            print(f"  epoch of all seeds: one by one {row['one_by_one']['epoch_seconds']:.3f} s, together "
                  f"{row['together']['epoch_seconds']:.3f} s ({row['speedup']:.2f}x)", flush=True)
            # After every row: a run stopped half-way keeps what it measured.
            args.output.write_text(json.dumps(result, indent=2) + "\n")
    result["load_average_at_end"] = os.getloadavg()[0]
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
