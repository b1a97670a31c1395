"""Layer classes: thin wrappers that hold parameters, gradients and a cache.

Every layer has ``forward(x) -> out``, ``backward(dout) -> dx`` and two dicts,
``params`` and ``grads``, with the same keys (``"w"`` and ``"b"`` for layers with
parameters, empty otherwise). ``backward`` stores the gradients in ``grads``; only an
optimiser changes ``params``, in place. Each layer calls the plain function pair of its
chapter (``conv2d_forward`` and ``conv2d_backward``, ...), and every array it returns is
new. ``cnn.fast.layers`` has the same layers running the tuned functions and reusing
their arrays between steps (chapter "Making it fast"); both kinds go into the same
``Sequential``.

Weights use He initialisation, ``w ~ Normal(0, 2 / fan_in)``, which keeps the variance
of activations roughly constant through ReLU layers; biases start at zero. The generator
``rng`` (a ``numpy.random.Generator``) makes initialisation reproducible; ``rng=None``
means ``numpy.random.default_rng(0)``, so two layers built without ``rng`` start
identical: pass one shared generator when building a network.
"""

from __future__ import annotations

import numpy as np

from cnn.activations import (
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from cnn.checks import as_pair, check_array, check_groups, check_int
from cnn.conv import conv2d_backward, conv2d_forward
from cnn.conv_transpose import conv_transpose2d_backward, conv_transpose2d_forward
from cnn.dense import dense_backward, dense_forward
from cnn.init import he_normal
from cnn.pool import (
    avgpool2d_backward,
    avgpool2d_forward,
    global_avgpool2d_backward,
    global_avgpool2d_forward,
    maxpool2d_backward,
    maxpool2d_forward,
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
        """Drop the cache (and, in ``cnn.fast.layers``, arrays kept for reuse)."""
        self.cache = None

    def _init_parameters(self, w_shape, b_size, fan_in, rng, dtype):
        """He-initialised weights ``"w"``, zero biases ``"b"``, and zero gradients."""
        self.params["w"] = he_normal(w_shape, fan_in, rng, dtype)
        self.params["b"] = np.zeros(b_size, dtype=dtype)
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}

    def _forward_cache(self):
        """Return the cache of the last forward pass."""
        if self.cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self.cache

    def __repr__(self):
        return f"{type(self).__name__}()"


class Convolution(Layer):
    """Base class of the convolution layers: checks and keeps their sizes.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and of the output, each >= 1.
    kernel_size, stride : int or tuple of two ints
        ``(KH, KW)`` and ``(SH, SW)``, each entry >= 1.
    padding : int or tuple of two ints
        ``(PH, PW)``, each entry >= 0.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding):
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels")
        self.out_channels = check_int(out_channels, "out_channels")
        self.kernel_size = as_pair(kernel_size, "kernel_size", minimum=1)
        self.stride = as_pair(stride, "stride", minimum=1)
        self.padding = as_pair(padding, "padding", minimum=0)

    def __repr__(self):
        text = (f"{type(self).__name__}({self.in_channels}, {self.out_channels}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}")
        # Only Conv2D has these; the defaults are left out, as PyTorch's repr does.
        dilation, groups = getattr(self, "dilation", (1, 1)), getattr(self, "groups", 1)
        if (dilation, groups) != ((1, 1), 1):
            text += f", dilation={dilation}, groups={groups}"
        return text + ")"


def _check_dilation_groups(dilation, groups, C, F):
    """``(DH, DW)`` with entries >= 1, and ``groups``, a divisor of ``C`` and ``F``."""
    check_groups(groups, F, "out_channels", "F")
    return (as_pair(dilation, "dilation", minimum=1),
            check_groups(groups, C, "in_channels", "C"))


class Conv2D(Convolution):
    """Convolution layer; calls ``conv2d_forward`` and ``conv2d_backward``.

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
    dilation : int or tuple of two ints
        ``(DH, DW)``, each >= 1.
    groups : int
        ``G``, a divisor of ``C`` and ``F``; ``groups=C`` is a depthwise convolution.

    Attributes
    ----------
    params : dict
        ``"w"``: shape ``(F, C // groups, KH, KW)``; ``"b"``: shape ``(F,)``.
    grads : dict
        Same keys and shapes, set by ``backward``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 rng=None, dtype=np.float32, dilation=1, groups=1):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding)
        C, F, (KH, KW) = self.in_channels, self.out_channels, self.kernel_size
        self.dilation, self.groups = _check_dilation_groups(dilation, groups, C, F)
        C_g = C // self.groups
        self._init_parameters((F, C_g, KH, KW), F, C_g * KH * KW, rng, dtype)

    def forward(self, x):
        """``x : (N, C, H, W)`` -> ``out : (N, F, H_out, W_out)``."""
        w, b = self.params["w"], self.params["b"]
        out, self.cache = conv2d_forward(x, w, b, self.stride, self.padding,
                                         self.dilation, self.groups)
        return out

    def backward(self, dout):
        """``dout : (N, F, H_out, W_out)`` -> ``dx : (N, C, H, W)``; sets ``grads``."""
        cache = self._forward_cache()
        dx, self.grads["w"], self.grads["b"] = conv2d_backward(dout, cache)
        return dx


