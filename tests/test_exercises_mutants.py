"""The exercise checker's messages, defaults and tolerances, word for word (issue 27).

Mutation testing (tests/MUTATION.md) showed which of the checker's verdicts and
sentences no test pinned: the wording of each failure, the default seed, the float32
tolerance of a loss and of a cache, the names in a message, the rows of the plain
gradient check. Each test here states one of them for a function a reader could write.
"""

from __future__ import annotations

import functools
import json
import re
import signal
import tempfile
import threading
import types
from pathlib import Path

import nbformat
import numpy as np
import pytest
from test_sandbox import COL2IM_AND_CONV, notebook

from cnn import bugzoo, exercises
from cnn.activations import ReLUCache, relu_backward, relu_forward, softmax
from cnn.conv import conv2d_backward
from cnn.dense import DenseCache, dense_backward, dense_forward
from cnn.exercises import (
    BackwardCheck,
    CheckFailed,
    ForwardCheck,
    FunctionCheck,
    LossCheck,
    case,
    compare,
    grading,
    helpers,
    sandbox,
)
from cnn.exercises.checks import Check
from cnn.losses import softmax_cross_entropy


def run(name, fn, **kwargs):
    """The check without its sandbox: several functions here call the book's own."""
    return exercises._get(name).run(fn, **kwargs)


def detail(result):
    """The sentence that says what is wrong: the second line of a failure."""
    assert result.passed is False and result.name in result.message.split(" ")[0]
    return result.message.split("\n")[1]


def first_verdict(result):
    return next(v for v in result.verdicts if v is not None)


# -- what a check is -----------------------------------------------------------------


def test_ipython_shows_the_first_line_with_the_class_name_and_the_others_as_they_are():
    error = CheckFailed("relu_forward fails case 1 of 4.\nout is wrong.\nIt passes 0")
    assert error._render_traceback_() == [
        "CheckFailed: relu_forward fails case 1 of 4.", "out is wrong.", "It passes 0"]


def test_a_check_is_named_after_its_function_unless_given_a_name():
    cases = [case({"x": (2, 3)})]
    plain = FunctionCheck(softmax, cases)
    assert (plain.name, plain.reference, plain.cases, plain.outputs) == (
        "softmax", softmax, cases, ("out",))
    assert FunctionCheck(softmax, cases, name="soft").name == "soft"
    forward = ForwardCheck(relu_forward, relu_backward, cases)
    assert (forward.name, forward.forward, forward.backward, forward.cases,
            forward.grads) == ("relu_forward", relu_forward, relu_backward, cases,
                               ("dx", "dw", "db"))
    assert ForwardCheck(relu_forward, relu_backward, cases, name="f").name == "f"
    backward = BackwardCheck(relu_forward, relu_backward, ("dx",), cases)
    assert (backward.name, backward.also) == ("relu_backward", ())
    assert BackwardCheck(relu_forward, relu_backward, ("dx",), cases,
                         name="b").name == "b"
    loss = LossCheck(softmax_cross_entropy, cases)
    assert (loss.name, loss.reference, loss.cases) == (
        "softmax_cross_entropy", softmax_cross_entropy, cases)
    assert LossCheck(softmax_cross_entropy, cases, name="ce").name == "ce"
    with pytest.raises(NotImplementedError):
        Check().check_case(None, None, None)


def seen_by(name, **kwargs):
    """The first array argument of every call of a correct function during a check."""
    seen = []
    reference = {"softmax": softmax, "dense_forward": dense_forward,
                 "dense_backward": dense_backward,
                 "softmax_cross_entropy": softmax_cross_entropy}[name]

    def recording(first, *args):
        seen.append(np.array(first))
        return reference(first, *args)

    assert run(name, recording, **kwargs).passed
    return seen


@pytest.mark.parametrize("name", ["softmax", "dense_forward", "dense_backward",
                                  "softmax_cross_entropy"])
def test_the_default_seed_is_0_the_one_students_practise_on(name):
    default, zero, one = seen_by(name), seen_by(name, seed=0), seen_by(name, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(default, zero, strict=True))
    assert not np.array_equal(default[0], one[0])


def test_a_result_names_its_check_and_passed_is_a_bool():
    passed = run("dense_backward", dense_backward)
    assert (passed.name, passed.passed) == ("dense_backward", True)
    failed = run("dense_backward", lambda dout, cache: dense_backward(2 * dout, cache))
    assert (failed.name, failed.passed) == ("dense_backward", False)
    lines = failed.message.split("\n")
    assert lines[0] == ("dense_backward fails case 1 of 5: x (4, 3), w (3, 2), b (2,).")
    assert lines[2] == "It passes 0 of 5 cases:", "case 1 has no hint to add"
    assert lines[3].startswith("  case 1: x (4, 3), w (3, 2), b (2,): FAIL (dx: wrong")
    assert len(lines) == 3 + 5


def test_an_untouched_stub_is_told_what_to_replace():
    def stub(dout, cache):
        raise NotImplementedError

    result = run("dense_backward", stub)
    assert (result.name, result.passed) == ("dense_backward", False)
    assert result.message == (
        "dense_backward is not written yet: it still raises NotImplementedError."
        " Replace the line `raise NotImplementedError` with your code, run that cell,"
        " then run this check again.")


def test_an_exception_is_the_verdict_of_its_case():
    def typo(dout, cache):
        raise ValueError("matmul: shapes differ")

    result = run("dense_backward", typo)
    assert result.verdicts == ("raised ValueError",) * 5
    assert detail(result).startswith("Your function raised ValueError: matmul: shapes")


def test_a_called_function_is_told_how_to_pass_it():
    result = run("dense_backward", 3.0)
    assert (result.name, result.passed) == ("dense_backward", False)
    assert result.message == (
        "dense_backward: check needs your function itself, got a float (write"
        " check('dense_backward', dense_backward), without calling it).")


# -- FunctionCheck ---------------------------------------------------------------------


def test_a_function_of_one_number_that_returns_text_is_told_to_return_a_float():
    result = run("relative_error", lambda a, b: "small")
    assert first_verdict(result) == "not a number"
    assert detail(result) == ("Your function returned a str; it should return one"
                              " number (a float).")


def test_a_python_float_for_a_float32_number_has_the_right_dtype():
    check = FunctionCheck(lambda a: np.float32(a.sum()),
                          [case({"a": (3,)}, dtype=np.float32)], outputs=("total",))
    assert check.run(lambda a: float(a.sum())).passed


def test_a_function_of_two_results_is_told_how_many_it_returns():
    check = FunctionCheck(lambda a: (a, 2 * a), [case({"a": (3,)})],
                          outputs=("u", "v"))
    assert check.run(lambda a: (a.copy(), 2 * a)).passed
    result = check.run(lambda a: a.copy())
    assert first_verdict(result) == "wrong number of results"
    assert detail(result) == ("Your function returned an array of shape (3,); it should"
                              " return 2 values, (u, v).")


