"""Classification metrics: the confusion matrix, precision and recall per class, and
balanced accuracy."""

from __future__ import annotations

import numpy as np

from cnn.checks import check_int, check_labels


def confusion_matrix(y_true, y_pred, num_classes):
    """Count how often each true class is predicted as each class.

    Parameters
    ----------
    y_true : (N,) int array
        True labels in ``0 .. K - 1``.
    y_pred : (N,) int array
        Predicted labels in ``0 .. K - 1``.
    num_classes : int
        K.

    Returns
    -------
    confusion : (K, K) int64
        ``confusion[i, j]`` is the number of samples of true class ``i`` predicted as
        ``j``: rows are the truth, columns the prediction, and the diagonal holds the
        correct answers.
    """
    num_classes = check_int(num_classes, "num_classes")
    check_labels(y_true, "y_true", len(y_true), num_classes)
    check_labels(y_pred, "y_pred", len(y_true), num_classes)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    return confusion


def precision_recall(confusion):
    """Precision and recall of every class, from a confusion matrix.

    Precision of class ``k``: of the samples predicted ``k``, the fraction that are
    ``k`` (``confusion[k, k]`` over column ``k``). Recall: of the samples that are
    ``k``, the fraction predicted ``k`` (``confusion[k, k]`` over row ``k``). A class
    never predicted has no precision, and a class absent from the data no recall: those
    entries are NaN, not 0.

    Parameters
    ----------
    confusion : (K, K) int array
        As returned by ``confusion_matrix``.

    Returns
    -------
    precision : (K,) float64
    recall : (K,) float64
    """
    integer = np.issubdtype(getattr(confusion, "dtype", object), np.integer)
    if not isinstance(confusion, np.ndarray) or not integer:
        raise TypeError(f"confusion must be an integer numpy.ndarray, got "
                        f"{getattr(confusion, 'dtype', type(confusion).__name__)}")
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(
            f"confusion must have shape (K, K), got shape {confusion.shape}"
        )
    correct = np.diag(confusion).astype(np.float64)
    predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return correct / predicted, correct / actual


def balanced_accuracy(confusion):
    """Mean recall over the classes present: each class counts equally, however rare.

    On a test set where one class is rare, plain accuracy hardly notices that class;
    the balanced accuracy gives it an equal share. Classes absent from the data (a NaN
    recall) are left out of the mean.

    Parameters
    ----------
    confusion : (K, K) int array
        As returned by ``confusion_matrix``.

    Returns
    -------
    balanced_accuracy : float
        In ``[0, 1]``; ``1 / K_present`` for a classifier that always answers the same
        class, where ``K_present`` is the number of classes present in the data (the
        others' NaN recalls are left out of the mean).
    """
    _, recall = precision_recall(confusion)
    if np.all(np.isnan(recall)):
        raise ValueError("confusion must count at least one sample, got all zeros")
    return float(np.nanmean(recall))
