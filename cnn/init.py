"""Weight initialisation: Xavier (Glorot) and He normal, derived in "Initialisation".

Both draw ``w ~ Normal(0, std**2)`` with a standard deviation chosen so that the
variance of the activations (He) or of both activations and gradients (Xavier) stays
the same from layer to layer. The fan-in of a layer is the number of inputs each output
sums: ``D`` for a dense layer with weights ``(D, M)``, ``C KH KW`` for a convolution
with weights ``(F, C, KH, KW)``. The layers of ``cnn.layers`` use ``he_normal``.
"""

from __future__ import annotations

import numpy as np

from cnn.checks import check_dtype, check_real, check_rng


def _check(rng, dtype, **fans):
    rng = check_rng(np.random.default_rng(0) if rng is None else rng)
    check_dtype(dtype)
    for name, value in fans.items():
        check_real(value, name, 0.0, low_inclusive=False)
    return rng


def he_normal(shape, fan_in, rng=None, dtype=np.float32):
    """He initialisation: ``w ~ Normal(0, 2 / fan_in)`` (eq-he), for ReLU layers.

    Parameters
    ----------
    shape : tuple of ints
        Shape of the weight array.
    fan_in : float
        Inputs per output unit, > 0.
    rng : numpy.random.Generator, optional
        ``None`` means ``numpy.random.default_rng(0)``.
    dtype : numpy dtype
        float32 (default) or float64.

    Returns
    -------
    w : numpy.ndarray
        Shape ``shape``, dtype ``dtype``.
    """
    rng = _check(rng, dtype, fan_in=fan_in)
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


def xavier_normal(shape, fan_in, fan_out, rng=None, dtype=np.float32):
    """Xavier (Glorot) initialisation: ``w ~ Normal(0, 2 / (fan_in + fan_out))``.

    Implements eq-xavier. A compromise between keeping the forward variance
    (``1 / fan_in``) and the backward variance (``1 / fan_out``), for activations that
    are linear near zero, such as tanh.

    Parameters
    ----------
    shape : tuple of ints
        Shape of the weight array.
    fan_in, fan_out : float
        Inputs per output unit and outputs per input unit, > 0.
    rng : numpy.random.Generator, optional
        ``None`` means ``numpy.random.default_rng(0)``.
    dtype : numpy dtype
        float32 (default) or float64.

    Returns
    -------
    w : numpy.ndarray
        Shape ``shape``, dtype ``dtype``.
    """
    rng = _check(rng, dtype, fan_in=fan_in, fan_out=fan_out)
    std = np.sqrt(2.0 / (fan_in + fan_out))
    return (rng.standard_normal(shape) * std).astype(dtype)