def test_a_softmax_overflowing_on_large_logits_is_told_the_case_s_hint_once():
    def unshifted(z):
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)

    result = run("softmax", unshifted)
    assert re.fullmatch(r"p contains NaN or infinity, first at p\[\d+, \d+\]\. These"
                        r" logits are large: .*\(eq-softmax-shift\)\.", detail(result))
    assert "Hint:" not in result.message


def test_a_softmax_that_shifts_its_input_in_place_is_named():
    def in_place(z):
        z -= z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)

    result = run("softmax", in_place)
    assert first_verdict(result) == "modified z"
    assert detail(result).startswith("Your function changed its input z in place")


def test_a_softmax_off_by_the_batch_size_is_named_by_its_output():
    result = run("softmax", lambda z: z.shape[0] * softmax(z))
    assert detail(result).startswith("p is wrong: relative error")
    assert detail(result).endswith("That is N = 4, the batch size: a missing 1/N?")


# -- ForwardCheck ----------------------------------------------------------------------


def test_a_forward_pass_returning_three_things_is_not_a_pair():
    result = run("dense_forward", lambda x, w, b: (x @ w + b, DenseCache(x, w), 0))
    assert first_verdict(result) == "not (out, cache)"
    assert detail(result) == (
        "Your function returned a tuple of 3 values; it should return a pair (out,"
        " cache): the output and the DenseCache that the backward pass needs.")


def test_a_forward_pass_with_nan_at_the_zeros_is_told_the_case_s_hint():
    def nan_at_zero(x):
        out = np.maximum(x, 0)
        out[x == 0] = np.nan
        return out, ReLUCache(x)

    result = run("relu_forward", nan_at_zero)
    assert re.fullmatch(r"out contains NaN or infinity, first at out\[\d+, \d+\]\. x"
                        r" has exact zeros here: .*use x > 0, not x >= 0\.",
                        detail(result))
    assert "Hint:" not in result.message


def test_a_forward_pass_off_by_the_batch_size_is_named():
    result = run("dense_forward", lambda x, w, b: (x.shape[0] * (x @ w + b),
                                                   DenseCache(x, w)))
    assert detail(result).startswith("out is wrong: relative error")
    assert detail(result).endswith("That is N = 4, the batch size: a missing 1/N?")


def test_a_cache_the_backward_pass_cannot_use_is_named_with_its_class():
    result = run("dense_forward", lambda x, w, b: (x @ w + b, "cache"))
    assert first_verdict(result) == "unusable cache"
    assert re.fullmatch(r"out is right, but the book's dense_backward cannot use the"
                        r" cache your function returns: TypeError: .+\. Return a"
                        r" DenseCache as the docstring says\.", detail(result))


def test_a_cache_giving_a_wrong_gradient_says_which_and_by_what_factor():
    result = run("dense_forward", lambda x, w, b: (x @ w + b,
                                                   DenseCache(x, x.shape[0] * w)))
    assert first_verdict(result) == "wrong cache"
    text = detail(result)
    assert text.startswith("out is right, but the cache is not: from it the book's"
                           " dense_backward computes a wrong gradient. dx is wrong:"
                           " relative error")
    assert text.endswith("That is N = 4, the batch size: a missing 1/N?")


def test_a_float32_cache_within_float32_rounding_passes():
    def nudged(x, w, b):
        # One unit in the last place of the cache's w: rounding, not a mistake.
        return x @ w + b, DenseCache(x, np.nextafter(w, np.inf))

    assert run("dense_forward", nudged).passed


# -- BackwardCheck ---------------------------------------------------------------------


def test_a_backward_pass_that_needs_the_fast_forward_s_cache_is_told_which_cache():
    def needs_cols(dout, cache):
        dx, dw, db = conv2d_backward(dout, cache)
        return (dx if cache.cols is not None else 2 * dx), dw, db

    result = run("conv2d_backward", needs_cols)
    assert first_verdict(result).startswith("dx: wrong values")
    assert detail(result).startswith(
        "With the cache of conv2d_forward_naive: dx is wrong: relative error")


def scale_check(cases=None):
    def scale_forward(x, gamma):
        return x * gamma, (x, gamma)

    def scale_backward(dout, cache):
        x, gamma = cache
        return dout * gamma, (dout * x).sum(axis=0)

    return BackwardCheck(scale_forward, scale_backward, ("dx", "dgamma"),
                         cases or [case({"x": (4, 3), "gamma": (3,)})])


def test_a_backward_pass_of_two_results_is_told_their_order():
    result = scale_check().run(lambda dout, cache: dout * cache[1])
    assert detail(result) == ("Your function returned an array of shape (4, 3); it"
                              " should return 2 values, (dx, dgamma) in that order.")


def test_which_gradients_are_wrong_and_which_right_in_plain_words():
    def wrong_x_and_w(dout, cache):
        dx, dw, db = dense_backward(dout, cache)
        return -dx, -dw, db

    text = detail(run("dense_backward", wrong_x_and_w))
    assert text.endswith(" dw is wrong too. db is right.")
    text = detail(run("dense_backward", lambda dout, cache: tuple(
        -g for g in dense_backward(dout, cache))))
    assert text.endswith(" dw and db are wrong too.")


def four_check():
    def forward(a, b, c, d):
        return a * b + c * d, (a, b, c, d)

    def backward(dout, cache):
        a, b, c, d = cache
        return dout * b, dout * a, dout * d, dout * c

    return BackwardCheck(forward, backward, ("da", "db", "dc", "dd"),
                         [case({"a": (3,), "b": (3,), "c": (3,), "d": (3,)})])


def test_three_right_gradients_are_listed_with_commas_and_and():
    check = four_check()
    text = detail(check.run(lambda dout, cache: (
        -dout * cache[1], dout * cache[0], dout * cache[3], dout * cache[2])))
    assert text.endswith(" db, dc and dd are right.")
    text = detail(check.run(lambda dout, cache: (
        -dout * cache[1], -dout * cache[0], -dout * cache[3], dout * cache[2])))
    assert text.endswith(" db and dc are wrong too. dd is right.")


def test_the_plain_gradient_check_has_one_row_per_case():
    rows = exercises.gradient_check("relu_backward", relu_backward)
    assert len(rows) == len(exercises.RELU_CASES) == 4
    assert rows[2] is None and rows[3] is None and rows[1]["dx"] < 1e-7
    assert rows == exercises.gradient_check("relu_backward", relu_backward, seed=0)
    assert rows != exercises.gradient_check("relu_backward", relu_backward, seed=1)


def test_the_plain_gradient_check_names_what_a_function_raised():
    def index_error(dout, cache):
        raise IndexError("out of range")

    rows = exercises.gradient_check("relu_backward", index_error)
    assert rows == [{"raised": "IndexError"}] * 2 + [None, None]
    rows = exercises.gradient_check("softmax_cross_entropy", lambda z, y: [][0])
    assert rows == [{"raised": "IndexError"}] * 4 + [None]


