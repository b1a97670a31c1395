"""2-D convolution (cross-correlation) in NCHW layout: forward and backward passes.

``conv2d_forward_naive`` and ``conv2d_backward_naive`` follow the equations loop for
loop (chapters "Convolution, forward" and "Convolution, backward"); ``conv2d_forward``
and ``conv2d_backward`` compute the same numbers with im2col, one batched matrix product
and col2im, the plain vectorised form those chapters derive. The tuned pair that the
layer ``Conv2D`` runs lives in ``cnn.fast.conv`` (chapter "Making it fast"). All pairs
share their signatures and the cache type, so any backward accepts any forward's cache.

Like every deep-learning framework, "convolution" here is cross-correlation: the kernel
is not flipped. Every pass also takes ``dilation`` (a kernel that reads every ``D``-th
pixel) and ``groups`` (filters that each see ``C // groups`` channels), as PyTorch's
``conv2d`` does; both are 1 by default, the convolution of chapters 5 and 6, and the
chapter "Convolution variants" uses the other values.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnn.checks import as_pair, check_array, check_dout, check_groups, check_int


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
    #: ``(DH, DW)``, the kernel reading every ``DH``-th row and ``DW``-th column.
    dilation: tuple = (1, 1)
    #: ``G``, the number of groups; filter group ``g`` sees channel group ``g`` only.
    groups: int = 1


def output_size(input_size, kernel_size, stride, padding, dilation=(1, 1)):
    """Spatial output size of a convolution or pooling window.

    ``H_out = (H + 2 PH - KH) // SH + 1`` and likewise for the width. Implements
    eq-conv-out-size. When ``SH`` does not divide ``H + 2 PH - KH`` the last rows of the
    padded input are not covered by any window (floor), as in every framework. A
    dilated kernel spans ``DH (KH - 1) + 1`` rows, which takes the place of ``KH``
    (eq-dconv-out-size).

    Parameters
    ----------
    input_size : tuple of two ints
        ``(H, W)``.
    kernel_size, stride, padding : tuple of two ints
        ``(KH, KW)``, ``(SH, SW)``, ``(PH, PW)``.
    dilation : tuple of two ints
        ``(DH, DW)``.

    Returns
    -------
    size : tuple of two ints
        ``(H_out, W_out)``.

    Raises
    ------
    ValueError
        If the (dilated) kernel is larger than the padded input.
    """
    padded = tuple(n + 2 * p for n, p in zip(input_size, padding))
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel_size, dilation))
    _check_kernel_fits(kernel_size, span, padded, dilation)
    return tuple((n - k) // s + 1 for n, k, s in zip(padded, span, stride))


def _check_kernel_fits(kernel_size, span, padded, dilation):
    """Check that the (dilated) kernel's span fits in ``(H + 2 PH, W + 2 PW)``."""
    if span[0] > padded[0] or span[1] > padded[1]:
        dilated = "" if span == tuple(kernel_size) else (
            f" at dilation (DH, DW) = {tuple(dilation)} spans {span} and")
        raise ValueError(
            f"kernel_size (KH, KW) = {tuple(kernel_size)}{dilated} is larger than the "
            f"padded input (H + 2 PH, W + 2 PW) = {padded}"
        )


