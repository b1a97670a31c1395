"""The tuned kernels of ``cnn.fast`` (conv, conv_transpose, pool): what their blocking,
their choice of path and their reused buffers must not change.

Every block size gives the numbers of ``cnn.conv``; a depthwise pass keeps float32 and
handles one sample and unequal strides; the per-offset input gradient is taken exactly
where the docstrings say (from ``PER_OFFSET_MIN_CHANNELS`` channels on, when the grid
covers the input) and is right for strides that do not divide twice the padding and for
dilations that leave a phase without an unshifted offset; the tuned transposed
convolution has the plain one's defaults and cache; the tuned max pooling stores the
smallest index type and leaves zeros where a reused ``out=`` array is not reached.

Issue 27 (mutation testing of ``cnn.fast``, tests/MUTATION.md)."""

import numpy as np
import pytest

import cnn.fast.conv
import cnn.fast.conv_transpose
from cnn.conv import conv2d_backward, conv2d_forward
from cnn.conv_transpose import conv_transpose2d_backward, conv_transpose2d_forward
from cnn.fast.conv import (
    PER_OFFSET_MIN_CHANNELS,
    conv2d_backward_fast,
    conv2d_forward_fast,
    dx_by_offset,
)
from cnn.fast.conv_transpose import (
    conv_transpose2d_backward_fast,
    conv_transpose2d_forward_fast,
)
from cnn.fast.pool import maxpool2d_backward_fast, maxpool2d_forward_fast
from cnn.pool import maxpool2d_backward, maxpool2d_forward


