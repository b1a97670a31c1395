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

import numbers
from typing import NamedTuple

import numpy as np

from cnn.checks import (
    check_array,
    check_cache,
    check_dtype,
    check_int,
    check_positive,
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


def _check_bn_args(x, gamma, beta, eps):
    """Validate a batch-norm forward pass; return ``eps`` as a float."""
    check_array(x, "x")
    if x.ndim < 2:
        raise ValueError(
            f"x must have shape (N, C) or (N, C, H, W), got shape {x.shape}"
        )
    check_array(gamma, "gamma", ("C",), known={"C": x.shape[1]})
    check_array(beta, "beta", ("C",), known={"C": x.shape[1]})
    return check_positive(eps, "eps")


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
    eps = _check_bn_args(x, gamma, beta, eps)
    m = x.size // x.shape[1]
    if m < 2:
        raise ValueError(
            f"x of shape {x.shape} has one value per channel; batch statistics need "
            "at least two (use evaluation mode for single samples)"
        )
    gamma, beta = gamma.astype(x.dtype, copy=False), beta.astype(x.dtype, copy=False)
    mean = channel_sum(x) / m
    x_hat = x - _per_channel(mean, x.ndim)  # centred for now
    var = channel_sum(x_hat, x_hat) / m  # biased: divided by m, not m - 1
    inv_std = 1 / np.sqrt(var + eps)
    # In place: each pass over a large batch costs more than the arithmetic.
    x_hat *= _per_channel(inv_std, x.ndim)
    out = x_hat * _per_channel(gamma, x.ndim)
    out += _per_channel(beta, x.ndim)
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
    eps = _check_bn_args(x, gamma, beta, eps)
    check_array(mean, "mean", ("C",), known={"C": x.shape[1]})
    check_array(var, "var", ("C",), known={"C": x.shape[1]})
    if var.min() < 0:
        raise ValueError(f"var must be non-negative, got minimum {var.min()}")
    gamma, beta = gamma.astype(x.dtype, copy=False), beta.astype(x.dtype, copy=False)
    mean, var = mean.astype(x.dtype, copy=False), var.astype(x.dtype, copy=False)
    inv_std = 1 / np.sqrt(var + eps)
    x_hat = (x - _per_channel(mean, x.ndim)) * _per_channel(inv_std, x.ndim)
    out = _per_channel(gamma, x.ndim) * x_hat + _per_channel(beta, x.ndim)
    return out, BatchNormCache(x_hat, inv_std, gamma, mean, var, False)


def _check_dout(dout, cache):
    check_cache(cache, BatchNormCache)
    check_array(dout, "dout", dims=cache.x_hat.shape)
    return dout.astype(cache.x_hat.dtype, copy=False)


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
    # gamma inv_std (dout - dbeta / m - x_hat dgamma / m), in place, term by term
    dx = x_hat * _per_channel(-dgamma / m, ndim)
    dx += dout
    dx -= _per_channel(dbeta / m, ndim)
    dx *= scale
    return dx, dgamma, dbeta


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
        if (not isinstance(momentum, numbers.Real) or isinstance(momentum, bool)
                or not 0 <= momentum <= 1):
            raise ValueError(f"momentum must be in [0, 1], got {momentum!r}")
        dtype = check_dtype(dtype)
        self.momentum, self.eps = float(momentum), check_positive(eps, "eps")
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
