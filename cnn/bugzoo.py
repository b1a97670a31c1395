"""The bug zoo: backward passes that are wrong on purpose, to learn to read failures.

Every function here is BROKEN, by one mistake that readers really make, marked
``# BUG:`` in its body; each has the signature of the package function it imitates
(all are backward passes or losses, except one forward pass that breaks the tie rule
its backward pass relies on).
No layer, model or other module uses them: they exist for the chapter "Bug zoo",
which runs the gradient check and ``cnn.exercises.check`` on each and reads the
pattern of the failure. ``BUGS`` lists them with the check they fail.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from cnn.activations import log_softmax
from cnn.checks import as_pair
from cnn.conv import (
    col2im,
    conv2d_backward,
    conv2d_forward,
    crop,
    im2col,
    offset_index,
    output_size,
)
from cnn.pool import MaxPoolCache


def broken_dense_backward_bias_axis(dout, cache):
    """BROKEN dense_backward: sums the bias gradient over the outputs, not the batch."""
    x, w = cache
    db = dout.sum(axis=1)  # BUG: eq-dense-db sums over the batch, axis 0
    return dout @ w.T, x.T @ dout, db


def broken_relu_backward_in_place(dout, cache):
    """BROKEN relu_backward: right values, but it zeroes the caller's ``dout``."""
    dout[cache.x <= 0] = 0  # BUG: writes into the input; np.where(x > 0, dout, 0)
    return dout


def broken_softmax_cross_entropy_no_mean(logits, y):
    """BROKEN softmax_cross_entropy: the loss is a mean, its gradient is not."""
    N = logits.shape[0]
    log_p = log_softmax(logits)
    loss = -float(log_p[np.arange(N), y].mean())
    dlogits = np.exp(log_p)
    dlogits[np.arange(N), y] -= 1
    return loss, dlogits  # BUG: eq-softmax-ce-dz divides by N


def broken_conv2d_backward_no_flip(dout, cache):
    """BROKEN conv2d_backward: dx correlates with the kernel without rotating it."""
    x_padded, w, (SH, SW) = cache.x_padded, cache.w, cache.stride
    (N, F, H_out, W_out), (KH, KW) = dout.shape, w.shape[2:]
    # dout_full of eq-conv-dout-dilated, big enough for every index eq-conv-dx reads.
    rows, cols = x_padded.shape[2] + KH - 1, x_padded.shape[3] + KW - 1
    dout_full = np.zeros((N, F, rows, cols), dtype=x_padded.dtype)
    dout_full[:, :, KH - 1:KH - 1 + SH * H_out:SH, KW - 1:KW - 1 + SW * W_out:SW] = dout
    w_t = w.transpose(1, 0, 2, 3)  # BUG: eq-conv-dx reads w_t[:, :, ::-1, ::-1]
    dx_padded, _ = conv2d_forward(dout_full, w_t, np.zeros(w.shape[1], dtype=w.dtype))
    _, dw, db = conv2d_backward(dout, cache)
    return crop(dx_padded, cache.padding), dw, db


def broken_conv2d_backward_stride_ignored(dout, cache):
    """BROKEN conv2d_backward: dx sends each gradient to a window at stride 1."""
    x_padded, w = cache.x_padded, cache.w
    (H_out, W_out), (KH, KW) = dout.shape[2:], w.shape[2:]
    dx_padded = np.zeros_like(x_padded)
    for i in range(H_out):
        for j in range(W_out):
            back = np.einsum("nf,fcpq->ncpq", dout[:, :, i, j], w)
            dx_padded[:, :, i:i + KH, j:j + KW] += back  # BUG: window at (SH i, SW j)
    _, dw, db = conv2d_backward(dout, cache)
    return crop(dx_padded, cache.padding), dw, db


