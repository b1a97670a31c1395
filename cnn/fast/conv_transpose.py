"""The transposed convolution that ``ConvTranspose2D`` runs: the same numbers, faster.

A transposed convolution's forward pass is a convolution's input gradient (eq-conv-dx),
so it can use the tuned ``dx_by_offset`` of ``cnn.fast.conv`` instead of one product
followed by ``col2im``: for wide layers that is the faster way to form ``dx``, and so
also the faster way to form this output. The backward pass is the vectorised one of
``cnn.conv_transpose``: a convolution's forward pass and its weight gradient, from one
im2col. Signatures and the cache are those of ``cnn.conv_transpose``.
"""

from __future__ import annotations

from cnn.conv_transpose import (
    ConvTransposeCache,
    _check_args,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
)
from cnn.fast.conv import PER_OFFSET_MIN_CHANNELS, covers_input, dx_by_offset

conv_transpose2d_backward_fast = conv_transpose2d_backward


def conv_transpose2d_forward_fast(x, w, b, stride=1, padding=0):
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
    stride, padding : int or tuple of two ints
        As for ``conv_transpose2d_forward``.

    Returns
    -------
    out : numpy.ndarray
        Shape ``(N, C_out, H_out, W_out)`` (eq-convt-out-size), dtype of ``x``.
    cache : ConvTransposeCache
    """
    w, b, stride, padding, size = _check_args(x, w, b, stride, padding)
    out_shape = (x.shape[0], w.shape[1]) + size
    if w.shape[1] < PER_OFFSET_MIN_CHANNELS or not covers_input(out_shape, x.shape[2:],
                                                                 stride):
        return conv_transpose2d_forward(x, w, b, stride, padding)
    out = dx_by_offset(x, w, out_shape, stride, padding)
    out += b[:, None, None]
    return out, ConvTransposeCache(x, w, stride, padding)
