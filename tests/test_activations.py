"""ReLU and softmax."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnn.activations import log_softmax, relu_backward, relu_forward, softmax
from cnn.gradcheck import numerical_gradient, relative_error


@given(st.integers(0, 2**32 - 1))
def test_relu_gradient_matches_finite_differences(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 2, 4, 5))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the kink at 0
    projection = rng.standard_normal(x.shape)
    _, cache = relu_forward(x)
    dx = relu_backward(projection, cache)
    numerical = numerical_gradient(lambda _: np.sum(relu_forward(x)[0] * projection), x)
    assert relative_error(dx, numerical) < 1e-7


def test_relu_values_and_subgradient_at_zero():
    x = np.array([-2.0, -0.0, 0.0, 3.0])
    out, cache = relu_forward(x)
    np.testing.assert_array_equal(out, [0.0, 0.0, 0.0, 3.0])
    np.testing.assert_array_equal(relu_backward(np.full(4, 7.0), cache), [0.0, 0.0, 0.0, 7.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_keeps_dtype_and_never_modifies_dout(dtype, rng):
    x = rng.standard_normal((4, 5)).astype(dtype)
    dout = rng.standard_normal((4, 5)).astype(dtype)
    x_copy, dout_copy = x.copy(), dout.copy()
    out, cache = relu_forward(x)
    dx = relu_backward(dout, cache)
    assert out.dtype == dtype and dx.dtype == dtype
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(dout, dout_copy)
    assert not np.shares_memory(dx, dout) and not np.shares_memory(out, x)


@given(st.integers(0, 2**32 - 1), st.floats(-50, 50))
def test_softmax_is_a_distribution_and_shift_invariant(seed, shift):
    z = np.random.default_rng(seed).standard_normal((4, 6)) * 5
    p = softmax(z)
    assert np.all(p > 0)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(softmax(z + shift), p, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(p, np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(log_softmax(z), np.log(p), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_does_not_overflow(dtype):
    z = np.array([[1e4, 0.0, -1e4], [1e4, 1e4, 1e4]], dtype=dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        p = softmax(z)
        log_p = log_softmax(z)
    assert p.dtype == dtype and log_p.dtype == dtype
    np.testing.assert_allclose(p, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)
    np.testing.assert_allclose(log_p[0], [0.0, -1e4, -2e4], rtol=1e-6)


def test_softmax_along_the_last_axis_of_any_rank(rng):
    z = rng.standard_normal((2, 3, 4))
    np.testing.assert_allclose(softmax(z).reshape(-1, 4), softmax(z.reshape(-1, 4)), rtol=1e-12)


def test_softmax_rows_on_very_different_scales():
    # Each row is shifted by its OWN maximum: one shift for the whole batch would push the
    # exponentials of the low row to 0 and give 0/0.
    z = np.array([[1000.0, 1001.0], [-1000.0, -999.0], [0.0, 0.0]])
    expected = np.array([[1.0, np.e], [1.0, np.e], [1.0, 1.0]])
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(softmax(z), expected, rtol=1e-12)
    np.testing.assert_allclose(log_softmax(z), np.log(expected), rtol=1e-12)


def test_log_softmax_along_the_last_axis_of_a_3d_array(rng):
    z = rng.standard_normal((2, 3, 4)) * 5
    z[1] += 800.0  # and on a different scale per block
    out = log_softmax(z)
    for index in np.ndindex(2, 3):
        row = z[index]
        expected = row - row.max() - np.log(np.exp(row - row.max()).sum())
        np.testing.assert_allclose(out[index], expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.exp(out).sum(axis=-1), 1.0, rtol=1e-12)
