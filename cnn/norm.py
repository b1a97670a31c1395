"""Batch normalisation: forward and backward passes, and the ``BatchNorm`` layer.

Batch normalisation (Ioffe and Szegedy, 2015) standardises every channel over the
batch, then scales and shifts it by learned ``gamma`` and ``beta``. It normalises over
every axis except axis 1, the channel axis, so one pair of functions serves dense
activations ``(N, C)`` (statistics over the ``N`` samples) and convolutional feature
maps ``(N, C, H, W)`` (statistics over the ``N H W`` positions of each channel:
*spatial* batch normalisation).

In training mode the statistics are those of the batch, and the backward pass must go
through them: ``batchnorm_backward_naive`` follows the computational graph stage by
stage, ``batchnorm_backward`` uses the compact form derived in the chapter "Batch
normalisation"; the tests check that they agree. In evaluation mode the layer uses
running estimates instead, which are constants for the backward pass.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cnn.checks import (
    check_array,
    check_dout,
    check_dtype,
    check_groups,
    check_int,
    check_positive,
    check_real,
)
from cnn.layers import Layer


class BatchNormCache(NamedTuple):
    """What the backward pass of batch normalisation needs."""

    #: The normalised input ``(x - mean) / sqrt(var + eps)``, shape of ``x``.
    x_hat: np.ndarray
    #: ``1 / sqrt(var + eps)``, shape ``(C,)``.
    inv_std: np.ndarray
    #: The scales, shape ``(C,)``, in the dtype of ``x``.
    gamma: np.ndarray
    #: The mean used, shape ``(C,)``; the batch's own in training mode.
    mean: np.ndarray
    #: The (biased) variance used, shape ``(C,)``.
    var: np.ndarray
    #: Whether ``mean`` and ``var`` are the batch's own statistics (training mode) and
    #: so depend on ``x``, or fixed running estimates (evaluation mode).
    batch_statistics: bool = True


def _axes(x):
    """Every axis except the channel axis 1: ``(0,)`` or ``(0, 2, 3)``."""
    return (0,) + tuple(range(2, x.ndim))


def channel_sum(a, b=None):
    """Sum of ``a`` (or of ``a * b``) over every axis except axis 1: shape ``(C,)``.

    ``numpy.einsum`` and ``numpy.linalg.vecdot`` (on the view ``(N, C, -1)``) never
    build the product ``a * b``, a batch-sized array, and sweep the batch once.
    """
    if a.ndim == 2:
        return np.einsum("nc->c", a) if b is None else np.einsum("nc,nc->c", a, b)
    N, C = a.shape[:2]
    a = a.reshape(N, C, -1)
    if b is None:
        return np.einsum("ncm->c", a)
    return np.linalg.vecdot(a, b.reshape(N, C, -1)).sum(axis=0)


def _per_channel(v, ndim):
    """View a ``(C,)`` vector so that it broadcasts along axis 1 of ``ndim`` axes."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _check_eps(eps):
    return check_positive(eps, "eps")


