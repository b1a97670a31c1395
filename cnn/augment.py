"""Data augmentation for image batches: random shifts with padding, horizontal flips.

Each function draws one random transformation per image from the generator it is
given, so an augmented training set is reproducible, and returns a new batch: the input
is never modified. Apply them to the training images only, with a new draw in every
epoch (the chapter "Regularisation").
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnn.checks import check_array, check_int, check_real, check_rng


def _check_shift_args(x, max_shift, rng, fill):
    """Validate ``random_shift``'s arguments; return ``max_shift``, ``rng``, ``fill``."""
    check_array(x, "x", ("N", "C", "H", "W"))
    fill = check_real(fill, "fill", low_inclusive=False)
    return check_int(max_shift, "max_shift", minimum=0), check_rng(rng), fill


def _check_flip_args(x, rng, p):
    """Validate ``random_flip``'s arguments; return ``rng`` and ``p``."""
    check_array(x, "x", ("N", "C", "H", "W"))
    return check_rng(rng), check_real(p, "p", 0.0, 1.0, high_inclusive=True)


def random_shift(x, max_shift, rng, fill=0.0):
    """Shift every image by its own random offset of at most ``max_shift`` pixels.

    Each image is moved by ``(dy, dx)``, both drawn uniformly from
    ``-max_shift .. max_shift``; pixels shifted out are lost and the uncovered border is
    filled with ``fill``. Implemented as a pad by ``max_shift`` followed by a crop at a
    random position.

    Parameters
    ----------
    x : numpy.ndarray
        Images, shape ``(N, C, H, W)``.
    max_shift : int
        Largest shift in pixels, >= 0, along each axis.
    rng : numpy.random.Generator
        Draws the offsets.
    fill : float
        Value of the uncovered pixels; 0 suits standardized images.

    Returns
    -------
    out : numpy.ndarray
        Shape and dtype of ``x``.
    """
    s, rng, fill = _check_shift_args(x, max_shift, rng, fill)
    N, C, H, W = x.shape
    padded = np.full((N, C, H + 2 * s, W + 2 * s), fill, dtype=x.dtype)
    padded[:, :, s:s + H, s:s + W] = x
    top, left = rng.integers(0, 2 * s + 1, size=(2, N))
    # windows[n, c, i, j] is the H x W crop whose top-left corner is (i, j): a view.
    windows = sliding_window_view(padded, (H, W), axis=(2, 3))
    return windows[np.arange(N), :, top, left]


def random_flip(x, rng, p=0.5):
    """Mirror each image left to right with probability ``p``.

    Parameters
    ----------
    x : numpy.ndarray
        Images, shape ``(N, C, H, W)``.
    rng : numpy.random.Generator
        Draws which images are flipped.
    p : float
        Probability of a flip, in ``[0, 1]``.

    Returns
    -------
    out : numpy.ndarray
        Shape and dtype of ``x``.
    """
    rng, p = _check_flip_args(x, rng, p)
    flip = rng.random(len(x)) < p
    return np.where(flip[:, None, None, None], x[:, :, :, ::-1], x)