# -- LossCheck -------------------------------------------------------------------------


def loss_detail(fn):
    return detail(run("softmax_cross_entropy", fn))


def test_a_loss_with_one_result_is_told_both_and_their_order():
    assert loss_detail(lambda z, y: softmax_cross_entropy(z, y)[0]) == (
        "Your function returned a float; it should return 2 values, (loss, dlogits)"
        " in that order.")


def test_a_loss_per_sample_is_told_to_average():
    def per_sample(z, y):
        return -log_probabilities(z)[np.arange(len(y)), y], softmax(z)

    result = run("softmax_cross_entropy", per_sample)
    assert first_verdict(result) == "loss: not one number"
    assert detail(result) == ("loss has shape (4,): the loss of a batch is one number,"
                              " the mean over the batch (eq-softmax-ce).")


def log_probabilities(z):
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("loss, kind", [("1.2", "a str"),
                                        (np.array(1 + 2j), "complex128"),
                                        (np.array("1.2"), "<U3")])
def test_a_loss_that_is_not_a_real_number_is_named(loss, kind):
    result = run("softmax_cross_entropy",
                 lambda z, y: (loss, softmax_cross_entropy(z, y)[1]))
    assert first_verdict(result) == "loss: not a number"
    assert detail(result) == (f"loss is {kind}, not a real number: return a float"
                              " (float(...)).")


def test_an_overflowing_loss_is_told_the_log_sum_exp_trick():
    result = run("softmax_cross_entropy",
                 lambda z, y: (float("inf"), softmax_cross_entropy(z, y)[1]))
    assert first_verdict(result) == "loss: not finite"
    assert detail(result) == (
        "loss is inf: exp or log overflowed. Compute log softmax with the log-sum-exp"
        " trick (eq-logsumexp) instead of log(softmax(...)).")


def test_a_wrong_loss_gets_the_sum_hint_only_when_it_is_the_sum():
    def plus_one(z, y):
        loss, dz = softmax_cross_entropy(z, y)
        return loss + 1.0, dz

    result = run("softmax_cross_entropy", plus_one)
    assert first_verdict(result) == "loss: wrong value"
    assert re.fullmatch(r"loss is [-0-9.e]+, expected [-0-9.e]+\.", detail(result))

    def summed(z, y):
        loss, dz = softmax_cross_entropy(z, y)
        return len(y) * loss, dz

    assert re.fullmatch(r"loss is [-0-9.e]+, expected [-0-9.e]+\. That is N times the"
                        r" right value: the sum over the batch instead of the mean\?",
                        loss_detail(summed))


def zero_logits(N, C, dtype=np.float64):
    """Logits all 0: the loss is log C, whatever the labels."""
    return LossCheck(softmax_cross_entropy,
                     [case({"logits": (N, C)}, values={"logits": "zero"}, dtype=dtype)])


def shifted_loss(offset, factor=1):
    def fn(z, y):
        loss, dz = softmax_cross_entropy(z, y)
        return factor * float(loss) + offset, dz
    return fn


def test_a_float32_loss_is_allowed_float32_rounding_relative_to_its_size():
    # log 2 < 1: the allowed difference is 1e-4 itself; log 20 = 3.0: three times it.
    assert not zero_logits(4, 2, np.float32).run(shifted_loss(1.5e-4)).passed
    assert zero_logits(4, 20, np.float32).run(shifted_loss(2e-4)).passed


def test_the_sum_hint_allows_rounding_relative_to_the_sum():
    # N = 2, loss log 2: the sum is 1.386, so it may differ by 1.386e-9 in float64.
    check = zero_logits(2, 2)
    assert "That is N times" in detail(check.run(shifted_loss(0, factor=2)))
    assert "That is N times" not in detail(check.run(shifted_loss(1.7e-9, factor=2)))
    # float32, N = 4, loss log 20: the sum 12 may differ by 1.2e-3.
    summed = detail(zero_logits(4, 20, np.float32).run(shifted_loss(5e-4, factor=4)))
    assert "That is N times" in summed


def test_dlogits_of_the_wrong_shape_or_with_nan_is_named():
    result = run("softmax_cross_entropy",
                 lambda z, y: (softmax_cross_entropy(z, y)[0], softmax(z).T.copy()))
    assert first_verdict(result) == "dlogits: wrong shape"
    assert detail(result) == ("dlogits has shape (3, 4), expected (4, 3). That is the"
                              " transposed shape.")

    def nan_when_large(z, y):
        loss, dz = softmax_cross_entropy(z, y)
        return loss, (dz if np.abs(z).max() < 100 else np.full_like(dz, np.nan))

    result = run("softmax_cross_entropy", nan_when_large)
    assert first_verdict(result) == "dlogits: NaN or infinity"
    assert re.fullmatch(r"dlogits contains NaN or infinity, first at dlogits\[0, 0\]\."
                        r" These logits are large: .*underflows to log\(0\)\.",
                        detail(result))


@pytest.mark.parametrize("argument", ["logits", "y"])
def test_a_loss_that_modifies_its_input_is_named(argument):
    def modifies(z, y):
        loss, dz = softmax_cross_entropy(z, y)
        (z if argument == "logits" else y)[0] += 1
        return loss, dz

    result = run("softmax_cross_entropy", modifies)
    assert first_verdict(result) == f"modified {argument}"
    assert detail(result).startswith(f"Your function changed its input {argument} in"
                                     f" place, first at {argument}[0")


def test_a_wrong_dlogits_is_compared_with_finite_differences():
    text = loss_detail(lambda z, y: (softmax_cross_entropy(z, y)[0], softmax(z)))
    assert text.startswith("dlogits is wrong: relative error")
    assert "Centred finite differences of the forward pass agree with the book's" \
           " dlogits" in text


def test_the_labels_of_a_loss_case_are_every_class():
    labels = []

    def recording(z, y):
        labels.append((z.shape[1], set(y.tolist())))
        return softmax_cross_entropy(z, y)

    assert run("softmax_cross_entropy", recording).passed
    assert 0 in set().union(*(seen for _, seen in labels))
    assert all(max(seen) < C for C, seen in labels)


def test_the_plain_gradient_check_of_a_loss_is_reproducible_with_a_row_per_case():
    rows = exercises.gradient_check("softmax_cross_entropy", softmax_cross_entropy)
    assert len(rows) == 5 and rows[4] is None
    assert rows == exercises.gradient_check("softmax_cross_entropy",
                                            softmax_cross_entropy, seed=0)


# -- compare: the wording of a difference ----------------------------------------------


def test_what_a_value_is_in_words():
    assert compare._what((1, 2)) == "a tuple of 2 values"
    assert compare._what([1]) == "a list of 1 values"
    assert compare._what(3.0) == "a float"
    assert compare._what(np.zeros((2, 3))) == "an array of shape (2, 3)"


