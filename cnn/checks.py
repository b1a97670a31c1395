"""Shared input validation for the ``cnn`` package.

Every public function of the package checks its arguments with these helpers, so that a
mistake is reported where it is made, with a message that names the argument, the
expected shape and the shape that was given. Nothing is converted silently: a list, an
integer array or a NaN raises.
"""

from __future__ import annotations

import math
import numbers

import numpy as np


def as_pair(value, name, minimum=1):
    """Return ``value`` as a pair of Python ints ``(vertical, horizontal)``.

    Parameters
    ----------
    value : int or tuple of two ints
        An int ``k`` means ``(k, k)``.
    name : str
        Argument name used in error messages (e.g. ``"stride"``).
    minimum : int
        Smallest allowed value of each entry (1 for a stride or a kernel size, 0 for
        padding).

    Returns
    -------
    pair : tuple of two ints

    Raises
    ------
    TypeError
        If ``value`` is not an int or a pair of ints (booleans are rejected too).
    ValueError
        If a pair does not have two entries or an entry is below ``minimum``.
    """
    items = (value, value) if _is_int(value) else value
    if not isinstance(items, (tuple, list)) or not all(_is_int(v) for v in items):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if len(items) != 2:
        raise ValueError(
            f"{name} must be an int or a pair of ints, "
            f"got {len(items)} values: {value!r}"
        )
    if min(items) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return (int(items[0]), int(items[1]))


def check_int(value, name, minimum=1):
    """Check that ``value`` is an int (not a bool) >= ``minimum``; return it.

    Parameters
    ----------
    value : int
    name : str
        Argument name used in error messages.
    minimum : int

    Returns
    -------
    value : int

    Raises
    ------
    TypeError
        If ``value`` is not an int.
    ValueError
        If it is below ``minimum``.
    """
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_real(value, name, low=-math.inf, high=math.inf, low_inclusive=True,
               high_inclusive=False):
    """Check that ``value`` is a real number (not a bool) in an interval; return it.

    Parameters
    ----------
    value : float
    name : str
        Argument name used in error messages (e.g. ``"lr"``).
    low, high : float
        Ends of the interval.
    low_inclusive, high_inclusive : bool
        Whether each end belongs to it; by default ``[low, high)``, so that infinity
        is refused.

    Returns
    -------
    value : float

    Raises
    ------
    TypeError
        If ``value`` is not a real number.
    ValueError
        If it is NaN or outside the interval; the message shows the interval, such as
        ``[0.0, 1.0)``.
    """
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    above = low <= value if low_inclusive else low < value
    below = value <= high if high_inclusive else value < high
    if not (above and below):
        interval = (f"{'[' if low_inclusive else '('}{float(low)}, {float(high)}"
                    f"{']' if high_inclusive else ')'}")
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return float(value)


