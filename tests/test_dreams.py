"""Dream images on a tiny network trained on the 8x8 digits: the ascent, its clipping and smoothing,
the logits model, and a JAX process that never loads TensorFlow."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
import pytest

from nnstudy.probing.dreams import (_stepwise_ascent, dream, dream_all, dream_figure, input_ascent, input_gradient,
                                    logits_model, start_image, total_variation)
from nnstudy.training.models import build_model, enable_determinism

SHAPE = (8, 8)
PIXELS = 64
CLASSES = 10
# Settings that give digit-like blobs on this network in ~1 s for all ten classes.
SETTINGS = {"steps": 100, "learning_rate": 0.05, "l2": 0.3, "tv": 0.3}


@pytest.fixture(scope="module")
def network(study, digits):
    """One hidden layer of 32, trained 15 epochs (~97 % test accuracy)."""
    enable_determinism(study.seed)
    model = replace(study.base, hidden_units=(32,), learning_rate=0.01, batch_size=64)
    network = build_model(model, PIXELS, CLASSES, seed=study.seed)
    network.fit(digits.train.x, digits.train.y, batch_size=64, epochs=15, verbose=0)
    return network


@pytest.fixture(scope="module")
def dreams(network):
    return dream_all(network, CLASSES, PIXELS, image_shape=SHAPE, **SETTINGS)


def gray_logits(network) -> np.ndarray:
    return logits_model(network).predict(start_image("gray", PIXELS, seed=0)[None], verbose=0)[0]


def test_logits_model_is_the_network_before_its_softmax(network, digits):
    logits = logits_model(network)
    # The very same variables, not copies: the logits follow the network if it trains on.
    assert {id(v) for v in logits.weights} == {id(v) for v in network.weights}
    x = digits.test.x[:50]
    proba = keras.ops.convert_to_numpy(keras.ops.softmax(logits.predict(x, verbose=0)))
    np.testing.assert_allclose(proba, network.predict(x, verbose=0), atol=1e-6)


def test_one_step_raises_the_target_logit(network):
    before = gray_logits(network)
    for target in (0, 7):
        _, trace = dream(network, target, PIXELS, steps=1, learning_rate=0.01, l2=0.0, tv=0.0, image_shape=SHAPE)
        assert len(trace) == 1 and trace[0] > before[target]


def test_the_ascent_is_the_same_run_after_run_and_the_stepwise_math(study):
    # The study's own network shape (784-128-256-10, untrained here). Step by step from Python, four
    # runs in one process gave four different images: each gradient's last bits followed where its
    # input's buffer lay. As one XLA program the runs are identical, and the math is the steps'.
    network = build_model(study.base, 784, 10, seed=1)
    first, shape = start_image("gray", 784, seed=0), (28, 28)
    ascend = input_ascent(network, 0.05, 0.2, shape)
    runs = [ascend(first, 3, 100, 0.05) for _ in range(3)]
    assert all(np.array_equal(runs[0][0], run[0]) and runs[0][1:] == run[1:] for run in runs[1:])
    image, start_logit, trace = _stepwise_ascent(input_gradient(network, 0.05, 0.2, shape))(first, 3, 100, 0.05)
    np.testing.assert_allclose(runs[0][0], image, atol=1e-6)
    np.testing.assert_allclose(runs[0][2], trace, rtol=1e-5, atol=1e-6)
    assert len(runs[0][2]) == 100 and runs[0][1] == pytest.approx(start_logit, abs=1e-6)


def test_dreams_win_their_own_class(dreams, network):
    assert dreams["images"].shape == (CLASSES, PIXELS) and dreams["images"].dtype == np.float32
    assert dreams["images"].min() >= 0.0 and dreams["images"].max() <= 1.0
    won = dreams["predicted"] == np.arange(CLASSES)
    assert won.sum() >= 8 and dreams["summary"]["classes_won"] == won.sum()
    assert np.median(dreams["confidence"]) > 0.9
    before = gray_logits(network)
    for target, trace in enumerate(dreams["logits"]):
        start = dreams["summary"]["per_class"][str(target)]["logit_start"]
        assert start == pytest.approx(before[target], abs=1e-4)
        assert len(trace) == SETTINGS["steps"] and trace[-1] > start + 5


def test_summary_is_plain_json(dreams):
    summary = json.loads(json.dumps(dreams["summary"]))
    assert summary == dreams["summary"]  # nothing NumPy survives the round trip unchanged
    assert summary["settings"]["steps"] == SETTINGS["steps"]
    assert set(summary["per_class"]) == {str(k) for k in range(CLASSES)}


def test_pixels_are_clipped_and_noise_starts_are_seeded(network):
    # A huge step would throw most pixels far outside [0, 1]: the clip keeps them at the edges.
    first, _ = dream(network, 5, PIXELS, steps=3, learning_rate=10.0, l2=0.0, tv=0.0, image_shape=SHAPE,
                     start="noise", seed=2)
    assert first.dtype == np.float32 and first.shape == (PIXELS,)
    assert first.min() == 0.0 and first.max() == 1.0
    again, _ = dream(network, 5, PIXELS, steps=3, learning_rate=10.0, l2=0.0, tv=0.0, image_shape=SHAPE,
                     start="noise", seed=2)
    np.testing.assert_array_equal(first, again)


def test_smoothness_penalty_lowers_total_variation(dreams, network):
    rough = dream_all(network, CLASSES, PIXELS, image_shape=SHAPE, **{**SETTINGS, "l2": 0.0, "tv": 0.0})
    variation = {name: keras.ops.convert_to_numpy(total_variation(result["images"], SHAPE))
                 for name, result in (("smooth", dreams), ("rough", rough))}
    assert variation["smooth"].mean() < 0.8 * variation["rough"].mean()
    assert (variation["smooth"] < variation["rough"]).sum() >= 8


def test_bad_arguments_are_refused(network):
    with pytest.raises(ValueError, match="start"):
        start_image("white", PIXELS, seed=0)
    with pytest.raises(ValueError, match="input_dim"):
        dream(network, 0, PIXELS, steps=1, learning_rate=0.1, l2=0.0, tv=0.0, image_shape=(7, 7))


def test_figure_shows_each_dream_with_its_confidence(dreams):
    figure = dream_figure(dreams["images"], dreams["confidence"], SHAPE)
    shown = [axes for axes in figure.axes if axes.images]
    assert len(shown) == CLASSES
    assert [axes.get_xlabel().split(" = ")[0] for axes in shown] == [f"p({k})" for k in range(CLASSES)]
    plt.close(figure)


JAX_ONLY = """
import sys
from dataclasses import replace
from pathlib import Path
from nnstudy.core import backend, params
backend.activate("jax")
from nnstudy.probing.dreams import dream
from nnstudy.training.models import build_model
base = params.load(Path("params.yaml")).base
network = build_model(replace(base, hidden_units=(8,)), 16, 3, seed=1)
image, trace = dream(network, 1, 16, steps=2, learning_rate=0.1, l2=0.01, tv=0.01, image_shape=(4, 4))
assert len(trace) == 2 and trace[1] > trace[0]
print(sorted(name for name in sys.modules if name.split(".")[0] == "tensorflow"))
"""


def test_jax_path_never_imports_tensorflow():
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", JAX_ONLY], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
