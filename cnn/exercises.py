"""Automatic feedback for the assignments: ``check(name, your_function)``.

Each student notebook (``make assignments``) asks for functions of this package, written
from their signatures and docstrings. ``check("conv2d_backward", conv2d_backward)``
runs the reader's function on small random cases (several shapes, strides and
paddings, float64 and one float32 case) and reports, in plain words, the first problem
it finds: a wrong return type, shape or dtype, a modified input, wrong values (which
output, its relative error eq-relative-error, the first wrong entry) and how far a
wrong gradient is from centred finite differences of the forward pass. Otherwise it
says "all N cases pass". ``run_check`` returns the same report without raising.

Every check is one entry of ``CHECKS``. A new pair of functions, for example a batch
normalisation, needs one ``ForwardCheck`` and one ``BackwardCheck`` entry::

    BackwardCheck(batchnorm_forward, batchnorm_backward,
                  grads=("dx", "dgamma", "dbeta"),
                  cases=[case({"x": (4, 3), "gamma": (3,), "beta": (3,)}), ...])
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from cnn.activations import relu_backward, relu_forward, softmax
from cnn.conv import col2im, conv2d_backward, conv2d_forward, im2col, output_size
from cnn.dense import dense_backward, dense_forward
from cnn.gradcheck import check_model, numerical_gradient, relative_error
from cnn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from cnn.losses import softmax_cross_entropy
from cnn.model import Sequential
from cnn.pool import (
    avgpool2d_backward,
    avgpool2d_forward,
    maxpool2d_backward,
    maxpool2d_forward,
)

# Largest relative error (eq-relative-error) accepted against the book's function. Two
# correct float64 implementations differ by rounding only, about 1e-15.
TOLERANCE = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-4}


class CheckFailed(AssertionError):
    """A check found a problem; the message says which, in plain words."""

    def _render_traceback_(self):
        # IPython shows this instead of a traceback: the message is the feedback, the
        # frames of this module would only hide it.
        return [f"{type(self).__name__}: {line}" if i == 0 else line
                for i, line in enumerate(str(self).split("\n"))]


@dataclass(frozen=True)
class CheckResult:
    """What ``run_check`` found: ``passed``, the ``message`` and per-case verdicts."""

    name: str
    passed: bool
    message: str
    #: One entry per case, ``None`` if it passed, else a short reason.
    verdicts: tuple = ()

    def __str__(self):
        return self.message


# -- cases ------------------------------------------------------------------------


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


# -- calling the reader's function --------------------------------------------------


class _NotWritten(Exception):
    pass


class _Raised(Exception):
    pass


# Frames in these files are not the reader's code (the bug zoo plays the reader).
_PACKAGE = Path(__file__).resolve().parent
_BUGZOO = _PACKAGE / "bugzoo.py"
_NUMPY = Path(np.__file__).resolve().parent


def _where(error):
    """The reader's line that raised ``error``: the last frame outside NumPy and cnn."""
    frames = traceback.extract_tb(error.__traceback__)[1:]
    paths = [Path(f.filename).resolve() for f in frames]
    theirs = [f for f, path in zip(frames, paths) if path == _BUGZOO or not (
        path.is_relative_to(_NUMPY) or path.is_relative_to(_PACKAGE))]
    if not theirs:
        return ""
    frame = theirs[-1]
    line = f": `{frame.line.strip()}`" if frame.line else ""
    return f" (in {frame.name}, line {frame.lineno}{line})"


def _call(fn, args, kwargs):
    try:
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)
    except NotImplementedError:
        raise _NotWritten from None
    except Exception as error:  # the reader's code may raise anything
        text = str(error).strip().split("\n")[0]
        raise _Raised(f"raised {type(error).__name__}: {text}{_where(error)}") from None


# -- comparing arrays ---------------------------------------------------------------


def _index(name, index):
    return f"{name}[{', '.join(str(int(i)) for i in index)}]"


def _what(value):
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} values"
    return f"a {type(value).__name__}"


