"""Loss functions: softmax cross-entropy of integer labels, plain and class-weighted."""

from __future__ import annotations

import numpy as np

from cnn.activations import log_softmax
from cnn.checks import check_array, check_int, check_labels


def _check_loss_args(logits, y):
    """Validate logits ``(N, K)`` (N, K >= 1, finite) and labels ``(N,)`` in ``0..K-1``."""
    check_array(logits, "logits", ("N", "K"))
    check_labels(y, "y", *logits.shape)


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
    _check_loss_args(logits, y)
    N = len(y)
    log_p = log_softmax(logits)
    loss = -log_p[np.arange(N), y].mean()
    dlogits = np.exp(log_p)  # softmax(logits)
    dlogits[np.arange(N), y] -= 1
    return float(loss), dlogits / N


def weighted_softmax_cross_entropy(logits, y, class_weights):
    """Class-weighted mean softmax cross-entropy and its gradient for the logits.

    Each example is weighted by the weight of its class, and the mean is normalised by
    the sum of the weights of the batch's labels, as PyTorch's
    ``CrossEntropyLoss(weight=...)`` does: with ``share[n] = class_weights[y[n]] /
    sum over m of class_weights[y[m]]``, ``loss = -sum over n of share[n] log
    softmax(logits[n])[y[n]]`` (eq-weighted-ce) and ``dlogits = share[:, None]
    (softmax(logits) - onehot(y))`` (eq-weighted-ce-dz). Equal weights give
    ``softmax_cross_entropy``.

    Parameters
    ----------
    logits : numpy.ndarray
        Unnormalised scores, shape ``(N, K)``, float32 or float64.
    y : numpy.ndarray
        Integer class labels, shape ``(N,)``, values in ``0 .. K - 1``.
    class_weights : numpy.ndarray
        Weight of each class, shape ``(K,)``, finite and >= 0 (e.g. from
        ``balanced_class_weights``).

    Returns
    -------
    loss : float
        The weighted mean over the batch.
    dlogits : numpy.ndarray
        Shape ``(N, K)``, dtype of ``logits``.

    Raises
    ------
    TypeError, ValueError
        As ``softmax_cross_entropy``, and for ``class_weights`` not a float array of
        shape ``(K,)``, a negative weight, or a batch whose labels all have weight 0.
    """
    share = _weight_shares(logits, y, class_weights).astype(logits.dtype)
    N = len(y)
    log_p = log_softmax(logits)
    loss = -share @ log_p[np.arange(N), y]
    dlogits = np.exp(log_p)  # softmax(logits)
    dlogits[np.arange(N), y] -= 1
    return float(loss), dlogits * share[:, None]


def _weight_shares(logits, y, class_weights):
    """Check the arguments; return ``class_weights[y] / class_weights[y].sum()``."""
    _check_loss_args(logits, y)
    K = logits.shape[1]
    check_array(class_weights, "class_weights", (K,), {"K": K})
    if np.any(class_weights < 0):
        raise ValueError(f"class_weights must be >= 0, got {class_weights}")
    weights = class_weights[y].astype(np.float64)
    total = weights.sum()
    if total <= 0:
        raise ValueError(
            "class_weights gives weight 0 to every label of the batch "
            f"(classes {np.unique(y).tolist()}): the weighted mean is undefined"
        )
    return weights / total


def balanced_class_weights(y, num_classes):
    """Class weights ``N / (K * N_k)``: every class then weighs as much in the loss.

    The weight of class ``k`` is inversely proportional to its count ``N_k`` in ``y``
    (scikit-learn's ``class_weight="balanced"``); a class absent from ``y`` gets 0.

    Parameters
    ----------
    y : numpy.ndarray
        Integer training labels, shape ``(N,)``, values in ``0 .. num_classes - 1``.
    num_classes : int
        The number of classes K.

    Returns
    -------
    class_weights : numpy.ndarray
        Shape ``(K,)``, float64; the mean weight over the examples of ``y`` is 1.
    """
    num_classes = check_int(num_classes, "num_classes")
    n = y.shape[0] if isinstance(y, np.ndarray) and y.ndim == 1 else -1
    check_labels(y, "y", n, num_classes)
    if n == 0:
        raise ValueError("y must hold at least one label, got an empty array")
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    weights = np.zeros(num_classes)
    present = counts > 0
    weights[present] = len(y) / (num_classes * counts[present])
    return weights
