"""Transposed convolution: loops and vectorised pair agree, it is the adjoint of the convolution,
it matches PyTorch's ConvTranspose2d when importable, and the layer passes its gradient check."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnn.conv import conv2d_backward, conv2d_forward
from cnn.conv_transpose import (
    conv_transpose2d_backward,
    conv_transpose2d_backward_naive,
    conv_transpose2d_forward,
    conv_transpose2d_forward_naive,
    upsample_nearest_backward,
    upsample_nearest_forward,
)
from cnn.fast.conv_transpose import (
    conv_transpose2d_backward_fast,
    conv_transpose2d_forward_fast,
)
from cnn.fast.layers import ConvTranspose2D as FastConvTranspose2D
from cnn.gradcheck import check_layer
from cnn.layers import ConvTranspose2D


def case(N, C_in, C_out, H, W, KH, KW, stride, padding, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C_in, H, W)).astype(dtype)
    w = rng.standard_normal((C_in, C_out, KH, KW)).astype(dtype)
    b = rng.standard_normal(C_out).astype(dtype)
    return x, w, b


geometry = st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 4),
                     st.integers(1, 4), st.integers(1, 4), st.integers(1, 4),
                     st.tuples(st.integers(1, 3), st.integers(1, 3)),
                     st.tuples(st.integers(0, 2), st.integers(0, 2)))


def valid(g):
    N, C_in, C_out, H, W, KH, KW, (SH, SW), (PH, PW) = g
    return (H - 1) * SH + KH > 2 * PH and (W - 1) * SW + KW > 2 * PW


@settings(max_examples=40)
@given(geometry.filter(valid), st.integers(0, 2**32 - 1))
def test_vectorised_pair_matches_the_loops(g, seed):
    x, w, b = case(*g, seed=seed)
    stride, padding = g[7], g[8]
    out, cache = conv_transpose2d_forward(x, w, b, stride, padding)
    out_naive, cache_naive = conv_transpose2d_forward_naive(x, w, b, stride, padding)
    np.testing.assert_allclose(out, out_naive, rtol=1e-12, atol=1e-12)
    dout = np.random.default_rng(seed + 1).standard_normal(out.shape)
    for fast, naive in zip(conv_transpose2d_backward(dout, cache),
                           conv_transpose2d_backward_naive(dout, cache_naive)):
        np.testing.assert_allclose(fast, naive, rtol=1e-11, atol=1e-11)


@settings(max_examples=20)
@given(geometry.filter(valid), st.integers(0, 2**32 - 1))
def test_forward_is_the_convolution_s_input_gradient(g, seed):
    """conv_transpose2d(x; w) = dx of conv2d with filters w for upstream gradient x."""
    x, w, _ = case(*g, seed=seed)
    stride, padding = g[7], g[8]
    out, _ = conv_transpose2d_forward(x, w, np.zeros(w.shape[1]), stride, padding)
    y = np.zeros(out.shape)  # any input of that shape: dx does not depend on it
    _, cache = conv2d_forward(y, w, np.zeros(w.shape[0]), stride, padding)
    np.testing.assert_allclose(conv2d_backward(x, cache)[0], out, rtol=1e-12, atol=1e-12)
    # and its input gradient is the convolution's forward pass
    dx, _, _ = conv_transpose2d_backward(y + 1, conv_transpose2d_forward(x, w, np.zeros(w.shape[1]),
                                                                          stride, padding)[1])
    np.testing.assert_allclose(dx, conv2d_forward(y + 1, w, np.zeros(w.shape[0]), stride, padding)[0],
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride, padding, kernel", [(1, 0, 3), (2, 1, 4), ((2, 3), (1, 0), (3, 2))])
def test_matches_pytorch(stride, padding, kernel):
    torch = pytest.importorskip("torch")
    x, w, b = case(2, 3, 4, 5, 4, *(kernel if isinstance(kernel, tuple) else (kernel, kernel)),
                   stride, padding, seed=0)
    out, cache = conv_transpose2d_forward(x, w, b, stride, padding)
    xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    expected = torch.nn.functional.conv_transpose2d(xt, wt, bt, stride=stride, padding=padding)
    np.testing.assert_allclose(out, expected.detach().numpy(), rtol=1e-10, atol=1e-10)
    dout = np.random.default_rng(1).standard_normal(out.shape)
    expected.backward(torch.from_numpy(dout))
    for ours, theirs in zip(conv_transpose2d_backward(dout, cache), (xt, wt, bt)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_and_inputs_are_not_modified(dtype):
    x, w, b = case(2, 2, 3, 3, 3, 3, 3, 2, 1, seed=2, dtype=dtype)
    copies = [a.copy() for a in (x, w, b)]
    out, cache = conv_transpose2d_forward(x, w, b, 2, 1)
    assert out.shape == (2, 3, 5, 5) and out.dtype == dtype
    grads = conv_transpose2d_backward(np.ones_like(out), cache)
    assert [g.dtype for g in grads] == [dtype] * 3
    for a, c in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, c)


@settings(max_examples=15)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 2), st.integers(0, 1),
       st.integers(0, 2**32 - 1))
def test_layer_gradient_check(C_in, C_out, K, stride, padding, seed):
    layer = ConvTranspose2D(C_in, C_out, K + 1, stride=stride, padding=padding,
                            rng=np.random.default_rng(seed), dtype=np.float64)
    layer.params["b"][:] = np.random.default_rng(seed + 1).standard_normal(C_out)
    errors = check_layer(layer, np.random.default_rng(seed + 2).standard_normal((2, C_in, 3, 4)), seed=seed)
    assert errors.keys() == {"x", "w", "b"}
    assert max(errors.values()) < 1e-7


def test_layer_shapes_and_initialisation():
    layer = ConvTranspose2D(64, 32, 4, stride=2, padding=1, rng=np.random.default_rng(0))
    assert layer.params["w"].shape == (64, 32, 4, 4) and layer.params["w"].dtype == np.float32
    # He with the fan-in of an output pixel: C_in KH KW / (SH SW) = 256 terms.
    assert abs(layer.params["w"].std() - np.sqrt(2 / 256)) < 0.05 * np.sqrt(2 / 256)
    out = layer.forward(np.zeros((1, 64, 7, 7), dtype=np.float32))
    assert out.shape == (1, 32, 14, 14)
    assert "ConvTranspose2D(64, 32" in repr(layer)


@pytest.mark.parametrize("call, error, pattern", [
    (lambda: conv_transpose2d_forward(np.zeros((1, 2, 3)), np.zeros((2, 1, 2, 2)), np.zeros(1)),
     ValueError, r"x must have shape \(N, C_in, H, W\)"),
    (lambda: conv_transpose2d_forward(np.zeros((1, 2, 3, 3)), np.zeros((3, 1, 2, 2)), np.zeros(1)),
     ValueError, r"w must have shape \(C_in=2, C_out, KH, KW\)"),
    (lambda: conv_transpose2d_forward(np.zeros((1, 2, 3, 3)), np.zeros((2, 1, 2, 2)), np.zeros(2)),
     ValueError, r"b must have shape \(C_out=1,\)"),
    (lambda: conv_transpose2d_forward(np.zeros((1, 1, 1, 1)), np.zeros((1, 1, 2, 2)), np.zeros(1),
                                      padding=1), ValueError, "removes the whole output"),
    (lambda: conv_transpose2d_forward(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 2)), np.zeros(1),
                                      stride=0), ValueError, "stride"),
    (lambda: ConvTranspose2D(2, 0, 3), ValueError, "out_channels"),
])
def test_bad_inputs_raise_clear_errors(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_backward_rejects_a_wrong_dout():
    x, w, b = case(1, 1, 2, 3, 3, 2, 2, 1, 0, seed=0)
    _, cache = conv_transpose2d_forward(x, w, b)
    with pytest.raises(ValueError, match=r"dout must have shape \(N=1, C_out=2, H_out=4, W_out=4\)"):
        conv_transpose2d_backward(np.zeros((1, 2, 3, 3)), cache)


@pytest.mark.parametrize("C_out", [1, 7, 8, 12])
@pytest.mark.parametrize("H, W, K, stride, padding", [
    (5, 4, 3, 1, 1), (4, 4, 4, 2, 1), (3, 5, 3, 2, 0), (4, 3, (2, 3), (3, 1), (0, 1)), (2, 2, 1, 1, 0),
])
def test_tuned_forward_matches_on_both_paths(C_out, H, W, K, stride, padding):
    """dx_by_offset from 8 output channels on when the input grid covers the output, else col2im."""
    KH, KW = (K, K) if isinstance(K, int) else K
    x, w, b = case(2, 9, C_out, H, W, KH, KW, stride, padding, seed=C_out)
    expected, _ = conv_transpose2d_forward_naive(x, w, b, stride, padding)
    out, cache = conv_transpose2d_forward_fast(x, w, b, stride, padding)
    np.testing.assert_allclose(out, expected, rtol=1e-11, atol=1e-11)
    assert cache.x is x and cache.stride == (stride if isinstance(stride, tuple) else (stride, stride))
    out32, _ = conv_transpose2d_forward_fast(x.astype(np.float32), w.astype(np.float32), b, stride, padding)
    assert out32.dtype == np.float32


# Issue 27 (mutation testing): the naive pass keeps float32, and the messages name the
# argument and the sizes.
def test_the_naive_forward_pass_keeps_float32():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 3, 3)).astype(np.float32)
    w, b = rng.standard_normal((2, 1, 3, 3)), rng.standard_normal(1)  # float64 weights
    out, _ = conv_transpose2d_forward_naive(x, w, b, stride=2, padding=1)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, conv_transpose2d_forward(x, w, b, 2, 1)[0], rtol=1e-5)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"stride": 0}, r"^stride must be >= 1, got 0$"),
    ({"padding": -1}, r"^padding must be >= 0, got -1$"),
    ({"padding": 3}, r"^padding \(3, 3\) removes the whole output: \(H - 1\) SH \+ KH \+ AH = "
                     r"\(5, 5\) is at most 2 PH$"),
    ({"stride": 2, "output_padding": (1, 2)}, r"^output_padding \(AH, AW\) = \(1, 2\) must be "
                                              r"smaller than stride \(SH, SW\) = \(2, 2\)"),
    ({"output_padding": -1}, r"^output_padding must be >= 0, got -1$"),
])
def test_transposed_convolution_messages_name_the_argument(kwargs, pattern):
    x, w, b = np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3)), np.ones(1)
    for forward in (conv_transpose2d_forward, conv_transpose2d_forward_naive):
        with pytest.raises(ValueError, match=pattern):
            forward(x, w, b, **kwargs)


# output_padding (issue 24): A_H < S_H extra rows at the bottom, A_W < S_W columns at the right.
OUTPUT_PADDING_CASES = [  # C_out, (H, W), kernel, stride, padding, output padding
    (3, (3, 4), (3, 3), (2, 2), (1, 1), (1, 1)),
    (9, (4, 3), (3, 2), (3, 2), (0, 1), (2, 1)),
    (8, (2, 2), (4, 4), (2, 2), (1, 1), (1, 0)),
    (2, (2, 3), (1, 2), (3, 3), (1, 0), (1, 2)),
]


@pytest.mark.parametrize("C_out, size, kernel, stride, padding, output_padding",
                         OUTPUT_PADDING_CASES)
def test_output_padding_agrees_across_the_three_versions(C_out, size, kernel, stride, padding,
                                                         output_padding):
    x, w, b = case(2, 9, C_out, *size, *kernel, stride, padding, seed=C_out)
    out, cache = conv_transpose2d_forward(x, w, b, stride, padding, output_padding)
    H_out = (size[0] - 1) * stride[0] - 2 * padding[0] + kernel[0] + output_padding[0]
    W_out = (size[1] - 1) * stride[1] - 2 * padding[1] + kernel[1] + output_padding[1]
    assert out.shape == (2, C_out, H_out, W_out)
    # The added rows extend the uncropped output, so without output padding the output is the
    # top-left corner of this one.
    smaller, _ = conv_transpose2d_forward(x, w, b, stride, padding)
    np.testing.assert_allclose(out[:, :, :smaller.shape[2], :smaller.shape[3]], smaller,
                               rtol=1e-12, atol=1e-12)
    dout = np.random.default_rng(1).standard_normal(out.shape)
    grads = conv_transpose2d_backward(dout, cache)
    for forward, backward in [(conv_transpose2d_forward_naive, conv_transpose2d_backward_naive),
                              (conv_transpose2d_forward_fast, conv_transpose2d_backward_fast)]:
        other, other_cache = forward(x, w, b, stride, padding, output_padding)
        np.testing.assert_allclose(other, out, rtol=1e-11, atol=1e-11)
        for ours, theirs in zip(backward(dout, other_cache), grads):
            np.testing.assert_allclose(theirs, ours, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("C_out, size, kernel, stride, padding, output_padding",
                         OUTPUT_PADDING_CASES)
def test_output_padding_matches_pytorch(C_out, size, kernel, stride, padding, output_padding):
    torch = pytest.importorskip("torch")
    x, w, b = case(2, 3, C_out, *size, *kernel, stride, padding, seed=5)
    out, cache = conv_transpose2d_forward(x, w, b, stride, padding, output_padding)
    xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    expected = torch.nn.functional.conv_transpose2d(xt, wt, bt, stride=stride, padding=padding,
                                                    output_padding=output_padding)
    np.testing.assert_allclose(out, expected.detach().numpy(), rtol=1e-10, atol=1e-10)
    dout = np.random.default_rng(1).standard_normal(out.shape)
    expected.backward(torch.from_numpy(dout))
    for ours, theirs in zip(conv_transpose2d_backward(dout, cache), (xt, wt, bt)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("Layer", [ConvTranspose2D, FastConvTranspose2D])
def test_layer_with_output_padding(Layer):
    layer = Layer(2, 3, 3, stride=2, padding=1, output_padding=1,
                  rng=np.random.default_rng(0), dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((2, 2, 3, 4))
    assert layer.forward(x).shape == (2, 3, 6, 8)  # 5 x 7 without output padding
    assert "output_padding=(1, 1)" in repr(layer)
    assert max(check_layer(layer, x, seed=0).values()) < 1e-7
    with pytest.raises(ValueError, match=r"output_padding \(AH, AW\) = \(0, 2\) must be smaller"):
        Layer(2, 3, 3, stride=2, output_padding=(0, 2))


def test_upsample_nearest_matches_pytorch_and_checks_dout():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    out, cache = upsample_nearest_forward(x, (2, 3))
    xt = torch.from_numpy(x).requires_grad_()
    expected = torch.nn.functional.interpolate(xt, scale_factor=(2, 3), mode="nearest")
    np.testing.assert_array_equal(out, expected.detach().numpy())
    dout = np.random.default_rng(1).standard_normal(out.shape)
    expected.backward(torch.from_numpy(dout))
    np.testing.assert_allclose(upsample_nearest_backward(dout, cache), xt.grad.numpy(),
                               rtol=1e-12, atol=1e-12)


def test_upsample_nearest_refuses_bad_input():
    x = np.ones((1, 2, 3, 3), dtype=np.float32)
    out, cache = upsample_nearest_forward(x, 2)
    assert out.dtype == np.float32 and out.shape == (1, 2, 6, 6)
    with pytest.raises(ValueError, match=r"dout must have shape \(N=1, C=2, SH H=6, SW W=6\)"):
        upsample_nearest_backward(np.ones((1, 2, 6, 5)), cache)
    with pytest.raises(ValueError, match="scale must be >= 1, got 0"):
        upsample_nearest_forward(x, 0)
    with pytest.raises(TypeError, match="cache must be the UpsampleCache"):
        upsample_nearest_backward(out, None)