def arrays(x_shape, w_shape, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    return x, w, rng.standard_normal(w_shape[0]).astype(dtype), rng


def assert_tuned_pair_is_plain_pair(x, w, b, args, rng, rtol=1e-10, atol=1e-12):
    out, cache = conv2d_forward(x, w, b, **args)
    out_fast, cache_fast = conv2d_forward_fast(x, w, b, **args)
    assert out_fast.dtype == out.dtype
    np.testing.assert_allclose(out_fast, out, rtol=rtol, atol=atol)
    dout = rng.standard_normal(out.shape).astype(x.dtype)
    for got, want in zip(conv2d_backward_fast(dout, cache_fast),
                         conv2d_backward(dout, cache)):
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


class Spy:
    """Wraps a function and counts its calls."""

    def __init__(self, function):
        self.function, self.calls = function, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.function(*args, **kwargs)


def refuse(*args, **kwargs):
    raise AssertionError("called")


# Depthwise: stride 1 (flat runs), unequal strides either way round (the strided path),
# one sample, and a batch that a small block splits unevenly.
DEPTHWISE = [
    ((5, 3, 7, 8), dict(padding=1)),
    ((5, 3, 7, 8), dict(padding=(2, 1), dilation=(2, 1))),
    ((5, 3, 7, 8), dict(stride=(1, 2), padding=1)),
    ((5, 3, 7, 8), dict(stride=(2, 1), padding=1)),
    ((1, 3, 6, 6), dict(stride=2, padding=1)),
    ((1, 3, 6, 6), dict(padding=1)),
]


@pytest.mark.parametrize("x_shape, args", DEPTHWISE)
def test_depthwise_passes_give_the_plain_numbers_for_every_block_size(x_shape, args,
                                                                       monkeypatch):
    """From a block smaller than one sample to one larger than the batch, by powers of 2:
    the blocks change the order of the work, never the numbers."""
    C = x_shape[1]
    x, w, b, rng = arrays(x_shape, (C, 1, 3, 3), seed=x_shape[0])
    for block_bytes in [2**k for k in range(0, 18)]:
        monkeypatch.setattr(cnn.fast.conv, "DEPTHWISE_BLOCK_BYTES", block_bytes)
        assert_tuned_pair_is_plain_pair(x, w, b, dict(args, groups=C), rng)


@pytest.mark.parametrize("x_shape, args", DEPTHWISE)
def test_depthwise_passes_keep_float32(x_shape, args):
    C = x_shape[1]
    x, w, b, rng = arrays(x_shape, (C, 1, 3, 3), seed=3, dtype=np.float32)
    out, cache = conv2d_forward_fast(x, w, b, **args, groups=C)
    assert out.dtype == np.float32
    dx, dw, db = conv2d_backward_fast(np.ones(out.shape, dtype=np.float32), cache)
    assert (dx.dtype, dw.dtype, db.dtype) == (np.float32,) * 3
    assert_tuned_pair_is_plain_pair(x, w, b, dict(args, groups=C), rng,
                                    rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("x_shape, args", DEPTHWISE[::2])
def test_depthwise_passes_build_no_im2col_columns(x_shape, args, monkeypatch):
    """A depthwise convolution is formed offset by offset: im2col would copy every pixel
    KH KW times for products of one row."""
    monkeypatch.setattr(cnn.fast.conv, "im2col", refuse)
    C = x_shape[1]
    x, w, b, rng = arrays(x_shape, (C, 1, 3, 3), seed=8)
    out, cache = conv2d_forward_fast(x, w, b, **args, groups=C)
    assert cache.cols is None
    conv2d_backward_fast(rng.standard_normal(out.shape), cache)


# Not depthwise: dx by offset (8 channels per group, "same" padding) or by col2im.
GENERAL = [
    ((5, 16, 6, 5), (4, 8, 3, 3), dict(padding=1, groups=2)),
    ((5, 4, 6, 5), (6, 2, 3, 2), dict(stride=(2, 1), dilation=(1, 2), groups=2)),
    ((1, 3, 5, 5), (2, 3, 3, 3), {}),
]


@pytest.mark.parametrize("x_shape, w_shape, args", GENERAL)
def test_the_tuned_pair_gives_the_plain_numbers_for_every_block_size(x_shape, w_shape,
                                                                    args, monkeypatch):
    x, w, b, rng = arrays(x_shape, w_shape, seed=10)
    for block_bytes in [2**k for k in range(0, 18)]:
        monkeypatch.setattr(cnn.fast.conv, "COLS_BLOCK_BYTES", block_bytes)
        assert_tuned_pair_is_plain_pair(x, w, b, args, rng)


@pytest.mark.parametrize("x_shape, w_shape, args", GENERAL)
def test_the_tuned_pair_keeps_float32(x_shape, w_shape, args):
    x, w, b, rng = arrays(x_shape, w_shape, seed=11, dtype=np.float32)
    out, cache = conv2d_forward_fast(x, w, b, **args)
    assert out.dtype == np.float32
    grads = conv2d_backward_fast(np.ones(out.shape, dtype=np.float32), cache)
    assert [g.dtype for g in grads] == [np.float32] * 3
    assert_tuned_pair_is_plain_pair(x, w, b, args, rng, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("w_shape, groups", [
    ((6, 1, 3, 3), 3),  # one channel per group, two filters each: not depthwise
    ((1, 3, 3, 3), 1),  # one filter over three channels: not depthwise
])
def test_a_convolution_that_is_almost_depthwise_gives_the_plain_numbers(w_shape, groups):
    x, w, b, rng = arrays((2, 3, 6, 5), w_shape, seed=4)
    assert_tuned_pair_is_plain_pair(x, w, b, dict(padding=1, groups=groups), rng)


@pytest.mark.parametrize("C_g", [PER_OFFSET_MIN_CHANNELS - 1, PER_OFFSET_MIN_CHANNELS])
@pytest.mark.parametrize("padding, by_grid", [(1, True), (0, False)])
def test_the_tuned_backward_pass_forms_dx_by_offset_exactly_where_documented(
        C_g, padding, by_grid, monkeypatch):
    """From PER_OFFSET_MIN_CHANNELS input channels per group on, and only when the output
    grid covers the input ("same" padding here, none does not)."""
    spy, col2im_spy = Spy(dx_by_offset), Spy(cnn.fast.conv.col2im)
    monkeypatch.setattr(cnn.fast.conv, "dx_by_offset", spy)
    monkeypatch.setattr(cnn.fast.conv, "col2im", col2im_spy)
    x, w, b, rng = arrays((2, 2 * C_g, 6, 5), (4, C_g, 3, 3), seed=C_g)
    args = dict(padding=padding, groups=2)
    assert_tuned_pair_is_plain_pair(x, w, b, args, rng)
    by_offset = C_g >= PER_OFFSET_MIN_CHANNELS and by_grid
    assert spy.calls == by_offset and (col2im_spy.calls == 0) == by_offset


@pytest.mark.parametrize("C_out", [PER_OFFSET_MIN_CHANNELS - 1, PER_OFFSET_MIN_CHANNELS])
@pytest.mark.parametrize("kernel, padding, by_grid", [((3, 1), (1, 0), True),
                                                      ((3, 3), (0, 0), False)])
def test_the_tuned_transposed_forward_uses_dx_by_offset_exactly_where_documented(
        C_out, kernel, padding, by_grid, monkeypatch):
    """From PER_OFFSET_MIN_CHANNELS output channels on, when the input grid covers the
    output; a kernel of width 1 and height 3 with padding (1, 0) keeps both sizes."""
    spy = Spy(dx_by_offset)
    monkeypatch.setattr(cnn.fast.conv_transpose, "dx_by_offset", spy)
    rng = np.random.default_rng(C_out)
    x = rng.standard_normal((2, 3, 5, 4))
    w, b = rng.standard_normal((3, C_out) + kernel), rng.standard_normal(C_out)
    out, cache = conv_transpose2d_forward_fast(x, w, b, padding=padding)
    expected, _ = conv_transpose2d_forward(x, w, b, padding=padding)
    np.testing.assert_allclose(out, expected, rtol=1e-11, atol=1e-11)
    assert spy.calls == (C_out >= PER_OFFSET_MIN_CHANNELS and by_grid)


def test_the_tuned_transposed_forward_has_the_plain_defaults():
    rng = np.random.default_rng(0)
    for C_out, kernel in [(2, (3, 2)), (PER_OFFSET_MIN_CHANNELS, (1, 1))]:
        x = rng.standard_normal((2, 3, 4, 5))
        w, b = rng.standard_normal((3, C_out) + kernel), rng.standard_normal(C_out)
        out, cache = conv_transpose2d_forward_fast(x, w, b)
        expected, _ = conv_transpose2d_forward(x, w, b, stride=1, padding=0,
                                               output_padding=0)
        assert out.shape == (2, C_out, 4 - 1 + kernel[0], 5 - 1 + kernel[1])
        np.testing.assert_allclose(out, expected, rtol=1e-11, atol=1e-11)
        assert (cache.stride, cache.padding, cache.output_padding) == ((1, 1), (0, 0),
                                                                      (0, 0))


@pytest.mark.parametrize("stride, padding, output_padding", [
    (2, 1, 1), ((2, 3), (1, 1), (1, 2)), (1, 1, 0)])
def test_the_tuned_transposed_pair_on_the_per_offset_path_keeps_the_geometry(
        stride, padding, output_padding, monkeypatch):
    """The cache of the per-offset path holds the padding and the output padding, so that
    both backward passes give the plain pair's gradients."""
    spy = Spy(dx_by_offset)
    monkeypatch.setattr(cnn.fast.conv_transpose, "dx_by_offset", spy)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4, 5))
    w = rng.standard_normal((3, PER_OFFSET_MIN_CHANNELS, 3, 3))
    b = rng.standard_normal(PER_OFFSET_MIN_CHANNELS)
    args = dict(stride=stride, padding=padding, output_padding=output_padding)
    out, cache = conv_transpose2d_forward_fast(x, w, b, **args)
    assert spy.calls == 1
    expected, cache_plain = conv_transpose2d_forward(x, w, b, **args)
    np.testing.assert_allclose(out, expected, rtol=1e-11, atol=1e-11)
    assert cache.stride == cache_plain.stride and cache.padding == cache_plain.padding
    assert cache.output_padding == cache_plain.output_padding
    dout = rng.standard_normal(out.shape)
    want = conv_transpose2d_backward(dout, cache_plain)
    for backward in (conv_transpose2d_backward, conv_transpose2d_backward_fast):
        for got, ref in zip(backward(dout, cache), want):
            np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-11)


