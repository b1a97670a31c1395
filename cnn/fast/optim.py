"""The optimisers that the case study trains with: ``cnn.optim``'s updates in place.

``cnn.optim.SGD.step`` and ``cnn.optim.Adam.step`` write each formula as one line, and
each line makes a new array the size of the parameter: for the 38 million weights of
the original network, Adam's step would read and write some 2 GB. The classes here take
the same arguments, keep the same state and give the same numbers to the last bit (the
tests check it), but allocate the state once, at a parameter's first step, and update
it and the parameter in place, block by block (``BLOCK_SIZE`` entries at a time, with
two scratch blocks the optimiser keeps), so that the few elementwise operations of a
formula find their operands in the processor's cache: each array then crosses the memory
bus once per step, which is all an update needs, and a step allocates nothing the size
of a parameter. The operations are those of the formulas, in the same order, so the
results are the same to the last bit (chapter "Making it fast").
"""

from __future__ import annotations

import numpy as np

from cnn import optim

BLOCK_SIZE = 2**16
"""Entries per block of an update.

A block of every operand, and the scratch, fit the processor's cache (chapter "Making it
fast").
"""


class _Blocked:
    """Mixin: matching cache-sized blocks of a parameter, its state and two scratches."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._scratch = {}  # dtype -> the two scratch blocks

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


class SGD(_Blocked, optim.SGD):
    """``cnn.optim.SGD`` with an in-place, blocked ``step``: same arguments, results."""

    def step(self, params, grads):
        """Update every array of ``params`` in place from ``grads`` (same keys)."""
        for key, param, grad in self._checked(params, grads):
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


class Adam(_Blocked, optim.Adam):
    """``cnn.optim.Adam`` with an in-place, blocked ``step``: same arguments, results."""

    def step(self, params, grads):
        """Update every array of ``params`` in place from ``grads`` (same keys)."""
        beta1, beta2, lr, eps = self.beta1, self.beta2, self.lr, self.eps
        for key, param, grad in self._checked(params, grads):
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
