"""The layers that the case study trains: ``cnn.layers``' layers, tuned.

Each class defined here is the layer of the same name in ``cnn.layers`` (a subclass,
with the same arguments, ``params``, ``grads``, caches and results; the tests check it)
that runs the tuned functions of ``cnn.fast`` and reuses its large arrays between steps;
the layers with nothing to tune (``Flatten``, the average poolings, ``Sigmoid``,
``Tanh``) are those of ``cnn.layers``, imported here so that one module builds a whole
network. Mix them freely with ``cnn.layers`` in a ``Sequential``.

Who owns the gradient arrays: the layer, until someone else keeps one.
``Dense.backward`` writes a gradient into the array that ``grads`` already holds for it
when nothing but ``grads`` refers to that array (and it has the right shape and dtype);
training then reuses one array per gradient instead of allocating a new one, of up to
hundreds of megabytes, at every step. As soon as anything else refers to the array (a
variable, a list, a view of it), ``backward`` leaves it alone and stores a new array in
``grads``: a caller who keeps ``grads["w"]`` across steps never sees it change. The
test is CPython's reference count, as for ``ndarray.resize``; where there is none,
every ``backward`` allocates.

The same rule covers the large arrays that ``ReLU`` (its output and ``dx``) and
``MaxPool2D`` (its ``dx``) return: each keeps the last two it returned, and writes into
one of them again only when nothing outside the layer refers to it any more, such as
when the next layer has used it and dropped it. Whatever a caller keeps, it keeps.
``release`` drops a layer's cache and these arrays (``Sequential.predict`` does, so that
inference leaves nothing behind).
"""

from __future__ import annotations

import sys

import numpy as np

from cnn import layers
from cnn.fast.activations import relu_backward_fast, relu_forward_fast
from cnn.fast.conv import conv2d_backward_fast, conv2d_forward_fast
from cnn.fast.conv_transpose import (
    conv_transpose2d_backward_fast,
    conv_transpose2d_forward_fast,
)
from cnn.fast.dense import dense_backward_fast
from cnn.fast.pool import maxpool2d_backward_fast, maxpool2d_forward_fast

# The layers with nothing to tune: this module builds any network cnn.layers does.
from cnn.layers import AvgPool2D, Flatten, GlobalAvgPool2D, Sigmoid, Tanh

__all__ = ["AvgPool2D", "Conv2D", "ConvTranspose2D", "Dense", "Flatten",
           "GlobalAvgPool2D", "MaxPool2D", "ReLU", "Sigmoid", "Tanh"]


def _references(container, key):
    """References to ``container[key]``, the container's and this call's included."""
    return sys.getrefcount(container[key])


# What _references counts for an array that only its container refers to, measured the
# same way; None where the interpreter has no reference counts (then nothing is reused).
_UNSHARED = (
    _references({"a": np.empty(0)}, "a") if hasattr(sys, "getrefcount") else None
)


def _reusable(container, key, shape, dtype):
    """``container[key]`` if only ``container`` refers to it and it fits, else ``None``.

    ``None`` tells a function with ``out=`` arguments to allocate a new array.
    """
    array = container[key] if isinstance(container, list) else container.get(key)
    if (
        _UNSHARED is None
        or not isinstance(array, np.ndarray)
        or array.shape != tuple(shape)
        or array.dtype != dtype
        or not array.flags.c_contiguous
        or not array.flags.writeable
    ):
        return None
    # Counted with ``array`` dropped, so that only the container's reference is left.
    del array
    return container[key] if _references(container, key) <= _UNSHARED else None


POOL_SIZE = 2
"""Arrays a layer keeps per output for reuse.

The previous step's output may still be held by the next layer's cache when the layer
runs again; the one before it no longer is.
"""


def _pooled(pool, shape, dtype):
    """An array of ``shape`` and ``dtype`` from ``pool`` that only ``pool`` refers to.

    If there is none, a new one (uninitialised) takes the place of the oldest in the
    pool, which keeps at most ``POOL_SIZE`` arrays.
    """
    for i in range(len(pool)):
        array = _reusable(pool, i, shape, dtype)
        if array is not None:
            return array
    array = np.empty(shape, dtype=dtype)
    pool[:] = pool[1 - POOL_SIZE:] + [array]
    return array


