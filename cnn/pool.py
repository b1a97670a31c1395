"""Max and average pooling in NCHW layout: forward and backward passes.

Pooling has no parameters. Windows of ``KH x KW`` pixels move by ``stride`` (by default
the kernel size, so windows tile the input); there is no padding. The naive versions
loop over every window; the vectorised ones loop over the ``KH*KW`` offsets inside a
window and handle every sample and position at once with strided slices. ``MaxPool2D``
runs the tuned max pooling of ``cnn.fast.pool``.

Tie rule for max pooling: when several entries of a window share the maximum, the
gradient goes to ONE of them, the first in row-major order (the one ``numpy.argmax``
picks). It is never split between them nor duplicated.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cnn.checks import as_pair, check_array, check_dout
from cnn.conv import offset_index, output_size


class MaxPoolCache(NamedTuple):
    """What the backward pass of max pooling needs."""

    #: ``(N, C, H, W)``.
    x_shape: tuple
    #: Dtype of the input, given to ``dx``.
    dtype: np.dtype
    #: Shape ``(N, C, H_out, W_out)``, integer: where in its window each maximum was, as
    #: the row-major offset ``p * KW + q``.
    argmax: np.ndarray
    #: ``(KH, KW)``.
    kernel_size: tuple
    #: ``(SH, SW)``.
    stride: tuple


class AvgPoolCache(NamedTuple):
    """What the backward pass of average pooling needs."""

    #: ``(N, C, H, W)``.
    x_shape: tuple
    #: Dtype of the input, given to ``dx``.
    dtype: np.dtype
    #: ``(KH, KW)``.
    kernel_size: tuple
    #: ``(SH, SW)``.
    stride: tuple


def _check_pool_args(x, kernel_size, stride):
    """Validate a pooling forward pass; return kernel size, stride, output size."""
    check_array(x, "x", ("N", "C", "H", "W"))
    kernel_size = as_pair(kernel_size, "kernel_size", minimum=1)
    stride = kernel_size if stride is None else as_pair(stride, "stride", minimum=1)
    return kernel_size, stride, output_size(x.shape[2:], kernel_size, stride, (0, 0))


def _dout_shape(cache):
    """``dout``'s shape ``(N, C, H_out, W_out)`` and the input's dtype."""
    N, C, H, W = cache.x_shape
    H_out, W_out = output_size((H, W), cache.kernel_size, cache.stride, (0, 0))
    known = {"N": N, "C": C, "H_out": H_out, "W_out": W_out}
    return ("N", "C", "H_out", "W_out"), known, cache.dtype


def _check_dout(dout, cache, cache_type):
    """Check the cache (of ``cache_type`` only) and ``dout``; return ``dout`` to use."""
    return check_dout(dout, cache, cache_type, _dout_shape)


def maxpool2d_forward_naive(x, kernel_size=2, stride=None):
    """Max pooling forward pass with explicit loops over windows.

    ``out[n, c, i, j] = max over p, q of x[n, c, SH i + p, SW j + q]``. Implements
    eq-maxpool-forward. The position of the maximum is recorded with ``numpy.argmax``,
    which returns the first maximum in row-major order (the tie rule of this module).

    Arguments, results and errors are those of ``maxpool2d_forward``:
    ``x : (N, C, H, W)`` gives ``out : (N, C, H_out, W_out)`` and a ``MaxPoolCache``.
    """
    (KH, KW), (SH, SW), (H_out, W_out) = _check_pool_args(x, kernel_size, stride)
    N, C = x.shape[:2]
    out = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    argmax = np.zeros((N, C, H_out, W_out), dtype=np.intp)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    window = x[n, c, SH * i:SH * i + KH, SW * j:SW * j + KW]
                    argmax[n, c, i, j] = np.argmax(window)
                    out[n, c, i, j] = window.max()
    return out, MaxPoolCache(x.shape, x.dtype, argmax, (KH, KW), (SH, SW))


def maxpool2d_backward_naive(dout, cache):
    """Max pooling backward pass with explicit loops: gradients go to the argmax.

    ``dx[n, c, SH i + p*, SW j + q*] += dout[n, c, i, j]`` where ``(p*, q*)`` is the
    recorded maximum of window ``(i, j)``; all other entries get nothing. Overlapping
    windows accumulate. Implements eq-maxpool-dx.

    Arguments and results are those of ``maxpool2d_backward``:
    ``dout : (N, C, H_out, W_out)`` and a ``MaxPoolCache`` from either forward pass give
    ``dx : (N, C, H, W)``.
    """
    dout = _check_dout(dout, cache, MaxPoolCache)
    (H_out, W_out), (SH, SW), KW = dout.shape[2:], cache.stride, cache.kernel_size[1]
    dx = np.zeros(cache.x_shape, dtype=cache.dtype)
    for n in range(cache.x_shape[0]):
        for c in range(cache.x_shape[1]):
            for i in range(H_out):
                for j in range(W_out):
                    p, q = divmod(int(cache.argmax[n, c, i, j]), KW)
                    dx[n, c, SH * i + p, SW * j + q] += dout[n, c, i, j]
    return dx


def maxpool2d_forward(x, kernel_size=2, stride=None):
    """Max pooling forward pass, vectorised over samples, channels and positions.

    Implements eq-maxpool-forward. The ``KH*KW`` offsets of the window, each one strided
    slice of ``x`` (``offset_index``), are stacked on a new first axis; the maximum over
    that axis is the output and its argmax, the first maximum in row-major order, is
    kept for the backward pass. The layer ``MaxPool2D`` runs the tuned
    ``cnn.fast.pool.maxpool2d_forward_fast`` instead, which gives the same numbers.

    Parameters
    ----------
    x : numpy.ndarray
        Shape ``(N, C, H, W)``, float32 or float64.
    kernel_size : int or tuple of two ints
        ``(KH, KW)``, each at least 1.
    stride : int or tuple of two ints, optional
        ``(SH, SW)``, each at least 1; defaults to ``kernel_size``.

    Returns
    -------
    out : numpy.ndarray
        Shape ``(N, C, H_out, W_out)`` with ``H_out = (H - KH) // SH + 1``; dtype of
        ``x``.
    cache : MaxPoolCache
        For ``maxpool2d_backward``.

    Raises
    ------
    TypeError, ValueError
        On a non-float or non-finite ``x``, a wrong rank, a kernel larger than the
        input, or kernel size or stride below 1.
    """
    kernel_size, stride, out_size = _check_pool_args(x, kernel_size, stride)
    offsets = np.ndindex(*kernel_size)
    windows = np.stack([x[offset_index(p, q, out_size, stride)] for p, q in offsets])
    out, argmax = windows.max(axis=0), windows.argmax(axis=0)
    return out, MaxPoolCache(x.shape, x.dtype, argmax, kernel_size, stride)


def maxpool2d_backward(dout, cache):
    """Max pooling backward pass, vectorised: gradients go to the argmax.

    Implements eq-maxpool-dx: for each offset ``k = (p, q)`` of the window, the entries
    of ``dout`` whose recorded maximum is ``k`` are added to the strided slice of ``dx``
    at that offset. Overlapping windows (stride smaller than the kernel) accumulate.

    Parameters
    ----------
    dout : numpy.ndarray
        Shape ``(N, C, H_out, W_out)``.
    cache : MaxPoolCache
        From any max pooling forward pass.

    Returns
    -------
    dx : numpy.ndarray
        Shape ``(N, C, H, W)``, dtype of the forward input.
    """
    dout = _check_dout(dout, cache, MaxPoolCache)
    dx = np.zeros(cache.x_shape, dtype=cache.dtype)
    for k, (p, q) in enumerate(np.ndindex(*cache.kernel_size)):
        slice_k = offset_index(p, q, dout.shape[2:], cache.stride)
        dx[slice_k] += dout * (cache.argmax == k)
    return dx


def avgpool2d_forward_naive(x, kernel_size=2, stride=None):
    """Average pooling forward pass with explicit loops over windows.

    ``out[n, c, i, j] = (1 / (KH KW)) sum over p, q of x[n, c, SH i + p, SW j + q]``.
    Implements eq-avgpool-forward.

    Arguments, results and errors are those of ``avgpool2d_forward``:
    ``x : (N, C, H, W)`` gives ``out : (N, C, H_out, W_out)`` and an ``AvgPoolCache``.
    """
    (KH, KW), (SH, SW), (H_out, W_out) = _check_pool_args(x, kernel_size, stride)
    N, C = x.shape[:2]
    out = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    out[n, c, i, j] = x[
                        n, c, SH * i : SH * i + KH, SW * j : SW * j + KW
                    ].mean()
    return out, AvgPoolCache(x.shape, x.dtype, (KH, KW), (SH, SW))


def avgpool2d_backward_naive(dout, cache):
    """Average pooling backward pass with explicit loops.

    Every entry of window ``(i, j)`` receives ``dout[n, c, i, j] / (KH KW)``;
    overlapping windows accumulate. Implements eq-avgpool-dx.

    Arguments and results are those of ``avgpool2d_backward``:
    ``dout : (N, C, H_out, W_out)`` and an ``AvgPoolCache`` from either forward pass
    give ``dx : (N, C, H, W)``.
    """
    dout = _check_dout(dout, cache, AvgPoolCache)
    (H_out, W_out), (KH, KW), (SH, SW) = dout.shape[2:], cache.kernel_size, cache.stride
    dx = np.zeros(cache.x_shape, dtype=cache.dtype)
    for n in range(cache.x_shape[0]):
        for c in range(cache.x_shape[1]):
            for i in range(H_out):
                for j in range(W_out):
                    rows, cols = slice(SH * i, SH * i + KH), slice(SW * j, SW * j + KW)
                    dx[n, c, rows, cols] += dout[n, c, i, j] / (KH * KW)
    return dx


def avgpool2d_forward(x, kernel_size=2, stride=None):
    """Average pooling forward pass, vectorised over samples, channels and positions.

    Implements eq-avgpool-forward as the sum of the ``KH*KW`` strided slices of ``x``
    (one per offset in the window) divided by ``KH*KW``.

    Parameters
    ----------
    x : numpy.ndarray
        Shape ``(N, C, H, W)``, float32 or float64.
    kernel_size : int or tuple of two ints
        ``(KH, KW)``, each at least 1.
    stride : int or tuple of two ints, optional
        ``(SH, SW)``, each at least 1; defaults to ``kernel_size``.

    Returns
    -------
    out : numpy.ndarray
        Shape ``(N, C, H_out, W_out)`` with ``H_out = (H - KH) // SH + 1``; dtype of
        ``x``.
    cache : AvgPoolCache
        For ``avgpool2d_backward``.

    Raises
    ------
    TypeError, ValueError
        As ``maxpool2d_forward``.
    """
    kernel_size, stride, out_size = _check_pool_args(x, kernel_size, stride)
    out = np.zeros(x.shape[:2] + out_size, dtype=x.dtype)
    for p, q in np.ndindex(*kernel_size):
        out += x[offset_index(p, q, out_size, stride)]
    out /= kernel_size[0] * kernel_size[1]
    return out, AvgPoolCache(x.shape, x.dtype, kernel_size, stride)


def avgpool2d_backward(dout, cache):
    """Average pooling backward pass, vectorised.

    Implements eq-avgpool-dx: ``dout / (KH KW)`` is added to the strided slice of ``dx``
    at each of the ``KH*KW`` window offsets; overlapping windows accumulate.

    Parameters
    ----------
    dout : numpy.ndarray
        Shape ``(N, C, H_out, W_out)``.
    cache : AvgPoolCache
        From ``avgpool2d_forward`` or ``avgpool2d_forward_naive``.

    Returns
    -------
    dx : numpy.ndarray
        Shape ``(N, C, H, W)``, dtype of the forward input.
    """
    dout = _check_dout(dout, cache, AvgPoolCache)
    (KH, KW), stride = cache.kernel_size, cache.stride
    share = dout / (KH * KW)
    dx = np.zeros(cache.x_shape, dtype=cache.dtype)
    for p, q in np.ndindex(KH, KW):
        dx[offset_index(p, q, dout.shape[2:], stride)] += share
    return dx


class GlobalAvgPoolCache(NamedTuple):
    """What the backward pass of global average pooling needs."""

    #: ``(N, C, H, W)``.
    x_shape: tuple
    #: Dtype of the input, given to ``dx``.
    dtype: np.dtype


def global_avgpool2d_forward(x):
    """Global average pooling, the mean of each map: ``(N, C, H, W) -> (N, C)``.

    ``out[n, c] = (1 / (H W)) sum over r, s of x[n, c, r, s]``. Implements
    eq-gap-forward: average pooling with one window the size of the whole map, whose
    output is flattened.

    Parameters
    ----------
    x : numpy.ndarray
        Shape ``(N, C, H, W)``, float32 or float64.

    Returns
    -------
    out : numpy.ndarray
        Shape ``(N, C)``, dtype of ``x``.
    cache : GlobalAvgPoolCache
        For ``global_avgpool2d_backward``.
    """
    check_array(x, "x", ("N", "C", "H", "W"))
    return x.mean(axis=(2, 3)), GlobalAvgPoolCache(x.shape, x.dtype)


def global_avgpool2d_backward(dout, cache):
    """Global average pooling backward pass: ``dx[n, c, r, s] = dout[n, c] / (H W)``.

    Every position of a map receives the same share of its map's gradient
    (eq-gap-dx).

    Parameters
    ----------
    dout : numpy.ndarray
        Shape ``(N, C)``.
    cache : GlobalAvgPoolCache
        From ``global_avgpool2d_forward``.

    Returns
    -------
    dx : numpy.ndarray
        Shape ``(N, C, H, W)``, dtype of the forward input.
    """
    dout = check_dout(dout, cache, GlobalAvgPoolCache, _global_dout_shape)
    H, W = cache.x_shape[2:]
    share = dout / (H * W)
    return np.broadcast_to(share[:, :, None, None], cache.x_shape).copy()


def _global_dout_shape(cache):
    """``dout``'s shape ``(N, C)`` and the input's dtype (``check_dout``)."""
    N, C = cache.x_shape[:2]
    return ("N", "C"), {"N": N, "C": C}, cache.dtype
