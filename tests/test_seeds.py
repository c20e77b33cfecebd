"""The one seed runner (nnstudy.training.seeds) behind every training stage: `final` and `openset`
train their seeds side by side in processes (NNSTUDY_SEED_PROCESSES) with the same outputs as one
after another, and each stage's main() stays short."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from nnstudy.core import paths
from nnstudy.training.processes import ENV
from nnstudy.training.seeds import SeedRuns
from tests.study_helpers import ROOT, clone, run, shared_team

SEEDS = [1, 2, 3]  # small_params("jax")
TRAINING_STAGES = ("train", "final", "openset", "transfer_train")


def test_every_training_stage_runs_its_seeds_through_the_runner_and_its_main_is_short():
    for name in TRAINING_STAGES:
        source = (ROOT / "stages" / f"{name}.py").read_text()
        main = next(node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef) and node.name == "main")
        assert main.end_lineno - main.lineno + 1 <= 40, f"stages/{name}.py: main() has {main.end_lineno - main.lineno + 1} lines"
        assert "run_seeds(" in ast.get_source_segment(source, main), f"stages/{name}.py trains its seeds itself"
        assert "enable_determinism" not in source and "finish_seed" not in source, f"stages/{name}.py"


def test_seed_runs_in_the_order_of_the_seeds():
    runs = SeedRuns({3: {"history": "c", "diverged": False}, 1: {"history": "a", "diverged": True},
                     2: {"history": "b"}}, trained=[1])
    assert runs.values("history") == ["c", "a", "b"]
    assert runs.diverged == [1]


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A clone of the session's tiny JAX study (tests/study_helpers.py: tuned, so final's input is there),
    its seeds trained one after another or side by side instead of together, for a few epochs."""
    folder = clone(shared_team(tmp_path_factory), "seeds")
    run(folder, "dvc", "pull", "-q", "prepare", "tune")
    raw = yaml.safe_load((folder / "params.yaml").read_text())
    raw["seeds_together"] = False
    raw["final"]["max_epochs"] = 4                 # short seeds: what is compared is the way they ran
    raw["probing"]["openset"]["epochs"] = 3
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return folder


def stage(repo: Path, name: str, processes: str, cache: Path) -> str:
    done = subprocess.run([sys.executable, "-m", f"stages.{name}"], cwd=repo, capture_output=True, text=True,
                          env=dict(os.environ, **{ENV: processes}, NNSTUDY_CACHE=str(cache)), timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def final_outputs(repo: Path) -> dict[str, object]:
    """The networks' weights (a .keras zip carries the time it was saved), DVCLive runs and curves."""
    found: dict[str, object] = {}
    for seed in SEEDS:
        found[f"weights {seed}"] = keras.saving.load_model(repo / paths.model_file(paths.FINAL, seed)).get_weights()
        found |= files(repo / paths.train_live_dir(paths.FINAL, seed))
    for metric in ("accuracy", "loss"):
        found[metric] = (repo / paths.curve_file(metric, paths.FINAL)).read_bytes()
    return found


def openset_outputs(repo: Path) -> dict[str, object]:
    return {"results": (repo / paths.OPENSET_RESULTS).read_bytes(), "headline": (repo / paths.OPENSET_HEADLINE).read_bytes(),
            **files(repo / paths.OPENSET_TRAIN_DIR), **files(repo / paths.PLOTS_DIR / "openset")}


def same(a: object, b: object) -> bool:
    if isinstance(a, list):
        return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("name, outputs", [("final", final_outputs), ("openset", openset_outputs)])
def test_seeds_side_by_side_give_the_same_outputs_as_one_after_another(repo, tmp_path, name, outputs):
    out = stage(repo, name, "1", tmp_path / "cache")
    assert "side by side" not in out
    one_by_one = outputs(repo)

    out = stage(repo, name, "2", tmp_path / "cache")
    assert f"{name}: 3 seeds in 2 processes side by side ({ENV})" in out
    side_by_side = outputs(repo)
    assert side_by_side.keys() == one_by_one.keys()
    differ = [key for key in one_by_one if not same(one_by_one[key], side_by_side[key])]
    assert not differ, f"{name}: differ between 1 and 2 processes: {differ}"
    assert not [p for p in repo.rglob(".tmp-*")], "a helper left a temporary file"