AXES = (" Check the axes you sum over, and the order of the factors of your"
        " products.")
PADDED = (" That is the size of the padded input: the padding zeros are constants, not"
          " inputs, so their gradient is cropped off (eq-conv-dx).")


def test_a_wrong_shape_gets_the_hint_of_its_likely_mistake():
    hint = compare._shape_hint
    padded = case({"x": (2, 1, 5, 5)}, padding=(1, 2))
    assert hint((3, 2), (2, 3), None) == " That is the transposed shape."
    assert hint((2, 5), (2, 3), None) == AXES
    assert hint((1, 2, 3), (3, 2, 1), None) == AXES
    assert hint((2, 1, 7, 9), (2, 1, 5, 5), padded) == PADDED
    assert hint((2, 1, 7, 7), (2, 1, 5, 5), padded) == AXES
    assert hint((2, 3, 7, 7), (2, 3, 5, 5), case({"x": (2,)}, padding=1)) == PADDED
    # Without padding, or from a check whose cases are not Case objects, no padding.
    assert hint((2, 3, 7, 7), (2, 3, 5, 5), case({"x": (2,)})) == AXES
    assert hint((2, 3, 7, 7), (2, 3, 5, 5), None) == AXES
    assert hint((2, 3, 7), (2, 3, 5), case({"x": (2,)}, padding=1)) == AXES
    assert hint((2, 3), (2, 3, 4), None) == (" An axis is missing: check which axes you"
                                             " summed over.")
    assert hint((2, 3, 4), (2, 3), None) == (" There is an extra axis: did you sum over"
                                             " every axis you should?")


def test_one_real_number_is_a_python_or_numpy_scalar_or_a_plain_0d_array():
    number = compare._number
    assert number(np.array(1.5)) == 1.5 and number(np.float32(2)) == 2.0
    assert number(3) == 3.0 and number(np.int64(4)) == 4.0
    for other in (np.ma.masked_array(1.5), np.array([1.5]), True, np.bool_(False),
                  "1.5", None, 1 + 2j):
        assert number(other) is None, other


def test_the_structure_of_an_output_in_plain_words():
    e = np.zeros((3,))
    assert compare._structure("x", [1, 2], e, None) == ("x: not an array", (
        "x should be a NumPy array, but your function returned a list of 2 values for"
        " it."))
    assert compare._structure("x", np.ma.masked_array(e), e, None) == (
        "x: not a plain array", (
            "x is a MaskedArray, a subclass of numpy.ndarray whose arithmetic differs;"
            " return a plain array (np.asarray or the result of ordinary NumPy"
            " operations)."))
    assert compare._structure("x", np.zeros(2), e, None) == ("x: wrong shape", (
        "x has shape (2,), expected (3,)." + AXES))
    assert compare._structure("x", np.zeros(3, np.float32), e, None) == (
        "x: wrong dtype", (
            "x has dtype float32, expected float64, the dtype of the input: allocate"
            " with np.zeros_like or dtype=x.dtype rather than np.zeros alone."))


def test_a_gradient_right_up_to_a_factor_is_recognised():
    factor = compare._factor_hint
    e = np.array([1.0, -2.0, 0.5])
    batch = case({"x": (4, 3)})
    assert factor(np.zeros(3), e, batch) == "Every entry of yours is 0."
    assert factor(np.ones(3), np.zeros(3), batch) == ""
    assert factor(np.array([1.0, 2.0]), np.array([1.0, 0.0]), None) == ""
    assert factor(-e, e, batch) == "Yours is the expected one with the opposite sign."
    general = (" times the expected one, in every entry: a missing or extra constant"
               " factor.")
    assert factor(-0.5 * e, e, batch) == "Yours is -0.5" + general
    assert factor(3 * e, e, None) == "Yours is 3" + general
    assert factor(3 * e, e, case({})) == "Yours is 3" + general
    assert factor(4 * e, e, case({"x": (4,)})) == "Yours is 4" + general
    assert factor(4 * e, e, case({"x": (4, 1)})) == (
        "Yours is 4" + general + " That is N = 4, the batch size: a missing 1/N?")
    assert factor(2 * e, e, case({"x": (2, 3)})) == (
        "Yours is 2" + general + " That is N = 2, the batch size: a missing 1/N?")
    assert factor(4.5 * e, e, batch) == "Yours is 4.5" + general
    assert factor(0.3 * e, e, batch) == "Yours is 0.3" + general
    assert factor(0.25 * e, e, batch) == (
        "Yours is 0.25" + general + " That is 1/N with N = 4, the batch size: an extra"
        " 1/N?")
    # Off by 1e-7 across the expected direction: a factor of exactly 1, N = 1 unnamed.
    almost = np.array([1.0, 1e-7, 0.0]), np.array([1.0, 0.0, 0.0])
    assert factor(*almost, case({"x": (1, 3)})) == "Yours is 1" + general


def test_the_first_wrong_entry_and_how_many_differ():
    expected = np.array([100.0, 0.0, 1.0, 2.0])
    got = np.array([100.0 + 5e-4, 5e-5, 1.5, 2.0])
    assert compare._differences("g", got, expected) == (
        "The first wrong entry in row-major order is g[0]: yours is 100.001, expected"
        " 100; 2 of 4 entries differ.")
    # Every entry within 1e-6: the largest difference is the wrong one.
    assert compare._differences("g", np.array([1.0 + 1e-8, 2.0]),
                                np.array([1.0, 2.0])).endswith(
        "g[0]: yours is 1, expected 1; 1 of 2 entries differ.")
    assert compare._differences("g", np.array(1.5), np.array(1.0)) == (
        "Yours is 1.5, expected 1.")


def test_a_wrong_value_message_ends_without_a_hint_when_there_is_none():
    summary, text = compare._value_problem("g", np.array([1.0, 3.0]),
                                           np.array([1.0, 2.0]), None)
    assert summary == "g: wrong values (1.9e-01)"
    assert text == (
        "g is wrong: relative error 1.9e-01 against the book's g (eq-relative-error; a"
        " correct function gives about 1e-15 in float64, and the check allows 1e-09)."
        " The first wrong entry in row-major order is g[1]: yours is 3, expected 2; 1"
        " of 2 entries differ.")
    # Integers are compared with the float64 tolerance.
    assert compare._value_problem("n", np.array([1, 3]), np.array([1, 2]), None)


def test_a_tuple_for_a_single_array_is_named():
    result = run("relu_backward", lambda dout, cache: (relu_backward(dout, cache),))
    assert first_verdict(result) == "returns a tuple"
    assert detail(result) == ("Your function returned a tuple of 1 values; it should"
                              " return the array dx itself.")


