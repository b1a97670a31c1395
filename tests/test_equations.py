"""One test per labelled gradient equation of the book, named after its label.

``test_eq_dense_dw`` checks the equation labelled ``eq-dense-dw``: it evaluates the formula AS
WRITTEN in the chapter (index form, with ``np.einsum`` or explicit loops, not through the
package's code path) and compares it with float64 centred finite differences of the forward
formula, on random shapes. ``tests/test_chapters.py`` requires such a test for every gradient
label. Where the package implements the equation, the test also confirms that the package agrees
with the formula, which ties the book's equation to the quoted code.

Layout: shared helpers first, then one section per chapter in ``_toc.yml`` order. Authors of
later chapters append their section at the end, reusing the helpers.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnn.activations import relu_backward, relu_forward
from cnn.conv import conv2d_backward, conv2d_forward, conv_matrix
from cnn.conv_transpose import conv_transpose2d_forward
from cnn.dense import dense_backward, dense_forward
from cnn.losses import softmax_cross_entropy, weighted_softmax_cross_entropy
from cnn.pool import avgpool2d_backward, avgpool2d_forward, maxpool2d_backward, maxpool2d_forward

# A correct gradient agrees with centred differences (step 1e-6, float64) to about 1e-9;
# a wrong formula is off by order 1. The tolerance sits well between the two.
TOLERANCE = 1e-7
SEEDS = range(5)


# ---------------------------------------------------------------------------------------------
# Helpers: finite differences, written independently of cnn.gradcheck
# ---------------------------------------------------------------------------------------------


def centred_differences(f, x, h=1e-6):
    """Gradient of the scalar function ``f`` at ``x`` by centred differences, entry by entry.

    ``f`` is always called on a fresh perturbed copy, so ``x`` itself is never touched.
    """
    x = np.asarray(x, dtype=np.float64)
    grad = np.empty_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = h
        grad[index] = (f(x + step) - f(x - step)) / (2 * h)
    return grad


def max_relative_error(formula, numeric):
    """Largest entrywise error, relative to the size of the numerical gradient (or 1)."""
    scale = max(1.0, float(np.max(np.abs(numeric))))
    return float(np.max(np.abs(formula - numeric))) / scale


def assert_gradient(formula, numeric):
    assert formula.shape == numeric.shape, "a gradient has the shape of its variable"
    error = max_relative_error(formula, numeric)
    assert error < TOLERANCE, f"formula and finite differences differ: relative error {error:.1e}"


def away_from_zero(rng, shape, margin=0.1):
    """Random values with |value| >= margin, so that a centred difference never straddles 0."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(margin, 2.0, size=shape)


# ---------------------------------------------------------------------------------------------
# Chapter 1: Notation and the backward pass (book/notation.md)
# ---------------------------------------------------------------------------------------------


def neuron_loss(theta, t, lam):
    """eq-neuron-forward: L = (tanh(w x + b) - t)^2 / 2 + lam w^2 / 2, theta = (x, w, b)."""
    x, w, b = theta
    return 0.5 * (np.tanh(w * x + b) - t) ** 2 + 0.5 * lam * w**2


@pytest.mark.parametrize("seed", SEEDS)
def test_eq_neuron_backward(seed):
    rng = np.random.default_rng(seed)
    (x, w, b), t, lam = rng.standard_normal(3), rng.standard_normal(), rng.uniform(0.1, 1.0)
    s = np.tanh(w * x + b)
    ds = s - t
    dz = ds * (1 - s**2)
    db = du = dz
    formula = np.array([du * w, du * x + lam * w, db])  # (dx, dw, db); w fans out: two terms
    numeric = centred_differences(lambda theta: neuron_loss(theta, t, lam), np.array([x, w, b]))
    assert_gradient(formula, numeric)


# ---------------------------------------------------------------------------------------------
# Chapter 2: Dense layers (book/dense.md)
# ---------------------------------------------------------------------------------------------


def dense_case(seed):
    rng = np.random.default_rng(seed)
    N, D, M = rng.integers(1, 6, size=3)
    x = rng.standard_normal((N, D))
    w = rng.standard_normal((D, M))
    b = rng.standard_normal(M)
    dout = rng.standard_normal((N, M))
    return x, w, b, dout


def dense_forward_as_written(x, w, b):
    """eq-dense-forward: Y[n, m] = sum_d X[n, d] W[d, m] + b[m]."""
    return np.einsum("nd,dm->nm", x, w) + b[None, :]