def _shape_hint(got, expected, case):
    if len(got) == 2 and got == expected[::-1]:
        return " That is the transposed shape."
    padding = case.kwargs.get("padding", 0) if isinstance(case, Case) else 0
    pad = (padding, padding) if isinstance(padding, int) else tuple(padding)
    if (len(got) == 4 == len(expected) and any(pad) and got[:2] == expected[:2]
            and got[2:] == (expected[2] + 2 * pad[0], expected[3] + 2 * pad[1])):
        return (" That is the size of the padded input: the padding zeros are"
                " constants, not inputs, so their gradient is cropped off"
                " (eq-conv-dx).")
    if len(got) < len(expected):
        return " An axis is missing: check which axes you summed over."
    if len(got) > len(expected):
        return " There is an extra axis: did you sum over every axis you should?"
    return (" Check the axes you sum over, and the order of the factors of your"
            " products.")


def _structure(name, got, expected, case, of=""):
    """Type, shape, dtype and finiteness of one output; a problem or ``None``."""
    if not isinstance(got, np.ndarray):
        return f"{name}: not an array", (
            f"{name} should be a NumPy array{of}, but your function returned"
            f" {_what(got)} for it.")
    if got.shape != expected.shape:
        return f"{name}: wrong shape", (
            f"{name} has shape {got.shape}, expected {expected.shape}{of}."
            + _shape_hint(got.shape, expected.shape, case))
    if got.dtype != expected.dtype:
        return f"{name}: wrong dtype", (
            f"{name} has dtype {got.dtype}, expected {expected.dtype}, the dtype of the"
            " input: allocate with np.zeros_like or dtype=x.dtype rather than np.zeros"
            " alone.")
    if not np.isfinite(got).all():
        first = np.argwhere(~np.isfinite(got))[0]
        return f"{name}: NaN or infinity", (
            f"{name} contains NaN or infinity, first at {_index(name, first)}." + (
                f" {case.hint}" if isinstance(case, Case) and case.hint else ""))
    return None


def _factor_hint(got, expected, case):
    """Recognise a gradient that is right up to a constant factor, or all zero."""
    g, e = got.astype(np.float64).ravel(), expected.astype(np.float64).ravel()
    if not np.any(g):
        return "Every entry of yours is 0."
    c = float(g @ e / (e @ e)) if np.any(e) else 0.0
    if c == 0.0 or relative_error(g, c * e) > 1e-6:
        return ""
    if abs(c + 1) < 1e-6:
        return "Yours is the expected one with the opposite sign."
    named = ""
    first = next(iter(case.shapes.values()), ()) if isinstance(case, Case) else ()
    if first and len(first) > 1 and first[0] > 1:
        N = first[0]
        if abs(c - N) < 1e-6:
            named = f" That is N = {N}, the batch size: a missing 1/N?"
        elif abs(c * N - 1) < 1e-6:
            named = f" That is 1/N with N = {N}, the batch size: an extra 1/N?"
    return (f"Yours is {c:.6g} times the expected one, in every entry: a missing or"
            f" extra constant factor.{named}")


def _differences(name, got, expected):
    """Where ``got`` differs: the first wrong entry and how many differ."""
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    bad = ~np.isclose(got, expected, rtol=1e-6, atol=1e-6 * scale)
    if not bad.any():
        bad = np.abs(got - expected) == np.abs(got - expected).max()
    if got.ndim == 0:
        return f"Yours is {float(got):.6g}, expected {float(expected):.6g}."
    first = tuple(np.argwhere(bad)[0])
    return (f"The first wrong entry in row-major order is {_index(name, first)}: yours"
            f" is {got[first]:.6g}, expected {expected[first]:.6g}; {int(bad.sum())} of"
            f" {bad.size} entries differ.")


def _value_problem(name, got, expected, case, fd=None):
    """Relative error against the book's result; ``fd()`` gives finite differences."""
    error = relative_error(got, expected)
    tolerance = TOLERANCE.get(np.dtype(expected.dtype), 1e-9)
    if error <= tolerance:
        return None
    text = (f"{name} is wrong: relative error {error:.1e} against the book's {name}"
            f" (eq-relative-error; a correct function gives about 1e-15 in float64, and"
            f" the check allows {tolerance:.0e}). " + _differences(name, got, expected))
    if fd is not None and case.smooth:
        numeric = fd()
        agree = relative_error(expected, numeric)
        text += (f" Centred finite differences of the forward pass agree with the"
                 f" book's {name} (relative error {agree:.0e}) and not with yours"
                 f" ({relative_error(got, numeric):.1e}).")
    hint = _factor_hint(got, expected, case)
    return f"{name}: wrong values ({error:.1e})", text + (f" {hint}" if hint else "")


