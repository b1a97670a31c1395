"""Layer classes: thin wrappers that hold parameters, gradients and a cache.

Every layer has ``forward(x) -> out``, ``backward(dout) -> dx`` and two dicts,
``params`` and ``grads``, with the same keys (``"w"`` and ``"b"`` for layers with
parameters, empty otherwise). ``backward`` stores the gradients in ``grads``; only an
optimiser changes ``params``, in place.

Who owns the gradient arrays: the layer, until someone else keeps one. ``backward``
writes a gradient into the array that ``grads`` already holds for it when nothing but
``grads`` refers to that array (and it has the right shape and dtype); training then
reuses one array per gradient instead of allocating a new one, of up to hundreds of
megabytes, at every step. As soon as anything else refers to the array (a variable, a
list, a view of it), ``backward`` leaves it alone and stores a new array in ``grads``:
a caller who keeps ``grads["w"]`` across steps never sees it change. The test is
CPython's reference count, as for ``ndarray.resize``; where there is none, every
``backward`` allocates.

The same rule covers the large arrays that ``ReLU`` (its output and ``dx``) and
``MaxPool2D`` (its ``dx``) return: each keeps the last two it returned, and writes into
one of them again only when nothing outside the layer refers to it any more, such as
when the next layer has used it and dropped it. Whatever a caller keeps, it keeps.
``release`` drops a layer's cache and these arrays (``Sequential.predict`` does, so that
inference leaves nothing behind).

Weights use He initialisation, ``w ~ Normal(0, 2 / fan_in)``, which keeps the variance
of activations roughly constant through ReLU layers; biases start at zero. The generator
``rng`` (a ``numpy.random.Generator``) makes initialisation reproducible; ``rng=None``
means ``numpy.random.default_rng(0)``, so two layers built without ``rng`` start
identical: pass one shared generator when building a network.
"""

from __future__ import annotations

import sys

import numpy as np

