"""Benchmark, side by side in one run: the peer notebook script, the 14 variants on each backend
and loop, the whole default study from clean, `dvc exp run -S optimizer=sgd` and a no-op `dvc repro`.

    python3 run.py bench              # writes bench/results.json (commit it); ~45 min on 2 cores
    python3 run.py bench --transfer   # only the offline transfer study from clean (~5 min), merged in
    python3 run.py bench --resume     # only what per-epoch checkpoints cost train@batch_mini (~3 min), merged in
    python3 run.py bench --peer       # only the peer and the 14 variants side by side (~11 min), merged in
    python3 run.py bench --full       # the MLP study at full size (Fashion-MNIST) from clean: bench/full.py

Everything runs in a fresh clone of HEAD in a temporary folder, on the same data split:
1. the whole default study from clean (no dvc.lock, no outputs, no run cache), stage by stage;
2. three no-op `dvc repro` runs;
3. `dvc exp run -S optimizer=sgd` from the finished study (only what inherits `optimizer`
   re-trains: 3 of the variants, the sweep points over the base optimizer, the open set);
4. the study with one seed, forced up to `dvc repro summarize`: the variants, the sweep points,
   Hyperband, the tuned network and the evaluations (not the open set and probes);
5. the 14 variants the peer trains, one seed each, on TensorFlow (`fit`), on JAX (`fit`) and on
   JAX (`compiled`): the sum of their train@ stages, start-up included;
6. the peer, `../shared/peers/seed_style_study.py`, run as it is (TensorFlow, one process): its
   own printed total.
Ratios are the peer's seconds over ours. Targets (2 cores): the 14 variants >= 6x faster than the
peer on the default backend and >= 2x on TensorFlow; the study up to summarize (one seed) <= 5 min; the whole
default study <= 20 min; `-S optimizer=sgd` <= 1/3 of re-training every variant; a no-op `dvc
repro` <= 3 s; the offline transfer study (its share of run 1, or alone with --transfer) <= 5 min.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

from bench.clone import ROOT, fresh_clone, replace_params, set_params, this_machine, timed
from nnstudy.core import paths

RESULTS = ROOT / "bench" / "results.json"
PEER = ROOT.parent / "shared" / "peers" / "seed_style_study.py"
TARGETS = {
    "variants_speedup_default": 6.0,      # peer / 14 variants on the default backend and loop
    "variants_speedup_tensorflow": 2.0,   # peer / 14 variants on TensorFlow
    "base_study_one_seed_seconds": 5 * 60,  # one seed, up to summarize (variants, sweeps, Hyperband, final)
    "study_seconds": 20 * 60,             # the whole default study: 3 seeds, sweeps, open set, probes
    "exp_sgd_share": 1 / 3,               # -S optimizer=sgd vs re-training every variant
    "noop_seconds": 3.0,
    "transfer_study_seconds": 5 * 60,     # the offline transfer study from clean (data to its report section)
    # --peer: peer / the 14 variants' stage time (process start to outputs written), default backend
    "peer_side_by_side_stage_speedup": 8.0,
}
# The 14 variants, one seed each, per (backend, loop): what the peer script does in one process.
CONFIGS = {"tensorflow_fit": ("tensorflow", "fit"), "jax_fit": ("jax", "fit"), "jax_compiled": ("jax", "compiled")}
NOT_IN_PEER = {"train@tanh_mse"}  # the classic formulation came later; the peer's 14 variants are the rest


def train_seconds(stages: dict[str, float]) -> float:
    return round(sum(t for stage, t in stages.items() if stage.startswith("train@")), 1)


def run_peer(env: dict[str, str]) -> dict:
    if not PEER.exists():
        return {"skipped": f"{PEER} not found"}
    peer_env = {k: v for k, v in env.items() if k != "KERAS_BACKEND"}  # as it is: Keras' default, TensorFlow
    done = subprocess.run([sys.executable, str(PEER)], env=peer_env, capture_output=True, text=True, check=True)
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {"total_seconds": rows[-1]["total_s"], "variants": rows[:-1]}


def transfer_from_clean(env: dict[str, str]) -> dict:
    """The offline transfer study alone, from clean: data, source network, arms, sweeps, zoo, summary."""
    with tempfile.TemporaryDirectory(prefix="nnstudy-bench-") as folder:
        repo, commit = fresh_clone(folder)
        total, stages, _ = timed(["dvc", "repro", "--no-run-cache", "transfer_summarize"], repo, env)
    transfer = {stage: t for stage, t in stages.items() if stage.startswith("transfer_")}
    return {
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
        # fetch and prepare (a few seconds) included: the study's data comes first.
        "transfer_study_seconds": round(total, 1),
        "transfer_zoo_seconds": transfer.get("transfer_zoo"),
        "transfer_stages_seconds": transfer,
        "meets_target": total <= TARGETS["transfer_study_seconds"],
    }


def resume_cost(env: dict[str, str], pairs: int = 3) -> dict:
    """train@batch_mini of the default study (100 epochs x 3 seeds: the most checkpoints per second of
    training), run as its stage module with checkpoints off and on, alternating, `pairs` times."""
    with tempfile.TemporaryDirectory(prefix="nnstudy-bench-") as folder:
        repo, commit = fresh_clone(folder)
        subprocess.run(["dvc", "repro", "settings", "prepare"], cwd=repo, env=env, check=True, capture_output=True)
        seconds: dict[str, list[float]] = {"off": [], "on": []}
        for _ in range(pairs):
            for mode, flag in (("off", "0"), ("on", "1")):
                begun = time.perf_counter()
                subprocess.run([sys.executable, "-m", "stages.train", "batch_mini"], cwd=repo, check=True,
                               env=dict(env, NNSTUDY_RESUME=flag), capture_output=True)
                seconds[mode].append(round(time.perf_counter() - begun, 2))
    added = [on - off for off, on in zip(seconds["off"], seconds["on"])]
    return {
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
        "stage": "train@batch_mini (python -m stages.train batch_mini)", "seconds": seconds,
        "added_seconds_median": round(sorted(added)[len(added) // 2], 2),
        "added_share_median": round(sorted(a / off for a, off in zip(added, seconds["off"]))[len(added) // 2], 3),
    }


def peer_side_by_side(env: dict[str, str], overrides: dict, with_peer: bool = True) -> dict:
    """The peer and the 14 variants it trains (one seed each, default backend and loop), side by side.

    Each variant runs as `dvc repro -s -f train@<variant>` (forced: no run cache). Its stage time
    is what the stage process reports in results/timing/ (process start to its outputs written;
    start-up is process start to data loaded and network built); the rest of each call's wall time
    is DVC's (importing itself, reading dvc.yaml, dvc.lock and params, hashing, writing the lock)
    and the stage process's exit."""
    with tempfile.TemporaryDirectory(prefix="nnstudy-bench-") as folder:
        repo, commit = fresh_clone(folder)
        replace_params(repo, overrides)
        set_params(repo, seeds=[1])
        study = yaml.safe_load((repo / "params.yaml").read_text())
        subprocess.run(["dvc", "repro", "settings", "prepare"], cwd=repo, env=env, check=True, capture_output=True)
        variants = [name for name in study["variants"] if f"train@{name}" not in NOT_IN_PEER]
        runs = {}
        for name in variants:
            begun = time.perf_counter()
            subprocess.run(["dvc", "repro", "-s", "-f", f"train@{name}"], cwd=repo, env=env, check=True,
                           capture_output=True)
            wall = time.perf_counter() - begun
            timing = json.loads((repo / paths.timing_file(f"train_{name}")).read_text())
            runs[name] = {"wall_seconds": round(wall, 2), "stage_seconds": timing["stage_seconds"],
                          "startup_seconds": timing["startup_seconds"], "fit_seconds": timing["fit_seconds"]["seed_1"],
                          "dvc_seconds": round(wall - timing["stage_seconds"], 2)}
    peer = run_peer(env) if with_peer else {"skipped": "--no-peer"}
    totals = {key: round(sum(run[key] for run in runs.values()), 1)
              for key in ("wall_seconds", "stage_seconds", "startup_seconds", "fit_seconds", "dvc_seconds")}
    peer_total = peer.get("total_seconds")
    backend = f"{study['backend']} ({study['loop']})"
    result = {
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
        "machine": this_machine(),
        "command": "python3 run.py bench --peer", "backend": backend, "params_overrides": overrides or None,
        "peer_total_seconds": peer_total, "peer_variants": peer.get("variants", peer.get("skipped")),
        "variants": runs, "variants_total": totals,
        "dvc_seconds_per_call_median": round(sorted(r["dvc_seconds"] for r in runs.values())[len(runs) // 2], 2),
    }
    if peer_total:
        result["speedup_vs_peer"] = {"by_stage_time": round(peer_total / totals["stage_seconds"], 2),
                                     "by_wall_time": round(peer_total / totals["wall_seconds"], 2),
                                     "fitting_only": round(peer_total / totals["fit_seconds"], 2)}
        result["target_by_stage_time"] = TARGETS["peer_side_by_side_stage_speedup"]
        result["meets_target"] = result["speedup_vs_peer"]["by_stage_time"] >= TARGETS["peer_side_by_side_stage_speedup"]
    return result


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 run.py bench", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="only what per-epoch checkpoints cost")
    mode.add_argument("--transfer", action="store_true", help="only the offline transfer study from clean")
    mode.add_argument("--peer", action="store_true", help="only the peer and the 14 variants side by side")
    mode.add_argument("--full", action="store_true", help="the MLP study at full size from clean (bench/full.json)")
    parser.add_argument("--with-transfer", action="store_true",
                        help="with --full: then the transfer study, zoo and report, timed on their own")
    parser.add_argument("--transfer-only", action="store_true",
                        help="with --full: only the transfer study, merged into bench/full.json as transfer_adds")
    parser.add_argument("--no-peer", action="store_true", help="with --peer: the variants only, not the peer")
    parser.add_argument("--params", type=Path, metavar="FILE",
                        help="with --peer or --full: a YAML mapping whose top-level keys replace params.yaml's (a smoke run)")
    parser.add_argument("--out", type=Path, metavar="FILE", help="with --peer or --full: write here instead")
    args = parser.parse_args(argv)
    if (args.with_transfer or args.transfer_only) and not args.full:
        parser.error(f"--{'with-transfer' if args.with_transfer else 'transfer-only'} goes with --full")
    if args.with_transfer and args.transfer_only:
        parser.error("--with-transfer and --transfer-only: choose one")
    if args.no_peer and not args.peer:
        parser.error("--no-peer goes with --peer")
    if (args.params or args.out) and not (args.peer or args.full):
        parser.error("--params and --out go with --peer or --full")
    return args


def read_overrides(path: Path | None) -> dict:
    """The --params file: a YAML mapping (a bad file stops here, before any clone or training)."""
    if path is None:
        return {}
    try:
        overrides = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        sys.exit(f"bench: --params {path}: cannot read it ({error.__class__.__name__}: {error})")
    if not isinstance(overrides, dict):
        sys.exit(f"bench: --params {path}: must hold a mapping of params.yaml keys, got {type(overrides).__name__}")
    return overrides


def main() -> None:
    args = parse_args(sys.argv[1:])
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    overrides = read_overrides(args.params)
    if args.full:
        from bench import full

        full.main(env, overrides, args.with_transfer, args.out, transfer_only=args.transfer_only)
        return
    if args.peer:
        # Merged into the committed results (the rest stays as measured) unless --out says otherwise.
        side_by_side = peer_side_by_side(env, overrides, with_peer=not args.no_peer)
        if args.out:
            args.out.write_text(json.dumps(side_by_side, indent=2) + "\n")
        else:
            results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
            results["peer_side_by_side"] = side_by_side
            results.setdefault("targets", {})["peer_side_by_side_stage_speedup"] = (
                TARGETS["peer_side_by_side_stage_speedup"])
            RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps({key: side_by_side.get(key) for key in
                          ("peer_total_seconds", "variants_total", "speedup_vs_peer", "meets_target")}, indent=2))
        return
    if args.resume:
        results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        results["resume"] = resume_cost(env)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results["resume"], indent=2))
        return
    if args.transfer:
        # Only the transfer study, merged into the committed results (the rest stays as measured).
        results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        results["transfer"] = transfer_from_clean(env)
        results.setdefault("targets", {})["transfer_study_seconds"] = TARGETS["transfer_study_seconds"]
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results["transfer"], indent=2))
        return
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="nnstudy-bench-") as folder:
        repo, commit = fresh_clone(folder)
        study, stages, _ = timed(["dvc", "repro", "--no-run-cache"], repo, env)
        noop = []
        for _ in range(3):
            begun = time.perf_counter()
            subprocess.run(["dvc", "repro"], cwd=repo, env=env, check=True, capture_output=True)
            noop.append(round(time.perf_counter() - begun, 2))
        # The same gate CI runs: do the fresh numbers match the committed ones?
        gate = subprocess.run([sys.executable, "-m", "nnstudy.check"], cwd=repo, env=env, capture_output=True,
                              text=True)
        print(gate.stdout + gate.stderr)

        subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
        subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm",
                        "bench: study"], cwd=repo, check=True)
        sgd, sgd_stages, _ = timed(["dvc", "exp", "run", "-S", "optimizer=sgd"], repo, env)
        retrained = sorted(s.removeprefix("train@") for s in sgd_stages if s.startswith("train@"))
        # What the same command cost when every train@ stage depended on every base key: all 14
        # variants re-trained, then the same downstream stages.
        every_variant = train_seconds(stages) + sum(t for s, t in sgd_stages.items() if not s.startswith("train@"))
        subprocess.run(["git", "checkout", "--", "."], cwd=repo, check=True)
        subprocess.run(["dvc", "checkout", "-q"], cwd=repo, env=env, check=True)

        # The study with one seed, forced up to `summarize`: the variants, Hyperband, the tuned
        # network and the evaluations, and (summarize reads every run's DVCLive folder under
        # results/train/, the sweep points' too) the sweep points; not the open set and probes.
        set_params(repo, seeds=[1])
        base_study, base_stages, _ = timed(["dvc", "repro", "--no-run-cache", "--force", "summarize"], repo, env)
        subprocess.run(["git", "checkout", "--", "params.yaml"], cwd=repo, check=True)

        variants = {}
        for name, (backend, loop) in CONFIGS.items():
            set_params(repo, backend=backend, loop=loop, seeds=[1])
            _, config_stages, _ = timed(["dvc", "repro", "--no-run-cache", "train"], repo, env)
            variants[name] = train_seconds({s: t for s, t in config_stages.items() if s not in NOT_IN_PEER})
            subprocess.run(["git", "checkout", "--", "params.yaml"], cwd=repo, check=True)
        # The last configuration run is the default one (jax_compiled): its online-learning figures.
        timing = json.loads((repo / paths.timing_file("train_batch_online")).read_text())
        updates = json.loads((repo / paths.train_live_dir("batch_online", 1) / "metrics.json").read_text())["weight_updates"]
        startup = {p.stem.removeprefix("train_"): json.loads(p.read_text()).get("startup_seconds")
                   for p in sorted((repo / paths.TIMING_DIR).glob("train_*.json"))}

    peer = run_peer(env)
    peer_total = peer.get("total_seconds")
    default = "jax_compiled"
    results = {
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "machine": this_machine(),
        "peer_total_seconds": peer_total,
        "peer_variants": peer.get("variants", peer.get("skipped")),
        "variants_total_seconds": variants,
        "variants_speedup_vs_peer": {k: round(peer_total / v, 2) for k, v in variants.items()} if peer_total else None,
        "batch_online_fit_seconds_jax_compiled_seed_1": timing["fit_seconds"]["seed_1"],
        "batch_online_updates": updates,
        # Validation on every epoch included, as in the study.
        "batch_online_ms_per_update_jax_compiled": round(timing["fit_seconds"]["seed_1"] / updates * 1000, 4),
        "startup_seconds_jax_compiled": startup,
        "study_seconds": round(study, 1),
        "stages_seconds": stages,
        "base_study_one_seed_seconds": round(base_study, 1),
        "base_study_one_seed_stages_seconds": base_stages,
        "noop_seconds": noop,
        "exp_sgd_seconds": round(sgd, 1),
        "exp_sgd_retrained": retrained,
        "exp_sgd_if_every_variant_retrained_seconds": round(every_variant, 1),
        "exp_sgd_share": round(sgd / every_variant, 3),
        "targets": TARGETS,
        "reproduces_committed_metrics": gate.returncode == 0,
        "gate": (gate.stdout + gate.stderr).strip().splitlines()[-1:],
    }
    speedups = results["variants_speedup_vs_peer"] or {}
    results["meets_targets"] = {
        "variants_speedup_default": speedups.get(default, 0) >= TARGETS["variants_speedup_default"],
        "variants_speedup_tensorflow": speedups.get("tensorflow_fit", 0) >= TARGETS["variants_speedup_tensorflow"],
        "base_study_one_seed_seconds": base_study <= TARGETS["base_study_one_seed_seconds"],
        "study_seconds": study <= TARGETS["study_seconds"],
        "exp_sgd_share": results["exp_sgd_share"] <= TARGETS["exp_sgd_share"],
        "noop_seconds": max(noop) <= TARGETS["noop_seconds"],
    }
    # The transfer study's share of the whole study, from the same run.
    transfer = {stage: t for stage, t in stages.items() if stage.startswith("transfer_")}
    results["transfer"] = {"transfer_study_seconds": round(sum(transfer.values()), 1),
                           "transfer_zoo_seconds": transfer.get("transfer_zoo"), "transfer_stages_seconds": transfer}
    results["meets_targets"]["transfer_study_seconds"] = (
        results["transfer"]["transfer_study_seconds"] <= TARGETS["transfer_study_seconds"])
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: results[k] for k in ("variants_speedup_vs_peer", "base_study_one_seed_seconds",
                                              "study_seconds", "exp_sgd_share", "noop_seconds", "meets_targets")},
                     indent=2))


if __name__ == "__main__":
    main()
