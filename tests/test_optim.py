"""Optimisers: the update rules as written, in-place updates, state handling."""

import numpy as np
import pytest

from cnn.optim import SGD, Adam


def test_sgd_without_momentum_is_gradient_descent(rng):
    w = rng.standard_normal((3, 2))
    g = rng.standard_normal((3, 2))
    expected = w - 0.1 * g
    SGD(0.1).step({"w": w}, {"w": g})
    np.testing.assert_allclose(w, expected, rtol=1e-15)


def test_sgd_momentum_follows_the_recurrence(rng):
    w = rng.standard_normal(4)
    w_ref, v = w.copy(), np.zeros(4)
    optimizer = SGD(0.05, momentum=0.9)
    for _ in range(4):
        g = rng.standard_normal(4)
        optimizer.step({"w": w}, {"w": g})
        v = 0.9 * v - 0.05 * g
        w_ref = w_ref + v
        np.testing.assert_allclose(w, w_ref, rtol=1e-12)


def test_adam_follows_the_paper(rng):
    w = rng.standard_normal(5)
    w_ref, m, v = w.copy(), np.zeros(5), np.zeros(5)
    optimizer = Adam(lr=0.01, beta1=0.8, beta2=0.95, eps=1e-6)
    for t in range(1, 5):
        g = rng.standard_normal(5)
        optimizer.step({"w": w}, {"w": g})
        m = 0.8 * m + 0.2 * g
        v = 0.95 * v + 0.05 * g * g
        w_ref = w_ref - 0.01 * (m / (1 - 0.8**t)) / (np.sqrt(v / (1 - 0.95**t)) + 1e-6)
        np.testing.assert_allclose(w, w_ref, rtol=1e-12)


def test_adam_first_step_moves_each_parameter_by_about_lr(rng):
    # After bias correction the first update is lr * g / (|g| + eps): a step of lr in each coordinate.
    w = rng.standard_normal(6)
    g = rng.standard_normal(6)
    before = w.copy()
    Adam(lr=0.01).step({"w": w}, {"w": g})
    np.testing.assert_allclose(before - w, 0.01 * np.sign(g), rtol=1e-6)


@pytest.mark.parametrize("optimizer", [SGD(0.1, momentum=0.9), Adam(0.1)], ids=["sgd", "adam"])
def test_minimises_a_quadratic(optimizer):
    target = np.array([1.0, -2.0, 3.0])
    w = np.zeros(3)
    for _ in range(300):
        optimizer.step({"w": w}, {"w": 2 * (w - target)})
    np.testing.assert_allclose(w, target, atol=1e-3)


@pytest.mark.parametrize("make", [lambda: SGD(0.1, momentum=0.5), lambda: Adam()], ids=["sgd", "adam"])
def test_updates_in_place_and_never_touches_grads(make, rng):
    w = rng.standard_normal((2, 2)).astype(np.float32)
    g = rng.standard_normal((2, 2))  # float64 gradient for a float32 parameter
    g_copy = g.copy()
    params = {"w": w}
    make().step(params, {"w": g})
    assert params["w"] is w and w.dtype == np.float32
    np.testing.assert_array_equal(g, g_copy)


def test_state_is_kept_per_key(rng):
    optimizer = SGD(0.1, momentum=0.9)
    a, b = np.zeros(2), np.zeros(3)
    optimizer.step({"a": a}, {"a": np.ones(2)})
    optimizer.step({"b": b}, {"b": np.ones(3)})
    optimizer.step({"a": a}, {"a": np.ones(2)})
    # "a" has had two steps of momentum, "b" one.
    np.testing.assert_allclose(a, -0.1 - 0.19)
    np.testing.assert_allclose(b, -0.1)


def test_rejects_mismatched_params_and_grads():
    optimizer = Adam()
    w = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"missing \['w'\], unexpected \['v'\]"):
        optimizer.step({"w": w}, {"v": w})
    with pytest.raises(ValueError, match=r"grads\['w'\] must have shape \(2, 3\), got shape \(3, 2\)"):
        optimizer.step({"w": w}, {"w": np.zeros((3, 2))})
    with pytest.raises(ValueError, match=r"grads\['w'\] contains NaN"):
        optimizer.step({"w": w}, {"w": np.full((2, 3), np.nan)})
    optimizer.step({"w": w}, {"w": np.ones((2, 3))})
    with pytest.raises(ValueError, match=r"optimizer state for 'w' has shape \(2, 3\) but the parameter has shape \(4,\)"):
        optimizer.step({"w": np.zeros(4)}, {"w": np.zeros(4)})


def test_a_failed_step_updates_nothing():
    a, b = np.zeros(2), np.zeros(2)
    with pytest.raises(ValueError):
        SGD(0.1).step({"a": a, "b": b}, {"a": np.ones(2), "b": np.ones(3)})
    assert not a.any() and not b.any()


