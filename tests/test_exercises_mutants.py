"""The exercise checker's messages, defaults and tolerances, word for word (issue 27).

Mutation testing (tests/MUTATION.md) showed which of the checker's verdicts and
sentences no test pinned: the wording of each failure, the default seed, the float32
tolerance of a loss and of a cache, the names in a message, the rows of the plain
gradient check. Each test here states one of them for a function a reader could write.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from cnn import exercises
from cnn.activations import ReLUCache, relu_backward, relu_forward, softmax
from cnn.conv import conv2d_backward, conv2d_forward, conv2d_forward_naive
from cnn.dense import DenseCache, dense_backward, dense_forward
from cnn.exercises import (
    BackwardCheck,
    CheckFailed,
    ForwardCheck,
    FunctionCheck,
    LossCheck,
    case,
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
