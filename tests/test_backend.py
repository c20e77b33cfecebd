"""The backend switch: JAX stages never import TensorFlow, and start in about a second."""

import subprocess
import sys
from pathlib import Path

import pytest

from nnstudy.core import backend

ROOT = Path(__file__).resolve().parents[1]

# Everything a JAX stage does: train (compiled and fit, with early stopping), log to DVCLive,
# save and load the model, build a Hyperband tuner. None of it may bring TensorFlow in.
JAX_STAGE_WORK = """
import os, sys, tempfile
from dataclasses import replace
from nnstudy.core import backend
backend.activate("jax")
from nnstudy.core import params
from nnstudy.core.data import fetch, prepare
from nnstudy.training.loop import EarlyStop, open_live, train
from nnstudy.training.models import enable_determinism
from nnstudy.training.tuning import make_tuner
import keras
from pathlib import Path
study = params.load(Path("params.yaml"))
data = prepare(fetch(replace(study.data, dataset="digits")), 0.2, 0.2, 1)
os.chdir(tempfile.mkdtemp())
for loop in ("compiled", "fit"):
    enable_determinism(1)
    result = train(replace(study.base, epochs=3), data, 1, open_live(loop), 1000.0, loop, stop=EarlyStop("val_loss", 1))
    result.network.save(loop + ".keras")
    keras.saving.load_model(loop + ".keras")
make_tuner(study.base, study.tune, data, 1, __import__("pathlib").Path("tuner"))
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tensorboard"))
print("LOADED", loaded)
"""


def test_jax_stage_work_never_imports_tensorflow():
    done = subprocess.run([sys.executable, "-c", JAX_STAGE_WORK], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout, done.stdout


def test_activate_refuses_an_unknown_backend_and_a_switch():
    with pytest.raises(ValueError, match="backend must be one of jax, tensorflow, got 'torch'"):
        backend.activate("torch")
    current = __import__("keras").backend.backend()
    other = "tensorflow" if current == "jax" else "jax"
    with pytest.raises(RuntimeError, match=f"Keras was already imported on '{current}'; cannot switch to '{other}'"):
        backend.activate(other)


def test_keras_imports_without_its_optional_heavy_modules():
    """Keras' start-up skips scikit-learn, matplotlib and pandas (they load later, when used)."""
    code = ("import sys; from nnstudy.core import backend; backend.activate('jax'); "
            "print(sorted(m for m in ('sklearn', 'matplotlib', 'pandas', 'tensorflow') if m in sys.modules)); "
            "import sklearn.metrics, pandas; print('later imports work')")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "later imports work"]