class Conv2D(layers.Conv2D):
    """``cnn.layers.Conv2D`` running the tuned pair of ``cnn.fast.conv``.

    ``conv2d_forward_fast`` and ``conv2d_backward_fast`` compute what ``cnn.conv``'s
    ``conv2d_forward`` and ``conv2d_backward`` compute, faster for wide layers.
    """

    def forward(self, x):
        """``x : (N, C, H, W)`` -> ``out : (N, F, H_out, W_out)``."""
        w, b = self.params["w"], self.params["b"]
        out, self.cache = conv2d_forward_fast(x, w, b, self.stride, self.padding,
                                              self.dilation, self.groups)
        return out

    def backward(self, dout):
        """``dout : (N, F, H_out, W_out)`` -> ``dx : (N, C, H, W)``; sets ``grads``."""
        cache = self._forward_cache()
        dx, self.grads["w"], self.grads["b"] = conv2d_backward_fast(dout, cache)
        return dx


class ConvTranspose2D(layers.ConvTranspose2D):
    """``cnn.layers.ConvTranspose2D`` running ``cnn.fast.conv_transpose``'s pair."""

    def forward(self, x):
        """``x : (N, C_in, H, W)`` -> ``out : (N, C_out, H_out, W_out)``."""
        w, b = self.params["w"], self.params["b"]
        args = self.stride, self.padding, self.output_padding
        out, self.cache = conv_transpose2d_forward_fast(x, w, b, *args)
        return out

    def backward(self, dout):
        """``dout : (N, C_out, H_out, W_out)`` -> ``dx : (N, C_in, H, W)``."""
        grads = conv_transpose2d_backward_fast(dout, self._forward_cache())
        dx, self.grads["w"], self.grads["b"] = grads
        return dx


class MaxPool2D(layers.MaxPool2D):
    """``cnn.layers.MaxPool2D`` running ``cnn.fast.pool``, reusing its ``dx`` arrays.

    ``maxpool2d_forward_fast`` and ``maxpool2d_backward_fast`` compute what
    ``cnn.pool``'s ``maxpool2d_forward`` and ``maxpool2d_backward`` compute, in less
    time and memory.
    """

    _forward_function = staticmethod(maxpool2d_forward_fast)
    _backward_function = staticmethod(maxpool2d_backward_fast)

    def __init__(self, kernel_size=2, stride=None):
        super().__init__(kernel_size, stride)
        self._dx_pool = []

    def release(self):
        """Drop the cache and the arrays kept for ``dx``."""
        super().release()
        self._dx_pool.clear()

    def backward(self, dout):
        """``dout : (N, C, H_out, W_out)`` -> ``dx : (N, C, H, W)`` (see the module)."""
        cache = self._forward_cache()
        dx = _pooled(self._dx_pool, cache.x_shape, cache.dtype)
        return maxpool2d_backward_fast(dout, cache, out=dx)


class ReLU(layers.ReLU):
    """``cnn.layers.ReLU`` returning arrays it reuses once nobody else holds them."""

    def __init__(self):
        super().__init__()
        self._out_pool, self._dx_pool = [], []

    def release(self):
        """Drop the cache and the arrays kept for the output and ``dx``."""
        super().release()
        self._out_pool.clear()
        self._dx_pool.clear()

    def forward(self, x):
        """``x`` -> ``max(x, 0)``, same shape."""
        out = None
        if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating):
            out = _pooled(self._out_pool, x.shape, x.dtype)
        out, self.cache = relu_forward_fast(x, out=out)
        return out

    def backward(self, dout):
        """``dout`` -> ``dx``, same shape; zero where the input was not positive."""
        cache = self._forward_cache()
        dx = _pooled(self._dx_pool, cache.x.shape, cache.x.dtype)
        return relu_backward_fast(dout, cache, out=dx)


class Dense(layers.Dense):
    """``cnn.layers.Dense`` writing its gradients into those of the previous step.

    ``grads`` holds the arrays of the previous step, overwritten, unless someone else
    refers to them (see the module).
    """

    def backward(self, dout):
        """``dout : (N, M)`` -> ``dx : (N, D)``; sets ``grads`` (see the module)."""
        cache = self._forward_cache()
        dtype, (D, M) = cache.x.dtype, cache.w.shape
        out = (None, _reusable(self.grads, "w", (D, M), dtype),
               _reusable(self.grads, "b", (M,), dtype))
        dx, self.grads["w"], self.grads["b"] = dense_backward_fast(dout, cache, out=out)
        return dx
