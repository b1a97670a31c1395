"""Deeper networks in Sequential: training and evaluation modes, buffers saved and loaded,
global average pooling, sigmoid and tanh layers, initialisation, and a whole-network check."""

import numpy as np
import pytest

from cnn.gradcheck import check_layer, check_model, numerical_gradient, relative_error
from cnn.init import he_normal, xavier_normal
from cnn.layers import Conv2D, Dense, Flatten, GlobalAvgPool2D, MaxPool2D, ReLU, Sigmoid, Tanh
from cnn.losses import softmax_cross_entropy
from cnn.model import Sequential
from cnn.norm import BatchNorm
from cnn.optim import Adam
from cnn.regularization import Dropout


def bn_net(seed=0, dtype=np.float32, dropout=0.5):
    rng = np.random.default_rng(seed)
    layers = [Conv2D(1, 4, 3, padding=1, rng=rng, dtype=dtype), BatchNorm(4, dtype=dtype), ReLU(),
              MaxPool2D(2), Conv2D(4, 6, 3, padding=1, rng=rng, dtype=dtype), BatchNorm(6, dtype=dtype),
              ReLU(), GlobalAvgPool2D(), Dense(6, 3, rng=rng, dtype=dtype)]
    if dropout:
        layers.insert(-1, Dropout(dropout, rng=rng))
    return Sequential(layers)


def data(seed=0, N=24, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, 1, 6, 6)).astype(dtype)
    return x, (x[:, 0, :3].mean(axis=(1, 2)) > 0).astype(int) + (x[:, 0, 3:].mean(axis=(1, 2)) > 0)


def test_train_and_eval_set_every_layer():
    model = bn_net()
    assert model.training and all(layer.training for layer in model.layers)
    assert model.eval() is model
    assert not model.training and not any(layer.training for layer in model.layers)
    model.train()
    assert all(layer.training for layer in model.layers)


@pytest.mark.trains
def test_predict_and_evaluate_run_in_evaluation_mode_and_restore_the_mode():
    model = bn_net()
    x, y = data()
    model.fit(x, y, epochs=2, batch_size=8, optimizer=Adam(1e-2))
    running = {k: v.copy() for k, v in model.buffers().items()}
    first = model.predict_proba(x)
    # Evaluation: deterministic, sample by sample independent of the batch, no running updates.
    np.testing.assert_array_equal(model.predict_proba(x), first)
    np.testing.assert_allclose(model.predict_proba(x[:1], batch_size=1), first[:1], rtol=1e-5)
    for key, value in model.buffers().items():
        np.testing.assert_array_equal(value, running[key])
    assert model.training, "the mode the model was in is restored"
    model.evaluate(x, y)
    assert model.training
    model.eval()
    model.predict(x)
    assert not model.training


@pytest.mark.trains
def test_fit_trains_in_training_mode_even_after_eval():
    model = bn_net(dropout=0.0)
    x, y = data()
    model.eval()
    before = model.buffers()["1.running_mean"].copy()
    history = model.fit(x, y, epochs=1, batch_size=8, optimizer=Adam(1e-2), validation_data=(x, y))
    assert model.training
    assert not np.array_equal(model.buffers()["1.running_mean"], before), "running statistics moved"
    assert len(history["val_loss"]) == 1


def test_summary_leaves_running_statistics_and_caches_alone():
    model = bn_net()
    x, _ = data()
    model.forward(x)
    running = {k: v.copy() for k, v in model.buffers().items()}
    caches = [layer.cache for layer in model.layers]
    table = model.summary(input_shape=(1, 6, 6))
    assert "BatchNorm(4" in table and "Dropout(p=0.5)" in table and "(6,)" in table
    for key, value in model.buffers().items():
        np.testing.assert_array_equal(value, running[key])
    assert all(layer.cache is cache for layer, cache in zip(model.layers, caches))
    assert model.training


@pytest.mark.trains
def test_save_and_load_include_the_running_statistics(tmp_path):
    model = bn_net()
    x, y = data()
    model.fit(x, y, epochs=2, batch_size=8, optimizer=Adam(1e-2))
    assert set(model.buffers()) == {"1.running_mean", "1.running_var", "5.running_mean", "5.running_var"}
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as archive:
        assert set(archive.files) == set(model.parameters()) | set(model.buffers())
    other = bn_net(seed=1)
    other.load(tmp_path / "m.npz")
    for key, value in {**model.parameters(), **model.buffers()}.items():
        np.testing.assert_array_equal({**other.parameters(), **other.buffers()}[key], value)
    np.testing.assert_array_equal(other.predict_proba(x), model.predict_proba(x))


def test_load_rejects_a_file_without_running_statistics_and_leaves_the_model_untouched(tmp_path):
    model = bn_net()
    np.savez(tmp_path / "params_only.npz", **model.parameters())
    target = bn_net(seed=1)
    target.buffers()["1.running_var"][:] = 3.0
    before = {k: v.copy() for k, v in {**target.parameters(), **target.buffers()}.items()}
    with pytest.raises(ValueError, match=r"missing keys \['1.running_mean', '1.running_var'"):
        target.load(tmp_path / "params_only.npz")
    state = {**model.buffers(), **model.parameters()}
    state["5.running_var"] = np.ones(4, dtype=np.float32)
    np.savez(tmp_path / "wrong_shape.npz", **state)
    with pytest.raises(ValueError, match="'5.running_var' has shape"):
        target.load(tmp_path / "wrong_shape.npz")
    for key, value in {**target.parameters(), **target.buffers()}.items():
        np.testing.assert_array_equal(value, before[key])


