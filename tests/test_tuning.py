"""The tuner's pieces: exact validation macro F1, and the searched values -> network mapping."""

import keras
import numpy as np
import pytest
from sklearn.metrics import f1_score

from nnstudy.training.models import build_model, enable_determinism
from nnstudy.training.tuning import ValidationMacroF1, macro_f1, tuned_model


def test_macro_f1_is_over_the_whole_set_not_batch_averaged():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    proba = np.eye(3)[[0, 0, 1, 1, 2, 2, 2, 0]]
    exact = f1_score(labels, proba.argmax(1), average="macro")
    assert macro_f1(labels, proba) == pytest.approx(exact)
    # What a batch-wise metric would report with batches of 4: a different (wrong) number.
    batchwise = np.mean([f1_score(labels[i:i + 4], proba[i:i + 4].argmax(1), average="macro", labels=range(3),
                                  zero_division=0) for i in (0, 4)])
    assert batchwise != pytest.approx(exact)


def test_callback_logs_val_f1_of_the_model_each_epoch(study, digits):
    enable_determinism(1)
    network = build_model(study.base, digits.train.x.shape[1], digits.num_classes, seed=1)
    callback = ValidationMacroF1(digits.val)
    history = network.fit(digits.train.x, digits.train.y, epochs=2, batch_size=128, verbose=0,
                          validation_data=(digits.val.x, digits.val.y), callbacks=[callback])
    assert len(history.history["val_f1"]) == 2
    expected = f1_score(digits.val.labels, network.predict(digits.val.x, verbose=0).argmax(1), average="macro")
    assert history.history["val_f1"][-1] == pytest.approx(expected)


def test_tuned_model_fixes_rmsprop_he_normal_and_l2_everywhere(study):
    model = tuned_model(study.base, {"units_1": 64, "units_2": 512, "l2": 1e-6, "learning_rate": 0.01}, 256, 30)
    assert (model.optimizer, model.initializer, model.regularizer, model.regularize_output) == (
        "rmsprop", "he_normal", "l2", True)
    assert model.hidden_units == (64, 512) and model.reg_alpha == 1e-6 and model.learning_rate == 0.01
    network = build_model(model, 64, 10, seed=1)
    dense = [layer for layer in network.layers if isinstance(layer, keras.layers.Dense)]
    assert all(isinstance(layer.kernel_regularizer, keras.regularizers.L2) for layer in dense)
    assert model.batch_size == 256 and model.epochs == 30 and model.dropout == 0.0


def test_tuned_model_takes_the_optional_axes_when_searched(study):
    values = {"units_1": 64, "units_2": 256, "l2": 1e-3, "learning_rate": 0.01, "dropout": 0.2, "batch_size": 64}
    model = tuned_model(study.base, values, 256, 30)
    assert model.dropout == 0.2 and model.batch_size == 64
