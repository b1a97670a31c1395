"""Gradient checking: centred finite differences and the relative error."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from cnn.losses import softmax_cross_entropy


def numerical_gradient(f, x, h=1e-5):
    """Centred-difference estimate of the gradient of a scalar function.

    ``grad[i] = (f(x + h e_i) - f(x - h e_i)) / (2 h)`` for every entry ``i`` of ``x``;
    the error is of order ``h**2``. Implements eq-centred-difference.

    ``x`` is perturbed IN PLACE, one entry at a time, and every entry is restored to its
    exact original value right after its two probes; this is what lets ``f`` read ``x``
    through a closure (for instance a layer's weight array). Use float64: in float32 the
    rounding error of ``f`` divided by ``2 h`` swamps the estimate.

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
    """Relative error in norm: ``||a - b|| / max(||a|| + ||b||, tiny)``.

    Implements eq-relative-error, with the Euclidean (Frobenius) norm of the whole
    array. Unlike an elementwise ratio it is not fooled by entries that are both almost
    zero; ``tiny`` (the smallest normal float64) makes two zero arrays agree with error
    0. In float64, a correct gradient typically gives 1e-9 or less against centred
    differences.

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
        raise ValueError(
            f"a and b must have the same shape, got {a.shape} and {b.shape}"
        )
    denominator = max(np.linalg.norm(a) + np.linalg.norm(b), np.finfo(np.float64).tiny)
    return float(np.linalg.norm(a - b) / denominator)


def _require_float64(array, name):
    if not isinstance(array, np.ndarray) or array.dtype != np.float64:
        dtype = getattr(array, "dtype", type(array).__name__)
        raise TypeError(
            f"{name} must be a float64 array for gradient checking (build layers with "
            f"dtype=np.float64), got {dtype}"
        )


@contextmanager
def _buffers_kept(buffers):
    """Put every array of ``buffers`` back as it was when the block is left.

    Each forward pass in training mode moves batch normalisation's running statistics;
    a check makes thousands of them and must not leave its mark on the model.
    """
    saved = {key: value.copy() for key, value in buffers.items()}
    try:
        yield
    finally:
        for key, value in saved.items():
            np.copyto(buffers[key], value)


def check_layer(layer, x, seed=0, h=1e-5):
    """Compare a layer's backward pass with centred differences.

    The scalar loss is a random projection of the output, ``L = sum(out * r)`` with
    ``r`` drawn from ``numpy.random.default_rng(seed)``; its gradient with respect to
    the output is ``r``, which is what ``backward`` receives. Every entry of ``x`` (a
    copy) and of each parameter is probed, so keep shapes small.

    Parameters
    ----------
    layer : object
        With ``forward``, ``backward``, ``params`` and ``grads`` (see ``cnn.layers``),
        float64. It is checked in the mode it is in; its ``buffers`` (batch
        normalisation's running statistics) are left as they were.
    x : numpy.ndarray
        Input, float64; not modified.
    seed : int
        Seeds the projection ``r``.
    h : float
        Finite-difference step.

    Returns
    -------
    errors : dict
        ``relative_error`` (eq-relative-error) for ``"x"`` and every key of
        ``layer.params``.
    """
    _require_float64(x, "x")
    for key, value in layer.params.items():
        _require_float64(value, f"layer.params[{key!r}]")
    x = x.copy()
    with _buffers_kept(getattr(layer, "buffers", {})):
        out = layer.forward(x)
        projection = np.random.default_rng(seed).standard_normal(out.shape)
        analytic = {"x": layer.backward(projection)}
        analytic |= {key: grad.copy() for key, grad in layer.grads.items()}

        def loss(_):
            return np.sum(layer.forward(x) * projection)

        probes = {"x": x, **layer.params}
        return {key: relative_error(analytic[key],
                                    numerical_gradient(loss, probes[key], h))
                for key in analytic}


def check_model(model, x, y, h=1e-5):
    """Compare a network's backward pass with centred differences.

    The loss is the network's softmax cross-entropy on ``(x, y)``. Every entry of every
    parameter is probed (two forward passes each), so keep the network and batch small.

    Parameters
    ----------
    model : cnn.model.Sequential
        With float64 parameters. It is checked in the mode it is in; its ``buffers()``
        (batch normalisation's running statistics) are left as they were.
    x : numpy.ndarray
        Inputs, float64, shape ``(N, ...)``.
    y : numpy.ndarray
        Integer labels, shape ``(N,)``.
    h : float
        Finite-difference step.

    Returns
    -------
    errors : dict
        ``relative_error`` (eq-relative-error) for every key of ``model.parameters()``
        (``"0.w"``, ``"0.b"``, ...).
    """
    _require_float64(x, "x")
    params = model.parameters()
    for key, value in params.items():
        _require_float64(value, f"model parameter {key!r}")
    with _buffers_kept(model.buffers()):
        _, dlogits = softmax_cross_entropy(model.forward(x), y)
        model.backward(dlogits)
        analytic = {key: grad.copy() for key, grad in model.gradients().items()}

        def loss(_):
            return softmax_cross_entropy(model.forward(x), y)[0]

        return {key: relative_error(analytic[key],
                                    numerical_gradient(loss, params[key], h))
                for key in params}