def _changed(inputs):
    """The first input that a call modified: ``inputs`` maps name -> (after, before)."""
    for name, (after, before) in inputs.items():
        if isinstance(before, np.ndarray) and not np.array_equal(
                after, before, equal_nan=True):
            where = np.argwhere(after != before)
            at = f", first at {_index(name, where[0])}" if len(where) else ""
            return f"modified {name}", (
                f"Your function changed its input {name} in place{at}. The caller"
                " still needs it (a layer keeps its cache, the optimiser reuses dout):"
                " build new arrays instead, for example `dout * mask` or"
                " `np.where(...)` rather than `dout[mask] = 0` or `+=` on an input.")
    return None


def _copy(value):
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_copy(v) for v in value))
    return value


def _fields(name, value):
    """Name -> array for an array or the array fields of a cache."""
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return {f"{name}.{key}": v for key, v in zip(value._fields, value)
                if isinstance(v, np.ndarray)}
    return {name: value}


def _as_tuple(value):
    return value if isinstance(value, tuple) else (value,)


def _unpack(got, names, what):
    """Split a result into its named outputs; a problem if the count is wrong."""
    if len(names) == 1:
        if isinstance(got, (tuple, list)):
            return None, (f"returns a {type(got).__name__}", (
                f"Your function returned {_what(got)}; it should return the array "
                f"{names[0]} itself."))
        return (got,), None
    if not isinstance(got, (tuple, list)) or len(got) != len(names):
        wanted = ", ".join(names)
        return None, ("wrong number of results", (
            f"Your function returned {_what(got)}; it should return {len(names)}"
            f" values, ({wanted}){what}."))
    return tuple(got), None


# -- the checks ---------------------------------------------------------------------


class Check:
    """Run a function on every case; subclasses say what one case compares."""

    name = ""
    cases = ()

    def check_case(self, fn, case, rng):
        raise NotImplementedError

    def run(self, fn, seed=0):
        if not callable(fn):
            message = (f"{self.name}: check needs your function itself, got"
                       f" {_what(fn)} (write check({self.name!r}, {self.name}), without"
                       " calling it).")
            return CheckResult(self.name, False, message)
        verdicts, first = [], None
        for k, one in enumerate(self.cases):
            try:
                problem = self.check_case(fn, one, np.random.default_rng([seed, k]))
            except _NotWritten:
                return CheckResult(self.name, False, (
                    f"{self.name} is not written yet: it still raises"
                    " NotImplementedError. Replace the line `raise NotImplementedError`"
                    " with your code, run that cell, then run this check again."))
            except _Raised as raised:
                problem = (str(raised).split(":")[0], f"Your function {raised}.")
            verdicts.append(None if problem is None else problem[0])
            if problem is not None and first is None:
                first = (k, problem)
        n = len(self.cases)
        if first is None:
            return CheckResult(self.name, True, f"{self.name}: all {n} cases pass.",
                               tuple(verdicts))
        k, (_, detail) = first
        one = self.cases[k]
        hint = one.hint if getattr(one, "hint", "") and one.hint not in detail else ""
        lines = [f"{self.name} fails case {k + 1} of {n}: {one.describe()}.", detail]
        if hint:
            lines.append(f"Hint: {hint}")
        passed = sum(v is None for v in verdicts)
        lines.append(f"It passes {passed} of {n} cases:")
        for i, (verdict, other) in enumerate(zip(verdicts, self.cases), start=1):
            mark = "pass" if verdict is None else f"FAIL ({verdict})"
            lines.append(f"  case {i}: {other.describe()}: {mark}")
        return CheckResult(self.name, False, "\n".join(lines), tuple(verdicts))


