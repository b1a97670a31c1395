"""The transposed convolution that ``ConvTranspose2D`` runs: the same numbers, faster.

A transposed convolution's forward pass is a convolution's input gradient (eq-conv-dx),
so it can use the tuned ``dx_by_offset`` of ``cnn.fast.conv`` instead of one product
followed by ``col2im``: for wide layers that is the faster way to form ``dx``, and so
also the faster way to form this output. The backward pass is that of
``cnn.conv_transpose`` (a convolution's forward pass and its weight gradient, from one
im2col) with the weight gradient's products in the order BLAS runs faster. Signatures
and the cache are those of ``cnn.conv_transpose``.
"""

from __future__ import annotations

from cnn.conv import im2col, pad
from cnn.conv_transpose import (
    ConvTransposeCache,
    _check_args,
    _check_dout,
    conv_transpose2d_forward,
)
from cnn.fast.conv import PER_OFFSET_MIN_CHANNELS, covers_input, dx_by_offset


def conv_transpose2d_backward_fast(dout, cache):
    """``cnn.conv_transpose.conv_transpose2d_backward``, tuned: same arguments, results.

    ``dw`` (eq-convt-dw) comes from products of shape ``(N, K, C_in)`` summed over the
    batch and transposed once, which BLAS runs faster than the ``(N, C_in, K)`` ones of
    the plain version, as for ``cnn.fast.conv.conv2d_backward_fast``; ``dx`` and ``db``
    as there (eq-convt-dx, eq-convt-db).
    """
    dout = _check_dout(dout, cache)
    x, w = cache.x, cache.w
    N, C_in, H, W = x.shape
    cols = im2col(pad(dout, cache.padding), w.shape[2:], cache.stride)
    x_r = x.reshape(N, C_in, H * W)
    dx = (w.reshape(C_in, -1) @ cols).reshape(x.shape)
    dw = (cols @ x_r.transpose(0, 2, 1)).sum(axis=0).T.reshape(w.shape)
    return dx, dw, dout.sum(axis=(0, 2, 3))


def conv_transpose2d_forward_fast(x, w, b, stride=1, padding=0, output_padding=0):
    """``cnn.conv_transpose.conv_transpose2d_forward``, tuned: same arguments, results.

    Implements eq-convt-forward as the input gradient of the convolution with kernels
    ``w`` (shape ``(F, C) = (C_in, C_out)``), formed by ``dx_by_offset`` from
    ``PER_OFFSET_MIN_CHANNELS`` output channels on when the input grid covers the output
    (``covers_input``), and by the vectorised ``col2im`` version otherwise.

    Parameters
    ----------
    x : numpy.ndarray
        Input, shape ``(N, C_in, H, W)``.
    w : numpy.ndarray
        Kernels, shape ``(C_in, C_out, KH, KW)``.
    b : numpy.ndarray
        Biases, shape ``(C_out,)``.
    stride, padding, output_padding : int or tuple of two ints
        As for ``conv_transpose2d_forward``.

    Returns
    -------
    out : numpy.ndarray
        Shape ``(N, C_out, H_out, W_out)`` (eq-convt-out-size), dtype of ``x``.
    cache : ConvTransposeCache
    """
    args = _check_args(x, w, b, stride, padding, output_padding)
    w, b, stride, padding, output_padding, size = args
    out_shape = (x.shape[0], w.shape[1]) + size
    if w.shape[1] < PER_OFFSET_MIN_CHANNELS or not covers_input(out_shape, x.shape[2:],
                                                                 stride):
        return conv_transpose2d_forward(x, w, b, stride, padding, output_padding)
    out = dx_by_offset(x, w, out_shape, stride, padding)
    out += b[:, None, None]
    return out, ConvTransposeCache(x, w, stride, padding, output_padding)
