"""Batch normalisation: the staged and compact backward passes agree, the layer's running
statistics follow PyTorch's rule, evaluation mode uses them, and bad inputs are rejected."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnn.gradcheck import check_layer
from cnn.norm import (
    BatchNorm,
    batchnorm_backward,
    batchnorm_backward_naive,
    batchnorm_forward,
    batchnorm_inference,
    channel_sum,
)


def bn_inputs(shape, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = (3 * rng.standard_normal(shape) + 5).astype(dtype)
    gamma, beta = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)
    return x, gamma, beta, rng.standard_normal(shape).astype(dtype)


shapes = st.one_of(
    st.tuples(st.integers(2, 6), st.integers(1, 4)),
    st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4)),
).filter(lambda s: np.prod(s) // s[1] >= 2)


@settings(max_examples=40)
@given(shapes, st.integers(0, 2**32 - 1), st.sampled_from([True, False]))
def test_compact_backward_matches_the_staged_one(shape, seed, training):
    x, gamma, beta, dout = bn_inputs(shape, seed)
    if training:
        _, cache = batchnorm_forward(x, gamma, beta)
    else:
        rng = np.random.default_rng(seed + 1)
        _, cache = batchnorm_inference(x, gamma, beta, rng.standard_normal(shape[1]),
                                       rng.uniform(0.5, 2, shape[1]))
    for compact, staged in zip(batchnorm_backward(dout, cache), batchnorm_backward_naive(dout, cache)):
        assert compact.shape == staged.shape
        np.testing.assert_allclose(compact, staged, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("shape", [(7, 3), (3, 2, 4, 5)])
def test_forward_normalises_every_channel(shape):
    x, gamma, beta, _ = bn_inputs(shape, 0)
    x_copy = x.copy()
    out, cache = batchnorm_forward(x, np.ones(shape[1]), np.zeros(shape[1]))
    axes = (0,) + tuple(range(2, len(shape)))
    np.testing.assert_allclose(out.mean(axis=axes), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=axes), 1, rtol=1e-5)  # eps makes it slightly < 1
    out, _ = batchnorm_forward(x, gamma, beta)
    np.testing.assert_allclose(out.mean(axis=axes), beta, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=axes), np.abs(gamma), rtol=1e-5)
    np.testing.assert_array_equal(x, x_copy)


def test_the_gradient_for_x_sums_to_zero_per_channel():
    """Shifting a whole channel of x changes nothing after normalisation: dx sums to 0 in each."""
    x, gamma, beta, dout = bn_inputs((4, 3, 2, 2), 1)
    dx, _, _ = batchnorm_backward(dout, batchnorm_forward(x, gamma, beta)[1])
    np.testing.assert_allclose(dx.sum(axis=(0, 2, 3)), 0, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype):
    x, gamma, beta, dout = bn_inputs((4, 3, 2, 2), 2, dtype)
    out, cache = batchnorm_forward(x, gamma.astype(np.float64), beta)
    assert out.dtype == dtype
    assert all(g.dtype == dtype for g in batchnorm_backward(dout, cache))


def test_channel_sum():
    x, _, _, y = bn_inputs((3, 2, 4, 5), 3)
    np.testing.assert_allclose(channel_sum(x), x.sum(axis=(0, 2, 3)))
    np.testing.assert_allclose(channel_sum(x, y), (x * y).sum(axis=(0, 2, 3)))
    np.testing.assert_allclose(channel_sum(x[:, :, 0, 0], y[:, :, 0, 0]), (x * y)[:, :, 0, 0].sum(axis=0))


@pytest.mark.parametrize("shape, training", [((5, 3), True), ((3, 2, 3, 2), True), ((3, 2, 3, 2), False)])
def test_layer_gradient_check(shape, training):
    layer = BatchNorm(shape[1], dtype=np.float64)
    rng = np.random.default_rng(4)
    layer.params["gamma"][:] = rng.standard_normal(shape[1])
    layer.params["beta"][:] = rng.standard_normal(shape[1])
    layer.buffers["running_var"][:] = rng.uniform(0.5, 2, shape[1])
    layer.training = training
    errors = check_layer(layer, rng.standard_normal(shape))
    assert errors.keys() == {"x", "gamma", "beta"}
    assert max(errors.values()) < 1e-7


def test_running_statistics_follow_pytorch():
    """running <- (1 - momentum) running + momentum batch, with the unbiased batch variance."""
    layer = BatchNorm(3, momentum=0.2, dtype=np.float64)
    rng = np.random.default_rng(5)
    mean, var = np.zeros(3), np.ones(3)
    for _ in range(4):
        x = rng.standard_normal((6, 3, 2, 2)) * 2 + 1
        layer.forward(x)
        mean = 0.8 * mean + 0.2 * x.mean(axis=(0, 2, 3))
        var = 0.8 * var + 0.2 * x.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(layer.buffers["running_mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(layer.buffers["running_var"], var, rtol=1e-12)


def test_running_statistics_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    x = rng.standard_normal((5, 4, 3, 3)) * 3 + 2
    ours = BatchNorm(4, momentum=0.3, dtype=np.float64)
    theirs = torch.nn.BatchNorm2d(4, momentum=0.3, dtype=torch.float64)
    out = ours.forward(x)
    expected = theirs(torch.from_numpy(x))
    np.testing.assert_allclose(out, expected.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ours.buffers["running_var"], theirs.running_var.numpy(), rtol=1e-12)
    ours.training = False
    theirs.eval()
    np.testing.assert_allclose(ours.forward(x), theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-10,
                               atol=1e-10)


def test_evaluation_mode_uses_the_running_statistics_and_does_not_update_them():
    layer = BatchNorm(2, dtype=np.float64)
    layer.buffers["running_mean"][:] = [1.0, -2.0]
    layer.buffers["running_var"][:] = [4.0, 0.25]
    layer.training = False
    x = np.random.default_rng(7).standard_normal((1, 2, 3, 3))  # one sample is fine in evaluation
    out = layer.forward(x)
    expected = (x - np.array([1.0, -2.0])[None, :, None, None]) / np.sqrt(
        np.array([4.0, 0.25])[None, :, None, None] + 1e-5)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    np.testing.assert_array_equal(layer.buffers["running_mean"], [1.0, -2.0])
    # In evaluation the output of one sample does not depend on the rest of the batch.
    other = np.concatenate([x, 10 + x])
    np.testing.assert_allclose(layer.forward(other)[:1], out, rtol=1e-12)


@pytest.mark.parametrize("call, error, pattern", [
    (lambda: batchnorm_forward(np.zeros(4), np.ones(4), np.zeros(4)), ValueError, r"\(N, C\)"),
    (lambda: batchnorm_forward(np.zeros((4, 3)), np.ones(2), np.zeros(3)), ValueError, r"gamma.*C=3"),
    (lambda: batchnorm_forward(np.zeros((4, 3)), np.ones(3), np.zeros(4)), ValueError, r"beta.*C=3"),
    (lambda: batchnorm_forward(np.zeros((4, 3)), np.ones(3), np.zeros(3), eps=0), ValueError, "eps"),
    (lambda: batchnorm_forward(np.zeros((4, 3)), np.ones(3), np.zeros(3), eps=-1e-5), ValueError, "eps"),
    (lambda: batchnorm_forward(np.zeros((1, 3)), np.ones(3), np.zeros(3)), ValueError, "one value per channel"),
    (lambda: batchnorm_forward(np.zeros((4, 3), dtype=int), np.ones(3), np.zeros(3)), TypeError, "floating"),
    (lambda: batchnorm_inference(np.zeros((4, 3)), np.ones(3), np.zeros(3), np.zeros(3), -np.ones(3)),
     ValueError, "non-negative"),
    (lambda: BatchNorm(0), ValueError, "num_features"),
    (lambda: BatchNorm(3, momentum=1.5), ValueError, "momentum"),
    (lambda: BatchNorm(3, eps=0.0), ValueError, "eps"),
    (lambda: BatchNorm(3).forward(np.zeros((4, 2), dtype=np.float32)), ValueError, r"gamma.*C=2"),
])
def test_bad_inputs_raise_clear_errors(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_backward_rejects_a_wrong_dout():
    _, cache = batchnorm_forward(np.ones((4, 3)) * np.arange(4)[:, None], np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="dout"):
        batchnorm_backward(np.zeros((4, 2)), cache)
    with pytest.raises(RuntimeError, match="before forward"):
        BatchNorm(3).backward(np.zeros((4, 3), dtype=np.float32))


# Issue 27 (mutation testing): evaluation-mode statistics are checked by name and shape,
# a variance of exactly 0 is allowed, and float32 stays float32 whatever the parameters.
@pytest.mark.parametrize("mean, var, pattern", [
    (np.zeros(2), np.ones(3), r"^mean must have shape \(C=3,\), got shape \(2,\)$"),
    (np.zeros(3), np.ones(2), r"^var must have shape \(C=3,\), got shape \(2,\)$"),
    (np.zeros((3, 1)), np.ones(3), r"^mean must have shape \(C=3,\), got shape \(3, 1\)$"),
    (np.zeros(3), -np.ones(3), r"^var must be non-negative, got minimum -1.0$"),
])
def test_batchnorm_inference_checks_its_statistics(mean, var, pattern):
    x, gamma, beta = np.ones((4, 3)), np.ones(3), np.zeros(3)
    with pytest.raises(ValueError, match=pattern):
        batchnorm_inference(x, gamma, beta, mean, var)


def test_batchnorm_inference_accepts_a_variance_of_zero():
    x = np.ones((2, 3))
    out = batchnorm_inference(x, np.ones(3), np.zeros(3), np.ones(3), np.zeros(3), eps=1.0)
    np.testing.assert_array_equal(out[0] if isinstance(out, tuple) else out, 0.0)


def test_float32_batch_norm_stays_float32_with_float64_parameters():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)  # float64
    out, cache = batchnorm_forward(x, gamma, beta)
    assert out.dtype == np.float32 and cache.gamma.dtype == np.float32
    inference = batchnorm_inference(x, gamma, beta, np.zeros(3), np.ones(3))
    inference = inference[0] if isinstance(inference, tuple) else inference
    assert inference.dtype == np.float32
    dx, dgamma, dbeta = batchnorm_backward(np.ones((4, 3, 2, 2)), cache)  # float64 dout
    assert dx.dtype == np.float32
    layer = BatchNorm(3)
    assert {a.dtype for a in [*layer.params.values(), *layer.buffers.values()]} == {
        np.dtype(np.float32)}
    assert {a.dtype for a in layer.grads.values()} == {np.dtype(np.float32)}
    assert cache.batch_statistics and cache.mean.shape == cache.var.shape == (3,)
    np.testing.assert_allclose(cache.mean, x.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(cache.var, x.var(axis=(0, 2, 3)), rtol=1e-4)