class FunctionCheck(Check):
    """A function whose results are compared with the book's, value for value."""

    def __init__(self, reference, cases, outputs=("out",), name=None):
        self.reference, self.cases, self.outputs = reference, cases, outputs
        self.name = name or reference.__name__

    def check_case(self, fn, case, rng):
        arrays = case.arrays(rng)
        expected = tuple(np.asarray(v) for v in _as_tuple(
            self.reference(*arrays.values(), **case.kwargs)))
        inputs = {name: a.copy() for name, a in arrays.items()}
        got = _call(fn, tuple(inputs.values()), case.kwargs)
        if len(self.outputs) == 1 and expected[0].ndim == 0:
            number = isinstance(got, (float, int, np.floating, np.ndarray))
            if not number or np.ndim(got):
                return "not a number", (
                    f"Your function returned {_what(got)}; it should return one"
                    " number.")
            got = (np.asarray(got, dtype=expected[0].dtype),)
        else:
            got, problem = _unpack(got, self.outputs, "")
            if problem:
                return problem
        for name, g, e in zip(self.outputs, got, expected):
            problem = _structure(name, g, e, case)
            if problem:
                return problem
        changed = _changed({name: (inputs[name], a) for name, a in arrays.items()})
        if changed:
            return changed
        for name, g, e in zip(self.outputs, got, expected):
            problem = _value_problem(name, g, e, case)
            if problem:
                return problem
        return None


class ForwardCheck(Check):
    """A forward pass: ``out`` against the book's, the cache through its backward."""

    def __init__(self, forward, backward, cases, grads=("dx", "dw", "db"), name=None):
        self.forward, self.backward, self.cases = forward, backward, cases
        self.grads = grads
        self.name = name or forward.__name__

    def check_case(self, fn, case, rng):
        arrays = case.arrays(rng)
        out, cache = self.forward(*arrays.values(), **case.kwargs)
        inputs = {name: a.copy() for name, a in arrays.items()}
        got = _call(fn, tuple(inputs.values()), case.kwargs)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            return "not (out, cache)", (
                f"Your function returned {_what(got)}; it should return a pair"
                f" (out, cache): the output and the {type(cache).__name__} that the"
                " backward pass needs.")
        got_out, got_cache = got
        problem = (_structure("out", got_out, out, case)
                   or _changed({name: (inputs[name], a) for name, a in arrays.items()})
                   or _value_problem("out", got_out, out, case))
        if problem:
            return problem
        dout = rng.standard_normal(out.shape).astype(out.dtype)
        expected = _as_tuple(self.backward(dout, cache))
        backward = self.backward.__name__
        try:
            with np.errstate(all="ignore"):
                from_theirs = _as_tuple(self.backward(dout.copy(), got_cache))
        except Exception as error:
            return "unusable cache", (
                f"out is right, but the book's {backward} cannot use the cache your"
                f" function returns: {type(error).__name__}: {error}. Return a"
                f" {type(cache).__name__} as the docstring says.")
        for grad, g, e in zip(self.grads, from_theirs, expected):
            if (not isinstance(g, np.ndarray) or g.shape != e.shape
                    or relative_error(g, e) > TOLERANCE[np.dtype(e.dtype)]):
                wrong = _value_problem(grad, g, e, case) if g.shape == e.shape else None
                detail = wrong[1] if wrong else f"{grad} has the wrong shape."
                return "wrong cache", (
                    f"out is right, but the cache is not: from it the book's {backward}"
                    f" computes a wrong gradient. {detail}")
        return None


