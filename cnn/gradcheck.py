"""Gradient checking: centred finite differences and the relative error between gradients."""

from __future__ import annotations

import numpy as np


def numerical_gradient(f, x, h=1e-5):
    """Centred-difference estimate of the gradient of a scalar function.

    ``grad[i] = (f(x + h e_i) - f(x - h e_i)) / (2 h)`` for every entry ``i`` of ``x``; the error
    is of order ``h**2``. Implements eq-centred-difference.

    ``x`` is perturbed IN PLACE, one entry at a time, and every entry is restored to its exact
    original value right after its two probes; this is what lets ``f`` read ``x`` through a
    closure (for instance a layer's weight array). Use float64: in float32 the rounding error of
    ``f`` divided by ``2 h`` swamps the estimate.

    Parameters
    ----------
    f : callable
        ``f(x) -> float``, a scalar function of the array ``x``.
    x : numpy.ndarray
        Point at which to differentiate, any shape, floating point; unchanged on return.
    h : float
        Step size.

    Returns
    -------
    grad : numpy.ndarray
        Same shape and dtype as ``x``.
    """
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        f_plus = float(f(x))
        x[i] = old - h
        f_minus = float(f(x))
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * h)
    return grad


def relative_error(a, b):
    """Relative error between two arrays, in norm: ``||a - b|| / max(||a|| + ||b||, tiny)``.

    Implements eq-relative-error, with the Euclidean (Frobenius) norm of the whole array. Unlike
    an elementwise ratio it is not fooled by entries that are both almost zero; ``tiny`` (the
    smallest normal float64) makes two zero arrays agree with error 0. In float64, a correct
    gradient typically gives 1e-9 or less against centred differences.

    Parameters
    ----------
    a, b : numpy.ndarray
        Arrays of the same shape.

    Returns
    -------
    error : float
        In ``[0, 1]``.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    denominator = max(np.linalg.norm(a) + np.linalg.norm(b), np.finfo(np.float64).tiny)
    return float(np.linalg.norm(a - b) / denominator)