def test_dx_by_offset_refuses_a_grid_that_does_not_cover_the_input():
    dout, w = np.ones((1, 2, 2, 3)), np.ones((2, 3, 3, 3))
    with pytest.raises(ValueError, match=(
            r"^dx_by_offset needs an output grid \(H_out, W_out\) = \(2, 3\) that covers "
            r"the input \(H, W\) = \(6, 7\) at stride \(1, 2\); use col2im$")):
        dx_by_offset(dout, w, (1, 3, 6, 7), (1, 2), (0, 0))


@pytest.mark.parametrize("x_hw, stride, padding, dilation, kernel", [
    ((9, 8), (3, 3), (1, 1), (1, 1), (3, 3)),  # 2 P not a multiple of S: phase of p - P
    ((9, 8), (3, 1), (2, 1), (1, 1), (3, 3)),
    ((9, 8), (1, 1), (0, 1), (1, 2), (1, 2)),  # no offset lands on its own pixel
    ((9, 8), (1, 1), (1, 0), (2, 1), (2, 1)),
    ((3, 5), (1, 1), (4, 0), (4, 1), (3, 1)),  # offsets shifted past the whole grid
])
def test_dx_by_offset_gives_col2im_s_numbers_for_every_block_size(
        x_hw, stride, padding, dilation, kernel, monkeypatch):
    """From blocks of one sample (which reuse the phase buffer, so a phase that is not
    cleared first would carry the previous block's gradient) to the whole batch, with a
    last block that is not full: the blocks change the order of the work only."""
    x, w, b, rng = arrays((5, PER_OFFSET_MIN_CHANNELS) + x_hw,
                          (4, PER_OFFSET_MIN_CHANNELS) + kernel, seed=6)
    args = dict(stride=stride, padding=padding, dilation=dilation)
    out, cache = conv2d_forward(x, w, b, **args)
    dout = rng.standard_normal(out.shape)
    expected = conv2d_backward(dout, cache)[0]
    for block_bytes in [2**k for k in range(0, 18)]:
        monkeypatch.setattr(cnn.fast.conv, "BLOCK_BYTES", block_bytes)
        dx = dx_by_offset(dout, w, x.shape, stride, padding, dilation)
        np.testing.assert_allclose(dx, expected, rtol=1e-10, atol=1e-12)
    assert_tuned_pair_is_plain_pair(x, w, b, args, rng)


