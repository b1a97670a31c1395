"""cnn.exercises and cnn.bugzoo: the checks pass the book's functions and explain failures.

Every check must pass the package's reference (and its naive and tuned twins), fail the
untouched stub with "not written yet", fail every bug-zoo exhibit in exactly the cases
its mistake predicts, and fail common mistakes with a message that names the problem.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

from cnn import (
    activations,
    bugzoo,
    conv,
    conv_transpose,
    dense,
    exercises,
    gradcheck,
    init,
    layers,
    losses,
    norm,
    pool,
    regularization,
)
from cnn.activations import ReLUCache, log_softmax
from cnn.conv import ConvCache, conv2d_backward, crop, pad
from cnn.exercises import CHECKS, CheckFailed, check, gradient_check
from cnn.exercises.sandbox import VARIANTS
from cnn.fast import conv as fast_conv
from cnn.fast import conv_transpose as fast_conv_transpose
from cnn.fast import pool as fast_pool

ROOT = Path(__file__).resolve().parents[1]
MODULES = (dense, activations, losses, conv, pool, gradcheck, fast_conv, fast_pool, init,
           norm, regularization, conv_transpose, fast_conv_transpose, layers)


def package_functions(name):
    """The package's function ``name`` (or the one a variant checks) and its naive and
    tuned twins."""
    base = re.sub(r"_(naive|fast)$", "", VARIANTS.get(name, name))
    found = []
    for module in MODULES:
        for candidate in (base, f"{base}_naive", f"{base}_fast"):
            if hasattr(module, candidate):
                found.append(getattr(module, candidate))
    return found


def run_check(name, fn):
    """The check without its sandbox (tests/test_sandbox.py tests that): these
    tests build wrong functions from the book's own, which a reader's may not call."""
    return exercises._get(name).run(fn)


def message(name, fn):
    result = run_check(name, fn)
    assert not result.passed, f"{name}: the check passed a wrong function"
    return result.message


def failing(result):
    return {i for i, verdict in enumerate(result.verdicts, start=1) if verdict is not None}


# -- the reference passes, the stub does not --------------------------------------


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_the_package_s_functions_pass_their_check(name):
    functions = package_functions(name)
    assert functions, f"no package function for the check {name}"
    for fn in functions:
        result = run_check(name, fn)
        assert result.passed, f"{fn.__module__}.{fn.__name__}:\n{result.message}"
        assert result.message == f"{name}: all {len(result.verdicts)} cases pass."
        assert len(result.verdicts) >= 3, "a check needs several cases"


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_the_untouched_stub_is_reported_as_not_written(name):
    def stub(*args, **kwargs):
        raise NotImplementedError(f"write the body of {name}")

    text = message(name, stub)
    assert text.startswith(f"{name} is not written yet")
    assert "raise NotImplementedError" in text


def test_check_prints_success_and_raises_a_plain_failure(capsys):
    def dense_backward(dout, cache):
        return dout @ cache.w.T, cache.x.T @ dout, dout.sum(axis=0)

    check("dense_backward", dense_backward)
    assert capsys.readouterr().out == "dense_backward: all 5 cases pass.\n"
    with pytest.raises(CheckFailed) as caught:
        check("dense_backward", bugzoo.broken_dense_backward_bias_axis)
    assert isinstance(caught.value, AssertionError), "nbgrader counts an AssertionError"
    # IPython shows these lines instead of a traceback through this package.
    lines = caught.value._render_traceback_()
    assert lines[0].startswith("CheckFailed: dense_backward fails case 1 of 5")
    assert "\n".join(lines).endswith(str(caught.value).split("\n")[-1])


def test_a_misused_check_says_how_to_call_it():
    with pytest.raises(ValueError, match="conv2d_backward.*got .conv_backward."):
        exercises.run_check("conv_backward", conv2d_backward)
    text = message("dense_backward", 3.0)
    assert "check needs your function itself" in text
    assert "check('dense_backward', dense_backward)" in text


def test_every_case_is_listed_with_its_verdict():
    text = message("conv2d_backward", bugzoo.broken_conv2d_backward_stride_ignored)
    assert "It passes 3 of 7 cases:" in text
    assert "  case 1: x (2, 3, 5, 5), w (4, 3, 3, 3), b (4,), stride=1, padding=0: pass" in text
    assert re.search(r"  case 3: .*stride=2, padding=1: FAIL \(dx: wrong values", text)


# -- the bug zoo: each exhibit fails in exactly the cases its mistake predicts ------


def kernel(case):
    k = case.shapes["w"][2:] if "w" in case.shapes else case.kwargs["kernel_size"]
    return k if isinstance(k, tuple) else (k, k)


def pair(value, default):
    value = default if value is None else value
    return value if isinstance(value, tuple) else (value, value)


def stride(case):
    return pair(case.kwargs.get("stride"), kernel(case))


PATTERNS = {
    # exhibit: (cases that must fail, phrases the first failure's message must hold)
    "broken_dense_backward_bias_axis": (
        lambda c: True, ["db has shape (4,), expected (2,) (the shape of b)"]),
    "broken_relu_backward_in_place": (
        lambda c: True, ["changed its input dout in place, first at dout["]),
    "broken_softmax_cross_entropy_no_mean": (
        lambda c: c.shapes["logits"][0] > 1,
        ["dlogits is wrong", "That is N = 4, the batch size: a missing 1/N?"]),
    "broken_conv2d_backward_no_flip": (
        lambda c: kernel(c) != (1, 1),
        ["dx is wrong", "dw and db are right", "Centred finite differences"]),
    "broken_conv2d_backward_stride_ignored": (
        lambda c: stride(c) != (1, 1), ["dx is wrong", "dw and db are right",
                                        "(SH i, SW j)"]),
    "broken_conv2d_backward_no_crop": (
        lambda c: pair(c.kwargs["padding"], 0) != (0, 0),
        ["dx has shape (1, 2, 8, 7), expected (1, 2, 6, 5)", "size of the padded input"]),
    "broken_maxpool2d_backward_overwrite": (
        lambda c: any(s < k for s, k in zip(stride(c), kernel(c))),
        ["dx is wrong", "an input can lie in several windows"]),
    "broken_maxpool2d_backward_offset_kh": (
        lambda c: kernel(c)[0] != kernel(c)[1], ["raised IndexError", "p KW + q"]),
    "broken_avgpool2d_backward_no_scale": (
        lambda c: True, ["Yours is 4 times the expected one, in every entry"]),
    "broken_maxpool2d_forward_last_max": (
        lambda c: c.values.get("x") == "ties",
        ["out is right, but the cache is not", "FIRST maximum"]),
    "broken_conv2d_backward_groups_mixed": (
        lambda c: c.kwargs["groups"] > 1 and c.shapes["w"][0] > c.kwargs["groups"],
        ["dx is wrong", "dw is wrong too", "db is right", "g = f // (F // G)"]),
    "broken_conv2d_backward_stride_as_dilation": (
        lambda c: pair(c.kwargs["dilation"], 1) != pair(c.kwargs["stride"], 1),
        ["dx is wrong", "dw and db are right", "the dilation spreads the kernel"]),
    "broken_residual_backward_no_skip": (
        lambda c: True, ["dx is wrong", "Every layer's parameter gradients are right"]),
}


def test_the_zoo_has_at_least_six_broken_backward_passes():
    backward = [b for b in bugzoo.BUGS if "backward" in b.check or "entropy" in b.check]
    assert len(backward) >= 6
    defined = [n.name for n in ast.parse((ROOT / "cnn" / "bugzoo.py").read_text()).body
               if isinstance(n, ast.FunctionDef)]
    assert all(name.startswith("broken_") for name in defined)
    assert sorted(defined) == sorted(b.function.__name__ for b in bugzoo.BUGS)
    assert sorted(PATTERNS) == sorted(defined), "pin the pattern of every exhibit"


def imports_bugzoo(path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import) and any("bugzoo" in a.name for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and ("bugzoo" in (node.module or "") or any(
                a.name == "bugzoo" for a in node.names)):
            return True
    return False


def test_no_module_uses_the_bug_zoo():
    users = [p.relative_to(ROOT).as_posix() for p in (ROOT / "cnn").rglob("*.py")
             if p.name != "bugzoo.py" and imports_bugzoo(p)]
    assert not users
    assert imports_bugzoo(ROOT / "tests" / "test_exercises.py"), "the test would see nothing"


@pytest.mark.parametrize("bug", bugzoo.BUGS, ids=lambda b: b.function.__name__)
def test_each_exhibit_fails_in_the_cases_its_mistake_predicts(bug):
    predicate, phrases = PATTERNS[bug.function.__name__]
    result = run_check(bug.check, bug.function)
    expected = {i for i, c in enumerate(CHECKS[bug.check].cases, start=1) if predicate(c)}
    assert failing(result) == expected, result.message
    for phrase in phrases:
        assert phrase in result.message


@pytest.mark.parametrize("bug", [b for b in bugzoo.BUGS
                                 if hasattr(CHECKS[b.check], "gradient_check")],
                         ids=lambda b: b.function.__name__)
def test_the_gradient_check_sees_wrong_values_but_not_a_modified_input(bug):
    rows = gradient_check(bug.check, bug.function)
    run = [row for row in rows if row is not None]
    assert run and len(run) < len(rows), "float32 and kink cases are not gradient-checked"
    flagged = ["raised" in row or max(row.values()) > 1e-7 or np.isnan(max(row.values()))
               for row in run]
    if bug.function is bugzoo.broken_relu_backward_in_place:
        assert not any(flagged), "its values are right: only check sees the bug"
    else:
        assert any(flagged)


def test_the_gradient_check_of_a_missing_mean_is_n_minus_one_over_n_plus_one():
    rows = gradient_check("softmax_cross_entropy", bugzoo.broken_softmax_cross_entropy_no_mean)
    for case, row in zip(CHECKS["softmax_cross_entropy"].cases, rows):
        if row is not None:
            N = case.shapes["logits"][0]
            assert row["dlogits"] == pytest.approx((N - 1) / (N + 1), abs=1e-6)


def test_the_correct_functions_pass_the_gradient_check():
    for name, fn in [("conv2d_backward", conv.conv2d_backward),
                     ("conv2d_backward_dilated_grouped", conv.conv2d_backward),
                     ("residual_backward", layers.residual_backward),
                     ("groupnorm_backward", norm.groupnorm_backward),
                     ("maxpool2d_backward", pool.maxpool2d_backward),
                     ("softmax_cross_entropy", losses.softmax_cross_entropy)]:
        for row in gradient_check(name, fn):
            assert row is None or max(row.values()) < 1e-7


def test_a_dropped_skip_is_seen_in_dx_only():
    """The body's backward still runs: only the gradient of the block's input is wrong."""
    rows = gradient_check("residual_backward", bugzoo.broken_residual_backward_no_skip)
    for row in filter(None, rows):
        assert row["dx"] > 0.1
        assert max(e for key, e in row.items() if key != "dx") < 1e-7, row


def test_the_plain_convolution_check_cannot_see_mixed_groups():
    """Without groups the mixed-up group index is right: only the cases with groups
    show the mistake. Spreading the kernel by the stride shows even without dilation,
    in the strided cases, where the plain check sees it too."""
    bug = bugzoo.broken_conv2d_backward_groups_mixed
    assert run_check("conv2d_backward", bug).passed
    assert not run_check("conv2d_backward_dilated_grouped", bug).passed
    spread = run_check("conv2d_backward", bugzoo.broken_conv2d_backward_stride_as_dilation)
    expected = {i for i, c in enumerate(CHECKS["conv2d_backward"].cases, start=1)
                if stride(c) != (1, 1)}
    assert failing(spread) == expected


# -- common mistakes ----------------------------------------------------------------


def test_a_missing_result_is_counted():
    def two(dout, cache):
        return dense.dense_backward(dout, cache)[:2]

    assert "should return 3 values, (dx, dw, db) in that order" in message(
        "dense_backward", two)


def test_a_transposed_weight_gradient_is_named():
    def transposed(dout, cache):
        x, w = cache
        return dout @ w.T, dout.T @ x, dout.sum(axis=0)

    result = run_check("dense_backward", transposed)
    assert "dw has shape (2, 3), expected (3, 2) (the shape of w). That is the transposed" \
        in result.message
    assert failing(result) == {1, 2, 3, 4, 5}
    # N = D = M: the shape is right and the values say it.
    assert "case 3: x (3, 3), w (3, 3), b (3,): FAIL (dw: wrong values" in result.message


def test_a_float64_gradient_for_a_float32_input_is_a_dtype_problem():
    def float64_always(dout, cache):
        dx, dw, db = conv.conv2d_backward_naive(dout, cache)
        return dx.astype(np.float64), dw, db

    result = run_check("conv2d_backward", float64_always)
    assert failing(result) == {7}
    assert "dx has dtype float64, expected float32" in result.message


def test_an_input_modified_inside_the_cache_is_named():
    def pads_in_place(dout, cache):
        grads = conv.conv2d_backward(dout, cache)
        cache.x_padded[...] = 0
        return grads

    assert "changed its input cache.x_padded in place" in message(
        "conv2d_backward", pads_in_place)


def test_an_exception_is_reported_with_the_reader_s_line():
    def typo(dout, cache):
        x, w = cache
        return dout @ w, x.T @ dout, dout.sum(axis=0)

    text = message("dense_backward", typo)
    assert "Your function raised ValueError: matmul" in text
    assert "(in typo, line" in text and "`return dout @ w, x.T @ dout, dout.sum(axis=0)`" in text


def test_a_forward_pass_without_its_cache():
    def no_cache(x, w, b):
        return x @ w + b

    assert "it should return a pair (out, cache)" in message("dense_forward", no_cache)


def test_a_forward_pass_with_a_wrong_cache():
    def unpadded_cache(x, w, b, stride=1, padding=0):
        out, cache = conv.conv2d_forward(x, w, b, stride=stride, padding=padding)
        return out, ConvCache(x, cache.w, cache.stride, cache.padding)

    result = run_check("conv2d_forward", unpadded_cache)
    padded = {i for i, c in enumerate(CHECKS["conv2d_forward"].cases, start=1)
              if pair(c.kwargs["padding"], 0) != (0, 0)}
    assert failing(result) == padded
    assert "out is right, but" in result.message


def test_relu_with_x_at_least_zero_fails_only_where_x_is_zero():
    def at_least_zero(dout, cache):
        return np.where(cache.x >= 0, dout, 0).astype(cache.x.dtype)

    result = run_check("relu_backward", at_least_zero)
    assert failing(result) == {3}
    assert "use x > 0, not x >= 0" in result.message


def test_a_relu_forward_with_its_output_as_cache_is_accepted():
    # The cache is only read by relu_backward, and max(x, 0) > 0 exactly where x > 0.
    def output_as_cache(x):
        out = np.maximum(x, 0)
        return out, ReLUCache(out)

    assert run_check("relu_forward", output_as_cache).passed


def test_softmax_without_the_shift_overflows_on_large_logits():
    def unshifted(z):
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)

    result = run_check("softmax", unshifted)
    assert failing(result) == {4}
    assert "p contains NaN or infinity" in result.message
    assert "subtract the maximum of each row first (eq-softmax-shift)" in result.message


def test_softmax_along_the_wrong_axis_fails_on_three_axes():
    def axis_one(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    result = run_check("softmax", axis_one)
    assert failing(result) == {3}
    assert "softmax runs along the last axis" in result.message


def test_cross_entropy_mistakes_are_named():
    def summed(logits, y):
        loss, dlogits = losses.softmax_cross_entropy(logits, y)
        return loss * len(y), dlogits

    def per_sample(logits, y):
        return -log_softmax(logits)[np.arange(len(y)), y], \
            losses.softmax_cross_entropy(logits, y)[1]

    def log_of_softmax(logits, y):
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        return -float(np.log(p[np.arange(len(y)), y]).mean()), \
            losses.softmax_cross_entropy(logits, y)[1]

    assert "That is N times the right value" in message("softmax_cross_entropy", summed)
    assert "loss has shape (4,): the loss of a batch is one number" in message(
        "softmax_cross_entropy", per_sample)
    result = run_check("softmax_cross_entropy", log_of_softmax)
    assert failing(result) == {4}
    assert "log-sum-exp trick (eq-logsumexp)" in result.message


def one_sided(f, x, h=1e-5):
    """A reader's numerical_gradient with forward differences instead of centred ones."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        up = f(x)
        x[i] = old
        grad[i] = (up - f(x)) / h
    return grad


