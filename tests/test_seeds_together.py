"""Seeds trained together (`seeds_together`: one vmapped XLA program per epoch) do each seed's own math:
the same initialisation, shuffling, dropout and early stopping as the seed trained alone, to float rounding.
(Resuming them after a kill: tests/test_resume.py.)"""

import keras
import numpy as np
import pytest

from nnstudy.training.loop import EarlyStop, open_live, train, train_seeds
from nnstudy.training.models import enable_determinism

from test_resume import EPOCHS, SEEDS_TOGETHER, model_params

pytestmark = pytest.mark.skipif(keras.backend.backend() != "jax", reason="the compiled loop is JAX only")

# vmapped matrix products may sum in another order than one seed's; after 8 epochs of RMSprop at 0.03
# that leaves differences of a few 1e-6 in the weights (measured: at most 3e-5 over seeds 1-5).
TOLERANCE = 1e-4


def test_each_seed_matches_its_run_alone(study, digits, tmp_path):
    stop = EarlyStop("val_accuracy", patience=2)  # the `final` stage's case: each seed stops on its own
    alone = []
    for seed in SEEDS_TOGETHER:
        enable_determinism(seed)
        alone.append(train(model_params(study), digits, seed, open_live(tmp_path / f"alone_{seed}"), 1e6,
                           "compiled", label=f"seed {seed}", stop=stop))
    together = train_seeds(model_params(study), digits, SEEDS_TOGETHER,
                           [open_live(tmp_path / f"together_{seed}") for seed in SEEDS_TOGETHER], 1e6,
                           [f"seed {seed}" for seed in SEEDS_TOGETHER], stop=stop)

    # One seed stopped early while the other went on: the stopped one's state must not have moved since.
    assert [r.epochs_run for r in alone] == [EPOCHS, 5]
    for one, both in zip(alone, together):
        assert both.epochs_run == one.epochs_run and both.kept_epoch == one.kept_epoch
        assert both.weight_updates == one.weight_updates
        assert both.history.keys() == one.history.keys()
        for name, values in one.history.items():
            np.testing.assert_allclose(both.history[name], values, rtol=TOLERANCE, atol=TOLERANCE, err_msg=name)
        for name, weights in one.weights_before.items():  # its own initialisation, exactly
            assert np.array_equal(both.weights_before[name], weights), name
        for name, weights in one.weights_after.items():
            np.testing.assert_allclose(both.weights_after[name], weights, rtol=TOLERANCE, atol=TOLERANCE,
                                       err_msg=name)
        for mine, theirs in zip(both.network.optimizer.variables, one.network.optimizer.variables):
            np.testing.assert_allclose(keras.ops.convert_to_numpy(mine), keras.ops.convert_to_numpy(theirs),
                                       rtol=TOLERANCE, atol=TOLERANCE)
    # Different seeds, different networks (the seed axis is not one network copied).
    assert not np.allclose(together[0].weights_after["hidden_1/kernel"], together[1].weights_after["hidden_1/kernel"])