from cnn.activations import (
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from cnn.checks import as_pair, check_array, check_int
from cnn.dense import dense_backward, dense_forward
from cnn.fast.conv import conv2d_backward_fast, conv2d_forward_fast
from cnn.fast.conv_transpose import (
    conv_transpose2d_backward_fast,
    conv_transpose2d_forward_fast,
)
from cnn.fast.pool import maxpool2d_backward_fast, maxpool2d_forward_fast
from cnn.init import he_normal as _he_normal
from cnn.pool import (
    avgpool2d_backward,
    avgpool2d_forward,
    global_avgpool2d_backward,
    global_avgpool2d_forward,
)


class Layer:
    """Base class: empty ``params``/``grads``; ``backward`` needs ``forward`` first.

    ``training`` is ``True`` in training mode and ``False`` in evaluation mode (set by
    ``Sequential.train`` and ``Sequential.eval``); only layers that behave differently,
    such as ``cnn.norm.BatchNorm`` and ``cnn.regularization.Dropout``, read it.
    ``buffers`` holds state that is saved with the model but not trained (running
    statistics).
    """

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.buffers = {}
        self.cache = None
        self.training = True

    def release(self):
        """Drop the cache and any arrays kept for reuse; ``params``/``grads`` stay."""
        self.cache = None

    def _forward_cache(self):
        """Return the cache of the last forward pass."""
        if self.cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self.cache

    def __repr__(self):
        return f"{type(self).__name__}()"


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


class Conv2D(Layer):
    """Convolution layer; calls the tuned pair of ``cnn.fast.conv``.

    ``conv2d_forward_fast`` and ``conv2d_backward_fast`` compute what ``cnn.conv``'s
    ``conv2d_forward`` and ``conv2d_backward`` compute (the tests check it), faster for
    wide layers: a network trains on the derivation of chapter 5 at the speed of chapter
    9.

    Parameters
    ----------
    in_channels : int
        ``C``.
    out_channels : int
        ``F``, the number of filters.
    kernel_size : int or tuple of two ints
        ``(KH, KW)``.
    stride : int or tuple of two ints
        ``(SH, SW)``.
    padding : int or tuple of two ints
        ``(PH, PW)``.
    rng : numpy.random.Generator, optional
        For He initialisation; ``None`` means ``numpy.random.default_rng(0)``.
    dtype : numpy dtype
        Of the parameters, float32 (default) or float64.

    Attributes
    ----------
    params : dict
        ``"w"``: shape ``(F, C, KH, KW)``; ``"b"``: shape ``(F,)``.
    grads : dict
        Same keys and shapes, set by ``backward``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 rng=None, dtype=np.float32):
        super().__init__()
        C = check_int(in_channels, "in_channels")
        F = check_int(out_channels, "out_channels")
        KH, KW = as_pair(kernel_size, "kernel_size", minimum=1)
        self.stride = as_pair(stride, "stride", minimum=1)
        self.padding = as_pair(padding, "padding", minimum=0)
        self.params["w"] = _he_normal((F, C, KH, KW), C * KH * KW, rng, dtype)
        self.params["b"] = np.zeros(F, dtype=dtype)
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}

    def forward(self, x):
        """``x : (N, C, H, W)`` -> ``out : (N, F, H_out, W_out)``."""
        w, b = self.params["w"], self.params["b"]
        out, self.cache = conv2d_forward_fast(x, w, b, self.stride, self.padding)
        return out

    def backward(self, dout):
        """``dout : (N, F, H_out, W_out)`` -> ``dx : (N, C, H, W)``; sets ``grads``."""
        cache = self._forward_cache()
        dx, self.grads["w"], self.grads["b"] = conv2d_backward_fast(dout, cache)
        return dx

    def __repr__(self):
        F, C, KH, KW = self.params["w"].shape
        return (f"Conv2D({C}, {F}, kernel_size={(KH, KW)}, stride={self.stride}, "
                f"padding={self.padding})")


class Pool2D(Layer):
    """Base class of the pooling layers: each subclass names its pair of functions.

    Parameters
    ----------
    kernel_size : int or tuple of two ints
        ``(KH, KW)``.
    stride : int or tuple of two ints, optional
        ``(SH, SW)``; defaults to ``kernel_size``.
    """

    _forward_function = None
    _backward_function = None

    def __init__(self, kernel_size=2, stride=None):
        super().__init__()
        self.kernel_size = as_pair(kernel_size, "kernel_size", minimum=1)
        stride = kernel_size if stride is None else stride
        self.stride = as_pair(stride, "stride", minimum=1)

    def forward(self, x):
        """``x : (N, C, H, W)`` -> ``out : (N, C, H_out, W_out)``."""
        out, self.cache = self._forward_function(x, self.kernel_size, self.stride)
        return out

    def backward(self, dout):
        """``dout : (N, C, H_out, W_out)`` -> ``dx : (N, C, H, W)``."""
        return self._backward_function(dout, self._forward_cache())

    def __repr__(self):
        name = type(self).__name__
        return f"{name}(kernel_size={self.kernel_size}, stride={self.stride})"


class MaxPool2D(Pool2D):
    """Max pooling layer; calls the tuned pair of ``cnn.fast.pool``.

    ``maxpool2d_forward_fast`` and ``maxpool2d_backward_fast`` compute what
    ``cnn.pool``'s ``maxpool2d_forward`` and ``maxpool2d_backward`` compute, in less
    time and memory.

    The gradient of a window goes to its first maximum in row-major order (see
    ``cnn.pool``). Parameters as for ``Pool2D``.
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


class AvgPool2D(Pool2D):
    """Average pooling layer; calls ``avgpool2d_forward`` and ``avgpool2d_backward``.

    Parameters as for ``Pool2D``.
    """

    _forward_function = staticmethod(avgpool2d_forward)
    _backward_function = staticmethod(avgpool2d_backward)


class ReLU(Layer):
    """ReLU layer; calls ``relu_forward`` and ``relu_backward``. Any input shape.

    Returns arrays it may reuse once nobody else refers to them (see the module).
    """

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
        out, self.cache = relu_forward(x, out=out)
        return out

    def backward(self, dout):
        """``dout`` -> ``dx``, same shape; zero where the input was not positive."""
        cache = self._forward_cache()
        dx = _pooled(self._dx_pool, cache.x.shape, cache.x.dtype)
        return relu_backward(dout, cache, out=dx)


class Flatten(Layer):
    """Flatten every sample: ``(N, C, H, W)`` -> ``(N, C*H*W)``, in C order.

    The backward pass reshapes the gradient back to the input's shape. Both passes
    return new arrays, never views of their argument.
    """

    def forward(self, x):
        """``x : (N, ...)`` -> ``out : (N, D)``, ``D`` the product of the other axes."""
        check_array(x, "x")
        if x.ndim < 2:
            raise ValueError(
                f"x must have shape (N, ...) with at least 2 axes, got shape {x.shape}"
            )
        self.cache = x.shape
        return x.reshape(x.shape[0], -1).copy()

    def backward(self, dout):
        """``dout : (N, D)`` -> ``dx`` of the forward input's shape."""
        x_shape = self._forward_cache()
        check_array(dout, "dout", (x_shape[0], int(np.prod(x_shape[1:]))))
        return dout.reshape(x_shape).copy()


class Dense(Layer):
    """Dense (fully connected) layer; calls ``dense_forward`` and ``dense_backward``.

    Parameters
    ----------
    in_features : int
        ``D``.
    out_features : int
        ``M``.
    rng : numpy.random.Generator, optional
        For He initialisation; ``None`` means ``numpy.random.default_rng(0)``.
    dtype : numpy dtype
        Of the parameters, float32 (default) or float64.

    Attributes
    ----------
    params : dict
        ``"w"``: shape ``(D, M)``; ``"b"``: shape ``(M,)``.
    grads : dict
        Same keys and shapes, set by ``backward``: the arrays of the previous step,
        overwritten, unless someone else refers to them (see the module).
    """

    def __init__(self, in_features, out_features, rng=None, dtype=np.float32):
        super().__init__()
        D = check_int(in_features, "in_features")
        M = check_int(out_features, "out_features")
        self.params["w"] = _he_normal((D, M), D, rng, dtype)
        self.params["b"] = np.zeros(M, dtype=dtype)
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}

    def forward(self, x):
        """``x : (N, D)`` -> ``out : (N, M)``."""
        out, self.cache = dense_forward(x, self.params["w"], self.params["b"])
        return out

    def backward(self, dout):
        """``dout : (N, M)`` -> ``dx : (N, D)``; sets ``grads`` (see the module)."""
        cache = self._forward_cache()
        dtype, (D, M) = cache.x.dtype, cache.w.shape
        out = (None, _reusable(self.grads, "w", (D, M), dtype),
               _reusable(self.grads, "b", (M,), dtype))
        dx, self.grads["w"], self.grads["b"] = dense_backward(dout, cache, out=out)
        return dx

    def __repr__(self):
        D, M = self.params["w"].shape
        return f"Dense({D}, {M})"


