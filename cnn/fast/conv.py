"""The convolution that ``Conv2D`` runs: ``cnn.conv``'s numbers in less time.

``conv2d_forward_fast`` is ``cnn.conv.conv2d_forward`` (im2col and one batched product
over the group axis) done for a block of samples at a time, whose columns stay in the
processor's cache, except for depthwise convolutions, which it forms kernel offset by
kernel offset, as ``conv2d_backward_fast`` then does too. Otherwise
``conv2d_backward_fast`` differs from ``cnn.conv.conv2d_backward`` in three ways, each
measured in the chapter "Making it fast": it rebuilds the columns block by block
instead of keeping those of the whole batch, ``dw`` comes from products of shape
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
    crop,
    im2col,
    offset_index,
    pad,
)


def is_depthwise(w_shape, groups):
    """Whether filters ``w_shape = (F, C // groups, KH, KW)`` are depthwise: one filter
    per channel (``groups = C = F``)."""
    return w_shape[1] == 1 and w_shape[0] == groups


COLS_BLOCK_BYTES = 2**20
"""Size in bytes of the block of im2col columns that the tuned pair builds at a time.

The columns of a few samples, built, multiplied and dropped while they are still in
the processor's cache, instead of those of the whole batch, which for a wide layer are
tens of megabytes that go out to memory and back (book/performance.md)."""


def sample_blocks(N, bytes_per_sample, block_bytes):
    """Slices of ``range(N)`` of about ``block_bytes`` each (at least one sample)."""
    n_block = min(N, max(1, block_bytes // max(1, bytes_per_sample)))
    return [slice(start, start + n_block) for start in range(0, N, n_block)]


def conv2d_forward_fast(x, w, b, stride=1, padding=0, dilation=1, groups=1):
    """``cnn.conv.conv2d_forward`` by blocks of samples; depthwise offset by offset.

    The im2col columns of ``COLS_BLOCK_BYTES`` worth of samples at a time are built and
    multiplied, one batched product over the group axis (eq-gconv-forward; dilation
    through im2col's strided views), the bias added while the block is in the cache;
    the cache keeps no columns and ``conv2d_backward_fast`` rebuilds them block by
    block. A depthwise convolution (``groups = C = F``) is ``KH KW`` products per
    pixel and channel: im2col would copy every pixel ``KH KW`` times for products of
    one row. Instead each kernel offset ``(p, q)`` adds ``w[:, 0, p, q]`` times the
    strided slice ``offset_index(p, q)`` of the padded input (at stride 1 a contiguous
    run of the flat padded image, ``_flat_offsets``; eq-dconv-forward with one channel
    per group), block by block. Arguments and results are those of
    ``conv2d_forward``.
    """
    w, b, stride, padding, dilation, G, out_size = _check_conv_args(
        x, w, b, stride, padding, dilation, groups)
    x_padded = pad(x, padding)
    N, F, M = x.shape[0], w.shape[0], out_size[0] * out_size[1]
    cache = ConvCache(x_padded, w, stride, padding, None, dilation, G)
    if is_depthwise(w.shape, G):
        return _depthwise_forward(x_padded, w, b, stride, dilation, out_size), cache
    kernel, K = w.shape[2:], w[0].size
    w_g, b_g = w.reshape(G, F // G, K), b.reshape(G, F // G, 1)
    out = np.empty((N, G, F // G, M), dtype=x.dtype)
    for block in sample_blocks(N, G * K * M * x.itemsize, COLS_BLOCK_BYTES):
        cols = im2col(x_padded[block], kernel, stride, dilation)
        out_block = out[block]
        np.matmul(w_g, cols.reshape(len(out_block), G, K, M), out=out_block)
        out_block += b_g
    return out.reshape(N, F, *out_size), cache


DEPTHWISE_BLOCK_BYTES = 2**18
"""Size in bytes of the block of output (and of its temporary) that a depthwise pass
forms at a time: the ``KH KW`` multiply-adds of a block then run in the cache."""


def _flat_offsets(w_shape, x_padded_shape, out_size, dilation):
    """Where the offsets of a stride-1 depthwise convolution start in a flat image.

    With the padded image flattened row by row (width ``Wp``), output position
    ``(i, j)`` and kernel offset ``(p, q)`` read entry ``i Wp + j + DH p Wp + DW q``:
    on the grid of ``H_out`` rows of ``Wp`` positions (the output's ``W_out`` columns
    and ``Wp - W_out`` spare ones) an offset is one shift ``DH p Wp + DW q`` along
    the flat image, and its window one contiguous run of ``L = (H_out - 1) Wp +
    W_out`` entries, without the per-row cost of a strided slice. Returns ``L`` and
    the ``KH KW`` shifts, in the order of ``np.ndindex(KH, KW)``.
    """
    Wp, (H_out, W_out), (DH, DW) = x_padded_shape[3], out_size, dilation
    shifts = [DH * p * Wp + DW * q for p, q in np.ndindex(w_shape[2:])]
    return (H_out - 1) * Wp + W_out, shifts


def _depthwise_forward(x_padded, w, b, stride, dilation, out_size):
    """The depthwise pass of ``conv2d_forward_fast``: ``out : (N, F, *out_size)``.

    At stride 1 the windows are runs of the flat image (``_flat_offsets``)."""
    (N, C, Hp, Wp), (H_out, W_out) = x_padded.shape, out_size
    out = np.empty((N, C, *out_size), dtype=x_padded.dtype)
    if stride == (1, 1):
        L, shifts = _flat_offsets(w.shape, x_padded.shape, out_size, dilation)
        flat, taps = x_padded.reshape(N, C, Hp * Wp), w.reshape(C, -1, 1)
        blocks = sample_blocks(N, C * H_out * Wp * out.itemsize, DEPTHWISE_BLOCK_BYTES)
        # The block on the grid, then its output columns copied out while in the cache.
        grid = np.empty((len(out[blocks[0]]), C, H_out * Wp), dtype=out.dtype)
        term = np.empty_like(grid[..., :L])
        for block in blocks:
            n = len(out[block])
            acc = grid[:n, :, :L]
            acc[...] = b[:, None]
            for k, shift in enumerate(shifts):
                acc += np.multiply(flat[block, :, shift:shift + L], taps[:, k],
                                   out=term[:n])
            out[block] = grid[:n].reshape(n, C, H_out, Wp)[..., :W_out]
        return out
    taps = w[:, 0, :, :, None, None]
    blocks = sample_blocks(N, out[0].nbytes, DEPTHWISE_BLOCK_BYTES)
    term = np.empty_like(out[blocks[0]])
    for block in blocks:
        out_block = out[block]
        out_block[...] = b[:, None, None]
        for p, q in np.ndindex(w.shape[2:]):
            window = x_padded[block][offset_index(p, q, out_size, stride, dilation)]
            out_block += np.multiply(window, taps[:, p, q], out=term[:len(out_block)])
    return out


def _depthwise_backward(dout, cache):
    """``conv2d_backward`` of a depthwise convolution, offset by offset (see
    ``conv2d_forward_fast``): ``dw[:, 0, p, q]`` sums ``dout`` times the slice of
    offset ``(p, q)``, and ``dout w[:, 0, p, q]`` is added back onto that slice of
    ``dx_padded``: the two gradients of the dilated convolution, as
    ``conv2d_backward_fast`` states them. Block by block of samples, as the forward
    pass; at stride 1 on the flat image, with ``dout`` spread on the grid of
    ``_flat_offsets`` (zeros in the spare columns, which so add nothing)."""
    x_padded, w = cache.x_padded, cache.w
    (N, F, H_out, W_out), Wp = dout.shape, x_padded.shape[3]
    db = dout.sum(axis=(0, 2, 3))
    dw = np.zeros((F, w.shape[2] * w.shape[3]), dtype=w.dtype)
    dx_padded = np.zeros_like(x_padded)
    if cache.stride == (1, 1):
        L, shifts = _flat_offsets(w.shape, x_padded.shape, (H_out, W_out),
                                  cache.dilation)
        flat, dx_flat = x_padded.reshape(N, F, -1), dx_padded.reshape(N, F, -1)
        taps = w.reshape(F, -1, 1)
        blocks = sample_blocks(N, F * H_out * Wp * dout.itemsize, DEPTHWISE_BLOCK_BYTES)
        # A block of dout on the grid; its spare columns stay zero.
        grid = np.zeros((len(dout[blocks[0]]), F, H_out, Wp), dtype=dout.dtype)
        term = np.empty_like(grid.reshape(len(grid), F, -1)[..., :L])
        for block in blocks:
            n = len(dout[block])
            grid[:n, ..., :W_out] = dout[block]
            d = grid[:n].reshape(n, F, -1)[..., :L]
            for k, shift in enumerate(shifts):
                window = slice(shift, shift + L)
                dw[:, k] += np.linalg.vecdot(d, flat[block, :, window]).sum(axis=0)
                dx_flat[block, :, window] += np.multiply(d, taps[:, k], out=term[:n])
        return crop(dx_padded, cache.padding), dw.reshape(w.shape), db
    taps = w[:, 0, :, :, None, None]
    blocks = sample_blocks(N, dout[0].nbytes, DEPTHWISE_BLOCK_BYTES)
    term = np.empty_like(dout[blocks[0]])
    for block in blocks:
        dout_block, x_block, dx_block = dout[block], x_padded[block], dx_padded[block]
        n = len(dout_block)
        for k, (p, q) in enumerate(np.ndindex(w.shape[2:])):
            index = offset_index(p, q, (H_out, W_out), cache.stride, cache.dilation)
            product = np.multiply(dout_block, x_block[index], out=term[:n])
            dw[:, k] += product.reshape(n, F, -1).sum(axis=2).sum(axis=0)
            dx_block[index] += np.multiply(dout_block, taps[:, p, q], out=term[:n])
    return crop(dx_padded, cache.padding), dw.reshape(w.shape), db


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


def dx_by_offset(dout, w, x_shape, stride, padding, dilation=(1, 1), groups=1):
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
    they are interleaved into ``dx``. With ``groups`` the product of an offset is one
    batched product over the group axis, as in the forward pass. Implements eq-conv-dx.

    Parameters
    ----------
    dout : numpy.ndarray
        Upstream gradient, shape ``(N, F, H_out, W_out)``.
    w : numpy.ndarray
        Kernels, shape ``(F, C // groups, KH, KW)``, dtype of ``dout``.
    x_shape : tuple of four ints
        ``(N, C, H, W)``, the shape of the forward input.
    stride, padding, dilation : tuple of two ints
        ``(SH, SW)``, ``(PH, PW)`` and ``(DH, DW)``.
    groups : int
        ``G``, a divisor of ``C`` and ``F``.

    Returns
    -------
    dx : numpy.ndarray
        Shape ``(N, C, H, W)``, dtype of ``dout``.

    Raises
    ------
    ValueError
        If the output grid does not cover the input (see ``covers_input``).
    """
    (N, F, H_out, W_out), (_, C_g, KH, KW), G = dout.shape, w.shape, groups
    C = C_g * G
    if not covers_input(x_shape, (H_out, W_out), stride):
        raise ValueError(
            f"dx_by_offset needs an output grid (H_out, W_out) = {(H_out, W_out)} "
            f"that covers the input (H, W) = {tuple(x_shape[2:])} at stride "
            f"{tuple(stride)}; use col2im"
        )
    (SH, SW), (PH, PW), (DH, DW), M = stride, padding, dilation, H_out * W_out
    dout = dout.reshape(N, G, F // G, M)

    def phase_of(p, q):
        return (DH * p - PH) % SH, (DW * q - PW) % SW

    shifts = {(p, q): ((DH * p - PH) // SH, (DW * q - PW) // SW)
              for p, q in np.ndindex(KH, KW)}
    # A phase has at most one unshifted offset; done first, its product is written
    # straight into the phase, which then needs no zeroing.
    shifts = sorted(shifts.items(), key=lambda item: item[1] != (0, 0))
    unshifted = {phase_of(p, q) for (p, q), s in shifts if s == (0, 0)}
    # Contiguous (G, C // G, F // G) matrices: BLAS cannot take the strided view
    # w[:, :, p, q].T.
    w_t = w.reshape(G, F // G, C_g, KH, KW).transpose(3, 4, 0, 2, 1)
    w_t = np.ascontiguousarray(w_t)
    n_block = min(N, max(1, BLOCK_BYTES // (C * M * dout.itemsize)))
    block = np.empty((n_block, C, M), dtype=dout.dtype)
    phases = np.empty((SH, SW, n_block, C * M), dtype=dout.dtype)
    dx = np.empty(x_shape, dtype=dout.dtype)
    for start in range(0, N, n_block):
        samples = slice(start, start + n_block)
        n = min(n_block, N - start)
        prod, ph = block[:n], phases[:, :, :n]
        grid, flat = prod.reshape(n, C, H_out, W_out), prod.reshape(-1)
        per_group = (n, G, C_g, M)
        for a, b in set(np.ndindex(SH, SW)) - unshifted:
            ph[a, b] = 0
        for (p, q), (dr, dc) in shifts:
            phase = ph[phase_of(p, q)].reshape(-1)
            if (dr, dc) == (0, 0):
                np.matmul(w_t[p, q], dout[samples], out=phase.reshape(per_group))
            elif abs(dr) < H_out and abs(dc) < W_out:
                np.matmul(w_t[p, q], dout[samples], out=prod.reshape(per_group))
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
    transposed once (eq-conv-dw), with the columns rebuilt (unless the cache has them)
    ``COLS_BLOCK_BYTES`` at a time, as the forward pass builds them; ``dx`` by
    ``dx_by_offset`` from ``PER_OFFSET_MIN_CHANNELS`` input channels per group on when
    the output grid ``covers_input``, by a product and ``col2im`` per block of samples
    otherwise (eq-conv-dx).

    Arguments and results are those of ``cnn.conv.conv2d_backward``:
    ``dout : (N, F, H_out, W_out)`` and a ``ConvCache`` from any convolution forward
    pass give ``dx : (N, C, H, W)``, ``dw : (F, C // groups, KH, KW)`` and
    ``db : (F,)``.
    """
    dout = _check_dout(dout, cache)
    if is_depthwise(cache.w.shape, cache.groups):
        return _depthwise_backward(dout, cache)
    x_padded, w, G, kernel = cache.x_padded, cache.w, cache.groups, cache.w.shape[2:]
    stride, dilation = cache.stride, cache.dilation
    (N, F), (C_g, K), M = dout.shape[:2], (w.shape[1], w[0].size), dout[0, 0].size
    dout_g = dout.reshape(N, G, F // G, M)
    db = dout_g.sum(axis=(0, 3)).reshape(F)
    x_shape = crop(x_padded, cache.padding).shape
    by_offset = (C_g >= PER_OFFSET_MIN_CHANNELS
                 and covers_input(x_shape, dout.shape[2:], stride))
    dx_padded = None if by_offset else np.empty_like(x_padded)
    w_t = w.reshape(G, F // G, K).transpose(0, 2, 1)
    dw_t = np.zeros((G, K, F // G), dtype=w.dtype)
    for block in sample_blocks(N, G * K * M * dout.itemsize,
                                COLS_BLOCK_BYTES):
        if cache.cols is None:
            cols = im2col(x_padded[block], kernel, stride, dilation)
        else:
            cols = cache.cols[block]
        cols, dout_block = cols.reshape(-1, G, K, M), dout_g[block]
        # Products of shape (K, F) summed over the batch are faster than (F, K) ones.
        dw_t += (cols @ dout_block.transpose(0, 1, 3, 2)).sum(axis=0)
        if dx_padded is not None:
            dcols = (w_t @ dout_block).reshape(len(cols), G * K, M)
            dx_padded[block] = col2im(dcols, dx_padded[block].shape, kernel, stride,
                                      dilation)
    dw = dw_t.transpose(0, 2, 1).reshape(w.shape)
    if by_offset:
        dx = dx_by_offset(dout, w, x_shape, stride, cache.padding, dilation, G)
        return dx, dw, db
    return crop(dx_padded, cache.padding), dw, db
