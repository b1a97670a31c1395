"""``Sequential``: a stack of layers trained with softmax cross-entropy.

The last layer produces logits; ``cnn.losses.softmax_cross_entropy`` turns them into a
loss and the gradient that starts the backward pass. Parameters are named
``"<layer index>.<name>"`` (``"0.w"``, ``"0.b"``, ``"3.w"``, ...), in ``parameters()``,
in ``gradients()``, for optimisers and in saved files; so are the layers' buffers
(``"1.running_mean"``, ...) in ``buffers()`` and in saved files.

A model is in training mode or in evaluation mode (``train()``, ``eval()``), which
matters for layers such as batch normalisation and dropout: ``fit`` trains in training
mode; ``predict``, ``predict_proba``, ``evaluate`` and ``summary`` run in evaluation
mode and then restore the mode the model was in.
"""

from __future__ import annotations

import functools
import sys
import warnings

import numpy as np

from cnn.activations import softmax
from cnn.checks import check_array, check_distinct, check_int, check_labels
from cnn.losses import (
    _weight_shares,
    softmax_cross_entropy,
    weighted_softmax_cross_entropy,
)
from cnn.modelfile import load_arrays, save_arrays
from cnn.norm import BatchNorm


def _check_batch(x, name="x"):
    """A finite float array with a non-empty batch axis first."""
    check_array(x, name)
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(
            f"{name} must have shape (N, ...) with N >= 1 and at least 2 axes, "
            f"got shape {x.shape}"
        )


def _progress_bar(total, description):
    """A ``tqdm`` bar of ``total`` samples on standard output, if that is a terminal.

    It is cleared when closed, so that the epoch's line is printed in its place.
    """
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="sample", leave=False,
                file=sys.stdout, disable=not sys.stdout.isatty())


def _loss(logits, y, class_weights):
    """``softmax_cross_entropy``, or its class-weighted form if there are weights."""
    if class_weights is None:
        return softmax_cross_entropy(logits, y)
    return weighted_softmax_cross_entropy(logits, y, class_weights)


class _EpochLog:
    """The running loss and accuracy of an epoch's batches, and its progress bar.

    ``progress`` as for ``Sequential.fit``: false for no bar, ``True`` for a bar
    labelled ``"epoch i/n"``, or a string labelling the bar.
    """

    def __init__(self, total, progress, epoch, epochs):
        self.seen, self.loss_sum, self.correct = 0, 0.0, 0
        self.label = f"epoch {epoch + 1}/{epochs}"
        self.bar = None
        if progress:
            label = progress if isinstance(progress, str) else self.label
            self.bar = _progress_bar(total, label)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.bar is not None:
            self.bar.close()

    def record(self, loss, hits):
        """Add one batch: its mean ``loss`` and ``hits``, True where it was right."""
        self.seen += len(hits)
        self.loss_sum += loss * len(hits)
        self.correct += int(np.sum(hits))
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {self.loss_sum / self.seen:.4f}",
                                     refresh=False)
            self.bar.update(len(hits))


def _checked_by(name):
    """Decorator: the method ``name`` checks the arguments before the method runs."""
    def decorate(method):
        @functools.wraps(method)
        def checked(self, *args, **kwargs):
            getattr(self, name)(*args, **kwargs)
            return method(self, *args, **kwargs)
        return checked
    return decorate


def _check_weights(class_weights, y, num_classes):
    """Check class weights for labels ``y`` as the weighted loss will (shares > 0)."""
    _weight_shares(np.zeros((len(y), num_classes)), y, class_weights)