def _check_bn_args(x, gamma, beta, eps, batch_statistics=True):
    """Validate a batch-norm forward pass.

    Returns ``gamma`` and ``beta`` in the dtype of ``x`` and ``eps`` as a float. With
    ``batch_statistics`` every channel needs at least two values.
    """
    check_array(x, "x")
    if x.ndim < 2:
        raise ValueError(
            f"x must have shape (N, C) or (N, C, H, W), got shape {x.shape}"
        )
    check_array(gamma, "gamma", ("C",), known={"C": x.shape[1]})
    check_array(beta, "beta", ("C",), known={"C": x.shape[1]})
    if batch_statistics and x.size // x.shape[1] < 2:
        raise ValueError(
            f"x of shape {x.shape} has one value per channel; batch statistics need "
            "at least two (use evaluation mode for single samples)"
        )
    gamma, beta = gamma.astype(x.dtype, copy=False), beta.astype(x.dtype, copy=False)
    return gamma, beta, _check_eps(eps)


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Batch normalisation in training mode, with the batch's own statistics.

    ``mean`` and the biased ``var`` are taken over every axis except axis 1;
    ``x_hat = (x - mean) / sqrt(var + eps)`` and ``out = gamma x_hat + beta``.
    Implements eq-bn-mean, eq-bn-var, eq-bn-xhat and eq-bn-forward.

    Parameters
    ----------
    x : numpy.ndarray
        Shape ``(N, C)`` or ``(N, C, H, W)``, float32 or float64, with at least two
        values per channel.
    gamma, beta : numpy.ndarray
        Scale and shift, shape ``(C,)``.
    eps : float
        Added to the variance, > 0.

    Returns
    -------
    out : numpy.ndarray
        Shape and dtype of ``x``.
    cache : BatchNormCache
        For ``batchnorm_backward``; its ``mean`` and ``var`` are the batch statistics.

    Raises
    ------
    TypeError, ValueError
        On a non-float or non-finite array, a rank below 2, ``gamma`` or ``beta`` not of
        shape ``(C,)``, fewer than two values per channel, or ``eps <= 0``.
    """
    gamma, beta, eps = _check_bn_args(x, gamma, beta, eps)
    m = x.size // x.shape[1]  # values per channel: N, or N H W
    mean = channel_sum(x) / m
    centred = x - _per_channel(mean, x.ndim)
    var = channel_sum(centred, centred) / m  # biased: divided by m, not m - 1
    inv_std = 1 / np.sqrt(var + eps)
    x_hat = centred * _per_channel(inv_std, x.ndim)
    out = _per_channel(gamma, x.ndim) * x_hat + _per_channel(beta, x.ndim)
    return out, BatchNormCache(x_hat, inv_std, gamma, mean, var)


def batchnorm_inference(x, gamma, beta, mean, var, eps=1e-5):
    """Batch normalisation in evaluation mode, with fixed statistics ``mean``, ``var``.

    ``out = gamma (x - mean) / sqrt(var + eps) + beta``: a fixed affine map of each
    channel, the same for every sample of the batch. Implements eq-bn-forward with the
    running estimates of eq-bn-running in place of the batch statistics.

    Parameters
    ----------
    x : numpy.ndarray
        Shape ``(N, C)`` or ``(N, C, H, W)``.
    gamma, beta : numpy.ndarray
        Shape ``(C,)``.
    mean, var : numpy.ndarray
        The statistics to use, shape ``(C,)``; ``var`` non-negative.
    eps : float
        > 0.

    Returns
    -------
    out : numpy.ndarray
        Shape and dtype of ``x``.
    cache : BatchNormCache
        For ``batchnorm_backward``, with ``batch_statistics=False``.
    """
    gamma, beta, eps = _check_bn_args(x, gamma, beta, eps, batch_statistics=False)
    check_array(mean, "mean", ("C",), known={"C": x.shape[1]})
    check_array(var, "var", ("C",), known={"C": x.shape[1]})
    if var.min() < 0:
        raise ValueError(f"var must be non-negative, got minimum {var.min()}")
    mean, var = mean.astype(x.dtype, copy=False), var.astype(x.dtype, copy=False)
    inv_std = 1 / np.sqrt(var + eps)
    x_hat = (x - _per_channel(mean, x.ndim)) * _per_channel(inv_std, x.ndim)
    out = _per_channel(gamma, x.ndim) * x_hat + _per_channel(beta, x.ndim)
    return out, BatchNormCache(x_hat, inv_std, gamma, mean, var, False)


def _check_dout(dout, cache):
    """Check the cache and ``dout`` against it; return ``dout`` in the input's dtype."""
    return check_dout(dout, cache, BatchNormCache,
                      lambda cache: (cache.x_hat.shape, None, cache.x_hat.dtype))


