"""Softmax cross-entropy: value, gradient (softmax - onehot) / N, stability."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnn.gradcheck import numerical_gradient, relative_error
from cnn.losses import softmax_cross_entropy


def random_batch(seed, N=5, K=4, scale=3.0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, K)) * scale, rng.integers(0, K, N)


@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(2, 5))
def test_loss_and_gradient_by_the_formula(seed, N, K):
    logits, y = random_batch(seed, N, K)
    loss, dlogits = softmax_cross_entropy(logits, y)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    onehot = np.eye(K)[y]
    np.testing.assert_allclose(loss, -np.mean(np.log(p[np.arange(N), y])), rtol=1e-12)
    np.testing.assert_allclose(dlogits, (p - onehot) / N, rtol=1e-10, atol=1e-15)


@given(st.integers(0, 2**32 - 1))
def test_gradient_matches_finite_differences(seed):
    logits, y = random_batch(seed)
    _, dlogits = softmax_cross_entropy(logits, y)
    numerical = numerical_gradient(lambda z: softmax_cross_entropy(z, y)[0], logits)
    assert relative_error(dlogits, numerical) < 1e-7


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_overflow_at_large_logits(dtype):
    logits = np.array([[1e4, 0.0], [0.0, 1e4], [-1e4, 1e4]], dtype=dtype)
    y = np.array([1, 1, 0])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        loss, dlogits = softmax_cross_entropy(logits, y)
    # Sample 0 and 2 are wrong by 1e4 and 2e4 nats; sample 1 is right with certainty.
    np.testing.assert_allclose(loss, (1e4 + 0.0 + 2e4) / 3, rtol=1e-6)
    assert dlogits.dtype == dtype and np.isfinite(dlogits).all()
    np.testing.assert_allclose(dlogits, [[1 / 3, -1 / 3], [0, 0], [-1 / 3, 1 / 3]], atol=1e-7)


def test_gradient_rows_sum_to_zero_and_inputs_untouched():
    logits, y = random_batch(1)
    logits_copy, y_copy = logits.copy(), y.copy()
    _, dlogits = softmax_cross_entropy(logits, y)
    np.testing.assert_allclose(dlogits.sum(axis=1), 0.0, atol=1e-15)
    np.testing.assert_array_equal(logits, logits_copy)
    np.testing.assert_array_equal(y, y_copy)


def test_uniform_logits_give_log_k():
    loss, _ = softmax_cross_entropy(np.zeros((3, 10)), np.array([0, 4, 9]))
    np.testing.assert_allclose(loss, np.log(10), rtol=1e-12)


def test_a_single_class_is_a_valid_problem():
    # K = 1: the one class has probability 1, so the loss and its gradient are exactly 0.
    loss, dlogits = softmax_cross_entropy(np.array([[3.0], [-2.0]]), np.array([0, 0]))
    assert loss == 0.0
    np.testing.assert_array_equal(dlogits, np.zeros((2, 1)))
