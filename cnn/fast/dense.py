"""The dense backward pass that ``cnn.fast.layers.Dense`` runs: into given arrays.

``dense_backward_fast`` computes what ``cnn.dense.dense_backward`` computes, the same
three products, but can write them into arrays it is given, as NumPy's ``out=``: the
layer passes the gradients of the previous step, so that a large ``dw`` (600 MB for the
first dense layer of the original network) is not allocated anew at every step (chapter
"Making it fast").
"""

from __future__ import annotations

import numpy as np

from cnn.dense import _check_dout


def dense_backward_fast(dout, cache, out=None):
    """``cnn.dense.dense_backward``, writing into ``out``: same arguments and results.

    ``dx = dout @ w.T`` (eq-dense-dx), ``dw = x.T @ dout`` (eq-dense-dw),
    ``db = dout.sum(axis=0)`` (eq-dense-db).

    Parameters
    ----------
    dout : numpy.ndarray
        Upstream gradient, shape ``(N, M)``.
    cache : DenseCache
        From ``cnn.dense.dense_forward``.
    out : tuple of three arrays or None, optional
        ``(dx, dw, db)``: arrays of the shapes below, in the dtype of ``x``, to write
        the results into, as NumPy's ``out=``; an entry ``None`` (or ``out=None``) means
        a new array.

    Returns
    -------
    dx : numpy.ndarray
        Shape ``(N, D)``, dtype of ``x``.
    dw : numpy.ndarray
        Shape ``(D, M)``.
    db : numpy.ndarray
        Shape ``(M,)``.
    """
    dout = _check_dout(dout, cache)
    x, w = cache
    dx, dw, db = (None, None, None) if out is None else out
    return (np.matmul(dout, w.T, out=dx), np.matmul(x.T, dout, out=dw),
            np.sum(dout, axis=0, out=db))
