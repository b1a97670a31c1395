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
``col2im`` of ``cnn.conv``. ``output_padding`` adds rows and columns at the bottom and
right of the output, as PyTorch's does.

Nearest-neighbour upsampling (``upsample_nearest_forward`` and its backward pass) is the
first half of a resize-convolution, the usual replacement for a strided transposed
convolution when its checkerboard pattern shows.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cnn.checks import as_pair, check_array, check_dout
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
    #: ``(AH, AW)``, the rows and columns added at the bottom and right.
    output_padding: tuple = (0, 0)


def conv_transpose2d_output_size(input_size, kernel_size, stride, padding,
                                 output_padding=(0, 0)):
    """Spatial output size of a transposed convolution.

    ``H_out = (H - 1) SH - 2 PH + KH + AH`` and likewise for the width
    (eq-convt-out-size): the size of an input that a convolution with the same kernel,
    stride and padding maps to ``(H, W)``. ``SH`` sizes map to the same ``H``; the
    output padding ``0 <= AH < SH`` picks one of them (0: the smallest).

    Parameters
    ----------
    input_size, kernel_size, stride, padding, output_padding : tuple of two ints
        ``(H, W)``, ``(KH, KW)``, ``(SH, SW)``, ``(PH, PW)``, ``(AH, AW)``.

    Returns
    -------
    size : tuple of two ints
        ``(H_out, W_out)``.

    Raises
    ------
    ValueError
        If the padding leaves no output pixel.
    """
    full = tuple((n - 1) * s + k + a for n, k, s, a in
                 zip(input_size, kernel_size, stride, output_padding))
    size = tuple(f - 2 * p for f, p in zip(full, padding))
    if min(size) < 1:
        raise ValueError(
            f"padding {tuple(padding)} removes the whole output: "
            f"(H - 1) SH + KH + AH = {full} is at most 2 PH"
        )
    return size


def check_output_padding(output_padding, stride):
    """``(AH, AW)`` as a pair of ints with ``0 <= AH < SH`` and ``0 <= AW < SW``.

    An output padding of ``SH`` or more would give an output that a convolution with
    this stride does not map back to ``(H, W)``; PyTorch refuses it too (it also allows
    ``AH < DH`` with a dilation, which this package's transposed convolution lacks).
    """
    output_padding = as_pair(output_padding, "output_padding", minimum=0)
    if output_padding[0] >= stride[0] or output_padding[1] >= stride[1]:
        raise ValueError(
            f"output_padding (AH, AW) = {output_padding} must be smaller than stride "
            f"(SH, SW) = {tuple(stride)}"
        )
    return output_padding


def _check_args(x, w, b, stride, padding, output_padding):
    """Validate a transposed convolution.

    Returns ``w`` and ``b`` in the dtype of ``x``, stride, padding and output padding
    as pairs, and the output size ``(H_out, W_out)``.
    """
    check_array(x, "x", ("N", "C_in", "H", "W"))
    check_array(w, "w", ("C_in", "C_out", "KH", "KW"), known={"C_in": x.shape[1]})
    check_array(b, "b", ("C_out",), known={"C_out": w.shape[1]})
    stride = as_pair(stride, "stride", minimum=1)
    padding = as_pair(padding, "padding", minimum=0)
    output_padding = check_output_padding(output_padding, stride)
    size = conv_transpose2d_output_size(x.shape[2:], w.shape[2:], stride, padding,
                                        output_padding)
    w, b = w.astype(x.dtype, copy=False), b.astype(x.dtype, copy=False)
    return w, b, stride, padding, output_padding, size


def _dout_shape(cache):
    """``dout``'s shape ``(N, C_out, H_out, W_out)`` and the input's dtype."""
    N, C_out = cache.x.shape[0], cache.w.shape[1]
    H_out, W_out = conv_transpose2d_output_size(
        cache.x.shape[2:], cache.w.shape[2:], cache.stride, cache.padding,
        cache.output_padding)
    known = {"N": N, "C_out": C_out, "H_out": H_out, "W_out": W_out}
    return ("N", "C_out", "H_out", "W_out"), known, cache.x.dtype


