"""The checks of the part "Modern convolutional networks", made again and word for word.

``cnn/exercises/modern.py`` builds its cases and checks when it is imported, before
mutation testing switches a mutant on (tests/MUTATION.md): these tests call its
builders again, make its residual-block checks again, and pin every message and
gradient-check row of those checks.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnn import exercises
from cnn.activations import relu_backward
from cnn.conv import output_size
from cnn.exercises import CHECKS, modern
from cnn.exercises.cases import case
from cnn.exercises.compare import _error_text
from cnn.layers import (
    Conv2D,
    Dense,
    ReLU,
    residual_backward,
    residual_forward,
)
from cnn.losses import softmax_cross_entropy


def detail(result):
    """The sentence that says what is wrong: the second line of a failure."""
    assert result.passed is False
    return result.message.split("\n")[1]


# -- the builders of cases, called again ---------------------------------------------


def test_a_convolution_case_gives_each_group_its_channels():
    assert modern._conv(2, 4, 5, 6, 6, 3, 2, groups=2, stride=1) == case(
        {"x": (2, 4, 5, 6), "w": (6, 2, 3, 2), "b": (6,)}, groups=2, stride=1)
    drawn = modern._conv(2, 4, 5, 6, 6, 3, 2, groups=2).arrays(np.random.default_rng(0))
    assert drawn["w"].shape == (6, 2, 3, 2)
    assert modern._conv(1, 3, 4, 4, 2, 1, 1, padding=1) == case(
        {"x": (1, 3, 4, 4), "w": (2, 3, 1, 1), "b": (2,)}, groups=1, padding=1)


def test_an_im2col_case_names_the_dilated_row_only_when_dilated():
    dilated = modern._im2col_case(2, 3, 9, 8, 3, 2, 2, 1, 2, 3)
    assert dilated == case(
        {"x_padded": (2, 3, 9, 8)}, kernel_size=(3, 2), stride=(2, 1),
        dilation=(2, 3), dtype=np.float64, hint=(
            "Row (c, p, q) of column (i, j) holds x_padded[n, c, SH i + DH p,"
            " SW j + DW q] here (eq-dconv-forward)."))
    plain = modern._im2col_case(1, 1, 4, 4, 2, 2, 1, 1, 1, 1, np.float32)
    assert plain == case({"x_padded": (1, 1, 4, 4)}, kernel_size=(2, 2), stride=(1, 1),
                         dilation=(1, 1), dtype=np.float32, hint="")
    assert modern._im2col_case(1, 1, 4, 4, 2, 2, 1, 1, 2, 1).hint == dilated.hint
    assert modern._im2col_case(1, 1, 4, 4, 2, 2, 1, 1, 1, 2).hint == dilated.hint


def test_a_col2im_case_has_one_column_per_output_position():
    # 9x8 padded, 3x2 kernel, stride (2, 1), dilation (2, 3): H_out = (9 - 5) // 2 + 1
    # = 3 and W_out = (8 - 4) // 1 + 1 = 5.
    assert output_size((9, 8), (3, 2), (2, 1), (0, 0), (2, 3)) == (3, 5)
    assert modern._col2im_case(2, 3, 9, 8, 3, 2, 2, 1, 2, 3) == case(
        {"dcols": (2, 3 * 3 * 2, 3 * 5)}, dtype=np.float64, x_padded_shape=(2, 3, 9, 8),
        kernel_size=(3, 2), stride=(2, 1), dilation=(2, 3))
    assert modern._col2im_case(1, 1, 4, 4, 1, 1, 1, 1, 1, 1, np.float32).dtype == (
        np.float32)


def test_a_normalisation_case_counts_the_entries_of_each_statistic():
    assert modern._normalize((2, 3, 4, 5), (1, 3), dtype=np.float32) == case(
        {"x": (2, 3, 4, 5)}, axes=(1, 3), dtype=np.float32, hint=(
            "The statistics are taken over the axes (1, 3) here: one mean and one"
            " variance for each index of the other axes, m = 15 entries each."))


def test_a_group_normalisation_case_names_the_size_of_a_group():
    assert modern._groupnorm(2, 6, 3, 4, 3, note="n") == case(
        {"x": (2, 6, 3, 4), "gamma": (6,), "beta": (6,)}, groups=3, note="n", hint=(
            "groups=3 here: sample n's channels form 3 groups of C // G = 2, each"
            " standardised over its channels and all of H and W; gamma and beta are"
            " per channel."))


# -- the residual blocks -------------------------------------------------------------


def same_layers(got, expected):
    """Layers of the same kinds, geometry and parameters, in the same order."""
    assert [type(layer) for layer in got] == [type(layer) for layer in expected]
    for mine, theirs in zip(got, expected):
        for attribute in ("stride", "padding", "kernel_size"):
            assert getattr(mine, attribute, None) == getattr(theirs, attribute, None)
        assert mine.params.keys() == theirs.params.keys()
        for key in mine.params:
            assert mine.params[key].dtype == theirs.params[key].dtype
            np.testing.assert_array_equal(mine.params[key], theirs.params[key])


# Each block as the chapter describes it: the layers drawn first, then the input.
BLOCKS = {
    modern._conv_relu: lambda rng, dtype: (
        [Conv2D(2, 2, 3, padding=1, rng=rng, dtype=dtype), ReLU()], None,
        rng.standard_normal((2, 2, 4, 4)).astype(dtype)),
    modern._projected: lambda rng, dtype: (
        [Conv2D(2, 3, 3, stride=2, padding=1, rng=rng, dtype=dtype), ReLU(),
         Conv2D(3, 3, 3, padding=1, rng=rng, dtype=dtype)],
        [Conv2D(2, 3, 1, stride=2, rng=rng, dtype=dtype)],
        rng.standard_normal((2, 2, 5, 5)).astype(dtype)),
    modern._dense: lambda rng, dtype: (
        [Dense(4, 5, rng=rng, dtype=dtype), ReLU(), Dense(5, 4, rng=rng, dtype=dtype)],
        None, rng.standard_normal((3, 4)).astype(dtype)),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("build", BLOCKS, ids=lambda build: build.__name__)
def test_each_block_draws_its_layers_then_its_input_from_the_generator(build, dtype):
    body, shortcut, x = build(np.random.default_rng(5), dtype)
    expected_body, expected_shortcut, expected_x = BLOCKS[build](
        np.random.default_rng(5), dtype)
    same_layers(body, expected_body)
    if expected_shortcut is None:
        assert shortcut is None
    else:
        same_layers(shortcut, expected_shortcut)
    assert x.dtype == dtype
    np.testing.assert_array_equal(x, expected_x)


def test_a_block_case_is_smooth_and_described_by_its_dtype():
    float64, float32 = modern.BLOCK_CASES[0], modern.BLOCK_CASES[3]
    assert (float64.smooth, float32.smooth) == (True, False)
    assert float64.describe() == float64.text
    assert float32.describe() == float32.text + ", float32"


def test_a_block_check_made_again_runs_the_blocks_under_its_name():
    forward, backward = modern.ResidualForwardCheck(), modern.ResidualBackwardCheck()
    assert (forward.name, forward.cases) == ("residual_forward", modern.BLOCK_CASES)
    assert (backward.name, backward.cases) == ("residual_backward", modern.BLOCK_CASES)
    assert CHECKS["residual_forward"].name == "residual_forward"
    assert forward.run(residual_forward).passed
    assert backward.run(residual_backward).passed


def test_the_twins_are_two_blocks_with_the_same_parameters_and_one_input():
    rng = np.random.default_rng(1)
    (body, shortcut, x), (body_in, shortcut_in, x_in) = modern._BlockCheck._twins(
        modern.BLOCK_CASES[2], rng)
    same_layers(body_in, body)
    same_layers(shortcut_in, shortcut)
    np.testing.assert_array_equal(x_in, x)
    assert body_in[0] is not body[0] and body_in[0].params["w"] is not body[0].params["w"]
    # The generator goes on after the second block, not after the first.
    again = np.random.default_rng(1)
    modern.BLOCK_CASES[2].build(again, np.float64)
    assert rng.bit_generator.state == again.bit_generator.state


# -- residual_forward: what is wrong with a reader's function ------------------------


def on_copies(x, body, shortcut=None):
    """The right out, from copies of the layers: the reader's layers keep no cache."""
    import copy
    return residual_forward(x, copy.deepcopy(body), copy.deepcopy(shortcut))


