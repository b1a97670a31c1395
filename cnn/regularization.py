"""Dropout: forward and backward passes, and the ``Dropout`` layer.

Inverted dropout (Srivastava et al., 2014): in training mode every unit is kept with
probability ``1 - p`` and the kept units are scaled by ``1 / (1 - p)``, so that the
expected output equals the input and evaluation mode is simply the identity. The other
regulariser of the chapter "Regularisation", weight decay, lives in the optimisers
(``weight_decay=`` of ``cnn.optim.SGD`` and ``cnn.optim.Adam``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cnn.checks import check_array, check_dout, check_real, check_rng
from cnn.layers import Layer


class DropoutCache(NamedTuple):
    """What the backward pass of dropout needs."""

    #: ``True`` where the unit was kept, ``False`` where it was dropped; shape of ``x``.
    mask: np.ndarray
    #: ``1 / (1 - p)``, the scale of the kept units.
    scale: float
    #: Dtype of the input, given to ``dx``.
    dtype: np.dtype


def _check_p(p):
    """``p``, the probability of dropping a unit, as a float in ``[0, 1)``."""
    return check_real(p, "p, the probability of dropping a unit,", 0.0, 1.0)


def _check_dropout_args(x, p, rng):
    """Validate a dropout forward pass; return ``p`` as a float and ``rng``."""
    check_array(x, "x")
    return _check_p(p), check_rng(rng)


def dropout_forward(x, p, rng):
    """Inverted dropout in training mode: drop each unit with probability ``p``.

    ``mask`` is ``True`` with probability ``1 - p``, independently for every entry;
    ``out = x * mask / (1 - p)``. Implements eq-dropout-forward; by eq-dropout-mean the
    expected output is ``x``.

    Parameters
    ----------
    x : numpy.ndarray
        Any shape, float32 or float64.
    p : float
        Probability of dropping a unit, in ``[0, 1)``.
    rng : numpy.random.Generator
        Draws the mask.

    Returns
    -------
    out : numpy.ndarray
        Shape and dtype of ``x``.
    cache : DropoutCache
        For ``dropout_backward``.
    """
    p, rng = _check_dropout_args(x, p, rng)
    mask = rng.random(x.shape, dtype=np.float32) >= p
    scale = 1 / (1 - p)
    out = x * mask * scale
    return out, DropoutCache(mask, scale, x.dtype)


def dropout_backward(dout, cache):
    """Dropout backward pass: ``dx = dout * mask / (1 - p)`` (eq-dropout-dx).

    Dropped units pass no gradient; kept units pass it with the forward scale.

    Parameters
    ----------
    dout : numpy.ndarray
        Upstream gradient, shape of the forward input.
    cache : DropoutCache
        From ``dropout_forward``.

    Returns
    -------
    dx : numpy.ndarray
        Shape of ``dout``, dtype of the forward input.
    """
    dout = check_dout(dout, cache, DropoutCache,
                      lambda cache: (cache.mask.shape, None, cache.dtype))
    return dout * cache.mask * cache.scale


class Dropout(Layer):
    """Dropout layer: ``dropout_forward`` in training mode, the identity in evaluation.

    Parameters
    ----------
    p : float
        Probability of dropping a unit, in ``[0, 1)``.
    rng : numpy.random.Generator, optional
        Draws the masks; ``None`` means ``numpy.random.default_rng(0)``. Each training
        forward pass draws a new mask from it.
    """

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        self.p = _check_p(p)
        self.rng = check_rng(np.random.default_rng(0) if rng is None else rng)

    def forward(self, x):
        """``x`` -> ``out``, same shape: masked and scaled when training."""
        if self.training:
            out, self.cache = dropout_forward(x, self.p, self.rng)
            return out
        check_array(x, "x")
        self.cache = x.shape
        return x.copy()

    def backward(self, dout):
        """``dout`` -> ``dx``, same shape."""
        cache = self._forward_cache()
        if isinstance(cache, DropoutCache):
            return dropout_backward(dout, cache)
        check_array(dout, "dout", dims=cache)
        return dout.copy()

    def __repr__(self):
        return f"Dropout(p={self.p})"