def test_nan_in_an_output_is_located_with_the_case_s_hint_if_it_has_one():
    nan = np.array([1.0, np.nan])
    e = np.zeros(2)
    assert compare._structure("x", nan, e, case({"x": (2,)})) == (
        "x: NaN or infinity", "x contains NaN or infinity, first at x[1].")
    assert compare._structure("x", nan, e, None)[1] == (
        "x contains NaN or infinity, first at x[1].")
    assert compare._structure("x", nan, e, case({"x": (2,)}, hint="Mind the gap."))[1] \
        == "x contains NaN or infinity, first at x[1]. Mind the gap."


def test_an_input_changed_in_place_is_named_with_its_first_changed_entry():
    before = np.array([1.0, np.nan, 3.0])
    assert compare._changed({"x": (before.copy(), before)}) is None, "NaN equals NaN"
    after = np.array([1.0, 5.0, 3.0])
    assert compare._changed({"x": (after, np.array([1.0, 2.0, 3.0]))}) == (
        "modified x", (
        "Your function changed its input x in place, first at x[1]. The caller still"
        " needs it (a layer keeps its cache, the optimiser reuses dout): build new"
        " arrays instead, for example `dout * mask` or `np.where(...)` rather than"
        " `dout[mask] = 0` or `+=` on an input."))
    assert compare._changed({"x": (before.reshape(3, 1), before)}) == ("reshaped x", (
        "Your function changed the shape or dtype of its input x in place, from (3,)"
        " float64 to (3, 1) float64 (x.shape = ..., x.resize or x.dtype = ...). The"
        " caller still needs it as it was: use x.reshape(...), which returns a new"
        " view."))


# -- sandbox: the book's solutions unavailable, a time limit, in any thread ------------


CELLS = notebook("""
import threading
import time
import cnn.dense

def right(dout, cache):
    return dout @ cache.w.T, cache.x.T @ dout, dout.sum(axis=0)

def slow(dout, cache):
    time.sleep(0.06)
    return right(dout, cache)

def raising(dout, cache):
    raise ValueError("no luck")

def calls_the_book(dout, cache):
    return cnn.dense.dense_backward(dout, cache)

def endless(dout, cache):
    THREADS.append(threading.current_thread())
    while True:
        try:
            while True:
                pass
        except Exception:  # the stop is not an Exception: it ends the loop
            pass

def stops_once_and_returns(dout, cache):
    try:
        while True:
            pass
    except BaseException:
        return None

def swallows_every_stop(dout, cache):
    while not STOP.is_set():
        try:
            while not STOP.is_set():
                time.sleep(0.01)
        except BaseException:
            pass

THREADS = []
STOP = threading.Event()
""")

CALLS = ("dense_backward: your function calls cnn.dense.dense_backward, the book's own"
         " solution, which it may not call: while check runs your function, the"
         " package's versions of dense_backward are unavailable. Write the computation"
         " yourself (the helpers that the set-up cell imports are allowed).")


def stopped(limit):
    return (f"dense_backward: your function did not finish within {limit:g} s on a"
            " small case, so check stopped it. Look for a loop that never ends (a"
            " `while` whose condition never changes, an index that is never increased)"
            " or a loop over far more elements than the shapes need.")


def in_a_thread(name, fn, **kwargs):
    """``run_check`` from a thread other than the main one: no SIGALRM there."""
    found = {}
    worker = threading.Thread(target=lambda: found.update(
        result=exercises.run_check(name, fn, **kwargs)))
    worker.start()
    worker.join(20)
    return found["result"]


@pytest.mark.parametrize("where", ["main thread", "other thread"])
def test_the_sandbox_passes_reports_and_refuses_alike_in_every_thread(where):
    check = exercises.run_check if where == "main thread" else in_a_thread
    assert check("dense_backward", CELLS["right"]).passed
    raised = check("dense_backward", CELLS["raising"])
    assert raised.verdicts == ("raised ValueError",) * 5
    called = check("dense_backward", CELLS["calls_the_book"])
    assert (called.name, called.passed, called.message) == (
        "dense_backward", False, CALLS)


def test_the_worker_thread_passes_keyword_arguments_and_is_a_named_daemon():
    sandbox._state.used = []

    def where(a, *, b):
        thread = threading.current_thread()
        return a, b, thread.name, thread.daemon

    assert sandbox._in_thread(where, (1,), {"b": 2}, 5.0) == (
        1, 2, "cnn-exercises-check", True)


def test_a_loop_outside_the_main_thread_is_interrupted_not_left_running():
    CELLS["THREADS"].clear()
    result = in_a_thread("dense_backward", CELLS["endless"], time_limit=0.3)
    assert (result.name, result.passed, result.message) == (
        "dense_backward", False, stopped(0.3))
    (thread,) = CELLS["THREADS"]
    thread.join(5)
    assert not thread.is_alive(), "the asynchronous exception stopped the loop"


def test_a_function_swallowing_every_stop_still_ends_the_check():
    CELLS["STOP"] = threading.Event()  # its loop ends when the test sets it
    try:
        result = in_a_thread("dense_backward", CELLS["swallows_every_stop"],
                             time_limit=0.3)
        assert result.message == stopped(0.3)
    finally:
        CELLS["STOP"].set()


def test_a_function_that_catches_the_stop_and_returns_has_still_timed_out():
    result = exercises.run_check("dense_backward", CELLS["stops_once_and_returns"],
                                 time_limit=0.3)
    assert result.message == stopped(0.3)


def test_the_time_limit_leaves_someone_else_s_timer_and_handler_as_they_were():
    def theirs(signum, frame):
        raise AssertionError("the outer timer fired during the test")

    assert exercises.run_check("dense_backward", CELLS["right"]).passed
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0), "no timer left running"
    previous = signal.signal(signal.SIGALRM, theirs)
    signal.setitimer(signal.ITIMER_REAL, 100.0)
    try:
        assert exercises.run_check("dense_backward", CELLS["slow"]).passed
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert signal.getsignal(signal.SIGALRM) is theirs
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    # Five calls of 0.06 s ran on the outer timer's time: it has that much less left.
    assert 80.0 < left < 100.0 - 0.25


def test_in_the_main_thread_the_function_runs_there_and_any_callable_is_checked():
    threads = []

    def where(dout, cache):
        threads.append(threading.current_thread())
        return CELLS["right"](dout, cache)

    assert exercises.run_check("dense_backward", where).passed
    assert set(threads) == {threading.main_thread()}
    partial = functools.partial(CELLS["right"])  # a callable without __code__
    assert exercises.run_check("dense_backward", partial).passed


def test_the_seed_reaches_the_check_of_any_function():
    def doubled(dout, cache):
        dx, dw, db = CELLS["right"](dout, cache)
        return 2 * dx, dw, db

    for fn in (doubled, bugzoo.broken_dense_backward_bias_axis):
        five = exercises.run_check("dense_backward", fn, seed=5)
        assert (five.name, five.passed) == ("dense_backward", False)
        assert five.message == run("dense_backward", fn, seed=5).message
        assert five.message != exercises.run_check("dense_backward", fn).message