def batchnorm_backward_naive(dout, cache):
    """Batch-norm backward pass stage by stage, through the mean and the variance.

    Walks the graph of the forward pass backwards: ``dx_hat`` (eq-bn-dxhat), ``dvar``
    (eq-bn-dvar), ``dmean`` (eq-bn-dmu), then the three paths from ``x`` to the loss
    (eq-bn-dx-paths); ``dgamma`` and ``dbeta`` as eq-bn-dgamma and eq-bn-dbeta. With
    ``batch_statistics=False`` the mean and variance are constants and only the first
    path remains.

    Arguments and results are those of ``batchnorm_backward``:
    ``dout`` of the shape of ``x`` gives ``dx``, ``dgamma : (C,)``, ``dbeta : (C,)``.
    """
    dout = _check_dout(dout, cache)
    x_hat, inv_std, gamma = cache.x_hat, cache.inv_std, cache.gamma
    axes, ndim = _axes(x_hat), x_hat.ndim
    m = x_hat.size // x_hat.shape[1]
    centred = x_hat / _per_channel(inv_std, ndim)
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * x_hat).sum(axis=axes)
    dx_hat = dout * _per_channel(gamma, ndim)
    dx = dx_hat * _per_channel(inv_std, ndim)  # path 1: through x_hat directly
    if not cache.batch_statistics:
        return dx, dgamma, dbeta
    dvar = -0.5 * (dx_hat * centred).sum(axis=axes) * inv_std**3
    dmean = -(dx_hat.sum(axis=axes) * inv_std) - dvar * 2 * centred.mean(axis=axes)
    dx = dx + _per_channel(dvar, ndim) * 2 * centred / m  # path 2: through var
    dx = dx + _per_channel(dmean, ndim) / m  # path 3: through mean
    return dx, dgamma, dbeta


def batchnorm_backward(dout, cache):
    """Batch-norm backward pass in the compact form of eq-bn-dx.

    ``dbeta`` and ``dgamma`` sum ``dout`` and ``dout x_hat`` over all axes but 1
    (eq-bn-dbeta, eq-bn-dgamma); then, with ``m`` values per channel,
    ``dx = gamma inv_std / m * (m dout - dbeta - x_hat dgamma)`` (eq-bn-dx): two sums
    per channel and one pass over the batch. In
    evaluation mode (``batch_statistics=False``) the statistics are constants and
    ``dx = gamma inv_std dout``.

    Parameters
    ----------
    dout : numpy.ndarray
        Upstream gradient, shape of the forward input.
    cache : BatchNormCache
        From ``batchnorm_forward`` or ``batchnorm_inference``.

    Returns
    -------
    dx : numpy.ndarray
        Shape and dtype of the forward input.
    dgamma, dbeta : numpy.ndarray
        Shape ``(C,)``.
    """
    dout = _check_dout(dout, cache)
    x_hat, ndim = cache.x_hat, cache.x_hat.ndim
    m = x_hat.size // x_hat.shape[1]
    dbeta = channel_sum(dout)
    dgamma = channel_sum(dout, x_hat)
    scale = _per_channel(cache.gamma * cache.inv_std, ndim)
    if not cache.batch_statistics:
        return dout * scale, dgamma, dbeta
    # eq-bn-dx as gamma inv_std (dout - x_hat dgamma / m - dbeta / m)
    dx = dout - x_hat * _per_channel(dgamma / m, ndim) - _per_channel(dbeta / m, ndim)
    return scale * dx, dgamma, dbeta


class BatchNorm(Layer):
    """Batch normalisation layer for ``(N, C)`` or ``(N, C, H, W)`` inputs.

    In training mode (``training=True``, set by ``Sequential.train``) it normalises with
    the batch statistics and updates the running estimates (eq-bn-running):
    ``running <- (1 - momentum) running + momentum batch``, with the unbiased variance
    ``var m / (m - 1)`` for the running estimate and the biased one for normalising, as
    PyTorch does. In evaluation mode it normalises with the running estimates.

    Parameters
    ----------
    num_features : int
        ``C``, the number of channels.
    momentum : float
        Weight of the new batch in the running estimates, in ``[0, 1]``.
    eps : float
        Added to the variance, > 0.
    dtype : numpy dtype
        Of the parameters and running estimates, float32 (default) or float64.

    Attributes
    ----------
    params : dict
        ``"gamma"`` (ones) and ``"beta"`` (zeros), shape ``(C,)``.
    grads : dict
        Same keys and shapes, set by ``backward``.
    buffers : dict
        ``"running_mean"`` (zeros) and ``"running_var"`` (ones), shape ``(C,)``: state
        that is saved with the model but not trained.
    """

    def __init__(self, num_features, momentum=0.1, eps=1e-5, dtype=np.float32):
        super().__init__()
        C = check_int(num_features, "num_features")
        momentum = check_real(momentum, "momentum", 0.0, 1.0, high_inclusive=True)
        dtype = check_dtype(dtype)
        self.momentum, self.eps = float(momentum), _check_eps(eps)
        self.params = {"gamma": np.ones(C, dtype=dtype),
                       "beta": np.zeros(C, dtype=dtype)}
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}
        self.buffers = {"running_mean": np.zeros(C, dtype=dtype),
                        "running_var": np.ones(C, dtype=dtype)}

    def forward(self, x):
        """``x : (N, C)`` or ``(N, C, H, W)`` -> ``out``, same shape."""
        gamma, beta = self.params["gamma"], self.params["beta"]
        if not self.training:
            out, self.cache = batchnorm_inference(
                x, gamma, beta, self.buffers["running_mean"],
                self.buffers["running_var"], self.eps)
            return out
        out, self.cache = batchnorm_forward(x, gamma, beta, self.eps)
        m = x.size // x.shape[1]
        for key, batch in (("running_mean", self.cache.mean),
                           ("running_var", self.cache.var * m / (m - 1))):
            running = self.buffers[key]
            running *= 1 - self.momentum
            running += self.momentum * batch.astype(running.dtype)
        return out

    def backward(self, dout):
        """``dout`` -> ``dx``, same shape; sets ``grads``."""
        cache = self._forward_cache()
        dx, self.grads["gamma"], self.grads["beta"] = batchnorm_backward(dout, cache)
        return dx

    def __repr__(self):
        C = self.params["gamma"].shape[0]
        return f"BatchNorm({C}, momentum={self.momentum}, eps={self.eps})"


