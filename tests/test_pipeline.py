"""End to end: the real `dvc repro` on scikit-learn's digits, in a throwaway git repo.

One small study (3 variants, 2 epochs, a 2-trial Hyperband) is reproduced once per session; the
tests then check caching, byte-identical re-runs, `dvc exp run -S`, queued experiments and diffs.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["nnstudy", "stages", "plots", "dvc.yaml", "params.yaml", ".dvcignore", ".gitignore",
                 "pyproject.toml", ".dvc/config"]
VARIANTS = ["batch_mini", "sgd_mean10", "rmsprop_l1_dropout"]


def small_params() -> dict:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"]["dataset"] = "digits"
    raw["epochs"] = 2
    raw["variants"] = {name: raw["variants"][name] for name in VARIANTS}
    raw["tune"].update(max_epochs=2, factor=3, patience=1)
    raw["tune"]["space"] = {"units_1": [16], "units_2": [32, 64], "l2": [1.0e-3], "learning_rate": [1.0e-2]}
    raw["final"]["epochs"] = 2
    return raw


def run(repo: Path, *command: str, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def strict_json(path: Path):
    def refuse(constant):
        raise AssertionError(f"{path} holds bare {constant}")
    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("study")
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, repo / name)
    (repo / "params.yaml").write_text(yaml.safe_dump(small_params(), sort_keys=False))
    run(repo, "git", "init", "-q")
    if not (repo / ".dvc" / "config").exists():
        run(repo, "dvc", "init", "-q")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "small study")
    run(repo, "dvc", "repro")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "results")
    return repo


def test_repro_produces_every_output(repo):
    for variant in VARIANTS:
        assert (repo / "models" / "variants" / f"{variant}.keras").stat().st_size > 0
        train = strict_json(repo / "results" / "train" / variant / "metrics.json")
        assert train["epochs_run"] >= 1 and isinstance(train["diverged"], bool)
    assert strict_json(repo / "results/train/sgd_mean10/metrics.json")["diverged"] is True
    assert strict_json(repo / "results/train/batch_mini/metrics.json")["diverged"] is False
    test = strict_json(repo / "results" / "evaluate" / "metrics.json")
    assert set(test) == set(VARIANTS) and 0.1 < test["batch_mini"]["accuracy"] <= 1
    final = strict_json(repo / "results" / "final_evaluate" / "metrics.json")
    assert set(final["per_class"]) == {str(k) for k in range(10)} and 0.5 < final["auc_macro"] <= 1
    assert len(list((repo / "results/final_evaluate/plots/sklearn/roc").glob("class_*.json"))) == 10
    assert len((repo / "results" / "tune" / "trials.csv").read_text().splitlines()) == 1 + 2
    report = (repo / "report" / "report.md").read_text()
    assert all(f"### {variant}" in report for variant in VARIANTS) and "## Fine-tuning (Hyperband)" in report
    for figure in ("comparison.png", "final/roc.png", "final/misclassified.png", "weights/sgd_mean10.png"):
        assert (repo / "report" / "figures" / figure).stat().st_size > 1000


def test_second_repro_does_nothing(repo):
    again = run(repo, "dvc", "repro")
    assert "Running stage" not in again.stdout
    assert "up to date" in run(repo, "dvc", "status").stdout


def test_forced_rerun_gives_byte_identical_results(repo):
    """Everything under results/ except wall-clock timings is the same to the byte."""
    def snapshot():
        return {p.relative_to(repo): p.read_bytes() for p in (repo / "results").rglob("*")
                if p.suffix in {".json", ".csv", ".tsv"} and "timing" not in p.parts}
    before = snapshot()
    run(repo, "dvc", "repro", "--force")
    after = snapshot()
    assert len(before) > 30 and before.keys() == after.keys()
    assert [str(p) for p in before if before[p] != after[p]] == []
    changed = [line[3:] for line in run(repo, "git", "status", "--porcelain", "results").stdout.splitlines()]
    assert changed and all(path.startswith("results/timing/") for path in changed), changed


def test_exp_run_with_set_param_changes_metrics(repo):
    run(repo, "git", "checkout", "--", ".")
    done = run(repo, "dvc", "exp", "run", "-n", "what-if-sgd", "-S", "optimizer=sgd")
    assert "Running stage 'train@batch_mini'" in done.stdout
    assert "Running stage 'tune'" not in done.stdout  # the search space did not change
    diff = json.loads(run(repo, "dvc", "metrics", "diff", "--json").stdout)
    change = diff["results/evaluate/metrics.json"]["batch_mini.accuracy"]
    assert change["new"] != change["old"]
    params_diff = json.loads(run(repo, "dvc", "params", "diff", "--json").stdout)
    assert params_diff["params.yaml"]["optimizer"] == {"old": "adam", "new": "sgd"}
    assert "what-if-sgd" in run(repo, "dvc", "exp", "list", "--name-only").stdout.split()
    run(repo, "dvc", "plots", "diff", "HEAD", "-o", "plots_out")
    page = (repo / "plots_out" / "index.html").read_text()
    assert "batch_mini" in page and "confusion" in page
    run(repo, "git", "checkout", "--", ".")
    run(repo, "dvc", "checkout", "-q")


def test_queued_experiments_run_in_parallel(repo):
    for rate in ("0.01", "0.003"):
        run(repo, "dvc", "exp", "run", "--queue", "-n", f"lr-{rate.replace('.', 'p')}", "-S", f"learning_rate={rate}")
    run(repo, "dvc", "queue", "start", "-j", "2")
    deadline = time.monotonic() + 480
    while time.monotonic() < deadline:
        status = run(repo, "dvc", "queue", "status").stdout
        if "Running" not in status and "Queued" not in status:
            break
        time.sleep(5)
    assert "Failed" not in status, status
    assert status.count("Success") == 2, status
    accuracies = {}
    for name in ("lr-0p01", "lr-0p003"):
        diff = json.loads(run(repo, "dvc", "metrics", "diff", "HEAD", name, "--json").stdout)
        accuracies[name] = diff["results/evaluate/metrics.json"]["batch_mini.accuracy"]["new"]
    assert accuracies["lr-0p01"] != accuracies["lr-0p003"]
