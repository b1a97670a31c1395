"""Optimisers: stochastic gradient descent with momentum, and Adam.

``step(params, grads)`` takes two dicts with the same keys (such as
``Sequential.parameters()`` and ``Sequential.gradients()``, keyed ``"0.w"``, ``"0.b"``,
...) and updates every parameter array IN PLACE: this is the one place in the package
where arrays are modified, so that layers, models and the optimiser keep referring to
the same parameters.

The optimiser's state (velocities, moment estimates) is keyed by those names, so use one
optimiser per model and keep the keys unique across the parameters it sees. The state of
a key belongs to the array first stepped under it: the same key with another array (the
parameters of a second model, say) raises instead of silently mixing state.

The state arrays are allocated once, at a parameter's first step, and every later step
works in them and in the parameter, in place. The update runs block by block
(``BLOCK_SIZE`` entries at a time, with two scratch blocks the optimiser keeps), so that
the few elementwise operations of a formula find their operands in the processor's
cache: each array then crosses the memory bus once per step, which is all an update
needs, and a step allocates nothing the size of a parameter. The operations are those
of the formulas, in the same order, so the results are the same to the last bit.
"""

from __future__ import annotations

import numbers
import weakref

import numpy as np

from cnn.checks import check_array, check_writable


def _check_hyper(value, name, low, high, low_inclusive=False):
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not (low <= value if low_inclusive else low < value) or not value < high:
        interval = f"{'[' if low_inclusive else '('}{low}, {high})"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return float(value)


BLOCK_SIZE = 2**16
"""Entries per block of an update.

A block of every operand, and the scratch, fit the processor's cache (chapter "Making it
fast").
"""


class Optimizer:
    """Base class: validates ``step``'s arguments, keeps per-parameter state by key."""

    def __init__(self):
        self.state = {}
        self._scratch = {}
        # Key -> weak reference to the array its state belongs to (not kept alive).
        self._owners = {}

    def _blocks(self, param, *arrays):
        """Matching blocks of ``param`` and ``arrays``, and two scratch blocks.

        Yields tuples ``(param block, *array blocks, scratch a, scratch b)`` of flat
        views that cover the arrays in C order, ``BLOCK_SIZE`` entries at a time:
        writing into a block writes into its array. A parameter that is not
        C-contiguous comes as one block, the whole array, with scratch of its shape.
        """
        if not param.flags.c_contiguous:
            yield param, *arrays, np.empty_like(param), np.empty_like(param)
            return
        scratch = self._scratch.get(param.dtype)
        if scratch is None:
            scratch = np.empty((2, BLOCK_SIZE), dtype=param.dtype)
            self._scratch[param.dtype] = scratch
        flat = [a.reshape(-1) for a in (param, *arrays)]
        for start in range(0, param.size, BLOCK_SIZE):
            stop = min(start + BLOCK_SIZE, param.size)
            yield (*(a[start:stop] for a in flat), *scratch[:, : stop - start])

    def _pairs(self, params, grads):
        """Check both dicts before any update; return ``(key, param, grad)`` triples.

        Each ``grad`` is returned in the dtype of its parameter.
        """
        if not isinstance(params, dict) or not isinstance(grads, dict):
            raise TypeError(
                "params and grads must be dicts of numpy arrays with the same keys"
            )
        if params.keys() != grads.keys():
            missing, extra = (
                sorted(params.keys() - grads.keys()),
                sorted(grads.keys() - params.keys()),
            )
            raise ValueError(
                f"grads must have the keys of params: missing {missing}, "
                f"unexpected {extra}"
            )
        check_writable(params, "params")
        pairs = []
        for key, param in params.items():
            # Not checked for NaN: that would read every parameter once more per step,
            # and a non-finite parameter already fails the next forward pass.
            check_array(param, f"params[{key!r}]", finite=False)
            grad = check_array(grads[key], f"grads[{key!r}]", dims=param.shape)
            state = self.state.get(key)
            if state is not None and state[0].shape != param.shape:
                raise ValueError(
                    f"optimizer state for {key!r} has shape {state[0].shape} but the "
                    f"parameter has shape {param.shape}: use one optimizer per model"
                )
            self._check_owner(key, param)
            pairs.append((key, param, grad.astype(param.dtype, copy=False)))
        for key, param, _ in pairs:
            self._owners.setdefault(key, weakref.ref(param))
        return pairs

    def _check_owner(self, key, param):
        """Refuse to step ``param`` with the state of another array of the same key."""
        owner = self._owners.get(key)
        if owner is not None and owner() is not param:
            raise ValueError(
                f"this optimizer holds state for {key!r} of another parameter array "
                "(of another model?): moments would mix; use one optimizer per model"
            )