class BackwardCheck(Check):
    """A backward pass, given the cache of the book's forward pass.

    ``grads`` name the results, one per array argument of ``forward`` in order.
    """

    def __init__(self, forward, backward, grads, cases, name=None):
        self.forward, self.backward, self.grads = forward, backward, grads
        self.cases = cases
        self.name = name or backward.__name__

    def _setup(self, case, rng):
        arrays = case.arrays(rng)
        out, cache = self.forward(*arrays.values(), **case.kwargs)
        dout = rng.standard_normal(out.shape).astype(out.dtype)
        return arrays, cache, dout

    def _numeric(self, arrays, case, dout, i):
        """Centred differences of ``sum(forward(...) * dout)`` for argument ``i``."""
        names = list(arrays)

        def loss(v):
            args = [v if j == i else arrays[n] for j, n in enumerate(names)]
            return float(np.sum(self.forward(*args, **case.kwargs)[0] * dout))

        return numerical_gradient(loss, arrays[names[i]].copy())

    def check_case(self, fn, case, rng):
        arrays, cache, dout = self._setup(case, rng)
        expected = _as_tuple(self.backward(dout, cache))
        dout_in, cache_in = dout.copy(), _copy(cache)
        got, problem = _unpack(_call(fn, (dout_in, cache_in), {}), self.grads,
                               "" if len(self.grads) == 1 else " in that order")
        if problem:
            return problem
        for grad, g, e, arg in zip(self.grads, got, expected, arrays):
            problem = _structure(grad, g, e, case, f" (the shape of {arg})")
            if problem:
                return problem
        inputs = {"dout": (dout_in, dout)}
        after, before = _fields("cache", cache_in), _fields("cache", cache)
        inputs |= {key: (after[key], before[key]) for key in before}
        problem = _changed(inputs)
        if problem:
            return problem
        errors = [relative_error(g, e) for g, e in zip(got, expected)]
        tolerance = TOLERANCE[np.dtype(dout.dtype)]
        wrong = [i for i, error in enumerate(errors) if error > tolerance]
        if not wrong:
            return None
        i = wrong[0]
        summary, text = _value_problem(
            self.grads[i], got[i], expected[i], case,
            fd=lambda: self._numeric(arrays, case, dout, i))
        right = [g for j, g in enumerate(self.grads) if j not in wrong]
        others = [g for g in (self.grads[j] for j in wrong[1:])]
        if others:
            text += f" {_join(others)} {'is' if len(others) == 1 else 'are'} wrong too."
        if right:
            text += f" {_join(right)} {'is' if len(right) == 1 else 'are'} right."
        return summary, text

    def gradient_check(self, fn, seed=0):
        """Relative error of each result of ``fn`` against centred differences.

        One dict per case (``None`` where finite differences are not meaningful,
        ``nan`` for a result of the wrong shape, ``{"raised": "IndexError"}`` when
        ``fn`` raised). This is the book's plain gradient check, with none of the other
        comparisons of ``run``.
        """
        rows = []
        for k, one in enumerate(self.cases):
            arrays, cache, dout = self._setup(one, np.random.default_rng([seed, k]))
            if not one.smooth:
                rows.append(None)
                continue
            try:
                with np.errstate(all="ignore"):
                    got = _as_tuple(fn(dout.copy(), _copy(cache)))
            except Exception as error:  # a broken function may raise anything
                rows.append({"raised": type(error).__name__})
                continue
            row = {}
            for i, (grad, g) in enumerate(zip(self.grads, got)):
                numeric = self._numeric(arrays, one, dout, i)
                row[grad] = (relative_error(g, numeric) if np.shape(g) == numeric.shape
                             else float("nan"))
            rows.append(row)
        return rows


