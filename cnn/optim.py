"""Optimisers: stochastic gradient descent with momentum, and Adam.

``step(params, grads)`` takes two dicts with the same keys (such as
``Sequential.parameters()`` and ``Sequential.gradients()``, keyed ``"0.w"``, ``"0.b"``,
...) and updates every parameter array IN PLACE: this is the one place in the package
where arrays are modified, so that layers, models and the optimiser keep referring to
the same parameters.

The optimiser's state (velocities, moment estimates) is keyed by those names, so use one
optimiser per model and keep the keys unique across the parameters it sees. A key whose
parameter changes shape raises instead of silently mixing state.
"""

from __future__ import annotations

import numbers

import numpy as np

from cnn.checks import check_array


def _check_hyper(value, name, low, high, low_inclusive=False):
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not (low <= value if low_inclusive else low < value) or not value < high:
        interval = f"{'[' if low_inclusive else '('}{low}, {high})"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return float(value)


class Optimizer:
    """Base class: validates ``step``'s arguments, keeps per-parameter state by key."""

    def __init__(self):
        self.state = {}

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
        pairs = []
        for key, param in params.items():
            check_array(param, f"params[{key!r}]")
            grad = check_array(grads[key], f"grads[{key!r}]", dims=param.shape)
            state = self.state.get(key)
            if state is not None and state[0].shape != param.shape:
                raise ValueError(
                    f"optimizer state for {key!r} has shape {state[0].shape} but the "
                    f"parameter has shape {param.shape}: use one optimizer per model"
                )
            pairs.append((key, param, grad.astype(param.dtype, copy=False)))
        return pairs


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
            if self.weight_decay:
                grad = grad + self.weight_decay * param
            (velocity,) = self.state.setdefault(key, (np.zeros_like(param),))
            velocity *= self.momentum
            velocity -= self.lr * grad
            param += velocity


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
        for key, param, grad in self._pairs(params, grads):
            if key not in self.state:
                self.state[key] = (np.zeros_like(param), np.zeros_like(param), 0)
            m, v, t = self.state[key]
            t += 1
            m = self.beta1 * m + (1 - self.beta1) * grad
            v = self.beta2 * v + (1 - self.beta2) * grad**2
            self.state[key] = (m, v, t)
            m_hat = m / (1 - self.beta1**t)
            v_hat = v / (1 - self.beta2**t)
            if self.weight_decay:
                param *= 1 - self.lr * self.weight_decay
            param -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