class GlobalAvgPool2D(Layer):
    """Global average pooling layer: ``(N, C, H, W)`` -> ``(N, C)``, any ``H, W``.

    Calls ``global_avgpool2d_forward`` and ``global_avgpool2d_backward``. Its output
    does not depend on where in the map a feature occurs, and a network ending in it
    accepts images of any size.
    """

    def forward(self, x):
        """``x : (N, C, H, W)`` -> ``out : (N, C)``."""
        out, self.cache = global_avgpool2d_forward(x)
        return out

    def backward(self, dout):
        """``dout : (N, C)`` -> ``dx : (N, C, H, W)``."""
        return global_avgpool2d_backward(dout, self._forward_cache())


class Elementwise(Layer):
    """Base class of the elementwise activations: each subclass names its pair.

    ``forward(x)`` returns an array of the shape of ``x``; ``backward(dout)`` returns
    ``dx`` of the shape of ``dout``. Any shape.
    """

    _forward_function = None
    _backward_function = None

    def forward(self, x):
        """``x`` -> ``out``, same shape."""
        out, self.cache = self._forward_function(x)
        return out

    def backward(self, dout):
        """``dout`` -> ``dx``, same shape."""
        return self._backward_function(dout, self._forward_cache())


class Sigmoid(Elementwise):
    """Sigmoid layer, ``1 / (1 + exp(-x))``: ``sigmoid_forward`` and its backward."""

    _forward_function = staticmethod(sigmoid_forward)
    _backward_function = staticmethod(sigmoid_backward)