def _check_window(kernel_size, stride):
    """A pooling window's ``(KH, KW)`` and ``(SH, SW)``, by default ``(KH, KW)``."""
    stride = kernel_size if stride is None else stride
    return (as_pair(kernel_size, "kernel_size", minimum=1),
            as_pair(stride, "stride", minimum=1))


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
        self.kernel_size, self.stride = _check_window(kernel_size, stride)

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
    """Max pooling layer; calls ``maxpool2d_forward`` and ``maxpool2d_backward``.

    The gradient of a window goes to its first maximum in row-major order (see
    ``cnn.pool``). Parameters as for ``Pool2D``.
    """

    _forward_function = staticmethod(maxpool2d_forward)
    _backward_function = staticmethod(maxpool2d_backward)


class AvgPool2D(Pool2D):
    """Average pooling layer; calls ``avgpool2d_forward`` and ``avgpool2d_backward``.

    Parameters as for ``Pool2D``.
    """

    _forward_function = staticmethod(avgpool2d_forward)
    _backward_function = staticmethod(avgpool2d_backward)


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
        Same keys and shapes, set by ``backward``.
    """

    def __init__(self, in_features, out_features, rng=None, dtype=np.float32):
        super().__init__()
        D = check_int(in_features, "in_features")
        M = check_int(out_features, "out_features")
        self._init_parameters((D, M), M, D, rng, dtype)

    def forward(self, x):
        """``x : (N, D)`` -> ``out : (N, M)``."""
        out, self.cache = dense_forward(x, self.params["w"], self.params["b"])
        return out

    def backward(self, dout):
        """``dout : (N, M)`` -> ``dx : (N, D)``; sets ``grads``."""
        cache = self._forward_cache()
        dx, self.grads["w"], self.grads["b"] = dense_backward(dout, cache)
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


class ReLU(Elementwise):
    """ReLU layer, ``max(x, 0)``: ``relu_forward`` and ``relu_backward``. Any shape."""

    _forward_function = staticmethod(relu_forward)
    _backward_function = staticmethod(relu_backward)


class Tanh(Elementwise):
    """Tanh layer, ``tanh(x)``: ``tanh_forward`` and ``tanh_backward``."""

    _forward_function = staticmethod(tanh_forward)
    _backward_function = staticmethod(tanh_backward)


class ConvTranspose2D(Convolution):
    """Transposed convolution layer; calls the pair of ``cnn.conv_transpose``.

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
        super().__init__(in_channels, out_channels, kernel_size, stride, padding)
        C_in, C_out, (KH, KW) = self.in_channels, self.out_channels, self.kernel_size
        fan_in = C_in * KH * KW / (self.stride[0] * self.stride[1])
        self._init_parameters((C_in, C_out, KH, KW), C_out, fan_in, rng, dtype)

    def forward(self, x):
        """``x : (N, C_in, H, W)`` -> ``out : (N, C_out, H_out, W_out)``."""
        w, b = self.params["w"], self.params["b"]
        out, self.cache = conv_transpose2d_forward(x, w, b, self.stride, self.padding)
        return out

    def backward(self, dout):
        """``dout : (N, C_out, H_out, W_out)`` -> ``dx : (N, C_in, H, W)``."""
        cache = self._forward_cache()
        dx, self.grads["w"], self.grads["b"] = conv_transpose2d_backward(dout, cache)
        return dx


