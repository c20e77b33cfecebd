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


# --- Two workers (`run.py test`: pytest -n 2 --dist loadgroup --no-loadscope-reorder).
# Every test runs in its module's group, so a module's fixtures are built once, on one worker;
# test_pipeline.py is split by backend, so the JAX and the TensorFlow study are built side by side.
# The groups are handed out in this order (the longest first, so that neither worker is left
# with a long study at the end); the rest follow in collection order.
LONGEST_FIRST = ["test_pipeline.py[jax]", "test_pipeline.py[tensorflow]", "test_share.py", "test_pipeline.py",
                 "test_faults.py",
                 "test_resume.py", "test_transfer_models.py", "test_compiled.py"]


def group_of(item: pytest.Item) -> str:
    group = item.path.name
    backend = getattr(getattr(item, "callspec", None), "params", {}).get("repo")
    return f"{group}[{backend}]" if backend else group


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(pytest.mark.xdist_group(group_of(item)))
    rank = {group: index for index, group in enumerate(LONGEST_FIRST)}
    # A stable sort: within a group the tests keep pytest's order (the fixture-driven one included).
    items.sort(key=lambda item: rank.get(group_of(item), len(rank)))