class LossCheck(Check):
    """``loss, dlogits = f(logits, y)``: the mean loss and its gradient."""

    def __init__(self, reference, cases, name=None):
        self.reference, self.cases = reference, cases
        self.name = name or reference.__name__

    @staticmethod
    def _setup(case, rng):
        logits = case.arrays(rng)["logits"]
        return logits, rng.integers(0, logits.shape[1], size=logits.shape[0])

    def check_case(self, fn, case, rng):
        logits, y = self._setup(case, rng)
        loss, dlogits = self.reference(logits, y)
        logits_in, y_in = logits.copy(), y.copy()
        got, problem = _unpack(_call(fn, (logits_in, y_in), {}), ("loss", "dlogits"),
                               " in that order")
        if problem:
            return problem
        got_loss, got_dlogits = got
        if isinstance(got_loss, np.ndarray) and got_loss.ndim:
            return "loss: not one number", (
                f"loss has shape {got_loss.shape}: the loss of a batch is one number,"
                " the mean over the batch (eq-softmax-ce).")
        if not isinstance(got_loss, (float, int, np.floating, np.ndarray)):
            return "loss: not a number", f"loss is {_what(got_loss)}, not a number."
        got_loss = float(got_loss)
        if not np.isfinite(got_loss):
            return "loss: not finite", (
                f"loss is {got_loss}: exp or log overflowed. Compute log softmax with"
                " the log-sum-exp trick (eq-logsumexp) instead of log(softmax(...)).")
        if abs(got_loss - loss) > 1e-9 * max(1.0, abs(loss)):
            N = logits.shape[0]
            sum_hint = (" That is N times the right value: the sum over the batch"
                        " instead of the mean?" if abs(got_loss - N * loss)
                        <= 1e-9 * max(1.0, abs(N * loss)) and N > 1 else "")
            return "loss: wrong value", (
                f"loss is {got_loss:.10g}, expected {loss:.10g}.{sum_hint}")
        problem = (_structure("dlogits", got_dlogits, dlogits, case)
                   or _changed({"logits": (logits_in, logits), "y": (y_in, y)}))
        if problem:
            return problem
        return _value_problem(
            "dlogits", got_dlogits, dlogits, case,
            fd=lambda: numerical_gradient(
                lambda v: self.reference(v, y)[0], logits.copy()))

    def gradient_check(self, fn, seed=0):
        """Relative error of ``fn``'s dlogits against differences of its own loss."""
        rows = []
        for k, one in enumerate(self.cases):
            logits, y = self._setup(one, np.random.default_rng([seed, k]))
            if not one.smooth:
                rows.append(None)
                continue
            try:
                with np.errstate(all="ignore"):
                    dlogits = fn(logits.copy(), y)[1]
                    numeric = numerical_gradient(lambda v: fn(v, y)[0], logits.copy())
            except Exception as error:  # a broken function may raise anything
                rows.append({"raised": type(error).__name__})
                continue
            rows.append({"dlogits": relative_error(dlogits, numeric)})
        return rows


