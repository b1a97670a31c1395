"""Pooling: loop, vectorised and tuned versions agree, gradients are right, the tie rule holds."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cnn.fast.pool import maxpool2d_backward_fast, maxpool2d_forward_fast
from cnn.gradcheck import numerical_gradient, relative_error
from cnn.pool import (
    avgpool2d_backward,
    avgpool2d_backward_naive,
    avgpool2d_forward,
    avgpool2d_forward_naive,
    maxpool2d_backward,
    maxpool2d_backward_naive,
    maxpool2d_forward,
    maxpool2d_forward_naive,
)

MAX = (maxpool2d_forward, maxpool2d_backward, maxpool2d_forward_naive, maxpool2d_backward_naive)
MAX_TUNED = (maxpool2d_forward_fast, maxpool2d_backward_fast, maxpool2d_forward_naive,
             maxpool2d_backward_naive)
AVG = (avgpool2d_forward, avgpool2d_backward, avgpool2d_forward_naive, avgpool2d_backward_naive)


@st.composite
def pool_configs(draw):
    """Random shapes, non-square kernels, strides 1-3 (or the default), overlapping windows."""
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    H, W = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    assume(H >= kernel[0] and W >= kernel[1])
    return (N, C, H, W), kernel, stride, draw(st.integers(0, 2**32 - 1))


def distinct_values(shape, seed):
    """Entries at least 0.1 apart, so that no window has a near-tie within a finite-difference step."""
    rng = np.random.default_rng(seed)
    return 0.1 * rng.permutation(np.prod(shape)).reshape(shape) + 0.01 * rng.random(shape)


@pytest.mark.parametrize("ops", [MAX, MAX_TUNED, AVG], ids=["max", "max-tuned", "avg"])
@given(config=pool_configs())
def test_fast_matches_naive(ops, config):
    forward, backward, forward_naive, backward_naive = ops
    shape, kernel, stride, seed = config
    # Integer-valued inputs create many ties: both versions must resolve them identically.
    x = np.random.default_rng(seed).integers(0, 3, shape).astype(np.float64)
    out, cache = forward(x, kernel, stride)
    out_naive, cache_naive = forward_naive(x, kernel, stride)
    np.testing.assert_allclose(out, out_naive, rtol=1e-12)
    dout = np.random.default_rng(seed + 1).standard_normal(out.shape)
    dx_naive = backward_naive(dout, cache_naive)
    for dx in (backward(dout, cache), backward(dout, cache_naive), backward_naive(dout, cache)):
        np.testing.assert_allclose(dx, dx_naive, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("ops", [MAX, MAX_TUNED, AVG], ids=["max", "max-tuned", "avg"])
@settings(max_examples=25)
@given(config=pool_configs())
def test_gradient_matches_finite_differences(ops, config):
    forward, backward = ops[:2]
    shape, kernel, stride, seed = config
    x = distinct_values(shape, seed)
    out, cache = forward(x, kernel, stride)
    projection = np.random.default_rng(seed + 1).standard_normal(out.shape)
    dx = backward(projection, cache)
    numerical = numerical_gradient(lambda _: np.sum(forward(x, kernel, stride)[0] * projection), x)
    assert relative_error(dx, numerical) < 1e-7


@pytest.mark.parametrize("forward, backward", [MAX[:2], MAX_TUNED[:2], MAX[2:]],
                         ids=["vectorised", "tuned", "naive"])
def test_tie_sends_the_whole_gradient_to_the_first_maximum(forward, backward):
    x = np.full((1, 1, 2, 2), 3.0)
    out, cache = forward(x, 2)
    dx = backward(np.array([[[[5.0]]]]), cache)
    np.testing.assert_array_equal(dx[0, 0], [[5.0, 0.0], [0.0, 0.0]])


@pytest.mark.parametrize("forward, backward", [MAX[:2], MAX_TUNED[:2], MAX[2:]],
                         ids=["vectorised", "tuned", "naive"])
def test_tie_rule_is_row_major_first(forward, backward):
    # The maximum 7 appears at (0, 1) and (1, 0): row-major order puts (0, 1) first.
    x = np.array([[[[1.0, 7.0], [7.0, 2.0]]]])
    _, cache = forward(x, 2)
    np.testing.assert_array_equal(backward(np.ones((1, 1, 1, 1)), cache)[0, 0], [[0, 1], [0, 0]])


@pytest.mark.parametrize("forward, backward", [MAX[:2], MAX_TUNED[:2], MAX[2:]],
                         ids=["vectorised", "tuned", "naive"])
def test_overlapping_windows_accumulate(forward, backward):
    # A constant 4x4 input, 2x2 windows, stride 1: every window's first maximum is its top-left
    # pixel, so pixel (i, j) receives the gradient of window (i, j) and nothing else.
    x = np.zeros((1, 1, 4, 4))
    dout = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    _, cache = forward(x, 2, 1)
    dx = backward(dout, cache)
    np.testing.assert_array_equal(dx[0, 0, :3, :3], dout[0, 0])
    assert dx[0, 0, 3, :].sum() == 0 and dx[0, 0, :, 3].sum() == 0
    # A single peak shared by all four windows around it collects all four gradients.
    x[0, 0, 1, 1] = 1.0
    _, cache = forward(x, 2, 1)
    assert backward(np.ones((1, 1, 3, 3)), cache)[0, 0, 1, 1] == 4.0


@pytest.mark.parametrize("ops", [MAX, MAX_TUNED, AVG], ids=["max", "max-tuned", "avg"])
def test_gradient_is_conserved_without_overlap(ops, rng):
    forward, backward = ops[:2]
    x = rng.standard_normal((2, 3, 6, 6))
    out, cache = forward(x, 2)
    dout = rng.standard_normal(out.shape)
    np.testing.assert_allclose(backward(dout, cache).sum(), dout.sum(), rtol=1e-12)


def test_maxpool_picks_the_window_maximum(rng):
    x = rng.standard_normal((2, 3, 6, 4))
    out, _ = maxpool2d_forward(x, (3, 2))
    expected = x.reshape(2, 3, 2, 3, 2, 2).max(axis=(3, 5))
    np.testing.assert_array_equal(out, expected)


def test_avgpool_of_a_constant_is_the_constant():
    out, _ = avgpool2d_forward(np.full((1, 2, 5, 5), 1.5), 3, 1)
    np.testing.assert_allclose(out, 1.5)


@pytest.mark.parametrize("forward", [maxpool2d_forward, avgpool2d_forward])
def test_stride_defaults_to_kernel_size(forward, rng):
    x = rng.standard_normal((1, 1, 6, 6))
    np.testing.assert_array_equal(forward(x, 3)[0], forward(x, 3, 3)[0])
    assert forward(x, 3)[0].shape == (1, 1, 2, 2)


@pytest.mark.parametrize("ops", [MAX, MAX_TUNED, AVG], ids=["max", "max-tuned", "avg"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_and_inputs_untouched(ops, dtype, rng):
    x = rng.standard_normal((2, 2, 5, 5)).astype(dtype)
    x_copy = x.copy()
    for forward, backward in (ops[:2], ops[2:]):
        out, cache = forward(x, 2, 1)
        dout = np.ones_like(out)
        dx = backward(dout, cache)
        assert out.dtype == dtype and dx.dtype == dtype
        np.testing.assert_array_equal(x, x_copy)
        np.testing.assert_array_equal(dout, 1)


@pytest.mark.parametrize("kernel_size", [(16, 16), (16, 17), (1, 256), (1, 257)])
def test_max_pool_index_dtype_at_its_size_limit(kernel_size):
    # The tuned pass stores each window's argmax in the smallest integer type that holds
    # KH*KW - 1 (uint8 up to 256 offsets): the maximum at the LAST offset must come back.
    KH, KW = kernel_size
    x = np.zeros((1, 2, KH, KW))
    x[0, 0, -1, -1] = 1.0  # last offset in row-major order
    x[0, 1, 0, 0] = 1.0  # first offset
    for forward, backward in [(maxpool2d_forward, maxpool2d_backward),
                              (maxpool2d_forward_fast, maxpool2d_backward_fast)]:
        out, cache = forward(x, kernel_size)
        np.testing.assert_array_equal(out, np.ones((1, 2, 1, 1)))
        np.testing.assert_array_equal(backward(np.full((1, 2, 1, 1), 3.0), cache), 3.0 * x)


@pytest.mark.parametrize("forward", [maxpool2d_forward, maxpool2d_forward_naive,
                                     maxpool2d_forward_fast, avgpool2d_forward,
                                     avgpool2d_forward_naive])
def test_pool_defaults_are_2x2_windows_that_tile(forward, rng):
    x = rng.standard_normal((1, 2, 6, 4))
    out, cache = forward(x)
    assert out.shape == (1, 2, 3, 2)
    assert cache.kernel_size == (2, 2) and cache.stride == (2, 2)
    explicit, _ = forward(x, (2, 2), (2, 2))
    np.testing.assert_array_equal(out, explicit)


@pytest.mark.parametrize("forward", [maxpool2d_forward, maxpool2d_forward_naive,
                                     maxpool2d_forward_fast])
def test_max_pool_cache_holds_integer_indices(forward, rng):
    _, cache = forward(rng.standard_normal((2, 1, 4, 4)), 2)
    assert np.issubdtype(cache.argmax.dtype, np.integer)
