"""Tests of the regression gate (nnstudy.check) and the revision comparison (nnstudy.compare)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nnstudy.check import compare_metrics, format_table, outcomes, summary
from nnstudy.compare import FINAL, format_comparison

ROOT = Path(__file__).resolve().parents[1]  # the project, for PYTHONPATH and params.yaml
BASELINE = {
    "batch_mini": {"accuracy": 0.90, "diverged": False},
    "sgd_mean10": {"accuracy": 0.10, "diverged": True},
}


def worse(name: str, points: float, table: dict = BASELINE) -> dict:
    changed = {k: dict(v) for k, v in table.items()}
    changed[name]["accuracy"] -= points / 100
    return changed


def verdicts(rows) -> dict[str, str]:
    return {row.variant: row.verdict for row in rows}


# --- compare_metrics and format_table, on plain dicts ---

def test_identical_metrics_pass():
    rows = compare_metrics(BASELINE, BASELINE, tolerance=0.5)
    assert verdicts(rows) == {"batch_mini": "ok", "sgd_mean10": "ok"}
    assert not any(row.failed for row in rows)
    assert "check: PASS" in summary(rows, "HEAD", 0.5)


def test_one_point_worse_fails_with_regression_in_table():
    rows = compare_metrics(BASELINE, worse("batch_mini", 1.0), tolerance=0.5)
    assert verdicts(rows)["batch_mini"] == "REGRESSION"
    assert [row.variant for row in rows if row.failed] == ["batch_mini"]
    line = next(line for line in format_table(rows).splitlines() if "batch_mini" in line)
    assert "REGRESSION" in line and "90.00" in line and "89.00" in line and "-1.00" in line
    assert summary(rows, "HEAD", 0.5).startswith("check: FAIL")


def test_drop_within_tolerance_passes():
    assert not any(row.failed for row in compare_metrics(BASELINE, worse("batch_mini", 0.3), tolerance=0.5))
    # exactly the tolerance still passes, whatever float rounding makes of 0.9 - 0.005
    assert not any(row.failed for row in compare_metrics(BASELINE, worse("batch_mini", 0.5), tolerance=0.5))


def test_diverged_flag_flip_fails_either_way():
    flipped = {k: dict(v, diverged=not v["diverged"]) for k, v in BASELINE.items()}
    assert verdicts(compare_metrics(BASELINE, flipped, tolerance=0.5)) == {
        "batch_mini": "NOW DIVERGES", "sgd_mean10": "NO LONGER DIVERGES",
    }
    assert "no → YES" in format_table(compare_metrics(BASELINE, flipped, tolerance=0.5))


def test_missing_variant_fails_and_new_variant_passes():
    current = {"batch_mini": BASELINE["batch_mini"], "batch_full": {"accuracy": 0.5, "diverged": False}}
    rows = compare_metrics(BASELINE, current, tolerance=0.5)
    assert verdicts(rows) == {"batch_mini": "ok", "sgd_mean10": "MISSING", "batch_full": "new"}
    assert [row.variant for row in rows if row.failed] == ["sgd_mean10"]


def test_improvement_passes():
    rows = compare_metrics(BASELINE, worse("batch_mini", -5.0), tolerance=0.5)
    assert verdicts(rows)["batch_mini"] == "improved"
    assert not any(row.failed for row in rows)
    assert "+5.00" in format_table(rows)


def test_final_model_is_gated_only_when_both_sides_have_it():
    with_final = {**BASELINE, FINAL: {"accuracy": 0.95, "diverged": False}}
    assert FINAL not in verdicts(compare_metrics(BASELINE, with_final, tolerance=0.5))
    assert verdicts(compare_metrics(with_final, worse(FINAL, 1.0, with_final), tolerance=0.5))[FINAL] == "REGRESSION"


def test_nan_accuracy_fails_and_outcomes_read_dvclive_layout():
    files = {
        "results/evaluate/metrics.json": {"batch_mini": {"accuracy": "nan", "loss": "nan"}},
        "results/train/batch_mini/metrics.json": {"train": {"loss": "nan"}, "diverged": True},
        "results/timing/train_batch_mini.json": {"seconds": 3.0},
    }
    current = outcomes(files)
    assert current == {"batch_mini": {"accuracy": None, "diverged": True}}
    row = compare_metrics({"batch_mini": {"accuracy": 0.9, "diverged": True}}, current, 0.5)[0]
    assert row.failed and row.verdict == "NO ACCURACY"


def test_compare_table_has_one_column_per_revision():
    by_rev = {
        "workspace": {"batch_mini": {"accuracy": 0.91, "f1_macro": 0.9}, FINAL: {"accuracy": 0.97, "f1_macro": 0.96}},
        "HEAD": {"batch_mini": {"accuracy": 0.9, "f1_macro": "nan"}},
    }
    lines = format_comparison(by_rev, ["accuracy", "f1_macro"]).splitlines()
    header, rule, *body = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines]
    assert header == ["variant", "metric", "workspace", "HEAD"]
    assert all(set(cell) <= {"-", ":"} for cell in rule)  # a Markdown table
    assert body == [
        ["batch_mini", "accuracy", "0.9100", "0.9000"],
        ["batch_mini", "f1_macro", "0.9000", "nan"],
        [FINAL, "accuracy", "0.9700", "–"],
        [FINAL, "f1_macro", "0.9600", "–"],
    ]
    assert len(format_comparison(by_rev, ["accuracy"], variants=[FINAL]).splitlines()) == 3


# --- the real command line, in a throwaway DVC repository ---

DVC_YAML = """\
stages:
  evaluate:
    cmd: "true"
    metrics:
      - results/evaluate/metrics.json:
          cache: false
  train:
    foreach: [batch_mini, sgd_mean10]
    do:
      cmd: "true"
      metrics:
        - results/train/${item}/metrics.json:
            cache: false
