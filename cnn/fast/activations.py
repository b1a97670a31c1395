"""The ReLU that ``cnn.fast.layers.ReLU`` runs: ``cnn.activations``' numbers, in place.

``relu_forward_fast`` and ``relu_backward_fast`` compute what ``relu_forward`` and
``relu_backward`` compute, and can write the result into an array they are given, as
NumPy's ``out=``: the layer reuses its arrays between steps instead of allocating two
arrays the size of a feature map at every step (chapter "Making it fast").
"""

from __future__ import annotations

import numpy as np

from cnn.activations import ReLUCache, _check_dout
from cnn.checks import check_array, check_out


def relu_forward_fast(x, out=None):
    """``cnn.activations.relu_forward``, writing into ``out``: ``max(x, 0)``.

    ``out``, optional, is an array of the shape and dtype of ``x`` to write the result
    into (not ``x`` itself); otherwise the result is a new array. Returns the result and
    a ``ReLUCache``, as ``relu_forward``.
    """
    check_array(x, "x")
    check_out(out, x.shape, x.dtype)
    return np.maximum(x, 0, out=out), ReLUCache(x)


def relu_backward_fast(dout, cache, out=None):
    """``cnn.activations.relu_backward``, writing into ``out``: ``dout * (x > 0)``.

    ``out``, optional, is an array of the shape of ``dout`` and the dtype of the forward
    input to write ``dx`` into (not ``dout`` itself); otherwise ``dx`` is a new array.
    """
    dout = _check_dout(dout, cache, ReLUCache)
    check_out(out, cache.x.shape, cache.x.dtype)
    return np.multiply(dout, cache.x > 0, out=out)