def test_the_book_s_function_or_a_copy_of_it_is_not_a_submission():
    text = ("dense_backward: check got the book's own cnn.dense.dense_backward, not a"
            " function of yours. Define dense_backward yourself (a `def"
            " dense_backward(...)` cell) instead of importing it from cnn.")
    own = exercises.run_check("dense_backward", dense_backward)
    assert (own.name, own.passed, own.message) == ("dense_backward", False, text)
    copy = types.FunctionType(dense_backward.__code__, dense_backward.__globals__)
    assert exercises.run_check("dense_backward", copy).message == text


def test_the_references_of_an_exercise_are_its_twins_and_its_extras():
    def names(name):
        return {f"{f.__module__}.{f.__name__}" for f in sandbox.references(name)}

    assert names("dense_backward") == {"cnn.dense.dense_backward",
                                       "cnn.dense.dense_backward_naive"}
    assert names("conv2d_backward_naive") == names("conv2d_backward")
    assert names("conv2d_backward_fast") == names("conv2d_backward")
    assert names("im2col_dilated") == names("im2col") >= {"cnn.conv.im2col"}
    assert names("check_model") == {"cnn.gradcheck.check_model",
                                    "cnn.gradcheck.check_layer"}


# -- grading: one process per submission, one row per exercise -------------------------


RELU = """import numpy as np
from cnn.activations import ReLUCache

def relu_forward(x):
    return np.maximum(x, 0), ReLUCache(x)
"""


def graded_notebook(path, *sources, points=None):
    """A notebook of code cells; a check cell gets ``points`` (nbgrader) if given."""
    cells = []
    for source in sources:
        cell = nbformat.v4.new_code_cell(source)
        if points is not None and source.startswith("check("):
            cell.metadata["nbgrader"] = {"points": points}
        cells.append(cell)
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def test_the_exercises_of_a_notebook_are_its_check_cells_with_their_points():
    nb = {"cells": [
        {"cell_type": "code", "source": ['check("relu_forward", ', "relu_forward)\n"],
         "metadata": {"nbgrader": {"points": 3}}},
        {"cell_type": "markdown", "source": 'check("dense_forward", dense_forward)'},
        {"cell_type": "code", "source": 'check("im2col_dilated", im2col)'},
        {"cell_type": "code", "source": 'x = 1\ncheck("softmax", softmax)'},
        {"cell_type": "code"},
    ]}
    assert grading.exercises(nb) == [("relu_forward", "relu_forward", 3),
                                     ("im2col_dilated", "im2col", 1)]
    assert list(grading._student_code(nb)) == ['x = 1\ncheck("softmax", softmax)', ""]
    nb["cells"].insert(0, {"cell_type": "code", "source": "%pip install cnn\n"})
    assert list(grading._student_code(nb)) == ['x = 1\ncheck("softmax", softmax)', ""]


@pytest.mark.parametrize("content, why", [
    ("{not json", "not a readable notebook (Expecting property name"),
    ("[1, 2]", "not a Jupyter notebook (no list of cells)"),
    ('{"cells": 3}', "not a Jupyter notebook (no list of cells)"),
    (b"\xff\xfe", "not a readable notebook ('utf-8' codec can't decode"),
])
def test_a_submission_that_is_not_a_notebook_is_named(tmp_path, content, why):
    path = tmp_path / "x.ipynb"
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    with pytest.raises(grading.GradingError) as raised:
        grading.read_notebook(path)
    assert str(raised.value).startswith(f"{path}: {why}")
    with pytest.raises(grading.GradingError, match="not a readable notebook"):
        grading.read_notebook(tmp_path / "missing.ipynb")


def verdicts(path, seed=0):
    result = path.parent / "verdicts.jsonl"
    result.write_text("")
    grading.grade_in_this_process(path, seed, 5.0, result)
    return [json.loads(line) for line in result.read_text().splitlines()]


def test_one_submission_is_graded_in_this_process_verdict_by_verdict(tmp_path):
    path = graded_notebook(
        tmp_path / "ada.ipynb", "%pip install cnn-from-scratch", "y = undefined_name",
        'if __name__ == "__main__":\n' + "\n".join(
            "    " + line for line in RELU.splitlines()),
        'check("relu_forward", relu_forward)', 'check("dense_forward", dense_forward)',
        points=2)
    assert verdicts(path) == [
        {"exercise": "relu_forward", "points": 2, "max_points": 2, "passed": True,
         "reason": "relu_forward: all 4 cases pass."},
        {"exercise": "dense_forward", "points": 0, "max_points": 2, "passed": False,
         "reason": "dense_forward is not defined (a cell raised NameError: name"
                   " 'undefined_name' is not defined)"}]


def test_a_failing_function_scores_0_with_the_first_line_of_its_check(tmp_path):
    path = graded_notebook(tmp_path / "ben.ipynb",
                           "def relu_forward(x):\n    raise ValueError('one')",
                           "raise ValueError('one\\ntwo')", "raise KeyError('gone')\n",
                           'check("relu_forward", relu_forward)',
                           'check("softmax", softmax)')
    assert verdicts(path, seed=3) == [
        {"exercise": "relu_forward", "points": 0, "max_points": 1, "passed": False,
         "reason": "relu_forward fails case 1 of 4: x (4, 5)."},
        {"exercise": "softmax", "points": 0, "max_points": 1, "passed": False,
         "reason": "softmax is not defined (a cell raised ValueError: one)"}]
    path = graded_notebook(tmp_path / "cy.ipynb", 'check("softmax", softmax)')
    assert verdicts(path)[0]["reason"] == "softmax is not defined"


def test_the_child_process_of_one_submission_is_main_with_one(tmp_path):
    path = graded_notebook(tmp_path / "dee.ipynb", RELU,
                           'check("relu_forward", relu_forward)')
    result = tmp_path / "out.jsonl"
    result.write_text("")
    assert grading.main(["--one", str(path), "--seed", "5", "--call-limit", "2",
                         "--result-file", str(result)]) == 0
    assert json.loads(result.read_text())["passed"] is True


def test_a_submission_s_process_that_fails_or_overruns_scores_0_with_why(tmp_path):
    path = graded_notebook(tmp_path / "eve.ipynb", RELU,
                           'check("no_such", relu_forward)',
                           'check("relu_forward", relu_forward)', points=4)
    rows = grading.grade(path, seed=1, time_limit=60, call_limit=1)
    reason = ("the submission's process ended with an error: ValueError: name must be"
              " one of the checked functions")
    assert [r["exercise"] for r in rows] == ["no_such", "relu_forward"]
    assert all(r["student"] == "eve" and r["points"] == 0 and r["max_points"] == 4
               and r["passed"] is False and r["reason"].startswith(reason)
               for r in rows), rows
    rows = grading.grade(path, seed=1, time_limit=0.01, call_limit=1)
    assert rows[0] == {"student": "eve", "exercise": "no_such", "points": 0,
                       "max_points": 4, "passed": False, "reason": (
                           "the submission did not finish within 0.01 s and was stopped"
                           " (an endless loop outside a function?)")}


