"""Training the case study's CNN from start to end, as ``cnn train`` does.

``train_model`` loads the data (seeded synthetic patches by default), holds out a
validation split, trains the network of an architecture of ``ARCHITECTURES`` and
measures its test accuracy once. The command line (``cnn.cli``) parses the arguments
and prints; everything it trains goes through here.
"""

from __future__ import annotations

import contextlib

import numpy as np

from cnn.casestudy.networks import (
    INPUT_SIZE,
    ORIGINAL_SIZE,
    build_cnn,
    build_original,
    classify,
    train,
)
from cnn.casestudy.synthetic import CLASS_NAMES, load_synthetic
from cnn.data import train_validation_split
from cnn.fast.threads import blas_threads
from cnn.losses import balanced_class_weights

DEFAULT_EPOCHS = 12
VALIDATION_SIZE = 0.2  # of the training patches, held out to choose the epoch
DEFAULT_N_PER_CLASS = 2000
ARCHITECTURES = {
    "small": (build_cnn, INPUT_SIZE, 1e-3),
    "original": (build_original, ORIGINAL_SIZE, 1e-4),
}
"""The network of each ``--arch``, the side of its patches and Adam's step size.

Adam moves every weight by about its step size at each step, whatever the gradient; a
hidden unit of the original network sums 73,728 inputs, so its step is ten times
smaller than the small network's.
"""


def train_model(
    epochs=DEFAULT_EPOCHS,
    n_per_class=DEFAULT_N_PER_CLASS,
    seed=0,
    verbose=False,
    data=None,
    groups=None,
    class_weights="none",
    arch="small",
):
    """Train the case-study CNN: the model and its test accuracy, measured once.

    ``data`` is ``(x_train, y_train, x_test, y_test)``; by default, seeded synthetic
    patches of the size ``arch`` takes. A stratified fifth of the training patches
    (whole ``groups``, such as patients, when given) is held out to choose the epoch;
    the test patches are used only for the final accuracy. ``class_weights`` is
    ``"none"`` or ``"balanced"``. ``verbose`` also shows a progress bar.
    """
    build, size, lr = ARCHITECTURES[arch]
    if data is None:
        data = load_synthetic(n_per_class=n_per_class, size=size, seed=seed)
        if verbose:
            print(
                f"synthetic data: {len(data[1])} training and {len(data[3])} test "
                f"patches of {size} x {size} (seed {seed})"
            )
    x_train, y_train, x_test, y_test = data
    split = train_validation_split(
        x_train, y_train, VALIDATION_SIZE, seed=seed, groups=groups
    )
    if verbose:
        print(f"{len(split[3])} of the {len(y_train)} training patches held out for "
              f"validation; the {len(y_test)} test patches are used once, at the end")
    weights = None
    if class_weights == "balanced":
        weights = balanced_class_weights(split[1], len(CLASS_NAMES))
    model = build(rng=np.random.default_rng(seed))
    # The small network's products are too small to gain from a second BLAS thread (as
    # in the chapter; same numbers); the full-size network's dense layer is not.
    with blas_threads(1) if arch == "small" else contextlib.nullcontext():
        train(model, split, epochs=epochs, lr=lr, seed=seed, class_weights=weights,
              verbose=verbose, progress=verbose)
    accuracy = float(np.mean(classify(model, x_test).argmax(axis=1) == y_test))
    return model, accuracy
