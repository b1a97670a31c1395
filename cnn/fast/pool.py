"""The max pooling that ``MaxPool2D`` runs: ``cnn.pool``'s numbers in less time.

``maxpool2d_forward_fast`` keeps a running maximum over the window's offsets instead of
stacking them (no ``KH*KW`` copies of the output), records the argmax in the smallest
integer type that holds it, and reuses two temporaries; ``maxpool2d_backward_fast``
writes instead of adding when the windows do not overlap. Signatures, cache and tie rule
are those of ``cnn.pool``, so the tests compare the pairs directly (chapter "Making it
fast").
"""

from __future__ import annotations

import numpy as np

from cnn.checks import check_out
from cnn.conv import offset_index
from cnn.pool import MaxPoolCache, _check_dout, _check_pool_args


def maxpool2d_forward_fast(x, kernel_size=2, stride=None):
    """Max pooling forward pass, vectorised over samples, channels and positions.

    Implements eq-maxpool-forward as a running maximum over the ``KH*KW`` offsets of the
    window, each offset being one strided slice of ``x``. An entry replaces the running
    maximum only if it is strictly greater, so the recorded position is the first
    maximum in row-major order.

    Arguments, results and errors are those of ``cnn.pool.maxpool2d_forward``:
    ``x : (N, C, H, W)`` gives ``out : (N, C, H_out, W_out)`` and a ``MaxPoolCache``.
    """
    kernel_size, stride, out_size = _check_pool_args(x, kernel_size, stride)
    offsets = list(np.ndindex(*kernel_size))
    out = x[offset_index(*offsets[0], out_size, stride)].copy()
    # The smallest integer type that holds every offset: less memory to read and write.
    argmax = np.zeros(out.shape, dtype=np.min_scalar_type(len(offsets) - 1))
    # Two temporaries for the whole loop: fresh ones per offset cost more than the work.
    greater, scaled = np.empty(out.shape, dtype=bool), np.empty_like(argmax)
    for k, (p, q) in enumerate(offsets[1:], start=1):
        window = x[offset_index(p, q, out_size, stride)]
        # Offsets come in increasing order, so the largest k at which the window beat
        # the running maximum is the argmax: np.maximum records it, faster than a mask.
        np.greater(window, out, out=greater)
        np.multiply(greater, argmax.dtype.type(k), out=scaled)
        np.maximum(argmax, scaled, out=argmax)
        np.maximum(out, window, out=out)
    return out, MaxPoolCache(x.shape, x.dtype, argmax, kernel_size, stride)


def maxpool2d_backward_fast(dout, cache, out=None):
    """Max pooling backward pass, vectorised: gradients go to the argmax.

    Implements eq-maxpool-dx: for each offset ``k = (p, q)`` of the window, the entries
    of ``dout`` whose recorded maximum is ``k`` are added to the strided slice of ``dx``
    at that offset. Overlapping windows (stride smaller than the kernel) accumulate.
    Ties: see the module docstring (first maximum in row-major order).

    Arguments and results are those of ``cnn.pool.maxpool2d_backward``:
    ``dout : (N, C, H_out, W_out)`` and a ``MaxPoolCache`` give ``dx : (N, C, H, W)``.
    ``out``, optional, is an array of shape ``(N, C, H, W)`` and the forward input's
    dtype to write ``dx`` into, as NumPy's ``out=`` (the layer ``MaxPool2D`` reuses one
    between steps); ``dx`` is then ``out``.
    """
    dout = _check_dout(dout, cache, MaxPoolCache)
    out_size = dout.shape[2:]
    (KH, KW), (SH, SW), (H, W) = cache.kernel_size, cache.stride, cache.x_shape[2:]
    overlapping = SH < KH or SW < KW
    if out is None:
        dx = np.zeros(cache.x_shape, dtype=cache.dtype)
    else:
        dx = check_out(out, cache.x_shape, cache.dtype)
        # Windows that tile the input exactly write every entry of dx below; otherwise
        # some entries are added to, or never reached, and must start at 0.
        if (SH, SW) != (KH, KW) or H % KH or W % KW:
            dx.fill(0)
    is_k = np.empty(dout.shape, dtype=bool)
    for k, (p, q) in enumerate(np.ndindex(*cache.kernel_size)):
        slice_k = dx[offset_index(p, q, out_size, cache.stride)]
        np.equal(cache.argmax, k, out=is_k)
        if overlapping:
            slice_k += dout * is_k
        else:
            # Disjoint windows: every entry of dx is written at most once, so there is
            # nothing to add to, and writing without reading dx is faster.
            np.multiply(dout, is_k, out=slice_k)
    return dx
