"""Training sanity checks: which ReLU units of a network are dead.

The chapter "A deeper CNN, end to end" runs a short list of checks before any long
training run: the initial loss (about ``ln K``, eq-initial-loss), overfitting a tiny
subset, the gradient check of ``cnn.gradcheck``, and the fraction of dead ReLU units
computed here.
"""

from __future__ import annotations

import numpy as np

from cnn.checks import check_array, check_int
from cnn.layers import ReLU


def _check_batches(x, batch_size):
    """Check ``x`` (a float array) and ``batch_size`` (an int >= 1); return this."""
    check_array(x, "x")
    return check_int(batch_size, "batch_size")


def dead_relu_fraction(model, x, batch_size=256):
    """Fraction of the units of each ``ReLU`` layer that are never positive on ``x``.

    A unit is one entry of a layer's output for one sample: a neuron of a dense layer or
    one position of one feature map. A unit whose input is negative for every sample
    outputs 0 and, by eq-relu-dx, passes no gradient to the weights before it: it has
    stopped learning ("died"). Runs in evaluation mode and restores the model's mode.

    Parameters
    ----------
    model : cnn.model.Sequential
    x : numpy.ndarray
        Inputs, shape ``(N, ...)``, e.g. a few hundred training samples.
    batch_size : int
        Samples per forward pass.

    Returns
    -------
    fractions : dict
        Index of each ``ReLU`` layer in ``model.layers`` -> fraction of dead units, in
        ``[0, 1]``.
    """
    batch_size = _check_batches(x, batch_size)
    alive = {}
    training = model.training
    model.eval()
    try:
        for start in range(0, len(x), batch_size):
            h = x[start:start + batch_size]
            for i, layer in enumerate(model.layers):
                h = layer.forward(h)
                if isinstance(layer, ReLU):
                    alive[i] = alive.get(i, False) | (h > 0).any(axis=0)
    finally:
        model.train(training)
    return {i: float(1 - np.mean(a)) for i, a in alive.items()}
