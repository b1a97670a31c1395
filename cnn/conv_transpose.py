"""Transposed convolution in NCHW layout: forward and backward passes, and its layer.

A transposed convolution maps each input pixel to a ``KH x KW`` patch of the output,
weighted by the kernel, and adds up overlapping patches: it upsamples by the stride. Its
forward pass is the convolution's input gradient (eq-conv-dx) with the roles of input
and output channels exchanged, and its backward pass is the convolution's forward pass:
it is the adjoint (the transpose) of a convolution, hence the name. The weights have
shape ``(C_in, C_out, KH, KW)`` as in PyTorch's ``ConvTranspose2d``, so the convolution
it is the transpose of has weights of shape ``(F, C) = (C_in, C_out)``.

``conv_transpose2d_forward_naive`` and ``conv_transpose2d_backward_naive`` loop over
input pixels (each scatters a scaled kernel); the vectorised pair reuses ``im2col`` and
``col2im`` of ``cnn.conv``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cnn.checks import as_pair, check_array, check_cache
from cnn.conv import col2im, crop, im2col, pad


class ConvTransposeCache(NamedTuple):
    """What the backward pass of a transposed convolution needs."""

    #: The input, shape ``(N, C_in, H, W)``.
    x: np.ndarray
    #: The kernels, shape ``(C_in, C_out, KH, KW)``, in the dtype of the input.
    w: np.ndarray
    #: ``(SH, SW)``.
    stride: tuple
    #: ``(PH, PW)``.
    padding: tuple


def conv_transpose2d_output_size(input_size, kernel_size, stride, padding):
    """Spatial output size of a transposed convolution.

    ``H_out = (H - 1) SH - 2 PH + KH`` and likewise for the width (eq-convt-out-size):
    the size of the input a convolution with the same kernel, stride and padding maps to
    ``(H, W)``, the smallest such input when the stride leaves a choice (``SH`` sizes
    map to the same ``H``; PyTorch's ``output_padding`` picks one of the larger ones).

    Parameters
    ----------
    input_size, kernel_size, stride, padding : tuple of two ints
        ``(H, W)``, ``(KH, KW)``, ``(SH, SW)``, ``(PH, PW)``.

    Returns
    -------
    size : tuple of two ints
        ``(H_out, W_out)``.

    Raises
    ------
    ValueError
        If the padding leaves no output pixel.
    """
    size = tuple((n - 1) * s - 2 * p + k
                 for n, k, s, p in zip(input_size, kernel_size, stride, padding))
    if min(size) < 1:
        raise ValueError(
            f"padding {tuple(padding)} removes the whole output: (H - 1) SH + KH = "
            f"{tuple(s + 2 * p for s, p in zip(size, padding))} is at most 2 PH"
        )
    return size


def _check_args(x, w, b, stride, padding):
    """Validate a transposed convolution; return stride, padding and output size."""
    check_array(x, "x", ("N", "C_in", "H", "W"))
    check_array(w, "w", ("C_in", "C_out", "KH", "KW"), known={"C_in": x.shape[1]})
    check_array(b, "b", ("C_out",), known={"C_out": w.shape[1]})
    stride = as_pair(stride, "stride", minimum=1)
    padding = as_pair(padding, "padding", minimum=0)
    size = conv_transpose2d_output_size(x.shape[2:], w.shape[2:], stride, padding)
    return stride, padding, size


def _check_dout(dout, cache):
    check_cache(cache, ConvTransposeCache)
    N, C_out = cache.x.shape[0], cache.w.shape[1]
    H_out, W_out = conv_transpose2d_output_size(
        cache.x.shape[2:], cache.w.shape[2:], cache.stride, cache.padding)
    known = {"N": N, "C_out": C_out, "H_out": H_out, "W_out": W_out}
    check_array(dout, "dout", ("N", "C_out", "H_out", "W_out"), known=known)
    return dout.astype(cache.x.dtype, copy=False)


def _full_size(x_shape, w_shape, stride):
    """``(H - 1) SH + KH`` and the same for the width: the output before cropping."""
    (H, W), (KH, KW), (SH, SW) = x_shape[2:], w_shape[2:], stride
    return (H - 1) * SH + KH, (W - 1) * SW + KW


def conv_transpose2d_forward_naive(x, w, b, stride=1, padding=0):
    """Transposed convolution with loops: each input pixel paints its kernel.

    Input pixel ``(n, c, i, j)`` adds ``x[n, c, i, j] * w[c]``, a ``(C_out, KH, KW)``
    patch, to the uncropped output at rows ``SH i .. SH i + KH - 1`` and columns
    ``SW j .. SW j + KW - 1``; overlapping patches add up. ``PH`` rows and ``PW``
    columns are then cropped from each side and the bias added. Implements
    eq-convt-forward.

    Arguments, results and errors are those of ``conv_transpose2d_forward``.
    """
    stride, padding, _ = _check_args(x, w, b, stride, padding)
    (N, C_in, H, W), (_, C_out, KH, KW), (SH, SW) = x.shape, w.shape, stride
    w, b = w.astype(x.dtype, copy=False), b.astype(x.dtype, copy=False)
    full_shape = (N, C_out) + _full_size(x.shape, w.shape, stride)
    out_full = np.zeros(full_shape, dtype=x.dtype)
    for n in range(N):
        for c in range(C_in):
            for i in range(H):
                for j in range(W):
                    rows, cols = slice(SH * i, SH * i + KH), slice(SW * j, SW * j + KW)
                    out_full[n, :, rows, cols] += x[n, c, i, j] * w[c]
    out = crop(out_full, padding) + b[:, None, None]
    return out, ConvTransposeCache(x, w, stride, padding)


def conv_transpose2d_backward_naive(dout, cache):
    """Transposed convolution backward pass with explicit loops over input pixels.

    Input pixel ``(n, c, i, j)`` painted ``w[c]`` onto a window of the uncropped output,
    so its gradient is that window of the zero-padded ``dout`` times ``w[c]``, summed
    (eq-convt-dx), and ``w[c]`` collects the window times ``x[n, c, i, j]``
    (eq-convt-dw); ``db`` sums ``dout`` (eq-convt-db).

    Arguments and results are those of ``conv_transpose2d_backward``.
    """
    dout = _check_dout(dout, cache)
    x, w, (SH, SW) = cache.x, cache.w, cache.stride
    (N, C_in, H, W), (KH, KW) = x.shape, w.shape[2:]
    dout_full = pad(dout, cache.padding)
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    for n in range(N):
        for c in range(C_in):
            for i in range(H):
                for j in range(W):
                    rows, cols = slice(SH * i, SH * i + KH), slice(SW * j, SW * j + KW)
                    window = dout_full[n, :, rows, cols]
                    dx[n, c, i, j] = np.sum(window * w[c])
                    dw[c] += x[n, c, i, j] * window
    return dx, dw, dout.sum(axis=(0, 2, 3))


def conv_transpose2d_forward(x, w, b, stride=1, padding=0):
    """Transposed convolution: a convolution's input gradient, as a forward pass.

    Implements eq-convt-forward the way ``cnn.conv.conv2d_backward`` forms ``dx``
    (eq-conv-dx): one product ``w.reshape(C_in, -1).T @ x`` gives, for every input
    pixel, the ``C_out*KH*KW`` values it contributes; ``col2im`` adds them up at their
    output positions; the padding is cropped and the bias added.

    Parameters
    ----------
    x : numpy.ndarray
        Input, shape ``(N, C_in, H, W)``, float32 or float64.
    w : numpy.ndarray
        Kernels, shape ``(C_in, C_out, KH, KW)`` (PyTorch's layout).
    b : numpy.ndarray
        Biases, shape ``(C_out,)``.
    stride : int or tuple of two ints
        ``(SH, SW)``, each at least 1: the upsampling factor.
    padding : int or tuple of two ints
        ``(PH, PW)``, each at least 0: rows and columns cropped from each side.

    Returns
    -------
    out : numpy.ndarray
        Shape ``(N, C_out, H_out, W_out)`` with ``H_out = (H - 1) SH - 2 PH + KH``
        (eq-convt-out-size); dtype of ``x``.
    cache : ConvTransposeCache
        For ``conv_transpose2d_backward``.

    Raises
    ------
    TypeError, ValueError
        On a non-float or non-finite array, a wrong rank, a channel count of ``w`` that
        differs from ``x``'s, a bias not of shape ``(C_out,)``, stride < 1, padding < 0,
        or a padding that leaves no output.
    """
    stride, padding, _ = _check_args(x, w, b, stride, padding)
    (N, C_in, H, W), (_, C_out, KH, KW) = x.shape, w.shape
    w, b = w.astype(x.dtype, copy=False), b.astype(x.dtype, copy=False)
    cols = w.reshape(C_in, -1).T @ x.reshape(N, C_in, H * W)
    full_shape = (N, C_out) + _full_size(x.shape, w.shape, stride)
    out = crop(col2im(cols, full_shape, (KH, KW), stride), padding) + b[:, None, None]
    return out, ConvTransposeCache(x, w, stride, padding)


def conv_transpose2d_backward(dout, cache):
    """Transposed convolution backward pass: a convolution's forward pass.

    ``cols = im2col(pad(dout))`` lays out, for every input pixel, the window of the
    uncropped output it painted. Then ``dx = w.reshape(C_in, -1) @ cols``, the
    convolution of ``dout`` with ``w`` (eq-convt-dx); ``dw`` sums ``x[n] @ cols[n].T``
    over the batch (eq-convt-dw); ``db`` sums ``dout`` (eq-convt-db).

    Parameters
    ----------
    dout : numpy.ndarray
        Upstream gradient, shape ``(N, C_out, H_out, W_out)``.
    cache : ConvTransposeCache
        From either forward pass.

    Returns
    -------
    dx : numpy.ndarray
        Shape ``(N, C_in, H, W)``, dtype of the forward input.
    dw : numpy.ndarray
        Shape ``(C_in, C_out, KH, KW)``.
    db : numpy.ndarray
        Shape ``(C_out,)``.
    """
    dout = _check_dout(dout, cache)
    x, w = cache.x, cache.w
    N, C_in, H, W = x.shape
    cols = im2col(pad(dout, cache.padding), w.shape[2:], cache.stride)
    x_r = x.reshape(N, C_in, H * W)
    dx = (w.reshape(C_in, -1) @ cols).reshape(x.shape)
    # Products of shape (N, K, C_in) summed over the batch are faster than (N, C_in, K).
    dw = (cols @ x_r.transpose(0, 2, 1)).sum(axis=0).T.reshape(w.shape)
    return dx, dw, dout.sum(axis=(0, 2, 3))