def test_the_csv_is_written_whole_with_its_header(tmp_path):
    rows = [{"student": "ada", "exercise": "softmax", "points": 1, "max_points": 1,
             "passed": True, "reason": "softmax: all 5 cases pass."}]
    out = tmp_path / "grades.csv"
    grading.write_csv(rows, out)
    assert out.read_text(encoding="utf-8").splitlines() == [
        "student,exercise,points,max_points,passed,reason",
        "ada,softmax,1,1,True,softmax: all 5 cases pass."]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grades.csv"]


LIMITS = "--time-limit and --call-limit must be > 0"


@pytest.mark.parametrize("arguments, error", [
    (["--seed", "1", "--time-limit", "0"], LIMITS),
    (["--seed", "1", "--call-limit", "0"], LIMITS),
    (["--seed", "1", "--call-limit", "-1"], LIMITS),
    (["--seed", "1", "--out", "no/g.csv"], "--out no/g.csv: no folder no"),
    ([], "--seed is required: choose a number the students do not know (they practise"
         " on seed 0)"),
])
def test_each_mistake_in_the_command_is_one_line_and_code_2(tmp_path, capsys,
                                                           monkeypatch, arguments,
                                                           error):
    monkeypatch.chdir(tmp_path)
    graded_notebook(tmp_path / "ada.ipynb", RELU)
    assert grading.main(["ada.ipynb", *arguments]) == 2
    assert capsys.readouterr().err == f"error: {error}\n"


def test_what_is_not_a_submission_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("")
    for given in ("notes.txt", "gone.ipynb"):
        assert grading.main([given, "--seed", "1"]) == 2
        assert capsys.readouterr().err == (
            f"error: {given}: not a notebook (.ipynb) nor a folder\n")
    assert grading.main(["--seed", "1"]) == 2
    assert capsys.readouterr().err == (
        "error: no submissions: give notebooks or folders of them\n")