def test_numerical_gradient_mistakes_are_named():
    def not_restored(f, x, h=1e-5):
        grad = gradcheck.numerical_gradient(f, x, h)
        x[0] -= h
        return grad

    def on_a_copy(f, x, h=1e-5):
        return gradcheck.numerical_gradient(f, x.copy(), h)

    def fixed_step(f, x, h=1e-5):
        return gradcheck.numerical_gradient(f, x)

    assert "Yours is the one-sided difference" in message("numerical_gradient", one_sided)
    assert "x is not restored: after your function returns, x[0, 0]" in message(
        "numerical_gradient", not_restored)
    result = run_check("numerical_gradient", on_a_copy)
    assert failing(result) == {3}
    assert "Every entry of yours is 0." in result.message
    assert "perturb x itself, in place" in result.message
    result = run_check("numerical_gradient", fixed_step)
    assert failing(result) == {4}
    assert "Use the step h that the caller passes." in result.message


def test_relative_error_without_the_floor_is_nan_for_zero_arrays():
    def no_floor(a, b):
        return float(np.linalg.norm(a - b) / (np.linalg.norm(a) + np.linalg.norm(b)))

    def elementwise(a, b):
        return float(np.max(np.abs(a - b) / np.abs(b)))

    result = run_check("relative_error", no_floor)
    assert failing(result) == {4}
    assert "error contains NaN or infinity" in result.message
    assert "not NaN" in result.message
    assert not run_check("relative_error", elementwise).passed