@pytest.mark.parametrize("make, error, pattern", [
    (lambda: SGD(0.0), ValueError, r"lr must be in \(0.0, inf\), got 0.0"),
    (lambda: SGD(-1), ValueError, r"lr must be in"),
    (lambda: SGD("0.1"), TypeError, r"lr must be a real number"),
    (lambda: SGD(0.1, momentum=1.0), ValueError, r"momentum must be in \[0.0, 1.0\), got 1.0"),
    (lambda: Adam(beta1=1.0), ValueError, r"beta1 must be in \[0.0, 1.0\)"),
    (lambda: Adam(beta2=-0.1), ValueError, r"beta2 must be in"),
    (lambda: Adam(eps=0), ValueError, r"eps must be in \(0.0, inf\)"),
])
def test_rejects_bad_hyperparameters(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


@pytest.mark.parametrize("make", [lambda: SGD(0.1, momentum=0.9), lambda: Adam()], ids=["sgd", "adam"])
def test_one_optimizer_for_two_models_is_refused_before_anything_changes(make, rng):
    # Both models call their first weight "0.w": the moments of one would drive the other.
    optimizer = make()
    first, second = rng.standard_normal(3), rng.standard_normal(3)
    optimizer.step({"0.w": first}, {"0.w": np.ones(3)})
    state = {key: tuple(np.copy(s) for s in value) for key, value in optimizer.state.items()}
    second_before = second.copy()
    with pytest.raises(ValueError, match=r"this optimizer holds state for '0.w' of another "
                                         r"parameter array .*use one optimizer per model"):
        optimizer.step({"0.w": second}, {"0.w": np.ones(3)})
    np.testing.assert_array_equal(second, second_before)
    for key, value in state.items():
        for saved, now in zip(value, optimizer.state[key]):
            np.testing.assert_array_equal(saved, now)
    optimizer.step({"0.w": first}, {"0.w": np.ones(3)})  # the first model goes on


def test_a_refused_step_does_not_claim_new_keys(rng):
    optimizer = SGD(0.1)
    a = np.zeros(2)
    optimizer.step({"a": a}, {"a": np.ones(2)})
    b, other_a = np.zeros(2), np.zeros(2)
    with pytest.raises(ValueError, match="another parameter array"):
        optimizer.step({"b": b, "a": other_a}, {"b": np.ones(2), "a": np.ones(2)})
    optimizer.step({"b": np.zeros(2)}, {"b": np.ones(2)})  # "b" was not tied to the failed step's array


def test_the_state_of_a_parameter_follows_its_array_not_a_copy(rng):
    # A copy is another array: stepping it with the original's moments is refused too, even
    # once the original is gone (the optimizer keeps only a weak reference).
    optimizer = Adam()
    w = np.zeros(2)
    optimizer.step({"w": w}, {"w": np.ones(2)})
    copy = w.copy()
    del w
    with pytest.raises(ValueError, match="another parameter array"):
        optimizer.step({"w": copy}, {"w": np.ones(2)})


def test_a_model_and_its_optimizer_after_load(tmp_path):
    from cnn.layers import Dense
    from cnn.model import Sequential
    model = Sequential([Dense(3, 2, rng=np.random.default_rng(0), dtype=np.float64)])
    optimizer = Adam()
    x, y = np.ones((4, 3)), np.array([0, 1, 0, 1])
    model.fit(x, y, epochs=1, batch_size=2, optimizer=optimizer)
    model.save(tmp_path / "m.npz")
    model.load(tmp_path / "m.npz")  # in place: the same arrays, so training can go on
    model.fit(x, y, epochs=1, batch_size=2, optimizer=optimizer)
    other = Sequential([Dense(3, 2, rng=np.random.default_rng(1), dtype=np.float64)])
    with pytest.raises(ValueError, match="use one optimizer per model"):
        other.fit(x, y, epochs=1, batch_size=2, optimizer=optimizer)


def test_adam_defaults_are_those_of_the_paper():
    optimizer = Adam()
    assert (optimizer.lr, optimizer.beta1, optimizer.beta2, optimizer.eps) == (1e-3, 0.9, 0.999, 1e-8)
    assert SGD(0.1).momentum == 0.0


@pytest.mark.parametrize("make, pattern", [
    (lambda: Adam(lr=0.0), r"^lr must be in \(0.0, inf\), got 0.0$"),
    (lambda: Adam(lr=None), r"^lr must be a real number, got None$"),
    (lambda: Adam(beta2=1.0), r"^beta2 must be in \[0.0, 1.0\), got 1.0$"),
    (lambda: Adam(beta1=-0.5), r"^beta1 must be in \[0.0, 1.0\), got -0.5$"),
    (lambda: Adam(eps=np.inf), r"^eps must be in \(0.0, inf\), got inf$"),
    (lambda: SGD(0.1, momentum=-1e-9), r"^momentum must be in \[0.0, 1.0\)"),
])
def test_hyperparameter_errors_name_the_argument_and_interval(make, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        make()


def test_hyperparameter_interval_ends():
    # Decay rates and momentum may be 0 (no averaging) but not 1; lr and eps must be > 0.
    assert Adam(beta1=0.0, beta2=0.0).beta2 == 0.0
    assert SGD(1e-12, momentum=0.0).momentum == 0.0
    assert Adam(lr=1e300, eps=1e-300).eps == 1e-300
    assert Adam(beta1=np.nextafter(1.0, 0), beta2=np.nextafter(1.0, 0)).beta2 < 1.0
