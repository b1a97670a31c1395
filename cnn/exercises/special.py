"""The checks whose cases are not arrays: ``numerical_gradient`` and ``check_model``.

Their cases are built by functions (a function to differentiate, a small network with
data), described in words; one network has a deliberately wrong bias gradient that the
reader's ``check_model`` must catch.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from cnn.exercises.calling import _call
from cnn.exercises.checks import Check
from cnn.exercises.compare import (
    _changed,
    _differences,
    _factor_hint,
    _index,
    _structure,
    _what,
)
from cnn.gradcheck import check_model, numerical_gradient, relative_error
from cnn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from cnn.model import Sequential


class _Special(NamedTuple):
    """A case of a check that is not a set of arrays: a description and a builder."""

    text: str
    build: Callable
    hint: str = ""

    def describe(self):
        return self.text


class NumericalGradientCheck(Check):
    """``numerical_gradient(f, x, h)`` against the book's, on known functions."""

    name = "numerical_gradient"

    def __init__(self):
        def cubes(rng, shape, h=None):
            x = rng.standard_normal(shape)
            return (lambda v: float(np.sum(v ** 3))), x, ({} if h is None else {"h": h})

        def sines(rng):
            x, c = rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 3, 2))
            return (lambda v: float(np.sum(np.sin(v) * c))), x, {}

        def closure(rng):
            weights, v = rng.standard_normal((3, 2)), rng.standard_normal(2)
            return (lambda _: float(np.sum(np.tanh(weights @ v)))), weights, {}

        self.cases = (
            _Special("f(x) = sum(x**3), x (3, 4)", lambda rng: cubes(rng, (3, 4))),
            _Special("f(x) = sum(sin(x) * c), x (2, 3, 2)", sines),
            _Special("f ignores its argument and reads x through a closure, x (3, 2)",
                     closure, hint=(
                         "f reads x through a closure, as a layer reads its weights,"
                         " so perturb x itself, in place, and restore each entry"
                         " (eq-centred-difference); perturbing a copy changes nothing"
                         " that f sees.")),
            _Special("f(x) = sum(x**3), x (4,), h=1e-3",
                     lambda rng: cubes(rng, (4,), h=1e-3),
                     hint="Use the step h that the caller passes."),
        )

    def check_case(self, fn, case, rng):
        f, x, kwargs = case.build(rng)
        before = x.copy()
        expected = numerical_gradient(f, x, **kwargs)
        got = _call(fn, (f, x), kwargs)
        problem = _structure("grad", got, expected, case) or _changed(
            {"x": (x, before)})
        if problem:
            if problem[0] == "modified x":
                where = np.argwhere(x != before)[0]
                return "x not restored", (
                    f"x is not restored: after your function returns,"
                    f" {_index('x', where)} is {x[tuple(where)]!r} instead of"
                    f" {before[tuple(where)]!r}. Put every entry back to its exact old"
                    " value right after its two evaluations of f.")
            return problem
        error = relative_error(got, expected)
        if error <= 1e-8:
            return None
        h = kwargs.get("h", 1e-5)
        one_sided = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            old = x[i]
            x[i] = old + h
            up = f(x)
            x[i] = old
            one_sided[i] = (up - f(x)) / h
        text = (f"grad is wrong: relative error {error:.1e} against the centred"
                " differences of the book's numerical_gradient. "
                + _differences("grad", got, expected))
        if relative_error(got, one_sided) < 1e-8:
            text += (" Yours is the one-sided difference (f(x + h) - f(x)) / h, whose"
                     " error is of order h (eq-one-sided-difference); the centred one"
                     " (f(x + h) - f(x - h)) / (2 h) is of order h**2"
                     " (eq-centred-difference).")
        hint = _factor_hint(got, expected, case)
        return f"grad: wrong values ({error:.1e})", text + (f" {hint}" if hint else "")


class _HalvedBiasGradient(Dense):
    """A dense layer whose bias gradient is deliberately halved."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["b"] = self.grads["b"] / 2
        return dx


def _small_cnn(rng, last=Dense):
    return Sequential([Conv2D(1, 2, 3, padding=1, rng=rng, dtype=np.float64), ReLU(),
                       MaxPool2D(2), Flatten(), last(8, 3, rng=rng, dtype=np.float64)])


class CheckModelCheck(Check):
    """``check_model(model, x, y)`` on correct networks and on a wrong one."""

    name = "check_model"

    def __init__(self):
        def dense(rng):
            model = Sequential([Dense(5, 3, rng=rng, dtype=np.float64)])
            return model, rng.standard_normal((4, 5)), rng.integers(0, 3, 4)

        def cnn(rng, last=Dense):
            model = _small_cnn(rng, last)
            return model, rng.standard_normal((3, 1, 4, 4)), rng.integers(0, 3, 3)

        self.cases = (
            _Special("Dense(5, 3), x (4, 5)", dense),
            _Special("Conv2D(1, 2, 3, padding=1), ReLU, MaxPool2D(2), Flatten,"
                     " Dense(8, 3), x (3, 1, 4, 4)", cnn),
            _Special("the same network, with the bias gradient of its dense layer"
                     " deliberately halved", lambda rng: cnn(rng, _HalvedBiasGradient),
                     hint="A check must report a large error for the one wrong"
                          " gradient, and small errors for the others."),
        )

    def check_case(self, fn, case, rng):
        model, x, y = case.build(rng)
        expected = check_model(model, x, y)
        params = {key: value.copy() for key, value in model.parameters().items()}
        layers = list(model.layers)
        x_in, y_in = x.copy(), y.copy()
        got = _call(fn, (model, x_in, y_in), {})
        if model.layers != layers or model.parameters().keys() != params.keys():
            return "changed the model", (
                f"Your function changed the model: it has {len(model.layers)} layers"
                f" and the parameters {sorted(model.parameters())} after the check,"
                f" {len(layers)} layers and {sorted(params)} before. A check only"
                " reads the model, and puts every probed entry back.")
        if not isinstance(got, dict):
            return "not a dict", (
                f"Your function returned {_what(got)}; it should return a dict with one"
                " relative error per parameter, keyed like model.parameters().")
        if set(got) != set(expected):
            return "wrong keys", (
                f"Your dict has the keys {sorted(got)}; expected one per parameter,"
                f" {sorted(expected)}, the keys of model.parameters().")
        changed = _changed({"x": (x_in, x), "y": (y_in, y)} | {
            f"the parameter {key!r}": (value, params[key])
            for key, value in model.parameters().items()})
        if changed:
            return changed
        for key in expected:
            value, reference = got[key], expected[key]
            if not isinstance(value, (float, np.floating)) or not np.isfinite(value):
                return f"{key}: not a number", (
                    f"The value for {key!r} is {value!r}; expected a finite float, the"
                    " relative error eq-relative-error.")
            if reference < 1e-6 <= value:
                return f"{key}: false alarm", (
                    f"Your check reports {value:.1e} for {key!r}, whose gradient is"
                    f" right: the book's check_model reports {reference:.0e}. Compare"
                    " backward's gradient with centred differences of the loss, both"
                    " in float64.")
            if reference > 1e-3 and not 0.5 * reference <= value <= 2 * reference:
                return f"{key}: missed", (
                    f"Your check reports {value:.1e} for {key!r}, whose gradient is"
                    f" wrong on purpose: the book's check_model reports"
                    f" {reference:.1e}.")
        return None
