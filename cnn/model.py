"""``Sequential``: a stack of layers trained with softmax cross-entropy.

The last layer produces logits; ``cnn.losses.softmax_cross_entropy`` turns them into a
loss and the gradient that starts the backward pass. Parameters are named
``"<layer index>.<name>"`` (``"0.w"``, ``"0.b"``, ``"3.w"``, ...), in ``parameters()``,
in ``gradients()``, for optimisers and in saved files.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import numpy as np

from cnn.activations import softmax
from cnn.checks import check_array, check_int, check_labels
from cnn.losses import softmax_cross_entropy


def _check_batch(x):
    """A finite float array with a non-empty batch axis first."""
    check_array(x, "x")
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(
            "x must have shape (N, ...) with N >= 1 and at least 2 axes, "
            f"got shape {x.shape}"
        )


def _progress_bar(total, description):
    """A ``tqdm`` bar of ``total`` samples on standard output, if that is a terminal.

    It is cleared when closed, so that the epoch's line is printed in its place.
    """
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="sample", leave=False,
                file=sys.stdout, disable=not sys.stdout.isatty())


class Sequential:
    """Layers applied one after the other; the last returns logits ``(N, K)``.

    Parameters
    ----------
    layers : list
        Layer objects with ``forward``, ``backward``, ``params`` and ``grads`` (see
        ``cnn.layers``).
    """

    def __init__(self, layers):
        self.layers = list(layers)
        self.input_shape = None

    def forward(self, x):
        """Run every layer: ``x : (N, ...)`` -> logits ``(N, K)``.

        Records the sample shape ``x.shape[1:]`` in ``input_shape``.
        """
        out = x
        for layer in self.layers:
            out = layer.forward(out)
        self.input_shape = x.shape[1:]
        return out

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

    def _logits(self, x, batch_size):
        """Logits for ``x`` computed in batches, keeping no backward caches.

        Each layer's cache (and any array it keeps for reuse) is released as soon as
        the layer has run, so that only one layer's intermediate arrays exist at a time,
        and the caches of the last ``forward`` are put back afterwards: ``predict``
        between ``forward`` and ``backward`` changes nothing, and nothing of the
        prediction stays in memory.
        """
        batch_size = check_int(batch_size, "batch_size")
        _check_batch(x)
        caches = [layer.cache for layer in self.layers]
        logits = []
        try:
            for start in range(0, len(x), batch_size):
                out = x[start : start + batch_size]
                for layer in self.layers:
                    out = layer.forward(out)
                    layer.release()
                logits.append(out)
        finally:
            for layer, cache in zip(self.layers, caches):
                layer.cache = cache
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

    def fit(self, x, y, epochs, batch_size, optimizer, validation_data=None, seed=0,
            verbose=False, progress=False):
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
        progress : bool
            Show a progress bar per epoch (``tqdm``) with the running loss, the samples
            per second and the time left, when standard output is a terminal.

        Returns
        -------
        history : dict
            ``"train_loss"``, ``"train_acc"``, ``"val_loss"``, ``"val_acc"``: lists with
            one value per epoch (the validation lists stay empty without
            ``validation_data``). The training numbers are averages over the epoch's
            batches, measured while the weights change.
        """
        _check_batch(x)
        check_labels(y, "y", len(x))
        epochs = check_int(epochs, "epochs")
        batch_size = check_int(batch_size, "batch_size")
        rng = np.random.default_rng(seed)
        history = {"train_loss": [], "train_acc": [], "val_loss": [], "val_acc": []}
        for epoch in range(epochs):
            order = rng.permutation(len(x))
            total_loss, correct = 0.0, 0
            bar = None
            if progress:
                bar = _progress_bar(len(x), f"epoch {epoch + 1}/{epochs}")
            for start in range(0, len(x), batch_size):
                batch = order[start:start + batch_size]
                logits = self.forward(x[batch])
                loss, dlogits = softmax_cross_entropy(logits, y[batch])
                self.backward(dlogits)
                optimizer.step(self.parameters(), self.gradients())
                total_loss += loss * len(batch)
                correct += int(np.sum(logits.argmax(axis=1) == y[batch]))
                if bar is not None:
                    bar.set_postfix_str(f"loss {total_loss / (start + len(batch)):.4f}",
                                        refresh=False)
                    bar.update(len(batch))
            if bar is not None:
                bar.close()
            history["train_loss"].append(total_loss / len(x))
            history["train_acc"].append(correct / len(x))
            line = (
                f"epoch {epoch + 1}/{epochs}: loss {history['train_loss'][-1]:.4f}, "
                f"accuracy {history['train_acc'][-1]:.4f}"
            )
            if validation_data is not None:
                val_loss, val_acc = self.evaluate(*validation_data)
                history["val_loss"].append(val_loss)
                history["val_acc"].append(val_acc)
                line += f"; validation loss {val_loss:.4f}, accuracy {val_acc:.4f}"
            if verbose:
                print(line)
        return history

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
        x = np.zeros((1,) + input_shape, dtype=dtype)
        rows = [("Layer", "Output shape", "Params"), ("Input", str(input_shape), "0")]
        for layer in self.layers:
            x = layer.forward(x)
            count = sum(value.size for value in layer.params.values())
            rows.append((repr(layer), str(x.shape[1:]), f"{count:,}"))
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
        """Save every parameter to an ``.npz`` file (``numpy.savez``, no pickle).

        The keys are those of ``parameters()``. NumPy appends ``.npz`` to a path without
        it.
        """
        np.savez(path, **self.parameters())

    def load(self, path):
        """Load parameters saved by ``save`` into this model (same architecture).

        Every key, shape and dtype is checked, and every value must be finite, BEFORE
        anything is assigned: on any mismatch a ``ValueError`` names the key and the
        shapes, and the model is left untouched. Values are copied into the existing
        parameter arrays.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            If the file is not a readable ``.npz`` archive of plain arrays, or does not
            match.
        """
        params = self.parameters()
        try:
            with np.load(Path(path), allow_pickle=False) as archive:
                saved = {key: archive[key] for key in archive.files}
        except FileNotFoundError:
            raise
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
            raise ValueError(f"cannot read saved model {path}: {error}") from error
        if saved.keys() != params.keys():
            missing, extra = (
                sorted(params.keys() - saved.keys()),
                sorted(saved.keys() - params.keys()),
            )
            raise ValueError(
                f"saved model {path} does not match: missing keys {missing}, "
                f"unexpected keys {extra}"
            )
        for key, value in params.items():
            if saved[key].shape != value.shape or saved[key].dtype != value.dtype:
                raise ValueError(
                    f"saved model {path} does not match: {key!r} has shape "
                    f"{saved[key].shape} and dtype {saved[key].dtype}, the model "
                    f"expects shape {value.shape} and dtype {value.dtype}"
                )
            check_array(saved[key], f"{key!r} in {path}")
        for key, value in params.items():
            np.copyto(value, saved[key])
