"""The checker's entry points and its cases, word for word (issue 27, second round).

Mutation testing of ``cnn/exercises/__init__.py``, ``cases.py`` and ``draws.py``
(tests/MUTATION.md) asked for these: the messages of a name that is not checked,
the defaults ``run_check`` passes on, how each kind of value is drawn and how a case
describes itself.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from test_exercises import one_sided

from cnn import exercises
from cnn.activations import relu_backward, relu_forward
from cnn.exercises import CHECKS, TIME_LIMIT, VALUES, Case, CheckFailed, case, cases

# -- the entry points: check, run_check, gradient_check ------------------------------


def test_a_name_that_is_not_a_str_is_told_what_a_name_is():
    with pytest.raises(TypeError) as error:
        exercises.run_check(3, relu_forward)
    assert str(error.value) == (
        "name must be the name of a checked function, a str such as 'relu_forward',"
        " got int 3")


def test_an_unknown_name_is_told_every_checked_function():
    with pytest.raises(ValueError) as error:
        exercises.check("relu_forwad", relu_forward)
    assert str(error.value) == (
        f"name must be one of the checked functions {sorted(CHECKS)},"
        " got 'relu_forwad'")


def test_a_forward_pass_has_no_plain_gradient_check():
    with pytest.raises(ValueError) as error:
        exercises.gradient_check("relu_forward", relu_forward)
    assert str(error.value) == (
        "relu_forward is not a backward pass or a loss; no gradient check")


def test_run_check_passes_seed_0_and_the_time_limit_by_default(monkeypatch):
    calls = []

    def supervised(chosen, fn, seed, time_limit):
        calls.append((chosen, fn, seed, time_limit))
        return exercises.CheckResult("relu_forward", False, "wrong", [])

    def faulty_helper(result, fn, checks, run_other):
        assert checks is CHECKS
        run_other("relu_backward", relu_backward)
        return result

    monkeypatch.setattr(exercises, "run_supervised", supervised)
    monkeypatch.setattr(exercises, "name_faulty_helper", faulty_helper)
    exercises.run_check("relu_forward", relu_forward)
    exercises.run_check("relu_forward", relu_forward, seed=3, time_limit=0.5)
    assert TIME_LIMIT == 10.0
    assert calls == [(CHECKS["relu_forward"], relu_forward, 0, 10.0),
                     (CHECKS["relu_backward"], relu_backward, 0, 10.0),
                     (CHECKS["relu_forward"], relu_forward, 3, 0.5),
                     (CHECKS["relu_backward"], relu_backward, 3, 0.5)]


def test_check_prints_a_pass_and_raises_a_failure_with_the_message(capsys,
                                                                    monkeypatch):
    seen = []

    def fake_run_check(name, fn, seed, time_limit):
        seen.append((name, fn, seed, time_limit))
        return exercises.CheckResult(name, name == "relu_forward", f"{name}: said",
                                     [])

    monkeypatch.setattr(exercises, "run_check", fake_run_check)
    assert exercises.check("relu_forward", relu_forward) is None
    assert capsys.readouterr().out == "relu_forward: said\n"
    with pytest.raises(CheckFailed) as error:
        exercises.check("relu_backward", relu_backward, seed=2, time_limit=1.5)
    assert str(error.value) == "relu_backward: said"
    assert capsys.readouterr().out == ""
    assert seen == [("relu_forward", relu_forward, 0, TIME_LIMIT),
                    ("relu_backward", relu_backward, 2, 1.5)]


def test_gradient_check_uses_seed_0_by_default(monkeypatch):
    seeds = []
    chosen = CHECKS["relu_backward"]
    monkeypatch.setattr(chosen, "gradient_check",
                        lambda fn, seed: seeds.append((fn, seed)) or ["row"],
                        raising=False)
    assert exercises.gradient_check("relu_backward", relu_backward) == ["row"]
    exercises.gradient_check("relu_backward", relu_backward, seed=4)
    assert seeds == [(relu_backward, 0), (relu_backward, 4)]


# -- how the values of a case are drawn -----------------------------------------------


def test_distinct_values_are_a_shuffled_grid_0_1_apart_centred_on_zero():
    values = cases._distinct(np.random.default_rng(0), (2, 3))
    assert values.shape == (2, 3)
    np.testing.assert_allclose(np.sort(values.ravel()),
                               (np.arange(6) - 3) * 0.1 + 0.05, rtol=0, atol=1e-15)
    other = cases._distinct(np.random.default_rng(1), (4, 5))
    np.testing.assert_allclose(np.sort(other.ravel()),
                               (np.arange(20) - 10) * 0.1 + 0.05, rtol=0, atol=1e-15)


def test_kink_free_values_keep_a_normal_draw_s_sign_and_stay_0_1_from_zero():
    draw = np.random.default_rng(5).standard_normal((50, 4))
    values = cases._kink_free(np.random.default_rng(5), (50, 4))
    np.testing.assert_array_equal(values, np.sign(draw) * (0.1 + np.abs(draw)))


def test_values_with_zeros_are_a_normal_draw_with_about_30_percent_zeroed():
    rng = np.random.default_rng(2)
    draw, zeroed = rng.standard_normal((100, 40)), rng.random((100, 40)) < 0.3
    values = cases._with_zeros(np.random.default_rng(2), (100, 40))
    np.testing.assert_array_equal(values, np.where(zeroed, 0.0, draw))
    assert 0.27 < (values == 0).mean() < 0.33


# -- a case ----------------------------------------------------------------------------


def test_a_case_s_defaults():
    plain = case({"x": (2, 3)})
    assert plain == Case({"x": (2, 3)})
    assert (plain.kwargs, plain.dtype, plain.values, plain.hint, plain.derive,
            plain.note) == ({}, np.float64, {}, "", None, "")
    derive = dict
    full = case({"x": (1,)}, dtype=np.float32, values={"x": "ties"}, hint="h",
                derive=derive, note="n", stride=2)
    assert (full.shapes, full.kwargs, full.dtype, full.values, full.hint,
            full.derive, full.note) == ({"x": (1,)}, {"stride": 2}, np.float32,
                                        {"x": "ties"}, "h", derive, "n")


@pytest.mark.parametrize(("kwargs", "smooth"), [
    ({}, True), ({"values": {"x": "large", "w": "distinct"}}, True),
    ({"values": {"x": "kink-free", "w": "zero"}}, True),
    ({"dtype": np.float32}, False), ({"values": {"w": "ties"}}, False),
    ({"values": {"x": "zeros"}}, False)])
def test_finite_differences_need_float64_and_no_ties_or_zeros(kwargs, smooth):
    assert case({"x": (2, 3), "w": (3,)}, **kwargs).smooth is smooth


def test_a_case_draws_its_arrays_in_order_with_their_values_and_dtype():
    one = case({"x": (2, 3), "w": (3,)}, dtype=np.float32, values={"w": "zero"})
    arrays = one.arrays(np.random.default_rng(7))
    assert list(arrays) == ["x", "w"]
    assert all(a.dtype == np.float32 for a in arrays.values())
    drawn = np.random.default_rng(7).standard_normal((2, 3))
    np.testing.assert_array_equal(arrays["x"], drawn.astype(np.float32))
    np.testing.assert_array_equal(arrays["w"], np.zeros(3, np.float32))
    ties = case({"x": (30,)}, values={"x": "ties"}).arrays(np.random.default_rng(0))
    assert set(ties["x"].tolist()) == {0.0, 1.0, 2.0}
    large = case({"x": (400,)}, values={"x": "large"}).arrays(np.random.default_rng(0))
    assert 800 < large["x"].std() < 1200


def test_a_case_s_derive_relates_its_arrays():
    def derive(arrays):
        return arrays | {"a": 4 * arrays["b"]}

    arrays = case({"a": (2,), "b": (2,)}, derive=derive).arrays(
        np.random.default_rng(0))
    np.testing.assert_array_equal(arrays["a"], 4 * arrays["b"])


def test_a_case_describes_its_shapes_values_arguments_dtype_and_note():
    assert case({"x": (2, 3)}).describe() == "x (2, 3)"
    assert case({"x": (2, 3)}, values={"x": "distinct"}).describe() == "x (2, 3)"
    assert case({"x": (2, 3, 4, 4), "w": (1,)}, dtype=np.float32,
                values={"x": "ties", "w": "zero"}, note="a note", stride=2,
                padding=1).describe() == (
        "x (2, 3, 4, 4) with ties, w (1,) = 0, stride=2, padding=1, float32 (a note)")
    assert case({"x": (1,)}, values={"x": "large"}).describe() == "x (1,) of size 1000"


def test_every_kind_of_value_has_a_draw_and_a_description():
    assert {name: text for name, (_, text) in VALUES.items()} == {
        "normal": "", "distinct": "", "kink-free": "", "ties": "with ties",
        "zeros": "with exact zeros", "large": "of size 1000", "zero": "= 0"}


# -- the checks of drawing functions: initialisers and dropout's mask ------------------


def run(name, fn):
    """The check without its sandbox: the functions here call the book's own."""
    return exercises._get(name).run(fn)


