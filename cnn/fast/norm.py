"""Group normalisation with fewer passes over memory: ``cnn.norm``'s numbers, tuned.

``groupnorm_forward_fast`` and ``groupnorm_backward_fast`` compute what
``cnn.norm.groupnorm_forward`` and ``groupnorm_backward`` compute, with the same
arguments, results and ``GroupNormCache``, so the tests compare the pairs directly and
either backward pass takes either forward pass's cache. The teaching pair calls
``normalize_forward`` and ``normalize_backward`` on the five-axis view
``(N, G, C // G, H, W)`` and builds a new array for every step of the formula; these
take the statistics over the flat view ``(N, G, C // G * H * W)``, whose last axis is
contiguous, reuse their temporaries, and fold the backward formula into one
coefficient per sample and channel for each of ``dout`` and ``x_hat`` and one constant.
``GroupNorm`` is ``cnn.norm.GroupNorm`` running them.
"""

from __future__ import annotations

import numpy as np

from cnn import norm
from cnn.checks import check_dout
from cnn.norm import GroupNormCache, NormCache, _check_norm_args


def groupnorm_forward_fast(x, gamma, beta, groups, eps=1e-5):
    """``cnn.norm.groupnorm_forward``, with the statistics over flat group slices.

    Per sample ``n`` and group ``g`` the mean and the biased variance of the slice
    ``x.reshape(N, G, -1)[n, g]`` (eq-norm-xhat): the slice is centred in a new
    array, which becomes ``x_hat`` in place, then ``out = gamma x_hat + beta``
    (eq-norm-forward) in a second array. Arguments, results and errors are those of
    ``groupnorm_forward``: ``x : (N, C)`` or ``(N, C, H, W)``, ``gamma, beta : (C,)``
    give ``out`` of the shape of ``x`` and a ``GroupNormCache``.
    """
    gamma, beta, eps, G = _check_norm_args(x, gamma, beta, eps, True, groups)
    (N, C), m = x.shape[:2], x[0].size // groups
    x_hat = x.reshape(N, G, m) - np.einsum("ngm->ng", x.reshape(N, G, m))[..., None] / m
    var = np.linalg.vecdot(x_hat, x_hat) / m  # biased: divided by m, not m - 1
    inv_std = 1 / np.sqrt(var + eps)
    x_hat *= inv_std[..., None]
    out = np.multiply(x_hat.reshape(N, C, -1), gamma[:, None])
    out += beta[:, None]
    axes = tuple(range(2, x.ndim + 1))
    cache = NormCache(norm._grouped(x_hat.reshape(x.shape), G),
                      inv_std.reshape((N, G) + (1,) * len(axes)), axes)
    return out.reshape(x.shape), GroupNormCache(cache, gamma)


def groupnorm_backward_fast(dout, cache):
    """``cnn.norm.groupnorm_backward`` as ``a dout + b x_hat + c`` per sample, channel.

    ``dbeta`` and ``dgamma`` sum ``dout`` and ``dout x_hat`` over every axis but the
    channel axis (eq-norm-dbeta, eq-norm-dgamma), from their sums per sample and
    channel; the sums of ``dx_hat = gamma dout`` and ``dx_hat x_hat`` over a group
    follow from the same per-channel sums weighted by ``gamma``, so eq-norm-dx,
    ``dx = inv_std / m (m dx_hat - sum(dx_hat) - x_hat sum(dx_hat x_hat))``, becomes
    ``a dout + b x_hat + c`` with ``a``, ``b`` and ``c`` of shape ``(N, C)``.
    Arguments and results are those of ``groupnorm_backward``: ``dout`` of the shape of
    ``x`` gives ``dx`` of that shape and ``dgamma, dbeta : (C,)``.
    """
    dout = check_dout(dout, cache, GroupNormCache, norm._groupnorm_dout)
    grouped, gamma = cache.norm.x_hat, cache.gamma
    (N, G), C = grouped.shape[:2], dout.shape[1]
    m = grouped[0, 0].size
    d, x_hat = dout.reshape(N, C, -1), grouped.reshape(N, C, -1)
    sum_d = np.einsum("ncm->nc", d)
    sum_d_x_hat = np.linalg.vecdot(d, x_hat)
    inv_std = cache.norm.inv_std.reshape(N, G, 1)
    # Per group: sum(dx_hat) and sum(dx_hat x_hat), from the per-channel sums.
    sum_dx_hat = (sum_d * gamma).reshape(N, G, -1).sum(axis=2, keepdims=True)
    sum_dx_hat_x_hat = (sum_d_x_hat * gamma).reshape(N, G, -1).sum(axis=2,
                                                                   keepdims=True)
    a = (inv_std * gamma.reshape(G, -1)).reshape(N, C, 1)
    b = np.repeat(-inv_std / m * sum_dx_hat_x_hat, C // G, axis=1)
    c = np.repeat(-inv_std / m * sum_dx_hat, C // G, axis=1)
    dx = np.multiply(d, a)
    dx += c
    dx += np.multiply(x_hat, b, out=np.empty_like(dx))
    return dx.reshape(dout.shape), sum_d_x_hat.sum(axis=0), sum_d.sum(axis=0)


class GroupNorm(norm.GroupNorm):
    """``cnn.norm.GroupNorm`` running ``groupnorm_forward_fast`` and its backward."""

    _backward_function = staticmethod(groupnorm_backward_fast)

    def forward(self, x):
        """``x : (N, C)`` or ``(N, C, H, W)`` -> ``out``, same shape."""
        out, self.cache = groupnorm_forward_fast(
            x, self.params["gamma"], self.params["beta"], self.groups, self.eps)
        return out
