"""Dropout (inverted: unbiased in expectation, identity in evaluation) and weight decay
(coupled L2 in SGD, decoupled in Adam)."""

import numpy as np
import pytest

from cnn.gradcheck import check_layer
from cnn.optim import SGD, Adam
from cnn.regularization import Dropout, dropout_backward, dropout_forward


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_keeps_the_expected_value_and_drops_a_fraction_p(p):
    x = np.full((200, 500), 3.0, dtype=np.float32)
    out, cache = dropout_forward(x, p, np.random.default_rng(0))
    # 1e5 Bernoulli draws: the kept fraction is within a few 1e-3 of 1 - p.
    assert abs(cache.mask.mean() - (1 - p)) < 0.01
    assert abs(out.mean() - 3.0) < 0.05 * 3.0
    np.testing.assert_allclose(out[cache.mask], 3.0 / (1 - p), rtol=1e-6)
    assert np.all(out[~cache.mask] == 0)
    assert out.dtype == np.float32


def test_dropout_is_seeded_and_never_modifies_its_input():
    x = np.random.default_rng(1).standard_normal((4, 3, 5, 5))
    x_copy = x.copy()
    a, _ = dropout_forward(x, 0.5, np.random.default_rng(7))
    b, _ = dropout_forward(x, 0.5, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(x, x_copy)
    out, cache = dropout_forward(x, 0.0, np.random.default_rng(7))
    np.testing.assert_array_equal(out, x)
    dout = np.ones_like(x)
    np.testing.assert_array_equal(dropout_backward(dout, cache), dout)


def test_dropout_layer_in_training_and_in_evaluation():
    layer = Dropout(0.5, rng=np.random.default_rng(2))
    x = np.random.default_rng(3).standard_normal((6, 8))
    out = layer.forward(x)
    dx = layer.backward(np.ones_like(x))
    np.testing.assert_array_equal(dx, (out != 0) * 2.0)
    second = layer.forward(x)
    assert not np.array_equal(out, second), "every training pass draws a new mask"
    layer.training = False
    np.testing.assert_array_equal(layer.forward(x), x)
    np.testing.assert_array_equal(layer.backward(2 * x), 2 * x)
    assert layer.params == {} and layer.grads == {}


def test_dropout_layer_gradient_check_with_a_fixed_mask():
    class FixedMask(Dropout):
        """The same mask for every probe of the check: reseeded before each forward pass."""

        def forward(self, x):
            self.rng = np.random.default_rng(5)
            return super().forward(x)

    errors = check_layer(FixedMask(0.3), np.random.default_rng(4).standard_normal((3, 4, 2)))
    assert errors["x"] < 1e-7


@pytest.mark.parametrize("call, pattern", [
    (lambda: dropout_forward(np.zeros(3), 1.0, np.random.default_rng()), r"\[0.0, 1.0\)"),
    (lambda: dropout_forward(np.zeros(3), -0.1, np.random.default_rng()), r"\[0.0, 1.0\)"),
    (lambda: Dropout(1), r"\[0.0, 1.0\)"),
])
def test_dropout_rejects_p_outside_0_1(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_dropout_rejects_a_bad_rng_and_dout():
    with pytest.raises(TypeError, match="rng"):
        dropout_forward(np.zeros(3), 0.5, 0)
    with pytest.raises(TypeError, match="rng"):
        Dropout(0.5, rng=np.random.RandomState(0))
    _, cache = dropout_forward(np.zeros((2, 3)), 0.5, np.random.default_rng())
    with pytest.raises(ValueError, match="dout"):
        dropout_backward(np.zeros((3, 2)), cache)


def test_sgd_weight_decay_is_l2_added_to_the_gradient(rng):
    w, g = rng.standard_normal(5), rng.standard_normal(5)
    decayed, plain = {"w": w.copy()}, {"w": w.copy()}
    SGD(lr=0.1, momentum=0.9, weight_decay=0.01).step(decayed, {"w": g})
    SGD(lr=0.1, momentum=0.9).step(plain, {"w": g + 0.01 * w})
    np.testing.assert_allclose(decayed["w"], plain["w"], rtol=1e-14)


def test_adam_weight_decay_is_decoupled(rng):
    """AdamW: the decay shrinks w by lr * lambda * w, whatever the gradient's size; Adam with the
    same L2 term in the gradient would divide it by sqrt(v_hat)."""
    w, g = rng.standard_normal(4), np.array([1e-3, 1.0, 1e3, -1.0])
    decoupled, plain = {"w": w.copy()}, {"w": w.copy()}
    Adam(lr=0.01, weight_decay=0.1).step(decoupled, {"w": g})
    Adam(lr=0.01).step(plain, {"w": g})
    np.testing.assert_allclose(decoupled["w"] - plain["w"], -0.01 * 0.1 * w, rtol=1e-12)
    coupled = {"w": w.copy()}
    Adam(lr=0.01).step(coupled, {"w": g + 0.1 * w})
    assert not np.allclose(coupled["w"], decoupled["w"])


@pytest.mark.parametrize("make", [lambda: SGD(lr=0.1, weight_decay=0.5),
                                  lambda: Adam(lr=0.1, weight_decay=0.5)])
def test_with_a_zero_gradient_weight_decay_shrinks_weights_geometrically(make, rng):
    w = rng.standard_normal(3)
    params, optimizer = {"w": w.copy()}, make()
    for _ in range(10):
        optimizer.step(params, {"w": np.zeros(3)})
    np.testing.assert_allclose(params["w"], (1 - 0.1 * 0.5) ** 10 * w, rtol=1e-12)


@pytest.mark.parametrize("make", [lambda: SGD(0.1, weight_decay=-1e-4), lambda: Adam(weight_decay=-1.0)])
def test_negative_weight_decay_is_rejected(make):
    with pytest.raises(ValueError, match="weight_decay"):
        make()


def evaluating(layer):
    layer.training = False
    return layer


# Issue 27 (mutation testing): the messages name the argument and the type, the dtype of
# the input reaches dx, and the default generator is default_rng(0).
@pytest.mark.parametrize("call, error, pattern", [
    (lambda: dropout_forward(np.zeros(3, np.int64), 0.5, np.random.default_rng()),
     TypeError, r"^x must have a floating-point dtype"),
    (lambda: Dropout(0.5).forward(np.zeros(3, np.int64)), TypeError,
     r"^x must have a floating-point dtype"),
    (lambda: evaluating(Dropout(0.5)).forward(np.zeros(3, np.int64)), TypeError,
     r"^x must have a floating-point dtype"),
    (lambda: dropout_forward(np.zeros(3), 0.5, 7), TypeError,
     r"^rng must be a numpy.random.Generator \(e.g. numpy.random.default_rng\(0\)\), got int$"),
    (lambda: Dropout(False), TypeError, r"must be a real number, got False"),
    (lambda: Dropout(True), TypeError, r"must be a real number, got True"),
])
def test_dropout_errors_name_the_argument_and_what_was_given(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_dropout_backward_in_evaluation_mode_checks_dout_and_copies_it():
    layer = evaluating(Dropout(0.5))
    layer.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"^dout must have shape \(2, 3\), got shape \(3, 2\)"):
        layer.backward(np.ones((3, 2)))
    dout = np.arange(6.0).reshape(2, 3)
    dx = layer.backward(dout)
    np.testing.assert_array_equal(dx, dout)
    assert dx is not dout


def test_dropout_dx_has_the_dtype_of_the_input_and_the_default_generator_is_seed_0():
    x = np.ones((50, 4), np.float32)
    _, cache = dropout_forward(x, 0.5, np.random.default_rng(1))
    dx = dropout_backward(np.ones((50, 4)), cache)  # float64 dout, float32 input
    assert dx.dtype == np.float32
    np.testing.assert_array_equal(Dropout(0.5).forward(x),
                                  Dropout(0.5, rng=np.random.default_rng(0)).forward(x))
    with pytest.raises(ValueError, match=r"^dout must have shape \(50, 4\)"):
        dropout_backward(np.ones((4, 50)), cache)
