"""Dense (fully connected) layer ``out = x @ w + b``: forward and backward passes."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cnn.checks import check_array, check_cache, check_outs


class DenseCache(NamedTuple):
    """What the backward pass of a dense layer needs."""

    #: The input, shape ``(N, D)``.
    x: np.ndarray
    #: The weights, shape ``(D, M)``, in the dtype of ``x``.
    w: np.ndarray


def _check_dense_args(x, w, b):
    check_array(x, "x", ("N", "D"))
    check_array(w, "w", ("D", "M"), known={"D": x.shape[1]})
    check_array(b, "b", ("M",), known={"M": w.shape[1]})
    return w.astype(x.dtype, copy=False), b.astype(x.dtype, copy=False)


def _check_dout(dout, cache):
    check_cache(cache, DenseCache)
    known = {"N": cache.x.shape[0], "M": cache.w.shape[1]}
    check_array(dout, "dout", ("N", "M"), known=known)
    return dout.astype(cache.x.dtype, copy=False)


def dense_forward_naive(x, w, b):
    """Dense forward pass with explicit loops over samples and outputs.

    Implements eq-dense-forward, one output entry at a time. Arguments, results and
    errors are those of ``dense_forward``: ``x : (N, D)``, ``w : (D, M)``, ``b : (M,)``
    give ``out : (N, M)`` and a ``DenseCache``.
    """
    w, b = _check_dense_args(x, w, b)
    (N, D), M = x.shape, w.shape[1]
    out = np.zeros((N, M), dtype=x.dtype)
    for n in range(N):
        for m in range(M):
            out[n, m] = b[m] + sum(x[n, d] * w[d, m] for d in range(D))
    return out, DenseCache(x, w)


def dense_backward_naive(dout, cache):
    """Dense backward pass with explicit loops, one gradient entry at a time.

    ``dx[n, d] = sum over m of dout[n, m] w[d, m]`` (eq-dense-dx),
    ``dw[d, m] = sum over n of x[n, d] dout[n, m]`` (eq-dense-dw),
    ``db[m] = sum over n of dout[n, m]`` (eq-dense-db). Arguments and results are those
    of ``dense_backward``: ``dout : (N, M)`` and a ``DenseCache`` give ``dx : (N, D)``,
    ``dw : (D, M)`` and ``db : (M,)``.
    """
    dout = _check_dout(dout, cache)
    x, w = cache
    (N, D), M = x.shape, w.shape[1]
    dx, dw, db = np.zeros_like(x), np.zeros_like(w), np.zeros(M, dtype=w.dtype)
    for n in range(N):
        for d in range(D):
            dx[n, d] = sum(dout[n, m] * w[d, m] for m in range(M))
    for d in range(D):
        for m in range(M):
            dw[d, m] = sum(x[n, d] * dout[n, m] for n in range(N))
    for m in range(M):
        db[m] = sum(dout[n, m] for n in range(N))
    return dx, dw, db


def dense_forward(x, w, b):
    """Dense forward pass: ``out = x @ w + b``. Implements eq-dense-forward.

    Parameters
    ----------
    x : numpy.ndarray
        Inputs, shape ``(N, D)``, float32 or float64.
    w : numpy.ndarray
        Weights, shape ``(D, M)``.
    b : numpy.ndarray
        Biases, shape ``(M,)``, broadcast over the batch.

    Returns
    -------
    out : numpy.ndarray
        Shape ``(N, M)``. The arithmetic runs in the dtype of ``x`` and ``out`` has that
        dtype.
    cache : DenseCache
        For ``dense_backward``.

    Raises
    ------
    TypeError, ValueError
        If an argument is not a finite floating-point array of the stated shape; the
        message names the argument and the expected and actual shapes.
    """
    w, b = _check_dense_args(x, w, b)
    return x @ w + b, DenseCache(x, w)


def dense_backward(dout, cache, out=None):
    """Dense backward pass.

    ``dx = dout @ w.T`` (eq-dense-dx), ``dw = x.T @ dout`` (eq-dense-dw) and
    ``db = dout.sum(axis=0)`` (eq-dense-db): the bias is shared by the batch, so its
    gradient sums over it.

    Parameters
    ----------
    dout : numpy.ndarray
        Upstream gradient, shape ``(N, M)``.
    cache : DenseCache
        From ``dense_forward``.
    out : tuple of three arrays or None, optional
        ``(dx, dw, db)``: arrays of the shapes below, in the dtype of ``x``, to write
        the results into, as NumPy's ``out=``; an entry ``None`` (or ``out=None``) means
        a new array. ``Dense`` passes the gradients of the previous step here, so that
        a large ``dw`` is not allocated anew at every step.

    Returns
    -------
    dx : numpy.ndarray
        Shape ``(N, D)``, dtype of ``x``.
    dw : numpy.ndarray
        Shape ``(D, M)``.
    db : numpy.ndarray
        Shape ``(M,)``.
    """
    dout = _check_dout(dout, cache)
    x, w = cache
    shapes = {"dx": x.shape, "dw": w.shape, "db": w.shape[1:]}
    dx, dw, db = check_outs(out, shapes, x.dtype)
    return (np.matmul(dout, w.T, out=dx), np.matmul(x.T, dout, out=dw),
            np.sum(dout, axis=0, out=db))
