"""Dense layer: naive and fast versions agree, gradients match finite differences."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnn.dense import dense_backward, dense_backward_naive, dense_forward, dense_forward_naive
from cnn.gradcheck import numerical_gradient, relative_error

shapes = st.tuples(st.integers(1, 5), st.integers(1, 6), st.integers(1, 5), st.integers(0, 2**32 - 1))


def make_arrays(N, D, M, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((N, D)).astype(dtype), rng.standard_normal((D, M)).astype(dtype),
            rng.standard_normal(M).astype(dtype))


@given(shapes)
def test_fast_matches_naive(shape):
    N, D, M, seed = shape
    x, w, b = make_arrays(N, D, M, seed)
    out, cache = dense_forward(x, w, b)
    out_naive, cache_naive = dense_forward_naive(x, w, b)
    np.testing.assert_allclose(out, out_naive, rtol=1e-12, atol=1e-12)
    dout = np.random.default_rng(seed + 1).standard_normal(out.shape)
    for g, g_naive in zip(dense_backward(dout, cache), dense_backward_naive(dout, cache_naive)):
        np.testing.assert_allclose(g, g_naive, rtol=1e-12, atol=1e-12)


@given(shapes)
def test_gradients_match_finite_differences(shape):
    N, D, M, seed = shape
    x, w, b = make_arrays(N, D, M, seed)
    out, cache = dense_forward(x, w, b)
    projection = np.random.default_rng(seed + 1).standard_normal(out.shape)
    grads = dense_backward(projection, cache)

    def loss(_):
        return np.sum(dense_forward(x, w, b)[0] * projection)

    for analytic, array in zip(grads, (x, w, b)):
        assert relative_error(analytic, numerical_gradient(loss, array)) < 1e-7


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_and_inputs_untouched(dtype):
    x, w, b = make_arrays(4, 3, 2, seed=0, dtype=dtype)
    copies = [a.copy() for a in (x, w, b)]
    for forward, backward in ((dense_forward, dense_backward), (dense_forward_naive, dense_backward_naive)):
        out, cache = forward(x, w, b)
        dout = np.ones_like(out)
        grads = backward(dout, cache)
        assert out.dtype == dtype and all(g.dtype == dtype for g in grads)
        for a, copy in zip((x, w, b), copies):
            np.testing.assert_array_equal(a, copy)
        np.testing.assert_array_equal(dout, 1)


def test_float32_input_with_float64_weights_stays_float32():
    x = np.ones((2, 3), dtype=np.float32)
    out, cache = dense_forward(x, np.ones((3, 4)), np.zeros(4))
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in dense_backward(np.ones((2, 4), np.float32), cache))


def test_bias_gradient_sums_over_the_batch():
    x, w, b = make_arrays(5, 3, 2, seed=1)
    _, cache = dense_forward(x, w, b)
    dout = np.ones((5, 2))
    np.testing.assert_array_equal(dense_backward(dout, cache)[2], [5.0, 5.0])
