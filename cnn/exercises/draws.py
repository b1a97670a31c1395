"""The checks of functions that draw random numbers: initialisers and dropout's mask.

Their results cannot be compared value for value with the book's (a reader may draw
in another order), so these checks test what the chapters derive: an initialiser's
standard deviation (eq-he, eq-xavier) on many draws, and a dropout mask that drops
about a fraction ``p`` and scales the kept units by ``1 / (1 - p)``
(eq-dropout-forward). Both must use the ``rng`` they are given: the same generator
state gives the same result.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cnn.exercises.calling import _call
from cnn.exercises.checks import Check, not_a_pair
from cnn.exercises.compare import _changed, _structure, _unusable_cache


class Draw(NamedTuple):
    """A case of a drawing function: keyword arguments and the expected spread."""

    kwargs: dict
    text: str
    hint: str = ""

    def describe(self):
        return self.text


def _same_twice(fn, args, kwargs, seed):
    """Two calls with generators in the same state: equal results, or a problem."""
    first = _call(fn, args, kwargs | {"rng": np.random.default_rng(seed)})
    again = _call(fn, args, kwargs | {"rng": np.random.default_rng(seed)})
    one = first[0] if isinstance(first, tuple) else first
    two = again[0] if isinstance(again, tuple) else again
    if isinstance(one, np.ndarray) and not np.array_equal(one, two):
        return "ignores rng", (
            "Two calls with generators in the same state gave different results: draw"
            " every random number from the rng argument (rng.standard_normal,"
            " rng.random), never from np.random's global functions.")
    return None


class InitialiserCheck(Check):
    """``init(shape, fan_in[, fan_out], rng=..., dtype=...)``: shape, dtype, spread."""

    def __init__(self, reference, cases, std):
        self.reference, self.cases, self.std = reference, cases, std
        self.name = reference.__name__

    def check_case(self, fn, case, rng):
        kwargs = case.kwargs
        seed = int(rng.integers(2**32))
        expected = self.reference(**kwargs, rng=np.random.default_rng(seed))
        got = _call(fn, (), kwargs | {"rng": np.random.default_rng(seed)})
        problem = _structure("w", got, expected, case)
        if problem:
            return problem
        problem = _same_twice(fn, (), kwargs, seed)
        if problem:
            return problem
        std, mean = float(got.astype(np.float64).std()), float(got.mean())
        want = self.std(**kwargs)
        # Over n draws the sample's standard deviation is off by about want/sqrt(2n).
        if abs(std / want - 1) > 0.03 or abs(mean) > 5 * want / np.sqrt(got.size):
            return "wrong spread", (
                f"Over your {got.size} weights the standard deviation is {std:.4g} and"
                f" the mean {mean:.3g}; the chapter's derivation asks for mean 0 and"
                f" standard deviation {want:.4g}. Check what goes under the square"
                " root: a variance, not a standard deviation.")
        return None


class DropoutForwardCheck(Check):
    """``dropout_forward(x, p, rng)``: kept units scaled, about ``p`` dropped."""

    name = "dropout_forward"

    def __init__(self, reference, backward, cases):
        self.reference, self.backward, self.cases = reference, backward, cases

    def check_case(self, fn, case, rng):
        shape, dtype, p = case.kwargs["shape"], case.kwargs["dtype"], case.kwargs["p"]
        # At least 0.1 from 0: a kept unit is never 0, so zeros are the dropped ones.
        x = (np.sign(rng.standard_normal(shape)) * (0.1 + rng.random(shape)))
        x = x.astype(dtype)
        expected, cache = self.reference(x, p, np.random.default_rng(0))
        x_in = x.copy()
        seed = int(rng.integers(2**32))
        got = _call(fn, (x_in, p), {"rng": np.random.default_rng(seed)})
        problem = not_a_pair(got, cache)
        if problem:
            return problem
        out, their_cache = got
        problem = (_structure("out", out, expected, case)
                   or _changed({"x": (x_in, x)})
                   or _same_twice(fn, (x.copy(), p), {}, seed))
        if problem:
            return problem
        kept = out != 0
        scale = 1 / (1 - p)
        tolerance = 1e-12 if np.dtype(dtype) == np.float64 else 1e-6
        if not np.allclose(out[kept], x[kept] * scale, rtol=tolerance, atol=0):
            return "kept units not scaled", (
                f"A kept unit should be x / (1 - p) = {scale:g} x (inverted dropout,"
                " eq-dropout-forward), so that the expected output is x"
                " (eq-dropout-mean).")
        dropped = 1 - kept.mean()
        spread = 5 * np.sqrt(p * (1 - p) / x.size) + 1e-12
        if abs(dropped - p) > spread:
            return "wrong fraction dropped", (
                f"Your mask dropped {dropped:.1%} of the {x.size} units; p = {p} asks"
                f" for about {p:.0%}. A unit is dropped with probability p and kept"
                " with probability 1 - p.")
        try:
            with np.errstate(all="ignore"):
                dx = self.backward(np.ones_like(x), their_cache)
        except Exception as error:
            return _unusable_cache(self.backward.__name__, error, cache)
        if not np.allclose(dx * x, out, rtol=tolerance, atol=0):
            return "wrong cache", (
                "out is right, but the cache is not: from it the book's"
                " dropout_backward lets the gradient through other units, or with"
                " another scale, than your forward pass kept.")
        return None
