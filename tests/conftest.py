"""Shared fixtures: a small real dataset (scikit-learn's 8x8 digits), prepared like the pipeline does."""

from dataclasses import replace
from pathlib import Path

import pytest

from nnstudy import params
from nnstudy.data import fetch, prepare


@pytest.fixture(scope="session")
def study() -> params.Params:
    return params.load(Path(__file__).resolve().parents[1] / "params.yaml")


@pytest.fixture(scope="session")
def digits(study):
    raw = fetch(replace(study.data, dataset="digits"))
    return prepare(raw, test_fraction=0.2, val_fraction=0.2, seed=1)
