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