def test_whole_deeper_network_gradient_check_in_training_mode():
    """Conv, batch norm, ReLU, max pooling, a second conv (whose dx is used), GAP, dense."""
    model = bn_net(seed=3, dtype=np.float64, dropout=0.0)
    rng = np.random.default_rng(3)
    for layer in model.layers:
        for key, value in layer.params.items():
            value[:] = value + 0.3 * rng.standard_normal(value.shape)
    x, y = data(3, N=4, dtype=np.float64)
    errors = check_model(model, x, y)
    # A bias right before batch norm is subtracted again with the mean: its gradient is exactly
    # zero, and the relative error of two zeros up to rounding means nothing.
    assert max(abs(model.gradients()[key]).max() for key in ("0.b", "4.b")) < 1e-12
    assert max(error for key, error in errors.items() if key not in ("0.b", "4.b")) < 1e-7
    _, dlogits = softmax_cross_entropy(model.forward(x), y)
    dx = model.backward(dlogits)
    numeric = numerical_gradient(lambda z: softmax_cross_entropy(model.forward(z), y)[0], x.copy())
    assert relative_error(dx, numeric) < 1e-7


def test_global_average_pooling_layer():
    layer = GlobalAvgPool2D()
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    np.testing.assert_allclose(layer.forward(x), x.mean(axis=(2, 3)))
    assert check_layer(layer, x)["x"] < 1e-7
    assert layer.forward(np.zeros((1, 3, 9, 2))).shape == (1, 3), "any map size"
    with pytest.raises(ValueError, match=r"dout must have shape \(N=1, C=3\)"):
        layer.backward(np.zeros((1, 4)))


@pytest.mark.parametrize("layer, f", [(Sigmoid(), lambda v: 1 / (1 + np.exp(-v))), (Tanh(), np.tanh)])
def test_sigmoid_and_tanh_layers(layer, f):
    x = 4 * np.random.default_rng(1).standard_normal((3, 4))
    np.testing.assert_allclose(layer.forward(x), f(x), rtol=1e-12)
    assert check_layer(layer, x)["x"] < 1e-7
    big = np.array([-1000.0, 1000.0], dtype=np.float32)
    assert np.all(np.isfinite(layer.forward(big)))


def test_initialisers_have_the_derived_variances():
    rng = np.random.default_rng(0)
    w = he_normal((400, 300), 400, rng)
    assert w.dtype == np.float32 and abs(w.var() / (2 / 400) - 1) < 0.02
    w = xavier_normal((400, 300), 400, 300, rng, dtype=np.float64)
    assert w.dtype == np.float64 and abs(w.var() / (2 / 700) - 1) < 0.02
    with pytest.raises(ValueError, match="fan_in"):
        he_normal((2, 2), 0, rng)
    with pytest.raises(TypeError, match="rng"):
        xavier_normal((2, 2), 2, 2, rng=1)


def test_layers_keep_their_he_initialisation():
    """Dense and Conv2D draw exactly what he_normal draws from the same generator."""
    w = Dense(5, 3, rng=np.random.default_rng(4)).params["w"]
    np.testing.assert_array_equal(w, he_normal((5, 3), 5, np.random.default_rng(4)))
    assert Flatten().buffers == {} and Flatten().training


def test_dead_relu_fraction_counts_units_that_never_fire():
    from cnn.diagnostics import dead_relu_fraction

    dense = Dense(3, 4, rng=np.random.default_rng(0), dtype=np.float64)
    dense.params["w"][...] = 0.0
    dense.params["b"][...] = [1.0, -1.0, -2.0, 0.5]  # units 1 and 2 never fire
    model = Sequential([dense, ReLU(), Dense(4, 2, dtype=np.float64)])
    x = np.random.default_rng(1).standard_normal((10, 3))
    assert dead_relu_fraction(model, x, batch_size=3) == {1: 0.5}
    dense.params["w"][:, 1] = 1.0  # unit 1 now fires for some inputs
    assert dead_relu_fraction(model, x) == {1: 0.25}
    assert model.training, "the mode is restored"
    with pytest.raises(TypeError, match="x must"):
        dead_relu_fraction(model, x.astype(int))


def test_fit_checks_its_data_without_moving_running_statistics_or_drawing_dropout():
    # fit finds K from one probe forward before training; in training mode that probe
    # would update the batch-norm statistics and draw a dropout mask.
    model = bn_net(dtype=np.float64)
    x = data(dtype=np.float64)[0]
    before = {key: value.copy() for key, value in model.buffers().items()}
    state = [layer.rng.bit_generator.state for layer in model.layers if isinstance(layer, Dropout)]
    assert model._probe(x)[0] == 3
    assert model.training
    for key, value in model.buffers().items():
        np.testing.assert_array_equal(value, before[key])
    after = [layer.rng.bit_generator.state for layer in model.layers if isinstance(layer, Dropout)]
    assert after == state
