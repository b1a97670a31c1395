"""Activation functions: ReLU (forward and backward) and a stable softmax."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cnn.checks import check_array


class ReLUCache(NamedTuple):
    """What the backward pass of ReLU needs."""

    #: The input, any shape.
    x: np.ndarray


def relu_forward(x, out=None):
    """Rectified linear unit, elementwise: ``out = max(x, 0)`` (eq-relu-forward).

    Parameters
    ----------
    x : numpy.ndarray
        Any shape, float32 or float64.
    out : numpy.ndarray, optional
        An array of the shape and dtype of ``x`` to write the result into, as NumPy's
        ``out=`` (the layer ``ReLU`` reuses one between steps); not ``x`` itself.

    Returns
    -------
    out : numpy.ndarray
        Same shape and dtype as ``x``: a new array, or ``out``.
    cache : ReLUCache
    """
    check_array(x, "x")
    return np.maximum(x, 0, out=out), ReLUCache(x)


def relu_backward(dout, cache, out=None):
    """ReLU backward pass: ``dx = dout`` where ``x > 0``, 0 elsewhere (eq-relu-dx).

    At ``x = 0`` ReLU has no derivative; this uses the subgradient 0 there, as
    frameworks do. ``dout`` is not modified: a new array is returned.

    Parameters
    ----------
    dout : numpy.ndarray
        Upstream gradient, same shape as the forward input.
    cache : ReLUCache
        From ``relu_forward``.
    out : numpy.ndarray, optional
        An array of the shape of ``dout`` and the dtype of the forward input to write
        ``dx`` into, as NumPy's ``out=``; not ``dout`` itself.

    Returns
    -------
    dx : numpy.ndarray
        Same shape as ``dout``, dtype of the forward input: a new array, or ``out``.
    """
    x = cache.x
    check_array(dout, "dout", dims=x.shape)
    # The product with the mask (1 where x > 0) is several times faster than np.where.
    return np.multiply(dout, x > 0, out=out, dtype=x.dtype)


def log_softmax(z):
    """Logarithm of the softmax along the last axis, stable by log-sum-exp.

    ``log_softmax(z) = z - m - log(sum(exp(z - m)))`` with ``m = max(z)`` along the last
    axis; subtracting ``m`` changes nothing mathematically but keeps ``exp`` from
    overflowing, and the result never takes ``log(0)``. Used by eq-softmax-ce.

    Parameters
    ----------
    z : numpy.ndarray
        Logits, shape ``(..., K)``.

    Returns
    -------
    out : numpy.ndarray
        Same shape and dtype as ``z``.
    """
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(z):
    """Softmax along the last axis, stable for logits of any size (eq-softmax).

    ``softmax(z)_k = exp(z_k - m) / sum over j of exp(z_j - m)`` with ``m = max(z)``:
    the shift cancels in the ratio and keeps every exponent at most 0.

    Parameters
    ----------
    z : numpy.ndarray
        Logits, shape ``(..., K)``, float32 or float64.

    Returns
    -------
    p : numpy.ndarray
        Same shape and dtype as ``z``; every row along the last axis is positive and
        sums to 1.
    """
    check_array(z, "z")
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
