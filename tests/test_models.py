"""The model builder and one training run: layers, initializers, regularizers, dropout, determinism."""

from dataclasses import replace

import keras
import numpy as np
import pytest

from nnstudy.training.models import build_model, enable_determinism
from nnstudy.training.loop import has_diverged, open_live, resolve_batch_size, train, weight_snapshot


def dense_layers(network):
    return [layer for layer in network.layers if isinstance(layer, keras.layers.Dense)]


def test_base_network_matches_the_study(study):
    network = build_model(study.base, input_dim=784, num_classes=10, seed=1)
    shapes = [(layer.units, layer.activation.__name__) for layer in dense_layers(network)]
    assert shapes == [(128, "relu"), (256, "relu"), (10, "softmax")]
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in network.layers)
    assert isinstance(network.optimizer, keras.optimizers.Adam)
    assert network.count_params() == 784 * 128 + 128 + 128 * 256 + 256 + 256 * 10 + 10


def test_mean10_initializer_sets_every_kernel(study):
    network = build_model(study.variants["sgd_mean10"], 784, 10, seed=1)
    for layer in dense_layers(network):
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        assert abs(kernel.mean() - 10.0) < 0.01 and abs(kernel.std() - 0.05) < 0.01
    assert isinstance(network.optimizer, keras.optimizers.SGD)
    assert float(network.optimizer.learning_rate) == pytest.approx(0.01)


@pytest.mark.parametrize("kind, cls", [("l1", keras.regularizers.L1), ("l2", keras.regularizers.L2)])
def test_regularizer_on_hidden_layers_only(study, kind, cls):
    model = replace(study.base, regularizer=kind, reg_alpha=0.01)
    hidden_1, hidden_2, output = dense_layers(build_model(model, 64, 10, seed=1))
    for layer in (hidden_1, hidden_2):
        assert isinstance(layer.kernel_regularizer, cls)
        assert float(getattr(layer.kernel_regularizer, kind)) == pytest.approx(0.01)
    assert output.kernel_regularizer is None
    _, _, output = dense_layers(build_model(replace(model, regularize_output=True), 64, 10, seed=1))
    assert isinstance(output.kernel_regularizer, cls)


def test_dropout_after_each_hidden_layer(study):
    network = build_model(study.variants["rmsprop_l1_dropout"], 64, 10, seed=1)
    kinds = [type(layer).__name__ for layer in network.layers]
    assert kinds == ["Dense", "Dropout", "Dense", "Dropout", "Dense"]
    assert all(layer.rate == 0.3 for layer in network.layers if isinstance(layer, keras.layers.Dropout))


def test_rmsprop_rho_and_other_settings(study):
    optimizer = build_model(study.variants["rmsprop_rho0p01"], 64, 10, seed=1).optimizer
    assert isinstance(optimizer, keras.optimizers.RMSprop) and optimizer.rho == pytest.approx(0.01)
    network = build_model(replace(study.base, optimizer="adagrad", activation="tanh", hidden_units=(32,)), 64, 10, 1)
    assert isinstance(network.optimizer, keras.optimizers.Adagrad)
    assert [layer.units for layer in dense_layers(network)] == [32, 10]
    assert dense_layers(network)[0].activation.__name__ == "tanh"


def test_same_seed_same_weights(study):
    first = weight_snapshot(build_model(study.base, 64, 10, seed=1))
    second = weight_snapshot(build_model(study.base, 64, 10, seed=1))
    other = weight_snapshot(build_model(study.base, 64, 10, seed=2))
    assert list(first) == ["hidden_1/kernel", "hidden_1/bias", "hidden_2/kernel", "hidden_2/bias",
                           "output/kernel", "output/bias"]
    assert all(np.array_equal(first[k], second[k]) for k in first)
    assert not np.array_equal(first["hidden_1/kernel"], other["hidden_1/kernel"])


def test_batch_size_full_means_whole_training_set():
    assert resolve_batch_size("full", 3200) == 3200
    assert resolve_batch_size(256, 100) == 100
    assert resolve_batch_size(1, 3200) == 1


def test_divergence_rule():
    finite = {"k": np.ones(3)}
    assert not has_diverged([2.3, 0.5, 0.1], finite, loss_limit=1000)
    assert has_diverged([2.3, float("nan")], finite, loss_limit=1000)
    assert has_diverged([4e9, 2.3], finite, loss_limit=1000)  # blew up, even if it later sat at ln(10)
    assert has_diverged([0.5], {"k": np.array([1.0, np.inf])}, loss_limit=1000)
    assert has_diverged([], finite, loss_limit=1000)
    # Calm loss, but no better than always guessing the largest class (10 % of the data): collapsed.
    assert has_diverged([14.5, 14.5], finite, loss_limit=1000, final_accuracy=0.104, chance=0.1)
    assert not has_diverged([2.0, 1.5], finite, loss_limit=1000, final_accuracy=0.3, chance=0.1)


def run_twice_equal(study, digits, folder, model):
    results = []
    for attempt in range(2):
        enable_determinism(study.seed)
        results.append(train(model, digits, study.seed, open_live(folder / str(attempt)), study.diverged_loss))
    return results


@pytest.fixture
def outside_repo(tmp_path, monkeypatch):
    """DVCLive looks for a DVC/git repo from the working directory; tests log outside this one."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_training_is_reproducible_and_counts_updates(study, digits, outside_repo):
    model = replace(study.base, epochs=3, batch_size=128)
    first, second = run_twice_equal(study, digits, outside_repo, model)
    assert first.history == second.history
    assert first.epochs_run == 3 and not first.diverged
    assert first.weight_updates == 3 * int(np.ceil(len(digits.train.x) / 128))
    assert set(first.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    # The weights moved, and the snapshot taken before training is the initial one.
    assert not np.array_equal(first.weights_before["hidden_1/kernel"], first.weights_after["hidden_1/kernel"])


def test_mean10_run_is_recorded_as_diverged(study, digits, outside_repo):
    model = replace(study.variants["sgd_mean10"], epochs=3)
    enable_determinism(study.seed)
    result = train(model, digits, study.seed, open_live(outside_repo), study.diverged_loss)
    assert result.diverged
    # TensorFlow's cross-entropy (from the logits) explodes past diverged_loss; JAX's is capped near
    # 16 by the probability clip, and the network is caught by its collapse to chance accuracy.
    exploded = max(result.history["loss"]) > study.diverged_loss or not np.isfinite(result.history["loss"]).all()
    assert exploded or result.history["accuracy"][-1] <= digits.train.y.mean(axis=0).max() + 0.01


def test_classic_formulation_trains_on_plus_minus_one_targets(study, digits, outside_repo):
    from nnstudy.training.models import encode_targets

    model = replace(study.variants["tanh_mse"], epochs=5, batch_size=32)
    assert set(np.unique(encode_targets(model, digits.train.y))) == {-1.0, 1.0}
    network = build_model(model, digits.train.x.shape[1], 10, seed=1)
    assert dense_layers(network)[-1].activation.__name__ == "tanh"
    enable_determinism(1)
    result = train(model, digits, 1, open_live(outside_repo), study.diverged_loss, loop="compiled")
    assert not result.diverged and result.history["accuracy"][-1] > 0.5  # the argmax learns
    assert result.history["loss"][-1] < result.history["loss"][0]
