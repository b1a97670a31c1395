"""Checks that cannot be gamed (cnn.exercises.sandbox and helpers).

While ``check`` runs a reader's function, the book's own solutions are unavailable to
it, however it reaches them; a function that runs past the time limit is stopped; a
right function that calls a wrong helper of the reader's is told which helper is wrong.
The reader's functions are compiled in a namespace of their own, as a notebook's are.
"""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest

import cnn.conv
from cnn import bugzoo, layers
from cnn.exercises import CheckFailed, ReferenceUnavailable, check, run_check
from cnn.exercises.sandbox import references, unavailable


def notebook(source):
    """The functions that a notebook cell with ``source`` defines."""
    scope = {"__name__": "__main__"}
    exec(compile(source, "<notebook cell>", "exec"), scope)
    return scope


CALLS_THE_BOOK = {
    "the module": """
import cnn.conv
def conv2d_backward(dout, cache):
    return cnn.conv.conv2d_backward(dout, cache)
""",
    "an imported name": """
from cnn.conv import conv2d_backward as book
def conv2d_backward(dout, cache):
    return book(dout, cache)
""",
    "the naive twin": """
from cnn.conv import conv2d_backward_naive
def conv2d_backward(dout, cache):
    return conv2d_backward_naive(dout, cache)
""",
    "the tuned twin": """
from cnn.fast.conv import conv2d_backward_fast
def conv2d_backward(dout, cache):
    return conv2d_backward_fast(dout, cache)
""",
    "a default argument, the error caught": """
import cnn.conv
def conv2d_backward(dout, cache, book=cnn.conv.conv2d_backward):
    try:
        return book(dout, cache)
    except Exception:
        return None
""",
    "a layer's backward": """
from cnn.layers import Conv2D
def conv2d_backward(dout, cache):
    F, C, KH, KW = cache.w.shape
    layer = Conv2D(C, F, (KH, KW), stride=cache.stride, padding=cache.padding)
    layer.cache = cache
    dx = layer.backward(dout)
    return dx, layer.grads["w"], layer.grads["b"]
""",
}


@pytest.mark.parametrize("how", sorted(CALLS_THE_BOOK))
def test_a_submission_calling_the_book_s_solution_fails(how):
    fn = notebook(CALLS_THE_BOOK[how])["conv2d_backward"]
    result = run_check("conv2d_backward", fn)
    assert not result.passed
    assert "the book's own solution, which it may not call" in result.message
    assert result.message.startswith("conv2d_backward: your function calls cnn.")
    # Everything is back: the book's function runs again, outside the check.
    x, w, b = (np.ones(s) for s in ((1, 1, 3, 3), (1, 1, 2, 2), (1,)))
    out, cache = cnn.conv.conv2d_forward(x, w, b)
    assert cnn.conv.conv2d_backward(np.ones_like(out), cache)[0].shape == x.shape


def test_check_raises_a_plain_failure_for_a_call_of_the_book_s_solution():
    fn = notebook(CALLS_THE_BOOK["the module"])["conv2d_backward"]
    with pytest.raises(CheckFailed, match="may not call"):
        check("conv2d_backward", fn)


def test_the_book_s_own_function_is_not_a_submission():
    result = run_check("conv2d_backward", cnn.conv.conv2d_backward)
    assert not result.passed
    assert "check got the book's own cnn.conv.conv2d_backward" in result.message


def test_helpers_of_the_set_up_cell_stay_available():
    """im2col is imported in the conv-backward notebook: a submission may call it."""
    fn = notebook("""
from cnn.conv import crop, im2col
def conv2d_backward(dout, cache):
    x_padded, w, stride = cache.x_padded, cache.w, cache.stride
    N, F = dout.shape[:2]
    cols = im2col(x_padded, w.shape[2:], stride)
    d = dout.reshape(N, F, -1)
    dw = (d @ cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
    dx = np.zeros_like(x_padded)
    KH, KW = w.shape[2:]
    for n, f, i, j in np.ndindex(dout.shape):
        rows = slice(stride[0] * i, stride[0] * i + KH)
        columns = slice(stride[1] * j, stride[1] * j + KW)
        dx[n, :, rows, columns] += dout[n, f, i, j] * w[f]
    return crop(dx, cache.padding), dw, d.sum(axis=(0, 2))
import numpy as np
""")["conv2d_backward"]
    assert run_check("conv2d_backward", fn).passed


def test_the_package_s_code_and_the_bug_zoo_run_as_they_are():
    assert run_check("dense_backward", bugzoo.broken_dense_backward_bias_axis).verdicts
    failed = run_check("conv2d_backward", bugzoo.broken_conv2d_backward_no_flip)
    assert "may not call" not in failed.message and failed.verdicts


