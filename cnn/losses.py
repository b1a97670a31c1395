"""Loss functions: softmax cross-entropy on integer class labels."""

from __future__ import annotations

import numpy as np

from cnn.activations import log_softmax
from cnn.checks import check_array, check_labels


def softmax_cross_entropy(logits, y):
    """Mean softmax cross-entropy of a batch and its gradient for the logits.

    ``loss = -(1/N) sum over n of log softmax(logits[n])[y[n]]`` (eq-softmax-ce),
    computed with log-sum-exp so that logits of any size neither overflow nor take
    ``log(0)``; and ``dlogits = (softmax(logits) - onehot(y)) / N`` (eq-softmax-ce-dz).

    Parameters
    ----------
    logits : numpy.ndarray
        Unnormalised scores, shape ``(N, K)``, float32 or float64.
    y : numpy.ndarray
        Integer class labels, shape ``(N,)``, values in ``0 .. K - 1``.

    Returns
    -------
    loss : float
        The mean over the batch.
    dlogits : numpy.ndarray
        Shape ``(N, K)``, dtype of ``logits``.

    Raises
    ------
    TypeError
        If ``logits`` is not a floating-point array or ``y`` not an integer array.
    ValueError
        On a wrong shape, an empty batch, non-finite logits or a label out of range.
    """
    check_array(logits, "logits", ("N", "K"))
    N, K = logits.shape
    if N == 0 or K == 0:
        raise ValueError(
            f"logits must have shape (N, K) with N, K >= 1, got shape {logits.shape}"
        )
    check_labels(y, "y", N, K)
    log_p = log_softmax(logits)
    loss = -float(log_p[np.arange(N), y].mean())
    dlogits = np.exp(log_p)
    dlogits[np.arange(N), y] -= 1
    dlogits /= N
    return loss, dlogits