class Tanh(Elementwise):
    """Tanh layer, ``tanh(x)``: ``tanh_forward`` and ``tanh_backward``."""

    _forward_function = staticmethod(tanh_forward)
    _backward_function = staticmethod(tanh_backward)


class ConvTranspose2D(Layer):
    """Transposed convolution layer; calls the pair of ``cnn.fast.conv_transpose``.

    ``conv_transpose2d_forward_fast`` computes what ``cnn.conv_transpose``'s
    ``conv_transpose2d_forward`` computes (the tests check it), faster for wide layers.
    Each output pixel receives about ``C_in KH KW / (SH SW)`` terms, so He
    initialisation uses that as the fan-in.

    Parameters
    ----------
    in_channels : int
        ``C_in``.
    out_channels : int
        ``C_out``.
    kernel_size, stride, padding : int or tuple of two ints
        ``(KH, KW)``, ``(SH, SW)``, ``(PH, PW)``.
    rng : numpy.random.Generator, optional
        For He initialisation; ``None`` means ``numpy.random.default_rng(0)``.
    dtype : numpy dtype
        Of the parameters, float32 (default) or float64.

    Attributes
    ----------
    params : dict
        ``"w"``: shape ``(C_in, C_out, KH, KW)``; ``"b"``: shape ``(C_out,)``.
    grads : dict
        Same keys and shapes, set by ``backward``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 rng=None, dtype=np.float32):
        super().__init__()
        C_in = check_int(in_channels, "in_channels")
        C_out = check_int(out_channels, "out_channels")
        KH, KW = as_pair(kernel_size, "kernel_size", minimum=1)
        self.stride = as_pair(stride, "stride", minimum=1)
        self.padding = as_pair(padding, "padding", minimum=0)
        fan_in = C_in * KH * KW / (self.stride[0] * self.stride[1])
        self.params["w"] = _he_normal((C_in, C_out, KH, KW), fan_in, rng, dtype)
        self.params["b"] = np.zeros(C_out, dtype=dtype)
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}

    def forward(self, x):
        """``x : (N, C_in, H, W)`` -> ``out : (N, C_out, H_out, W_out)``."""
        w, b = self.params["w"], self.params["b"]
        stride, padding = self.stride, self.padding
        out, self.cache = conv_transpose2d_forward_fast(x, w, b, stride, padding)
        return out

    def backward(self, dout):
        """``dout : (N, C_out, H_out, W_out)`` -> ``dx : (N, C_in, H, W)``."""
        grads = conv_transpose2d_backward_fast(dout, self._forward_cache())
        dx, self.grads["w"], self.grads["b"] = grads
        return dx

    def __repr__(self):
        C_in, C_out, KH, KW = self.params["w"].shape
        return (f"ConvTranspose2D({C_in}, {C_out}, kernel_size={(KH, KW)}, "
                f"stride={self.stride}, padding={self.padding})")


class Residual(Layer):
    """Residual block: ``out = body(x) + shortcut(x)`` (eq-res-forward).

    ``body`` is a list of layers run one after the other; ``shortcut`` is ``None`` (the
    identity, for a body that keeps the shape) or a list of layers that brings ``x`` to
    the body's output shape (a strided 1x1 ``Conv2D``, say). The backward pass sends
    ``dout`` down both paths and adds what arrives at ``x`` (eq-res-dx): the identity
    path passes ``dout`` on unchanged, however deep the body.

    ``params``, ``grads`` and ``buffers`` are the sub-layers', keyed
    ``"body.<index>.<name>"`` and ``"shortcut.<index>.<name>"``, so a ``Sequential``
    sees them as this layer's (``"2.body.0.w"``) and optimisers, ``save``/``load`` and
    the gradient checks need nothing new; ``training`` and ``release`` reach every
    sub-layer.

    Parameters
    ----------
    body : list of layers
        At least one layer.
    shortcut : list of layers, optional
        ``None`` means the identity.
    """

    def __init__(self, body, shortcut=None):
        self.body = _layer_list(body, "body")
        self.shortcut = None if shortcut is None else _layer_list(shortcut, "shortcut")
        self.training = True

    def _paths(self):
        """``("body", layers)`` and, unless it is the identity, the shortcut's."""
        if self.shortcut is None:
            return (("body", self.body),)
        return (("body", self.body), ("shortcut", self.shortcut))

    def _collect(self, attribute):
        return {f"{path}.{i}.{key}": value
                for path, layers in self._paths() for i, layer in enumerate(layers)
                for key, value in getattr(layer, attribute, {}).items()}

    @property
    def params(self):
        """The sub-layers' parameters (not copies): ``"body.0.w"``, ..."""
        return self._collect("params")

    @property
    def grads(self):
        """The sub-layers' gradients of the last ``backward``, keys as ``params``."""
        return self._collect("grads")

    @property
    def buffers(self):
        """The sub-layers' buffers (not copies): ``"body.1.running_mean"``, ..."""
        return self._collect("buffers")

    @property
    def training(self):
        """The mode; setting it sets every sub-layer's."""
        return self._training

    @training.setter
    def training(self, mode):
        self._training = bool(mode)
        for _, layers in self._paths():
            for layer in layers:
                layer.training = self._training

    @property
    def cache(self):
        """The sub-layers' caches, in the order of ``body`` then ``shortcut``."""
        return tuple(layer.cache for _, layers in self._paths() for layer in layers)

    @cache.setter
    def cache(self, caches):
        layers = [layer for _, path in self._paths() for layer in path]
        caches = (None,) * len(layers) if caches is None else caches
        for layer, cache in zip(layers, caches, strict=True):
            layer.cache = cache

    def release(self):
        """Release every sub-layer."""
        for _, layers in self._paths():
            for layer in layers:
                layer.release()

    def forward(self, x):
        """``x`` -> ``body(x) + shortcut(x)``, the body's output shape."""
        out = x
        for layer in self.body:
            out = layer.forward(out)
        skip = x
        for layer in self.shortcut or ():
            skip = layer.forward(skip)
        if out.shape != skip.shape:
            raise ValueError(
                f"the body's output has shape {out.shape} and the shortcut's "
                f"{skip.shape}; they must be equal (give a shortcut that changes the "
                "shape as the body does, e.g. a strided 1x1 Conv2D)"
            )
        return out + skip

    def backward(self, dout):
        """``dout`` -> ``dx``: the sum of the two paths' gradients; sets ``grads``."""
        dx_body = dout
        for layer in reversed(self.body):
            dx_body = layer.backward(dx_body)
        dx_skip = dout
        for layer in reversed(self.shortcut or ()):
            dx_skip = layer.backward(dx_skip)
        return dx_body + dx_skip

    def __repr__(self):
        def count(layers):
            return f"{len(layers)} layer{'' if len(layers) == 1 else 's'}"

        shortcut = ("identity shortcut" if self.shortcut is None
                    else f"shortcut of {count(self.shortcut)}")
        return f"Residual(body of {count(self.body)}, {shortcut})"


def _layer_list(layers, name):
    """``layers`` as a new list, once checked to be a non-empty list of layers."""
    if not isinstance(layers, (list, tuple)) or not layers:
        raise TypeError(f"{name} must be a non-empty list of layers, got {layers!r}")
    for layer in layers:
        if not all(hasattr(layer, a) for a in ("forward", "backward", "params")):
            raise TypeError(
                f"{name} must hold layers (with forward, backward and params), got "
                f"{type(layer).__name__}"
            )
    return list(layers)