def _check_dout(dout, cache):
    """Check the cache and ``dout`` against it; return ``dout`` in the input's dtype."""
    return check_dout(dout, cache, ConvTransposeCache, _dout_shape)


def _full_shape(x, w, stride, output_padding):
    """``(N, C_out, (H - 1) SH + KH + AH, ...)``: the output before cropping."""
    (N, _, H, W), (_, C_out, KH, KW), (SH, SW) = x.shape, w.shape, stride
    AH, AW = output_padding
    return N, C_out, (H - 1) * SH + KH + AH, (W - 1) * SW + KW + AW


def conv_transpose2d_forward_naive(x, w, b, stride=1, padding=0, output_padding=0):
    """Transposed convolution with loops: each input pixel paints its kernel.

    Input pixel ``(n, c, i, j)`` adds ``x[n, c, i, j] * w[c]``, a ``(C_out, KH, KW)``
    patch, to the uncropped output at rows ``SH i .. SH i + KH - 1`` and columns
    ``SW j .. SW j + KW - 1``; overlapping patches add up. The output padding's ``AH``
    rows and ``AW`` columns of zeros go at the bottom and right, then ``PH`` rows and
    ``PW`` columns are cropped from each side and the bias added. Implements
    eq-convt-forward.

    Arguments, results and errors are those of ``conv_transpose2d_forward``.
    """
    args = _check_args(x, w, b, stride, padding, output_padding)
    w, b, stride, padding, output_padding, _ = args
    (N, C_in, H, W), (KH, KW), (SH, SW) = x.shape, w.shape[2:], stride
    full_shape = _full_shape(x, w, stride, output_padding)
    out_full = np.zeros(full_shape, dtype=x.dtype)
    for n in range(N):
        for c in range(C_in):
            for i in range(H):
                for j in range(W):
                    rows, cols = slice(SH * i, SH * i + KH), slice(SW * j, SW * j + KW)
                    out_full[n, :, rows, cols] += x[n, c, i, j] * w[c]
    out = crop(out_full, padding) + b[:, None, None]
    return out, ConvTransposeCache(x, w, stride, padding, output_padding)


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


def conv_transpose2d_forward(x, w, b, stride=1, padding=0, output_padding=0):
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
    output_padding : int or tuple of two ints
        ``(AH, AW)`` with ``0 <= AH < SH`` and ``0 <= AW < SW``: rows and columns added
        at the bottom and right of the output, as PyTorch's ``output_padding``.

    Returns
    -------
    out : numpy.ndarray
        Shape ``(N, C_out, H_out, W_out)`` with ``H_out = (H - 1) SH - 2 PH + KH + AH``
        (eq-convt-out-size); dtype of ``x``.
    cache : ConvTransposeCache
        For ``conv_transpose2d_backward``.

    Raises
    ------
    TypeError, ValueError
        On a non-float or non-finite array, a wrong rank, a channel count of ``w`` that
        differs from ``x``'s, a bias not of shape ``(C_out,)``, stride < 1, padding < 0,
        an output padding not smaller than the stride (the message names both), or a
        padding that leaves no output.
    """
    args = _check_args(x, w, b, stride, padding, output_padding)
    w, b, stride, padding, output_padding, _ = args
    N, C_in, H, W = x.shape
    cols = w.reshape(C_in, -1).T @ x.reshape(N, C_in, H * W)
    full_shape = _full_shape(x, w, stride, output_padding)
    out_full = col2im(cols, full_shape, w.shape[2:], stride)
    out = crop(out_full, padding) + b[:, None, None]
    return out, ConvTransposeCache(x, w, stride, padding, output_padding)


def conv_transpose2d_backward(dout, cache):
    """Transposed convolution backward pass: a convolution's forward pass.

    ``cols = im2col(pad(dout))`` lays out, for every input pixel, the window of the
    uncropped output it painted. Then ``dx = w.reshape(C_in, -1) @ cols``, the
    convolution of ``dout`` with ``w`` (eq-convt-dx); ``dw`` sums ``x[n] @ cols[n].T``
    over the batch (eq-convt-dw); ``db`` sums ``dout`` (eq-convt-db).
    The output padding's last ``AH`` rows and ``AW`` columns of ``pad(dout)`` lie in no
    window: no input pixel painted them, and im2col leaves them out.

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
    dx = (w.reshape(C_in, -1) @ cols).reshape(x.shape)
    dw = (x.reshape(N, C_in, H * W) @ cols.transpose(0, 2, 1)).sum(axis=0)
    return dx, dw.reshape(w.shape), dout.sum(axis=(0, 2, 3))


