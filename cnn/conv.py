"""2-D convolution (cross-correlation) in NCHW layout: forward and backward passes.

``conv2d_forward_naive`` and ``conv2d_backward_naive`` follow the equations loop for
loop (chapters "Convolution, forward" and "Convolution, backward"); ``conv2d_forward``
and ``conv2d_backward`` compute the same numbers with im2col, one batched matrix product
and col2im, the plain vectorised form those chapters derive. The tuned pair that the
layer ``Conv2D`` runs lives in ``cnn.fast.conv`` (chapter "Making it fast"). All pairs
share their signatures and the cache type, so any backward accepts any forward's cache.

Like every deep-learning framework, "convolution" here is cross-correlation: the kernel
is not flipped.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnn.checks import as_pair, check_array, check_dout


class ConvCache(NamedTuple):
    """What the backward pass of a convolution needs from its forward pass."""

    #: The zero-padded input, shape ``(N, C, H + 2 PH, W + 2 PW)``.
    x_padded: np.ndarray
    #: The kernels, shape ``(F, C, KH, KW)``, in the dtype of the input.
    w: np.ndarray
    #: ``(SH, SW)``.
    stride: tuple
    #: ``(PH, PW)``.
    padding: tuple
    #: The im2col matrix of ``x_padded``, shape ``(N, C*KH*KW, H_out*W_out)``, kept by
    #: the fast forward pass so that its backward pass need not rebuild it; ``None``
    #: from the naive pass.
    cols: np.ndarray | None = None


def output_size(input_size, kernel_size, stride, padding):
    """Spatial output size of a convolution or pooling window.

    ``H_out = (H + 2 PH - KH) // SH + 1`` and likewise for the width. Implements
    eq-conv-out-size. When ``SH`` does not divide ``H + 2 PH - KH`` the last rows of the
    padded input are not covered by any window (floor), as in every framework.

    Parameters
    ----------
    input_size : tuple of two ints
        ``(H, W)``.
    kernel_size, stride, padding : tuple of two ints
        ``(KH, KW)``, ``(SH, SW)``, ``(PH, PW)``.

    Returns
    -------
    size : tuple of two ints
        ``(H_out, W_out)``.

    Raises
    ------
    ValueError
        If the kernel is larger than the padded input.
    """
    padded = tuple(n + 2 * p for n, p in zip(input_size, padding))
    if kernel_size[0] > padded[0] or kernel_size[1] > padded[1]:
        raise ValueError(
            f"kernel_size (KH, KW) = {tuple(kernel_size)} is larger than the padded "
            f"input (H + 2 PH, W + 2 PW) = {padded}"
        )
    return tuple((n - k) // s + 1 for n, k, s in zip(padded, kernel_size, stride))


def _check_conv_args(x, w, b, stride, padding):
    """Validate a convolution's arguments.

    Returns ``w`` and ``b`` in the dtype of ``x`` (the arithmetic runs in it), stride
    and padding as pairs, and the output size ``(H_out, W_out)``.
    """
    check_array(x, "x", ("N", "C", "H", "W"))
    check_array(w, "w", ("F", "C", "KH", "KW"), known={"C": x.shape[1]})
    check_array(b, "b", ("F",), known={"F": w.shape[0]})
    stride = as_pair(stride, "stride", minimum=1)
    padding = as_pair(padding, "padding", minimum=0)
    out_size = output_size(x.shape[2:], w.shape[2:], stride, padding)
    w, b = w.astype(x.dtype, copy=False), b.astype(x.dtype, copy=False)
    return w, b, stride, padding, out_size


def _dout_shape(cache):
    """``dout``'s shape ``(N, F, H_out, W_out)`` and the input's dtype (``check_dout``)."""
    x_padded, w = cache.x_padded, cache.w
    H_out, W_out = output_size(x_padded.shape[2:], w.shape[2:], cache.stride, (0, 0))
    known = {"N": x_padded.shape[0], "F": w.shape[0], "H_out": H_out, "W_out": W_out}
    return ("N", "F", "H_out", "W_out"), known, x_padded.dtype


def _check_dout(dout, cache):
    """Check the cache and ``dout`` against it; return ``dout`` in the input's dtype."""
    return check_dout(dout, cache, ConvCache, _dout_shape)


