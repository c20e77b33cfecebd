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
