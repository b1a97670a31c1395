"""Dilated and grouped convolution (depthwise: groups = C): the loops, the im2col version and
the tuned backward pass agree with each other and with PyTorch (float64, when importable); the
layers pass a gradient check; bad combinations are refused with both numbers named."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnn.conv import conv2d_backward, conv2d_backward_naive, conv2d_forward, conv2d_forward_naive
from cnn.fast.conv import conv2d_backward_fast, conv2d_forward_fast, dx_by_offset
from cnn.fast.layers import Conv2D as FastConv2D
from cnn.gradcheck import check_layer
from cnn.layers import Conv2D


@st.composite
def configs(draw, max_group_channels=3):
    G = draw(st.integers(1, 3))
    C, F = G * draw(st.integers(1, max_group_channels)), G * draw(st.integers(1, 3))
    KH, KW, SH, SW = (draw(st.integers(1, 3)) for _ in range(4))
    DH, DW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    PH, PW = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    H = max(1, DH * (KH - 1) + 1 - 2 * PH) + draw(st.integers(0, 3))
    W = max(1, DW * (KW - 1) + 1 - 2 * PW) + draw(st.integers(0, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    return (draw(st.integers(1, 2)), C, H, W), (F, C // G, KH, KW), dict(
        stride=(SH, SW), padding=(PH, PW), dilation=(DH, DW), groups=G), seed


def arrays(x_shape, w_shape, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype),
            rng.standard_normal(w_shape[0]).astype(dtype), rng)


@settings(max_examples=40, deadline=None)
@given(configs())
def test_loops_im2col_and_tuned_passes_agree(config):
    x_shape, w_shape, args, seed = config
    x, w, b, rng = arrays(x_shape, w_shape, seed)
    out, cache = conv2d_forward(x, w, b, **args)
    out_naive, cache_naive = conv2d_forward_naive(x, w, b, **args)
    np.testing.assert_allclose(out, out_naive, rtol=1e-10, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    expected = conv2d_backward_naive(dout, cache_naive)
    for grads in (conv2d_backward(dout, cache), conv2d_backward_fast(dout, cache),
                  conv2d_backward(dout, cache_naive)):
        for got, want in zip(grads, expected):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("stride, padding, dilation", [((1, 1), (2, 2), (2, 2)), ((2, 1), (3, 2), (3, 2)),
                                                       ((2, 2), (2, 4), (2, 4)), ((1, 2), (1, 1), (1, 1))])
def test_dx_by_offset_with_dilation_matches_col2im(stride, padding, dilation):
    x, w, b, rng = arrays((2, 9, 7, 8), (4, 9, 3, 3), 1)
    out, cache = conv2d_forward(x, w, b, stride=stride, padding=padding, dilation=dilation)
    dout = rng.standard_normal(out.shape)
    dx = dx_by_offset(dout, w, x.shape, stride, padding, dilation)
    np.testing.assert_allclose(dx, conv2d_backward(dout, cache)[0], rtol=1e-10, atol=1e-12)


def test_depthwise_is_one_convolution_per_channel():
    x, w, b, _ = arrays((2, 4, 6, 6), (4, 1, 3, 3), 2)
    out, _ = conv2d_forward(x, w, b, padding=2, dilation=2, groups=4)
    for c in range(4):
        alone, _ = conv2d_forward(x[:, c:c + 1], w[c:c + 1], b[c:c + 1], padding=2, dilation=2)
        np.testing.assert_allclose(out[:, c:c + 1], alone, rtol=1e-12)


def test_a_grouped_convolution_is_a_block_diagonal_one():
    """groups=G equals groups=1 with the filters zero outside their group's channels."""
    x, w, b, _ = arrays((2, 6, 5, 5), (4, 3, 3, 3), 3)
    grouped, _ = conv2d_forward(x, w, b, padding=1, groups=2)
    full = np.zeros((4, 6, 3, 3))
    full[:2, :3], full[2:, 3:] = w[:2], w[2:]
    np.testing.assert_allclose(grouped, conv2d_forward(x, full, b, padding=1)[0], rtol=1e-12)