def check_dense_equation(seed, position, formula):
    """Compare ``formula(x, w, dout)``, the gradient of argument ``position`` of (x, w, b), with
    centred differences of ``L = sum(dout * Y)`` (so that dL/dY = dout) and with dense_backward."""
    x, w, b, dout = dense_case(seed)
    arguments = [x, w, b]
    gradient = formula(x, w, dout)

    def loss(value):
        probe = arguments.copy()
        probe[position] = value
        return float(np.sum(dout * dense_forward_as_written(*probe)))

    assert_gradient(gradient, centred_differences(loss, arguments[position]))
    package = dense_backward(dout, dense_forward(x, w, b)[1])[position]
    np.testing.assert_allclose(package, gradient, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_eq_dense_dx(seed):
    # dX[n, d] = sum_m dY[n, m] W[d, m]
    check_dense_equation(seed, 0, lambda x, w, dout: np.einsum("nm,dm->nd", dout, w))


@pytest.mark.parametrize("seed", SEEDS)
def test_eq_dense_dw(seed):
    # dW[d, m] = sum_n X[n, d] dY[n, m]
    check_dense_equation(seed, 1, lambda x, w, dout: np.einsum("nd,nm->dm", x, dout))


@pytest.mark.parametrize("seed", SEEDS)
def test_eq_dense_db(seed):
    # db[m] = sum_n dY[n, m]
    check_dense_equation(seed, 2, lambda x, w, dout: np.einsum("nm->m", dout))


# ---------------------------------------------------------------------------------------------
# Chapter 3: Activations and the loss (book/activations.md)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_eq_relu_dx(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 5, size=rng.integers(1, 5)))  # ReLU takes any rank
    x = away_from_zero(rng, shape)
    dout = rng.standard_normal(shape)
    dx = dout * (x > 0)  # dx_i = dout_i * 1[x_i > 0]
    loss = lambda v: float(np.sum(dout * np.maximum(v, 0.0)))  # eq-relu-forward
    assert_gradient(dx, centred_differences(loss, x))
    np.testing.assert_array_equal(relu_backward(dout, relu_forward(x)[1]), dx)


def test_eq_relu_dx_subgradient_at_zero():
    """At the kink the chapter's rule picks 0, and centred differences see the mean slope 1/2."""
    x = np.array([-1.0, 0.0, 1.0])
    dx = relu_backward(np.ones(3), relu_forward(x)[1])
    np.testing.assert_array_equal(dx, [0.0, 0.0, 1.0])
    numeric = centred_differences(lambda v: float(np.sum(np.maximum(v, 0.0))), x)
    np.testing.assert_allclose(numeric, [0.0, 0.5, 1.0], atol=1e-9)


def softmax_ce_as_written(z, y):
    """eq-softmax-ce, right-hand form: mean over n of log sum_k exp(z[n, k]) - z[n, y[n]]."""
    m = z.max(axis=1, keepdims=True)
    logsumexp = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]  # eq-logsumexp
    return float(np.mean(logsumexp - z[np.arange(len(y)), y]))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_eq_softmax_ce_dz(seed, scale):
    rng = np.random.default_rng(seed)
    N, K = rng.integers(1, 6), rng.integers(2, 6)
    z = scale * rng.standard_normal((N, K))
    y = rng.integers(0, K, size=N)
    exp = np.exp(z - z.max(axis=1, keepdims=True))
    P = exp / exp.sum(axis=1, keepdims=True)  # eq-softmax
    Y = np.zeros((N, K))
    Y[np.arange(N), y] = 1.0
    dz = (P - Y) / N
    assert_gradient(dz, centred_differences(lambda v: softmax_ce_as_written(v, y), z))
    loss, dlogits = softmax_cross_entropy(z, y)
    assert loss == pytest.approx(softmax_ce_as_written(z, y), rel=1e-12)
    np.testing.assert_allclose(dlogits, dz, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# Chapters 5 and 6: Convolution, backward (book/conv_backward.md) and Pooling (book/pooling.md)
# Each formula is evaluated with explicit loops over the indices of its equation (np.einsum only
# for the channel sums), never through the package's backward code, and compared with centred
# differences of the package's forward pass on the loss L = sum(dout * out). Configurations mix
# fixed edge cases with random ones: strides 1-3, paddings 0-2, non-square inputs and kernels,
# strides that do not divide H + 2P - KH.
# ---------------------------------------------------------------------------------------------

CONV_EDGE_CASES = [
    # (N, C, H, W), (F, KH, KW), stride (S_H, S_W), padding (P_H, P_W)
    ((2, 3, 5, 5), (2, 3, 3), (1, 1), (0, 0)),
    ((1, 2, 7, 6), (3, 3, 2), (2, 2), (1, 1)),
    ((2, 1, 8, 5), (2, 2, 3), (3, 1), (2, 0)),
    ((1, 2, 4, 9), (2, 4, 1), (1, 3), (0, 2)),
    ((1, 1, 3, 4), (1, 4, 4), (3, 2), (2, 1)),
    # Many input channels: conv2d_backward forms dx offset by offset (dx_by_offset) when the
    # output grid covers the input, as in the first case, and with col2im when not.
    ((2, 8, 5, 4), (2, 3, 3), (2, 1), (1, 1)),
    ((1, 16, 5, 4), (2, 3, 2), (2, 1), (1, 0)),
]


def random_conv_config(seed):
    """Random shapes with strides 1-3 and paddings 0-2, chosen independently for the two axes."""
    rng = np.random.default_rng(seed)
    N, C, F = (int(v) for v in rng.integers(1, 4, size=3))
    KH, KW = (int(v) for v in rng.integers(1, 5, size=2))
    stride = tuple(int(v) for v in rng.integers(1, 4, size=2))
    padding = tuple(int(v) for v in rng.integers(0, 3, size=2))
    H = int(rng.integers(max(1, KH - 2 * padding[0]), 9))
    W = int(rng.integers(max(1, KW - 2 * padding[1]), 9))
    return (N, C, H, W), (F, KH, KW), stride, padding


CONV_CASES = CONV_EDGE_CASES + [random_conv_config(seed) for seed in SEEDS]


def conv_case(config, seed):
    """x, w, b, an upstream gradient dout of the output's shape, stride and padding."""
    (N, C, H, W), (F, KH, KW), stride, padding = config
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((F, C, KH, KW))
    b = rng.standard_normal(F)
    out, _ = conv2d_forward(x, w, b, stride=stride, padding=padding)
    return x, w, b, rng.standard_normal(out.shape), stride, padding


def assert_conv_gradient(formula, wrt, x, w, b, dout, stride, padding):
    """Compare a formula for the gradient with respect to ``wrt`` ("x", "w" or "b") with centred
    differences of L = sum(dout * out), and with the package's backward pass (the quoted code)."""
    arrays = {"x": x, "w": w, "b": b}

    def loss(value):
        args = {**arrays, wrt: value}
        out, _ = conv2d_forward(args["x"], args["w"], args["b"], stride=stride, padding=padding)
        return float(np.sum(dout * out))

    assert_gradient(formula, centred_differences(loss, arrays[wrt]))
    _, cache = conv2d_forward(x, w, b, stride=stride, padding=padding)
    package = dict(zip("xwb", conv2d_backward(dout, cache)))[wrt]
    np.testing.assert_allclose(package, formula, rtol=1e-10, atol=1e-12)


def padded_as_written(x, padding):
    """x-tilde (book/conv_forward.md): x[n, c, u - P_H, v - P_W] inside the frame, 0 outside."""
    (N, C, H, W), (P_H, P_W) = x.shape, padding
    x_tilde = np.zeros((N, C, H + 2 * P_H, W + 2 * P_W))
    for u in range(H + 2 * P_H):
        for v in range(W + 2 * P_W):
            if P_H <= u < H + P_H and P_W <= v < W + P_W:
                x_tilde[:, :, u, v] = x[:, :, u - P_H, v - P_W]
    return x_tilde


@pytest.mark.parametrize("config", CONV_CASES)
def test_eq_conv_db(config):
    x, w, b, dout, stride, padding = conv_case(config, seed=1)
    N, F, H_out, W_out = dout.shape
    db = np.zeros(F)  # db[f] = sum over n, i, j of dout[n, f, i, j]
    for f in range(F):
        for n in range(N):
            for i in range(H_out):
                for j in range(W_out):
                    db[f] += dout[n, f, i, j]
    assert_conv_gradient(db, "b", x, w, b, dout, stride, padding)


@pytest.mark.parametrize("config", CONV_CASES)
def test_eq_conv_dw(config):
    x, w, b, dout, stride, padding = conv_case(config, seed=2)
    (S_H, S_W), (N, F, H_out, W_out), (KH, KW) = stride, dout.shape, w.shape[2:]
    x_tilde = padded_as_written(x, padding)
    # dw[f, c, p, q] = sum over n, i, j of dout[n, f, i, j] x_tilde[n, c, i S + p, j S + q]
    dw = np.zeros_like(w)
    for p in range(KH):
        for q in range(KW):
            for i in range(H_out):
                for j in range(W_out):
                    dw[:, :, p, q] += np.einsum(
                        "nf,nc->fc", dout[:, :, i, j], x_tilde[:, :, i * S_H + p, j * S_W + q])
    assert_conv_gradient(dw, "w", x, w, b, dout, stride, padding)


@pytest.mark.parametrize("config", CONV_CASES)
def test_eq_conv_dx(config):
    x, w, b, dout, stride, padding = conv_case(config, seed=3)
    (S_H, S_W), (P_H, P_W) = stride, padding
    (N, F, H_out, W_out), (C, KH, KW), (H, W) = dout.shape, w.shape[1:], x.shape[2:]
    # eq-conv-dout-dilated: dout[n, f, i, j] at (i S + KH - 1, j S + KW - 1), zeros elsewhere, as
    # far as eq-conv-dx reads.
    d_bar = np.zeros((N, F, H + 2 * P_H + KH - 1, W + 2 * P_W + KW - 1))
    for i in range(H_out):
        for j in range(W_out):
            d_bar[:, :, i * S_H + KH - 1, j * S_W + KW - 1] = dout[:, :, i, j]
    # eq-conv-dx: full convolution of d_bar with the transposed, flipped kernel, cropped by P.
    dx = np.zeros_like(x)
    for r in range(H):
        for s in range(W):
            for p in range(KH):
                for q in range(KW):
                    dx[:, :, r, s] += np.einsum(
                        "nf,fc->nc", d_bar[:, :, r + P_H + p, s + P_W + q],
                        w[:, :, KH - 1 - p, KW - 1 - q])
    assert_conv_gradient(dx, "x", x, w, b, dout, stride, padding)


def conv_matrix_as_written(w, input_shape, stride, padding):
    """eq-conv-matrix: M[(f, i, j), (c, r, s)] = w[f, c, r + P_H - S_H i, s + P_W - S_W j] when
    that offset lies in the kernel, else 0; one row per output pixel, one column per input pixel."""
    (F, C, KH, KW), (_, H, W), (S_H, S_W), (P_H, P_W) = w.shape, input_shape, stride, padding
    H_out, W_out = (H + 2 * P_H - KH) // S_H + 1, (W + 2 * P_W - KW) // S_W + 1
    rows, cols = list(np.ndindex(F, H_out, W_out)), list(np.ndindex(C, H, W))
    M = np.zeros((len(rows), len(cols)))
    for a, (f, i, j) in enumerate(rows):
        for k, (c, r, s) in enumerate(cols):
            p, q = r + P_H - S_H * i, s + P_W - S_W * j
            if 0 <= p < KH and 0 <= q < KW:
                M[a, k] = w[f, c, p, q]
    return M


@pytest.mark.parametrize("config", CONV_CASES)
def test_eq_conv_matrix(config):
    """out_n = M x_n + b for every sample, and the package's conv_matrix is that M."""
    x, w, b, _, stride, padding = conv_case(config, seed=4)
    M = conv_matrix_as_written(w, x.shape[1:], stride, padding)
    out, _ = conv2d_forward(x, w, b, stride=stride, padding=padding)
    N, F = out.shape[:2]
    by_matrix = (M @ x.reshape(N, -1).T).T + np.repeat(b, out[0, 0].size)
    np.testing.assert_allclose(by_matrix, out.reshape(N, -1), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(conv_matrix(w, x.shape[1:], stride, padding), M)


@pytest.mark.parametrize("config", CONV_CASES)
def test_eq_conv_matrix_dx(config):
    """dx_n = M^T dout_n (eq-conv-matrix-dx); the transposed convolution computes that product."""
    x, w, b, dout, stride, padding = conv_case(config, seed=5)
    N = x.shape[0]
    M = conv_matrix_as_written(w, x.shape[1:], stride, padding)
    dx = (M.T @ dout.reshape(N, -1).T).T.reshape(x.shape)
    assert_conv_gradient(dx, "x", x, w, b, dout, stride, padding)
    # The transposed convolution with the same kernels is M^T: its output padding picks the
    # input size among the S sizes with this output size (the remainder of eq-conv-out-size).
    output_padding = tuple((n + 2 * p - k) % st for n, p, k, st in
                           zip(x.shape[2:], padding, w.shape[2:], stride))
    convt, _ = conv_transpose2d_forward(dout, w, np.zeros(w.shape[1]), stride=stride,
                                        padding=padding, output_padding=output_padding)
    np.testing.assert_allclose(convt, dx, rtol=1e-12, atol=1e-12)


def shifted_down_right(x, a, b):
    """tau_{a,b} x on a finite image: x[r - a, s - b], zeros where that leaves the image."""
    out = np.zeros_like(x)
    out[:, :, a:, b:] = x[:, :, :x.shape[2] - a, :x.shape[3] - b]
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_eq_conv_equivariance(seed):
    """conv(tau x) = tau conv(x) with stride 1, at every output pixel whose window and whose
    shifted-back window both lie inside the unpadded image; not with stride 2 or max pooling."""
    rng = np.random.default_rng(seed)
    (a, b), K = rng.integers(1, 3, size=2), int(rng.integers(2, 4))
    x = rng.standard_normal((2, 3, 11, 12))
    w = rng.standard_normal((4, 3, K, K))
    zero = np.zeros(4)
    out, _ = conv2d_forward(x, w, zero)
    out_shifted, _ = conv2d_forward(shifted_down_right(x, a, b), w, zero)
    # Output (i, j) of the shifted image reads rows i .. i + K - 1 of tau x = rows i - a .. of x.
    np.testing.assert_allclose(out_shifted[:, :, a:, b:], out[:, :, :-a, :-b], rtol=1e-12,
                               atol=1e-12)
    # Stride 2 and 2x2 max pooling: a one-pixel shift of the input changes the output by more
    # than any whole-pixel shift of it.
    one, two = shifted_down_right(x, 1, 1), shifted_down_right(x, 2, 2)
    for forward in (lambda v: conv2d_forward(v, w, zero, stride=2)[0],
                    lambda v: maxpool2d_forward(v, (2, 2), (2, 2))[0]):
        before, after = forward(x), forward(one)
        # A shift by the stride is still one output pixel: equivariance to the coarser grid.
        np.testing.assert_allclose(forward(two)[:, :, 1:, 1:], before[:, :, :-1, :-1],
                                   rtol=1e-12, atol=1e-12)
        for u in range(3):
            for v in range(3):
                inner = after[:, :, u + 1:, v + 1:]
                gap = np.abs(inner - before[:, :, 1:before.shape[2] - u, 1:before.shape[3] - v])
                assert gap.max() > 0.1, (u, v)


POOL_CASES = [
    # (N, C, H, W), (KH, KW), stride (None: the kernel size, windows tile the input)
    ((2, 2, 4, 4), (2, 2), None),
    ((1, 2, 7, 6), (3, 3), (2, 2)),
    ((2, 1, 5, 7), (3, 2), (1, 2)),
    ((1, 3, 8, 5), (2, 3), (3, 1)),
    ((1, 1, 6, 6), (3, 3), (1, 1)),
    ((1, 2, 9, 4), (4, 1), (3, 3)),
]


def pool_case(x_shape, seed):
    """Input whose values are a shuffled grid 0, 1, 2, ... plus jitter: every window maximum is
    unique by a margin far larger than the finite-difference step (no ties, no near-ties)."""
    rng = np.random.default_rng(seed)
    grid = rng.permutation(int(np.prod(x_shape))).reshape(x_shape).astype(np.float64)
    return grid + 0.01 * rng.standard_normal(x_shape), rng


def assert_pool_gradient(formula, forward, backward, x, dout, kernel_size, stride):
    """Compare a formula for dx with centred differences of L = sum(dout * out) and with the
    package's backward pass."""

    def loss(value):
        return float(np.sum(dout * forward(value, kernel_size=kernel_size, stride=stride)[0]))

    assert_gradient(formula, centred_differences(loss, x))
    _, cache = forward(x, kernel_size=kernel_size, stride=stride)
    np.testing.assert_allclose(backward(dout, cache), formula, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("x_shape, kernel_size, stride", POOL_CASES)
def test_eq_maxpool_dx(x_shape, kernel_size, stride):
    x, rng = pool_case(x_shape, seed=4)
    out, _ = maxpool2d_forward(x, kernel_size=kernel_size, stride=stride)
    dout = rng.standard_normal(out.shape)
    (KH, KW), (S_H, S_W), (N, C, H_out, W_out) = kernel_size, stride or kernel_size, out.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    p_star, q_star = 0, 0  # the first maximum of the window in row-major order
                    for p in range(KH):
                        for q in range(KW):
                            best = x[n, c, i * S_H + p_star, j * S_W + q_star]
                            if x[n, c, i * S_H + p, j * S_W + q] > best:
                                p_star, q_star = p, q
                    dx[n, c, i * S_H + p_star, j * S_W + q_star] += dout[n, c, i, j]
    assert_pool_gradient(dx, maxpool2d_forward, maxpool2d_backward, x, dout, kernel_size, stride)


@pytest.mark.parametrize("x_shape, kernel_size, stride", POOL_CASES)
def test_eq_avgpool_dx(x_shape, kernel_size, stride):
    x, rng = pool_case(x_shape, seed=5)
    out, _ = avgpool2d_forward(x, kernel_size=kernel_size, stride=stride)
    dout = rng.standard_normal(out.shape)
    (KH, KW), (S_H, S_W) = kernel_size, stride or kernel_size
    (H, W), (H_out, W_out) = x.shape[2:], out.shape[2:]
    dx = np.zeros_like(x)
    for r in range(H):
        for s in range(W):
            for i in range(H_out):
                for j in range(W_out):
                    if 0 <= r - i * S_H < KH and 0 <= s - j * S_W < KW:
                        dx[:, :, r, s] += dout[:, :, i, j] / (KH * KW)
    assert_pool_gradient(dx, avgpool2d_forward, avgpool2d_backward, x, dout, kernel_size, stride)


# ---------------------------------------------------------------------------------------------
# Chapter 10: Case study (book/mammography.md): the class-weighted cross-entropy.


def weighted_ce_as_written(z, y, omega):
    """eq-weighted-ce: sum_n omega[y_n] (log sum_k exp(z[n, k]) - z[n, y_n]) / sum_n omega[y_n]."""
    m = z.max(axis=1, keepdims=True)
    logsumexp = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
    w = omega[y]
    return float(np.sum(w * (logsumexp - z[np.arange(len(y)), y])) / np.sum(w))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_eq_weighted_ce_dz(seed, scale):
    rng = np.random.default_rng(seed)
    N, K = rng.integers(1, 7), rng.integers(2, 6)
    z = scale * rng.standard_normal((N, K))
    y = rng.integers(0, K, size=N)
    omega = rng.uniform(0.1, 5.0, size=K)
    omega[rng.integers(0, K)] = 0.0  # a class of weight 0 contributes nothing
    if omega[y].sum() == 0:
        omega[y[0]] = 2.0
    exp = np.exp(z - z.max(axis=1, keepdims=True))
    P = exp / exp.sum(axis=1, keepdims=True)
    Y = np.zeros((N, K))
    Y[np.arange(N), y] = 1.0
    dz = omega[y][:, None] * (P - Y) / omega[y].sum()
    assert_gradient(dz, centred_differences(lambda v: weighted_ce_as_written(v, y, omega), z))
    loss, dlogits = weighted_softmax_cross_entropy(z, y, omega)
    assert loss == pytest.approx(weighted_ce_as_written(z, y, omega), rel=1e-12)
    np.testing.assert_allclose(dlogits, dz, atol=1e-15)
    # Equal weights give back eq-softmax-ce-dz, whatever their common value.
    same = weighted_softmax_cross_entropy(z, y, np.full(K, 3.7))
    np.testing.assert_allclose(same[1], softmax_cross_entropy(z, y)[1], atol=1e-15)


# Part "Deeper networks": Initialisation (book/initialisation.md), Batch normalisation
# (book/batchnorm.md), Regularisation (book/regularisation.md), A deeper CNN (book/deeper_cnn.md)
# ---------------------------------------------------------------------------------------------

from cnn.activations import sigmoid_backward, sigmoid_forward, tanh_backward, tanh_forward  # noqa: E402
from cnn.conv_transpose import (  # noqa: E402
    conv_transpose2d_backward,
    conv_transpose2d_forward,
    conv_transpose2d_output_size,
    upsample_nearest_backward,
    upsample_nearest_forward,
)
from cnn.norm import batchnorm_backward, batchnorm_backward_naive, batchnorm_forward  # noqa: E402
from cnn.optim import SGD  # noqa: E402
from cnn.pool import global_avgpool2d_backward, global_avgpool2d_forward  # noqa: E402
from cnn.regularization import dropout_backward, dropout_forward  # noqa: E402


@pytest.mark.parametrize("seed", SEEDS)
def test_eq_sigmoid_dx(seed):
    rng = np.random.default_rng(seed)
    x, dout = 3 * rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    sigma = lambda v: 1 / (1 + np.exp(-v))  # eq-sigmoid
    dx = dout * sigma(x) * (1 - sigma(x))
    assert_gradient(dx, centred_differences(lambda v: float(np.sum(dout * sigma(v))), x))
    np.testing.assert_allclose(sigmoid_backward(dout, sigmoid_forward(x)[1]), dx, rtol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_eq_tanh_dx(seed):
    rng = np.random.default_rng(seed)
    x, dout = 3 * rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    dx = dout * (1 - np.tanh(x) ** 2)
    assert_gradient(dx, centred_differences(lambda v: float(np.sum(dout * np.tanh(v))), x))
    np.testing.assert_allclose(tanh_backward(dout, tanh_forward(x)[1]), dx, rtol=1e-12)


# Batch normalisation: the forward pass as written, eq-bn-mean to eq-bn-forward, with every
# statistic taken over all axes except the channel axis 1: (N, C) and (N, C, H, W).
BN_SHAPES = [(6, 3), (4, 2, 3, 2), (2, 3, 1, 4), (5, 1)]
BN_EPS = 1e-5


def bn_case(shape, seed):
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = 2 * rng.standard_normal(shape) + rng.standard_normal((1, C) + (1,) * (len(shape) - 2))
    return x, rng.standard_normal(C), rng.standard_normal(C), rng.standard_normal(shape)


def per_channel(v, ndim):
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def bn_axes(x):
    return (0,) + tuple(range(2, x.ndim))


def bn_from_statistics(x, gamma, beta, mu, var):
    """eq-bn-xhat and eq-bn-forward with the statistics given as arguments."""
    x_hat = (x - per_channel(mu, x.ndim)) / np.sqrt(per_channel(var, x.ndim) + BN_EPS)
    return per_channel(gamma, x.ndim) * x_hat + per_channel(beta, x.ndim), x_hat


def bn_as_written(x, gamma, beta):
    mu = x.mean(axis=bn_axes(x))  # eq-bn-mean
    var = ((x - per_channel(mu, x.ndim)) ** 2).mean(axis=bn_axes(x))  # eq-bn-var (biased)
    out, x_hat = bn_from_statistics(x, gamma, beta, mu, var)
    return out, x_hat, mu, var


@pytest.mark.parametrize("shape", BN_SHAPES)
def test_eq_bn_dbeta(shape):
    x, gamma, beta, dout = bn_case(shape, 1)
    dbeta = dout.sum(axis=bn_axes(x))
    numeric = centred_differences(lambda v: float(np.sum(dout * bn_as_written(x, gamma, v)[0])), beta)
    assert_gradient(dbeta, numeric)
    np.testing.assert_allclose(batchnorm_backward(dout, batchnorm_forward(x, gamma, beta)[1])[2], dbeta,
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", BN_SHAPES)
def test_eq_bn_dgamma(shape):
    x, gamma, beta, dout = bn_case(shape, 2)
    x_hat = bn_as_written(x, gamma, beta)[1]
    dgamma = (dout * x_hat).sum(axis=bn_axes(x))
    numeric = centred_differences(lambda v: float(np.sum(dout * bn_as_written(x, v, beta)[0])), gamma)
    assert_gradient(dgamma, numeric)
    np.testing.assert_allclose(batchnorm_backward(dout, batchnorm_forward(x, gamma, beta)[1])[1], dgamma,
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", BN_SHAPES)
def test_eq_bn_dxhat(shape):
    x, gamma, beta, dout = bn_case(shape, 3)
    x_hat = bn_as_written(x, gamma, beta)[1]
    dx_hat = dout * per_channel(gamma, x.ndim)
    loss = lambda v: float(np.sum(dout * (per_channel(gamma, x.ndim) * v + per_channel(beta, x.ndim))))
    assert_gradient(dx_hat, centred_differences(loss, x_hat))


@pytest.mark.parametrize("shape", BN_SHAPES)
def test_eq_bn_dvar(shape):
    """The partial derivative for the variance, with the mean held fixed (a node of the graph)."""
    x, gamma, beta, dout = bn_case(shape, 4)
    _, _, mu, var = bn_as_written(x, gamma, beta)
    dx_hat = dout * per_channel(gamma, x.ndim)
    centred = x - per_channel(mu, x.ndim)
    dvar = -0.5 * (dx_hat * centred).sum(axis=bn_axes(x)) * (var + BN_EPS) ** -1.5
    loss = lambda v: float(np.sum(dout * bn_from_statistics(x, gamma, beta, mu, v)[0]))
    assert_gradient(dvar, centred_differences(loss, var))


@pytest.mark.parametrize("shape", BN_SHAPES)
def test_eq_bn_dmu(shape):
    """The derivative for the mean, through x_hat directly and through the variance."""
    x, gamma, beta, dout = bn_case(shape, 5)
    _, _, mu, var = bn_as_written(x, gamma, beta)
    m = x.size // x.shape[1]
    dx_hat = dout * per_channel(gamma, x.ndim)
    centred = x - per_channel(mu, x.ndim)
    dvar = -0.5 * (dx_hat * centred).sum(axis=bn_axes(x)) * (var + BN_EPS) ** -1.5
    dmu = -dx_hat.sum(axis=bn_axes(x)) / np.sqrt(var + BN_EPS) + dvar * (-2 / m) * centred.sum(axis=bn_axes(x))

    def loss(mu_value):
        variance = ((x - per_channel(mu_value, x.ndim)) ** 2).mean(axis=bn_axes(x))
        return float(np.sum(dout * bn_from_statistics(x, gamma, beta, mu_value, variance)[0]))

    assert_gradient(dmu, centred_differences(loss, mu))


@pytest.mark.parametrize("shape", BN_SHAPES)
def test_eq_bn_dx_paths(shape):
    x, gamma, beta, dout = bn_case(shape, 6)
    _, _, mu, var = bn_as_written(x, gamma, beta)
    m = x.size // x.shape[1]
    dx_hat = dout * per_channel(gamma, x.ndim)
    centred = x - per_channel(mu, x.ndim)
    dvar = -0.5 * (dx_hat * centred).sum(axis=bn_axes(x)) * (var + BN_EPS) ** -1.5
    dmu = -dx_hat.sum(axis=bn_axes(x)) / np.sqrt(var + BN_EPS) + dvar * (-2 / m) * centred.sum(axis=bn_axes(x))
    dx = (dx_hat / np.sqrt(per_channel(var, x.ndim) + BN_EPS)
          + per_channel(dvar, x.ndim) * 2 * centred / m + per_channel(dmu, x.ndim) / m)
    numeric = centred_differences(lambda v: float(np.sum(dout * bn_as_written(v, gamma, beta)[0])), x)
    assert_gradient(dx, numeric)
    naive = batchnorm_backward_naive(dout, batchnorm_forward(x, gamma, beta, eps=BN_EPS)[1])[0]
    np.testing.assert_allclose(naive, dx, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("shape", BN_SHAPES)
def test_eq_bn_dx(shape):
    x, gamma, beta, dout = bn_case(shape, 7)
    _, x_hat, _, var = bn_as_written(x, gamma, beta)
    m, axes = x.size // x.shape[1], bn_axes(x)
    # dx = gamma / (m sqrt(var + eps)) * (m dout - sum dout - x_hat sum(dout x_hat))
    factor = per_channel(gamma / (m * np.sqrt(var + BN_EPS)), x.ndim)
    dx = factor * (m * dout - per_channel(dout.sum(axis=axes), x.ndim)
                   - x_hat * per_channel((dout * x_hat).sum(axis=axes), x.ndim))
    numeric = centred_differences(lambda v: float(np.sum(dout * bn_as_written(v, gamma, beta)[0])), x)
    assert_gradient(dx, numeric)
    package = batchnorm_backward(dout, batchnorm_forward(x, gamma, beta, eps=BN_EPS)[1])[0]
    np.testing.assert_allclose(package, dx, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("seed", SEEDS)
def test_eq_l2_dw(seed):
    """The gradient of the penalised loss of a dense layer, and SGD's weight_decay adds it."""
    x, w, b, dout = dense_case(seed)
    lam = 0.3
    dw = np.einsum("nd,nm->dm", x, dout) + lam * w  # dL/dW + lambda W

    def penalised(value):
        return float(np.sum(dout * dense_forward_as_written(x, value, b))) + 0.5 * lam * np.sum(value**2)

    assert_gradient(dw, centred_differences(penalised, w))
    params = {"w": w.copy()}
    SGD(lr=0.1, weight_decay=lam).step(params, {"w": np.einsum("nd,nm->dm", x, dout)})
    np.testing.assert_allclose(params["w"], w - 0.1 * dw, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 0.9])
def test_eq_dropout_dx(p):
    rng = np.random.default_rng(int(10 * p))
    x, dout = rng.standard_normal((4, 3, 2)), rng.standard_normal((4, 3, 2))
    mask = np.random.default_rng(99).random(x.shape, dtype=np.float32) >= p  # as dropout_forward draws
    dx = dout * mask / (1 - p)
    loss = lambda v: float(np.sum(dout * v * mask / (1 - p)))  # eq-dropout-forward, mask fixed
    assert_gradient(dx, centred_differences(loss, x))
    out, cache = dropout_forward(x, p, np.random.default_rng(99))
    np.testing.assert_array_equal(cache.mask, mask)
    np.testing.assert_allclose(out, x * mask / (1 - p), rtol=1e-12)
    np.testing.assert_allclose(dropout_backward(dout, cache), dx, rtol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 1, 1, 1), (3, 2, 1, 6)])
def test_eq_gap_dx(shape):
    rng = np.random.default_rng(sum(shape))
    x, dout = rng.standard_normal(shape), rng.standard_normal(shape[:2])
    H, W = shape[2:]
    dx = np.zeros(shape)
    for r in range(H):
        for s in range(W):
            dx[:, :, r, s] = dout / (H * W)  # dx[n, c, r, s] = dout[n, c] / (H W)
    loss = lambda v: float(np.sum(dout * v.mean(axis=(2, 3))))  # eq-gap-forward
    assert_gradient(dx, centred_differences(loss, x))
    np.testing.assert_allclose(global_avgpool2d_backward(dout, global_avgpool2d_forward(x)[1]), dx,
                               rtol=1e-12)


# Transposed convolution: w has shape (C_in, C_out, KH, KW); eq-convt-forward scatters
# x[n, c, i, j] w[c] onto the uncropped output at rows S i .. S i + KH - 1, then crops P; the
# output padding A adds rows and columns at the bottom and right (PyTorch's output_padding).
CONVT_CASES = [
    # (N, C_in, H, W), (C_out, KH, KW), stride, padding, output padding
    ((2, 3, 3, 4), (2, 3, 3), (1, 1), (0, 0), (0, 0)),
    ((1, 2, 4, 3), (3, 4, 4), (2, 2), (1, 1), (0, 0)),
    ((2, 2, 2, 5), (1, 3, 2), (3, 1), (1, 0), (0, 0)),
    ((1, 1, 3, 3), (2, 2, 2), (2, 2), (0, 0), (0, 0)),
    ((1, 3, 2, 2), (2, 5, 3), (1, 2), (2, 1), (0, 0)),
    ((2, 2, 3, 2), (2, 3, 3), (2, 2), (1, 1), (1, 1)),
    ((1, 2, 2, 3), (3, 3, 2), (3, 2), (0, 2), (2, 0)),
    ((1, 1, 2, 2), (1, 2, 3), (3, 3), (2, 1), (1, 2)),
]


def convt_case(config, seed):
    (N, C_in, H, W), (C_out, KH, KW), stride, padding, output_padding = config
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C_in, H, W))
    w = rng.standard_normal((C_in, C_out, KH, KW))
    b = rng.standard_normal(C_out)
    H_out, W_out = conv_transpose2d_output_size((H, W), (KH, KW), stride, padding, output_padding)
    dout = rng.standard_normal((N, C_out, H_out, W_out))
    return x, w, b, dout, stride, padding, output_padding


def convt_forward_as_written(x, w, b, stride, padding, output_padding):
    """eq-convt-forward: out[n, o, r, s] = b[o] + sum of x[n, c, i, j] w[c, o, p, q] over the
    (c, i, j, p, q) with S_H i + p = r + P_H and S_W j + q = s + P_W."""
    (N, C_in, H, W), (_, C_out, KH, KW), (S_H, S_W), (P_H, P_W) = x.shape, w.shape, stride, padding
    A_H, A_W = output_padding
    # eq-convt-out-size
    H_out, W_out = (H - 1) * S_H - 2 * P_H + KH + A_H, (W - 1) * S_W - 2 * P_W + KW + A_W
    out = np.zeros((N, C_out, H_out, W_out)) + b[None, :, None, None]
    for i in range(H):
        for j in range(W):
            for p in range(KH):
                for q in range(KW):
                    r, s = S_H * i + p - P_H, S_W * j + q - P_W
                    if 0 <= r < H_out and 0 <= s < W_out:
                        out[:, :, r, s] += np.einsum("nc,co->no", x[:, :, i, j], w[:, :, p, q])
    return out


def dout_padded_as_written(dout, padding):
    """dout-tilde: dout with P zero rows and columns on each side (the uncropped output's size)."""
    (P_H, P_W), (N, C, H, W) = padding, dout.shape
    padded = np.zeros((N, C, H + 2 * P_H, W + 2 * P_W))
    padded[:, :, P_H:P_H + H, P_W:P_W + W] = dout
    return padded


def assert_convt_gradient(formula, wrt, x, w, b, dout, stride, padding, output_padding):
    arrays = {"x": x, "w": w, "b": b}

    def loss(value):
        args = {**arrays, wrt: value}
        out = convt_forward_as_written(args["x"], args["w"], args["b"], stride, padding, output_padding)
        return float(np.sum(dout * out))

    assert_gradient(formula, centred_differences(loss, arrays[wrt]))
    _, cache = conv_transpose2d_forward(x, w, b, stride=stride, padding=padding,
                                        output_padding=output_padding)
    package = dict(zip("xwb", conv_transpose2d_backward(dout, cache)))[wrt]
    np.testing.assert_allclose(package, formula, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("config", CONVT_CASES)
def test_eq_convt_forward_and_out_size(config):
    x, w, b, _, stride, padding, output_padding = convt_case(config, 0)
    out, _ = conv_transpose2d_forward(x, w, b, stride=stride, padding=padding,
                                      output_padding=output_padding)
    expected = convt_forward_as_written(x, w, b, stride, padding, output_padding)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("config", CONVT_CASES)
def test_eq_convt_dx(config):
    x, w, b, dout, stride, padding, output_padding = convt_case(config, 1)
    (S_H, S_W), (N, C_in, H, W), (KH, KW) = stride, x.shape, w.shape[2:]
    d_tilde = dout_padded_as_written(dout, padding)
    # dx[n, c, i, j] = sum over o, p, q of d_tilde[n, o, S i + p, S j + q] w[c, o, p, q]
    dx = np.zeros_like(x)
    for i in range(H):
        for j in range(W):
            for p in range(KH):
                for q in range(KW):
                    dx[:, :, i, j] += np.einsum("no,co->nc", d_tilde[:, :, S_H * i + p, S_W * j + q],
                                                w[:, :, p, q])
    assert_convt_gradient(dx, "x", x, w, b, dout, stride, padding, output_padding)


@pytest.mark.parametrize("config", CONVT_CASES)
def test_eq_convt_dw(config):
    x, w, b, dout, stride, padding, output_padding = convt_case(config, 2)
    (S_H, S_W), (N, C_in, H, W), (KH, KW) = stride, x.shape, w.shape[2:]
    d_tilde = dout_padded_as_written(dout, padding)
    # dw[c, o, p, q] = sum over n, i, j of x[n, c, i, j] d_tilde[n, o, S i + p, S j + q]
    dw = np.zeros_like(w)
    for p in range(KH):
        for q in range(KW):
            for i in range(H):
                for j in range(W):
                    dw[:, :, p, q] += np.einsum("nc,no->co", x[:, :, i, j],
                                                d_tilde[:, :, S_H * i + p, S_W * j + q])
    assert_convt_gradient(dw, "w", x, w, b, dout, stride, padding, output_padding)


@pytest.mark.parametrize("config", CONVT_CASES)
def test_eq_convt_db(config):
    x, w, b, dout, stride, padding, output_padding = convt_case(config, 3)
    db = dout.sum(axis=(0, 2, 3))  # db[o] = sum over n, r, s of dout[n, o, r, s]
    assert_convt_gradient(db, "b", x, w, b, dout, stride, padding, output_padding)


@pytest.mark.parametrize("config", CONVT_CASES)
def test_eq_convt_adjoint(config):
    """<conv2d(y; w), x> = <y, conv_transpose2d(x; w)> for every x and y (bias 0)."""
    x, w, _, y, stride, padding, output_padding = convt_case(config, 4)
    out, _ = conv_transpose2d_forward(x, w, np.zeros(w.shape[1]), stride=stride, padding=padding,
                                      output_padding=output_padding)
    conv, _ = conv2d_forward(y, w, np.zeros(w.shape[0]), stride=stride, padding=padding)
    assert conv.shape == x.shape
    assert np.sum(conv * x) == pytest.approx(np.sum(y * out), rel=1e-12)


# Nearest-neighbour upsampling by (S_H, S_W), the first half of a resize-convolution.
UPSAMPLE_CASES = [((2, 3, 3, 4), (2, 2)), ((1, 2, 2, 3), (3, 1)), ((1, 1, 1, 2), (1, 4))]


def upsample_as_written(x, scale):
    """eq-upsample-forward: out[n, c, r, s] = x[n, c, r // S_H, s // S_W]."""
    (N, C, H, W), (S_H, S_W) = x.shape, scale
    out = np.zeros((N, C, S_H * H, S_W * W))
    for r in range(S_H * H):
        for s in range(S_W * W):
            out[:, :, r, s] = x[:, :, r // S_H, s // S_W]
    return out


@pytest.mark.parametrize("shape, scale", UPSAMPLE_CASES)
def test_eq_upsample_forward(shape, scale):
    x = np.random.default_rng(sum(shape)).standard_normal(shape)
    np.testing.assert_array_equal(upsample_nearest_forward(x, scale)[0],
                                  upsample_as_written(x, scale))


@pytest.mark.parametrize("shape, scale", UPSAMPLE_CASES)
def test_eq_upsample_dx(shape, scale):
    rng = np.random.default_rng(sum(shape) + 1)
    x = rng.standard_normal(shape)
    (S_H, S_W), (N, C, H, W) = scale, shape
    dout = rng.standard_normal((N, C, S_H * H, S_W * W))
    # dx[n, c, i, j] = sum over a < S_H, b < S_W of dout[n, c, S_H i + a, S_W j + b]
    dx = np.zeros_like(x)
    for i in range(H):
        for j in range(W):
            for a in range(S_H):
                for b in range(S_W):
                    dx[:, :, i, j] += dout[:, :, S_H * i + a, S_W * j + b]
    assert_gradient(dx, centred_differences(
        lambda v: float(np.sum(dout * upsample_as_written(v, scale))), x))
    _, cache = upsample_nearest_forward(x, scale)
    np.testing.assert_allclose(upsample_nearest_backward(dout, cache), dx, rtol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_eq_var_backward(seed):
    """Var[dx_d] = M sigma_w^2 Var[dout]: the backward pass of a dense layer (eq-dense-dx)
    adds M terms, so it scales the gradient's variance by the fan-out times sigma_w^2."""
    rng = np.random.default_rng(seed)
    N, D, M, sigma_w, sigma_dout = 4000, 30, 50, 0.2, 1.5
    w = sigma_w * rng.standard_normal((D, M))
    dout = sigma_dout * rng.standard_normal((N, M))
    _, cache = dense_forward(np.zeros((N, D)), w, np.zeros(M))
    dx = dense_backward(dout, cache)[0]
    predicted = M * sigma_w**2 * sigma_dout**2
    # Over 4000 x 30 draws the sample variance is within a few per cent; the weights are
    # one draw, so Var is taken over the samples and inputs together.
    assert dx.var() == pytest.approx(predicted, rel=0.08)
    # The formula's M: half the fan-out gives half the variance.
    dx_half = dense_backward(dout[:, : M // 2], dense_forward(
        np.zeros((N, D)), w[:, : M // 2], np.zeros(M // 2))[1])[0]
    assert dx_half.var() == pytest.approx(predicted / 2, rel=0.08)


# ---------------------------------------------------------------------------------------------
# Normalisation without the batch (book/normalisation.md): LayerNorm and GroupNorm (InstanceNorm
# is GroupNorm with G = C) standardise each slice S of entries that share a mean and a variance;
# the slices are the groups of a sample's channels, on the view (N, G, C / G, H, W).
# ---------------------------------------------------------------------------------------------

from cnn.norm import groupnorm_backward, groupnorm_forward, layernorm_backward, layernorm_forward  # noqa: E402

NORM_CASES = [  # shape, groups (None: LayerNorm, gamma of shape x.shape[1:])
    ((3, 4, 2, 3), 2), ((2, 6, 3, 1), 3), ((2, 3, 2, 2), 3), ((3, 5), 1), ((2, 4, 2, 2), None),
    ((3, 7), None),
]


def norm_case(shape, groups, seed):
    rng = np.random.default_rng(seed)
    x = 2 * rng.standard_normal(shape) + rng.standard_normal(shape[:2] + (1,) * (len(shape) - 2))
    parameter_shape = shape[1:] if groups is None else shape[1:2]
    return x, rng.standard_normal(parameter_shape), rng.standard_normal(parameter_shape), rng.standard_normal(shape)


def norm_slices(shape, groups):
    """The index sets S: every entry (n, c, ...) of a sample n with c in group g, per (n, g)."""
    G = 1 if groups is None else groups
    size = shape[1] // G
    for n in range(shape[0]):
        for g in range(G):
            yield (n, slice(g * size, (g + 1) * size))


def norm_scale(v, shape, groups):
    """gamma or beta broadcast to the shape of x: per entry (LayerNorm) or per channel."""
    return v if groups is None else v.reshape((1, -1) + (1,) * (len(shape) - 2))


def norm_as_written(x, gamma, beta, groups, eps=BN_EPS):
    """eq-norm-xhat and eq-norm-forward: mean and biased variance of each slice S."""
    x_hat = np.empty_like(x)
    for index in norm_slices(x.shape, groups):
        part = x[index]
        mu = part.sum() / part.size
        var = ((part - mu) ** 2).sum() / part.size
        x_hat[index] = (part - mu) / np.sqrt(var + eps)
    return norm_scale(gamma, x.shape, groups) * x_hat + norm_scale(beta, x.shape, groups), x_hat


def norm_package_backward(x, gamma, beta, groups, dout):
    if groups is None:
        return layernorm_backward(dout, layernorm_forward(x, gamma, beta)[1])
    return groupnorm_backward(dout, groupnorm_forward(x, gamma, beta, groups)[1])


def norm_parameter_sum(a, groups):
    """Sum over the axes gamma is shared along: the batch (LayerNorm), all but channels (GroupNorm)."""
    return a.sum(axis=0) if groups is None else a.sum(axis=bn_axes(a))


@pytest.mark.parametrize("shape, groups", NORM_CASES)
def test_eq_norm_dbeta(shape, groups):
    x, gamma, beta, dout = norm_case(shape, groups, 1)
    dbeta = norm_parameter_sum(dout, groups)
    numeric = centred_differences(lambda v: float(np.sum(dout * norm_as_written(x, gamma, v, groups)[0])), beta)
    assert_gradient(dbeta, numeric)
    np.testing.assert_allclose(norm_package_backward(x, gamma, beta, groups, dout)[2], dbeta, rtol=1e-10,
                               atol=1e-12)


@pytest.mark.parametrize("shape, groups", NORM_CASES)
def test_eq_norm_dgamma(shape, groups):
    x, gamma, beta, dout = norm_case(shape, groups, 2)
    dgamma = norm_parameter_sum(dout * norm_as_written(x, gamma, beta, groups)[1], groups)
    numeric = centred_differences(lambda v: float(np.sum(dout * norm_as_written(x, v, beta, groups)[0])), gamma)
    assert_gradient(dgamma, numeric)
    np.testing.assert_allclose(norm_package_backward(x, gamma, beta, groups, dout)[1], dgamma, rtol=1e-10,
                               atol=1e-12)


@pytest.mark.parametrize("shape, groups", NORM_CASES + [((4, 3, 2, 2), "batch")])
def test_eq_norm_dx(shape, groups):
    """dx_i = 1 / (m sqrt(var_S + eps)) (m dx_hat_i - sum_S dx_hat_j - x_hat_i sum_S dx_hat_j x_hat_j),
    S the slice of i; with the batch's slices (one per channel) it is batch norm's eq-bn-dx."""
    if groups == "batch":
        x, gamma, beta, dout = bn_case(shape, 3)
        out_of = lambda v: bn_as_written(v, gamma, beta)[0]
        x_hat, dx_hat = bn_as_written(x, gamma, beta)[1], dout * per_channel(gamma, x.ndim)
        slices = [(slice(None), c) for c in range(shape[1])]
    else:
        x, gamma, beta, dout = norm_case(shape, groups, 3)
        out_of = lambda v: norm_as_written(v, gamma, beta, groups)[0]
        x_hat, dx_hat = norm_as_written(x, gamma, beta, groups)[1], dout * norm_scale(gamma, shape, groups)
        slices = list(norm_slices(shape, groups))
    dx = np.empty_like(x)
    for index in slices:
        part, x_hat_part, dx_hat_part = x[index], x_hat[index], dx_hat[index]
        m = part.size
        inv_std = 1 / np.sqrt(part.var() + BN_EPS)
        dx[index] = inv_std / m * (m * dx_hat_part - dx_hat_part.sum() - x_hat_part * (dx_hat_part * x_hat_part).sum())
    assert_gradient(dx, centred_differences(lambda v: float(np.sum(dout * out_of(v))), x))
    if groups != "batch":
        np.testing.assert_allclose(norm_package_backward(x, gamma, beta, groups, dout)[0], dx, rtol=1e-9,
                                   atol=1e-11)


# ---------------------------------------------------------------------------------------------
# Residual connections (book/residual.md): out = x + F(x); the backward pass adds dout, the
# identity path, to the body's gradient (dF/dx)^T dout.
# ---------------------------------------------------------------------------------------------

from cnn.fast.conv import conv2d_backward_fast  # noqa: E402
from cnn.layers import Conv2D, ReLU, Residual  # noqa: E402


@pytest.mark.parametrize("seed", SEEDS)
def test_eq_res_dx(seed):
    rng = np.random.default_rng(seed)
    C, pad = int(rng.integers(1, 4)), int(rng.integers(0, 2))
    x = away_from_zero(rng, (2, C, 4, 3))
    w, b = 0.5 * rng.standard_normal((C, C, 2 * pad + 1, 2 * pad + 1)), rng.standard_normal(C)
    dout = rng.standard_normal(x.shape)

    def body(v):  # F(x) = relu(conv(x))
        return np.maximum(conv2d_forward(v, w, b, padding=pad)[0], 0.0)

    out_body, conv_cache = conv2d_forward(x, w, b, padding=pad)
    # dx = dout + (dF/dx)^T dout: the identity path, plus the body's backward pass
    dx = dout + conv2d_backward(dout * (out_body > 0), conv_cache)[0]
    assert_gradient(dx, centred_differences(lambda v: float(np.sum(dout * (v + body(v)))), x))
    layer = Conv2D(C, C, 2 * pad + 1, padding=pad, dtype=np.float64)
    layer.params["w"][...], layer.params["b"][...] = w, b
    block = Residual([layer, ReLU()])
    np.testing.assert_allclose(block.forward(x), x + body(x), rtol=1e-12)
    np.testing.assert_allclose(block.backward(dout), dx, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Convolution variants (book/conv_variants.md): a dilated kernel reads x_tilde[n, c, S i + D p,
# S j + D q]; a grouped convolution lets filter f read only the channels of its group.
# ---------------------------------------------------------------------------------------------

DCONV_CASES = [
    # (N, C, H, W), (F, KH, KW), stride, padding, dilation
    ((2, 2, 7, 7), (2, 3, 3), (1, 1), (2, 2), (2, 2)),
    ((1, 3, 9, 8), (2, 3, 2), (2, 1), (1, 0), (3, 2)),
    ((2, 1, 8, 6), (3, 2, 3), (1, 2), (0, 1), (4, 1)),
    ((1, 9, 6, 6), (2, 3, 3), (2, 2), (2, 2), (2, 2)),  # many channels: dx by offset
]


def dconv_case(config, seed):
    (N, C, H, W), (F, KH, KW), stride, padding, dilation = config
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal((N, C, H, W)), rng.standard_normal((F, C, KH, KW)), rng.standard_normal(F)
    out, _ = conv2d_forward(x, w, b, stride=stride, padding=padding, dilation=dilation)
    return x, w, b, rng.standard_normal(out.shape), dict(stride=stride, padding=padding, dilation=dilation)


def dconv_forward_as_written(x, w, b, stride, padding, dilation):
    """eq-dconv-forward: out[n, f, i, j] = b[f] + sum of w[f, c, p, q] x_tilde[n, c, S i + D p, S j + D q],
    with H_out = (H + 2 P - D (KH - 1) - 1) // S + 1 (eq-dconv-out-size)."""
    x_tilde = padded_as_written(x, padding)
    (S_H, S_W), (D_H, D_W), (F, C, KH, KW) = stride, dilation, w.shape
    H_out = (x.shape[2] + 2 * padding[0] - D_H * (KH - 1) - 1) // S_H + 1
    W_out = (x.shape[3] + 2 * padding[1] - D_W * (KW - 1) - 1) // S_W + 1
    out = np.zeros((x.shape[0], F, H_out, W_out)) + b[None, :, None, None]
    for i in range(H_out):
        for j in range(W_out):
            for p in range(KH):
                for q in range(KW):
                    out[:, :, i, j] += np.einsum("nc,fc->nf", x_tilde[:, :, S_H * i + D_H * p, S_W * j + D_W * q],
                                                 w[:, :, p, q])
    return out


def assert_dconv_gradient(formula, wrt, x, w, b, dout, args):
    arrays = {"x": x, "w": w, "b": b}

    def loss(value):
        probe = {**arrays, wrt: value}
        return float(np.sum(dout * dconv_forward_as_written(probe["x"], probe["w"], probe["b"], **args)))

    assert_gradient(formula, centred_differences(loss, arrays[wrt]))
    _, cache = conv2d_forward(x, w, b, **args)
    for backward in (conv2d_backward, conv2d_backward_fast):
        package = dict(zip("xwb", backward(dout, cache)))[wrt]
        np.testing.assert_allclose(package, formula, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("config", DCONV_CASES)
def test_eq_dconv_forward_and_out_size(config):
    x, w, b, _, args = dconv_case(config, 0)
    np.testing.assert_allclose(conv2d_forward(x, w, b, **args)[0], dconv_forward_as_written(x, w, b, **args),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("config", DCONV_CASES)
def test_eq_dconv_dw(config):
    x, w, b, dout, args = dconv_case(config, 1)
    (S_H, S_W), (D_H, D_W), (N, F, H_out, W_out) = args["stride"], args["dilation"], dout.shape
    x_tilde = padded_as_written(x, args["padding"])
    # dw[f, c, p, q] = sum over n, i, j of dout[n, f, i, j] x_tilde[n, c, S i + D p, S j + D q]
    dw = np.zeros_like(w)
    for p, q, i, j in np.ndindex(w.shape[2], w.shape[3], H_out, W_out):
        dw[:, :, p, q] += np.einsum("nf,nc->fc", dout[:, :, i, j], x_tilde[:, :, S_H * i + D_H * p, S_W * j + D_W * q])
    assert_dconv_gradient(dw, "w", x, w, b, dout, args)


@pytest.mark.parametrize("config", DCONV_CASES)
def test_eq_dconv_dx(config):
    x, w, b, dout, args = dconv_case(config, 2)
    (S_H, S_W), (D_H, D_W), (P_H, P_W) = args["stride"], args["dilation"], args["padding"]
    (N, F, H_out, W_out), (KH, KW), (H, W) = dout.shape, w.shape[2:], x.shape[2:]
    # dx_tilde[n, c, r, s] = sum over f, p, q and the (i, j) with S i + D p = r, S j + D q = s
    # of dout[n, f, i, j] w[f, c, p, q]; dx is dx_tilde without its padding.
    dx_tilde = np.zeros((N, x.shape[1], H + 2 * P_H, W + 2 * P_W))
    for r, s in np.ndindex(dx_tilde.shape[2:]):
        for p, q, i, j in np.ndindex(KH, KW, H_out, W_out):
            if S_H * i + D_H * p == r and S_W * j + D_W * q == s:
                dx_tilde[:, :, r, s] += np.einsum("nf,fc->nc", dout[:, :, i, j], w[:, :, p, q])
    assert_dconv_gradient(dx_tilde[:, :, P_H:P_H + H, P_W:P_W + W], "x", x, w, b, dout, args)


@pytest.mark.parametrize("groups, C, F", [(2, 4, 6), (3, 3, 3), (1, 2, 2), (2, 6, 2)])
def test_eq_gconv_forward(groups, C, F):
    """out[n, f] = b[f] + sum over the C/G channels c' of group g(f) = f // (F/G) of
    w[f, c'] * x[n, g(f) C/G + c'] (eq-conv-forward within the group)."""
    rng = np.random.default_rng(groups + C)
    x, w, b = rng.standard_normal((2, C, 5, 4)), rng.standard_normal((F, C // groups, 3, 2)), rng.standard_normal(F)
    out, _ = conv2d_forward(x, w, b, padding=1, groups=groups)
    for f in range(F):
        g = f // (F // groups)
        block = x[:, g * (C // groups):(g + 1) * (C // groups)]
        alone, _ = conv2d_forward(block, w[f:f + 1], b[f:f + 1], padding=1)
        np.testing.assert_allclose(out[:, f:f + 1], alone, rtol=1e-12)
