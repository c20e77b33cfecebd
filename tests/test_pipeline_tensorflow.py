"""test_pipeline.py's end-to-end tests on the TensorFlow study (the experiment and queue tests, which
exercise DVC rather than the backend, run on the JAX study only).

A module of its own so that pytest-xdist (`--dist loadfile`) builds the two studies on two workers at
once; the tests themselves are test_pipeline.py's.
"""

from pathlib import Path

import pytest

from study_helpers import shared_study
# In test_pipeline.py's order (pytest runs them in the order they are imported).
from test_pipeline import test_repro_produces_every_output  # noqa: F401, I001
from test_pipeline import test_repro_runs_the_transfer_study  # noqa: F401
from test_pipeline import test_every_metrics_and_plots_file_is_strict_and_in_its_folder  # noqa: F401
from test_pipeline import test_second_repro_does_nothing  # noqa: F401
from test_pipeline import test_forced_rerun_gives_byte_identical_results  # noqa: F401
from test_pipeline import test_other_backend_passes_the_gate  # noqa: F401


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return shared_study("tensorflow", tmp_path_factory)