def test_check_model_mistakes_are_named():
    def never_alarmed(model, x, y, h=1e-5):
        return {key: 0.0 for key in model.parameters()}

    def listed(model, x, y, h=1e-5):
        return list(gradcheck.check_model(model, x, y, h).values())

    def float32_differences(model, x, y, h=1e-5):
        errors = gradcheck.check_model(model, x, y, h)
        return {key: max(error, 1e-3) for key, error in errors.items()}

    result = run_check("check_model", never_alarmed)
    assert failing(result) == {3}
    assert "whose gradient is wrong on purpose" in result.message
    assert "should return a dict" in message("check_model", listed)
    assert "whose gradient is right" in message("check_model", float32_differences)


def test_a_naive_student_loop_passes():
    """Loops written from the equations pass, as they should: no style is imposed."""
    def loops(dout, cache):
        x_padded, w, (SH, SW) = cache.x_padded, cache.w, cache.stride
        (N, F, H_out, W_out), (KH, KW) = dout.shape, w.shape[2:]
        dx_padded, dw = np.zeros_like(x_padded), np.zeros_like(w)
        for n, f, i, j in np.ndindex(N, F, H_out, W_out):
            window = (n, slice(None), slice(SH * i, SH * i + KH), slice(SW * j, SW * j + KW))
            dx_padded[window] += dout[n, f, i, j] * w[f]
            dw[f] += dout[n, f, i, j] * x_padded[window]
        return crop(dx_padded, cache.padding), dw, dout.sum(axis=(0, 2, 3))

    assert run_check("conv2d_backward", loops).passed
    assert run_check("conv2d_backward_naive", loops).passed


