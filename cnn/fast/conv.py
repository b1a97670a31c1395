"""The convolution that ``Conv2D`` runs: ``cnn.conv``'s numbers in less time.

``conv2d_forward_fast`` is ``cnn.conv.conv2d_forward`` (im2col and one product already
run at the speed of the product), except for depthwise convolutions, which it forms
kernel offset by kernel offset, as ``conv2d_backward_fast`` then does too. Otherwise
``conv2d_backward_fast`` differs from ``cnn.conv.conv2d_backward`` in two ways, each
measured in the chapter "Making it fast": ``dw`` comes from products of shape
``(N, K, F)``, which BLAS runs faster than ``(N, F, K)``, and for wide layers ``dx`` is
formed kernel offset by kernel offset (``dx_by_offset``) instead of by one product and
``col2im``. Signatures and the cache are those of ``cnn.conv``, so the tests compare
the pairs directly.
"""

from __future__ import annotations

import numpy as np

from cnn.conv import (
    ConvCache,
    _check_conv_args,
    _check_dout,
    col2im,
    conv2d_forward,
    crop,
    im2col,
    offset_index,
    pad,
)


def is_depthwise(w_shape, groups):
    """Whether filters ``w_shape = (F, C // groups, KH, KW)`` are depthwise: one filter
    per channel (``groups = C = F``)."""
    return w_shape[1] == 1 and w_shape[0] == groups


def conv2d_forward_fast(x, w, b, stride=1, padding=0, dilation=1, groups=1):
    """``cnn.conv.conv2d_forward``, with a depthwise convolution done offset by offset.

    A depthwise convolution (``groups = C = F``) is ``KH KW`` products per pixel and
    channel: im2col would copy every pixel ``KH KW`` times for products of one row.
    Instead each kernel offset ``(p, q)`` adds ``w[:, 0, p, q]`` times the strided
    slice ``offset_index(p, q)`` of the padded input, one pass over the output each
    (eq-dconv-forward with one channel per group). Other convolutions are
    ``conv2d_forward``'s. Arguments and results are those of ``conv2d_forward``.
    """
    if not is_depthwise(getattr(w, "shape", (0, 0)), groups):
        return conv2d_forward(x, w, b, stride, padding, dilation, groups)
    w, b, stride, padding, dilation, groups, out_size = _check_conv_args(
        x, w, b, stride, padding, dilation, groups)
    x_padded = pad(x, padding)
    out = np.empty((x.shape[0], w.shape[0], *out_size), dtype=x.dtype)
    out[...] = b[:, None, None]
    term = np.empty_like(out)
    for p, q in np.ndindex(w.shape[2:]):
        window = x_padded[offset_index(p, q, out_size, stride, dilation)]
        out += np.multiply(window, w[:, 0, p, q, None, None], out=term)
    return out, ConvCache(x_padded, w, stride, padding, None, dilation, groups)


def _depthwise_backward(dout, cache):
    """``conv2d_backward`` of a depthwise convolution, offset by offset (see
    ``conv2d_forward_fast``): ``dw[:, 0, p, q]`` sums ``dout`` times the slice of
    offset ``(p, q)``, and ``dout w[:, 0, p, q]`` is added back onto that slice of
    ``dx_padded``: the two gradients of the dilated convolution, as
    ``conv2d_backward_fast`` states them."""
    x_padded, w = cache.x_padded, cache.w
    N, F, H_out, W_out = dout.shape
    db = dout.sum(axis=(0, 2, 3))
    dw = np.empty_like(w)
    dx_padded = np.zeros_like(x_padded)
    term = np.empty_like(dout)
    flat = dout.reshape(N, F, -1)
    for p, q in np.ndindex(w.shape[2:]):
        index = offset_index(p, q, (H_out, W_out), cache.stride, cache.dilation)
        window = x_padded[index]
        dw[:, 0, p, q] = np.einsum("ncm,ncm->c", flat, window.reshape(N, F, -1))
        dx_padded[index] += np.multiply(dout, w[:, 0, p, q, None, None], out=term)
    return crop(dx_padded, cache.padding), dw, db

PER_OFFSET_MIN_CHANNELS = 8
"""From this many input channels on, ``conv2d_backward_fast`` uses ``dx_by_offset``.

With fewer channels the per-offset products ``(C, F) @ (F, H_out*W_out)`` are too thin
for BLAS to run at full speed, and one product followed by ``col2im`` is faster
(book/performance.md).
"""


def covers_input(x_shape, out_size, stride):
    """Whether every input pixel has a place on the output grid of its stride phase.

    Input row ``r`` belongs to stride phase ``r % SH`` and sits in row ``r // SH`` of
    it; the phases fit on the ``(H_out, W_out)`` grid when ``ceil(H / SH) <= H_out`` and
    likewise for the width. That holds for "same" padding (``P >= (K - 1) / 2``), the
    usual case, and is what ``dx_by_offset`` needs.

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
    """The indices ``i`` of an axis of length ``size`` where ``i + shift`` leaves it."""
    return slice(size - shift, None) if shift >= 0 else slice(None, -shift)


BLOCK_BYTES = 2**18
"""Size in bytes of the product block for which ``dx_by_offset`` groups samples.

The block, and the part of ``dx`` it is added to, then stay in the processor's cache."""


