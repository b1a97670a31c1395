"""The checker's entry points and its cases, word for word (issue 27, second round).

Mutation testing of ``cnn/exercises/__init__.py``, ``cases.py`` and ``draws.py``
(tests/MUTATION.md) asked for these: the messages of a name that is not checked,
the defaults ``run_check`` passes on, how each kind of value is drawn and how a case
describes itself.
"""

from __future__ import annotations

import numpy as np
import pytest

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