class SGD(Optimizer):
    """Stochastic gradient descent with (heavy-ball) momentum.

    ``v <- momentum * v - lr * grad`` then ``param <- param + v``, with ``v`` starting
    at 0. Implements eq-sgd-momentum; ``momentum=0`` is plain gradient descent,
    ``param <- param - lr * grad``. With ``weight_decay`` the L2 penalty's gradient
    ``weight_decay * param`` is added to ``grad`` first (eq-l2-dw).

    Parameters
    ----------
    lr : float
        Learning rate, > 0.
    momentum : float
        In ``[0, 1)``.
    weight_decay : float
        L2 coefficient ``lambda``, >= 0.
    """

    def __init__(self, lr, momentum=0.0, weight_decay=0.0):
        super().__init__()
        self.lr = _check_hyper(lr, "lr", 0.0, np.inf)
        self.momentum = _check_hyper(momentum, "momentum", 0.0, 1.0, low_inclusive=True)
        self.weight_decay = _check_hyper(weight_decay, "weight_decay", 0.0, np.inf,
                                         low_inclusive=True)

    def step(self, params, grads):
        """Update every array of ``params`` in place from ``grads`` (same keys)."""
        for key, param, grad in self._pairs(params, grads):
            if key not in self.state:
                self.state[key] = (np.zeros(param.shape, dtype=param.dtype),)
            (velocity,) = self.state[key]
            for p, g, v, a, _ in self._blocks(param, grad, velocity):
                if self.weight_decay:  # grad <- grad + weight_decay * param
                    np.add(g, np.multiply(self.weight_decay, p, out=a), out=a)
                    g = a
                v *= self.momentum
                v -= np.multiply(self.lr, g, out=a)
                p += v


class Adam(Optimizer):
    """Adam: adaptive moment estimation (Kingma and Ba, 2015).

    With ``t`` the number of steps taken for that parameter (from 1):
    ``m <- beta1 m + (1 - beta1) g``, ``v <- beta2 v + (1 - beta2) g**2``,
    ``m_hat = m / (1 - beta1**t)``, ``v_hat = v / (1 - beta2**t)``,
    ``param <- param - lr m_hat / (sqrt(v_hat) + eps)``. Implements eq-adam. With
    ``weight_decay`` the decay is decoupled from the gradient, as in AdamW (Loshchilov
    and Hutter, 2019): ``param <- param - lr * weight_decay * param`` before the Adam
    step (eq-adamw).

    Parameters
    ----------
    lr : float
        Step size, > 0.
    beta1, beta2 : float
        Decay rates of the first and second moment estimates, in ``[0, 1)``.
    eps : float
        Added to the denominator, > 0.
    weight_decay : float
        Decoupled decay coefficient ``lambda``, >= 0.
    """

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__()
        self.lr = _check_hyper(lr, "lr", 0.0, np.inf)
        self.beta1 = _check_hyper(beta1, "beta1", 0.0, 1.0, low_inclusive=True)
        self.beta2 = _check_hyper(beta2, "beta2", 0.0, 1.0, low_inclusive=True)
        self.eps = _check_hyper(eps, "eps", 0.0, np.inf)
        self.weight_decay = _check_hyper(weight_decay, "weight_decay", 0.0, np.inf,
                                         low_inclusive=True)

    def step(self, params, grads):
        """Update every array of ``params`` in place from ``grads`` (same keys)."""
        beta1, beta2, lr, eps = self.beta1, self.beta2, self.lr, self.eps
        for key, param, grad in self._pairs(params, grads):
            if key not in self.state:
                zeros = [np.zeros(param.shape, dtype=param.dtype) for _ in range(2)]
                self.state[key] = (*zeros, 0)
            m, v, t = self.state[key]
            t += 1
            self.state[key] = (m, v, t)
            for p, g, m_k, v_k, a, b in self._blocks(param, grad, m, v):
                m_k *= beta1  # m <- beta1 m + (1 - beta1) g
                m_k += np.multiply(1 - beta1, g, out=a)
                v_k *= beta2  # v <- beta2 v + (1 - beta2) g**2
                v_k += np.multiply(1 - beta2, np.multiply(g, g, out=a), out=a)
                m_hat = np.divide(m_k, 1 - beta1**t, out=a)
                v_hat = np.divide(v_k, 1 - beta2**t, out=b)
                denominator = np.add(np.sqrt(v_hat, out=b), eps, out=b)
                if self.weight_decay:  # decoupled: param <- param - lr wd param
                    p *= 1 - lr * self.weight_decay
                p -= np.divide(np.multiply(lr, m_hat, out=a), denominator, out=a)