def dx_by_offset(dout, w, x_shape, stride, padding, dilation=(1, 1)):
    """``crop(col2im(w.reshape(F, -1).T @ dout))``, offset by offset, with flat adds.

    Output position ``(i, j)`` sends, through kernel offset ``(p, q)``, the block
    ``w[:, :, p, q].T @ dout[n]`` to input pixel ``(SH i + p - PH, SW j + q - PW)``
    (eq-conv-dx; ``DH p`` and ``DW q`` with dilation). That pixel lies in the stride
    phase ``(a, b) = ((p - PH) % SH, (q - PW) % SW)`` of ``dx`` (the pixels
    ``dx[:, :, a::SH, b::SW]``), at ``(i + dr, j + dc)`` with ``dr = (p - PH) // SH``
    and ``dc = (q - PW) // SW``: a shift by whole rows and columns. With every phase
    stored on the ``(H_out, W_out)`` grid and flattened over ``(n, c, i, j)``, that
    shift is one offset ``dr W_out + dc`` along a 1-D array, so the add is a single
    contiguous NumPy operation over many samples. Entries whose shifted place leaves the
    grid would wrap into the next row or plane; they are zeroed first. Needs
    ``covers_input``.

    The samples go through in blocks of about ``BLOCK_BYTES``, so that each product is
    still in the cache when it is added, and each block's phases are still there when
    they are interleaved into ``dx``. Implements eq-conv-dx.

    Parameters
    ----------
    dout : numpy.ndarray
        Upstream gradient, shape ``(N, F, H_out, W_out)``.
    w : numpy.ndarray
        Kernels, shape ``(F, C, KH, KW)``, dtype of ``dout``.
    x_shape : tuple of four ints
        ``(N, C, H, W)``, the shape of the forward input.
    stride, padding, dilation : tuple of two ints
        ``(SH, SW)``, ``(PH, PW)`` and ``(DH, DW)``.

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
            f"dx_by_offset needs an output grid (H_out, W_out) = {(H_out, W_out)} "
            f"that covers the input (H, W) = {tuple(x_shape[2:])} at stride "
            f"{tuple(stride)}; use col2im"
        )
    (SH, SW), (PH, PW), (DH, DW), M = stride, padding, dilation, H_out * W_out
    dout = dout.reshape(N, F, M)

    def phase_of(p, q):
        return (DH * p - PH) % SH, (DW * q - PW) % SW

    shifts = {(p, q): ((DH * p - PH) // SH, (DW * q - PW) // SW)
              for p, q in np.ndindex(KH, KW)}
    # A phase has at most one unshifted offset; done first, its product is written
    # straight into the phase, which then needs no zeroing.
    shifts = sorted(shifts.items(), key=lambda item: item[1] != (0, 0))
    unshifted = {phase_of(p, q) for (p, q), s in shifts if s == (0, 0)}
    # Contiguous (C, F) matrices: BLAS cannot take the strided view w[:, :, p, q].T.
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
            phase = ph[phase_of(p, q)].reshape(-1)
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


def conv2d_backward_fast(dout, cache):
    """``cnn.conv.conv2d_backward``, tuned: same arguments, same results.

    ``db`` as there (eq-conv-db); ``dw`` from the products ``cols[n] @ dout[n].T``
    transposed once (eq-conv-dw); ``dx`` by ``dx_by_offset`` from
    ``PER_OFFSET_MIN_CHANNELS`` input channels on when the output grid ``covers_input``
    and there is one group, by one product and ``col2im`` otherwise (eq-conv-dx).

    Arguments and results are those of ``cnn.conv.conv2d_backward``:
    ``dout : (N, F, H_out, W_out)`` and a ``ConvCache`` from any convolution forward
    pass give ``dx : (N, C, H, W)``, ``dw : (F, C // groups, KH, KW)`` and
    ``db : (F,)``.
    """
    dout = _check_dout(dout, cache)
    if is_depthwise(cache.w.shape, cache.groups):
        return _depthwise_backward(dout, cache)
    x_padded, w, G, kernel = cache.x_padded, cache.w, cache.groups, cache.w.shape[2:]
    stride, dilation, cols = cache.stride, cache.dilation, cache.cols
    if cols is None:
        cols = im2col(x_padded, kernel, stride, dilation)
    (N, F), C, M = dout.shape[:2], w.shape[1], dout.shape[2] * dout.shape[3]
    dout_g = dout.reshape(N, G, F // G, M)
    cols_g = cols.reshape(N, G, -1, M)
    db = dout_g.sum(axis=(0, 3)).reshape(F)
    # Products of shape (K, F) summed over the batch are faster than (F, K) ones.
    dw = (cols_g @ dout_g.transpose(0, 1, 3, 2)).sum(axis=0)
    dw = dw.transpose(0, 2, 1).reshape(w.shape)
    x_shape = crop(x_padded, cache.padding).shape
    if (G == 1 and C >= PER_OFFSET_MIN_CHANNELS
            and covers_input(x_shape, dout.shape[2:], stride)):
        dx = dx_by_offset(dout, w, x_shape, stride, cache.padding, dilation)
        return dx, dw, db
    dcols = (w.reshape(G, F // G, -1).transpose(0, 2, 1) @ dout_g).reshape(N, -1, M)
    dx_padded = col2im(dcols, x_padded.shape, kernel, stride, dilation)
    return crop(dx_padded, cache.padding), dw, db