def test_a_folder_is_graded_notebook_by_notebook_with_the_default_limits(
        tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "class"
    folder.mkdir()
    for name in ("cy", "ada"):
        graded_notebook(folder / f"{name}.ipynb", RELU)
    (folder / "notes.txt").write_text("")
    calls = []

    def grade(path, seed, time_limit, call_limit):
        calls.append((path.name, seed, time_limit, call_limit))
        return [{"student": path.stem, "exercise": "relu_forward", "points": 1,
                 "max_points": 2, "passed": False, "reason": "r"}]

    monkeypatch.setattr(grading, "grade", grade)
    assert grading.main(["class", "--seed", "9"]) == 0
    assert calls == [("ada.ipynb", 9, 300.0, 10.0), ("cy.ipynb", 9, 300.0, 10.0)]
    assert capsys.readouterr().out == (
        "ada: 1 of 2 points\ncy: 1 of 2 points\nwrote grades.csv (2 rows)\n")
    assert (tmp_path / "grades.csv").read_text().count("\n") == 3


def test_the_help_of_the_grading_command(capsys):
    with pytest.raises(SystemExit) as done:
        grading.main(["--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("usage: python -m cnn.exercises.grading",
                   "Grade a folder of student notebooks: one process per submission,"
                   " one CSV row each.",
                   "student notebooks (.ipynb), or folders of them",
                   "seeds the cases; choose one the students do not know",
                   "seconds one submission may run (default 300)",
                   "seconds one call of a student's function may take", "--out OUT"):
        assert re.search(rf"(^|\s){re.escape(phrase)}(\s|$)", text), phrase
    assert "--one" not in text and "--result-file" not in text
    assert "runs every submitted notebook" not in text, "the first paragraph only"


def test_limits_below_one_second_are_accepted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    graded_notebook(tmp_path / "ada.ipynb", RELU)
    limits = []
    monkeypatch.setattr(grading, "grade", lambda path, seed, time_limit, call_limit: (
        limits.append((time_limit, call_limit)) or []))
    assert grading.main(["ada.ipynb", "--seed", "1", "--time-limit", "0.5",
                         "--call-limit", "0.25"]) == 0
    assert limits == [(0.5, 0.25)]


def test_a_check_s_own_gradient_check_defaults_to_seed_0_too():
    for name, fn in (("relu_backward", relu_backward),
                     ("softmax_cross_entropy", softmax_cross_entropy)):
        check = exercises.CHECKS[name]
        assert check.gradient_check(fn) == check.gradient_check(fn, seed=0)
        assert check.gradient_check(fn) != check.gradient_check(fn, seed=1)


def test_the_gradient_check_of_a_loss_goes_on_after_a_float32_case():
    check = LossCheck(softmax_cross_entropy, [
        case({"logits": (2, 3)}, dtype=np.float32), case({"logits": (3, 4)})])
    rows = check.gradient_check(softmax_cross_entropy)
    assert rows[0] is None and rows[1]["dlogits"] < 1e-7


def test_the_plain_gradient_check_ignores_the_caller_s_floating_point_errors():
    def overflowing(dout, cache):
        np.exp(np.float64(1000))  # an overflow on the way, not in the result
        return relu_backward(dout, cache)

    def loss_overflowing(z, y):
        np.exp(np.float64(1000))
        return softmax_cross_entropy(z, y)

    with np.errstate(all="raise"):
        rows = exercises.gradient_check("relu_backward", overflowing)
        loss_rows = exercises.gradient_check("softmax_cross_entropy", loss_overflowing)
    assert set(rows[0]) == {"dx"} and set(loss_rows[0]) == {"dlogits"}


def test_one_submission_is_graded_on_the_teacher_s_seed_and_call_limit(tmp_path):
    seen = tmp_path / "seen.txt"
    path = graded_notebook(tmp_path / "fay.ipynb", RELU.replace(
        "def relu_forward(x):\n",
        "def relu_forward(x):\n"
        f"    open({str(seen)!r}, 'a').write(repr(float(x.sum())) + '\\n')\n"),
        "def softmax(z):\n    while True:\n        pass\n",
        'check("relu_forward", relu_forward)', 'check("softmax", softmax)')
    result = tmp_path / "verdicts.jsonl"
    result.write_text("")
    grading.grade_in_this_process(path, 3, 0.3, result)
    rows = [json.loads(line) for line in result.read_text().splitlines()]
    assert rows[0]["passed"] is True
    assert rows[1]["reason"].startswith("softmax: your function did not finish within"
                                        " 0.3 s")
    sums = []

    def recording(x):
        sums.append(float(x.sum()))
        return relu_forward(x)

    assert run("relu_forward", recording, seed=3).passed
    assert [float(s) for s in seen.read_text().split()] == sums
    assert run("relu_forward", recording, seed=0).passed
    assert sums[len(sums) // 2:] != sums[:len(sums) // 2]


def test_the_csv_is_first_written_beside_its_destination(tmp_path, monkeypatch):
    made = []
    original = tempfile.NamedTemporaryFile

    def recorded(*args, **kwargs):
        made.append(original(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", recorded)
    out = tmp_path / "grades.csv"
    grading.write_csv([], out)
    assert Path(made[0].name).parent == tmp_path
    assert out.read_text().startswith("student,exercise")


def test_a_submission_is_graded_in_a_child_process_in_a_folder_of_its_own(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = graded_notebook(
        tmp_path / "gus.ipynb", RELU, "open('litter.txt', 'w').write('x')",
        "def softmax(z):\n    while True:\n        pass\n",
        'check("relu_forward", relu_forward)', 'check("softmax", softmax)', points=2)
    rows = grading.grade(path, seed=2, time_limit=60, call_limit=0.3)
    assert [(r["student"], r["exercise"], r["points"], r["max_points"], r["passed"])
            for r in rows] == [("gus", "relu_forward", 2, 2, True),
                               ("gus", "softmax", 0, 2, False)]
    assert rows[0]["reason"] == "relu_forward: all 4 cases pass."
    assert rows[1]["reason"].startswith("softmax: your function did not finish within"
                                        " 0.3 s")
    assert not (tmp_path / "litter.txt").exists(), "the child runs in its own folder"


def test_a_submission_that_ends_its_own_process_is_not_graded(tmp_path):
    path = graded_notebook(tmp_path / "hal.ipynb", "import os\nos._exit(0)",
                           'check("relu_forward", relu_forward)')
    (row,) = grading.grade(path, seed=2, time_limit=60, call_limit=1)
    assert (row["points"], row["passed"], row["reason"]) == (0, False, "not graded")


def test_every_folder_and_notebook_given_is_graded(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        graded_notebook(tmp_path / folder / f"{folder}1.ipynb", RELU)
    graded_notebook(tmp_path / "c1.ipynb", RELU)
    graded = []
    monkeypatch.setattr(grading, "grade", lambda path, *limits: (
        graded.append(path.name) or []))
    assert grading.main(["a", "b", "c1.ipynb", "--seed", "1"]) == 0
    assert graded == ["a1.ipynb", "b1.ipynb", "c1.ipynb"]


def test_an_outer_timer_with_less_than_a_second_left_keeps_its_time():
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    signal.setitimer(signal.ITIMER_REAL, 0.9)
    try:
        assert exercises.run_check("relu_backward", relu_backward_cell()).passed
        left, _ = signal.getitimer(signal.ITIMER_REAL)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert left < 0.9, "not stretched to a second"


def relu_backward_cell():
    return notebook("def relu_backward(dout, cache):\n"
                    "    return dout * (cache.x > 0)\n")["relu_backward"]


# -- calling: what the reader's function raised, and where ---------------------------


CALLED = notebook("""
import sys
import numpy as np

def pads(x):
    return np.pad(x, "bad")

def exits(x):
    sys.exit(3)

def two_lines(x):
    raise ValueError("first\\nsecond")

def overflows_on_the_way(x):
    np.exp(np.float64(1000))
    return np.maximum(x, 0), RELU_CACHE(x)
""")


def test_an_error_inside_numpy_is_placed_on_the_reader_s_line():
    with pytest.raises(TypeError) as raised:
        np.pad(np.zeros(2), "bad")
    why = f"Your function raised TypeError: {raised.value}"
    # The notebook cell has no source file, so the line is not quoted.
    assert detail(run("relu_forward", CALLED["pads"])) == f"{why} (in pads, line 6)."
    partial = functools.partial(np.pad, pad_width="bad")  # no line of the reader's
    assert detail(run("relu_forward", partial)) == f"{why}."


def test_the_first_line_of_an_error_message_is_reported():
    assert detail(run("relu_forward", CALLED["two_lines"])) == (
        "Your function raised ValueError: first (in two_lines, line 12).")


def test_sys_exit_in_the_reader_s_code_is_reported_not_obeyed():
    assert detail(run("relu_forward", CALLED["exits"])) == (
        "Your function called sys.exit(3) (in exits, line 9), which would end the"
        " notebook's kernel; return the result instead.")


def test_the_reader_s_floating_point_errors_are_ignored_whatever_the_caller_set():
    CALLED["RELU_CACHE"] = ReLUCache
    with np.errstate(all="raise"):
        assert run("relu_forward", CALLED["overflows_on_the_way"]).passed


# -- helpers: a wrong helper of the reader's named ------------------------------------


def test_the_book_s_function_and_the_helper_s_check_of_a_check():
    checks = exercises.CHECKS
    assert helpers.book_function(checks["dense_forward"]) is dense_forward
    assert helpers.book_function(checks["dense_backward"]) is dense_backward
    assert helpers.book_function(checks["softmax"]) is softmax
    grouped = "conv2d_backward_dilated_grouped"
    assert helpers.helper_check("col2im", grouped, checks) == "col2im_dilated"
    assert helpers.helper_check("relu_forward", grouped, checks) == "relu_forward"
    assert helpers.helper_check("col2im", "conv2d_backward", checks) == "col2im"
    partial = functools.partial(dense_backward)
    assert helpers.helpers_called(partial, "dense_backward", checks) == []


def conv_cells(col2im_op, db="db"):
    return notebook(COL2IM_AND_CONV.replace("OP", col2im_op).replace(
        "return crop(dx_padded, cache.padding), dw, db",
        f"return crop(dx_padded, cache.padding), dw, {db}"))


def test_a_wrong_helper_is_named_and_put_back():
    cells = conv_cells("=")
    theirs = cells["col2im"]
    lines = exercises.run_check("conv2d_backward", cells["conv2d_backward"]).message
    lines = lines.split("\n")
    assert cells["col2im"] is theirs
    assert lines[0] == (
        "conv2d_backward fails, and it calls your col2im, which fails its own check."
        " With the book's col2im in its place, your conv2d_backward passes every case:"
        " the mistake is in your col2im, not in conv2d_backward. What check('col2im',"
        " col2im) says:")
    assert lines[1].startswith("col2im fails case 1 of ")
    assert lines[1:3] == exercises.run_check("col2im", theirs).message.split("\n")[:2]
    assert lines[3:5] == ["", "What check('conv2d_backward', conv2d_backward) says:"]
    assert lines[5].startswith("conv2d_backward fails case")


def test_a_wrong_function_with_a_wrong_helper_is_told_to_fix_the_helper_first():
    first = exercises.run_check("conv2d_backward", conv_cells("=", "2 * db")[
        "conv2d_backward"]).message.split("\n")[0]
    assert first.endswith(" which fails its own check. Fix col2im first:"
                          " conv2d_backward may be right once it is. What"
                          " check('col2im', col2im) says:")
    right_helper = conv_cells("+=", "2 * db")["conv2d_backward"]
    assert exercises.run_check("conv2d_backward", right_helper).message.startswith(
        "conv2d_backward fails case 1 of 7")