def test_unavailable_restores_the_functions_even_after_an_error():
    solutions = references("conv2d_backward")
    names = {f"{f.__module__}.{f.__name__}" for f in solutions}
    assert names == {"cnn.conv.conv2d_backward", "cnn.conv.conv2d_backward_naive",
                     "cnn.fast.conv.conv2d_backward_fast"}
    codes = [f.__code__ for f in solutions]
    with pytest.raises(KeyError), unavailable(solutions):
        assert [f.__code__ for f in solutions] != codes
        raise KeyError
    assert [f.__code__ for f in solutions] == codes
    assert issubclass(ReferenceUnavailable, RuntimeError)
    assert layers.Conv2D.backward  # the layer module still imports


LOOPS = {
    "while True": """
def conv2d_backward(dout, cache):
    while True:
        pass
""",
    "a loop that catches the stop once": """
def conv2d_backward(dout, cache):
    try:
        while True:
            pass
    except BaseException:
        pass
    while True:
        pass
""",
}


@pytest.mark.parametrize("how", sorted(LOOPS))
def test_an_endless_loop_is_stopped_within_the_time_limit(how):
    fn = notebook(LOOPS[how])["conv2d_backward"]
    start = time.monotonic()
    result = run_check("conv2d_backward", fn, time_limit=0.5)
    assert time.monotonic() - start < 0.5 + 2.0
    assert not result.passed
    assert "did not finish within 0.5 s" in result.message
    assert "a loop that never ends" in result.message


def test_an_endless_loop_is_stopped_outside_the_main_thread_too():
    """No SIGALRM outside the main thread: the worker-thread fallback stops it."""
    fn = notebook(LOOPS["while True"])["conv2d_backward"]
    found = {}
    worker = threading.Thread(target=lambda: found.update(
        result=run_check("conv2d_backward", fn, time_limit=0.5)))
    start = time.monotonic()
    worker.start()
    worker.join(10)
    assert time.monotonic() - start < 0.5 + 3.0
    assert "did not finish within 0.5 s" in found["result"].message


def test_a_slow_but_finished_call_within_the_limit_passes():
    fn = notebook("""
import time
import numpy as np
from cnn.activations import ReLUCache
def relu_forward(x):
    time.sleep(0.01)
    return np.maximum(x, 0), ReLUCache(x)
""")["relu_forward"]
    assert run_check("relu_forward", fn, time_limit=5).passed


COL2IM_AND_CONV = """
import numpy as np
from cnn.conv import crop, im2col

def col2im(dcols, x_padded_shape, kernel_size, stride):
    N, C, Hp, Wp = x_padded_shape
    (KH, KW), (SH, SW) = kernel_size, stride
    H_out, W_out = (Hp - KH) // SH + 1, (Wp - KW) // SW + 1
    dx = np.zeros(x_padded_shape, dtype=dcols.dtype)
    blocks = dcols.reshape(N, C, KH, KW, H_out, W_out)
    for p in range(KH):
        for q in range(KW):
            window = (slice(None), slice(None), slice(p, p + SH * H_out, SH),
                      slice(q, q + SW * W_out, SW))
            dx[window] OP blocks[:, :, p, q]
    return dx

def conv2d_backward(dout, cache):
    x_padded, w, stride = cache.x_padded, cache.w, cache.stride
    cols = im2col(x_padded, w.shape[2:], stride) if cache.cols is None else cache.cols
    N, F = dout.shape[:2]
    dout = dout.reshape(N, F, -1)
    db = dout.sum(axis=(0, 2))
    dw = (dout @ cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
    dcols = w.reshape(F, -1).T @ dout
    dx_padded = col2im(dcols, x_padded.shape, w.shape[2:], stride)
    return crop(dx_padded, cache.padding), dw, db
"""


def test_a_right_function_with_a_wrong_helper_names_the_helper():
    right = notebook(COL2IM_AND_CONV.replace("OP", "+="))
    assert run_check("col2im", right["col2im"]).passed
    assert run_check("conv2d_backward", right["conv2d_backward"]).passed
    # Overlapping windows overwrite instead of adding up: col2im is wrong.
    wrong = notebook(COL2IM_AND_CONV.replace("OP", "="))
    text = run_check("conv2d_backward", wrong["conv2d_backward"]).message
    assert text.startswith("conv2d_backward fails, and it calls your col2im, which"
                           " fails its own check.")
    assert "the mistake is in your col2im, not in conv2d_backward" in text
    assert re.search(r"col2im fails case 1 of \d+: dcols", text)
    assert wrong["col2im"] is not cnn.conv.col2im, "the reader's col2im is put back"


# -- the exercises of the modern part: the same guards ----------------------------------

