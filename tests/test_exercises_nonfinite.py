"""The exercise checker never lets a NaN or an infinity pass, and words what it saw exactly.

Found by mutation testing of cnn/exercises (tests/MUTATION.md): a relative error of NaN
compared with ``>`` is never above the tolerance, so a forward pass whose cache made the
book's backward pass compute inf passed every case.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnn.dense import DenseCache
from cnn.exercises import CheckFailed, check
from cnn.exercises.compare import _changed, _error_text, _within


def test_a_nan_or_infinite_result_is_within_no_tolerance():
    e = np.array([1.0, 2.0])
    assert _within(e.copy(), e, 1e-9)
    assert not _within(np.array([1.0, 2.1]), e, 1e-9)
    for bad in (np.nan, np.inf, -np.inf):
        assert not _within(np.array([1.0, bad]), e, 1e9)
        assert not _within(e, np.array([bad, 2.0]), 1e9)


def dense_forward(x, w, b):
    """Right out, and a cache from which the book's dense_backward computes inf."""
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, DenseCache(np.full_like(x, np.inf), w)


def test_a_forward_pass_whose_cache_gives_an_infinite_gradient_fails():
    with pytest.raises(CheckFailed) as failed:
        check("dense_forward", dense_forward)
    text = str(failed.value)
    assert "out is right, but the cache is not" in text
    assert "dw is wrong: it contains NaN or infinity, first at dw[0, 0]" in text
    assert "nan times" not in text and "relative error nan" not in text


def test_under_raising_floating_point_errors_the_verdict_is_the_same():
    """The book's backward runs with its own error state: a caller's np.seterr does not
    turn "wrong cache" into "unusable cache"."""
    with np.errstate(all="raise"), pytest.raises(CheckFailed) as failed:
        check("dense_forward", dense_forward)
    assert "FAIL (wrong cache)" in str(failed.value)
    assert "unusable cache" not in str(failed.value)


def test_an_unchanged_nan_is_not_reported_as_the_change():
    before = np.array([np.nan, 1.0, 2.0])
    after = np.array([np.nan, 1.0, 5.0])
    summary, text = _changed({"x": (after, before)})
    assert summary == "modified x" and "first at x[2]" in text
    assert _changed({"x": (before.copy(), before)}) is None
    ints = np.arange(3)
    assert "first at x[1]" in _changed({"x": (np.array([0, 7, 2]), ints)})[1]


@pytest.mark.parametrize("message", ["no cache.", "no cache"])
def test_an_error_message_keeps_one_full_stop(message):
    assert _error_text(ValueError(message)) == "ValueError: no cache"