def run_twice(x, body, shortcut=None):
    """The right out, but the layers' caches are those of a second input."""
    out = residual_forward(x, body, shortcut)
    residual_forward(x + 1.0, body, shortcut)
    return out


def test_out_computed_without_the_reader_s_layers_is_named():
    result = modern.ResidualForwardCheck().run(on_copies)
    assert result.verdicts == ("layers not run",) * 4
    text = detail(result)
    # What the book's residual_backward says of layers that never ran forward.
    body, shortcut, x = modern.BLOCK_CASES[0].build(np.random.default_rng(0), np.float64)
    with pytest.raises(Exception) as error:
        residual_backward(x, body, shortcut)
    assert text == (
        "out is right, but the book's residual_backward cannot run on the layers"
        f" afterwards: {_error_text(error.value)}. Compute out with each layer's"
        " forward, which keeps the cache its backward needs.")


def test_caches_of_another_input_are_named():
    result = modern.ResidualForwardCheck().run(run_twice)
    assert result.verdicts == ("wrong caches",) * 4
    assert detail(result) == (
        "out is right, but the layers' caches are not those of this input: from them"
        " the book's residual_backward computes a wrong dx. Run every layer's forward"
        " once, on its own input.")


def test_a_wrong_out_a_modified_x_and_a_wrong_shape_are_named_as_out_and_x():
    check = modern.ResidualForwardCheck()
    result = check.run(lambda x, body, shortcut=None:
                       1.5 * residual_forward(x, body, shortcut))
    assert result.verdicts[0].startswith("out: wrong values")
    assert detail(result).startswith("out is wrong: relative error")

    def modifies(x, body, shortcut=None):
        out = residual_forward(x, body, shortcut)
        x[0, 0] += 1.0
        return out

    result = check.run(modifies)
    assert result.verdicts == ("modified x",) * 4
    assert detail(result).startswith("Your function changed its input x in place, first"
                                     " at x[0, 0")
    result = check.run(lambda x, body, shortcut=None:
                       residual_forward(x, body, shortcut)[:1])
    assert result.verdicts == ("out: wrong shape",) * 4
    assert detail(result).startswith("out has shape (1, 2, 4, 4), expected (2, 2, 4, 4).")