def detail(result):
    """The sentence that says what is wrong: the second line of a failure."""
    assert result.passed is False
    return result.message.split("\n")[1]


def he_with_std(factor=1.0, shift=0.0):
    """A he_normal: exactly ``factor`` times He's spread, mean ``shift``."""
    def he_normal(shape, fan_in, rng=None, dtype=np.float32):
        half = rng.standard_normal(int(np.prod(shape)) // 2)
        both = np.concatenate([half, -half])
        w = both / both.std() * factor * np.sqrt(2 / fan_in) + shift
        return w.reshape(shape).astype(dtype)
    return he_normal


def test_an_initialiser_with_the_spread_of_the_derivation_passes():
    assert run("he_normal", he_with_std()).passed
    assert run("he_normal", he_with_std(factor=1.025)).passed, "within sampling error"
    assert run("he_normal", he_with_std(factor=0.975)).passed


def test_a_wrong_spread_is_told_what_goes_under_the_square_root():
    result = run("he_normal", he_with_std(factor=np.sqrt(0.5)))
    assert result.verdicts == ("wrong spread",) * 3
    assert result.message.split("\n")[0] == (
        "he_normal fails case 1 of 3: shape (256, 128), fan_in=256.")
    assert detail(result) == (
        "Over your 32768 weights the standard deviation is 0.0625 and the mean 0; the"
        " chapter's derivation asks for mean 0 and standard deviation 0.08839. Check"
        " what goes under the square root: a variance, not a standard deviation.")
    assert run("he_normal", he_with_std(factor=1.035)).verdicts[0] == "wrong spread"
    assert run("he_normal", he_with_std(factor=0.965)).verdicts[0] == "wrong spread"


def test_an_initialiser_s_mean_may_be_off_by_sampling_error_only():
    # Case 1: 32768 weights of standard deviation 0.08839, so 5 sigma of the mean is
    # 5 * 0.08839 / 181 = 0.00244.
    assert run("he_normal", he_with_std(shift=0.002)).verdicts[0] is None
    assert run("he_normal", he_with_std(shift=0.0027)).verdicts[0] == "wrong spread"
    assert run("he_normal", he_with_std(shift=-0.0027)).verdicts[0] == "wrong spread"


RNG_IGNORED = (
    "Two calls with generators in the same state gave different results: draw every"
    " random number from the rng argument (rng.standard_normal, rng.random), never"
    " from np.random's global functions.")


def test_an_initialiser_ignoring_its_rng_is_told_to_draw_from_it():
    global_draws = np.random.default_rng(3)

    def he_normal(shape, fan_in, rng=None, dtype=np.float32):
        once = he_with_std()(shape, fan_in, rng, dtype)
        return once * (1 + 1e-3 * global_draws.random())

    result = run("he_normal", he_normal)
    assert result.verdicts == ("ignores rng",) * 3
    assert detail(result) == RNG_IGNORED


def mask_with(fraction, scale=None, cache_mask=None, ignore_rng=None):
    """A dropout_forward dropping exactly ``fraction`` of the units, chosen by rng."""
    def dropout_forward(x, p, rng):
        from cnn.regularization import DropoutCache
        order = (ignore_rng or rng).permutation(x.size)
        mask = (order >= round(fraction(p) * x.size)).reshape(x.shape)
        kept_scale = 1 / (1 - p) if scale is None else scale
        out = x * mask * kept_scale
        kept = mask if cache_mask is None else cache_mask(mask)
        return out, DropoutCache(kept, 1 / (1 - p), x.dtype)
    return dropout_forward


def test_a_mask_dropping_about_p_of_the_units_passes():
    assert run("dropout_forward", mask_with(lambda p: p)).passed
    # 5 sigma of the fraction dropped: 0.056 for 2000 units at p = 0.5, 0.10 for
    # 384 at p = 0.2, and exactly 0 at p = 0.
    assert run("dropout_forward", mask_with(lambda p: p and p + 0.05)).passed
    assert run("dropout_forward", mask_with(lambda p: p and p - 0.05)).passed


def test_a_mask_dropping_too_many_is_told_the_fraction():
    result = run("dropout_forward", mask_with(lambda p: p + 0.1))
    wrong = "wrong fraction dropped"
    assert result.verdicts == (wrong, None, wrong, wrong), "0.1 is within 5 sigma"
    assert detail(result) == (
        "Your mask dropped 60.0% of the 2000 units; p = 0.5 asks for about 50%. A unit"
        " is dropped with probability p and kept with probability 1 - p.")
    assert run("dropout_forward", mask_with(lambda p: p - 0.06)).verdicts[0] == (
        "wrong fraction dropped")


def test_kept_units_not_scaled_are_told_the_scale():
    result = run("dropout_forward", mask_with(lambda p: p, scale=1.0))
    assert result.verdicts == ("kept units not scaled", "kept units not scaled", None,
                               "kept units not scaled")
    assert detail(result) == (
        "A kept unit should be x / (1 - p) = 2 x (inverted dropout,"
        " eq-dropout-forward), so that the expected output is x (eq-dropout-mean).")


def test_the_scale_is_exact_in_float64_and_within_rounding_in_float32():
    float32_rounding = mask_with(lambda p: p, scale=None)

    def dropout_forward(x, p, rng):
        out, cache = float32_rounding(x, p, rng)
        return out * (1 + 2e-7), cache

    assert run("dropout_forward", dropout_forward).verdicts == (
        "kept units not scaled",) * 3 + (None,)

    def off_by_1e_10(x, p, rng):
        out, cache = float32_rounding(x, p, rng)
        return out * (1 + 1e-10), cache

    assert run("dropout_forward", off_by_1e_10).verdicts == (
        "kept units not scaled",) * 3 + (None,), "no absolute tolerance either"


def test_a_mask_ignoring_its_rng_is_told_to_draw_from_it():
    global_draws = np.random.default_rng(0)
    result = run("dropout_forward", mask_with(lambda p: p, ignore_rng=global_draws))
    assert result.verdicts[0] == "ignores rng"
    assert detail(result) == RNG_IGNORED


def test_a_dropout_cache_with_another_mask_is_wrong():
    result = run("dropout_forward", mask_with(lambda p: p, cache_mask=np.logical_not))
    assert result.verdicts == ("wrong cache", "wrong cache", "wrong cache",
                               "wrong cache")
    assert detail(result) == (
        "out is right, but the cache is not: from it the book's dropout_backward lets"
        " the gradient through other units, or with another scale, than your forward"
        " pass kept.")


def test_a_dropout_cache_the_backward_pass_cannot_use_names_its_class():
    from cnn.exercises.compare import _error_text
    from cnn.regularization import dropout_backward
    right = mask_with(lambda p: p)

    def dropout_forward(x, p, rng):
        return right(x, p, rng)[0], "the mask"

    try:
        dropout_backward(np.ones(3), "the mask")
    except Exception as error:
        text = _error_text(error)
    result = run("dropout_forward", dropout_forward)
    assert result.verdicts == ("unusable cache",) * 4
    assert detail(result) == (
        "out is right, but the book's dropout_backward cannot use the cache your"
        f" function returns: {text}. Return a DropoutCache as the docstring says.")


def test_a_dropout_forward_sees_units_at_least_0_1_from_zero_and_keeps_them():
    seen = []
    right = mask_with(lambda p: p)

    def dropout_forward(x, p, rng):
        seen.append((x.copy(), p))
        return right(x, p, rng)

    assert run("dropout_forward", dropout_forward).passed
    assert len(seen) == 3 * 4, "once checked, twice with generators in one state"
    assert [(x.shape, x.dtype, p) for x, p in seen[::3]] == [
        ((40, 50), np.float64, 0.5), ((2, 3, 8, 8), np.float64, 0.2),
        ((30, 40), np.float64, 0.0), ((40, 50), np.float32, 0.5)]
    for x, _ in seen:
        assert np.abs(x).min() >= np.float32(0.1) and np.abs(x).max() < 1.1
        assert (x < 0).any() and (x > 0).any()
        assert len(np.unique(np.abs(x))) == x.size, "uniform magnitudes, no ties"


# -- the checks whose cases are built: numerical_gradient and check_model -------------
# Their cases are built when the check is made; these tests make them again.


def test_numerical_gradient_s_cases_in_words_and_their_hints():
    from cnn.exercises.special import NumericalGradientCheck
    made = NumericalGradientCheck()
    assert made.name == "numerical_gradient"
    assert [(one.text, one.hint) for one in made.cases] == [
        ("f(x) = sum(x**3), x (3, 4)", ""),
        ("f(x) = sum(sin(x) * c), x (2, 3, 2)", ""),
        ("f ignores its argument and reads x through a closure, x (3, 2)",
         "f reads x through a closure, as a layer reads its weights, so perturb x"
         " itself, in place, and restore each entry (eq-centred-difference);"
         " perturbing a copy changes nothing that f sees."),
        ("f(x) = sum(x**3), x (4,), h=1e-3", "Use the step h that the caller passes.")]
    assert [one.describe() for one in made.cases] == [one.text for one in made.cases]


def test_numerical_gradient_s_cases_are_the_functions_they_describe():
    from cnn import gradcheck
    from cnn.exercises.special import NumericalGradientCheck
    calls = []

    def recording(f, x, h=1e-5):
        calls.append((x.copy(), h, f(x), f(np.zeros_like(x))))
        return gradcheck.numerical_gradient(f, x, h)

    assert NumericalGradientCheck().run(recording).passed
    shapes = [(x.shape, h) for x, h, _, _ in calls]
    assert shapes == [((3, 4), 1e-5), ((2, 3, 2), 1e-5), ((3, 2), 1e-5), ((4,), 1e-3)]
    (cube, _, f_cube, f0), (_, _, _, f_sin0), (_, _, f_w, f_w0), _ = calls
    assert f_cube == pytest.approx(np.sum(cube ** 3)) and f0 == 0 and f_sin0 == 0
    assert f_w == f_w0, "the closure's f ignores its argument"


def test_a_numerical_gradient_within_1e_8_passes_and_one_beyond_fails():
    from cnn import gradcheck
    from cnn.exercises.special import NumericalGradientCheck

    def scaled(factor):
        return lambda f, x, h=1e-5: gradcheck.numerical_gradient(f, x, h) * factor

    # The relative error of g (1 + e) against g is e / (2 + e).
    assert NumericalGradientCheck().run(scaled(1 + 1.9e-8)).passed
    assert NumericalGradientCheck().run(scaled(1 + 2.1e-8)).verdicts[0] == (
        "grad: wrong values (1.0e-08)")
    result = NumericalGradientCheck().run(scaled(1 + 2e-6))
    assert result.verdicts[0] == "grad: wrong values (1.0e-06)"
    assert detail(result).startswith(
        "grad is wrong: relative error 1.0e-06 against the centred differences of the"
        " book's numerical_gradient. ")
    assert "one-sided" not in detail(result)


def test_x_not_restored_is_told_the_entry_and_its_old_value():
    from cnn import gradcheck
    from cnn.exercises.special import NumericalGradientCheck
    olds = []

    def not_restored(f, x, h=1e-5):
        grad = gradcheck.numerical_gradient(f, x, h)
        olds.append(x[1, 2])
        x[1, 2] = 7.0
        return grad

    result = NumericalGradientCheck().run(not_restored)
    assert result.verdicts[0] == "x not restored"
    assert detail(result) == (
        f"x is not restored: after your function returns, x[1, 2] is"
        f" {np.float64(7.0)!r} instead of"
        f" {olds[0]!r}. Put every entry back to its exact old value right after its"
        " two evaluations of f.")


def test_a_one_sided_difference_is_named_with_the_caller_s_step():
    from cnn.exercises.special import NumericalGradientCheck
    result = NumericalGradientCheck().run(one_sided)
    assert all(v.startswith("grad: wrong values (") for v in result.verdicts)
    sentence = (
        " Yours is the one-sided difference (f(x + h) - f(x)) / h, whose error is of"
        " order h (eq-one-sided-difference); the centred one (f(x + h) - f(x - h)) /"
        " (2 h) is of order h**2 (eq-centred-difference).")
    assert detail(result).endswith(sentence)
    assert detail(result).startswith("grad is wrong: relative error ")
    check = NumericalGradientCheck()
    check.cases = check.cases[3:]
    assert check.run(one_sided).message.split("\n")[1].endswith(sentence), (
        "case 4 passes h=1e-3")

    def fixed_step(f, x, h=1e-5):
        return one_sided(f, x)

    assert sentence not in check.run(fixed_step).message


def test_twice_the_numerical_gradient_is_told_the_factor():
    from cnn import gradcheck
    from cnn.exercises.special import NumericalGradientCheck
    result = NumericalGradientCheck().run(
        lambda f, x, h=1e-5: 2 * gradcheck.numerical_gradient(f, x, h))
    assert result.verdicts[0] == "grad: wrong values (3.3e-01)"
    assert detail(result).endswith(" 2 times the expected one.") or (
        "2 times" in detail(result)), detail(result)


def test_check_model_s_cases_in_words():
    from cnn.exercises.special import CheckModelCheck
    made = CheckModelCheck()
    assert made.name == "check_model"
    assert [(one.describe(), one.hint) for one in made.cases] == [
        ("Dense(5, 3), x (4, 5)", ""),
        ("Conv2D(1, 2, 3, padding=1), ReLU, MaxPool2D(2), Flatten, Dense(8, 3),"
         " x (3, 1, 4, 4)", ""),
        ("the same network, with the bias gradient of its dense layer deliberately"
         " halved", "A check must report a large error for the one wrong gradient,"
         " and small errors for the others.")]


def test_check_model_s_networks_are_the_ones_described():
    from cnn import gradcheck
    from cnn.exercises.special import CheckModelCheck
    seen = []

    def recording(model, x, y, h=1e-5):
        seen.append(([type(layer).__name__ for layer in model.layers], x.shape,
                     y.copy(), {k: v.dtype for k, v in model.parameters().items()}))
        return gradcheck.check_model(model, x, y, h)

    assert CheckModelCheck().run(recording).passed
    layers = [name for name, _, _, _ in seen]
    assert layers == [["Dense"], ["Conv2D", "ReLU", "MaxPool2D", "Flatten", "Dense"],
                      ["Conv2D", "ReLU", "MaxPool2D", "Flatten",
                       "_HalvedBiasGradient"]]
    assert [shape for _, shape, _, _ in seen] == [(4, 5), (3, 1, 4, 4), (3, 1, 4, 4)]
    for _, shape, y, dtypes in seen:
        assert y.shape == shape[:1] and set(y.tolist()) <= {0, 1, 2}
        assert set(dtypes.values()) == {np.dtype(np.float64)}
    assert seen[1][3].keys() == {"0.w", "0.b", "4.w", "4.b"}


def errors_times(factor, key="4.b"):
    from cnn import gradcheck

    def check_model(model, x, y, h=1e-5):
        errors = gradcheck.check_model(model, x, y, h)
        return errors | ({key: errors[key] * factor} if key in errors else {})
    return check_model


def test_the_wrong_gradient_must_be_reported_within_a_factor_of_two():
    from cnn.exercises.special import CheckModelCheck
    assert CheckModelCheck().run(errors_times(0.5)).passed
    assert CheckModelCheck().run(errors_times(2.0)).passed
    low = CheckModelCheck().run(errors_times(0.49))
    assert low.verdicts == (None, None, "4.b: missed")
    assert re.fullmatch(
        r"Your check reports \d\.\de-\d\d for '4\.b', whose gradient is wrong on"
        r" purpose: the book's check_model reports \d\.\de-\d\d\.", detail(low))
    assert CheckModelCheck().run(errors_times(2.01)).verdicts == (
        None, None, "4.b: missed")


def test_a_false_alarm_names_the_parameter_and_the_book_s_error():
    from cnn import gradcheck
    from cnn.exercises.special import CheckModelCheck

    def alarmed(model, x, y, h=1e-5):
        return gradcheck.check_model(model, x, y, h) | {"0.b": 1e-6}

    result = CheckModelCheck().run(alarmed)
    assert result.verdicts[0] == "0.b: false alarm"
    assert re.fullmatch(
        r"Your check reports 1\.0e-06 for '0\.b', whose gradient is right: the book's"
        r" check_model reports \de-\d\d\. Compare backward's gradient with centred"
        r" differences of the loss, both in float64\.", detail(result))

    def just_below(model, x, y, h=1e-5):
        return gradcheck.check_model(model, x, y, h) | {"0.b": 0.99e-6}

    assert CheckModelCheck().run(just_below).passed


@pytest.mark.parametrize("value", [None, float("nan"), float("inf"), "0.1", 1])
def test_an_error_that_is_not_a_finite_float_is_named(value):
    from cnn import gradcheck
    from cnn.exercises.special import CheckModelCheck

    def check_model(model, x, y, h=1e-5):
        return gradcheck.check_model(model, x, y, h) | {"0.w": value}

    result = CheckModelCheck().run(check_model)
    assert result.verdicts[0] == "0.w: not a number"
    assert detail(result) == (
        f"The value for '0.w' is {value!r}; expected a finite float, the relative"
        " error eq-relative-error.")


def test_a_numpy_float_error_is_a_number():
    from cnn import gradcheck
    from cnn.exercises.special import CheckModelCheck

    def check_model(model, x, y, h=1e-5):
        return {k: np.float32(v) for k, v in gradcheck.check_model(model, x, y,
                                                                    h).items()}

    assert CheckModelCheck().run(check_model).passed


def test_a_dict_with_other_keys_is_told_the_keys_of_the_parameters():
    from cnn.exercises.special import CheckModelCheck

    def by_layer(model, x, y, h=1e-5):
        return {"w": 0.0, "b": 0.0}

    result = CheckModelCheck().run(by_layer)
    assert result.verdicts[0] == "wrong keys"
    assert detail(result) == (
        "Your dict has the keys ['b', 'w']; expected one per parameter, ['0.b', '0.w'],"
        " the keys of model.parameters().")


def test_a_list_of_errors_is_told_to_be_a_dict():
    from cnn import gradcheck
    from cnn.exercises.special import CheckModelCheck
    result = CheckModelCheck().run(
        lambda model, x, y, h=1e-5: list(gradcheck.check_model(model, x, y, h)))
    assert result.verdicts[0] == "not a dict"
    assert detail(result) == (
        "Your function returned a list of 2 values; it should return a dict with one"
        " relative error per parameter, keyed like model.parameters().")


def test_a_check_that_changes_the_model_is_told_what_it_changed():
    from cnn import gradcheck
    from cnn.exercises.special import CheckModelCheck
    from cnn.layers import ReLU

    def appends(model, x, y, h=1e-5):
        errors = gradcheck.check_model(model, x, y, h)
        model.layers.append(ReLU())
        return errors

    result = CheckModelCheck().run(appends)
    assert result.verdicts[0] == "changed the model"
    assert detail(result) == (
        "Your function changed the model: it has 2 layers and the parameters"
        " ['0.b', '0.w'] after the check, 1 layers and ['0.b', '0.w'] before. A check"
        " only reads the model, and puts every probed entry back.")


@pytest.mark.parametrize("what", ["x", "y", "the parameter '0.w'"])
def test_a_check_that_leaves_an_input_changed_is_named(what):
    from cnn import gradcheck
    from cnn.exercises.special import CheckModelCheck

    def leaves(model, x, y, h=1e-5):
        errors = gradcheck.check_model(model, x, y, h)
        changed = {"x": x, "y": y, "the parameter '0.w'": model.parameters()["0.w"]}
        changed[what][0] += 1
        return errors

    result = CheckModelCheck().run(leaves)
    assert result.verdicts[0] == f"modified {what}"
    assert detail(result).startswith(
        f"Your function changed its input {what} in place, first at {what}[0")


def test_a_drawing_check_made_again_keeps_what_it_is_given():
    # The catalogue makes its checks at import; these are made here, as a new check
    # of an initialiser or of dropout would be.
    from cnn.exercises.deeper import DROPOUT_FORWARD_CASES, HE_CASES
    from cnn.exercises.draws import DropoutForwardCheck, InitialiserCheck
    from cnn.init import he_normal
    from cnn.regularization import dropout_backward, dropout_forward

    def std(fan_in, **_):
        return np.sqrt(2 / fan_in)

    made = InitialiserCheck(he_normal, HE_CASES, std)
    assert (made.reference, made.cases, made.std, made.name) == (
        he_normal, HE_CASES, std, "he_normal")
    assert made.run(he_with_std()).passed
    assert made.run(he_with_std(factor=0.9)).verdicts == ("wrong spread",) * 3
    dropout = DropoutForwardCheck(dropout_forward, dropout_backward,
                                  DROPOUT_FORWARD_CASES)
    assert (dropout.reference, dropout.backward, dropout.cases, dropout.name) == (
        dropout_forward, dropout_backward, DROPOUT_FORWARD_CASES, "dropout_forward")
    assert dropout.run(mask_with(lambda p: p)).passed
    assert dropout.run(mask_with(lambda p: p, cache_mask=np.logical_not)).verdicts == (
        ("wrong cache",) * 4)


def test_an_initialiser_s_wrong_shape_and_dtype_are_named_as_w():
    def transposed(shape, fan_in, rng=None, dtype=np.float32):
        return he_with_std()(shape, fan_in, rng, dtype).T

    def float64(shape, fan_in, rng=None, dtype=np.float32):
        return he_with_std()(shape, fan_in, rng, np.float64)

    result = run("he_normal", transposed)
    assert detail(result) == (
        "w has shape (128, 256), expected (256, 128). That is the transposed shape.")
    result = run("he_normal", float64)
    assert result.verdicts == ("w: wrong dtype", "w: wrong dtype", None)
    assert detail(result) == (
        "w has dtype float64, expected float32, the dtype of the input: allocate with"
        " np.zeros_like or dtype=x.dtype rather than np.zeros alone.")


def test_each_call_of_a_drawing_function_gets_a_generator_in_the_same_state():
    states = []

    def recording(shape, fan_in, rng=None, dtype=np.float32):
        states.append(rng.bit_generator.state["state"]["state"])
        return he_with_std()(shape, fan_in, rng, dtype)

    assert run("he_normal", recording).passed
    assert len(states) == 3 * 3 and len(set(states)) == 3
    assert states[0::3] == states[1::3] == states[2::3]
    right, states = mask_with(lambda p: p), []

    def dropout_forward(x, p, rng):
        states.append(rng.bit_generator.state["state"]["state"])
        return right(x, p, rng)

    assert run("dropout_forward", dropout_forward).passed
    assert len(set(states)) == 4
    assert states[0::3] == states[1::3] == states[2::3]


def test_a_dropout_forward_returning_out_alone_is_told_to_return_the_pair():
    right = mask_with(lambda p: p)
    result = run("dropout_forward", lambda x, p, rng: right(x, p, rng)[0])
    assert result.verdicts == ("not (out, cache)",) * 4
    assert detail(result) == (
        "Your function returned an array of shape (40, 50); it should return a pair"
        " (out, cache): the output and the DropoutCache that the backward pass needs.")


def test_a_dropout_forward_s_wrong_dtype_or_modified_input_is_named():
    right = mask_with(lambda p: p)

    def float64(x, p, rng):
        out, cache = right(x, p, rng)
        return out.astype(np.float64), cache

    result = run("dropout_forward", float64)
    assert result.verdicts == (None, None, None, "out: wrong dtype")
    assert result.message.split("\n")[1] == (
        "out has dtype float64, expected float32, the dtype of the input: allocate"
        " with np.zeros_like or dtype=x.dtype rather than np.zeros alone.")

    def in_place(x, p, rng):
        out, cache = right(x, p, rng)
        x *= 2
        return out, cache

    result = run("dropout_forward", in_place)
    assert result.verdicts[0] == "modified x"
    assert detail(result).startswith(
        "Your function changed its input x in place, first at x[0, 0].")


def test_a_dropout_cache_is_exact_in_float64_and_within_rounding_in_float32():
    from cnn.regularization import DropoutCache
    right = mask_with(lambda p: p)

    def rescaled(x, p, rng):
        out, cache = right(x, p, rng)
        return out, DropoutCache(cache.mask, cache.scale * (1 + 1e-10), cache.dtype)

    assert run("dropout_forward", rescaled).verdicts == ("wrong cache",) * 3 + (None,)


def test_an_infinite_scale_in_the_cache_is_wrong_under_the_caller_s_seterr():
    from cnn.regularization import DropoutCache
    right = mask_with(lambda p: p)

    def infinite(x, p, rng):
        out, cache = right(x, p, rng)
        return out, DropoutCache(cache.mask, np.inf, cache.dtype)

    with np.errstate(all="raise"):
        result = run("dropout_forward", infinite)
    assert result.verdicts == ("wrong cache",) * 4


def test_numerical_gradient_s_functions_are_the_ones_described():
    from cnn.exercises.special import NumericalGradientCheck
    cubes, sines, closure, step = NumericalGradientCheck().cases
    f, x, kwargs = cubes.build(np.random.default_rng(4))
    assert (x.shape, kwargs) == ((3, 4), {})
    assert f(x) == pytest.approx(float(np.sum(x ** 3)))
    drawn = np.random.default_rng(4)
    x_sin, c = drawn.standard_normal((2, 3, 2)), drawn.standard_normal((2, 3, 2))
    f, x, kwargs = sines.build(np.random.default_rng(4))
    np.testing.assert_array_equal(x, x_sin)
    assert (f(x), kwargs) == (pytest.approx(float(np.sum(np.sin(x) * c))), {})
    drawn = np.random.default_rng(4)
    weights, v = drawn.standard_normal((3, 2)), drawn.standard_normal(2)
    f, x, kwargs = closure.build(np.random.default_rng(4))
    np.testing.assert_array_equal(x, weights)
    assert f(None) == pytest.approx(float(np.sum(np.tanh(weights @ v))))
    f, x, kwargs = step.build(np.random.default_rng(4))
    assert (x.shape, kwargs) == ((4,), {"h": 1e-3})


def test_a_numerical_gradient_of_the_wrong_shape_is_named_grad():
    from cnn import gradcheck
    from cnn.exercises.special import NumericalGradientCheck
    result = NumericalGradientCheck().run(
        lambda f, x, h=1e-5: gradcheck.numerical_gradient(f, x, h).T)
    assert result.verdicts[0] == "grad: wrong shape"
    assert detail(result) == (
        "grad has shape (4, 3), expected (3, 4). That is the transposed shape.")
    result = NumericalGradientCheck().run(
        lambda f, x, h=1e-5: gradcheck.numerical_gradient(f, x, h) * (1 + 2e-6))
    assert " The first wrong entry in row-major order is grad[" in detail(result)


def test_the_wrong_network_s_bias_gradient_is_half_the_right_one():
    from cnn.exercises.special import _HalvedBiasGradient
    from cnn.layers import Dense
    halved = _HalvedBiasGradient(4, 3, rng=np.random.default_rng(0), dtype=np.float64)
    right = Dense(4, 3, rng=np.random.default_rng(0), dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((5, 4))
    dout = np.random.default_rng(2).standard_normal((5, 3))
    for layer in (halved, right):
        layer.forward(x)
    np.testing.assert_array_equal(halved.backward(dout), right.backward(dout))
    np.testing.assert_array_equal(halved.grads["w"], right.grads["w"])
    np.testing.assert_allclose(halved.grads["b"], right.grads["b"] / 2, rtol=1e-15)


def test_check_model_s_networks_are_drawn_from_the_case_s_generator():
    from cnn.exercises.special import CheckModelCheck
    for one in CheckModelCheck().cases:
        (model, x, _), (again, _, _), (other, _, _) = (
            one.build(np.random.default_rng(seed)) for seed in (0, 0, 1))
        for key, value in model.parameters().items():
            np.testing.assert_array_equal(value, again.parameters()[key])
            if key.endswith("w"):
                assert not np.array_equal(value, other.parameters()[key]), key
    shapes = [{key: value.shape for key, value in one.build(
        np.random.default_rng(0))[0].parameters().items()}
        for one in CheckModelCheck().cases]
    assert shapes == [{"0.w": (5, 3), "0.b": (3,)}] + [
        {"0.w": (2, 1, 3, 3), "0.b": (2,), "4.w": (8, 3), "4.b": (3,)}] * 2


def test_check_model_s_labels_are_every_one_of_the_three_classes():
    from cnn.exercises.special import CheckModelCheck
    for one in CheckModelCheck().cases:
        labels = np.concatenate([one.build(np.random.default_rng(seed))[2]
                                 for seed in range(30)])
        assert set(labels.tolist()) == {0, 1, 2}, one.text


# -- the catalogue's builders of cases and checks, called again -----------------------
# The catalogue calls them at import; these tests call them as a new entry would.


def test_the_catalogue_s_case_builders_give_the_shapes_of_their_arguments():
    from cnn.exercises import catalogue
    assert catalogue._conv(2, 3, 5, 6, 4, 3, 2, stride=2) == case(
        {"x": (2, 3, 5, 6), "w": (4, 3, 3, 2), "b": (4,)}, stride=2)
    assert catalogue._im2col_case(2, 3, 5, 6, 3, 2, 1, 2) == case(
        {"x_padded": (2, 3, 5, 6)}, kernel_size=(3, 2), stride=(1, 2))
    assert catalogue._im2col_case(1, 1, 4, 4, 1, 1, 1, 1, np.float32).dtype == (
        np.float32)
    # (7 - 3) // 2 + 1 = 3 rows and (6 - 2) // 1 + 1 = 5 columns of windows.
    assert catalogue._col2im_case(1, 2, 7, 6, 3, 2, 2, 1) == case(
        {"dcols": (1, 12, 15)}, x_padded_shape=(1, 2, 7, 6), kernel_size=(3, 2),
        stride=(2, 1))
    assert catalogue._col2im_case(1, 1, 4, 4, 1, 1, 1, 1, np.float32).dtype == (
        np.float32)


def test_a_relation_derives_a_from_b_and_keeps_b():
    from cnn.exercises import catalogue
    b = np.arange(3.0)
    derived = catalogue._relations(lambda v: 4 * v)({"a": np.zeros(3), "b": b})
    assert list(derived) == ["a", "b"] and derived["b"] is b
    np.testing.assert_array_equal(derived["a"], 4 * b)


def test_the_catalogue_registers_each_check_under_its_name():
    from cnn.exercises import catalogue
    first, second = CHECKS["relu_forward"], CHECKS["relu_backward"]
    assert catalogue._register(first, second) == {"relu_forward": first,
                                                  "relu_backward": second}


def test_the_deeper_case_builders_and_the_seeded_dropout():
    from cnn.exercises import deeper
    from cnn.regularization import dropout_forward
    assert deeper._convt(2, 3, 4, 5, 2, 3, 1, stride=2) == case(
        {"x": (2, 3, 4, 5), "w": (3, 2, 3, 1), "b": (2,)}, stride=2)
    x = np.random.default_rng(0).standard_normal((6, 7))
    out, cache = deeper.dropout_forward_seeded(x, 0.5)
    expected, expected_cache = dropout_forward(x, 0.5, np.random.default_rng(7))
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(cache.mask, expected_cache.mask)
