"""The digits CNN of the training chapter: its network and its training recipe.

The chapter "A whole CNN, end to end" builds and trains this network; "Making it fast"
and the benchmark refer to it. All of them read it from here, so that they describe one
network, not copies that drift apart.
"""

from __future__ import annotations

from cnn.checks import check_int
from cnn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from cnn.model import Sequential

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