def check_rng(rng, name="rng"):
    """Check that ``rng`` is a ``numpy.random.Generator``; return it.

    Raises
    ------
    TypeError
        If it is anything else (a seed, say, or ``numpy.random.RandomState``).
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"{name} must be a numpy.random.Generator (e.g. "
            f"numpy.random.default_rng(0)), got {type(rng).__name__}"
        )
    return rng


def check_array(a, name, dims=None, known=None, finite=True):
    """Check that ``a`` is a finite float array of the expected rank and sizes.

    Parameters
    ----------
    a : object
        The value to check. It must already be a ``numpy.ndarray``; it is never
        converted.
    name : str
        Argument name used in error messages (e.g. ``"x"``).
    dims : tuple of str or int, optional
        One entry per axis, fixing the rank: a symbol such as ``"N"`` (any size) or an
        int (that exact size), e.g. ``("N", "C", "H", "W")``. ``None`` accepts any
        shape.
    known : dict of str to int, optional
        Sizes some symbols must have, e.g. ``{"C": 3}`` when the channel count comes
        from another argument. The message then shows the expected shape as
        ``(N, C=3, H, W)``.
    finite : bool
        Whether to reject NaN and infinity.

    Returns
    -------
    a : numpy.ndarray
        The same object, unchanged.

    Raises
    ------
    TypeError
        If ``a`` is not an ndarray or its dtype is not float32 or float64 (float16
        overflows at 65504 and has no BLAS kernels; it is refused, not promoted).
    ValueError
        If the rank or a known size differs, a symbol's axis is empty (size 0), or
        ``finite`` is set and ``a`` has NaN or infinity.
    """
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"{name} must have a floating-point dtype (float32 or float64), "
            f"got {a.dtype}"
        )
    if dims is not None:
        sizes = [d if _is_int(d) else (known or {}).get(d) for d in dims]
        if a.ndim != len(dims) or any(
            n is not None and n != m for n, m in zip(sizes, a.shape)
        ):
            expected = ", ".join(
                str(d) if _is_int(d) else d if n is None else f"{d}={n}"
                for d, n in zip(dims, sizes)
            )
            expected += "," if len(dims) == 1 else ""
            raise ValueError(
                f"{name} must have shape ({expected}), got shape {a.shape}"
            )
        # An empty axis would give a reshape error, or an output made of biases alone.
        symbols = [d for d in dims if not _is_int(d)]
        if any(m == 0 for d, m in zip(dims, a.shape) if not _is_int(d)):
            raise ValueError(
                f"{name} must have shape ({', '.join(map(str, dims))}) with "
                f"{', '.join(symbols)} >= 1, got shape {a.shape}"
            )
    if finite and not _all_finite(a):
        raise ValueError(f"{name} contains NaN or infinity")
    return a


_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_FINITE_BLOCK = 2**16


def _all_finite(a):
    """``np.isfinite(a).all()`` without a boolean array the size of ``a``.

    Large contiguous arrays are checked a block at a time into one small mask: training
    checks arrays of hundreds of megabytes at every step, and a fresh mask of a quarter
    of their size would cost more than the check.
    """
    if a.size <= _FINITE_BLOCK or not a.flags.c_contiguous:
        return bool(np.isfinite(a).all())
    flat, mask = a.reshape(-1), np.empty(_FINITE_BLOCK, dtype=bool)
    for start in range(0, flat.size, _FINITE_BLOCK):
        block = flat[start : start + _FINITE_BLOCK]
        if not np.isfinite(block, out=mask[: block.size]).all():
            return False
    return True


def check_labels(y, name, n, num_classes=None):
    """Check integer class labels.

    Parameters
    ----------
    y : numpy.ndarray
        Labels, shape ``(N,)``, integer dtype, values in ``0 .. num_classes - 1``.
    name : str
        Argument name used in error messages.
    n : int
        Expected number of labels ``N``.
    num_classes : int, optional
        Number of classes ``K``; ``None`` skips the range check except for negative
        labels.

    Returns
    -------
    y : numpy.ndarray
        The same object, unchanged.

    Raises
    ------
    TypeError
        If ``y`` is not an integer ndarray.
    ValueError
        If its shape is not ``(N,)`` or a label is out of range.
    """
    if not isinstance(y, np.ndarray) or not np.issubdtype(y.dtype, np.integer):
        dtype = getattr(y, "dtype", type(y).__name__)
        raise TypeError(
            f"{name} must be an integer numpy.ndarray of class labels, got {dtype}"
        )
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape (N={n},), got shape {y.shape}")
    top = "K - 1" if num_classes is None else num_classes - 1
    if n and (y.min() < 0 or (num_classes is not None and y.max() >= num_classes)):
        raise ValueError(
            f"{name} must hold labels in 0..{top}, got values in {y.min()}..{y.max()}"
        )
    return y


def check_cache(cache, cache_type, name="cache"):
    """Check that a backward pass got the cache of its forward pass; return it.

    Parameters
    ----------
    cache : object
        The value to check.
    cache_type : type or tuple of types
        The cache's ``NamedTuple`` class, e.g. ``cnn.conv.ConvCache``.
    name : str
        Argument name used in error messages.

    Raises
    ------
    TypeError
        If ``cache`` is not a ``cache_type`` (``None``, say, or another layer's cache).
    """
    if not isinstance(cache, cache_type):
        types = cache_type if isinstance(cache_type, tuple) else (cache_type,)
        raise TypeError(
            f"{name} must be the {' or '.join(t.__name__ for t in types)} returned by "
            f"the forward pass, got {type(cache).__name__}"
        )
    return cache


def check_dout(dout, cache, cache_type, expected):
    """Check a backward pass's cache and upstream gradient; return ``dout`` to use.

    The one contract of every backward pass's ``_check_dout``: the cache is the forward
    pass's, ``dout`` has the shape of the forward output, and the backward pass computes
    in the forward input's dtype (a float64 ``dout`` for a float32 layer is cast).

    Parameters
    ----------
    dout : object
        The upstream gradient to check.
    cache : object
        What the backward pass was given as its forward pass's cache.
    cache_type : type or tuple of types
        The cache's ``NamedTuple`` class(es).
    expected : callable
        ``expected(cache) -> (dims, known, dtype)``: the shape of the forward output as
        ``check_array``'s ``dims`` and ``known``, and the forward input's dtype. Called
        only once the cache's type has been checked.

    Returns
    -------
    dout : numpy.ndarray
        ``dout`` itself, or a copy in ``dtype`` if it has another dtype.

    Raises
    ------
    TypeError, ValueError
        As ``check_cache`` and ``check_array``.
    """
    check_cache(cache, cache_type)
    dims, known, dtype = expected(cache)
    check_array(dout, "dout", dims, known=known)
    return dout.astype(dtype, copy=False)


def check_groups(groups, count, what, symbol):
    """``groups`` as an int that divides ``count`` (channels or filters); else raise.

    The message names both numbers, e.g. "the C=6 channels of x cannot be split into
    groups=4 groups of equal size".
    """
    groups = check_int(groups, "groups")
    if count % groups:
        raise ValueError(
            f"the {symbol}={count} {what} cannot be split into groups={groups} groups "
            "of equal size"
        )
    return groups


def check_dtype(dtype, name="dtype"):
    """Check that ``dtype`` is float32 or float64, as ``check_array`` wants; return it.

    Raises
    ------
    TypeError
        For any other dtype (float16 included) or a value that is not a dtype.
    """
    try:
        found = np.dtype(dtype)
    except TypeError:
        found = None
    if found not in _FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be a floating-point dtype (float32 or float64), got "
            f"{repr(dtype) if found is None else found}"
        )
    return found


def check_positive(value, name):
    """Check that ``value`` is a finite real number > 0 (not a bool); return a float.

    Used for constants such as batch normalisation's ``eps``: an infinite ``eps`` would
    make every normalised value 0, silently.

    Raises
    ------
    TypeError
        If ``value`` is not a real number.
    ValueError
        If it is not finite or not > 0.
    """
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_out(out, shape, dtype, name="out"):
    """Check an ``out=`` array: ``None``, or a writable array of exactly this shape.

    NumPy broadcasts into an ``out`` that is larger than the result and casts into one
    of another dtype, so a wrong ``out`` would give a wrong result without an error.

    Returns
    -------
    out : numpy.ndarray or None
        The same object.

    Raises
    ------
    TypeError
        If ``out`` is not ``None`` or an ndarray of ``dtype``.
    ValueError
        If its shape is not ``shape`` or it is read-only.
    """
    if out is None:
        return None
    if not isinstance(out, np.ndarray) or out.dtype != dtype:
        found = getattr(out, "dtype", type(out).__name__)
        raise TypeError(f"{name} must be a numpy.ndarray of dtype {np.dtype(dtype)}, "
                        f"got {found}")
    if out.shape != tuple(shape):
        raise ValueError(
            f"{name} must have shape {tuple(shape)}, got shape {out.shape}"
        )
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only")
    return out


def check_outs(out, shapes, dtype):
    """Check a tuple of ``out=`` arrays, one per result; return it (``None`` entries).

    Parameters
    ----------
    out : tuple or None
        One array or ``None`` per result; ``None`` means ``(None, None, ...)``.
    shapes : dict of str to tuple
        Result name -> its shape, in the order of ``out``, e.g. ``{"dx": (N, D), ...}``.
    dtype : numpy dtype

    Raises
    ------
    TypeError, ValueError
        As ``check_out``, naming the result (``out dw``); ``TypeError`` if ``out`` is
        not a tuple of one entry per result.
    """
    if out is None:
        return (None,) * len(shapes)
    if not isinstance(out, tuple) or len(out) != len(shapes):
        raise TypeError(
            f"out must be None or a tuple of {len(shapes)} arrays or None "
            f"({', '.join(shapes)}), got {out!r:.60}"
        )
    return tuple(check_out(array, shape, dtype, f"out {name}")
                 for array, (name, shape) in zip(out, shapes.items()))


def check_writable(arrays, name):
    """Check that every array of the dict ``arrays`` is writable, before any is written.

    An optimiser step that found a read-only parameter halfway would leave the model
    half-updated.

    Raises
    ------
    ValueError
        Naming the first read-only entry, ``name[key]``.
    """
    for key, array in arrays.items():
        if isinstance(array, np.ndarray) and not array.flags.writeable:
            raise ValueError(f"{name}[{key!r}] is read-only: nothing was updated")


def check_distinct(items, name):
    """Check that no object appears twice in ``items`` (a list); return the list.

    A layer object used twice in one network would keep only its second cache, so the
    backward pass of its first use would be wrong without an error.

    Raises
    ------
    ValueError
        Naming both positions of the repeated object.
    """
    items = list(items)
    seen = {}
    for index, item in enumerate(items):
        if id(item) in seen:
            raise ValueError(
                f"{name} {seen[id(item)]} and {index} are the same object "
                f"({item!r}); build a new one for each position"
            )
        seen[id(item)] = index
    return items


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