# Normalisation without the batch: LayerNorm, GroupNorm (and InstanceNorm, its case
# groups = C) standardise each sample on its own. They differ from batch normalisation
# only in the axes the statistics are taken over, so one pair of functions,
# ``normalize_forward`` and ``normalize_backward``, does the work for all of them.


class NormCache(NamedTuple):
    """What ``normalize_backward`` needs."""

    #: The normalised input, shape of ``x``.
    x_hat: np.ndarray
    #: ``1 / sqrt(var + eps)``, shape of ``x`` with the normalised ``axes`` of size 1.
    inv_std: np.ndarray
    #: The axes the statistics were taken over.
    axes: tuple


def normalize_forward(x, axes, eps=1e-5):
    """Standardise ``x`` over ``axes``: mean 0 and variance 1 in every slice.

    ``x_hat = (x - mean) / sqrt(var + eps)`` with the mean and the biased variance over
    ``axes`` (eq-norm-xhat). LayerNorm takes ``axes`` = every axis but the first;
    GroupNorm, on the view ``(N, G, C // G, H, W)``, the axes ``(2, 3, 4)``.

    Parameters
    ----------
    x : numpy.ndarray
        Any shape.
    axes : tuple of ints
        The axes whose entries share one mean and one variance.
    eps : float
        Added to the variance, > 0.

    Returns
    -------
    x_hat : numpy.ndarray
        Shape and dtype of ``x``.
    cache : NormCache
        For ``normalize_backward``.
    """
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)  # biased: divided by m, not m - 1
    inv_std = 1 / np.sqrt(var + eps)
    x_hat = (x - mean) * inv_std
    return x_hat, NormCache(x_hat, inv_std, axes)


def normalize_backward(dx_hat, cache):
    """Gradient of ``normalize_forward`` for its input, from ``dx_hat``.

    With ``m`` entries per slice, ``dx = inv_std / m * (m dx_hat - sum(dx_hat)
    - x_hat sum(dx_hat x_hat))``, the sums over the slice's ``axes`` (eq-norm-dx):
    the compact batch-norm formula, over other axes.

    Parameters
    ----------
    dx_hat : numpy.ndarray
        Gradient of the loss for ``x_hat``, shape of ``x``.
    cache : NormCache
        From ``normalize_forward``.

    Returns
    -------
    dx : numpy.ndarray
        Shape of ``x``.
    """
    x_hat, axes = cache.x_hat, cache.axes
    m = x_hat.size // cache.inv_std.size
    sum_dx_hat = dx_hat.sum(axis=axes, keepdims=True)
    sum_dx_hat_x_hat = (dx_hat * x_hat).sum(axis=axes, keepdims=True)
    return cache.inv_std / m * (m * dx_hat - sum_dx_hat - x_hat * sum_dx_hat_x_hat)


class LayerNormCache(NamedTuple):
    """What ``layernorm_backward`` needs."""

    #: From ``normalize_forward`` over every axis but the first.
    norm: NormCache
    #: The scales, shape ``x.shape[1:]``, in the dtype of ``x``.
    gamma: np.ndarray


