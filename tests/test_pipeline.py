"""End to end: the real `dvc repro` on scikit-learn's digits, in throwaway git repos, on both backends.

One small study (3 variants, 10 epochs, a 2-trial Hyperband; 3 seeds on JAX, 2 on TensorFlow) is
made once per backend (on JAX by two workers and pulled, study_helpers.shared_team); the tests check the outputs, caching, byte-identical re-runs, `dvc exp run -S`
re-training only what a change touches, queued experiments, and the regression gate in both
directions (noise passes, a real regression fails).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml

from nnstudy.check import gate, parse_summary
from nnstudy.core import paths
from study_helpers import TIMED, VARIANTS, restore, run, shared_study, strict_json, trained, without_timing

# The stages with TensorFlow code of their own that the forced re-run repeats on TensorFlow: training
# with dropout and L1, the tuner, early stopping, the dreams' gradient tape, and the transfer study's
# two-phase fine-tuning with BatchNorm in inference mode. (Evaluation and the rest are the same
# NumPy/scikit-learn code on both backends, re-run on JAX.)
TF_STAGES = ["train@rmsprop_l1_dropout", "tune", "final", "dreams", "transfer_train@partial-5"]
# On JAX the study was trained by two workers (study_helpers.shared_team) and pulled: re-run here, in one
# folder and one process per stage, these give the same bytes, so splitting a study changes nothing.
JAX_STAGES = ["train@rmsprop_l1_dropout", "sweep_depth@depth-1", "tune", "final", "openset", "dreams",
              "transfer_train@partial-5"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """The JAX study (a clone that pulled the team's). test_pipeline_tensorflow.py runs the tests that take
    `repo` on the TensorFlow one: a module of its own, so that the two studies are made side by side on
    two pytest-xdist workers."""
    return shared_study("jax", tmp_path_factory)


@pytest.fixture
def jax_repo(repo) -> Path:
    """The default backend's study, for the experiment tests (the DVC side is backend-independent)."""
    if "study-jax" not in repo.name:
        pytest.skip("run once, on the default backend")
    return repo


def study_seeds(repo: Path) -> list[int]:
    """The study's `seeds` (the JAX study has three, the TensorFlow one two)."""
    return yaml.safe_load((repo / "params.yaml").read_text())["seeds"]


def test_repro_produces_every_output(repo):
    settings = strict_json(repo / "results" / "settings" / "batch_mini.json")
    seeds = study_seeds(repo)
    for variant in VARIANTS:
        for seed in seeds:
            assert (repo / "models" / "variants" / variant / f"seed_{seed}.keras").stat().st_size > 0
            train = strict_json(repo / "results" / "train" / variant / f"seed_{seed}" / "metrics.json")
            assert train["epochs_run"] >= 1 and isinstance(train["diverged"], bool)
        timing = strict_json(repo / "results" / "timing" / f"train_{variant}.json")
        assert timing["backend"] == settings["backend"] and timing["loop"] == settings["loop"]
        assert set(timing["fit_seconds"]) == {f"seed_{s}" for s in seeds} and timing["startup_seconds"] > 0
    summary = strict_json(repo / "results" / "summary.json")
    assert set(summary) == {*VARIANTS, "final"}
    assert summary["sgd_mean10"]["diverged"] is True and summary["batch_mini"]["diverged"] is False
    mini = summary["batch_mini"]["accuracy"]
    assert mini["n"] == len(seeds) and mini["ci_low"] <= mini["mean"] <= mini["ci_high"] and 0.5 < mini["mean"] <= 1
    final = strict_json(repo / "results" / "final_evaluate.json")
    assert set(final["per_class_mean"]) == {str(k) for k in range(10)} and 0.5 < final["seed_1"]["auc_macro"] <= 1
    assert summary["final"]["kept_epoch"]["n"] == len(seeds)
    assert len(list((repo / "plots/final_evaluate/plots/sklearn/roc").glob("class_*.json"))) == 10
    assert len((repo / "results" / "tune" / "trials.csv").read_text().splitlines()) == 1 + 2
    comparisons = (repo / "results" / "stats" / "comparisons.csv").read_text()
    assert "batch_mini,rmsprop_l1_dropout" in comparisons and "mcnemar_p_holm" in comparisons
    report = (repo / "report" / "report.md").read_text()
    assert all(f"### {variant}" in report for variant in VARIANTS) and "## Fine-tuning (Hyperband)" in report
    assert "## Findings" in report and "- L1 + dropout: test accuracy" in report and "## Significance" in report
    for figure in ("comparison.png", "final/roc.png", "final/misclassified.png", "weights/sgd_mean10.png",
                   "curves/batch_mini.png"):
        assert (repo / "report" / "figures" / figure).stat().st_size > 1000


def test_repro_runs_the_transfer_study(repo):
    summary = strict_json(repo / "results" / "transfer" / "summary.json")
    assert summary["reference"] == "transfer_partial_5" and summary["arms"] == ["scratch", "frozen", "partial"]
    runs = summary["runs"]
    jax = "study-jax" in repo.name
    expected = {"transfer_scratch_5", "transfer_frozen_5", "transfer_partial_5"}
    if jax:  # the transfer sweeps: on JAX only
        expected |= {"transfer_sweep_unfreeze_1.0", "transfer_sweep_augment_true"}
    assert set(runs) == expected
    # On JAX, transfer.min_seeds {5: 4} extends `seeds` [1, 2, 3] for every run at 5 labels, and the
    # source network is trained for the extra seed too.
    seeds = [1, 2, 3, 4] if jax else study_seeds(repo)
    for name, entry in runs.items():
        assert entry["seeds"] == seeds and entry["accuracy"]["n"] == len(seeds) and entry["training_examples"] == 5 * 5
        assert all((repo / "models/transfer/runs" / name / f"seed_{s}.keras").stat().st_size > 0 for s in seeds)
    assert set(runs["transfer_scratch_5"]["phases"]) == {"scratch"}
    assert set(runs["transfer_frozen_5"]["phases"]) == {"head"}
    assert set(runs["transfer_partial_5"]["phases"]) == {"head", "fine_tune"}
    pretrain = strict_json(repo / "results" / "transfer" / "pretrain.json")
    assert pretrain["needed"] and pretrain["classes"] == ["0", "1", "2", "3", "4"]
    assert all((repo / "models/transfer/source" / f"seed_{s}.weights.h5").exists() for s in seeds)
    comparisons = (repo / "results" / "transfer" / "comparisons.csv").read_text()
    assert "transfer_scratch_5,transfer_frozen_5" in comparisons
    assert ("transfer_sweep_unfreeze_1.0" in comparisons) == jax
    zoo = (repo / "results" / "transfer" / "zoo.csv").read_text().splitlines()
    assert len(zoo) == 2 and zoo[1].startswith("cnn_small,cnn,")
    section = (repo / "report" / "transfer.md").read_text()
    assert section in (repo / "report" / "report.md").read_text()
    assert "## Transfer learning" in section and "When does the pretrained base help?" in section
    assert f"Every run is trained over {len(seeds)} seeds" in section
    # The frozen arm is the unfreeze axis's 0.0: the axis is there without sweep points too.
    assert "### The model zoo" in section and "#### Share of the base unfrozen" in section
    for figure in ("arms.png", "curves.png", "zoo.png", "confusion.png", "axis_unfreeze.png"):
        assert (repo / "report" / "figures" / "transfer" / figure).stat().st_size > 1000


def test_every_metrics_and_plots_file_is_strict_and_in_its_folder(repo):
    shown = json.loads(run(repo, "dvc", "metrics", "show", "--json").stdout)
    files = {path: content["data"] for result in shown.values() for path, content in result.get("data", {}).items()}
    assert set(files) == {"metrics/study.json", "metrics/sweeps.json", "metrics/openset.json", "metrics/transfer.json"}
    def leaves(value) -> int:
        return sum(map(leaves, value.values())) if isinstance(value, dict) else 1
    # 3 variants + final (2 each), 3 study-wide, each sweep axis with points (2 each: 5 on JAX, 1 on
    # TensorFlow), 3 open-set methods, 3 transfer arms
    axes = sum(1 for values in yaml.safe_load((repo / "params.yaml").read_text())["sweeps"].values()
               if isinstance(values, list) and values)
    assert axes == (5 if "study-jax" in repo.name else 1)
    assert leaves(files) == 4 * 2 + 3 + axes * 2 + 3 + 3, files
    assert files["metrics/study.json"]["batch_mini"]["acc"] > 0.5
    for path in repo.rglob("*.json"):
        if ".dvc" not in path.parts and "vendor" not in path.parts:
            strict_json(path)  # ROC thresholds included: DVCLive writes the first one as bare Infinity


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PLOT_CHARTS = 11  # dvc.yaml's top-level plots: variants x2, 5 sweep axes, transfer arms, open set, tuned ROC and confusion


def rendered(page: Path) -> str:
    """The page's DOM after its scripts ran, as a real browser renders it offline."""
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                           "--virtual-time-budget=30000", "--dump-dom", page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_plots_page_renders_every_chart_offline_in_chromium(jax_repo):
    repo = jax_repo
    run(repo, "dvc", "plots", "show")
    page = repo / "dvc_plots" / "index.html"
    html = page.read_text()
    assert html.count("vegaEmbed(") == PLOT_CHARTS
    assert page.stat().st_size <= 3 * 2**20
    dom = rendered(page)
    errors = dom.split('<pre id="js-errors"', 1)[1].split("</pre>", 1)[0]
    assert errors.startswith(" hidden") or errors.startswith(' hidden=""'), errors  # no script error
    # vega-embed draws each chart into a <canvas> or an <svg class="marks"> inside its div.
    assert dom.count('class="marks"') == PLOT_CHARTS, dom.count('class="marks"')


def test_second_repro_does_nothing(repo):
    again = run(repo, "dvc", "repro")
    assert "Running stage" not in again.stdout
    assert "up to date" in run(repo, "dvc", "status").stdout


def test_forced_rerun_gives_byte_identical_results(repo):
    """Every metric, plot data and result file except wall-clock timings is the same to the byte.

    On TensorFlow the study was reproduced in this folder; on JAX it was trained by two workers in two
    other clones and pulled, so the re-run also shows that a study split over machines is the study
    trained in one go.
    """
    def snapshot():
        return {p.relative_to(repo): p.read_bytes() for folder in ("metrics", "plots", "results")
                for p in (repo / folder).rglob("*")
                if p.suffix in {".json", ".csv", ".tsv"} and "timing" not in p.parts and p.name != "zoo.csv"}
    before = snapshot()
    # A few stages only (TensorFlow pays 6-10 s of start-up per stage): those with code of their own.
    run(repo, "dvc", "repro", "--force", "--single-item", *(JAX_STAGES if "study-jax" in repo.name else TF_STAGES))
    after = snapshot()
    assert len(before) > 40 and before.keys() == after.keys()
    assert [str(p) for p in before if before[p] != after[p]] == []
    changed = [line[3:] for line in run(repo, "git", "status", "--porcelain").stdout.splitlines()]
    assert changed and all(path.startswith(TIMED) for path in changed), changed
    # Every data and result hash in dvc.lock holds.
    committed = yaml.safe_load(run(repo, "git", "show", "HEAD:dvc.lock").stdout)
    assert without_timing(yaml.safe_load((repo / "dvc.lock").read_text())) == without_timing(committed)
    restore(repo)


def test_other_backend_passes_the_gate(repo, tmp_path_factory):
    """The same study on the other backend is noise, not a regression: the gate passes both ways."""
    if "study-tensorflow" not in repo.name:
        pytest.skip("compared once, from the TensorFlow repo, against the JAX one")
    jax = shared_study("jax", tmp_path_factory)
    # Both studies as committed (the experiment tests may have left the JAX workspace elsewhere).
    ours, theirs = (parse_summary(json.loads(run(r, "git", "show", "HEAD:results/summary.json").stdout))
                    for r in (repo, jax))
    for baseline, current in ((theirs, ours), (ours, theirs)):
        rows = gate(baseline, current, tolerance=0.5)
        assert not [row for row in rows if row.failed], rows


def test_exp_run_retrains_only_the_variants_a_base_key_reaches_and_the_gate_fails_it(jax_repo):
    """`dvc exp run -S optimizer=sgd`: only what the key reaches runs again; DVC's own views show the change;
    and the gate fails it, a real regression (plain SGD at Adam's learning rate, 10 epochs: the base network
    is undertrained). That noise passes is shown by test_other_backend_passes_the_gate: other numbers,
    same study."""
    repo = jax_repo
    restore(repo)
    done = run(repo, "dvc", "exp", "run", "-n", "what-if-sgd", "-S", "optimizer=sgd", "summarize")
    # batch_mini inherits `optimizer`; sgd_mean10 and rmsprop_l1_dropout set their own.
    assert trained(done.stdout) == {"batch_mini"}, done.stdout
    assert "Running stage 'tune'" not in done.stdout  # the search space did not change
    diff = json.loads(run(repo, "dvc", "metrics", "diff", "--json").stdout)
    # The headline leads: the retrained variant's accuracy, and nothing timed.
    assert "batch_mini.acc" in diff["metrics/study.json"], diff
    change = diff["metrics/study.json"]["batch_mini.acc"]
    assert change["new"] < change["old"] - 0.1, change
    assert not any("seconds" in key for changes in diff.values() for key in changes), diff
    params_diff = json.loads(run(repo, "dvc", "params", "diff", "--json").stdout)
    assert params_diff["params.yaml"]["optimizer"] == {"old": "adam", "new": "sgd"}
    assert "what-if-sgd" in run(repo, "dvc", "exp", "list", "--name-only").stdout.split()
    run(repo, "dvc", "plots", "diff", "HEAD", "-o", "plots_out")
    page = (repo / "plots_out" / "index.html").read_text()
    assert "batch_mini" in page and "confusion" in page

    regression = run(repo, "python", "-m", "nnstudy.check", check=False)
    assert regression.returncode == 1, regression.stdout + regression.stderr
    assert "check: FAIL" in regression.stdout and "batch_mini" in regression.stdout.splitlines()[-1]
    restore(repo)


def test_adding_a_sweep_value_trains_only_that_point(jax_repo):
    """One value more on an MLP sweep axis and on a transfer sweep axis (one experiment): the new points
    train, nothing else does."""
    repo = jax_repo
    restore(repo)
    done = run(repo, "dvc", "exp", "run", "-S", "sweeps.depth=[1,3]", "-S", "transfer.sweeps.dropout=[0.5]",
               "evaluate_sweeps", "transfer_summarize")
    ran = [line.split("'")[1] for line in done.stdout.splitlines() if line.startswith("Running stage '")]
    training = [stage for stage in ran if stage.startswith(("train@", "sweep_", "tune", "final", "openset"))
                or (stage.startswith("transfer_") and stage not in ("transfer_settings", "transfer_summarize"))]
    assert sorted(training) == ["sweep_depth@depth-3", "transfer_sweep_dropout@dropout-0.5"], done.stdout
    sweeps = strict_json(repo / "results" / "sweeps.json")
    assert set(sweeps["depth"]) == {"1", "3"} and sweeps["depth"]["3"]["parameters"] > sweeps["depth"]["1"]["parameters"]
    runs = strict_json(repo / "results" / "transfer" / "summary.json")["runs"]
    assert runs["transfer_sweep_dropout_0.5"]["recipe"]["dropout"] == 0.5
    restore(repo)


# A variant trained online (batch size 1, ~0.1-0.3 s an epoch on the digits), queued with `-S` (a new
# key: `+`): only its stage and what it needs run. One seed after another (the JAX study trains its
# seeds together, and then the checkpoint holds every seed at once), and a seed long enough for a
# kill to land inside it: the kill comes early in seed 2, so the epochs cost only the resumed and
# the uninterrupted runs.
ONLINE_EPOCHS = 12
ONLINE = ["-S", "seeds_together=false", "-S", "+variants.batch_online.batch_size=1",
          "-S", f"+variants.batch_online.epochs={ONLINE_EPOCHS}",
          "train@batch_online"]


def wait_for_queue(repo: Path, names: list[str], seconds: int = 480) -> str:
    """`dvc queue status` once every named experiment has left Queued/Running."""
    deadline = time.monotonic() + seconds
    while True:
        status = run(repo, "dvc", "queue", "status").stdout
        rows = [line.split() for line in status.splitlines()]
        if all(not any(row[1:2] == [name] and row[-1] in {"Queued", "Running"} for row in rows) for name in names):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(2)


def exp_file(repo: Path, name: str, path: str) -> str:
    refs = run(repo, "git", "for-each-ref", "--format=%(refname)", "refs/exps").stdout.split()
    ref = next(r for r in refs if r.endswith(f"/{name}"))
    return run(repo, "git", "show", f"{ref}:{path}").stdout


def lock_hashes(lock: dict, stage: str) -> list[dict]:
    """A stage's deps and outs in dvc.lock, less those that carry their write time (timings, saved models
    and weight archives: their weights are compared instead)."""
    stamped = ("results/timing/", "models/", "results/weights")
    entry = lock["stages"][stage]
    return [e for e in entry.get("deps", []) + entry.get("outs", []) if not e["path"].startswith(stamped)]


def test_queued_experiments_run_in_parallel_and_a_killed_worker_resumes(jax_repo):
    """Two queued experiments run side by side; and a queue worker killed (kill -9, its whole process group)
    while a queued experiment trains seed 2 loses nothing: queued again, the experiment keeps seed 1 and
    resumes seed 2, and its results are an uninterrupted run's."""
    repo = jax_repo
    # The worker's checkpoints: in the usual cache, whatever environment the queue's worker has (a
    # worker DVC had already started for this repo keeps its own, so NNSTUDY_CACHE set here may not
    # reach it). This experiment's settings make a key folder of its own, new in this test.
    resume_root = paths.cache_dir() / "resume"
    resume_root.mkdir(parents=True, exist_ok=True)
    before = set(resume_root.iterdir())

    run(repo, "dvc", "exp", "run", "--queue", "-n", "online-killed", *ONLINE)
    # Not waited for: on a loaded machine `dvc queue start` returned only after the worker had finished.
    # The seeds one after another in the worker (not side by side, the default at batch size 1): the kill
    # must land in seed 2 with seed 1 finished.
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1",
               NNSTUDY_SEED_PROCESSES="1")
    starter = subprocess.Popen(["dvc", "queue", "start", "-j", "1"], cwd=repo, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # `dvc queue start` daemonizes the worker into a process group of its own: the worker, the experiment's
    # executor (`dvc exp exec-run`) and the stage's python are all in it.
    group, deadline = None, time.monotonic() + 300
    def ours(key_folder: Path) -> bool:
        # The other tests' stages (the other xdist worker's) checkpoint in this cache too: the folder's
        # about file names the stage and the workspace, here a temporary copy inside this repository.
        try:
            about = json.loads((key_folder / "about.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return False
        return about["stage"] == "train@batch_online" and Path(about["workspace"]).resolve().is_relative_to(repo.resolve())

    def seed_2_checkpoints() -> list[Path]:
        return [p for p in resume_root.glob("*/seed_2/epoch_*.ckpt")
                if p.parent.parent not in before and ours(p.parent.parent)]

    while group is None or not seed_2_checkpoints():
        assert time.monotonic() < deadline, run(repo, "dvc", "queue", "logs", "online-killed", check=False).stdout
        if group is None:
            workers = [p for p in psutil.process_iter(["cmdline", "cwd"])
                       if "queue-worker" in " ".join(p.info["cmdline"] or []) and p.info["cwd"] == str(repo)]
            assert len(workers) <= 1, workers
            group = os.getpgid(workers[0].pid) if workers else None
        time.sleep(0.01)
    os.killpg(group, signal.SIGKILL)
    starter.wait(timeout=120)
    checkpoint = max(seed_2_checkpoints(), key=lambda p: int(p.stem.split("_")[1]))
    key_folder = checkpoint.parent.parent
    assert (checkpoint.parent.parent / "seed_1" / "record.json").exists()
    assert not (checkpoint.parent / "record.json").exists(), "the kill came after seed 2 had finished"
    # DVC still lists the dead worker's experiment as running (treeverse/dvc#8702) until `dvc queue kill`
    # marks it failed; a new worker does not take it up again (its task was consumed), so it is queued again.
    assert "Running" in run(repo, "dvc", "queue", "status").stdout
    run(repo, "dvc", "queue", "kill", "online-killed")
    run(repo, "dvc", "queue", "remove", "--failed")

    # Two more, side by side with it: one variant each (its stage and what it needs), two settings.
    names = ["epochs-6", "epochs-8", "online-resumed"]
    for epochs in ("6", "8"):
        run(repo, "dvc", "exp", "run", "--queue", "-n", f"epochs-{epochs}", "-S", f"epochs={epochs}", "train@batch_mini")
    run(repo, "dvc", "exp", "run", "--queue", "-n", "online-resumed", *ONLINE)
    run(repo, "dvc", "queue", "start", "-j", "2")
    status = wait_for_queue(repo, names)
    assert "Failed" not in status, status
    assert status.count("Success") == 3, status
    losses = {}
    for name in ("epochs-6", "epochs-8"):
        # The validation loss: on 360 validation images two settings can tie on accuracy.
        losses[name] = json.loads(exp_file(repo, name, "results/train/batch_mini/seed_1/metrics.json"))["eval"]["loss"]
    assert losses["epochs-6"] != losses["epochs-8"]

    said = run(repo, "dvc", "queue", "logs", "online-resumed").stdout
    assert "train@batch_online: seed 1 kept from the interrupted run" in said, said
    assert f"batch_online seed 2: resuming at epoch {int(checkpoint.stem.split('_')[1]) + 1} of {ONLINE_EPOCHS}" in said, said
    assert not key_folder.exists() or not any(key_folder.iterdir())  # the completed stage removed its checkpoints
    resumed = yaml.safe_load(exp_file(repo, "online-resumed", "dvc.lock"))
    # The uninterrupted run: the same experiment in the workspace, the training stage forced (the run-cache
    # would otherwise restore the resumed run's outputs).
    restore(repo)
    run(repo, "dvc", "exp", "apply", "online-resumed")
    resumed_weights = {seed: dict(np.load(repo / f"results/weights/batch_online/seed_{seed}.npz")) for seed in (1, 2, 3)}
    done = run(repo, "dvc", "repro", "--force", "--single-item", "train@batch_online")
    assert "resuming" not in done.stdout + done.stderr
    uninterrupted = yaml.safe_load((repo / "dvc.lock").read_text())
    assert lock_hashes(uninterrupted, "train@batch_online") == lock_hashes(resumed, "train@batch_online")
    for seed, before in resumed_weights.items():
        after = np.load(repo / f"results/weights/batch_online/seed_{seed}.npz")
        assert before.keys() == set(after.files) and all(np.array_equal(before[k], after[k]) for k in before)
    restore(repo)