MODERN_CALLS = {
    "residual_forward": """
from cnn.layers import Residual
def residual_forward(x, body, shortcut=None):
    return Residual(body, shortcut).forward(x)
""",
    "residual_backward": """
from cnn.layers import Residual
def residual_backward(dout, body, shortcut=None):
    return Residual(body, shortcut).backward(dout)
""",
    "im2col_dilated": """
import cnn.conv
def im2col(x_padded, kernel_size, stride, dilation=(1, 1)):
    return cnn.conv.im2col(x_padded, kernel_size, stride, dilation)
""",
    "conv2d_forward_dilated_grouped": """
from cnn.fast.conv import conv2d_forward_fast
def conv2d_forward(x, w, b, stride=1, padding=0, dilation=1, groups=1):
    return conv2d_forward_fast(x, w, b, stride, padding, dilation, groups)
""",
    "conv2d_backward_dilated_grouped": """
import cnn.conv
def conv2d_backward(dout, cache):
    return cnn.conv.conv2d_backward_naive(dout, cache)
""",
    "normalize_backward": """
from cnn.norm import normalize_backward as book
def normalize_backward(dx_hat, cache):
    return book(dx_hat, cache)
""",
    "groupnorm_forward": """
from cnn.norm import GroupNorm
def groupnorm_forward(x, gamma, beta, groups, eps=1e-5):
    layer = GroupNorm(groups, x.shape[1], dtype=x.dtype)
    layer.params["gamma"], layer.params["beta"] = gamma, beta
    return layer.forward(x), layer.cache
""",
}


@pytest.mark.parametrize("name", sorted(MODERN_CALLS))
def test_a_modern_submission_calling_the_book_s_solution_fails(name):
    scope = notebook(MODERN_CALLS[name])
    fn = next(v for k, v in scope.items() if name.startswith(k) and callable(v))
    result = run_check(name, fn)
    assert not result.passed
    assert "the book's own solution, which it may not call" in result.message


@pytest.mark.parametrize("name", sorted(MODERN_CALLS))
def test_a_modern_submission_looping_forever_is_stopped(name):
    fn = notebook("def endless(*args, **kwargs):\n    while True:\n        pass\n")["endless"]
    start = time.monotonic()
    result = run_check(name, fn, time_limit=0.5)
    assert time.monotonic() - start < 0.5 + 2.0
    assert "did not finish within 0.5 s" in result.message


IM2COL_AND_GROUPED_CONV = """
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from cnn.conv import ConvCache, pad

def im2col(x_padded, kernel_size, stride, dilation=(1, 1)):
    (N, C), (KH, KW), (SH, SW), (DH, DW) = x_padded.shape[:2], kernel_size, stride, dilation
    (DH, DW) = (DH, DW) if SPREAD else (1, 1)
    span = (DH * (KH - 1) + 1, DW * (KW - 1) + 1)
    windows = sliding_window_view(x_padded, span, axis=(2, 3))
    windows = windows[:, :, ::SH, ::SW, ::DH, ::DW]
    H_out, W_out = windows.shape[2:4]
    return windows.transpose(0, 1, 4, 5, 2, 3).reshape(N, C * KH * KW, H_out * W_out)

def conv2d_forward(x, w, b, stride=1, padding=0, dilation=1, groups=1):
    pair = lambda v: v if isinstance(v, tuple) else (v, v)
    stride, padding, dilation = pair(stride), pair(padding), pair(dilation)
    x_padded = pad(x, padding)
    cols = im2col(x_padded, w.shape[2:], stride, dilation)
    N, F, G = x.shape[0], w.shape[0], groups
    out = w.reshape(G, F // G, -1) @ cols.reshape(N, G, -1, cols.shape[2])
    (H_out, W_out) = [(n - (d * (k - 1) + 1)) // s + 1 for n, k, s, d in
                      zip(x_padded.shape[2:], w.shape[2:], stride, dilation)]
    out = out.reshape(N, F, H_out, W_out) + b[:, None, None]
    return out, ConvCache(x_padded, w, stride, padding, cols, dilation, G)
"""


def test_a_variant_check_names_the_helper_checked_on_the_same_kind_of_cases():
    """A grouped conv2d_forward that calls an im2col ignoring the dilation: im2col passes
    its plain check, so the message names im2col's dilated check."""
    right = notebook(IM2COL_AND_GROUPED_CONV.replace("SPREAD", "True"))
    assert run_check("conv2d_forward_dilated_grouped", right["conv2d_forward"]).passed
    wrong = notebook(IM2COL_AND_GROUPED_CONV.replace("SPREAD", "False"))
    assert run_check("im2col", wrong["im2col"]).passed
    text = run_check("conv2d_forward_dilated_grouped", wrong["conv2d_forward"]).message
    assert text.startswith("conv2d_forward_dilated_grouped fails, and it calls your"
                           " im2col, which fails its own check.")
    assert "the mistake is in your im2col, not in conv2d_forward_dilated_grouped" in text
    assert "What check('im2col_dilated', im2col) says:" in text
    assert ("What check('conv2d_forward_dilated_grouped', conv2d_forward) says:"
            in text)
