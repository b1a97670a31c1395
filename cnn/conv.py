"""Two-dimensional convolution (cross-correlation) in NCHW layout: forward and backward passes.

``conv2d_forward_naive`` and ``conv2d_backward_naive`` follow the equations loop for loop;
``conv2d_forward`` and ``conv2d_backward`` compute the same numbers with im2col and one batched
matrix product. Both pairs share their signatures and the cache type, so either backward accepts
either forward's cache.

Like every deep-learning framework, "convolution" here is cross-correlation: the kernel is not
flipped.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnn.checks import as_pair, check_array


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
    #: The im2col matrix of ``x_padded``, shape ``(N, C*KH*KW, H_out*W_out)``, kept by the
    #: fast forward pass so that its backward pass need not rebuild it; ``None`` from the naive pass.
    cols: np.ndarray | None = None


def output_size(input_size, kernel_size, stride, padding):
    """Spatial output size of a convolution or pooling window.

    ``H_out = (H + 2 PH - KH) // SH + 1`` and likewise for the width. Implements eq-conv-out-size.
    When ``SH`` does not divide ``H + 2 PH - KH`` the last rows of the padded input are not
    covered by any window (floor), as in every framework.

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
            f"kernel_size (KH, KW) = {tuple(kernel_size)} is larger than the padded input "
            f"(H + 2 PH, W + 2 PW) = {padded}"
        )
    return tuple((n - k) // s + 1 for n, k, s in zip(padded, kernel_size, stride))


def _check_conv_args(x, w, b, stride, padding):
    """Validate the arguments of a convolution forward pass; return stride, padding, output size."""
    check_array(x, "x", ("N", "C", "H", "W"))
    check_array(w, "w", ("F", "C", "KH", "KW"), known={"C": x.shape[1]})
    check_array(b, "b", ("F",), known={"F": w.shape[0]})
    stride = as_pair(stride, "stride", minimum=1)
    padding = as_pair(padding, "padding", minimum=0)
    out_size = output_size(x.shape[2:], w.shape[2:], stride, padding)
    return stride, padding, out_size


def _check_dout(dout, cache):
    """Validate the upstream gradient of a convolution against its cache."""
    H_out, W_out = output_size(cache.x_padded.shape[2:], cache.w.shape[2:], cache.stride, (0, 0))
    known = {"N": cache.x_padded.shape[0], "F": cache.w.shape[0], "H_out": H_out, "W_out": W_out}
    check_array(dout, "dout", ("N", "F", "H_out", "W_out"), known=known)


def offset_index(p, q, out_size, stride):
    """Index of the input pixels that kernel offset ``(p, q)`` meets, over all output positions.

    Output position ``(i, j)`` reads input pixel ``(SH i + p, SW j + q)`` at offset ``(p, q)``, so
    for a fixed offset these pixels form one strided slice. Looping over the ``KH*KW`` offsets
    and using whole slices is what keeps the fast passes free of loops over positions.

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
        For an array of shape ``(N, C, H, W)``; selects a block of shape ``(N, C, H_out, W_out)``.
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


def _crop(x_padded, padding):
    """Remove ``padding`` from the spatial axes (the adjoint of ``pad``)."""
    PH, PW = padding
    H, W = x_padded.shape[2] - 2 * PH, x_padded.shape[3] - 2 * PW
    return x_padded[:, :, PH:PH + H, PW:PW + W]


def conv2d_forward_naive(x, w, b, stride=1, padding=0):
    """Convolution forward pass with explicit loops, for teaching and as the reference in tests.

    ``out[n, f, i, j] = b[f] + sum over c, p, q of w[f, c, p, q] * x_padded[n, c, SH i + p, SW j + q]``.
    Implements eq-conv-forward, looping over every sample, filter and output position.

    Arguments, results and errors are those of ``conv2d_forward``: ``x : (N, C, H, W)``,
    ``w : (F, C, KH, KW)``, ``b : (F,)`` give ``out : (N, F, H_out, W_out)`` and a ``ConvCache``
    (whose ``cols`` is ``None``).
    """
    stride, padding, (H_out, W_out) = _check_conv_args(x, w, b, stride, padding)
    (SH, SW), (F, _, KH, KW) = stride, w.shape
    x_padded = pad(x, padding)
    w, b = w.astype(x.dtype, copy=False), b.astype(x.dtype, copy=False)
    out = np.zeros((x.shape[0], F, H_out, W_out), dtype=x.dtype)
    for n in range(x.shape[0]):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    window = x_padded[n, :, SH * i:SH * i + KH, SW * j:SW * j + KW]
                    out[n, f, i, j] = np.sum(window * w[f]) + b[f]
    return out, ConvCache(x_padded, w, stride, padding)


def conv2d_backward_naive(dout, cache):
    """Convolution backward pass with explicit loops, mirroring ``conv2d_forward_naive``.

    Every output position ``(n, f, i, j)`` sends ``dout[n, f, i, j] * w[f]`` back to the window of
    ``x_padded`` it read (eq-conv-dx), adds ``dout[n, f, i, j]`` times that window to ``dw[f]``
    (eq-conv-dw) and ``dout[n, f, i, j]`` to ``db[f]`` (eq-conv-db). Windows that overlap
    accumulate. The padded border of the gradient is then cropped.

    Arguments and results are those of ``conv2d_backward``: ``dout : (N, F, H_out, W_out)`` and a
    ``ConvCache`` from either forward pass give ``dx : (N, C, H, W)``, ``dw : (F, C, KH, KW)`` and
    ``db : (F,)``.
    """
    _check_dout(dout, cache)
    x_padded, w, (SH, SW), padding = cache.x_padded, cache.w, cache.stride, cache.padding
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
    return _crop(dx_padded, padding), dw, db


def im2col(x_padded, kernel_size, stride):
    """Lay out every receptive field of ``x_padded`` as a column.

    ``cols[n, (c, p, q), (i, j)] = x_padded[n, c, SH i + p, SW j + q]``, with the row index
    ``(c, p, q)`` flattened in C order to ``c KH KW + p KW + q`` and the column index to
    ``i W_out + j``. Implements eq-im2col: the convolution then becomes the matrix product
    ``w.reshape(F, C*KH*KW) @ cols[n]`` for each sample.

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
    # windows: (N, C, H_out, W_out, KH, KW), a view; the reshape below makes the one copy.
    windows = sliding_window_view(x_padded, (KH, KW), axis=(2, 3))[:, :, ::SH, ::SW]
    H_out, W_out = windows.shape[2:4]
    return windows.transpose(0, 1, 4, 5, 2, 3).reshape(N, C * KH * KW, H_out * W_out)


def col2im(dcols, x_padded_shape, kernel_size, stride):
    """Scatter-add columns back to image positions: the adjoint (transpose) of ``im2col``.

    Each entry of ``dcols`` is added to the pixel of the padded input that ``im2col`` copied it
    from; pixels covered by several windows accumulate. Loops over the ``KH*KW`` kernel offsets
    only: each offset adds one strided slice.

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


PER_OFFSET_MIN_CHANNELS = 8
"""From this many input channels on, ``conv2d_backward`` forms ``dx`` with ``dx_by_offset``.

With fewer channels the per-offset products ``(C, F) @ (F, H_out*W_out)`` are too thin for BLAS
to run at full speed, and one product followed by ``col2im`` is faster (book/performance.md).
"""


def covers_input(x_shape, out_size, stride):
    """Whether every input pixel has a place on the output grid of its stride phase.

    Input row ``r`` belongs to stride phase ``r % SH`` and sits in row ``r // SH`` of it; the
    phases fit on the ``(H_out, W_out)`` grid when ``ceil(H / SH) <= H_out`` and likewise for the
    width. That holds for "same" padding (``P >= (K - 1) / 2``), the usual case, and is what
    ``dx_by_offset`` needs.

    Parameters
    ----------
    x_shape : tuple of four ints
        ``(N, C, H, W)``, the shape of the forward input.
    out_size : tuple of two ints
        ``(H_out, W_out)``.
    stride : tuple of two ints
        ``(SH, SW)``.

    Returns
    -------
    bool
    """
    (H, W), (H_out, W_out), (SH, SW) = x_shape[2:], out_size, stride
    return -(-H // SH) <= H_out and -(-W // SW) <= W_out


def _leaving(shift, size):
    """The indices ``i`` of an axis of length ``size`` for which ``i + shift`` leaves it."""
    return slice(size - shift, None) if shift >= 0 else slice(None, -shift)


BLOCK_BYTES = 2**18
"""``dx_by_offset`` works on as many samples at a time as make a product block of about this
size, so that the block and the part of ``dx`` it is added to stay in the processor's cache."""


def dx_by_offset(dout, w, x_shape, stride, padding):
    """``crop(col2im(w.reshape(F, -1).T @ dout))``, one kernel offset at a time, with flat adds.

    Output position ``(i, j)`` sends, through kernel offset ``(p, q)``, the block
    ``w[:, :, p, q].T @ dout[n]`` to input pixel ``(SH i + p - PH, SW j + q - PW)`` (eq-conv-dx).
    That pixel lies in the stride phase ``(a, b) = ((p - PH) % SH, (q - PW) % SW)`` of ``dx``
    (the pixels ``dx[:, :, a::SH, b::SW]``), at ``(i + dr, j + dc)`` with
    ``dr = (p - PH) // SH`` and ``dc = (q - PW) // SW``: a shift by whole rows and columns. With
    every phase stored on the ``(H_out, W_out)`` grid and flattened over ``(n, c, i, j)``, that
    shift is one offset ``dr W_out + dc`` along a 1-D array, so the add is a single contiguous
    NumPy operation over many samples. Entries whose shifted place leaves the grid would wrap
    into the next row or plane; they are zeroed first. Needs ``covers_input``.

    The samples go through in blocks of about ``BLOCK_BYTES``, so that each product is still in
    the cache when it is added, and each block's phases are still there when they are
    interleaved into ``dx``. Implements eq-conv-dx.

    Parameters
    ----------
    dout : numpy.ndarray
        Upstream gradient, shape ``(N, F, H_out, W_out)``.
    w : numpy.ndarray
        Kernels, shape ``(F, C, KH, KW)``, dtype of ``dout``.
    x_shape : tuple of four ints
        ``(N, C, H, W)``, the shape of the forward input.
    stride, padding : tuple of two ints
        ``(SH, SW)`` and ``(PH, PW)``.

    Returns
    -------
    dx : numpy.ndarray
        Shape ``(N, C, H, W)``, dtype of ``dout``.

    Raises
    ------
    ValueError
        If the output grid does not cover the input (see ``covers_input``).
    """
    (N, F, H_out, W_out), (_, C, KH, KW) = dout.shape, w.shape
    if not covers_input(x_shape, (H_out, W_out), stride):
        raise ValueError(
            f"dx_by_offset needs an output grid (H_out, W_out) = {(H_out, W_out)} that covers "
            f"the input (H, W) = {tuple(x_shape[2:])} at stride {tuple(stride)}; use col2im"
        )
    (SH, SW), (PH, PW), M = stride, padding, H_out * W_out
    dout = dout.reshape(N, F, M)
    shifts = {(p, q): ((p - PH) // SH, (q - PW) // SW) for p, q in np.ndindex(KH, KW)}
    # A phase has at most one unshifted offset; done first, its product is written straight
    # into the phase, which then needs no zeroing.
    shifts = sorted(shifts.items(), key=lambda item: item[1] != (0, 0))
    unshifted = {((p - PH) % SH, (q - PW) % SW) for (p, q), s in shifts if s == (0, 0)}
    # Contiguous (C, F) matrices: BLAS cannot take the strided view w[:, :, p, q].T as it is.
    w_t = np.ascontiguousarray(w.transpose(2, 3, 1, 0))
    n_block = min(N, max(1, BLOCK_BYTES // (C * M * dout.itemsize)))
    block = np.empty((n_block, C, M), dtype=dout.dtype)
    phases = np.empty((SH, SW, n_block, C * M), dtype=dout.dtype)
    dx = np.empty(x_shape, dtype=dout.dtype)
    for start in range(0, N, n_block):
        samples = slice(start, start + n_block)
        n = min(n_block, N - start)
        prod, ph = block[:n], phases[:, :, :n]
        grid, flat = prod.reshape(n, C, H_out, W_out), prod.reshape(-1)
        for a, b in set(np.ndindex(SH, SW)) - unshifted:
            ph[a, b] = 0
        for (p, q), (dr, dc) in shifts:
            phase = ph[(p - PH) % SH, (q - PW) % SW].reshape(-1)
            if (dr, dc) == (0, 0):
                np.matmul(w_t[p, q], dout[samples], out=phase.reshape(prod.shape))
            elif abs(dr) < H_out and abs(dc) < W_out:
                np.matmul(w_t[p, q], dout[samples], out=prod)
                grid[:, :, _leaving(dr, H_out)] = 0
                grid[:, :, :, _leaving(dc, W_out)] = 0
                s = dr * W_out + dc
                if s >= 0:
                    phase[s:] += flat[:flat.size - s]
                else:
                    phase[:s] += flat[-s:]
        ph = ph.reshape(SH, SW, n, C, H_out, W_out)
        for a, b in np.ndindex(SH, SW):
            dx_ab = dx[samples, :, a::SH, b::SW]
            dx_ab[...] = ph[a, b, :, :, :dx_ab.shape[2], :dx_ab.shape[3]]
    return dx


def conv2d_forward(x, w, b, stride=1, padding=0):
    """Convolution forward pass, vectorised with im2col and one batched matrix product.

    Computes eq-conv-forward as ``w.reshape(F, C*KH*KW) @ cols`` where ``cols = im2col(x_padded)``
    (eq-im2col) has shape ``(N, C*KH*KW, H_out*W_out)``: the product has shape
    ``(N, F, H_out*W_out)``, which is already NCHW once reshaped. No Python loop runs over samples
    or output positions.

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
        Shape ``(N, F, H_out, W_out)``, ``H_out = (H + 2 PH - KH) // SH + 1`` (eq-conv-out-size).
        The arithmetic runs in the dtype of ``x`` and ``out`` has that dtype.
    cache : ConvCache
        For ``conv2d_backward``.

    Raises
    ------
    TypeError
        If an array is not a floating-point ndarray, or stride/padding are not ints or pairs.
    ValueError
        On a wrong rank, mismatched channels or biases, NaN/inf, stride < 1, padding < 0, or a
        kernel larger than the padded input; the message names the argument and both shapes.
    """
    stride, padding, (H_out, W_out) = _check_conv_args(x, w, b, stride, padding)
    N, F = x.shape[0], w.shape[0]
    x_padded = pad(x, padding)
    w, b = w.astype(x.dtype, copy=False), b.astype(x.dtype, copy=False)
    cols = im2col(x_padded, w.shape[2:], stride)
    out = w.reshape(F, -1) @ cols
    out += b[:, None]
    return out.reshape(N, F, H_out, W_out), ConvCache(x_padded, w, stride, padding, cols)


def conv2d_backward(dout, cache):
    """Convolution backward pass with matrix products and col2im.

    With ``dout`` viewed as ``(N, F, H_out*W_out)`` and ``cols`` the im2col matrix:
    ``db = dout.sum((0, 2, 3))`` (eq-conv-db); ``dw = sum over n of dout[n] @ cols[n].T``
    (eq-conv-dw); ``dcols = w.reshape(F, -1).T @ dout`` and ``dx = crop(col2im(dcols))``
    (eq-conv-dx). From ``PER_OFFSET_MIN_CHANNELS`` input channels on, when the output grid
    ``covers_input``, the last two steps run offset by offset (``dx_by_offset``), which is faster
    for wide layers. No Python loop runs over output positions.

    Parameters
    ----------
    dout : numpy.ndarray
        Upstream gradient, shape ``(N, F, H_out, W_out)``.
    cache : ConvCache
        From ``conv2d_forward`` (or ``conv2d_forward_naive``, whose ``cols`` is rebuilt here).

    Returns
    -------
    dx : numpy.ndarray
        Shape ``(N, C, H, W)``, dtype of the forward input.
    dw : numpy.ndarray
        Shape ``(F, C, KH, KW)``.
    db : numpy.ndarray
        Shape ``(F,)``.
    """
    _check_dout(dout, cache)
    x_padded, w, stride = cache.x_padded, cache.w, cache.stride
    cols = im2col(x_padded, w.shape[2:], stride) if cache.cols is None else cache.cols
    (N, F), C = dout.shape[:2], w.shape[1]
    dout = dout.astype(x_padded.dtype, copy=False)
    dout_r = dout.reshape(N, F, -1)
    db = dout_r.sum(axis=(0, 2))
    # Products of shape (N, K, F) summed over the batch are faster than (N, F, K) ones.
    dw = (cols @ dout_r.transpose(0, 2, 1)).sum(axis=0).T.reshape(w.shape)
    x_shape = _crop(x_padded, cache.padding).shape
    if C >= PER_OFFSET_MIN_CHANNELS and covers_input(x_shape, dout.shape[2:], stride):
        return dx_by_offset(dout, w, x_shape, stride, cache.padding), dw, db
    dx_padded = col2im(w.reshape(F, -1).T @ dout_r, x_padded.shape, w.shape[2:], stride)
    return _crop(dx_padded, cache.padding), dw, db
