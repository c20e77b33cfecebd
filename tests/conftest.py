"""Shared fixtures: a small real dataset (scikit-learn's 8x8 digits), prepared like the pipeline does.

The unit tests run on the default backend, JAX (NNSTUDY_TEST_BACKEND=tensorflow runs them on
TensorFlow); the end-to-end tests run the pipeline on both.
"""

import os
from dataclasses import replace
from pathlib import Path

import pytest

from nnstudy.core import backend, params

# Before any test module imports Keras: Keras reads its backend once, at the first import.
backend.activate(os.environ.get("NNSTUDY_TEST_BACKEND", "jax"))
from nnstudy.core.data import fetch, prepare


@pytest.fixture(scope="session")
def study() -> params.Params:
    return params.load(Path(__file__).resolve().parents[1] / "params.yaml")


@pytest.fixture(scope="session")
def digits(study):
    raw = fetch(replace(study.data, dataset="digits"))
    return prepare(raw, test_fraction=0.2, val_fraction=0.2, seed=1)


# --- Two workers (`run.py test`: pytest -n 2 --dist loadfile --no-loadscope-reorder): each module's
# tests on one worker, so its fixtures are built once; the JAX and the TensorFlow study are in two
# modules (test_pipeline.py, test_pipeline_tensorflow.py), built side by side. The modules are handed
# out in this order (the longest first, so that neither worker is left with a long one at the end);
# the rest follow in collection order. (Not --dist loadgroup: with pytest 9 its xdist_group marks
# are ignored, as xdist 3.8 renames a node id through an attribute pytest no longer reads.)
LONGEST_FIRST = ["test_pipeline.py", "test_pipeline_tensorflow.py", "test_share.py", "test_slurm.py",
                 "test_bench.py", "test_pipeline_killed.py", "test_seed_processes.py", "test_faults.py", "test_resume.py", "test_transfer_models.py",
                 "test_compiled.py"]


def pytest_collection_modifyitems(config, items):
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    # A stable sort: within a module the tests keep pytest's order.
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
