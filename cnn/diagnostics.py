"""Training sanity checks: which ReLU units of a network are dead; what a run ran on.

The chapter "A deeper CNN, end to end" runs a short list of checks before any long
training run: the initial loss (about ``ln K``, eq-initial-loss), overfitting a tiny
subset, the gradient check of ``cnn.gradcheck``, and the fraction of dead ReLU units
computed here. Every chapter that trains a network ends by printing ``environment()``.
"""

from __future__ import annotations

from typing import NamedTuple

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


class Environment(NamedTuple):
    """NumPy's version, its BLAS library and the BLAS kernel that runs on this CPU."""

    numpy: str
    blas: str
    kernel: str

    def __str__(self):
        return f"NumPy {self.numpy}, {self.blas}, kernel {self.kernel}"


def environment():
    """What the rounding of a float32 training run depends on: compare like with like.

    The same seed gives the same run, bit for bit, only with the same BLAS kernel:
    OpenBLAS picks one per CPU family when NumPy loads (``OPENBLAS_CORETYPE`` set
    before that forces one). Read with ``threadpoolctl`` (installed with
    scikit-learn); without it the BLAS is reported as unknown.

    Returns
    -------
    Environment
        Printed as ``NumPy 2.4.6, openblas 0.3.31.188.0, kernel SkylakeX``.
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return Environment(np.__version__, "BLAS unknown (no threadpoolctl)", "unknown")
    blas = [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
    if not blas:
        return Environment(np.__version__, "BLAS unknown", "unknown")
    # SciPy may load a BLAS of its own; NumPy's (in numpy.libs) does our products.
    lib = next((lib for lib in blas if "numpy" in lib["filepath"]), blas[0])
    return Environment(np.__version__, f"{lib['internal_api']} {lib['version']}",
                       str(lib.get("architecture")))
