"""The tuned layers of cnn.fast.layers: the numbers of cnn.layers, arrays reused safely."""

import numpy as np
import pytest

from cnn import layers as plain
from cnn.fast import layers as fast
from cnn.fast.layers import Dense, Flatten, MaxPool2D, ReLU
from cnn.gradcheck import check_layer
from cnn.pool import maxpool2d_backward, maxpool2d_forward

PAIRS = {
    "conv": (lambda m, rng: m.Conv2D(3, 16, 3, padding=1, rng=rng), (4, 3, 8, 8)),
    "conv_wide": (lambda m, rng: m.Conv2D(16, 8, 3, padding=1, rng=rng), (4, 16, 8, 8)),
    "conv_transpose": (lambda m, rng: m.ConvTranspose2D(8, 8, 2, stride=2, rng=rng),
                       (2, 8, 4, 4)),
    "maxpool": (lambda m, rng: m.MaxPool2D(2), (2, 3, 8, 8)),
    "maxpool_overlap": (lambda m, rng: m.MaxPool2D(3, stride=2), (2, 3, 9, 9)),
    "relu": (lambda m, rng: m.ReLU(), (2, 3, 4, 5)),
    "dense": (lambda m, rng: m.Dense(20, 7, rng=rng), (5, 20)),
}
# Layers whose tuned backward pass sums in another order (other matrix products).
REORDERED = {"conv", "conv_wide", "conv_transpose"}


@pytest.mark.parametrize("name", PAIRS)
def test_a_tuned_layer_computes_what_the_plain_layer_computes(name):
    make, shape = PAIRS[name]
    ours, theirs = make(fast, np.random.default_rng(0)), make(plain, np.random.default_rng(0))
    assert isinstance(ours, type(theirs)) and repr(ours) == repr(theirs)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    out = ours.forward(x)
    np.testing.assert_array_equal(out, theirs.forward(x))
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dx, expected = ours.backward(dout), theirs.backward(dout)
    same = np.testing.assert_allclose if name in REORDERED else np.testing.assert_array_equal
    kwargs = {"rtol": 1e-5, "atol": 1e-5} if name in REORDERED else {}
    same(dx, expected, **kwargs)
    for key in theirs.grads:
        same(ours.grads[key], theirs.grads[key], **kwargs)


@pytest.mark.parametrize("name", PAIRS)
def test_tuned_layers_pass_the_gradient_check(name):
    make, shape = PAIRS[name]
    layer = make(fast, np.random.default_rng(0))
    for key, value in layer.params.items():
        layer.params[key] = value.astype(np.float64)
    # Entries far apart: no max-pooling near-ties, no ReLU kinks within the step h.
    n = int(np.prod(shape))
    x = (np.random.default_rng(2).permutation(n) - n / 2 + 0.5).reshape(shape) / n
    errors = check_layer(layer, x, seed=0)
    assert max(errors.values()) < 1e-6


def test_a_network_of_tuned_layers_trains_as_one_of_plain_layers():
    from cnn.fast.optim import Adam as FastAdam
    from cnn.model import Sequential
    from cnn.optim import Adam

    def network(m):
        rng = np.random.default_rng(0)
        return Sequential([m.Conv2D(1, 4, 3, padding=1, rng=rng), m.ReLU(), m.MaxPool2D(2),
                           m.Flatten(), m.Dense(4 * 4 * 4, 3, rng=rng)])

    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    tuned, reference = network(fast), network(plain)
    tuned.fit(x, y, epochs=2, batch_size=8, optimizer=FastAdam(1e-2))
    reference.fit(x, y, epochs=2, batch_size=8, optimizer=Adam(1e-2))
    for key, value in reference.parameters().items():
        np.testing.assert_allclose(tuned.parameters()[key], value, rtol=1e-4, atol=1e-5)


def dense_step(layer, rng, scale=1.0):
    x = rng.standard_normal((4, 6)).astype(np.float32) * np.float32(scale)
    dout = rng.standard_normal((4, 3)).astype(np.float32)
    layer.forward(x)
    layer.backward(dout)
    return x, dout


def test_dense_reuses_its_gradient_arrays_when_nobody_else_holds_them(rng):
    layer = Dense(6, 3, rng=rng)
    dense_step(layer, rng)
    w_id, b_id = id(layer.grads["w"]), id(layer.grads["b"])
    for _ in range(3):
        x, dout = dense_step(layer, rng)
        # The same arrays, overwritten with this step's gradients (eq-dense-dw, eq-dense-db).
        assert (id(layer.grads["w"]), id(layer.grads["b"])) == (w_id, b_id)
        np.testing.assert_allclose(layer.grads["w"], x.T @ dout, rtol=1e-6)
        np.testing.assert_allclose(layer.grads["b"], dout.sum(axis=0), rtol=1e-6)