def _check_norm_args(x, gamma, beta, eps, channels_only, groups=1):
    """Validate a LayerNorm or GroupNorm forward pass.

    Returns ``gamma`` and ``beta`` in the dtype of ``x`` (the arithmetic runs in it),
    ``eps`` as a float and ``groups`` as an int.
    """
    check_array(x, "x")
    if x.ndim < 2:
        raise ValueError(f"x must have shape (N, C, ...), got shape {x.shape}")
    shape, shape_text = (x.shape[1:2], "(C,)") if channels_only else (
        x.shape[1:], "x.shape[1:]")
    for name, value in (("gamma", gamma), ("beta", beta)):
        check_array(value, name)
        if value.shape != shape:
            raise ValueError(
                f"{name} must have shape {shape_text} = {shape} for x of shape "
                f"{x.shape}, got shape {value.shape}"
            )
    groups = check_groups(groups, x.shape[1], "channels of x", "C")
    gamma, beta = gamma.astype(x.dtype, copy=False), beta.astype(x.dtype, copy=False)
    return gamma, beta, _check_eps(eps), groups


def layernorm_forward(x, gamma, beta, eps=1e-5):
    """Layer normalisation: each sample standardised over all its entries.

    ``x_hat`` by ``normalize_forward`` over every axis but the first (eq-norm-xhat),
    then ``out = gamma x_hat + beta`` with one ``gamma`` and ``beta`` per entry of a
    sample (eq-norm-forward), as ``torch.nn.functional.layer_norm(x, x.shape[1:])``.

    Parameters
    ----------
    x : numpy.ndarray
        Shape ``(N, D)`` or ``(N, C, H, W)``, float32 or float64.
    gamma, beta : numpy.ndarray
        Scale and shift, shape ``x.shape[1:]``.
    eps : float
        Added to the variance, > 0.

    Returns
    -------
    out : numpy.ndarray
        Shape and dtype of ``x``.
    cache : LayerNormCache
        For ``layernorm_backward``.
    """
    gamma, beta, eps, _ = _check_norm_args(x, gamma, beta, eps, channels_only=False)
    x_hat, norm = normalize_forward(x, tuple(range(1, x.ndim)), eps)
    return gamma * x_hat + beta, LayerNormCache(norm, gamma)


def _layernorm_dout(cache):
    """The shape and dtype of ``x`` (``check_dout``)."""
    return cache.norm.x_hat.shape, None, cache.norm.x_hat.dtype


def layernorm_backward(dout, cache):
    """Backward pass of layer normalisation.

    ``dbeta`` and ``dgamma`` sum ``dout`` and ``dout x_hat`` over the batch axis, the
    axis that ``gamma`` and ``beta`` are shared along (eq-norm-dbeta, eq-norm-dgamma);
    ``dx`` is ``normalize_backward`` of ``dx_hat = gamma dout`` (eq-norm-dx).

    Parameters
    ----------
    dout : numpy.ndarray
        Upstream gradient, shape of ``x``.
    cache : LayerNormCache
        From ``layernorm_forward``.

    Returns
    -------
    dx : numpy.ndarray
        Shape of ``x``.
    dgamma, dbeta : numpy.ndarray
        Shape ``x.shape[1:]``.
    """
    dout = check_dout(dout, cache, LayerNormCache, _layernorm_dout)
    x_hat = cache.norm.x_hat
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = normalize_backward(dout * cache.gamma, cache.norm)
    return dx, dgamma, dbeta


class GroupNormCache(NamedTuple):
    """What ``groupnorm_backward`` needs."""

    #: From ``normalize_forward`` on the view ``(N, G, C // G, ...)`` of ``x``.
    norm: NormCache
    #: The scales, shape ``(C,)``, in the dtype of ``x``.
    gamma: np.ndarray


