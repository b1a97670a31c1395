"""The cases a check runs: shapes, values and keyword arguments of one call.

``case({"x": (2, 3, 5, 5), ...}, stride=2, padding=1)`` describes one call; ``VALUES``
names the ways an array can be drawn (distinct values, ties, exact zeros, ...), which
decide whether finite differences are meaningful for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


def _distinct(rng, shape):
    """Values 0.1 apart in random order: no ties, no near-ties closer than ``h``."""
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n / 2) * 0.1 + 0.05).reshape(shape)


def _kink_free(rng, shape):
    """At least 0.1 away from 0, where ReLU has its kink."""
    s = rng.standard_normal(shape)
    return np.where(s < 0, -1.0, 1.0) * (0.1 + np.abs(s))


def _with_zeros(rng, shape):
    s = rng.standard_normal(shape)
    s[rng.random(shape) < 0.3] = 0.0
    return s


VALUES = {
    "normal": (lambda rng, shape: rng.standard_normal(shape), ""),
    "distinct": (_distinct, ""),
    "kink-free": (_kink_free, ""),
    "ties": (lambda rng, shape: rng.integers(0, 3, shape).astype(float), "with ties"),
    "zeros": (_with_zeros, "with exact zeros"),
    "large": (lambda rng, shape: 1000.0 * rng.standard_normal(shape), "of size 1000"),
    "zero": (lambda rng, shape: np.zeros(shape), "= 0"),
}


@dataclass(frozen=True)
class Case:
    """One call: arrays of the given shapes (in argument order) and keyword arguments.

    ``values`` names how an array is drawn (see ``VALUES``; standard normal by
    default); ``derive`` may then relate the arrays (for instance ``a = 4 b``);
    ``hint`` is told to the reader when this case fails.
    """

    shapes: dict
    kwargs: dict = field(default_factory=dict)
    dtype: type = np.float64
    values: dict = field(default_factory=dict)
    hint: str = ""
    derive: Callable | None = None
    note: str = ""

    @property
    def smooth(self):
        """Whether finite differences are meaningful here (float64, no kinks hit)."""
        kinks = {"ties", "zeros"} & set(self.values.values())
        return np.dtype(self.dtype) == np.float64 and not kinks

    def arrays(self, rng):
        arrays = {}
        for name, shape in self.shapes.items():
            draw, _ = VALUES[self.values.get(name, "normal")]
            arrays[name] = draw(rng, shape).astype(self.dtype)
        return self.derive(arrays) if self.derive else arrays

    def describe(self):
        parts = [f"{name} {shape}" + (f" {VALUES[self.values[name]][1]}"
                                      if self.values.get(name) else "").rstrip()
                 for name, shape in self.shapes.items()]
        parts += [f"{key}={value}" for key, value in self.kwargs.items()]
        if np.dtype(self.dtype) != np.float64:
            parts.append(np.dtype(self.dtype).name)
        return ", ".join(parts) + (f" ({self.note})" if self.note else "")


def case(shapes, *, dtype=np.float64, values=None, hint="", derive=None, note="",
         **kwargs):
    """A ``Case``: ``case({"x": (2, 3, 5, 5), ...}, stride=2, padding=1)``."""
    return Case(shapes, kwargs, dtype, values or {}, hint, derive, note)
