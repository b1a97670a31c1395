"""Gradient checking tools: centred differences, relative error, layer and model checks."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnn.gradcheck import check_layer, check_model, numerical_gradient, relative_error
from cnn.layers import Dense, ReLU
from cnn.model import Sequential


@given(st.integers(0, 2**32 - 1))
def test_numerical_gradient_of_a_known_function(seed):
    x = np.random.default_rng(seed).standard_normal((3, 4))
    grad = numerical_gradient(lambda z: np.sum(z**3) + np.sum(np.sin(z)), x)
    np.testing.assert_allclose(grad, 3 * x**2 + np.cos(x), rtol=1e-8, atol=1e-9)


def test_numerical_gradient_restores_x_exactly(rng):
    x = rng.standard_normal((2, 3, 2))
    original = x.copy()
    seen = []
    grad = numerical_gradient(lambda z: seen.append(z.copy()) or np.sum(z), x)
    assert grad.shape == x.shape and grad.dtype == x.dtype
    np.testing.assert_array_equal(x, original)  # bit for bit
    # Each probe perturbs exactly one entry.
    assert all(np.count_nonzero(z != original) == 1 for z in seen)


def test_centred_difference_error_is_second_order():
    x = np.array([0.7])
    errors = [abs(numerical_gradient(lambda z: np.exp(z).sum(), x, h)[0] - np.exp(0.7))
              for h in (1e-2, 5e-3)]
    # Halving h divides the O(h^2) error by about 4.
    assert 3.5 < errors[0] / errors[1] < 4.5


def test_relative_error_properties(rng):
    a = rng.standard_normal((3, 3))
    assert relative_error(a, a) == 0.0
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(a, -a) == 1.0
    b = a + 1e-6 * rng.standard_normal(a.shape)
    assert relative_error(a, b) == relative_error(b, a)
    np.testing.assert_allclose(relative_error(a, b),
                               np.linalg.norm(a - b) / (np.linalg.norm(a) + np.linalg.norm(b)))
    # An entry that is almost zero in both arrays does not blow the error up.
    assert relative_error(np.array([1.0, 1e-12]), np.array([1.0, 2e-12])) < 1e-11
    with pytest.raises(ValueError, match="same shape"):
        relative_error(np.zeros(2), np.zeros(3))


class WrongDense(Dense):
    """A dense layer with a bug: its backward pass doubles the bias gradient."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["b"] = 2 * self.grads["b"]
        return dx


def test_check_layer_catches_a_wrong_gradient(rng):
    layer = WrongDense(4, 3, rng=rng, dtype=np.float64)
    layer.params["b"][:] = 1.0
    errors = check_layer(layer, rng.standard_normal((5, 4)))
    assert errors["x"] < 1e-7 and errors["w"] < 1e-7
    assert errors["b"] > 0.1


def test_check_layer_leaves_the_input_alone_and_wants_float64(rng):
    layer = Dense(4, 3, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 4))
    x_copy = x.copy()
    check_layer(layer, x)
    np.testing.assert_array_equal(x, x_copy)
    with pytest.raises(TypeError, match="x must be a float64 array"):
        check_layer(layer, x.astype(np.float32))
    with pytest.raises(TypeError, match=r"layer.params\['w'\] must be a float64 array"):
        check_layer(Dense(4, 3), x)


def test_check_model_catches_a_wrong_gradient(rng):
    model = Sequential([Dense(4, 5, rng=rng, dtype=np.float64), ReLU(),
                        WrongDense(5, 3, rng=rng, dtype=np.float64)])
    model.layers[2].params["b"][:] = 0.5
    x, y = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
    errors = check_model(model, x, y)
    assert errors.keys() == {"0.w", "0.b", "2.w", "2.b"}
    assert errors["2.b"] > 0.1 and errors["0.w"] < 1e-7
    with pytest.raises(TypeError, match="model parameter '0.w' must be a float64 array"):
        check_model(Sequential([Dense(4, 3)]), x, y)


@pytest.mark.parametrize("gap, crosses", [(0.0, True), (0.5, True), (0.8, True), (1.2, False),
                                          (1.5, False), (2.5, False)])
def test_a_max_pool_near_tie_is_a_false_alarm_only_within_h(gap, crosses):
    # gradcheck.md and pooling.md: a centred difference crosses the kink of max(a, b) when the
    # two entries are closer than h (not 2h); at an exact tie each gets 1/2, so the analytic
    # gradient (1, 0) is twice the numerical one at the winner and 0 against 1/2 at the loser.
    from cnn.layers import MaxPool2D

    h = 1e-5
    x = np.array([[[[1.0 + gap * h, 1.0], [0.2, -0.3]]]])
    pool = MaxPool2D(2)
    numeric = numerical_gradient(lambda v: pool.forward(v).sum(), x.copy(), h=h).ravel()
    pool.forward(x)
    analytic = pool.backward(np.ones((1, 1, 1, 1))).ravel()
    np.testing.assert_array_equal(analytic, [1, 0, 0, 0])
    if crosses:
        assert numeric[1] > 0.01 and numeric[0] < 0.99  # the loser gets part of the gradient
        if gap == 0.0:
            np.testing.assert_allclose(numeric[:2], [0.5, 0.5], atol=1e-6)
    else:
        np.testing.assert_allclose(numeric, analytic, atol=1e-6)


def test_float64_requirement_names_the_argument_and_what_it_got(rng):
    layer = Dense(4, 3, rng=rng, dtype=np.float64)
    with pytest.raises(TypeError, match=r"^x must be a float64 array .* got float32$"):
        check_layer(layer, np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match=r"^x must be a float64 array .* got list$"):
        check_layer(layer, [[0.0] * 4])
    model = Sequential([Dense(4, 3, rng=rng, dtype=np.float64)])
    with pytest.raises(TypeError, match=r"^x must be a float64 array .* got float32$"):
        check_model(model, np.zeros((2, 4), np.float32), np.zeros(2, int))


def test_check_layer_is_deterministic_with_seed_0_by_default(rng):
    layer = Dense(4, 3, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 4))
    default = check_layer(layer, x)
    assert default == check_layer(layer, x) == check_layer(layer, x, seed=0)
    assert default != check_layer(layer, x, seed=1)


@pytest.mark.parametrize("h", [None, 1e-3])
def test_the_step_h_reaches_the_centred_differences(rng, monkeypatch, h):
    import cnn.gradcheck
    steps = []
    real = cnn.gradcheck.numerical_gradient

    def recording(f, x, h=1e-5):
        steps.append(h)
        return real(f, x, h)

    monkeypatch.setattr(cnn.gradcheck, "numerical_gradient", recording)
    kwargs = {} if h is None else {"h": h}
    layer = Dense(2, 2, rng=rng, dtype=np.float64)
    check_layer(layer, rng.standard_normal((3, 2)), **kwargs)
    model = Sequential([Dense(2, 2, rng=rng, dtype=np.float64)])
    check_model(model, rng.standard_normal((3, 2)), np.array([0, 1, 0]), **kwargs)
    assert steps == [1e-5 if h is None else h] * 5  # x, w, b of the layer; w, b of the model


@pytest.mark.filterwarnings("error")
def test_relative_error_computes_in_float64():
    # In float32, the squares of 1e30 overflow: the norm would be inf and the ratio NaN.
    a, b = np.array([1e30], np.float32), np.array([2e30], np.float32)
    assert relative_error(a, b) == pytest.approx(1 / 3, rel=1e-7)
    assert relative_error(b, a) == pytest.approx(1 / 3, rel=1e-7)
    assert relative_error([0.0], [0.0]) == 0.0