def offset_index(p, q, out_size, stride):
    """Index of the input pixels that kernel offset ``(p, q)`` meets.

    Output position ``(i, j)`` reads input pixel ``(SH i + p, SW j + q)`` at offset
    ``(p, q)``, so for a fixed offset these pixels form one strided slice. Looping over
    the ``KH*KW`` offsets and using whole slices is what keeps the fast passes free of
    loops over positions.

    Parameters
    ----------
    p, q : int
        Kernel offset, ``0 <= p < KH`` and ``0 <= q < KW``.
    out_size : tuple of two ints
        ``(H_out, W_out)``.
    stride : tuple of two ints
        ``(SH, SW)``.

    Returns
    -------
    index : tuple of slices
        For an array of shape ``(N, C, H, W)``; selects a block of shape
        ``(N, C, H_out, W_out)``.
    """
    (H_out, W_out), (SH, SW) = out_size, stride
    rows = slice(p, p + SH * (H_out - 1) + 1, SH)
    cols = slice(q, q + SW * (W_out - 1) + 1, SW)
    return (slice(None), slice(None), rows, cols)


def pad(x, padding):
    """Zero-pad the two spatial axes of ``x``; returns a new array.

    Parameters
    ----------
    x : numpy.ndarray
        Shape ``(N, C, H, W)``.
    padding : tuple of two ints
        ``(PH, PW)``.

    Returns
    -------
    x_padded : numpy.ndarray
        Shape ``(N, C, H + 2 PH, W + 2 PW)``, same dtype as ``x``.
    """
    (N, C, H, W), (PH, PW) = x.shape, padding
    # Zeros and one copy of the interior: faster than np.pad (see book/performance.md).
    x_padded = np.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=x.dtype)
    x_padded[:, :, PH:PH + H, PW:PW + W] = x
    return x_padded


def crop(x_padded, padding):
    """Remove ``padding`` from the spatial axes (the adjoint of ``pad``)."""
    PH, PW = padding
    H, W = x_padded.shape[2] - 2 * PH, x_padded.shape[3] - 2 * PW
    return x_padded[:, :, PH:PH + H, PW:PW + W]


def conv2d_forward_naive(x, w, b, stride=1, padding=0):
    """Convolution forward pass with explicit loops, for teaching and tests.

    ``out[n, f, i, j] = b[f] + sum over c, p, q of``
    ``w[f, c, p, q] * x_padded[n, c, SH i + p, SW j + q]``.
    Implements eq-conv-forward, looping over every sample, filter and output position.

    Arguments, results and errors are those of ``conv2d_forward``: ``x : (N, C, H, W)``,
    ``w : (F, C, KH, KW)``, ``b : (F,)`` give ``out : (N, F, H_out, W_out)`` and a
    ``ConvCache`` (whose ``cols`` is ``None``).
    """
    w, b, stride, padding, (H_out, W_out) = _check_conv_args(x, w, b, stride, padding)
    (SH, SW), (F, _, KH, KW) = stride, w.shape
    x_padded = pad(x, padding)
    out = np.zeros((x.shape[0], F, H_out, W_out), dtype=x.dtype)
    for n in range(x.shape[0]):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    window = x_padded[n, :, SH * i:SH * i + KH, SW * j:SW * j + KW]
                    out[n, f, i, j] = np.sum(window * w[f]) + b[f]
    return out, ConvCache(x_padded, w, stride, padding)


