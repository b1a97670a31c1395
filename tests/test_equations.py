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
from cnn.dense import dense_backward, dense_forward
from cnn.losses import softmax_cross_entropy

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
# The loss L = sum(dout * Y) has dL/dY = dout exactly, so it probes the backward pass with an
# arbitrary upstream gradient.
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


def dense_loss(x, w, b, dout):
    return float(np.sum(dout * dense_forward_as_written(x, w, b)))


@pytest.mark.parametrize("seed", SEEDS)
def test_eq_dense_dx(seed):
    x, w, b, dout = dense_case(seed)
    dx = np.einsum("nm,dm->nd", dout, w)  # dX[n, d] = sum_m dY[n, m] W[d, m]
    assert_gradient(dx, centred_differences(lambda v: dense_loss(v, w, b, dout), x))
    np.testing.assert_allclose(dense_backward(dout, dense_forward(x, w, b)[1])[0], dx)


@pytest.mark.parametrize("seed", SEEDS)
def test_eq_dense_dw(seed):
    x, w, b, dout = dense_case(seed)
    dw = np.einsum("nd,nm->dm", x, dout)  # dW[d, m] = sum_n X[n, d] dY[n, m]
    assert_gradient(dw, centred_differences(lambda v: dense_loss(x, v, b, dout), w))
    np.testing.assert_allclose(dense_backward(dout, dense_forward(x, w, b)[1])[1], dw)


@pytest.mark.parametrize("seed", SEEDS)
def test_eq_dense_db(seed):
    x, w, b, dout = dense_case(seed)
    db = np.einsum("nm->m", dout)  # db[m] = sum_n dY[n, m]
    assert_gradient(db, centred_differences(lambda v: dense_loss(x, w, v, dout), b))
    np.testing.assert_allclose(dense_backward(dout, dense_forward(x, w, b)[1])[2], db)


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