# -- a new pair of functions is one entry ---------------------------------------------


def test_a_new_pair_of_functions_needs_one_entry(monkeypatch):
    """What batch normalisation will need: a ForwardCheck and a BackwardCheck entry."""
    def scale_forward(x, gamma):
        return x * gamma, (x, gamma)

    def scale_backward(dout, cache):
        x, gamma = cache
        return dout * gamma, (dout * x).sum(axis=0)

    cases = [exercises.case({"x": (4, 3), "gamma": (3,)}),
             exercises.case({"x": (1, 5), "gamma": (5,)})]
    monkeypatch.setitem(CHECKS, "scale_backward", exercises.BackwardCheck(
        scale_forward, scale_backward, ("dx", "dgamma"), cases))
    assert run_check("scale_backward", scale_backward).passed
    text = message("scale_backward", lambda dout, cache: (dout * cache[1], dout.sum(axis=0)))
    assert "dgamma is wrong" in text and "dx is right" in text
    assert "x (4, 3), gamma (3,)" in text


def test_cases_draw_what_they_promise():
    rng = np.random.default_rng(0)
    distinct = exercises.case({"x": (2, 3, 4, 4)}, values={"x": "distinct"}).arrays(rng)["x"]
    gaps = np.diff(np.sort(distinct.ravel()))
    assert gaps.min() > 0.05, "no near-ties closer than the step h"
    kink_free = exercises.case({"x": (50,)}, values={"x": "kink-free"}).arrays(rng)["x"]
    assert np.abs(kink_free).min() >= 0.1
    as32 = exercises.case({"x": (3,)}, dtype=np.float32).arrays(rng)["x"]
    assert as32.dtype == np.float32
    assert pad(np.ones((1, 1, 1, 1)), (1, 1)).shape == (1, 1, 3, 3)  # used by the hints
