"""The layer classes keep their documented defaults, initialise with the documented
fan-in and generator, describe themselves in ``repr`` as they were built, drop their
cache on ``release``, and name the argument in their errors.

Issue 27 (mutation testing of ``cnn.layers``)."""

import numpy as np
import pytest

from cnn.layers import (
    AvgPool2D,
    Conv2D,
    ConvTranspose2D,
    Dense,
    Flatten,
    MaxPool2D,
    ReLU,
    Residual,
)


@pytest.mark.parametrize("make, x_shape, name", [
    (lambda: ReLU(), (2, 3), "ReLU"),
    (lambda: Flatten(), (2, 3, 2), "Flatten"),
    (lambda: MaxPool2D(), (1, 1, 4, 4), "MaxPool2D"),
    (lambda: Dense(3, 2), (2, 3), "Dense"),
    (lambda: Residual([ReLU()]), (2, 3), "ReLU"),  # the first sub-layer to need it
])
def test_release_drops_the_cache_so_backward_needs_a_new_forward(make, x_shape, name):
    layer = make()
    out = layer.forward(np.ones(x_shape, dtype=np.float32))
    layer.backward(np.ones_like(out))
    layer.release()
    with pytest.raises(RuntimeError, match=f"^{name}.backward called before forward$"):
        layer.backward(np.ones_like(out))


@pytest.mark.parametrize("make", [
    lambda dtype: Dense(3, 2, dtype=dtype),
    lambda dtype: Conv2D(2, 4, 3, groups=2, dtype=dtype),
    lambda dtype: ConvTranspose2D(2, 3, 2, dtype=dtype),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_new_layer_has_zero_gradients_shaped_like_its_parameters(make, dtype):
    layer = make(dtype)
    assert layer.grads.keys() == layer.params.keys() == {"w", "b"}
    for key, value in layer.params.items():
        grad = layer.grads[key]
        assert grad.shape == value.shape and grad.dtype == value.dtype == dtype
        np.testing.assert_array_equal(grad, 0.0)
        assert not np.shares_memory(grad, value)


def test_repr_shows_how_the_layer_was_built():
    assert repr(Flatten()) == "Flatten()"
    assert repr(ReLU()) == "ReLU()"
    assert repr(Conv2D(1, 2, 3)) == (
        "Conv2D(1, 2, kernel_size=(3, 3), stride=(1, 1), padding=(0, 0))")
    assert repr(Conv2D(2, 4, 3, dilation=2)) == (
        "Conv2D(2, 4, kernel_size=(3, 3), stride=(1, 1), padding=(0, 0), "
        "dilation=(2, 2), groups=1)")
    assert repr(Conv2D(2, 4, 3, groups=2)) == (
        "Conv2D(2, 4, kernel_size=(3, 3), stride=(1, 1), padding=(0, 0), "
        "dilation=(1, 1), groups=2)")
    # A transposed convolution has neither dilation nor groups: none is shown.
    assert repr(ConvTranspose2D(1, 2, 3, stride=2)) == (
        "ConvTranspose2D(1, 2, kernel_size=(3, 3), stride=(2, 2), padding=(0, 0))")
    assert repr(MaxPool2D(3, 1)) == "MaxPool2D(kernel_size=(3, 3), stride=(1, 1))"


def test_documented_defaults():
    x = np.random.default_rng(0).standard_normal((1, 1, 4, 4)).astype(np.float32)
    # Pooling: a 2x2 window with a stride equal to the window.
    assert MaxPool2D().forward(x).shape == AvgPool2D().forward(x).shape == (1, 1, 2, 2)
    assert AvgPool2D(stride=1).forward(x).shape == (1, 1, 3, 3)
    # Transposed convolution: stride 1 and no padding, H_out = H - 1 + KH.
    layer = ConvTranspose2D(1, 1, 3)
    assert (layer.stride, layer.padding) == ((1, 1), (0, 0))
    assert layer.forward(x).shape == (1, 1, 6, 6)


def test_transposed_convolution_is_he_initialised_with_its_fan_in():
    """fan_in = C_in KH KW / (SH SW): the terms each output pixel receives."""
    for stride, fan_in in [((4, 1), 64 * 9 / 4), ((1, 4), 64 * 9 / 4), (1, 64 * 9)]:
        w = ConvTranspose2D(64, 8, 3, stride=stride, rng=np.random.default_rng(1),
                            dtype=np.float64).params["w"]
        assert w.std() == pytest.approx(np.sqrt(2 / fan_in), rel=0.05)


def test_transposed_convolution_draws_from_the_generator_it_is_given():
    def weights(seed):
        rng = None if seed is None else np.random.default_rng(seed)
        return ConvTranspose2D(2, 3, 3, rng=rng).params["w"]

    np.testing.assert_array_equal(weights(7), weights(7))
    assert not np.array_equal(weights(7), weights(8))
    np.testing.assert_array_equal(weights(None), weights(0))


@pytest.mark.parametrize("call, error, pattern", [
    (lambda: Dense(0, 2), ValueError, "^in_features must be >= 1, got 0$"),
    (lambda: Dense(2, 0), ValueError, "^out_features must be >= 1, got 0$"),
    (lambda: Dense(2.0, 2), TypeError, "^in_features must be an int"),
])
def test_dense_names_its_arguments(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_flatten_accepts_two_axes_and_names_x():
    x = np.arange(6.0).reshape(2, 3)
    out = Flatten().forward(x)
    np.testing.assert_array_equal(out, x)
    assert not np.shares_memory(out, x)
    with pytest.raises(ValueError, match="^x contains NaN"):
        Flatten().forward(np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match=r"^x must have shape \(N, \.\.\.\) with at least 2"):
        Flatten().forward(np.ones(3))


class Scale:
    """A minimal layer: ``forward``, ``backward`` and ``params``, and nothing else."""

    def __init__(self):
        self.params = {"s": np.array(2.0)}

    def forward(self, x):
        return 2.0 * x

    def backward(self, dout):
        return 2.0 * dout


def test_residual_accepts_layers_without_grads_or_buffers():
    block = Residual([Scale()])
    assert block.params.keys() == {"body.0.s"}
    assert block.grads == {} and block.buffers == {}
    x = np.ones((2, 3))
    np.testing.assert_array_equal(block.forward(x), 3.0 * x)
    np.testing.assert_array_equal(block.backward(x), 3.0 * x)


def test_residual_shape_mismatch_says_how_to_fix_it():
    block = Residual([Dense(3, 3)], [Dense(3, 4)])
    with pytest.raises(ValueError, match=(
            r"^the body's output has shape \(2, 3\) and the shortcut's \(2, 4\); they "
            r"must be equal \(give a shortcut that changes the shape as the body does, "
            r"e\.g\. a strided 1x1 Conv2D\)$")):
        block.forward(np.ones((2, 3), dtype=np.float32))