def _check_conv_args(x, w, b, stride, padding, dilation=1, groups=1):
    """Validate a convolution's arguments.

    Returns ``w`` and ``b`` in the dtype of ``x`` (the arithmetic runs in it), stride,
    padding and dilation as pairs, and the output size ``(H_out, W_out)``.
    """
    check_array(x, "x", ("N", "C", "H", "W"))
    groups = check_groups(groups, x.shape[1], "channels of x", "C")
    channels = "C" if groups == 1 else "C // groups"
    check_array(w, "w", ("F", channels, "KH", "KW"),
                known={channels: x.shape[1] // groups})
    check_groups(groups, w.shape[0], "filters of w", "F")
    check_array(b, "b", ("F",), known={"F": w.shape[0]})
    stride = as_pair(stride, "stride", minimum=1)
    padding = as_pair(padding, "padding", minimum=0)
    dilation = as_pair(dilation, "dilation", minimum=1)
    out_size = output_size(x.shape[2:], w.shape[2:], stride, padding, dilation)
    w, b = w.astype(x.dtype, copy=False), b.astype(x.dtype, copy=False)
    return w, b, stride, padding, dilation, groups, out_size


def _dout_shape(cache):
    """``dout``'s shape ``(N, F, H_out, W_out)`` and the input's dtype."""
    x_padded, w = cache.x_padded, cache.w
    H_out, W_out = output_size(x_padded.shape[2:], w.shape[2:], cache.stride, (0, 0),
                               cache.dilation)
    known = {"N": x_padded.shape[0], "F": w.shape[0], "H_out": H_out, "W_out": W_out}
    return ("N", "F", "H_out", "W_out"), known, x_padded.dtype


def _check_dout(dout, cache):
    """Check the cache and ``dout`` against it; return ``dout`` in the input's dtype."""
    return check_dout(dout, cache, ConvCache, _dout_shape)


def offset_index(p, q, out_size, stride, dilation=(1, 1)):
    """Index of the input pixels that kernel offset ``(p, q)`` meets.

    Output position ``(i, j)`` reads input pixel ``(SH i + p, SW j + q)`` at offset
    ``(p, q)`` (``(SH i + DH p, SW j + DW q)`` with dilation), so for a fixed offset
    these pixels form one strided slice. Looping over the ``KH*KW`` offsets and using
    whole slices is what keeps the fast passes free of loops over positions.

    Parameters
    ----------
    p, q : int
        Kernel offset, ``0 <= p < KH`` and ``0 <= q < KW``.
    out_size : tuple of two ints
        ``(H_out, W_out)``.
    stride : tuple of two ints
        ``(SH, SW)``.
    dilation : tuple of two ints
        ``(DH, DW)``.

    Returns
    -------
    index : tuple of slices
        For an array of shape ``(N, C, H, W)``; selects a block of shape
        ``(N, C, H_out, W_out)``.
    """
    (H_out, W_out), (SH, SW), (DH, DW) = out_size, stride, dilation
    rows = slice(DH * p, DH * p + SH * (H_out - 1) + 1, SH)
    cols = slice(DW * q, DW * q + SW * (W_out - 1) + 1, SW)
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


def conv2d_forward_naive(x, w, b, stride=1, padding=0, dilation=1, groups=1):
    """Convolution forward pass with explicit loops, for teaching and tests.

    ``out[n, f, i, j] = b[f] + sum over c, p, q of``
    ``w[f, c, p, q] * x_padded[n, c, SH i + p, SW j + q]``.
    Implements eq-conv-forward, looping over every sample, filter and output position.
    With dilation the window's rows are ``SH i + DH p`` (eq-dconv-forward); with groups
    filter ``f`` reads the channels of its group only (eq-gconv-forward).

    Arguments, results and errors are those of ``conv2d_forward``: ``x : (N, C, H, W)``,
    ``w : (F, C // groups, KH, KW)``, ``b : (F,)`` give
    ``out : (N, F, H_out, W_out)`` and a ``ConvCache`` (whose ``cols`` is ``None``).
    """
    args = _check_conv_args(x, w, b, stride, padding, dilation, groups)
    w, b, stride, padding, dilation, groups, (H_out, W_out) = args
    (SH, SW), (DH, DW), (F, C_g, KH, KW) = stride, dilation, w.shape
    x_padded = pad(x, padding)
    out = np.zeros((x.shape[0], F, H_out, W_out), dtype=x.dtype)
    for n in range(x.shape[0]):
        for f in range(F):
            g = f // (F // groups)  # the group of filter f reads channel group g
            channels = slice(g * C_g, (g + 1) * C_g)
            for i in range(H_out):
                for j in range(W_out):
                    rows = slice(SH * i, SH * i + DH * (KH - 1) + 1, DH)
                    cols = slice(SW * j, SW * j + DW * (KW - 1) + 1, DW)
                    window = x_padded[n, channels, rows, cols]
                    out[n, f, i, j] = np.sum(window * w[f]) + b[f]
    return out, ConvCache(x_padded, w, stride, padding, None, dilation, groups)


def conv2d_backward_naive(dout, cache):
    """Convolution backward pass with explicit loops, mirroring the forward loops.

    Every output position ``(n, f, i, j)`` sends ``dout[n, f, i, j] * w[f]`` back to the
    window of ``x_padded`` it read (eq-conv-dx), adds ``dout[n, f, i, j]`` times that
    window to ``dw[f]`` (eq-conv-dw) and ``dout[n, f, i, j]`` to ``db[f]`` (eq-conv-db).
    Windows that overlap accumulate. The padded border of the gradient is then cropped.

    Arguments and results are those of ``conv2d_backward``:
    ``dout : (N, F, H_out, W_out)`` and a ``ConvCache`` from either forward pass give
    ``dx : (N, C, H, W)``, ``dw : (F, C // groups, KH, KW)`` and ``db : (F,)``.
    """
    dout = _check_dout(dout, cache)
    x_padded, w = cache.x_padded, cache.w
    (SH, SW), (DH, DW) = cache.stride, cache.dilation
    (N, F, H_out, W_out), (C_g, KH, KW) = dout.shape, w.shape[1:]
    dx_padded = np.zeros_like(x_padded)
    dw = np.zeros_like(w)
    db = np.zeros(F, dtype=w.dtype)
    for n in range(N):
        for f in range(F):
            g = f // (F // cache.groups)
            channels = slice(g * C_g, (g + 1) * C_g)
            for i in range(H_out):
                for j in range(W_out):
                    rows = slice(SH * i, SH * i + DH * (KH - 1) + 1, DH)
                    cols = slice(SW * j, SW * j + DW * (KW - 1) + 1, DW)
                    dx_padded[n, channels, rows, cols] += dout[n, f, i, j] * w[f]
                    dw[f] += dout[n, f, i, j] * x_padded[n, channels, rows, cols]
                    db[f] += dout[n, f, i, j]
    return crop(dx_padded, cache.padding), dw, db


def im2col(x_padded, kernel_size, stride, dilation=(1, 1)):
    """Lay out every receptive field of ``x_padded`` as a column.

    ``cols[n, (c, p, q), (i, j)] = x_padded[n, c, SH i + p, SW j + q]``, with the row
    index ``(c, p, q)`` flattened in C order to ``c KH KW + p KW + q`` and the column
    index to ``i W_out + j``. Implements eq-im2col: the convolution then becomes the
    matrix product ``w.reshape(F, C*KH*KW) @ cols[n]`` for each sample. With dilation
    the pixel is ``x_padded[n, c, SH i + DH p, SW j + DW q]``.

    Parameters
    ----------
    x_padded : numpy.ndarray
        Shape ``(N, C, Hp, Wp)``, already padded.
    kernel_size : tuple of two ints
        ``(KH, KW)``.
    stride : tuple of two ints
        ``(SH, SW)``.
    dilation : tuple of two ints
        ``(DH, DW)``.

    Returns
    -------
    cols : numpy.ndarray
        Shape ``(N, C*KH*KW, H_out*W_out)``, a new array of the dtype of ``x_padded``.
    """
    (N, C), (KH, KW), (SH, SW) = x_padded.shape[:2], kernel_size, stride
    (DH, DW) = dilation
    # A dilated window spans DH (KH - 1) + 1 rows, of which it reads every DH-th.
    span = (DH * (KH - 1) + 1, DW * (KW - 1) + 1)
    # windows: (N, C, H_out, W_out, KH, KW), a view; the reshape makes the one copy.
    windows = sliding_window_view(x_padded, span, axis=(2, 3))
    windows = windows[:, :, ::SH, ::SW, ::DH, ::DW]
    H_out, W_out = windows.shape[2:4]
    return windows.transpose(0, 1, 4, 5, 2, 3).reshape(N, C * KH * KW, H_out * W_out)


def col2im(dcols, x_padded_shape, kernel_size, stride, dilation=(1, 1)):
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
    kernel_size, stride, dilation : tuple of two ints
        ``(KH, KW)``, ``(SH, SW)`` and ``(DH, DW)``, as given to ``im2col``.

    Returns
    -------
    dx_padded : numpy.ndarray
        Shape ``(N, C, Hp, Wp)``, dtype of ``dcols``.
    """
    (N, C, Hp, Wp), (KH, KW) = x_padded_shape, kernel_size
    out_size = output_size((Hp, Wp), kernel_size, stride, (0, 0), dilation)
    dcols = dcols.reshape(N, C, KH, KW, *out_size)
    dx_padded = np.zeros(x_padded_shape, dtype=dcols.dtype)
    for p in range(KH):
        for q in range(KW):
            index = offset_index(p, q, out_size, stride, dilation)
            dx_padded[index] += dcols[:, :, p, q]
    return dx_padded


def conv2d_forward(x, w, b, stride=1, padding=0, dilation=1, groups=1):
    """Convolution forward pass, vectorised: im2col and one batched product.

    Computes eq-conv-forward as ``w.reshape(F, C*KH*KW) @ cols`` where
    ``cols = im2col(x_padded)`` (eq-im2col) has shape ``(N, C*KH*KW, H_out*W_out)``: the
    product has shape ``(N, F, H_out*W_out)``, which is already NCHW once reshaped. No
    Python loop runs over samples or output positions. With ``groups`` the rows of
    ``cols`` and of ``w`` split into blocks, one product per group (eq-gconv-forward).

    Parameters
    ----------
    x : numpy.ndarray
        Input, shape ``(N, C, H, W)``, float32 or float64.
    w : numpy.ndarray
        Kernels, shape ``(F, C // groups, KH, KW)``.
    b : numpy.ndarray
        Biases, shape ``(F,)``.
    stride : int or tuple of two ints
        ``(SH, SW)``, each at least 1.
    padding : int or tuple of two ints
        Zeros added on each side, ``(PH, PW)``, each at least 0.
    dilation : int or tuple of two ints
        ``(DH, DW)``, each at least 1: the kernel reads every ``DH``-th row.
    groups : int
        ``G``, a divisor of ``C`` and of ``F``; ``groups=C`` is a depthwise
        convolution.

    Returns
    -------
    out : numpy.ndarray
        Shape ``(N, F, H_out, W_out)``, ``H_out = (H + 2 PH - KH) // SH + 1``
        (eq-conv-out-size; ``DH (KH - 1) + 1`` in place of ``KH`` with dilation). The
        arithmetic runs in the dtype of ``x`` and ``out`` has that dtype.
    cache : ConvCache
        For ``conv2d_backward``.

    Raises
    ------
    TypeError
        If an array is not a floating-point ndarray, or stride/padding are not ints or
        pairs.
    ValueError
        On a wrong rank, mismatched channels or biases, NaN/inf, stride < 1, padding <
        0, dilation < 1, ``C`` or ``F`` not divisible by ``groups``, or a (dilated)
        kernel larger than the padded input; the message names the argument and both
        shapes or numbers.
    """
    args = _check_conv_args(x, w, b, stride, padding, dilation, groups)
    w, b, stride, padding, dilation, G, (H_out, W_out) = args
    N, F = x.shape[0], w.shape[0]
    x_padded = pad(x, padding)
    cols = im2col(x_padded, w.shape[2:], stride, dilation)
    # Group axis G: filter block g times channel block g (for G = 1, w.reshape(F, -1)).
    out = w.reshape(G, F // G, -1) @ cols.reshape(N, G, -1, H_out * W_out)
    out = out.reshape(N, F, H_out, W_out) + b[:, None, None]
    return out, ConvCache(x_padded, w, stride, padding, cols, dilation, G)


def conv2d_backward(dout, cache):
    """Convolution backward pass: two matrix products and col2im.

    With ``dout`` viewed as ``(N, F, H_out*W_out)`` and ``cols`` the im2col matrix:
    ``db = dout.sum((0, 2))`` (eq-conv-db); ``dw = sum over n of dout[n] @ cols[n].T``
    (eq-conv-dw); ``dcols = w.reshape(F, -1).T @ dout`` and ``dx = crop(col2im(dcols))``
    (eq-conv-dx). No Python loop runs over samples or output positions. With groups,
    each product is taken per group, as in the forward pass. The tuned
    ``cnn.fast.conv.conv2d_backward_fast`` gives the same numbers.

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
        Shape ``(F, C // groups, KH, KW)``.
    db : numpy.ndarray
        Shape ``(F,)``.
    """
    dout = _check_dout(dout, cache)
    x_padded, w, G, cols = cache.x_padded, cache.w, cache.groups, cache.cols
    kernel, stride, dilation = w.shape[2:], cache.stride, cache.dilation
    if cols is None:  # from conv2d_forward_naive
        cols = im2col(x_padded, kernel, stride, dilation)
    N, F = dout.shape[:2]
    # Group axis G, as in the forward pass: (N, G, F // G, M) and (N, G, K // G, M).
    dout = dout.reshape(N, G, F // G, -1)
    cols = cols.reshape(N, G, -1, dout.shape[3])
    db = dout.sum(axis=(0, 3)).reshape(F)
    dw = (dout @ cols.transpose(0, 1, 3, 2)).sum(axis=0).reshape(w.shape)
    dcols = w.reshape(G, F // G, -1).transpose(0, 2, 1) @ dout
    dx_padded = col2im(dcols.reshape(N, -1, dout.shape[3]), x_padded.shape, kernel,
                       stride, dilation)
    return crop(dx_padded, cache.padding), dw, db


def conv_matrix(w, input_shape, stride=1, padding=0):
    """The dense matrix ``M`` of a convolution without bias: ``out = M x``.

    Row ``(f, i, j)`` of ``M`` holds the weights that output pixel ``(f, i, j)`` puts
    on each input pixel ``(c, r, s)``: ``M[(f, i, j), (c, r, s)] = w[f, c, p, q]`` with
    ``(p, q) = (r + PH - SH i, s + PW - SW j)`` when that is an offset of the kernel,
    and 0 otherwise; the padding's zeros get no column. Implements eq-conv-matrix, so
    that ``M @ x[n].ravel()`` is ``conv2d_forward(x, w, 0)[0][n].ravel()`` and
    ``M.T @ dout[n].ravel()`` is the input gradient of ``conv2d_backward``
    (eq-conv-matrix-dx). Built for teaching: it has ``F H_out W_out C H W`` entries.

    Parameters
    ----------
    w : numpy.ndarray
        Kernels, shape ``(F, C, KH, KW)``.
    input_shape : tuple of three ints
        ``(C, H, W)``, the shape of one input sample.
    stride, padding : int or tuple of two ints
        ``(SH, SW)`` and ``(PH, PW)``, as for ``conv2d_forward``.

    Returns
    -------
    M : numpy.ndarray
        Shape ``(F H_out W_out, C H W)``, rows and columns in C order (the order of
        ``ravel``), dtype of ``w``.

    Raises
    ------
    TypeError, ValueError
        As ``conv2d_forward`` for ``w``, ``stride`` and ``padding``; and if
        ``input_shape`` is not three ints >= 1 whose ``C`` is that of ``w``.
    """
    C, H, W = _check_input_shape(input_shape, w)
    stride, padding = as_pair(stride, "stride"), as_pair(padding, "padding", minimum=0)
    (F, _, KH, KW), (SH, SW), (PH, PW) = w.shape, stride, padding
    H_out, W_out = output_size((H, W), (KH, KW), stride, padding)
    M = np.zeros((F, H_out, W_out, C, H, W), dtype=w.dtype)
    for i in range(H_out):
        for j in range(W_out):
            for p in range(KH):
                for q in range(KW):
                    r, s = SH * i + p - PH, SW * j + q - PW
                    if 0 <= r < H and 0 <= s < W:  # else (p, q) meets a padding zero
                        M[:, i, j, :, r, s] = w[:, :, p, q]
    return M.reshape(F * H_out * W_out, C * H * W)


def _check_input_shape(input_shape, w):
    """Check ``w : (F, C, KH, KW)`` and ``input_shape = (C, H, W)``; return C, H, W."""
    check_array(w, "w", ("F", "C", "KH", "KW"))
    if not isinstance(input_shape, tuple) or len(input_shape) != 3:
        raise ValueError(f"input_shape must be a tuple (C, H, W), got {input_shape!r}")
    C, H, W = (check_int(n, f"input_shape {name}")
               for n, name in zip(input_shape, "CHW"))
    if C != w.shape[1]:
        raise ValueError(f"input_shape C = {C} differs from the channels of w, "
                         f"C = {w.shape[1]} (w has shape (F, C, KH, KW) = {w.shape})")
    return C, H, W