class UpsampleCache(NamedTuple):
    """What the backward pass of nearest-neighbour upsampling needs."""

    #: ``(N, C, H, W)``.
    x_shape: tuple
    #: Dtype of the input, given to ``dx``.
    dtype: np.dtype
    #: ``(SH, SW)``, the upsampling factors.
    scale: tuple


def upsample_nearest_forward(x, scale=2):
    """Nearest-neighbour upsampling: every pixel becomes an ``SH x SW`` block.

    ``out[n, c, r, s] = x[n, c, r // SH, s // SW]``. Implements eq-upsample-forward;
    the same as PyTorch's ``interpolate(x, scale_factor=scale, mode="nearest")``.
    Followed by a stride-1 convolution it is a resize-convolution, which upsamples
    without the checkerboard of a strided transposed convolution.

    Parameters
    ----------
    x : numpy.ndarray
        Shape ``(N, C, H, W)``.
    scale : int or tuple of two ints
        ``(SH, SW)``, each at least 1.

    Returns
    -------
    out : numpy.ndarray
        Shape ``(N, C, SH H, SW W)``, dtype of ``x``.
    cache : UpsampleCache
        For ``upsample_nearest_backward``.
    """
    SH, SW = scale = _check_upsample_args(x, scale)
    out = x.repeat(SH, axis=2).repeat(SW, axis=3)
    return out, UpsampleCache(x.shape, x.dtype, scale)


def _check_upsample_args(x, scale):
    """Check ``x : (N, C, H, W)``; return ``scale`` as a pair of ints >= 1."""
    check_array(x, "x", ("N", "C", "H", "W"))
    return as_pair(scale, "scale", minimum=1)


def upsample_nearest_backward(dout, cache):
    """Backward pass of nearest-neighbour upsampling: sum each block.

    Input pixel ``(n, c, i, j)`` was copied to the ``SH x SW`` block of rows
    ``SH i .. SH i + SH - 1`` and columns ``SW j .. SW j + SW - 1``, so its gradient is
    the sum of ``dout`` over that block (eq-upsample-dx): the sum pooling that undoes
    the copying, and the transpose of the upsampling matrix.

    Parameters
    ----------
    dout : numpy.ndarray
        Shape ``(N, C, SH H, SW W)``.
    cache : UpsampleCache
        From ``upsample_nearest_forward``.

    Returns
    -------
    dx : numpy.ndarray
        Shape ``(N, C, H, W)``, dtype of the forward input.
    """
    dout = check_dout(dout, cache, UpsampleCache, _upsample_dout_shape)
    (N, C, H, W), (SH, SW) = cache.x_shape, cache.scale
    return dout.reshape(N, C, H, SH, W, SW).sum(axis=(3, 5))


def _upsample_dout_shape(cache):
    """``dout``'s shape ``(N, C, SH H, SW W)`` and the input's dtype."""
    (N, C, H, W), (SH, SW) = cache.x_shape, cache.scale
    known = {"N": N, "C": C, "SH H": SH * H, "SW W": SW * W}
    return ("N", "C", "SH H", "SW W"), known, cache.dtype
