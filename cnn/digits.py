"""The networks the book trains on the digits, and the training chapter's recipe.

The chapter "A whole CNN, end to end" builds and trains ``build_digits_cnn``; "Making it
fast" and the benchmark refer to it. "A deeper CNN, end to end" builds
``build_deeper_cnn``, and "A residual network, end to end" compares it with
``build_digits_resnet``. All of them read the networks from here, so that they describe
one network each, not copies that drift apart.
"""

from __future__ import annotations

import numpy as np

from cnn.checks import check_int
from cnn.layers import (
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    ReLU,
    Residual,
)
from cnn.model import Sequential
from cnn.norm import BatchNorm
from cnn.regularization import Dropout

FILTERS = 16
"""Convolution filters F of the chapter's network."""

EPOCHS = 30
"""Passes over the training images in the chapter's training runs."""

BATCH_SIZE = 32
"""Images per mini-batch."""

ADAM_LR = 1e-2
"""Adam's step size, chosen on the validation set."""

VALIDATION_SIZE = 300
"""The last training images, held out for validation (the test set is used once)."""

RESNET_EPOCHS = 10
"""Epochs of the chapter "A residual network, end to end", for both of its networks."""

LEARNING_RATES = (2e-3, 5e-3, 1e-2)
"""The step sizes of Adam that chapter chooses from, on the validation split."""

RESNET_LR = 5e-3
"""Its step size, for both networks (chosen with ``scripts/resnet_study.py``)."""


def build_digits_cnn(*, rng, filters=FILTERS):
    """The chapter's CNN: Conv2D(3x3), ReLU, MaxPool(2x2), Flatten, Dense(10).

    Implements eq-cnn-forward.

    Parameters
    ----------
    rng : numpy.random.Generator
        For the He initialisation of the two layers with parameters, in order.
    filters : int
        Convolution filters F.

    Returns
    -------
    model : cnn.model.Sequential
        Takes ``(N, 1, 8, 8)``, returns logits ``(N, 10)``.
    """
    filters = check_int(filters, "filters")
    return Sequential([
        Conv2D(1, filters, 3, padding=1, rng=rng),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dense(filters * 4 * 4, 10, rng=rng),
    ])


def build_deeper_cnn(*, rng, channels=(16, 32), hidden=64, dropout=0.3, batchnorm=True,
                     dtype=np.float32):
    """conv-BN-ReLU-pool twice, dense-ReLU-dropout-dense; last layer scaled down.

    The last layer's weights are multiplied by 0.01, so that the untrained network
    predicts every class with probability about 1/10 (eq-initial-loss).

    Parameters
    ----------
    rng : numpy.random.Generator
        For the He initialisation of the layers, in order, and the dropout masks.
    channels : tuple of two ints
        Filters ``(F1, F2)`` of the two convolutions.
    hidden : int
        Units of the hidden dense layer.
    dropout : float
        Dropout probability before the last layer.
    batchnorm : bool
        Batch normalisation after each convolution, or none.
    dtype : numpy dtype
        Of the parameters, float32 or float64.

    Returns
    -------
    model : cnn.model.Sequential
        Takes ``(N, 1, 8, 8)``, returns logits ``(N, 10)``.
    """
    c1, c2 = channels
    norm = (lambda c: [BatchNorm(c, dtype=dtype)]) if batchnorm else (lambda c: [])
    model = Sequential([
        Conv2D(1, c1, 3, padding=1, rng=rng, dtype=dtype),
        *norm(c1), ReLU(), MaxPool2D(2),
        Conv2D(c1, c2, 3, padding=1, rng=rng, dtype=dtype),
        *norm(c2), ReLU(), MaxPool2D(2),
        Flatten(), Dense(c2 * 2 * 2, hidden, rng=rng, dtype=dtype), ReLU(),
        Dropout(dropout, rng=rng), Dense(hidden, 10, rng=rng, dtype=dtype),
    ])
    model.layers[-1].params["w"] *= 0.01
    return model


def build_digits_resnet(*, rng, channels=(16, 24), dtype=np.float32):
    """A stem, an identity block, a strided block with a projection, GAP, dense.

    Each block's body is conv-BN-ReLU-conv-BN; the first block adds its input
    (eq-res-forward), the second halves the size and adds a 1x1 convolution of its
    input with the same stride, followed by batch normalisation. A ReLU follows each
    block.

    Parameters
    ----------
    rng : numpy.random.Generator
        For the He initialisation of the layers, in order.
    channels : tuple of two ints
        Channels ``(C1, C2)`` of the stem and first block, and of the second block.
    dtype : numpy dtype
        Of the parameters, float32 or float64.

    Returns
    -------
    model : cnn.model.Sequential
        Takes ``(N, 1, H, W)``, returns logits ``(N, 10)``.
    """
    c1, c2 = channels

    def conv_bn(C, F, kernel_size, stride=1):
        return [Conv2D(C, F, kernel_size, stride=stride, padding=kernel_size // 2,
                       rng=rng, dtype=dtype), BatchNorm(F, dtype=dtype)]

    def body(C, F, stride):
        return [*conv_bn(C, F, 3, stride), ReLU(), *conv_bn(F, F, 3)]

    return Sequential([
        *conv_bn(1, c1, 3), ReLU(),
        Residual(body(c1, c1, 1)), ReLU(),
        Residual(body(c1, c2, 2), shortcut=conv_bn(c1, c2, 1, stride=2)), ReLU(),
        GlobalAvgPool2D(), Dense(c2, 10, rng=rng, dtype=dtype),
    ])
