"""The case study's networks, their preprocessing and their training recipe.

The CNN is the project's original network, Conv2D(3x3) -> ReLU -> MaxPool(2x2) ->
Flatten -> Dense -> ReLU -> Dense(3), sized to train in seconds on 32 x 32 patches;
``build_original`` builds it at its full size (50 x 50 patches, 128 filters, 512 hidden
units). The dense-only network is the baseline it is compared with. The chapter, the
command line and the tests all build and train them with the functions below, so they
describe the same models.
"""

from __future__ import annotations

import numpy as np

from cnn.casestudy.synthetic import CLASS_NAMES
from cnn.checks import check_array, check_int
from cnn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from cnn.metrics import balanced_accuracy, confusion_matrix
from cnn.model import Sequential
from cnn.optim import Adam

INPUT_SIZE = 32
"""Side S of the patches the case-study networks take, ``(N, 1, 32, 32)``."""


def standardize(x):
    """Give every image zero mean and unit standard deviation (over its own pixels).

    Tissue density and exposure shift and scale a whole patch; the lesion is in the
    differences between pixels. A constant image becomes all zeros.

    Parameters
    ----------
    x : (N, C, H, W) float array

    Returns
    -------
    out : (N, C, H, W)
        A new array, in the dtype of ``x``.
    """
    check_array(x, "x", ("N", "C", "H", "W"))
    centred = x - x.mean(axis=(1, 2, 3), keepdims=True)
    scale = centred.std(axis=(1, 2, 3), keepdims=True)
    return np.divide(centred, scale, out=np.zeros_like(centred), where=scale > 0)


def build_cnn(*, rng, size=INPUT_SIZE, filters=8, hidden=32):
    """The case-study CNN: Conv2D, ReLU, MaxPool, Flatten, Dense, ReLU, Dense.

    Parameters
    ----------
    rng : numpy.random.Generator
        For the He initialisation of every layer, in order.
    size : int
        Side S of the input patches.
    filters : int
        Convolution kernels F.
    hidden : int
        Units of the hidden dense layer.

    Returns
    -------
    model : cnn.model.Sequential
        Takes ``(N, 1, S, S)``, returns logits ``(N, 3)``.
    """
    size = check_int(size, "size", 4)
    pooled = (size - 2) // 2
    return Sequential([
        Conv2D(1, filters, kernel_size=3, rng=rng),
        ReLU(),
        MaxPool2D(kernel_size=2),
        Flatten(),
        Dense(filters * pooled * pooled, hidden, rng=rng),
        ReLU(),
        Dense(hidden, len(CLASS_NAMES), rng=rng),
    ])


ORIGINAL_SIZE = 50
"""Side S of the patches the original full-size network takes, ``(N, 1, 50, 50)``."""


def build_original(*, rng):
    """The original network at full size: ``build_cnn`` with 128 filters and 512 units.

    On 50 x 50 patches it has 37.75 million parameters, all but 2,819 of them in the
    first dense layer, ``Dense(128 * 24 * 24, 512)``. Trained with Adam (``train``).

    Parameters
    ----------
    rng : numpy.random.Generator
        For the He initialisation of every layer, in order.

    Returns
    -------
    model : cnn.model.Sequential
        Takes ``(N, 1, 50, 50)``, returns logits ``(N, 3)``.
    """
    return build_cnn(rng=rng, size=ORIGINAL_SIZE, filters=128, hidden=512)


def build_dense(*, rng, size=INPUT_SIZE, hidden=64):
    """The dense-only baseline: Flatten -> Dense -> ReLU -> Dense(3).

    Parameters
    ----------
    rng : numpy.random.Generator
    size : int
        Side S of the input patches.
    hidden : int
        Units of the hidden layer.

    Returns
    -------
    model : cnn.model.Sequential
        Takes ``(N, 1, S, S)``, returns logits ``(N, 3)``.
    """
    size = check_int(size, "size")
    return Sequential([
        Flatten(),
        Dense(size * size, hidden, rng=rng),
        ReLU(),
        Dense(hidden, len(CLASS_NAMES), rng=rng),
    ])