def _join(names):
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


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
        x_in = x.copy()
        got = _call(fn, (model, x_in, y), {})
        if not isinstance(got, dict):
            return "not a dict", (
                f"Your function returned {_what(got)}; it should return a dict with one"
                " relative error per parameter, keyed like model.parameters().")
        if set(got) != set(expected):
            return "wrong keys", (
                f"Your dict has the keys {sorted(got)}; expected one per parameter,"
                f" {sorted(expected)}, the keys of model.parameters().")
        changed = _changed({"x": (x_in, x)} | {
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


# -- the cases ----------------------------------------------------------------------


def _conv(N, C, H, W, F, KH, KW, **options):
    return case({"x": (N, C, H, W), "w": (F, C, KH, KW), "b": (F,)}, **options)


_STRIDED = ("Output (i, j) reads the window at (SH i, SW j) of the padded input, and"
            " the gradient of the padding is cropped off (eq-conv-dx).")
_UNREAD = (" Here the last rows or columns of the padded input are read by no window:"
           " their gradient is 0.")
CONV_CASES = (
    _conv(2, 3, 5, 5, 4, 3, 3, stride=1, padding=0),
    _conv(1, 2, 6, 5, 3, 3, 2, stride=1, padding=1),
    _conv(2, 2, 7, 6, 3, 3, 2, stride=2, padding=1, hint=_STRIDED),
    _conv(2, 1, 8, 7, 2, 2, 3, stride=(2, 3), padding=(0, 2), hint=_STRIDED + _UNREAD),
    _conv(1, 3, 4, 4, 2, 1, 1, stride=1, padding=0),
    _conv(3, 2, 9, 9, 2, 3, 3, stride=3, padding=2, hint=_STRIDED + _UNREAD),
    _conv(2, 2, 6, 6, 3, 3, 3, stride=2, padding=1, dtype=np.float32),
)

DENSE_CASES = (
    case({"x": (4, 3), "w": (3, 2), "b": (2,)}),
    case({"x": (1, 5), "w": (5, 3), "b": (3,)}, hint="One sample here, N = 1."),
    case({"x": (3, 3), "w": (3, 3), "b": (3,)}, hint=(
        "Here N = D = M, so a transposed product or a sum over the wrong axis still has"
        " the right shape: only the values show the mistake.")),
    case({"x": (5, 2), "w": (2, 4), "b": (4,)}),
    case({"x": (4, 6), "w": (6, 3), "b": (3,)}, dtype=np.float32),
)

RELU_CASES = (
    case({"x": (4, 5)}, values={"x": "kink-free"}),
    case({"x": (2, 3, 4, 4)}, values={"x": "kink-free"}),
    case({"x": (3, 4)}, values={"x": "zeros"},
         hint="x has exact zeros here: the book's ReLU lets no gradient through x = 0,"
              " the subgradient 0 (eq-relu-dx), so use x > 0, not x >= 0."),
    case({"x": (2, 5)}, values={"x": "kink-free"}, dtype=np.float32),
)

_OVERLAP = ("The windows overlap here (stride smaller than the kernel): an input can"
            " lie in several windows, and its gradient is the sum of what each sends"
            " it.")
_NON_SQUARE = ("The window is not square here: offset (p, q) of a KH x KW window is"
               " p KW + q in row-major order.")
_POOL = (
    ((2, 3, 4, 4), {"kernel_size": 2}, ""),
    ((1, 2, 6, 5), {"kernel_size": 3, "stride": 2}, _OVERLAP),
    ((2, 1, 5, 7), {"kernel_size": (2, 3), "stride": (1, 2)},
     _OVERLAP + " " + _NON_SQUARE),
    ((1, 2, 6, 6), {"kernel_size": (3, 2), "stride": (3, 2)}, _NON_SQUARE),
)
POOL_CASES = tuple(
    case({"x": shape}, values={"x": "distinct"}, hint=hint, **kwargs)
    for shape, kwargs, hint in _POOL
) + (case({"x": (2, 2, 4, 4)}, dtype=np.float32, kernel_size=2),)
MAXPOOL_FORWARD_CASES = POOL_CASES + (
    case({"x": (2, 2, 4, 4)}, values={"x": "ties"}, kernel_size=2, hint=(
        "x has tied maxima here. The book's tie rule (pooling chapter): the gradient"
        " goes to the FIRST maximum of the window in row-major order, the one"
        " numpy.argmax picks; replace the running maximum only when an entry is"
        " strictly greater.")),
)

SOFTMAX_CASES = (
    case({"z": (4, 5)}),
    case({"z": (1, 3)}),
    case({"z": (2, 3, 4)}, hint="z has three axes here: softmax runs along the last"
                                " axis, whatever comes before it."),
    case({"z": (3, 10)}, values={"z": "large"}, hint=(
        "These logits are large: exp overflows unless you subtract the maximum of each"
        " row first (eq-softmax-shift).")),
    case({"z": (3, 4)}, dtype=np.float32),
)

LOSS_CASES = (
    case({"logits": (4, 3)}),
    case({"logits": (1, 5)}),
    case({"logits": (6, 4)}),
    case({"logits": (3, 10)}, values={"logits": "large"}, hint=(
        "These logits are large: compute log softmax with log-sum-exp (eq-logsumexp)"
        " rather than the log of the softmax, which underflows to log(0).")),
    case({"logits": (5, 3)}, dtype=np.float32),
)


def _im2col_case(N, C, Hp, Wp, KH, KW, SH, SW):
    return case({"x_padded": (N, C, Hp, Wp)}, kernel_size=(KH, KW), stride=(SH, SW))


def _col2im_case(N, C, Hp, Wp, KH, KW, SH, SW):
    H_out, W_out = output_size((Hp, Wp), (KH, KW), (SH, SW), (0, 0))
    return case({"dcols": (N, C * KH * KW, H_out * W_out)},
                x_padded_shape=(N, C, Hp, Wp), kernel_size=(KH, KW), stride=(SH, SW))


_GEOMETRIES = ((2, 3, 5, 5, 3, 3, 1, 1), (1, 2, 7, 6, 3, 2, 2, 1),
               (2, 1, 8, 7, 2, 3, 2, 3), (1, 2, 4, 4, 1, 1, 1, 1))


def _relations(a_from_b):
    return lambda arrays: {"a": a_from_b(arrays["b"]), "b": arrays["b"]}


RELATIVE_ERROR_CASES = (
    case({"a": (3, 4), "b": (3, 4)}),
    case({"a": (2, 3, 4, 4), "b": (2, 3, 4, 4)}, note="a = b + 1e-7",
         derive=_relations(lambda b: b + 1e-7)),
    case({"a": (4, 5), "b": (4, 5)}, note="a = 4 b",
         derive=_relations(lambda b: 4 * b)),
    case({"a": (5,), "b": (5,)}, values={"a": "zero", "b": "zero"}, hint=(
        "Both arrays are zero: the relative error is 0, not NaN. The floor delta in"
        " the denominator of eq-relative-error keeps the quotient defined.")),
    case({"a": (3,), "b": (3,)}, values={"a": "zero"}),
)


def _register(*checks):
    return {check.name: check for check in checks}


#: Every check, by the name of the function it checks.
#:
#: :meta hide-value:
CHECKS = _register(
    ForwardCheck(dense_forward, dense_backward, DENSE_CASES),
    BackwardCheck(dense_forward, dense_backward, ("dx", "dw", "db"), DENSE_CASES),
    ForwardCheck(relu_forward, relu_backward, RELU_CASES),
    BackwardCheck(relu_forward, relu_backward, ("dx",), RELU_CASES),
    FunctionCheck(softmax, SOFTMAX_CASES, outputs=("p",)),
    LossCheck(softmax_cross_entropy, LOSS_CASES),
    ForwardCheck(conv2d_forward, conv2d_backward, CONV_CASES,
                 name="conv2d_forward_naive"),
    ForwardCheck(conv2d_forward, conv2d_backward, CONV_CASES),
    FunctionCheck(im2col, [_im2col_case(*g) for g in _GEOMETRIES], outputs=("cols",)),
    BackwardCheck(conv2d_forward, conv2d_backward, ("dx", "dw", "db"), CONV_CASES,
                  name="conv2d_backward_naive"),
    FunctionCheck(col2im, [_col2im_case(*g) for g in _GEOMETRIES],
                  outputs=("dx_padded",)),
    BackwardCheck(conv2d_forward, conv2d_backward, ("dx", "dw", "db"), CONV_CASES),
    ForwardCheck(maxpool2d_forward, maxpool2d_backward, MAXPOOL_FORWARD_CASES),
    BackwardCheck(maxpool2d_forward, maxpool2d_backward, ("dx",), POOL_CASES),
    ForwardCheck(avgpool2d_forward, avgpool2d_backward, POOL_CASES),
    BackwardCheck(avgpool2d_forward, avgpool2d_backward, ("dx",), POOL_CASES),
    NumericalGradientCheck(),
    FunctionCheck(relative_error, RELATIVE_ERROR_CASES, outputs=("error",)),
    CheckModelCheck(),
)


def _get(name):
    if name not in CHECKS:
        raise ValueError(
            f"name must be one of the checked functions {sorted(CHECKS)}, got {name!r}")
    return CHECKS[name]


def run_check(name, fn, seed=0):
    """Run the check of the function ``name`` on ``fn``; return a ``CheckResult``.

    Parameters
    ----------
    name : str
        A key of ``CHECKS``, the name of the package function that ``fn`` replaces,
        for example ``"conv2d_backward"``.
    fn : callable
        The reader's function, with the signature of the package's.
    seed : int
        Seeds the random cases.

    Returns
    -------
    result : CheckResult
        ``passed``, the ``message`` (the first problem found, or "all N cases pass")
        and one verdict per case.
    """
    return _get(name).run(fn, seed=seed)


def check(name, fn, seed=0):
    """Check the reader's ``fn`` and say in plain words what is wrong, if anything.

    Prints "name: all N cases pass." or raises ``CheckFailed`` whose message names the
    first problem: the case, the output, the relative error and the first wrong entry,
    and how the function does on every case. Arguments as for ``run_check``.
    """
    result = run_check(name, fn, seed=seed)
    if not result.passed:
        raise CheckFailed(result.message)
    print(result.message)


def gradient_check(name, fn, seed=0):
    """The plain gradient check of a backward pass or loss: one dict per case.

    Each dict maps a result of ``fn`` (``"dx"``, ``"dw"``, ...) to its relative error
    against centred finite differences of the forward pass (``None`` for cases where
    finite differences are not meaningful; ``{"raised": name}`` when ``fn`` raised the
    exception ``name``). Unlike ``check``, it does not compare with
    the book's function, nor look at dtypes or modified inputs.
    """
    chosen = _get(name)
    if not hasattr(chosen, "gradient_check"):
        raise ValueError(f"{name} is not a backward pass or a loss; no gradient check")
    return chosen.gradient_check(fn, seed=seed)
