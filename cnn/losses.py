"""Loss functions: softmax cross-entropy of integer labels, optionally weighted."""

from __future__ import annotations

import numpy as np

from cnn.activations import log_softmax
from cnn.checks import check_array, check_int, check_labels


def softmax_cross_entropy(logits, y, class_weights=None):
    """Mean softmax cross-entropy of a batch and its gradient for the logits.

    ``loss = -(1/N) sum over n of log softmax(logits[n])[y[n]]`` (eq-softmax-ce),
    computed with log-sum-exp so that logits of any size neither overflow nor take
    ``log(0)``; and ``dlogits = (softmax(logits) - onehot(y)) / N`` (eq-softmax-ce-dz).

    With ``class_weights`` the mean becomes a weighted mean, each example weighted by
    the weight of its class and normalised by the sum of the weights of the batch's
    labels, as PyTorch's ``CrossEntropyLoss(weight=...)`` does (eq-weighted-ce,
    eq-weighted-ce-dz).

    Parameters
    ----------
    logits : numpy.ndarray
        Unnormalised scores, shape ``(N, K)``, float32 or float64.
    y : numpy.ndarray
        Integer class labels, shape ``(N,)``, values in ``0 .. K - 1``.
    class_weights : numpy.ndarray, optional
        Weight of each class, shape ``(K,)``, finite and >= 0 (e.g. from
        ``balanced_class_weights``). ``None`` weights every example equally.

    Returns
    -------
    loss : float
        The (weighted) mean over the batch.
    dlogits : numpy.ndarray
        Shape ``(N, K)``, dtype of ``logits``.

    Raises
    ------
    TypeError
        If ``logits`` or ``class_weights`` is not a floating-point array or ``y`` not
        an integer array.
    ValueError
        On a wrong shape, an empty batch, non-finite logits, a label out of range, a
        negative class weight, or a batch whose labels all have weight 0.
    """
    check_array(logits, "logits", ("N", "K"))
    N, K = logits.shape
    if N == 0 or K == 0:
        raise ValueError(
            f"logits must have shape (N, K) with N, K >= 1, got shape {logits.shape}"
        )
    check_labels(y, "y", N, K)
    log_p = log_softmax(logits)
    dlogits = np.exp(log_p)
    dlogits[np.arange(N), y] -= 1
    if class_weights is None:
        loss = -float(log_p[np.arange(N), y].mean())
        dlogits /= N
    else:
        # Each example's share of the batch: its class weight over the batch's total.
        share = _weight_shares(class_weights, y, K).astype(logits.dtype)
        loss = -float(share @ log_p[np.arange(N), y])
        dlogits *= share[:, None]
    return loss, dlogits


def _weight_shares(class_weights, y, K):
    """``class_weights[y] / class_weights[y].sum()``, after checking the weights."""
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