# -- residual_backward: dx, the layers' gradients, and the gradient check -------------


def forgets_the_first_layer(dout, body, shortcut=None):
    """The right dx, but the body's first layer holds zero gradients."""
    dx = residual_backward(dout, body, shortcut)
    for key, grad in body[0].grads.items():
        body[0].grads[key] = np.zeros_like(grad)
    return dx


def test_right_dx_with_a_layer_s_wrong_gradients_names_that_layer():
    result = modern.ResidualBackwardCheck().run(forgets_the_first_layer)
    assert result.verdicts == ("body.0.w: wrong gradient",) * 4
    assert detail(result) == (
        "dx is right, but the gradient that layer body.0 holds for w is not (and 2 of 2"
        " are wrong): run each layer's backward exactly once, on the gradient of its"
        " own output.")
    # Case 3, with a projection shortcut: two of its six gradients are wrong.
    rng = np.random.default_rng([0, 2])
    problem = modern.ResidualBackwardCheck().check_case(
        forgets_the_first_layer, modern.BLOCK_CASES[2], rng)
    assert problem[0] == "body.0.w: wrong gradient"
    assert "(and 2 of 6 are wrong)" in problem[1]


def test_the_layer_named_is_the_first_with_a_wrong_gradient():
    def forgets_one_bias(dout, body, shortcut=None):
        dx = residual_backward(dout, body, shortcut)
        body[0].grads["b"] = np.zeros_like(body[0].grads["b"])
        return dx

    assert detail(modern.ResidualBackwardCheck().run(forgets_one_bias)) == (
        "dx is right, but the gradient that layer body.0 holds for b is not (and 1 of 2"
        " are wrong): run each layer's backward exactly once, on the gradient of its"
        " own output.")


def test_a_float32_block_s_gradients_are_compared_at_the_float32_tolerance():
    # dout / 3 * 3 is dout up to float32 rounding, and so are the gradients from it.
    def rounded(dout, body, shortcut=None):
        return residual_backward((dout / 3) * 3, body, shortcut)

    assert modern.ResidualBackwardCheck().run(rounded).passed


def test_a_wrong_dx_says_whether_the_layers_gradients_are_right():
    from cnn.bugzoo import broken_residual_backward_no_skip
    result = modern.ResidualBackwardCheck().run(broken_residual_backward_no_skip)
    assert all(v.startswith("dx: wrong values") for v in result.verdicts)
    text = detail(result)
    assert text.startswith("dx is wrong: relative error")
    assert text.endswith(" Every layer's parameter gradients are right: the mistake is"
                         " in what your function adds up and returns as dx.")
    # Case 1 is float64: finite differences of the block agree with the book's dx.
    agree = float(text.split("agree with the book's dx (relative error ")[1][:5])
    assert agree < 1e-6

    def dx_wrong(dout, body, shortcut=None):
        return 2 * residual_backward(dout, body, shortcut)

    def both_wrong(dout, body, shortcut=None):
        return 2 * forgets_the_first_layer(dout, body, shortcut)

    # The same dx message, without the sentence on the gradients when some are wrong.
    text = detail(modern.ResidualBackwardCheck().run(dx_wrong))
    assert text == detail(modern.ResidualBackwardCheck().run(both_wrong)) + (
        " Every layer's parameter gradients are right: the mistake is in what your"
        " function adds up and returns as dx.")


