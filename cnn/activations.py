"""Activation functions: ReLU, sigmoid and tanh (forward and backward), softmax."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cnn.checks import check_array, check_dout


class ReLUCache(NamedTuple):
    """What the backward pass of ReLU needs."""

    #: The input, any shape.
    x: np.ndarray


def _check_dout(dout, cache, cache_type):
    """Check the cache and ``dout`` (shape of the input); return ``dout`` to use."""
    return check_dout(dout, cache, cache_type,
                      lambda cache: (cache[0].shape, None, cache[0].dtype))


def relu_forward(x):
    """Rectified linear unit, elementwise: ``out = max(x, 0)`` (eq-relu-forward).

    Parameters
    ----------
    x : numpy.ndarray
        Any shape, float32 or float64.

    Returns
    -------
    out : numpy.ndarray
        Same shape and dtype as ``x``, a new array.
    cache : ReLUCache
    """
    check_array(x, "x")
    return np.maximum(x, 0), ReLUCache(x)


def relu_backward(dout, cache):
    """ReLU backward pass: ``dx = dout`` where ``x > 0``, 0 elsewhere (eq-relu-dx).

    At ``x = 0`` ReLU has no derivative; this uses the subgradient 0 there, as
    frameworks do. ``dout`` times the mask ``x > 0`` (1 where ``x > 0``, else 0) is that
    gradient, a new array: ``dout`` is not modified.

    Parameters
    ----------
    dout : numpy.ndarray
        Upstream gradient, same shape as the forward input.
    cache : ReLUCache
        From ``relu_forward``.

    Returns
    -------
    dx : numpy.ndarray
        Same shape as ``dout``, dtype of the forward input.
    """
    dout = _check_dout(dout, cache, ReLUCache)
    return dout * (cache.x > 0)


class SigmoidCache(NamedTuple):
    """What the backward pass of sigmoid needs: its own output."""

    #: The forward output, any shape.
    out: np.ndarray


class TanhCache(NamedTuple):
    """What the backward pass of tanh needs: its own output."""

    #: The forward output, any shape.
    out: np.ndarray


def sigmoid_forward(x):
    """Logistic sigmoid, elementwise: ``out = 1 / (1 + exp(-x))`` (eq-sigmoid).

    Computed as ``exp(min(x, 0)) / (1 + exp(-|x|))``, which never overflows.

    Parameters
    ----------
    x : numpy.ndarray
        Any shape, float32 or float64.

    Returns
    -------
    out : numpy.ndarray
        Same shape and dtype as ``x``, in ``[0, 1]``.
    cache : SigmoidCache
    """
    check_array(x, "x")
    out = np.exp(np.minimum(x, 0)) / (1 + np.exp(-np.abs(x)))
    return out, SigmoidCache(out)


def sigmoid_backward(dout, cache):
    """Sigmoid backward pass: ``dx = dout * out * (1 - out)`` (eq-sigmoid-dx).

    The derivative is at most 1/4 (at ``x = 0``) and tends to 0 where the sigmoid
    saturates.

    Parameters
    ----------
    dout : numpy.ndarray
        Upstream gradient, shape of the forward input.
    cache : SigmoidCache
        From ``sigmoid_forward``.

    Returns
    -------
    dx : numpy.ndarray
        Shape of ``dout``, dtype of the forward input.
    """
    dout = _check_dout(dout, cache, SigmoidCache)
    out = cache.out
    return dout * out * (1 - out)


def tanh_forward(x):
    """Hyperbolic tangent, elementwise: ``out = tanh(x)``.

    Parameters
    ----------
    x : numpy.ndarray
        Any shape, float32 or float64.

    Returns
    -------
    out : numpy.ndarray
        Same shape and dtype as ``x``, in ``[-1, 1]``.
    cache : TanhCache
    """
    check_array(x, "x")
    out = np.tanh(x)
    return out, TanhCache(out)


def tanh_backward(dout, cache):
    """Tanh backward pass: ``dx = dout * (1 - out**2)`` (eq-tanh-dx).

    The derivative is 1 at ``x = 0`` and tends to 0 where tanh saturates.

    Parameters
    ----------
    dout : numpy.ndarray
        Upstream gradient, shape of the forward input.
    cache : TanhCache
        From ``tanh_forward``.

    Returns
    -------
    dx : numpy.ndarray
        Shape of ``dout``, dtype of the forward input.
    """
    dout = _check_dout(dout, cache, TanhCache)
    out = cache.out
    return dout * (1 - out * out)


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
