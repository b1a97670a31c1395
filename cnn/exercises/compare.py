"""Comparing the reader's results with the book's, in plain words.

Each helper returns ``None`` when all is well, or a pair (a short verdict, a sentence
for the reader): a wrong type, shape or dtype, a modified input, wrong values (which
output, its relative error eq-relative-error, the first wrong entry), and hints for
common mistakes (a transposed shape, a factor of 2).
"""

from __future__ import annotations

import numpy as np

from cnn.exercises.cases import Case
from cnn.gradcheck import relative_error

# Largest relative error (eq-relative-error) accepted against the book's function. Two
# correct float64 implementations differ by rounding only, about 1e-15.
TOLERANCE = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-4}


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


def _number(value):
    """``value`` as a float if it is one real number (not a bool or a string), else
    ``None``: Python and NumPy ints and floats, and 0-d float or int arrays."""
    if isinstance(value, np.ndarray) and type(value) is np.ndarray and not value.ndim:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        return None
    return float(value)


def _structure(name, got, expected, case, of=""):
    """Type, shape, dtype and finiteness of one output; a problem or ``None``."""
    if not isinstance(got, np.ndarray):
        return f"{name}: not an array", (
            f"{name} should be a NumPy array{of}, but your function returned"
            f" {_what(got)} for it.")
    if type(got) is not np.ndarray:  # a masked array, a matrix, ...
        return f"{name}: not a plain array", (
            f"{name} is a {type(got).__name__}, a subclass of numpy.ndarray whose"
            " arithmetic differs; return a plain array (np.asarray or the result of"
            " ordinary NumPy operations).")
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


def _error_text(error):
    """``TypeError: message``, without a doubled full stop when the message has one."""
    return f"{type(error).__name__}: {str(error).rstrip('.')}"


def _unusable_cache(backward, error, cache):
    """The problem of a reader's cache that the book's ``backward`` (a name) raised
    ``error`` on; ``cache`` is the book's own, of the type to return."""
    return "unusable cache", (
        f"out is right, but the book's {backward} cannot use the cache your function"
        f" returns: {_error_text(error)}. Return a {type(cache).__name__} as the"
        " docstring says.")


def _within(got, expected, tolerance):
    """Whether ``got`` agrees with ``expected``, to a relative error of ``tolerance``.

    A NaN or infinite entry on either side makes the error NaN, which is within no
    tolerance: every comparison of the checks goes through here, so none can pass it.
    """
    with np.errstate(all="ignore"):
        return bool(relative_error(got, expected) <= tolerance)


def _value_problem(name, got, expected, case, fd=None):
    """Relative error against the book's result; ``fd()`` gives finite differences."""
    if not np.isfinite(got).all():
        first = np.argwhere(~np.isfinite(got))[0]
        return f"{name}: NaN or infinity", (
            f"{name} is wrong: it contains NaN or infinity, first at"
            f" {_index(name, first)}, where the book's {name} is"
            f" {expected[tuple(first)]:.6g}.")
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
        if isinstance(before, np.ndarray) and (
                after.shape != before.shape or after.dtype != before.dtype):
            return f"reshaped {name}", (
                f"Your function changed the shape or dtype of its input {name} in"
                f" place, from {before.shape} {before.dtype} to {after.shape}"
                f" {after.dtype} (x.shape = ..., x.resize or x.dtype = ...). The caller"
                " still needs it as it was: use x.reshape(...), which returns a new"
                " view.")
        if isinstance(before, np.ndarray) and not np.array_equal(
                after, before, equal_nan=True):
            differs = after != before
            if after.dtype.kind in "fc":  # NaN != NaN: an unchanged NaN is no change
                differs &= ~(np.isnan(after) & np.isnan(before))
            where = np.argwhere(differs)
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
