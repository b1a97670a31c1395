"""What a check is, and the checks of functions whose cases are arrays.

``Check.run`` runs a function on every case and reports the first problem; a
``FunctionCheck`` compares results value for value, a ``ForwardCheck`` a forward pass
and its cache, a ``BackwardCheck`` a backward pass (also against finite differences of
the forward pass) and a ``LossCheck`` a loss and its gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnn.exercises.calling import _call, _NotWritten, _Raised
from cnn.exercises.compare import (
    TOLERANCE,
    _as_tuple,
    _changed,
    _copy,
    _fields,
    _number,
    _structure,
    _unpack,
    _unusable_cache,
    _value_problem,
    _what,
    _within,
)
from cnn.gradcheck import numerical_gradient, relative_error


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
            number = _number(got)
            if number is None:
                return "not a number", (
                    f"Your function returned {_what(got)}; it should return one"
                    " number (a float).")
            got = (np.asarray(number, dtype=expected[0].dtype),)
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


def not_a_pair(got, cache):
    """The problem of a forward pass that does not return ``(out, cache)``, or None."""
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return "not (out, cache)", (
            f"Your function returned {_what(got)}; it should return a pair (out,"
            f" cache): the output and the {type(cache).__name__} that the backward pass"
            " needs.")
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
        problem = not_a_pair(got, cache)
        if problem:
            return problem
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
            return _unusable_cache(backward, error, cache)
        for grad, g, e in zip(self.grads, from_theirs, expected):
            if (not isinstance(g, np.ndarray) or g.shape != e.shape
                    or not _within(g, e, TOLERANCE[np.dtype(e.dtype)])):
                wrong = _value_problem(grad, g, e, case) if g.shape == e.shape else None
                detail = wrong[1] if wrong else f"{grad} has the wrong shape."
                return "wrong cache", (
                    f"out is right, but the cache is not: from it the book's {backward}"
                    f" computes a wrong gradient. {detail}")
        return None


class BackwardCheck(Check):
    """A backward pass, given the cache of the book's forward pass.

    ``grads`` name the results, one per array argument of ``forward`` in order.
    ``also`` names other forward passes whose caches the backward pass must accept
    (``conv2d_forward_naive``'s cache has no im2col matrix): every case is run with
    the cache of each.
    """

    def __init__(self, forward, backward, grads, cases, name=None, also=()):
        self.forward, self.backward, self.grads = forward, backward, grads
        self.cases, self.also = cases, tuple(also)
        self.name = name or backward.__name__

    def _setup(self, case, rng, forward=None):
        arrays = case.arrays(rng)
        out, cache = (forward or self.forward)(*arrays.values(), **case.kwargs)
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
        state = rng.bit_generator.state
        for forward in (self.forward, *self.also):
            rng.bit_generator.state = state  # the same arrays for every forward pass
            problem = self._check_with(fn, case, rng, forward)
            if problem and forward is not self.forward:
                return problem[0], f"With the cache of {forward.__name__}: {problem[1]}"
            if problem:
                return problem
        return None

    def _check_with(self, fn, case, rng, forward):
        arrays, cache, dout = self._setup(case, rng, forward)
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
        tolerance = TOLERANCE[np.dtype(dout.dtype)]
        wrong = [i for i, (g, e) in enumerate(zip(got, expected))
                 if not _within(g, e, tolerance)]
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
        if _number(got_loss) is None:
            kind = getattr(got_loss, "dtype", None) or _what(got_loss)
            return "loss: not a number", (
                f"loss is {kind}, not a real number: return a float (float(...)).")
        got_loss = _number(got_loss)
        if not np.isfinite(got_loss):
            return "loss: not finite", (
                f"loss is {got_loss}: exp or log overflowed. Compute log softmax with"
                " the log-sum-exp trick (eq-logsumexp) instead of log(softmax(...)).")
        # Rounding of the logits' dtype: a float32 loss summed in float64 is right too.
        tolerance = TOLERANCE[np.dtype(logits.dtype)]
        if abs(got_loss - loss) > tolerance * max(1.0, abs(loss)):
            N = logits.shape[0]
            sum_hint = (" That is N times the right value: the sum over the batch"
                        " instead of the mean?" if abs(got_loss - N * loss)
                        <= tolerance * max(1.0, abs(N * loss)) and N > 1 else "")
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
                dlogits = fn(logits.copy(), y)[1]
                numeric = numerical_gradient(lambda v: fn(v, y)[0], logits.copy())
            except Exception as error:  # a broken function may raise anything
                rows.append({"raised": type(error).__name__})
                continue
            rows.append({"dlogits": relative_error(dlogits, numeric)})
        return rows


def _join(names):
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