def residual_forward(x, body, shortcut=None):
    """Forward pass of a residual block: ``body(x) + shortcut(x)`` (eq-res-forward).

    Runs ``x`` through the layers of ``body`` one after the other, and through those of
    ``shortcut`` (none: the identity); each layer keeps its own cache for the backward
    pass.

    Parameters
    ----------
    x : numpy.ndarray
        Input of the block, any shape the first layers accept, e.g. ``(N, C, H, W)``.
    body : list of layers
        Layers with ``forward(x) -> out`` and ``backward(dout) -> dx``.
    shortcut : list of layers or None
        ``None`` is the identity; otherwise layers that bring ``x`` to the body's
        output shape.

    Returns
    -------
    out : numpy.ndarray
        The body's output shape.

    Raises
    ------
    ValueError
        If the body's and the shortcut's outputs differ in shape.
    """
    out = x
    for layer in body:
        out = layer.forward(out)
    skip = x
    for layer in shortcut or ():
        skip = layer.forward(skip)
    _check_same_shape(out, skip)
    return out + skip


def _check_same_shape(out, skip):
    """Check that the body's output ``out`` and the shortcut's ``skip`` can be added."""
    if out.shape != skip.shape:
        raise ValueError(
            f"the body's output has shape {out.shape} and the shortcut's "
            f"{skip.shape}; they must be equal (give a shortcut that changes the "
            "shape as the body does, e.g. a strided 1x1 Conv2D)"
        )


def residual_backward(dout, body, shortcut=None):
    """Backward pass of a residual block: the sum of the two paths' gradients.

    ``dout`` goes back through the layers of ``body`` in reverse order, and through
    those of ``shortcut`` (none: the identity passes it on unchanged); the two
    gradients that arrive at ``x`` add (eq-res-dx). Each layer's ``backward`` stores
    its parameters' gradients in its ``grads``.

    Parameters
    ----------
    dout : numpy.ndarray
        Upstream gradient, the block's output shape.
    body : list of layers
        The layers of the forward pass, each holding its cache.
    shortcut : list of layers or None
        As given to ``residual_forward``.

    Returns
    -------
    dx : numpy.ndarray
        Shape of the block's input ``x``.
    """
    dx_body = dout
    for layer in reversed(body):
        dx_body = layer.backward(dx_body)
    dx_skip = dout
    for layer in reversed(shortcut or ()):
        dx_skip = layer.backward(dx_skip)
    return dx_body + dx_skip


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
    sub-layer. Its passes are ``residual_forward`` and ``residual_backward``.

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
        """The sub-layers' parameters, not copies, keyed ``"body.0.w"`` and so on."""
        return self._collect("params")

    @property
    def grads(self):
        """The sub-layers' gradients of the last ``backward``, keyed as ``params``."""
        return self._collect("grads")

    @property
    def buffers(self):
        """The sub-layers' buffers, not copies, keyed ``"body.1.running_mean"`` etc."""
        return self._collect("buffers")

    @property
    def training(self):
        """The mode, training or evaluation; setting it sets every sub-layer's."""
        return self._training

    @training.setter
    def training(self, mode):
        self._training = bool(mode)
        for _, layers in self._paths():
            for layer in layers:
                layer.training = self._training

    @property
    def cache(self):
        """The sub-layers' caches, those of ``body`` then those of ``shortcut``."""
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
        return residual_forward(x, self.body, self.shortcut)

    def backward(self, dout):
        """``dout`` -> ``dx``: the sum of the two paths' gradients; sets ``grads``."""
        return residual_backward(dout, self.body, self.shortcut)

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
