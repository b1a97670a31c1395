"""Convolution: the loop, plain and tuned versions agree, gradients match finite differences."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cnn.conv import (
    col2im,
    conv2d_backward,
    conv2d_backward_naive,
    conv2d_forward,
    conv2d_forward_naive,
    conv_matrix,
    im2col,
    output_size,
    pad,
)
from cnn.fast.conv import PER_OFFSET_MIN_CHANNELS, conv2d_backward_fast, conv2d_forward_fast
from cnn.gradcheck import numerical_gradient, relative_error

# The three implementations the book teaches, in its order: loops (chapters 4 and 5), im2col
# (the same chapters), tuned (chapter 9). Same signatures, same cache type.
VERSIONS = {
    "loops": (conv2d_forward_naive, conv2d_backward_naive),
    "im2col": (conv2d_forward, conv2d_backward),
    "tuned": (conv2d_forward_fast, conv2d_backward_fast),
}


@st.composite
def conv_configs(draw):
    """Random shapes, strides (1-3), paddings (0-2), non-square kernels and inputs."""
    N, F = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    # Channel counts on both sides of the tuned backward pass's switch to dx by offset.
    C = draw(st.sampled_from([1, 2, 3, PER_OFFSET_MIN_CHANNELS, PER_OFFSET_MIN_CHANNELS + 1]))
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    H, W = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    assume(H + 2 * padding[0] >= KH and W + 2 * padding[1] >= KW)
    seed = draw(st.integers(0, 2**32 - 1))
    return (N, C, H, W), (F, C, KH, KW), stride, padding, seed


def make_arrays(x_shape, w_shape, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    return x, w, b


@given(conv_configs())
def test_loops_im2col_and_tuned_versions_agree(config):
    x_shape, w_shape, stride, padding, seed = config
    x, w, b = make_arrays(x_shape, w_shape, seed)
    forwards = {name: forward(x, w, b, stride, padding) for name, (forward, _) in VERSIONS.items()}
    out_naive, cache_naive = forwards["loops"]
    dout = np.random.default_rng(seed + 1).standard_normal(out_naive.shape)
    grads_naive = conv2d_backward_naive(dout, cache_naive)
    for name, (out, cache) in forwards.items():
        np.testing.assert_allclose(out, out_naive, rtol=1e-10, atol=1e-12, err_msg=name)
        assert type(cache) is type(cache_naive)
        # Every backward pass accepts every forward pass's cache.
        for backward_name, (_, backward) in VERSIONS.items():
            for g, g_naive, g_name in zip(backward(dout, cache), grads_naive, ("dx", "dw", "db")):
                np.testing.assert_allclose(g, g_naive, rtol=1e-10, atol=1e-12,
                                           err_msg=f"{g_name}: {backward_name} on {name}'s cache")


@settings(max_examples=20)
@given(conv_configs())
def test_gradients_match_finite_differences(config):
    x_shape, w_shape, stride, padding, seed = config
    x, w, b = make_arrays(x_shape, w_shape, seed)
    out, cache = conv2d_forward(x, w, b, stride, padding)
    projection = np.random.default_rng(seed + 1).standard_normal(out.shape)
    dx, dw, db = conv2d_backward(projection, cache)

    def loss(_):
        return np.sum(conv2d_forward(x, w, b, stride, padding)[0] * projection)

    for analytic, array in ((dx, x), (dw, w), (db, b)):
        assert relative_error(analytic, numerical_gradient(loss, array)) < 1e-7


def test_is_cross_correlation_not_convolution():
    # A kernel with a single 1 in its top-left corner copies the top-left of each window: no flip.
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    w = np.zeros((1, 1, 2, 2))
    w[0, 0, 0, 0] = 1.0
    out, _ = conv2d_forward(x, w, np.zeros(1))
    np.testing.assert_array_equal(out[0, 0], x[0, 0, :3, :3])


def test_sum_kernel_and_bias_by_hand():
    x = np.ones((1, 2, 3, 3))
    w = np.ones((1, 2, 3, 3))
    out, _ = conv2d_forward(x, w, np.array([0.5]), padding=1)
    # Every output sums its in-bounds neighbours over 2 channels, plus the bias.
    neighbours = np.array([[4, 6, 4], [6, 9, 6], [4, 6, 4]])
    np.testing.assert_array_equal(out[0, 0], 2 * neighbours + 0.5)


@pytest.mark.parametrize(
    "size, kernel, stride, padding",
    [((5, 7), (3, 3), (1, 1), (0, 0)), ((5, 7), (3, 2), (2, 3), (1, 2)), ((4, 4), (4, 4), (1, 1), (0, 0))],
)
def test_output_size_matches_the_number_of_window_positions(size, kernel, stride, padding):
    # Count the top-left corners that fit, independently of the formula.
    expected = tuple(
        len(range(0, n + 2 * p - k + 1, s)) for n, k, s, p in zip(size, kernel, stride, padding)
    )
    assert output_size(size, kernel, stride, padding) == expected


@given(conv_configs())
def test_col2im_is_the_adjoint_of_im2col(config):
    x_shape, w_shape, stride, padding, seed = config
    rng = np.random.default_rng(seed)
    x_padded = pad(rng.standard_normal(x_shape), padding)
    cols = im2col(x_padded, w_shape[2:], stride)
    c = rng.standard_normal(cols.shape)
    lhs = np.sum(cols * c)
    rhs = np.sum(x_padded * col2im(c, x_padded.shape, w_shape[2:], stride))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10)


@pytest.mark.parametrize("forward, backward", [
    (conv2d_forward, conv2d_backward), (conv2d_forward_naive, conv2d_backward_naive)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(forward, backward, dtype):
    x, w, b = make_arrays((2, 3, 6, 5), (4, 3, 3, 2), seed=1, dtype=dtype)
    out, cache = forward(x, w, b, stride=2, padding=1)
    assert out.dtype == dtype
    dout = np.ones_like(out)
    assert all(g.dtype == dtype for g in backward(dout, cache))


def test_float32_matches_float64(rng):
    x, w, b = make_arrays((2, 3, 9, 9), (4, 3, 3, 3), seed=2)
    out64, _ = conv2d_forward(x, w, b, 1, 1)
    out32, _ = conv2d_forward(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), 1, 1)
    np.testing.assert_allclose(out32, out64, rtol=1e-4, atol=1e-4)


def test_mixed_dtypes_compute_in_the_dtype_of_x():
    x, w, b = make_arrays((1, 2, 5, 5), (3, 2, 3, 3), seed=3, dtype=np.float32)
    out, cache = conv2d_forward(x, w.astype(np.float64), b.astype(np.float64))
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in conv2d_backward(np.ones_like(out), cache))


@pytest.mark.parametrize("forward, backward", [
    (conv2d_forward, conv2d_backward), (conv2d_forward_naive, conv2d_backward_naive)])
def test_inputs_are_not_modified(forward, backward):
    x, w, b = make_arrays((2, 2, 5, 5), (3, 2, 3, 3), seed=4)
    copies = [a.copy() for a in (x, w, b)]
    out, cache = forward(x, w, b, stride=1, padding=1)
    dout = np.random.default_rng(5).standard_normal(out.shape)
    dout_copy = dout.copy()
    dx, dw, db = backward(dout, cache)
    for a, copy in zip((x, w, b, dout), copies + [dout_copy]):
        np.testing.assert_array_equal(a, copy)
    assert not np.shares_memory(dx, x) and not np.shares_memory(dw, w)


@pytest.mark.parametrize("forward", [conv2d_forward, conv2d_forward_naive])
def test_float64_weights_into_a_float32_input_compute_in_float32(forward, rng):
    # The arithmetic runs in the input's dtype: float64 weights and biases are rounded to
    # float32 first, exactly as if they had been given in float32.
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    w, b = rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    out, cache = forward(x, w, b, stride=1, padding=1)
    expected, _ = forward(x, w.astype(np.float32), b.astype(np.float32), stride=1, padding=1)
    assert out.dtype == cache.w.dtype == np.float32
    np.testing.assert_array_equal(out, expected)


def test_naive_forward_defaults_are_stride_1_and_no_padding(rng):
    x, w, b = rng.standard_normal((1, 2, 5, 6)), rng.standard_normal((2, 2, 3, 3)), np.zeros(2)
    out, cache = conv2d_forward_naive(x, w, b)
    assert out.shape == (1, 2, 3, 4) and cache.stride == (1, 1) and cache.padding == (0, 0)
    np.testing.assert_allclose(out, conv2d_forward(x, w, b, stride=1, padding=0)[0], rtol=1e-12)


def test_fast_forward_keeps_its_im2col_matrix_for_backward(rng):
    x, w, b = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 2)), np.zeros(4)
    _, cache = conv2d_forward(x, w, b, stride=(2, 1), padding=1)
    # (N, C*KH*KW, H_out*W_out) with H_out = (6 + 2 - 3) // 2 + 1 = 3, W_out = 5 + 2 - 2 + 1 = 6
    assert cache.cols is not None and cache.cols.shape == (2, 3 * 3 * 2, 3 * 6)
    assert conv2d_forward_naive(x, w, b, stride=(2, 1), padding=1)[1].cols is None


@pytest.mark.parametrize("input_shape, error, pattern", [
    ((2, 5), ValueError, r"input_shape must be a tuple \(C, H, W\), got \(2, 5\)"),
    ((3, 5, 5), ValueError, r"input_shape C = 3 differs from the channels of w, C = 2"),
    ((2, 0, 5), ValueError, "input_shape H"),
    ((2, 1, 5), ValueError, "larger than the padded input"),
])
def test_conv_matrix_refuses_a_bad_input_shape(input_shape, error, pattern):
    with pytest.raises(error, match=pattern):
        conv_matrix(np.ones((4, 2, 3, 3)), input_shape)


def test_conv_matrix_is_sparse_with_the_kernel_on_each_row():
    """Each row of M holds one copy of the kernel (all of it, inside the image)."""
    w = np.arange(1.0, 5.0).reshape(1, 1, 2, 2)
    M = conv_matrix(w, (1, 3, 3))
    assert M.shape == (4, 9)
    np.testing.assert_array_equal(np.sort(M, axis=1)[:, -4:], np.tile([1.0, 2, 3, 4], (4, 1)))
    assert np.count_nonzero(M) == 16
    np.testing.assert_array_equal(M[0], [1, 2, 0, 3, 4, 0, 0, 0, 0])