"""


def write_metrics(repo: Path, table: dict) -> None:
    evaluate = {name: {"accuracy": v["accuracy"], "loss": "nan"} for name, v in table.items()}
    (repo / "results/evaluate").mkdir(parents=True, exist_ok=True)
    (repo / "results/evaluate/metrics.json").write_text(json.dumps(evaluate))
    for name, v in table.items():
        (repo / f"results/train/{name}").mkdir(parents=True, exist_ok=True)
        (repo / f"results/train/{name}/metrics.json").write_text(json.dumps({"step": 1, "diverged": v["diverged"]}))


@pytest.fixture
def study_repo(tmp_path: Path):
    """A git + DVC repository whose committed metrics are BASELINE, and a way to run the CLI in it."""
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        DVC_NO_ANALYTICS="1",
    )

    def run(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"]
    assert run("git", "init", "-q").returncode == 0
    assert run(sys.executable, "-m", "dvc", "init", "-q").returncode == 0
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    write_metrics(tmp_path, BASELINE)
    assert run(*git, "add", "-A").returncode == 0
    assert run(*git, "commit", "-q", "-m", "baseline").returncode == 0
    return tmp_path, run


def test_cli_passes_unchanged_and_fails_on_regression(study_repo):
    repo, run = study_repo
    unchanged = run(sys.executable, "-m", "nnstudy.check")
    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
    assert "check: PASS" in unchanged.stdout

    write_metrics(repo, worse("sgd_mean10", 2.0))
    regressed = run(sys.executable, "-m", "nnstudy.check")
    assert regressed.returncode == 1, regressed.stdout + regressed.stderr
    assert "REGRESSION" in regressed.stdout and "sgd_mean10" in regressed.stdout
    assert "check: FAIL" in regressed.stdout


def test_cli_unknown_baseline_is_a_one_line_error(study_repo):
    _, run = study_repo
    result = run(sys.executable, "-m", "nnstudy.check", "--baseline", "no-such-rev")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: dvc cannot read the metrics: unknown Git revision 'no-such-rev'"
    ]
