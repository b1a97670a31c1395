"""Saliency maps: which input pixels the score of a class is most sensitive to."""

from __future__ import annotations

import numpy as np

from cnn.checks import check_array


def saliency(model, x, cls):
    """Gradient of one class score with respect to the input (Simonyan et al., 2013).

    The score is the logit of class ``cls``, before the softmax, so that it does not
    depend on the other classes' scores. Its gradient comes from the model's own
    backward pass, started with a one-hot ``dout``: the same chain rule that trains the
    network, stopped at the input instead of at the weights. Large ``|dx|`` marks pixels
    whose change would change the score most. The model runs in evaluation mode,
    whatever mode the caller left it in (``fit`` leaves training mode): each sample's
    map is then its own gradient, not mixed with the batch's statistics or dropout's
    draws, and no running statistics move; the caller's mode is restored. The layers'
    ``grads`` are overwritten as by any backward pass; the weights are not.

    Parameters
    ----------
    model : cnn.model.Sequential
        Anything with ``forward(x) -> logits (N, K)``, ``backward(dout) -> dx``,
        ``training`` and ``train(mode)``.
    x : (N, C, H, W) float array
        Inputs, in the form the model takes them (here: standardized patches).
    cls : int or (N,) int array
        Class whose score to differentiate, one for all samples or one per sample.

    Returns
    -------
    dx : (N, C, H, W)
        ``d logits[n, cls[n]] / d x[n]``, in the dtype of ``x``.
    """
    check_array(x, "x")
    training = model.training
    model.eval()
    try:
        logits = model.forward(x)
        N, K = logits.shape
        cls = np.asarray(cls)
        if (cls.shape not in ((), (N,)) or not np.issubdtype(cls.dtype, np.integer)
                or cls.min() < 0 or cls.max() >= K):
            raise ValueError(
                f"cls must be an int or {N} ints (one per sample) in 0..{K - 1}, "
                f"got {cls!r}"
            )
        dout = np.zeros_like(logits)
        dout[np.arange(N), cls] = 1.0
        return model.backward(dout)
    finally:
        model.train(training)