def test_a_dilated_kernel_is_a_larger_kernel_with_zeros():
    x, w, b, _ = arrays((2, 2, 9, 8), (3, 2, 3, 2), 4)
    dilated, _ = conv2d_forward(x, w, b, dilation=(3, 2))
    spread = np.zeros((3, 2, 7, 3))
    spread[:, :, ::3, ::2] = w
    np.testing.assert_allclose(dilated, conv2d_forward(x, spread, b)[0], rtol=1e-12)


@settings(max_examples=15, deadline=None)
@given(configs())
def test_agrees_with_torch_in_float64(config):
    torch = pytest.importorskip("torch")
    x_shape, w_shape, args, seed = config
    x, w, b, rng = arrays(x_shape, w_shape, seed)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    outt = torch.nn.functional.conv2d(xt, wt, bt, **args)
    out, cache = conv2d_forward(x, w, b, **args)
    np.testing.assert_allclose(out, outt.detach().numpy(), rtol=1e-10, atol=1e-10)
    dout = rng.standard_normal(out.shape)
    outt.backward(torch.tensor(dout))
    for backward in (conv2d_backward, conv2d_backward_fast):
        for got, tensor in zip(backward(dout, cache), (xt, wt, bt)):
            np.testing.assert_allclose(got, tensor.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("layer_type", [Conv2D, FastConv2D])
@pytest.mark.parametrize("kwargs", [dict(dilation=2, padding=2), dict(groups=2, padding=1),
                                    dict(groups=4, padding=(2, 1), dilation=(2, 1), stride=2)])
def test_layer_gradient_check(layer_type, kwargs):
    layer = layer_type(4, 4, 3, dtype=np.float64, rng=np.random.default_rng(5), **kwargs)
    assert layer.params["w"].shape == (4, 4 // kwargs.get("groups", 1), 3, 3)
    layer.params["b"][:] = np.random.default_rng(6).standard_normal(4)
    errors = check_layer(layer, np.random.default_rng(7).standard_normal((2, 4, 6, 5)))
    assert max(errors.values()) < 1e-7


def test_layer_repr_names_dilation_and_groups_only_when_used():
    assert "dilation" not in repr(Conv2D(2, 4, 3))
    assert repr(Conv2D(2, 4, 3, dilation=2, groups=2)).endswith("dilation=(2, 2), groups=2)")


@pytest.mark.parametrize("call, error, pattern", [
    (lambda: conv2d_forward(np.zeros((1, 6, 5, 5)), np.zeros((4, 1, 3, 3)), np.zeros(4), groups=4),
     ValueError, "C=6 channels of x cannot be split into groups=4"),
    (lambda: conv2d_forward(np.zeros((1, 6, 5, 5)), np.zeros((4, 2, 3, 3)), np.zeros(4), groups=3),
     ValueError, "F=4 filters of w cannot be split into groups=3"),
    (lambda: conv2d_forward(np.zeros((1, 6, 5, 5)), np.zeros((4, 6, 3, 3)), np.zeros(4), groups=2),
     ValueError, r"w must have shape \(F, C // groups=3, KH, KW\)"),
    (lambda: conv2d_forward(np.zeros((1, 6, 5, 5)), np.zeros((6, 6, 3, 3)), np.zeros(6), dilation=0),
     ValueError, "dilation must be >= 1"),
    (lambda: conv2d_forward(np.zeros((1, 2, 5, 5)), np.zeros((2, 2, 3, 3)), np.zeros(2), dilation=3),
     ValueError, r"kernel_size \(KH, KW\) = \(3, 3\) at dilation \(DH, DW\) = \(3, 3\) spans \(7, 7\) "
                 r"and is larger than the padded input \(H \+ 2 PH, W \+ 2 PW\) = \(5, 5\)"),
    (lambda: conv2d_forward(np.zeros((1, 2, 5, 5)), np.zeros((2, 2, 3, 3)), np.zeros(2), groups=0),
     ValueError, "groups must be >= 1"),
    (lambda: conv2d_forward(np.zeros((1, 2, 5, 5)), np.zeros((2, 2, 3, 3)), np.zeros(2), groups=1.0),
     TypeError, "groups must be an int"),
    (lambda: Conv2D(6, 4, 3, groups=4), ValueError, "C=6 in_channels cannot be split into groups=4"),
    (lambda: Conv2D(4, 6, 3, groups=4), ValueError, "F=6 out_channels cannot be split into groups=4"),
    (lambda: Conv2D(4, 4, 3, dilation=(1, 0)), ValueError, "dilation must be >= 1"),
])
def test_bad_combinations_are_refused_naming_both_numbers(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(0, 2), st.integers(1, 3),
       st.integers(0, 2**32 - 1))
def test_the_tuned_depthwise_path_matches_the_plain_one(C, k, stride, padding, dilation, seed):
    size = max(1, dilation * (k - 1) + 1 - 2 * padding) + seed % 4
    x, w, b, rng = arrays((2, C, size, size + 1), (C, 1, k, k), seed)
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=C)
    out, cache = conv2d_forward(x, w, b, **args)
    out_fast, cache_fast = conv2d_forward_fast(x, w, b, **args)
    np.testing.assert_allclose(out_fast, out, rtol=1e-10, atol=1e-12)
    assert cache_fast.cols is None  # the depthwise path builds no im2col matrix
    dout = rng.standard_normal(out.shape)
    for got, want in zip(conv2d_backward_fast(dout, cache_fast), conv2d_backward(dout, cache)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("x_shape, w_shape, args", [
    ((3, 16, 6, 7), (8, 8, 3, 3), dict(padding=1, groups=2)),  # dx_by_offset per group
    ((3, 6, 6, 7), (6, 2, 3, 3), dict(padding=1, groups=3)),  # col2im per block
    ((3, 8, 9, 8), (4, 8, 3, 3), dict(padding=2, dilation=2)),
    ((3, 4, 9, 8), (6, 2, 3, 2), dict(stride=2, padding=(0, 1), dilation=(2, 1), groups=2)),
    ((3, 5, 7, 6), (5, 1, 3, 3), dict(stride=(2, 1), padding=1, dilation=2, groups=5)),
    ((3, 5, 7, 6), (5, 1, 3, 3), dict(padding=2, dilation=(2, 1), groups=5)),  # flat runs
    ((3, 4, 6, 6), (4, 1, 3, 2), dict(padding=(0, 1), groups=4)),
    ((3, 12, 5, 5), (12, 12, 1, 1), {}),
])
@pytest.mark.parametrize("block_bytes", [1, 2**30])
def test_the_tuned_pair_in_blocks_of_samples_is_the_plain_pair(x_shape, w_shape, args,
                                                               block_bytes, monkeypatch):
    """One sample per block, or the whole batch in one: the numbers of cnn.conv, from the
    tuned forward pass's cache (no columns) and from the plain one's (all columns)."""
    monkeypatch.setattr("cnn.fast.conv.COLS_BLOCK_BYTES", block_bytes)
    monkeypatch.setattr("cnn.fast.conv.DEPTHWISE_BLOCK_BYTES", block_bytes)
    x, w, b, rng = arrays(x_shape, w_shape, 7)
    out, cache = conv2d_forward(x, w, b, **args)
    out_fast, cache_fast = conv2d_forward_fast(x, w, b, **args)
    np.testing.assert_allclose(out_fast, out, rtol=1e-10, atol=1e-12)
    assert cache_fast.cols is None
    dout = rng.standard_normal(out.shape)
    expected = conv2d_backward(dout, cache)
    for grads in (conv2d_backward_fast(dout, cache_fast), conv2d_backward_fast(dout, cache)):
        for got, want in zip(grads, expected):
            assert got.shape == want.shape and got.dtype == want.dtype
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_dx_by_offset_with_groups_matches_col2im(groups):
    x, w, b, rng = arrays((2, 8, 5, 6), (12, 8 // groups, 3, 3), 8)
    out, cache = conv2d_forward(x, w, b, padding=1, groups=groups)
    dout = rng.standard_normal(out.shape)
    dx = dx_by_offset(dout, w, x.shape, (1, 1), (1, 1), (1, 1), groups)
    np.testing.assert_allclose(dx, conv2d_backward(dout, cache)[0], rtol=1e-10, atol=1e-12)
