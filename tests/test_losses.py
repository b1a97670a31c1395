"""Softmax cross-entropy: value, gradient (softmax - onehot) / N, stability."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnn.gradcheck import numerical_gradient, relative_error
from cnn.losses import softmax_cross_entropy, weighted_softmax_cross_entropy


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


def test_class_weights_give_the_weighted_mean_of_pytorch():
    # PyTorch's CrossEntropyLoss(weight=w) divides by the sum of the weights of the batch's
    # labels, not by N: sum_n w[y_n] l_n / sum_n w[y_n]. Two examples of class 0 (weight 1) and
    # one of class 1 (weight 4): the class-1 loss counts 4 / 6 of the total.
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 3.0]])
    y = np.array([0, 0, 1])
    weights = np.array([1.0, 4.0])
    per_example = -np.log(np.exp(logits[np.arange(3), y]) / np.exp(logits).sum(axis=1))
    loss, dlogits = weighted_softmax_cross_entropy(logits, y, weights)
    assert loss == pytest.approx((per_example[0] + per_example[1] + 4 * per_example[2]) / 6)
    np.testing.assert_allclose(dlogits.sum(axis=1), 0.0, atol=1e-15)


def test_class_weights_agree_with_pytorch_when_it_is_installed():
    torch = pytest.importorskip("torch")
    logits, y = random_batch(5, N=7, K=3)
    weights = np.array([0.5, 3.0, 1.25])
    loss, _ = weighted_softmax_cross_entropy(logits, y, weights)
    expected = torch.nn.functional.cross_entropy(
        torch.tensor(logits), torch.tensor(y), weight=torch.tensor(weights))
    assert loss == pytest.approx(float(expected), rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_class_weights_keep_the_dtype_and_the_inputs(dtype):
    logits, y = random_batch(3)
    logits = logits.astype(dtype)
    weights = np.array([1.0, 2.0, 0.5, 3.0])
    copies = logits.copy(), y.copy(), weights.copy()
    _, dlogits = weighted_softmax_cross_entropy(logits, y, weights)
    assert dlogits.dtype == dtype
    for before, after in zip(copies, (logits, y, weights)):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("weights, error, message", [
    (np.array([1.0, 2.0]), ValueError, "class_weights must have shape"),
    (np.array([1, 2, 3, 4]), TypeError, "class_weights must have a floating-point dtype"),
    (np.array([1.0, -2.0, 1.0, 1.0]), ValueError, "class_weights must be >= 0"),
    (np.array([1.0, np.nan, 1.0, 1.0]), ValueError, "class_weights"),
    (np.zeros(4), ValueError, "weight 0 to every label"),
])
def test_bad_class_weights_are_rejected_by_name(weights, error, message):
    logits, y = random_batch(0)
    with pytest.raises(error, match=message):
        weighted_softmax_cross_entropy(logits, y, weights)


def test_balanced_class_weights_equalise_the_classes():
    from cnn.losses import balanced_class_weights

    y = np.repeat(np.array([0, 1, 2]), [291, 57, 297])
    weights = balanced_class_weights(y, 4)
    counts = np.bincount(y, minlength=4)
    # Every present class gets the same total weight N / K, an absent one weight 0.
    np.testing.assert_allclose((weights * counts)[:3], len(y) / 4)
    assert weights[3] == 0.0
    assert weights[1] > weights[0] > weights[2]
    with pytest.raises(ValueError, match="at least one label"):
        balanced_class_weights(np.array([], dtype=np.int64), 3)
    with pytest.raises(ValueError, match="labels in 0..2"):
        balanced_class_weights(np.array([0, 3]), 3)


def test_a_single_class_is_a_valid_problem():
    # K = 1: the one class has probability 1, so the loss and its gradient are exactly 0.
    loss, dlogits = softmax_cross_entropy(np.array([[3.0], [-2.0]]), np.array([0, 0]))
    assert loss == 0.0
    np.testing.assert_array_equal(dlogits, np.zeros((2, 1)))