def test_the_float32_block_is_described_as_such_and_has_no_finite_differences():
    def float64_at_float32(dout, body, shortcut=None):
        dx = residual_backward(dout, body, shortcut)
        return dx.astype(np.float64) if dx.dtype == np.float32 else dx

    result = modern.ResidualBackwardCheck().run(float64_at_float32)
    assert result.verdicts == (None, None, None, "dx: wrong dtype")
    assert result.message.split("\n")[0] == (
        "residual_backward fails case 4 of 4: body [Conv2D(2, 2, 3, padding=1), ReLU()],"
        " identity shortcut, x (2, 2, 4, 4), float32.")


def test_a_modified_dout_and_a_wrong_shape_are_named_as_dout_and_dx():
    def modifies(dout, body, shortcut=None):
        dx = residual_backward(dout, body, shortcut)
        dout *= 2
        return dx

    check = modern.ResidualBackwardCheck()
    result = check.run(modifies)
    assert result.verdicts == ("modified dout",) * 4
    assert detail(result).startswith("Your function changed its input dout in place,"
                                     " first at dout[0, 0")
    result = check.run(lambda dout, body, shortcut=None:
                       residual_backward(dout, body, shortcut)[:1])
    assert result.verdicts == ("dx: wrong shape",) * 4
    assert detail(result).startswith(
        "dx has shape (1, 2, 4, 4), expected (2, 2, 4, 4) (the shape of x).")


def test_the_gradient_check_gives_each_float64_block_every_gradient_s_error():
    check = modern.ResidualBackwardCheck()
    rows = check.gradient_check(residual_backward)
    assert rows == check.gradient_check(residual_backward, seed=0)
    assert rows[3] is None
    assert list(rows[0]) == ["dx", "body.0.w", "body.0.b"]
    assert list(rows[2]) == ["dx", "body.0.w", "body.0.b", "body.2.w", "body.2.b",
                             "shortcut.0.w", "shortcut.0.b"]
    assert all(0 <= error < 1e-6 for row in rows[:3] for error in row.values())
    # A float32 case is skipped wherever it stands, not taken for the end.
    check.cases = (modern.BLOCK_CASES[3], modern.BLOCK_CASES[0])
    skipped, checked = check.gradient_check(residual_backward)
    assert skipped is None and checked.keys() == rows[0].keys()
    check = modern.ResidualBackwardCheck()
    from cnn.bugzoo import broken_residual_backward_no_skip
    broken = check.gradient_check(broken_residual_backward_no_skip)
    assert all(row["dx"] > 0.1 for row in broken[:3])
    assert all(row[key] < 1e-6 for row in broken[:3] for key in row if key != "dx")
    # Gradients held by the layers are checked, not only dx.
    zeroed = check.gradient_check(forgets_the_first_layer)
    assert all(row["body.0.w"] == 1.0 and row["dx"] < 1e-6 for row in zeroed[:3])


def test_the_gradient_check_records_what_goes_wrong_and_ignores_float_warnings():
    check = modern.ResidualBackwardCheck()

    def raises(dout, body, shortcut=None):
        raise KeyError("no")

    assert check.gradient_check(raises) == [{"raised": "KeyError"}] * 3 + [None]
    rows = check.gradient_check(lambda dout, body, shortcut=None:
                                residual_backward(dout, body, shortcut)[:1])
    assert all(np.isnan(row["dx"]) for row in rows[:3])

    def overflows(dout, body, shortcut=None):
        return residual_backward(dout, body, shortcut) * np.float64(1e308) * 10

    with np.errstate(all="raise"):
        rows = exercises.gradient_check("residual_backward", overflows)
        # The reader's own setting is theirs again afterwards.
        assert np.geterr()["over"] == "raise"
    assert all(np.isnan(row["dx"]) for row in rows[:3])
    for name, fn in [("relu_backward", relu_backward),
                     ("softmax_cross_entropy", softmax_cross_entropy)]:
        with np.errstate(all="raise"):
            rows = exercises.gradient_check(name, lambda *args: tuple(
                1e308 * 10 * np.asarray(r, dtype=float) for r in fn(*args)))
        assert all(np.isnan(value) for row in rows if row for value in row.values())


def test_the_gradient_check_and_the_check_draw_the_same_blocks():
    seen = []

    def recording(dout, body, shortcut=None):
        seen.append(dout.copy())
        return residual_backward(dout, body, shortcut)

    check = modern.ResidualBackwardCheck()
    assert check.run(recording, seed=4).passed
    checked, seen[:] = list(seen), []
    check.gradient_check(recording, seed=4)
    assert len(seen) == 3
    for got, expected in zip(seen, checked):
        np.testing.assert_array_equal(got, expected)
    check.gradient_check(recording, seed=5)
    assert not np.array_equal(seen[3], checked[0])
