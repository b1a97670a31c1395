"""Layer classes: they delegate to the functions, initialise reproducibly, and pass gradient checks."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnn.conv import conv2d_forward
from cnn.dense import dense_forward
from cnn.gradcheck import check_layer
from cnn.layers import AvgPool2D, Conv2D, ConvTranspose2D, Dense, Flatten, MaxPool2D, ReLU
from cnn.pool import avgpool2d_forward, maxpool2d_backward, maxpool2d_forward


def distinct_values(shape, seed):
    """Entries at least 0.1 apart and away from 0: no max-pool near-ties, no ReLU kinks."""
    rng = np.random.default_rng(seed)
    values = 0.1 * rng.permutation(np.prod(shape)) + 0.05 + 0.01 * rng.random(np.prod(shape))
    return (values * rng.choice([-1, 1], np.prod(shape))).reshape(shape)


@settings(max_examples=20)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
       st.integers(1, 3), st.integers(0, 2), st.integers(0, 2**32 - 1))
def test_conv2d_gradients(C, F, KH, KW, stride, padding, seed):
    layer = Conv2D(C, F, (KH, KW), stride=stride, padding=padding,
                   rng=np.random.default_rng(seed), dtype=np.float64)
    layer.params["b"] = np.random.default_rng(seed + 1).standard_normal(F)
    x = np.random.default_rng(seed + 2).standard_normal((2, C, 5, 6))
    errors = check_layer(layer, x, seed=seed)
    assert errors.keys() == {"x", "w", "b"}
    assert max(errors.values()) < 1e-7


@settings(max_examples=20)
@given(st.sampled_from([MaxPool2D, AvgPool2D]), st.integers(1, 3), st.integers(1, 3),
       st.one_of(st.none(), st.integers(1, 3)), st.integers(0, 2**32 - 1))
def test_pool_gradients(layer_type, KH, KW, stride, seed):
    x = distinct_values((2, 2, 6, 5), seed)
    errors = check_layer(layer_type((KH, KW), stride), x, seed=seed)
    assert errors.keys() == {"x"} and errors["x"] < 1e-7


@given(st.integers(0, 2**32 - 1))
def test_relu_flatten_dense_gradients(seed):
    x = distinct_values((3, 2, 3, 2), seed)
    for layer, inputs in ((ReLU(), x), (Flatten(), x),
                          (Dense(12, 4, rng=np.random.default_rng(seed), dtype=np.float64), x.reshape(3, 12))):
        errors = check_layer(layer, inputs, seed=seed)
        assert errors.keys() == {"x"} | layer.params.keys()
        assert max(errors.values()) < 1e-7


def test_layers_call_the_functions(rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    conv = Conv2D(3, 4, (3, 2), stride=2, padding=1, rng=rng)
    np.testing.assert_array_equal(conv.forward(x), conv2d_forward(x, conv.params["w"], conv.params["b"], 2, 1)[0])
    np.testing.assert_array_equal(MaxPool2D(3, 1).forward(x), maxpool2d_forward(x, 3, 1)[0])
    np.testing.assert_array_equal(AvgPool2D((2, 3)).forward(x), avgpool2d_forward(x, (2, 3))[0])
    dense = Dense(108, 5, rng=rng)
    flat = Flatten().forward(x)
    np.testing.assert_array_equal(flat, x.reshape(2, 108))
    np.testing.assert_array_equal(dense.forward(flat), dense_forward(flat, dense.params["w"], dense.params["b"])[0])


@pytest.mark.parametrize("make, x_shape", [
    (lambda rng: Conv2D(3, 4, 3, padding=1, rng=rng), (2, 3, 5, 5)),
    (lambda rng: Dense(7, 3, rng=rng), (4, 7)),
])
def test_params_and_grads_have_the_same_keys_shapes_and_dtype(make, x_shape, rng):
    layer = make(rng)
    assert layer.params.keys() == layer.grads.keys() == {"w", "b"}
    out = layer.forward(rng.standard_normal(x_shape).astype(np.float32))
    layer.backward(np.ones_like(out))
    for key in layer.params:
        assert layer.grads[key].shape == layer.params[key].shape
        assert layer.grads[key].dtype == layer.params[key].dtype == np.float32


def test_parameterless_layers_have_empty_dicts():
    for layer in (MaxPool2D(), AvgPool2D(), ReLU(), Flatten()):
        assert layer.params == {} and layer.grads == {}


def test_he_initialisation_statistics():
    conv = Conv2D(32, 64, 3, rng=np.random.default_rng(1), dtype=np.float64)
    dense = Dense(400, 300, rng=np.random.default_rng(2), dtype=np.float64)
    for w, fan_in in ((conv.params["w"], 32 * 9), (dense.params["w"], 400)):
        assert abs(w.mean()) < 0.05 * np.sqrt(2 / fan_in)
        np.testing.assert_allclose(w.std(), np.sqrt(2 / fan_in), rtol=0.03)
    assert not conv.params["b"].any() and not dense.params["b"].any()


def test_initialisation_is_seeded():
    a, b = Conv2D(2, 3, 3, rng=np.random.default_rng(5)), Conv2D(2, 3, 3, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a.params["w"], b.params["w"])
    c = Conv2D(2, 3, 3, rng=np.random.default_rng(6))
    assert not np.array_equal(a.params["w"], c.params["w"])
    # rng=None is documented as default_rng(0).
    np.testing.assert_array_equal(Dense(4, 2).params["w"], Dense(4, 2, rng=np.random.default_rng(0)).params["w"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_keyword(dtype, rng):
    conv = Conv2D(1, 2, 3, rng=rng, dtype=dtype)
    assert conv.params["w"].dtype == dtype and conv.params["b"].dtype == dtype
    assert conv.forward(np.zeros((1, 1, 4, 4), dtype=dtype)).dtype == dtype


def test_flatten_returns_new_arrays(rng):
    x = rng.standard_normal((2, 3, 4, 4))
    flatten = Flatten()
    out = flatten.forward(x)
    assert out.shape == (2, 48) and not np.shares_memory(out, x)
    dout = rng.standard_normal((2, 48))
    dx = flatten.backward(dout)
    assert dx.shape == x.shape and not np.shares_memory(dx, dout)
    np.testing.assert_array_equal(dx.reshape(2, 48), dout)


def test_backward_before_forward_raises():
    for layer in (Conv2D(1, 1, 1), MaxPool2D(), AvgPool2D(), ReLU(), Flatten(), Dense(1, 1)):
        with pytest.raises(RuntimeError, match="backward called before forward"):
            layer.backward(np.zeros((1, 1)))


def test_repr_names_the_configuration():
    assert repr(Conv2D(1, 8, (3, 2), stride=2, padding=1)) == "Conv2D(1, 8, kernel_size=(3, 2), stride=(2, 2), padding=(1, 1))"
    assert repr(MaxPool2D(2)) == "MaxPool2D(kernel_size=(2, 2), stride=(2, 2))"
    assert repr(Dense(10, 3)) == "Dense(10, 3)"


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


# Issue 27 (mutation testing): constructor messages name the argument, the transposed
# convolution's He fan-in, its repr, and Flatten on a batch of vectors.
@pytest.mark.parametrize("make, error, pattern", [
    (lambda: ConvTranspose2D(0, 1, 3), ValueError, r"^in_channels must be >= 1, got 0$"),
    (lambda: ConvTranspose2D(1, 0, 3), ValueError, r"^out_channels must be >= 1, got 0$"),
    (lambda: ConvTranspose2D(1, 1, 0), ValueError, r"^kernel_size must be >= 1, got 0$"),
    (lambda: ConvTranspose2D(1, 1, 3, stride=0), ValueError, r"^stride must be >= 1, got 0$"),
    (lambda: ConvTranspose2D(1, 1, 3, padding=-1), ValueError,
     r"^padding must be >= 0, got -1$"),
    (lambda: Conv2D(1, 1, 3, stride=0), ValueError, r"^stride must be >= 1, got 0$"),
    (lambda: Conv2D(1, 1, 0), ValueError, r"^kernel_size must be >= 1, got 0$"),
    (lambda: Dense(0, 1), ValueError, r"^in_features must be >= 1, got 0$"),
    (lambda: MaxPool2D(0), ValueError, r"^kernel_size must be >= 1, got 0$"),
])
def test_layer_constructor_messages_name_the_argument(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_conv_transpose_layer_initialisation_repr_and_dtype():
    from cnn.init import he_normal
    layer = ConvTranspose2D(3, 2, (3, 2), stride=(2, 1), padding=1,
                            rng=np.random.default_rng(5), dtype=np.float64)
    expected = he_normal((3, 2, 3, 2), 3 * 3 * 2 / (2 * 1), np.random.default_rng(5),
                         np.float64)
    np.testing.assert_array_equal(layer.params["w"], expected)
    assert layer.params["b"].dtype == np.float64 and layer.grads["w"].dtype == np.float64
    assert repr(layer) == ("ConvTranspose2D(3, 2, kernel_size=(3, 2), stride=(2, 1), "
                           "padding=(1, 1))")
    assert ConvTranspose2D(1, 1, 2).params["w"].dtype == np.float32
    assert MaxPool2D(1).kernel_size == (1, 1)  # a 1 x 1 window is allowed
    with pytest.raises(RuntimeError, match=r"^ReLU.backward called before forward$"):
        ReLU().backward(np.ones(3))


def test_flatten_takes_a_batch_of_vectors_and_names_x():
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(Flatten().forward(x), x)
    with pytest.raises(TypeError, match=r"^x must have a floating-point dtype"):
        Flatten().forward(np.ones((2, 3), np.int64))