def conv2d_backward_naive(dout, cache):
    """Convolution backward pass with explicit loops, mirroring the forward loops.

    Every output position ``(n, f, i, j)`` sends ``dout[n, f, i, j] * w[f]`` back to the
    window of ``x_padded`` it read (eq-conv-dx), adds ``dout[n, f, i, j]`` times that
    window to ``dw[f]`` (eq-conv-dw) and ``dout[n, f, i, j]`` to ``db[f]`` (eq-conv-db).
    Windows that overlap accumulate. The padded border of the gradient is then cropped.

    Arguments and results are those of ``conv2d_backward``:
    ``dout : (N, F, H_out, W_out)`` and a ``ConvCache`` from either forward pass give
    ``dx : (N, C, H, W)``, ``dw : (F, C, KH, KW)`` and ``db : (F,)``.
    """
    dout = _check_dout(dout, cache)
    x_padded, w, (SH, SW) = cache.x_padded, cache.w, cache.stride
    (N, F, H_out, W_out), (KH, KW) = dout.shape, w.shape[2:]
    dx_padded = np.zeros_like(x_padded)
    dw = np.zeros_like(w)
    db = np.zeros(F, dtype=w.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    rows, cols = slice(SH * i, SH * i + KH), slice(SW * j, SW * j + KW)
                    dx_padded[n, :, rows, cols] += dout[n, f, i, j] * w[f]
                    dw[f] += dout[n, f, i, j] * x_padded[n, :, rows, cols]
                    db[f] += dout[n, f, i, j]
    return crop(dx_padded, cache.padding), dw, db


def im2col(x_padded, kernel_size, stride):
    """Lay out every receptive field of ``x_padded`` as a column.

    ``cols[n, (c, p, q), (i, j)] = x_padded[n, c, SH i + p, SW j + q]``, with the row
    index ``(c, p, q)`` flattened in C order to ``c KH KW + p KW + q`` and the column
    index to ``i W_out + j``. Implements eq-im2col: the convolution then becomes the
    matrix product ``w.reshape(F, C*KH*KW) @ cols[n]`` for each sample.

    Parameters
    ----------
    x_padded : numpy.ndarray
        Shape ``(N, C, Hp, Wp)``, already padded.
    kernel_size : tuple of two ints
        ``(KH, KW)``.
    stride : tuple of two ints
        ``(SH, SW)``.

    Returns
    -------
    cols : numpy.ndarray
        Shape ``(N, C*KH*KW, H_out*W_out)``, a new array of the dtype of ``x_padded``.
    """
    (N, C), (KH, KW), (SH, SW) = x_padded.shape[:2], kernel_size, stride
    # windows: (N, C, H_out, W_out, KH, KW), a view; the reshape makes the one copy.
    windows = sliding_window_view(x_padded, (KH, KW), axis=(2, 3))[:, :, ::SH, ::SW]
    H_out, W_out = windows.shape[2:4]
    return windows.transpose(0, 1, 4, 5, 2, 3).reshape(N, C * KH * KW, H_out * W_out)


def col2im(dcols, x_padded_shape, kernel_size, stride):
    """Scatter-add columns back to image positions: the adjoint of ``im2col``.

    Each entry of ``dcols`` is added to the pixel of the padded input that ``im2col``
    copied it from; pixels covered by several windows accumulate. Loops over the
    ``KH*KW`` kernel offsets only: each offset adds one strided slice.

    Parameters
    ----------
    dcols : numpy.ndarray
        Shape ``(N, C*KH*KW, H_out*W_out)``.
    x_padded_shape : tuple of four ints
        ``(N, C, Hp, Wp)``.
    kernel_size, stride : tuple of two ints
        ``(KH, KW)`` and ``(SH, SW)``, as given to ``im2col``.

    Returns
    -------
    dx_padded : numpy.ndarray
        Shape ``(N, C, Hp, Wp)``, dtype of ``dcols``.
    """
    (N, C, Hp, Wp), (KH, KW) = x_padded_shape, kernel_size
    H_out, W_out = output_size((Hp, Wp), kernel_size, stride, (0, 0))
    dcols = dcols.reshape(N, C, KH, KW, H_out, W_out)
    dx_padded = np.zeros(x_padded_shape, dtype=dcols.dtype)
    for p in range(KH):
        for q in range(KW):
            dx_padded[offset_index(p, q, (H_out, W_out), stride)] += dcols[:, :, p, q]
    return dx_padded


def conv2d_forward(x, w, b, stride=1, padding=0):
    """Convolution forward pass, vectorised: im2col and one batched product.

    Computes eq-conv-forward as ``w.reshape(F, C*KH*KW) @ cols`` where
    ``cols = im2col(x_padded)`` (eq-im2col) has shape ``(N, C*KH*KW, H_out*W_out)``: the
    product has shape ``(N, F, H_out*W_out)``, which is already NCHW once reshaped. No
    Python loop runs over samples or output positions.

    Parameters
    ----------
    x : numpy.ndarray
        Input, shape ``(N, C, H, W)``, float32 or float64.
    w : numpy.ndarray
        Kernels, shape ``(F, C, KH, KW)``.
    b : numpy.ndarray
        Biases, shape ``(F,)``.
    stride : int or tuple of two ints
        ``(SH, SW)``, each at least 1.
    padding : int or tuple of two ints
        Zeros added on each side, ``(PH, PW)``, each at least 0.

    Returns
    -------
    out : numpy.ndarray
        Shape ``(N, F, H_out, W_out)``, ``H_out = (H + 2 PH - KH) // SH + 1``
        (eq-conv-out-size). The arithmetic runs in the dtype of ``x`` and ``out`` has
        that dtype.
    cache : ConvCache
        For ``conv2d_backward``.

    Raises
    ------
    TypeError
        If an array is not a floating-point ndarray, or stride/padding are not ints or
        pairs.
    ValueError
        On a wrong rank, mismatched channels or biases, NaN/inf, stride < 1, padding <
        0, or a kernel larger than the padded input; the message names the argument and
        both shapes.
    """
    w, b, stride, padding, (H_out, W_out) = _check_conv_args(x, w, b, stride, padding)
    N, F = x.shape[0], w.shape[0]
    x_padded = pad(x, padding)
    cols = im2col(x_padded, w.shape[2:], stride)
    out = w.reshape(F, -1) @ cols
    out += b[:, None]
    out = out.reshape(N, F, H_out, W_out)
    return out, ConvCache(x_padded, w, stride, padding, cols)


def conv2d_backward(dout, cache):
    """Convolution backward pass: two matrix products and col2im.

    With ``dout`` viewed as ``(N, F, H_out*W_out)`` and ``cols`` the im2col matrix:
    ``db = dout.sum((0, 2))`` (eq-conv-db); ``dw = sum over n of dout[n] @ cols[n].T``
    (eq-conv-dw); ``dcols = w.reshape(F, -1).T @ dout`` and ``dx = crop(col2im(dcols))``
    (eq-conv-dx). No Python loop runs over samples or output positions. The layer
    ``Conv2D`` runs the tuned ``cnn.fast.conv.conv2d_backward_fast`` instead, which
    gives the same numbers.

    Parameters
    ----------
    dout : numpy.ndarray
        Upstream gradient, shape ``(N, F, H_out, W_out)``.
    cache : ConvCache
        From ``conv2d_forward`` (or ``conv2d_forward_naive``, whose ``cols`` is
        rebuilt).

    Returns
    -------
    dx : numpy.ndarray
        Shape ``(N, C, H, W)``, dtype of the forward input.
    dw : numpy.ndarray
        Shape ``(F, C, KH, KW)``.
    db : numpy.ndarray
        Shape ``(F,)``.
    """
    dout = _check_dout(dout, cache)
    x_padded, w, stride = cache.x_padded, cache.w, cache.stride
    cols = im2col(x_padded, w.shape[2:], stride) if cache.cols is None else cache.cols
    N, F = dout.shape[:2]
    dout = dout.reshape(N, F, -1)
    db = dout.sum(axis=(0, 2))
    dw = (dout @ cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
    dcols = w.reshape(F, -1).T @ dout
    dx_padded = col2im(dcols, x_padded.shape, w.shape[2:], stride)
    return crop(dx_padded, cache.padding), dw, db