def train(model, data, epochs=12, batch_size=32, lr=1e-3, seed=0, class_weights=None,
          verbose=False, progress=False):
    """Train ``model`` with Adam; keep the epoch best on the validation set.

    After every epoch the balanced accuracy on the validation patches is measured; at
    the end the model gets back the weights of the best epoch (the earliest of equals),
    and with them that epoch's buffers (batch normalisation's running statistics), which
    the weights were evaluated with.
    The number of epochs is thus chosen on validation data, never on test data.

    Parameters
    ----------
    model : cnn.model.Sequential
    data : tuple
        ``(x_train, y_train, x_val, y_val)``, raw patches in [0, 1] and their labels
        (``cnn.data.train_validation_split`` makes the validation part); the images
        are standardized here, not by the caller.
    epochs : int
        The most epochs to train.
    batch_size : int
    lr : float
        Adam's step size.
    seed : int
        Seeds the order of the mini-batches.
    class_weights : (3,) float array, optional
        Weights of the classes in the training loss (eq-weighted-ce), e.g.
        ``cnn.losses.balanced_class_weights(y_train, 3)``.
    verbose : bool
        Print one line per epoch.
    progress : bool
        Show a progress bar per epoch when standard output is a terminal.

    Returns
    -------
    history : dict
        ``"train_loss"``, ``"train_acc"``, ``"val_loss"``, ``"val_acc"`` and
        ``"val_balanced_acc"``, one value per epoch, and ``"best_epoch"``, the epoch
        (from 1) whose weights the model keeps.
    """
    x_train, y_train, x_val, y_val = data
    x_train, x_val = standardize(x_train), standardize(x_val)
    epochs = check_int(epochs, "epochs")
    optimizer = Adam(lr=lr)
    # One fit call per epoch, each with its own seeded batch order, so that the
    # validation score can be read, and the weights kept, between epochs.
    epoch_seeds = np.random.default_rng(seed).integers(2**31, size=epochs)
    history = {key: [] for key in
               ("train_loss", "train_acc", "val_loss", "val_acc", "val_balanced_acc")}
    best_score, best_epoch, best_state = -1.0, 0, None
    for epoch, epoch_seed in enumerate(epoch_seeds, start=1):
        step = model.fit(x_train, y_train, 1, batch_size, optimizer,
                         validation_data=(x_val, y_val), seed=int(epoch_seed),
                         class_weights=class_weights,
                         progress=f"epoch {epoch}/{epochs}" if progress else False)
        for key, values in step.items():
            history[key] += values
        confusion = confusion_matrix(y_val, model.predict(x_val), len(CLASS_NAMES))
        score = balanced_accuracy(confusion)
        history["val_balanced_acc"].append(score)
        if score > best_score:
            best_score, best_epoch = score, epoch
            best_state = {k: v.copy()
                          for k, v in {**model.parameters(), **model.buffers()}.items()}
        if verbose:
            print(f"epoch {epoch}/{epochs}: loss {step['train_loss'][0]:.4f}, "
                  f"accuracy {step['train_acc'][0]:.4f}; validation loss "
                  f"{step['val_loss'][0]:.4f}, accuracy {step['val_acc'][0]:.4f}, "
                  f"balanced accuracy {score:.4f}")
    for key, value in {**model.parameters(), **model.buffers()}.items():
        np.copyto(value, best_state[key])
    history["best_epoch"] = best_epoch
    if verbose:
        print(f"keeping the weights of epoch {best_epoch} (best validation balanced "
              f"accuracy, {best_score:.4f})")
    return history


def classify(model, x):
    """Class probabilities of raw patches: ``(N, 1, S, S)`` in [0, 1] -> ``(N, 3)``."""
    return model.predict_proba(standardize(x))