@pytest.mark.parametrize("keep", [
    lambda grads: grads["w"],                   # the array itself
    lambda grads: grads["w"][1:],               # a view of it
    lambda grads: [grads["w"]],                 # inside a container
    lambda grads: dict(grads),                  # a copy of the dict, as Sequential.gradients()
])
def test_a_kept_gradient_never_changes(keep, rng):
    # The ownership rule of cnn.layers: once a caller holds on to grads["w"], backward writes
    # the next gradient into a new array and the kept one keeps its values.
    layer = Dense(6, 3, rng=rng)
    dense_step(layer, rng)
    kept = keep(layer.grads)
    w_before = layer.grads["w"]
    values = w_before.copy()
    del w_before
    x, dout = dense_step(layer, rng, scale=3.0)
    np.testing.assert_allclose(layer.grads["w"], x.T @ dout, rtol=1e-6)
    assert kept is not None
    held = kept["w"] if isinstance(kept, dict) else kept[0] if isinstance(kept, list) else kept
    np.testing.assert_array_equal(held, values[1:] if held.shape[0] == 5 else values)
    assert not np.shares_memory(held, layer.grads["w"])


def test_gradients_of_a_different_dtype_or_a_replaced_array_are_not_written_into(rng):
    layer = Dense(6, 3, rng=rng)
    dense_step(layer, rng)
    float32_w = layer.grads["w"]
    # A float64 input gives float64 gradients: the float32 array cannot take them.
    layer.forward(rng.standard_normal((4, 6)))
    layer.backward(rng.standard_normal((4, 3)))
    assert layer.grads["w"].dtype == np.float64 and layer.grads["w"] is not float32_w
    # An array a user put into grads (as a subclass may) is the layer's from then on.
    layer.grads["w"] = np.zeros((6, 3), dtype=np.float32)
    mine = layer.grads["w"]
    layer.grads["w"].flags.writeable = False
    del mine
    dense_step(layer, rng)
    assert layer.grads["w"].flags.writeable and layer.grads["w"].any()


def test_fit_reuses_the_gradient_arrays_between_steps():
    from cnn.model import Sequential
    from cnn.optim import SGD

    rng = np.random.default_rng(0)
    model = Sequential([Flatten(), Dense(12, 5, rng=rng), ReLU(), Dense(5, 3, rng=rng)])
    x = rng.standard_normal((16, 1, 3, 4)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    model.fit(x, y, epochs=1, batch_size=8, optimizer=SGD(0.1))
    ids = {k: id(v) for k, v in model.gradients().items()}
    model.fit(x, y, epochs=2, batch_size=8, optimizer=SGD(0.1))
    assert {k: id(v) for k, v in model.gradients().items()} == ids


def test_relu_reuses_its_arrays_but_never_one_a_caller_keeps(rng):
    relu = ReLU()
    x1, x2 = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    kept = relu.forward(x1)
    expected = np.maximum(x1, 0)
    second = relu.forward(x2)
    np.testing.assert_array_equal(kept, expected)  # the second call wrote elsewhere
    assert not np.shares_memory(kept, second)
    # Once nobody holds the outputs, later calls write into the same two arrays.
    del kept, second
    pointers = {relu.forward(x).ctypes.data for x in (x1, x2, x1, x2)}
    assert len(pointers) <= 2
    dout = rng.standard_normal(x1.shape).astype(np.float32)
    relu.forward(x1)
    dx_kept = relu.backward(dout)
    dx_again = relu.backward(2 * dout)
    np.testing.assert_array_equal(dx_kept, dout * (x1 > 0))
    np.testing.assert_array_equal(dx_again, 2 * dout * (x1 > 0))
    relu.release()
    assert relu.cache is None and relu._out_pool == relu._dx_pool == []


@pytest.mark.parametrize("shape, kernel, stride", [
    ((2, 3, 8, 8), 2, None),       # windows tile the input: dx is written, never zeroed
    ((2, 3, 9, 7), 2, None),       # a row and a column no window reaches
    ((2, 2, 9, 9), 3, 2),          # overlapping windows add up
    ((2, 2, 9, 9), 2, 3),          # gaps between windows
])
def test_maxpool_dx_into_a_reused_array_equals_a_fresh_one(shape, kernel, stride, rng):
    layer = MaxPool2D(kernel, stride)
    x = rng.standard_normal(shape).astype(np.float32)
    out = layer.forward(x)
    _, cache = maxpool2d_forward(x, kernel, stride)
    for scale in (1.0, -3.0, 0.5):
        dout = (scale * rng.standard_normal(out.shape)).astype(np.float32)
        # Each call writes over the previous call's array once it is dropped: stale values
        # must not leak into entries that no window reaches.
        dx = layer.backward(dout)
        np.testing.assert_allclose(dx, maxpool2d_backward(dout, cache), rtol=1e-6)
        dx[...] = np.nan  # what a stale array could hold
        del dx
    layer.forward(x)
    first = layer.backward(dout)
    second = layer.backward(2 * dout)
    assert not np.shares_memory(first, second)
    np.testing.assert_allclose(first, maxpool2d_backward(dout, cache), rtol=1e-6)