def test_dx_by_offset_of_one_channel_with_offsets_beyond_the_grid():
    """A dilated kernel whose outer offsets shift by the whole grid and one column more:
    they send nothing into the input, and the product of one channel holds less than such
    a shift."""
    x, w, b, rng = arrays((1, 1, 3, 5), (1, 1, 3, 3), seed=9)
    args = dict(padding=(3, 1), dilation=(3, 1))
    out, cache = conv2d_forward(x, w, b, **args)
    dout = rng.standard_normal(out.shape)
    dx = dx_by_offset(dout, w, x.shape, (1, 1), (3, 1), (3, 1))
    np.testing.assert_allclose(dx, conv2d_backward(dout, cache)[0], rtol=1e-10,
                               atol=1e-12)


@pytest.mark.parametrize("kernel_size, dtype", [((16, 16), np.uint8), ((1, 256), np.uint8),
                                                ((1, 257), np.uint16)])
def test_max_pool_stores_the_smallest_index_type(kernel_size, dtype):
    """KH KW offsets are numbered 0 .. KH KW - 1: uint8 holds 256 of them."""
    x = np.random.default_rng(0).standard_normal((1, 1) + kernel_size)
    _, cache = maxpool2d_forward_fast(x, kernel_size)
    assert cache.argmax.dtype == dtype


@pytest.mark.parametrize("H, W", [(5, 4), (4, 5), (5, 5), (4, 4)])
def test_max_pool_backward_into_a_used_array_zeroes_what_no_window_reaches(H, W):
    """Windows that tile all but the last row or column: a reused ``out=`` array must not
    keep its old values there."""
    rng = np.random.default_rng(H * W)
    x = rng.standard_normal((2, 3, H, W))
    out, cache = maxpool2d_forward_fast(x, 2)
    dout = rng.standard_normal(out.shape)
    used = np.full(x.shape, 7.0)
    dx = maxpool2d_backward_fast(dout, cache, out=used)
    assert dx is used
    np.testing.assert_array_equal(dx, maxpool2d_backward(dout, maxpool2d_forward(x, 2)[1]))
