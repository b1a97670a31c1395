"""The dense backward pass that ``cnn.fast.layers.Dense`` runs: into given arrays.

``dense_backward_fast`` computes what ``cnn.dense.dense_backward`` computes, the same
three products, but can write them into arrays it is given, as NumPy's ``out=``: the
layer passes the gradients of the previous step, so that a large ``dw`` (600 MB for the
first dense layer of the original network) is not allocated anew at every step (chapter
"Making it fast").
"""

from __future__ import annotations

import numpy as np

from cnn.checks import check_outs
from cnn.dense import _check_dout


def dense_backward_fast(dout, cache, out=None):
    """``cnn.dense.dense_backward``, writing into ``out``: same arguments and results.

    ``dx = dout @ w.T`` (eq-dense-dx), ``dw = x.T @ dout`` (eq-dense-dw),
    ``db = dout.sum(axis=0)`` (eq-dense-db).

    Arguments and results are those of ``dense_backward``; ``out``, optional, is a tuple
    ``(dx, dw, db)`` of arrays of the shapes of the results, in the dtype of ``x``, to
    write them into, as NumPy's ``out=``; an entry ``None`` (or ``out=None``) means a
    new array.
    """
    dout = _check_dout(dout, cache)
    x, w = cache
    shapes = {"dx": x.shape, "dw": w.shape, "db": w.shape[1:]}
    dx, dw, db = check_outs(out, shapes, x.dtype)
    return (np.matmul(dout, w.T, out=dx), np.matmul(x.T, dout, out=dw),
            np.sum(dout, axis=0, out=db))