def _grouped(a, groups):
    """The view ``(N, G, C // G, ...)`` of ``a : (N, C, ...)``."""
    N, C = a.shape[:2]
    return a.reshape((N, groups, C // groups) + a.shape[2:])


def groupnorm_forward(x, gamma, beta, groups, eps=1e-5):
    """Group normalisation: each sample's channels standardised in ``groups`` groups.

    ``x_hat`` by ``normalize_forward`` on the view ``(N, G, C // G, H, W)`` over its
    axes 2 and after (eq-norm-xhat), then ``out = gamma x_hat + beta`` per channel
    (eq-norm-forward), as ``torch.nn.functional.group_norm``. ``groups=1`` normalises
    all of a sample (LayerNorm with per-channel ``gamma``), ``groups=C`` each channel
    of each sample on its own (InstanceNorm).

    Parameters
    ----------
    x : numpy.ndarray
        Shape ``(N, C)`` or ``(N, C, H, W)``, float32 or float64.
    gamma, beta : numpy.ndarray
        Scale and shift, shape ``(C,)``.
    groups : int
        ``G``, a divisor of ``C``.
    eps : float
        Added to the variance, > 0.

    Returns
    -------
    out : numpy.ndarray
        Shape and dtype of ``x``.
    cache : GroupNormCache
        For ``groupnorm_backward``.
    """
    gamma, beta, eps, groups = _check_norm_args(x, gamma, beta, eps, True, groups)
    x_hat, norm = normalize_forward(
        _grouped(x, groups), tuple(range(2, x.ndim + 1)), eps)
    x_hat = x_hat.reshape(x.shape)
    out = _per_channel(gamma, x.ndim) * x_hat + _per_channel(beta, x.ndim)
    return out, GroupNormCache(norm, gamma)


def _groupnorm_dout(cache):
    """The shape of ``x``, from ``x_hat : (N, G, C // G, ...)``, and its dtype."""
    N, G, size, *rest = cache.norm.x_hat.shape
    return (N, G * size, *rest), None, cache.norm.x_hat.dtype


def groupnorm_backward(dout, cache):
    """Backward pass of group normalisation.

    ``dbeta`` and ``dgamma`` sum ``dout`` and ``dout x_hat`` over every axis but the
    channel axis (eq-norm-dbeta, eq-norm-dgamma); ``dx`` is ``normalize_backward`` of
    ``dx_hat = gamma dout`` on the grouped view (eq-norm-dx).

    Parameters
    ----------
    dout : numpy.ndarray
        Upstream gradient, shape of ``x``.
    cache : GroupNormCache
        From ``groupnorm_forward``.

    Returns
    -------
    dx : numpy.ndarray
        Shape of ``x``.
    dgamma, dbeta : numpy.ndarray
        Shape ``(C,)``.
    """
    dout = check_dout(dout, cache, GroupNormCache, _groupnorm_dout)
    grouped = cache.norm.x_hat
    x_hat = grouped.reshape(dout.shape)
    dbeta = channel_sum(dout)
    dgamma = channel_sum(dout, x_hat)
    dx_hat = dout * _per_channel(cache.gamma, dout.ndim)
    dx = normalize_backward(_grouped(dx_hat, grouped.shape[1]), cache.norm)
    return dx.reshape(x_hat.shape), dgamma, dbeta


def _check_fold_args(w, b, gamma, beta, running_mean, running_var, eps):
    """Validate ``fold_batchnorm``'s arguments; return ``eps`` as a float."""
    check_array(w, "w")
    if w.ndim < 2:
        raise ValueError(f"w must have shape (F, C, KH, KW), got shape {w.shape}")
    F = w.shape[0]
    check_array(b, "b", ("F",), known={"F": F})
    for name, value in (("gamma", gamma), ("beta", beta),
                        ("running_mean", running_mean), ("running_var", running_var)):
        check_array(value, name, ("F",), known={"F": F})
    if running_var.min() < 0:
        raise ValueError(
            f"running_var must be non-negative, got minimum {running_var.min()}")
    return _check_eps(eps)


def fold_batchnorm(w, b, gamma, beta, running_mean, running_var, eps=1e-5):
    """Fold evaluation-mode batch normalisation into the layer before it.

    With ``s = gamma / sqrt(running_var + eps)``, ``w' = s w`` (each filter scaled) and
    ``b' = s (b - running_mean) + beta`` (eq-fold-bn): ``conv2d_forward(x, w', b')``
    equals ``batchnorm_inference`` of ``conv2d_forward(x, w, b)``, one layer instead of
    two at inference time.

    Parameters
    ----------
    w : numpy.ndarray
        Filters, shape ``(F, C, KH, KW)`` (any shape ``(F, ...)``).
    b : numpy.ndarray
        Biases, shape ``(F,)``.
    gamma, beta, running_mean, running_var : numpy.ndarray
        The batch-norm layer's parameters and running estimates, shape ``(F,)``.
    eps : float
        The batch-norm layer's ``eps``, > 0.

    Returns
    -------
    w_folded : numpy.ndarray
        Shape of ``w``.
    b_folded : numpy.ndarray
        Shape ``(F,)``.
    """
    eps = _check_fold_args(w, b, gamma, beta, running_mean, running_var, eps)
    scale = (gamma / np.sqrt(running_var + eps)).astype(w.dtype)
    w_folded = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
    return w_folded, ((b - running_mean) * scale + beta).astype(w.dtype)


class Normalisation(Layer):
    """Base class of ``LayerNorm`` and ``GroupNorm``, which name their backward pass.

    Parameters
    ----------
    shape : tuple of ints
        Of ``gamma`` (ones) and ``beta`` (zeros).
    eps : float
        Added to the variance, > 0.
    dtype : numpy dtype
        Of the parameters.
    """

    _backward_function = None

    def __init__(self, shape, eps, dtype):
        super().__init__()
        self.eps = _check_eps(eps)
        self.params = {"gamma": np.ones(shape, dtype=dtype),
                       "beta": np.zeros(shape, dtype=dtype)}
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}

    def backward(self, dout):
        """``dout`` -> ``dx``, same shape; sets ``grads``."""
        grads = self._backward_function(dout, self._forward_cache())
        dx, self.grads["gamma"], self.grads["beta"] = grads
        return dx


class LayerNorm(Normalisation):
    """Layer normalisation layer: ``layernorm_forward`` and ``layernorm_backward``.

    The same in training and evaluation mode: it has no running statistics.

    Parameters
    ----------
    normalized_shape : int or tuple of ints
        The shape of one sample, ``x.shape[1:]``: ``D`` or ``(C, H, W)``.
    eps : float
        Added to the variance, > 0.
    dtype : numpy dtype
        Of the parameters, float32 (default) or float64.

    Attributes
    ----------
    params : dict
        ``"gamma"`` (ones) and ``"beta"`` (zeros), shape ``normalized_shape``.
    grads : dict
        Same keys and shapes, set by ``backward``.
    """

    _backward_function = staticmethod(layernorm_backward)

    def __init__(self, normalized_shape, eps=1e-5, dtype=np.float32):
        if isinstance(normalized_shape, (tuple, list)):
            shape = tuple(check_int(n, "normalized_shape") for n in normalized_shape)
        else:
            shape = (check_int(normalized_shape, "normalized_shape"),)
        super().__init__(shape, eps, dtype)

    def forward(self, x):
        """``x : (N, *normalized_shape)`` -> ``out``, same shape."""
        out, self.cache = layernorm_forward(
            x, self.params["gamma"], self.params["beta"], self.eps)
        return out

    def __repr__(self):
        return f"LayerNorm({self.params['gamma'].shape}, eps={self.eps})"


class GroupNorm(Normalisation):
    """Group normalisation layer: ``groupnorm_forward`` and ``groupnorm_backward``.

    The same in training and evaluation mode: it has no running statistics.
    ``GroupNorm(C, C)`` is instance normalisation.

    Parameters
    ----------
    num_groups : int
        ``G``, a divisor of ``num_channels``.
    num_channels : int
        ``C``.
    eps : float
        Added to the variance, > 0.
    dtype : numpy dtype
        Of the parameters, float32 (default) or float64.

    Attributes
    ----------
    params : dict
        ``"gamma"`` (ones) and ``"beta"`` (zeros), shape ``(C,)``.
    grads : dict
        Same keys and shapes, set by ``backward``.
    """

    _backward_function = staticmethod(groupnorm_backward)

    def __init__(self, num_groups, num_channels, eps=1e-5, dtype=np.float32):
        C = check_int(num_channels, "num_channels")
        self.groups = check_groups(num_groups, C, "num_channels", "C")
        super().__init__(C, eps, dtype)

    def forward(self, x):
        """``x : (N, C)`` or ``(N, C, H, W)`` -> ``out``, same shape."""
        out, self.cache = groupnorm_forward(
            x, self.params["gamma"], self.params["beta"], self.groups, self.eps)
        return out

    def __repr__(self):
        C = self.params["gamma"].shape[0]
        return f"GroupNorm({self.groups}, {C}, eps={self.eps})"
