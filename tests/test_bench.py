"""`python3 run.py bench --full` and `--peer`, end to end on the tiny digits study (a fresh clone of HEAD)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from study_helpers import ROOT, small_params

BENCH_VARIANTS = ["batch_mini"]


def bench(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run([sys.executable, "-m", "bench.study", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny_params(tmp_path_factory) -> Path:
    # The pipeline tests' tiny study, two seeds (an interval needs two) and fewer epochs: a smoke run.
    raw = small_params("jax")
    raw.update(seeds=[1, 2], epochs=4)
    # One variant, the base network: the benchmark's machinery, not the study, is under test here.
    raw["variants"] = {name: raw["variants"][name] for name in BENCH_VARIANTS}
    raw["stats"]["questions"] = {"The tuned network vs the base network": ["batch_mini", "final"]}
    raw["sweeps"].update(epochs=2, width=[], activation=[], optimizer=[], learning_rate=[])  # one sweep point
    raw["final"].update(max_epochs=4)
    raw["probing"]["openset"]["epochs"] = 4
    path = tmp_path_factory.mktemp("bench") / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_full_benchmark_runs_the_mlp_study_and_reports_tuned_vs_base(tiny_params, tmp_path):
    out = tmp_path / "full.json"
    done = bench("--full", "--params", str(tiny_params), "--out", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["dataset"] == "digits"  # the smoke run's override won over the full-size data set
    stages = result["stages_seconds"]
    for stage in ("fetch", "prepare", "tune", "final", "evaluate_final", "summarize", "evaluate_sweeps",
                  "openset", "nondigit", "dreams", "sweep_depth@depth-1", *(f"train@{v}" for v in BENCH_VARIANTS)):
        assert stage in stages, stage
    assert not [stage for stage in stages if stage.startswith("transfer_") or stage == "report"]
    assert sum(result["parts_seconds"].values()) == pytest.approx(sum(stages.values()), abs=0.5)
    assert sum(stages.values()) <= result["total_seconds"]
    assert result["target_seconds"] == 1200 and result["meets_target"] == (result["total_seconds"] <= 1200)

    versus = result["tuned_vs_base"]
    assert (versus["base"]["name"], versus["tuned"]["name"]) == ("batch_mini", "final")
    for network in (versus["base"], versus["tuned"]):
        assert len(network["per_seed"]) == 2
        assert network["mean_test_accuracy"] == pytest.approx(sum(network["per_seed"]) / 2)
        assert network["ci_low"] <= network["mean_test_accuracy"] <= network["ci_high"]
    assert versus["tuned_minus_base_points"] == pytest.approx(
        100 * (versus["tuned"]["mean_test_accuracy"] - versus["base"]["mean_test_accuracy"]), abs=1e-3)
    assert all(0.0 <= versus[p] <= 1.0 for p in ("mcnemar_p", "mcnemar_p_holm", "welch_p", "welch_p_holm"))
    assert versus["mcnemar_p"] <= versus["mcnemar_p_holm"]


def test_peer_benchmark_times_each_variant_stage_and_dvc(tiny_params, tmp_path):
    # Without the peer (9 minutes): the variants' side, which is what --peer adds to the benchmark.
    out = tmp_path / "peer.json"
    done = bench("--peer", "--no-peer", "--params", str(tiny_params), "--out", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result["variants"]) == set(BENCH_VARIANTS)
    for run in result["variants"].values():
        assert 0 < run["startup_seconds"] < run["stage_seconds"] < run["wall_seconds"]
        assert 0 < run["fit_seconds"] < run["stage_seconds"]
        assert run["dvc_seconds"] == pytest.approx(run["wall_seconds"] - run["stage_seconds"], abs=0.02)
    assert result["variants_total"]["stage_seconds"] == pytest.approx(
        sum(run["stage_seconds"] for run in result["variants"].values()), abs=0.1)
    assert result["peer_variants"] == "--no-peer" and "speedup_vs_peer" not in result


def test_bench_refuses_bad_flags_and_params_files(tmp_path):
    done = bench("--peer", "--with-transfer")
    assert done.returncode == 2 and "--with-transfer goes with --full" in done.stderr
    done = bench("--transfer-only")
    assert done.returncode == 2 and "--transfer-only goes with --full" in done.stderr
    done = bench("--full", "--with-transfer", "--transfer-only")
    assert done.returncode == 2 and "choose one" in done.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    done = bench("--full", "--params", str(bad))
    assert done.returncode == 1 and "must hold a mapping" in done.stderr
    # A typo and a missing data set stop before any training, each with one line.
    typo = tmp_path / "typo.yaml"
    typo.write_text("epochz: 3\n")
    done = bench("--full", "--params", str(typo))
    assert done.returncode == 1 and "epochz" in done.stderr.strip().splitlines()[-1]
    elsewhere = tmp_path / "elsewhere.yaml"
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    elsewhere.write_text(yaml.safe_dump({"data": raw["data"] | {"dataset": "fashion-mnist",
                                                                  "fashion_mnist_dir": str(tmp_path / "none")}}))
    done = bench("--full", "--params", str(elsewhere))
    assert done.returncode == 1
    assert "Fashion-MNIST not found" in done.stderr and "dataset-fashion-mnist" in done.stderr


def test_scaleout_at_full_size_reads_every_stage_the_full_size_benchmark_timed():
    """`python -m bench.scaleout --full` simulates the study's DAG with bench/full.json's stage times:
    every stage but the report (which neither full-size run reproduces) has its measured time."""
    from bench.scaleout import full_size_costs
    from nnstudy import share

    deps, _ = share.stage_graph(ROOT)
    costs, source = full_size_costs()
    assert set(deps) - set(costs) == {"report"} and set(costs) <= set(deps)
    assert source["transfer_study"]["command"] == "python3 run.py bench --full --transfer-only"
    result = share.simulate(deps, costs, (1, 4))
    # No number of machines beats the longest stage (batch size 1, three seeds) and what it needs.
    assert result["critical_path_seconds"] >= costs["train@batch_online"] + costs["prepare"]
    assert result["machines"]["4"]["list_schedule_seconds"] >= result["critical_path_seconds"]


def test_gpu_runner_schedules_by_level_skips_readers_of_a_failure_and_stops_at_its_deadline(tmp_path):
    # bench.gpu's runner, on real processes: the stage with the longest path to the end starts first,
    # a failed stage's readers never start, and a stage still running at the deadline is stopped.
    from bench.gpu import run_plan

    plan = {"commit": "abc1234", "params_yaml": "seed: 7\n", "settings": {}, "stages": [
        {"name": "first", "cmd": "echo first >> order", "deps": [], "level": 9.0},
        {"name": "long", "cmd": "echo long >> order; sleep 60", "deps": ["first"], "level": 8.0},
        {"name": "fails", "cmd": "echo fails >> order; echo broken; exit 3", "deps": ["first"], "level": 5.0},
        {"name": "reader", "cmd": "echo reader >> order", "deps": ["fails"], "level": 1.0},
        {"name": "short", "cmd": "echo short >> order", "deps": ["first"], "level": 2.0},
    ]}
    out = tmp_path / "figures" / "gpu_study.json"
    result = run_plan(plan, slots=2, deadline=3.0, out=out, logs=tmp_path / "logs", root=tmp_path)
    assert (tmp_path / "params.yaml").read_text() == "seed: 7\n"
    assert (tmp_path / "order").read_text().split() == ["first", "long", "fails", "short"]
    assert set(result["stages_seconds"]) == {"first", "short"}
    assert result["failed"]["fails"]["returncode"] == 3 and result["failed"]["fails"]["last_lines"] == ["broken"]
    assert [stopped["stage"] for stopped in result["stopped_at_deadline"]] == ["long"]
    assert result["not_started"] == ["reader"] and result["complete"] is False
    assert result["wall_seconds"] < 30  # stopped at the deadline, not after the 60 s stage
    assert json.loads(out.read_text()) == result


def test_gpu_plan_holds_every_stage_with_its_command_and_the_full_size_params(tmp_path):
    out = tmp_path / "plan.json"
    done = subprocess.run([sys.executable, "-m", "bench.gpu", "plan", "--out", str(out), "--set", "seeds_together=true",
                           "--set", "data.fashion_mnist_dir=.gpu/fashion-mnist"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"))
    assert done.returncode == 0, done.stderr
    plan = json.loads(out.read_text())
    study = yaml.safe_load(plan["params_yaml"])
    assert study["data"]["dataset"] == "fashion-mnist" and study["data"]["fashion_mnist_dir"] == ".gpu/fashion-mnist"
    assert study["seeds_together"] is True and study["seeds"] == [1, 2, 3]
    stages = {stage["name"]: stage for stage in plan["stages"]}
    assert stages["train@batch_online"]["cmd"] == "python -m stages.train batch_online"
    assert stages["report"]["deps"] and all(dep in stages for s in stages.values() for dep in s["deps"])
    order = [stage["name"] for stage in plan["stages"]]
    assert all(order.index(dep) < order.index(name) for name, s in stages.items() for dep in s["deps"])
    # The priority: after the data and the settings that every stage needs, batch_online's path to
    # the end is the study's longest (1,177 s of bench/full.json's stage times).
    trunk = {"fetch", "prepare", "settings"}
    assert max((s for s in stages.values() if s["name"] not in trunk), key=lambda s: s["level"])["name"] == "train@batch_online"
