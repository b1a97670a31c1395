"""Functions that run a model for a side purpose (a saliency map, a gradient check, the
choice of the best epoch) leave its mode and its batch-norm running statistics right."""

import numpy as np
import pytest

from cnn.casestudy.networks import train
from cnn.gradcheck import check_layer, check_model, numerical_gradient, relative_error
from cnn.layers import Conv2D, Dense, Flatten, ReLU
from cnn.model import Sequential
from cnn.norm import BatchNorm
from cnn.regularization import Dropout
from cnn.saliency import saliency


def bn_model(dtype=np.float64, dropout=0.0):
    rng = np.random.default_rng(0)
    layers = [Conv2D(1, 2, 3, padding=1, rng=rng, dtype=dtype),
              BatchNorm(2, dtype=dtype), ReLU(), Flatten(),
              Dense(2 * 6 * 6, 3, rng=rng, dtype=dtype)]
    if dropout:
        layers.insert(-1, Dropout(dropout, rng=rng))
    return Sequential(layers)


def warmed_up(model, x):
    """Training-mode passes: running statistics away from their initial values."""
    for _ in range(3):
        model.forward(x)
    return model


def copies(arrays):
    return {key: value.copy() for key, value in arrays.items()}


def assert_same(before, after):
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)


def test_saliency_of_a_batchnorm_model_is_each_samples_own_gradient():
    x = np.random.default_rng(1).standard_normal((4, 1, 6, 6))
    model = warmed_up(bn_model(), x * 2 + 1)
    buffers = copies(model.buffers())
    model.eval()
    expected = np.stack([
        numerical_gradient(lambda xn: model.forward(xn[None])[0, 2], x[n].copy())
        for n in range(len(x))])
    model.train()
    dx = saliency(model, x, 2)
    assert relative_error(dx, expected) < 1e-7
    assert model.training  # the caller's mode is back
    assert_same(buffers, model.buffers())


def test_saliency_does_not_depend_on_dropout_draws_and_keeps_evaluation_mode():
    x = np.random.default_rng(2).standard_normal((3, 1, 6, 6))
    model = bn_model(dropout=0.5)
    first, second = saliency(model, x, 1), saliency(model, x, 1)
    np.testing.assert_array_equal(first, second)
    assert model.training
    model.eval()
    saliency(model, x, 1)
    assert not model.training


def test_saliency_restores_the_mode_when_it_rejects_the_class():
    model = bn_model()
    with pytest.raises(ValueError, match="cls must be"):
        saliency(model, np.zeros((2, 1, 6, 6)), 3)
    assert model.training


def test_check_layer_leaves_the_running_statistics_alone():
    x = np.random.default_rng(3).standard_normal((5, 2, 3, 3)) * 3 + 2
    layer = BatchNorm(2, dtype=np.float64)
    layer.forward(x)
    buffers = copies(layer.buffers)
    errors = check_layer(layer, x)
    assert max(errors.values()) < 1e-6  # checked in training mode, batch statistics
    assert_same(buffers, layer.buffers)


def test_check_model_leaves_the_running_statistics_alone():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((4, 1, 6, 6)), rng.integers(0, 3, size=4)
    model = warmed_up(bn_model(), x)
    buffers = copies(model.buffers())
    errors = check_model(model, x, y)
    # The conv bias before batch norm has a zero gradient: its relative error is noise.
    assert max(error for key, error in errors.items() if key != "0.b") < 1e-6
    assert_same(buffers, model.buffers())
    assert model.training


def test_train_keeps_the_best_epochs_running_statistics_with_its_weights():
    # Random labels: the validation score wanders, so the best epoch is not the last.
    rng = np.random.default_rng(5)
    data = (rng.random((48, 1, 6, 6)), rng.integers(0, 3, size=48),
            rng.random((30, 1, 6, 6)), rng.integers(0, 3, size=30))
    epochs, settings = 6, dict(batch_size=8, lr=0.05)
    kept = bn_model(np.float32)
    best = train(kept, data, epochs=epochs, **settings)["best_epoch"]
    assert best < epochs, "the test needs a best epoch before the last one"
    # The first `best` epochs of the same run, replayed: the state `kept` must hold.
    replay = bn_model(np.float32)
    assert train(replay, data, epochs=best, **settings)["best_epoch"] == best
    assert_same(copies(replay.parameters()), kept.parameters())
    assert_same(copies(replay.buffers()), kept.buffers())