def broken_conv2d_backward_no_crop(dout, cache):
    """BROKEN conv2d_backward: returns the gradient of the padded input."""
    x_padded, w, stride = cache.x_padded, cache.w, cache.stride
    N, F = dout.shape[:2]
    cols = im2col(x_padded, w.shape[2:], stride)
    dout = dout.reshape(N, F, -1)
    db = dout.sum(axis=(0, 2))
    dw = (dout @ cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
    dx_padded = col2im(w.reshape(F, -1).T @ dout, x_padded.shape, w.shape[2:], stride)
    return dx_padded, dw, db  # BUG: crop(dx_padded, cache.padding)


def broken_maxpool2d_backward_overwrite(dout, cache):
    """BROKEN maxpool2d_backward: overlapping windows overwrite instead of adding."""
    (SH, SW), KW = cache.stride, cache.kernel_size[1]
    N, C, H_out, W_out = dout.shape
    n, c = np.indices((N, C))
    dx = np.zeros(cache.x_shape, dtype=cache.dtype)
    for i in range(H_out):
        for j in range(W_out):
            p, q = np.divmod(cache.argmax[:, :, i, j], KW)
            # BUG: = where eq-maxpool-dx sums over windows (+=)
            dx[n, c, SH * i + p, SW * j + q] = dout[:, :, i, j]
    return dx


def broken_maxpool2d_backward_offset_kh(dout, cache):
    """BROKEN maxpool2d_backward: decodes the argmax offset with KH instead of KW."""
    (SH, SW), KH = cache.stride, cache.kernel_size[0]
    N, C, H_out, W_out = dout.shape
    n, c = np.indices((N, C))
    dx = np.zeros(cache.x_shape, dtype=cache.dtype)
    for i in range(H_out):
        for j in range(W_out):
            # BUG: the offset is p * KW + q, so divmod by KW
            p, q = np.divmod(cache.argmax[:, :, i, j], KH)
            dx[n, c, SH * i + p, SW * j + q] += dout[:, :, i, j]
    return dx


def broken_avgpool2d_backward_no_scale(dout, cache):
    """BROKEN avgpool2d_backward: every window entry gets all of dout, not a share."""
    (KH, KW), (SH, SW) = cache.kernel_size, cache.stride
    H_out, W_out = dout.shape[2:]
    dx = np.zeros(cache.x_shape, dtype=cache.dtype)
    for i in range(H_out):
        for j in range(W_out):
            share = dout[:, :, i, j, None, None]  # BUG: / (KH * KW), eq-avgpool-dx
            dx[:, :, SH * i:SH * i + KH, SW * j:SW * j + KW] += share
    return dx


def broken_maxpool2d_forward_last_max(x, kernel_size=2, stride=None):
    """BROKEN maxpool2d_forward: on a tie it records the last maximum, not the first."""
    kernel_size = as_pair(kernel_size, "kernel_size")
    stride = kernel_size if stride is None else as_pair(stride, "stride")
    out_size = output_size(x.shape[2:], kernel_size, stride, (0, 0))
    offsets = list(np.ndindex(*kernel_size))
    windows = np.stack([x[offset_index(p, q, out_size, stride)] for p, q in offsets])
    # BUG: argmax of the reversed stack finds the LAST maximum; the tie rule of
    # cnn.pool says the first.
    argmax = len(offsets) - 1 - windows[::-1].argmax(axis=0)
    cache = MaxPoolCache(x.shape, x.dtype, argmax, kernel_size, stride)
    return windows.max(axis=0), cache


def broken_conv2d_backward_groups_mixed(dout, cache):
    """BROKEN conv2d_backward: filter f is paired with channel group f % G."""
    x_padded, w, G = cache.x_padded, cache.w, cache.groups
    (SH, SW), (DH, DW) = cache.stride, cache.dilation
    (F, H_out, W_out), (C_g, KH, KW) = dout.shape[1:], w.shape[1:]
    dx_padded, dw = np.zeros_like(x_padded), np.zeros_like(w)
    for f in range(F):
        g = f % G  # BUG: eq-gconv-forward puts filter f in group f // (F // G)
        channels = slice(g * C_g, (g + 1) * C_g)
        for i in range(H_out):
            for j in range(W_out):
                rows = slice(SH * i, SH * i + DH * (KH - 1) + 1, DH)
                cols = slice(SW * j, SW * j + DW * (KW - 1) + 1, DW)
                d = dout[:, f, i, j, None, None, None]
                dx_padded[:, channels, rows, cols] += d * w[f]
                dw[f] += (d * x_padded[:, channels, rows, cols]).sum(axis=0)
    return crop(dx_padded, cache.padding), dw, dout.sum(axis=(0, 2, 3))


def broken_conv2d_backward_stride_as_dilation(dout, cache):
    """BROKEN conv2d_backward: dx spreads the kernel by the stride, not the dilation."""
    x_padded, w, G = cache.x_padded, cache.w, cache.groups
    (SH, SW) = cache.stride
    (F, H_out, W_out), (C_g, KH, KW) = dout.shape[1:], w.shape[1:]
    dx_padded = np.zeros_like(x_padded)
    for f in range(F):
        channels = slice(f // (F // G) * C_g, (f // (F // G) + 1) * C_g)
        for i in range(H_out):
            for j in range(W_out):
                # BUG: the window reads every DH-th row, every DW-th column
                # (eq-dconv-forward): the stride moves it, it does not spread it.
                rows = slice(SH * i, SH * i + SH * (KH - 1) + 1, SH)
                cols = slice(SW * j, SW * j + SW * (KW - 1) + 1, SW)
                dx_padded[:, channels, rows, cols] += (
                    dout[:, f, i, j, None, None, None] * w[f])
    _, dw, db = conv2d_backward(dout, cache)
    return crop(dx_padded, cache.padding), dw, db


def broken_residual_backward_no_skip(dout, body, shortcut=None):
    """BROKEN residual_backward: returns the body's gradient, without the skip's."""
    dx_body = dout
    for layer in reversed(body):
        dx_body = layer.backward(dx_body)
    dx_skip = dout
    for layer in reversed(shortcut or ()):
        dx_skip = layer.backward(dx_skip)
    return dx_body  # BUG: eq-res-dx adds the two paths, dx_body + dx_skip


class Bug(NamedTuple):
    """One exhibit of the zoo."""

    #: The broken function.
    function: Callable
    #: The name of the package function it imitates, and of its check.
    check: str
    #: The mistake, in a few words.
    mistake: str


#: Every exhibit, in the order of the chapter "Bug zoo".
#:
#: :meta hide-value:
BUGS = (
    Bug(broken_dense_backward_bias_axis, "dense_backward",
        "bias gradient summed over the wrong axis"),
    Bug(broken_relu_backward_in_place, "relu_backward", "upstream gradient modified"),
    Bug(broken_softmax_cross_entropy_no_mean, "softmax_cross_entropy",
        "gradient without the 1/N of the mean"),
    Bug(broken_conv2d_backward_no_flip, "conv2d_backward", "kernel not flipped in dx"),
    Bug(broken_conv2d_backward_stride_ignored, "conv2d_backward",
        "stride ignored in dx"),
    Bug(broken_conv2d_backward_no_crop, "conv2d_backward", "padding not cropped"),
    Bug(broken_maxpool2d_backward_overwrite, "maxpool2d_backward",
        "= instead of += for overlapping windows"),
    Bug(broken_maxpool2d_backward_offset_kh, "maxpool2d_backward",
        "argmax offset decoded with KH"),
    Bug(broken_avgpool2d_backward_no_scale, "avgpool2d_backward",
        "missing 1/(KH KW)"),
    Bug(broken_maxpool2d_forward_last_max, "maxpool2d_forward",
        "last maximum recorded on a tie"),
    Bug(broken_conv2d_backward_groups_mixed, "conv2d_backward_dilated_grouped",
        "filters sent to the wrong channel group"),
    Bug(broken_conv2d_backward_stride_as_dilation, "conv2d_backward_dilated_grouped",
        "kernel spread by the stride, not the dilation, in dx"),
    Bug(broken_residual_backward_no_skip, "residual_backward",
        "skip gradient dropped"),
)