class Sequential:
    """Layers applied one after the other; the last returns logits ``(N, K)``.

    Parameters
    ----------
    layers : list
        Layer objects with ``forward``, ``backward``, ``params`` and ``grads`` (see
        ``cnn.layers``), each object once: a layer keeps one cache, so a second use
        would overwrite the first's (``ValueError``).
    """

    def __init__(self, layers):
        self.layers = check_distinct(layers, "layers")
        self.input_shape = None
        self.training = True

    def train(self, mode=True):
        """Put every layer in training mode, or evaluation mode if not ``mode``."""
        self.training = bool(mode)
        for layer in self.layers:
            layer.training = self.training
        return self

    def eval(self):
        """Put every layer in evaluation mode: ``train(False)``; return self."""
        return self.train(False)

    def forward(self, x):
        """Run every layer: ``x : (N, ...)`` -> logits ``(N, K)``.

        Records the sample shape ``x.shape[1:]`` in ``input_shape``. Every layer's
        cache is dropped first, so that after a forward pass that raised, ``backward``
        raises too instead of using the caches of an earlier batch.
        """
        _check_batch(x)
        self._drop_caches()
        out = x
        for layer in self.layers:
            out = layer.forward(out)
        self.input_shape = x.shape[1:]
        return out

    def _drop_caches(self):
        for layer in self.layers:
            layer.cache = None

    def backward(self, dout):
        """Backpropagate ``dout``, the gradient of the loss for the logits.

        Each layer stores its parameter gradients in its ``grads``.

        Returns
        -------
        dx : numpy.ndarray
            The gradient with respect to the input of ``forward``, same shape.
        """
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def parameters(self):
        """All parameter arrays (not copies), keyed ``"<layer index>.<name>"``."""
        return {f"{i}.{name}": value for i, layer in enumerate(self.layers)
                for name, value in layer.params.items()}

    def gradients(self):
        """All gradients of the last ``backward``, with the keys of ``parameters()``."""
        return {f"{i}.{name}": value for i, layer in enumerate(self.layers)
                for name, value in layer.grads.items()}

    def buffers(self):
        """All non-trained state arrays (not copies), e.g. ``"1.running_mean"``."""
        return {f"{i}.{name}": value for i, layer in enumerate(self.layers)
                for name, value in getattr(layer, "buffers", {}).items()}

    def _logits(self, x, batch_size):
        """Logits for ``x`` in evaluation mode, in batches, keeping no backward caches.

        The mode the model was in is restored afterwards. Each layer's cache (and any
        array it keeps for reuse) is released as soon as the layer has run, so that only
        one layer's intermediate arrays exist at a time, and the caches of the last
        ``forward`` are put back afterwards: ``predict`` between ``forward`` and
        ``backward`` changes nothing, and nothing of the prediction stays in memory.
        """
        batch_size = check_int(batch_size, "batch_size")
        _check_batch(x)
        caches, training = [layer.cache for layer in self.layers], self.training
        self.eval()
        logits = []
        try:
            for start in range(0, len(x), batch_size):
                out = x[start : start + batch_size]
                for layer in self.layers:
                    out = layer.forward(out)
                    layer.release()
                logits.append(out)
        finally:
            self.train(training)
            for layer, cache in zip(self.layers, caches):
                layer.cache = cache
        self.input_shape = x.shape[1:]
        return np.concatenate(logits)

    def predict_proba(self, x, batch_size=256):
        """Class probabilities, ``softmax(logits)``: ``x : (N, ...)`` -> ``(N, K)``."""
        return softmax(self._logits(x, batch_size))

    def predict(self, x, batch_size=256):
        """Predicted class indices, shape ``(N,)``."""
        return self._logits(x, batch_size).argmax(axis=1)

    def evaluate(self, x, y, batch_size=256):
        """Mean softmax cross-entropy and accuracy on ``(x, y)``.

        Parameters
        ----------
        x : numpy.ndarray
            Inputs, shape ``(N, ...)``.
        y : numpy.ndarray
            Integer labels, shape ``(N,)``.
        batch_size : int
            Samples per forward pass.

        Returns
        -------
        loss : float
        accuracy : float
            Fraction of correct predictions, in ``[0, 1]``.
        """
        logits = self._logits(x, batch_size)
        loss, _ = softmax_cross_entropy(logits, y)
        return loss, float(np.mean(logits.argmax(axis=1) == y))

    @_checked_by("_check_fit")
    def fit(self, x, y, epochs, batch_size, optimizer, validation_data=None, seed=0,
            verbose=False, class_weights=None, progress=False):
        """Train with mini-batch gradient descent on softmax cross-entropy.

        Each epoch visits the samples in a new random order drawn from
        ``numpy.random.default_rng(seed)``, so two runs with the same seed give the same
        numbers.

        Parameters
        ----------
        x : numpy.ndarray
            Training inputs, shape ``(N, ...)``.
        y : numpy.ndarray
            Integer labels, shape ``(N,)``.
        epochs : int
            Passes over the data, >= 1.
        batch_size : int
            Samples per step, >= 1 (the last batch of an epoch may be smaller).
        optimizer : object
            With ``step(params, grads)``, e.g. ``cnn.optim.Adam``.
        validation_data : tuple of two numpy.ndarray, optional
            ``(x_val, y_val)``, evaluated after every epoch.
        seed : int
            Seeds the shuffling.
        verbose : bool
            Print one line per epoch.
        class_weights : numpy.ndarray, optional
            Weight of each class in the training loss, shape ``(K,)``
            (eq-weighted-ce); ``None`` weights every sample equally. The validation
            loss stays unweighted.
        progress : bool or str
            Show a progress bar per epoch (``tqdm``) with the running loss, the samples
            per second and the time left, when standard output is a terminal. A string
            labels the bar in place of ``"epoch i/n"`` (a caller that runs one epoch
            per call knows the epoch).

        Returns
        -------
        history : dict
            ``"train_loss"``, ``"train_acc"``, ``"val_loss"``, ``"val_acc"``: lists with
            one value per epoch (the validation lists stay empty without
            ``validation_data``). The training numbers are averages over the epoch's
            batches, measured while the weights change.

        Raises
        ------
        TypeError, ValueError
            Before the first step, so that a mistake never leaves a half-trained model:
            for inputs or labels of the wrong type or shape, a label outside ``0..K-1``
            (``K`` from the logits), validation data unlike the training data, or an
            optimizer without ``step``; for class weights that are not ``(K,)``, finite
            and >= 0 or that give every label of some batch weight 0; and for a batch
            of one sample where batch normalisation would have one value per channel
            (choose a ``batch_size`` that leaves a last batch of two or more).
        """
        rng = np.random.default_rng(seed)
        history = {"train_loss": [], "train_acc": [], "val_loss": [], "val_acc": []}
        self.train()
        for epoch in range(epochs):
            order = rng.permutation(len(x))
            with _EpochLog(len(x), progress, epoch, epochs) as log:
                for start in range(0, len(x), batch_size):
                    batch = order[start:start + batch_size]
                    logits = self.forward(x[batch])
                    loss, dlogits = _loss(logits, y[batch], class_weights)
                    self.backward(dlogits)
                    optimizer.step(self.parameters(), self.gradients())
                    log.record(loss, logits.argmax(axis=1) == y[batch])
            self._end_epoch(history, log, validation_data, verbose)
        return history

    def _end_epoch(self, history, log, validation_data, verbose):
        """Add the epoch's numbers (and the validation set's) to ``history``; print."""
        history["train_loss"].append(log.loss_sum / log.seen)
        history["train_acc"].append(log.correct / log.seen)
        line = (
            f"{log.label}: loss {history['train_loss'][-1]:.4f}, "
            f"accuracy {history['train_acc'][-1]:.4f}"
        )
        if validation_data is not None:
            val_loss, val_acc = self.evaluate(*validation_data)
            history["val_loss"].append(val_loss)
            history["val_acc"].append(val_acc)
            line += f"; validation loss {val_loss:.4f}, accuracy {val_acc:.4f}"
        if verbose:
            print(line)

    def _check_fit(self, x, y, epochs, batch_size, optimizer, validation_data=None,
                   seed=0, verbose=False, class_weights=None, progress=False):
        """Check ``fit``'s arguments before the first step: a mistake never half-trains.

        The number of classes ``K`` comes from the logits of one sample, so labels out
        of range are found here rather than in the middle of an epoch; every batch of
        every epoch is checked as well (``_check_batches``).
        """
        _check_batch(x)
        step = getattr(optimizer, "step", None)
        if isinstance(optimizer, type) or not callable(step):
            raise TypeError(
                "optimizer must have a step(params, grads) method, e.g. "
                f"cnn.optim.Adam(), got {type(optimizer).__name__}"
            )
        num_classes, shapes = self._probe(x[:1])
        check_labels(y, "y", len(x), num_classes)
        check_int(epochs, "epochs")
        check_int(batch_size, "batch_size")
        check_int(seed, "seed", minimum=0)
        self._check_batches(y, epochs, batch_size, seed, class_weights, num_classes,
                            shapes)
        if validation_data is None:
            return
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError(
                "validation_data must be a pair (x_val, y_val), got "
                f"{type(validation_data).__name__}"
            )
        x_val, y_val = validation_data
        _check_batch(x_val, "x_val")
        if x_val.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"x_val must have samples of shape {x.shape[1:]} like x, got shape "
                f"{x_val.shape}"
            )
        check_labels(y_val, "y_val", len(x_val), num_classes)

    def _check_batches(self, y, epochs, batch_size, seed, class_weights, num_classes,
                       shapes):
        """Check every batch ``fit`` will draw, before the first step.

        The batches come from a generator seeded as ``fit``'s, so they are the same
        ones: a batch whose labels all have class weight 0 (the loss raises) or a
        batch of one sample where a batch-norm layer sees one value per channel (the
        layer raises) is refused here, not after some optimiser steps. ``shapes`` are
        the layers' input shapes for one sample.
        """
        smallest = len(y) % batch_size or min(batch_size, len(y))
        for layer, shape in zip(self.layers, shapes):
            per_sample = int(np.prod(shape[2:]))  # values per channel in one sample
            if smallest == 1 and isinstance(layer, BatchNorm) and per_sample == 1:
                raise ValueError(
                    f"batch_size {batch_size} leaves a batch of one sample of the "
                    f"{len(y)}, and layer {self.layers.index(layer)} ({layer!r}) needs "
                    "two values per channel in training mode: choose another "
                    "batch_size"
                )
        if class_weights is None:
            return
        _check_weights(class_weights, y, num_classes)  # shape, finite, >= 0
        rng = np.random.default_rng(seed)
        for epoch in range(epochs):
            order = rng.permutation(len(y))
            for start in range(0, len(y), batch_size):
                labels = y[order[start:start + batch_size]]
                try:
                    _check_weights(class_weights, labels, num_classes)
                except ValueError as error:
                    raise ValueError(
                        f"epoch {epoch + 1}, batch {start // batch_size + 1}: {error}"
                    ) from None

    def _probe(self, x):
        """``K`` and every layer's input shape, from one forward pass of ``x``.

        Every layer's cache is left as it was.
        """
        caches, training = [layer.cache for layer in self.layers], self.training
        shapes = []
        # Evaluation mode on one sample: no running statistics move, no dropout draws.
        self.eval()
        try:
            logits = x[:1]
            for layer in self.layers:
                shapes.append(logits.shape)
                logits = layer.forward(logits)
        finally:
            self.train(training)
            for layer, cache in zip(self.layers, caches):
                layer.cache = cache
        if logits.ndim != 2:
            raise ValueError(
                "the last layer must return logits of shape (N, K), got shape "
                f"{logits.shape}"
            )
        return logits.shape[1], shapes

    def summary(self, input_shape=None):
        """A text table of the layers, their output shapes and parameter counts.

        The shapes come from one forward pass on a single zero sample (the layers'
        caches are left as they were).

        Parameters
        ----------
        input_shape : tuple of ints, optional
            Shape of one sample, e.g. ``(1, 8, 8)``; defaults to the shape last seen by
            ``forward``.

        Returns
        -------
        table : str
        """
        input_shape = self.input_shape if input_shape is None else tuple(input_shape)
        if input_shape is None:
            raise ValueError(
                "input_shape is needed until the model has seen data, e.g. (1, 8, 8)"
            )
        dtype = next(iter(self.parameters().values()), np.zeros(0)).dtype
        caches = [layer.cache for layer in self.layers]
        training = self.training
        x = np.zeros((1,) + input_shape, dtype=dtype)
        rows = [("Layer", "Output shape", "Params"), ("Input", str(input_shape), "0")]
        self.eval()  # one sample: no batch statistics, no dropout, no running updates
        for layer in self.layers:
            x = layer.forward(x)
            count = sum(value.size for value in layer.params.values())
            rows.append((repr(layer), str(x.shape[1:]), f"{count:,}"))
        self.train(training)
        for layer, cache in zip(self.layers, caches):
            layer.cache = cache
        total = sum(value.size for value in self.parameters().values())
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = [
            f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}" for a, b, c in rows
        ]
        rule = "-" * len(lines[0])
        return "\n".join(
            [lines[0], rule, *lines[1:], rule, f"Total parameters: {total:,}"]
        )

    def save(self, path):
        """Save every parameter and buffer to an ``.npz`` file, atomically.

        The keys are those of ``parameters()`` and ``buffers()`` (``numpy.savez``, no
        pickle); ``.npz`` is appended to a path without it, as NumPy does. The data go
        to a temporary file in the same folder, which is flushed to disk and then
        renamed over ``path``: a full disk, a crash or Ctrl-C leaves an existing file as
        it was, never half-written.

        Returns
        -------
        path : pathlib.Path
            The file written.

        Raises
        ------
        ValueError
            If a parameter or buffer holds NaN or infinity (nothing is written).
        OSError
            If the file cannot be written; ``path`` is then unchanged.
        """
        return save_arrays(path, {**self.parameters(), **self.buffers()})

    def load(self, path):
        """Load parameters and buffers saved by ``save`` into this model.

        The file's size, its key set and every array's header (shape and dtype) are
        checked before any data is read, so a small file cannot make it allocate much
        memory; then the data are read by key and must be finite. Only when all of that
        holds are the values copied, by key, into the existing arrays of
        ``parameters()`` and ``buffers()``: on any problem the model is left untouched.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            If the file is not a readable ``.npz`` archive of ``.npy`` arrays with
            exactly this model's keys, shapes and dtypes and finite values; the message
            names the file and the problem.
        """
        params = {**self.parameters(), **self.buffers()}
        expected = {key: (value.shape, value.dtype) for key, value in params.items()}
        arrays = load_arrays(path, expected)
        for key, value in params.items():
            np.copyto(value, arrays[key])


def __getattr__(name):
    # Moved after 0.2.0 with the rest of the model-file code; kept here for one release.
    if name == "MEMBER_OVERHEAD":
        warnings.warn("cnn.model.MEMBER_OVERHEAD is now cnn.modelfile.MEMBER_OVERHEAD",
                      DeprecationWarning, stacklevel=2)
        from cnn import modelfile

        return modelfile.MEMBER_OVERHEAD
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
