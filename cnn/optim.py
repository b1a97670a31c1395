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

The ``step`` methods here are the update rules as the chapters write them, one line per
formula. ``cnn.fast.optim`` has the same optimisers with the same arguments, state and
results to the last bit, updating in place block by block so that a step allocates
nothing the size of a parameter (chapter "Making it fast").
"""

from __future__ import annotations

import weakref

import numpy as np

from cnn.checks import check_array, check_real, check_writable


class Optimizer:
    """Base class: validates ``step``'s arguments, keeps per-parameter state by key."""

    def __init__(self):
        self.state = {}
        # Key -> weak reference to the array its state belongs to (not kept alive).
        self._owners = {}

    def _checked(self, params, grads):
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
        self.lr = check_real(lr, "lr", 0.0, low_inclusive=False)
        self.momentum = check_real(momentum, "momentum", 0.0, 1.0)
        self.weight_decay = check_real(weight_decay, "weight_decay", 0.0)

    def step(self, params, grads):
        """Update every array of ``params`` in place from ``grads`` (same keys)."""
        for key, param, grad in self._checked(params, grads):
            if self.weight_decay:
                grad = grad + self.weight_decay * param  # eq-l2-dw
            if key not in self.state:
                self.state[key] = (np.zeros_like(param),)
            (velocity,) = self.state[key]
            velocity = self.momentum * velocity - self.lr * grad
            param += velocity
            self.state[key] = (velocity,)


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
        self.lr = check_real(lr, "lr", 0.0, low_inclusive=False)
        self.beta1 = check_real(beta1, "beta1", 0.0, 1.0)
        self.beta2 = check_real(beta2, "beta2", 0.0, 1.0)
        self.eps = check_real(eps, "eps", 0.0, low_inclusive=False)
        self.weight_decay = check_real(weight_decay, "weight_decay", 0.0)

    def step(self, params, grads):
        """Update every array of ``params`` in place from ``grads`` (same keys)."""
        beta1, beta2, lr, eps = self.beta1, self.beta2, self.lr, self.eps
        for key, param, grad in self._checked(params, grads):
            if key not in self.state:
                self.state[key] = (np.zeros_like(param), np.zeros_like(param), 0)
            m, v, t = self.state[key]
            t += 1
            m = beta1 * m + (1 - beta1) * grad
            v = beta2 * v + (1 - beta2) * grad**2
            m_hat = m / (1 - beta1**t)
            v_hat = v / (1 - beta2**t)
            if self.weight_decay:  # decoupled, eq-adamw: param <- param - lr wd param
                param *= 1 - lr * self.weight_decay
            param -= lr * m_hat / (np.sqrt(v_hat) + eps)
            self.state[key] = (m, v, t)
