"""LayerNorm, GroupNorm (InstanceNorm as groups = C) and fold_batchnorm: agreement with
the formulas, with PyTorch (when importable) in float64, gradient checks of the layers,
and clear errors for bad arguments."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnn.conv import conv2d_forward
from cnn.gradcheck import check_layer
from cnn.norm import (
    GroupNorm,
    LayerNorm,
    batchnorm_backward,
    batchnorm_forward,
    batchnorm_inference,
    fold_batchnorm,
    groupnorm_backward,
    groupnorm_forward,
    layernorm_backward,
    layernorm_forward,
    normalize_backward,
    normalize_forward,
)


def case(shape, seed, parameter_shape):
    rng = np.random.default_rng(seed)
    x = 3 * rng.standard_normal(shape) + rng.standard_normal(shape[:2] + (1,) * (len(shape) - 2))
    gamma = rng.standard_normal(parameter_shape)
    beta = rng.standard_normal(parameter_shape)
    return x, gamma, beta, rng.standard_normal(shape)


def groupnorm_by_loops(x, gamma, beta, groups, eps=1e-5):
    """Statistics of each (sample, group) slice, one slice at a time."""
    N, C = x.shape[:2]
    out = np.empty_like(x)
    size = C // groups
    for n in range(N):
        for g in range(groups):
            part = x[n, g * size:(g + 1) * size]
            x_hat = (part - part.mean()) / np.sqrt(part.var() + eps)
            scale = gamma[g * size:(g + 1) * size].reshape((-1,) + (1,) * (x.ndim - 2))
            shift = beta[g * size:(g + 1) * size].reshape(scale.shape)
            out[n, g * size:(g + 1) * size] = scale * x_hat + shift
    return out


sample_shapes = st.one_of(
    st.tuples(st.integers(1, 4), st.integers(2, 6)),
    st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3)),
).filter(lambda s: np.prod(s[1:]) >= 2)


@settings(max_examples=25, deadline=None)
@given(sample_shapes, st.integers(0, 2**32 - 1))
def test_layernorm_normalises_each_sample_and_its_backward_is_the_general_one(shape, seed):
    x, gamma, beta, dout = case(shape, seed, shape[1:])
    x_copy = x.copy()
    out, cache = layernorm_forward(x, np.ones(shape[1:]), np.zeros(shape[1:]))
    axes = tuple(range(1, x.ndim))
    np.testing.assert_allclose(out.mean(axis=axes), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=axes), x.var(axis=axes) / (x.var(axis=axes) + 1e-5))
    out, cache = layernorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = layernorm_backward(dout, cache)
    np.testing.assert_allclose(dbeta, dout.sum(axis=0))
    np.testing.assert_allclose(dgamma, (dout * cache.norm.x_hat).sum(axis=0))
    np.testing.assert_allclose(dx, normalize_backward(dout * gamma, cache.norm))
    # One sample's output does not depend on the rest of the batch.
    np.testing.assert_allclose(layernorm_forward(x[:1], gamma, beta)[0], out[:1], rtol=1e-12)
    np.testing.assert_array_equal(x, x_copy)


def groupnorm_case(shape, seed, data):
    """``case`` for GroupNorm, with a number of groups drawn among the divisors of C."""
    C = shape[1]
    groups = data.draw(st.sampled_from([g for g in range(1, C + 1) if C % g == 0]))
    return (*case(shape, seed, (C,)), groups)


@settings(max_examples=25, deadline=None)
@given(sample_shapes, st.integers(0, 2**32 - 1), st.data())
def test_groupnorm_matches_the_loops(shape, seed, data):
    x, gamma, beta, _, groups = groupnorm_case(shape, seed, data)
    out, _ = groupnorm_forward(x, gamma, beta, groups)
    np.testing.assert_allclose(out, groupnorm_by_loops(x, gamma, beta, groups), rtol=1e-10,
                               atol=1e-12)


def test_batchnorm_layernorm_and_groupnorm_share_one_backward():
    """normalize_backward over (0, 2, 3) is batch norm's compact backward (gamma = 1)."""
    x, _, _, dout = case((4, 3, 2, 2), 0, (3,))
    bn_dx = batchnorm_backward(dout, batchnorm_forward(x, np.ones(3), np.zeros(3))[1])[0]
    x_hat, cache = normalize_forward(x, (0, 2, 3))
    np.testing.assert_allclose(normalize_backward(dout, cache), bn_dx, rtol=1e-10, atol=1e-12)
    # GroupNorm with one group is LayerNorm with per-channel parameters.
    gamma, beta = np.arange(1.0, 4.0), np.arange(3.0)
    full = np.broadcast_to(gamma[:, None, None], (3, 2, 2))
    shift = np.broadcast_to(beta[:, None, None], (3, 2, 2))
    ln, ln_cache = layernorm_forward(x, full.copy(), shift.copy())
    gn, gn_cache = groupnorm_forward(x, gamma, beta, groups=1)
    np.testing.assert_allclose(gn, ln, rtol=1e-12)
    np.testing.assert_allclose(groupnorm_backward(dout, gn_cache)[0],
                               layernorm_backward(dout, ln_cache)[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("layer, shape", [
    (LayerNorm(6, dtype=np.float64), (3, 6)),
    (LayerNorm((2, 3, 2), dtype=np.float64), (2, 2, 3, 2)),
    (GroupNorm(2, 4, dtype=np.float64), (2, 4, 3, 2)),
    (GroupNorm(3, 3, dtype=np.float64), (2, 3, 2, 2)),  # InstanceNorm
    (GroupNorm(1, 4, dtype=np.float64), (3, 4)),
])
def test_layer_gradient_check(layer, shape):
    rng = np.random.default_rng(1)
    for value in layer.params.values():
        value[...] = rng.standard_normal(value.shape)
    for training in (True, False):  # no running statistics: both modes are the same
        layer.training = training
        errors = check_layer(layer, rng.standard_normal(shape))
        assert errors.keys() == {"x", "gamma", "beta"}
        assert max(errors.values()) < 1e-7


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype):
    x, gamma, beta, dout = case((2, 4, 3, 3), 2, (4,))
    out, cache = groupnorm_forward(x.astype(dtype), gamma, beta, 2)
    assert out.dtype == dtype
    assert all(g.dtype == dtype for g in groupnorm_backward(dout.astype(dtype), cache))
    out, cache = layernorm_forward(x.astype(dtype), np.ones((4, 3, 3)), np.zeros((4, 3, 3)))
    assert out.dtype == dtype
    assert all(g.dtype == dtype for g in layernorm_backward(dout.astype(dtype), cache))


@pytest.mark.parametrize("seed", range(3))
def test_fold_batchnorm_equals_conv_then_evaluation_batchnorm(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, 6, 5))
    w, b = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    mean, var = rng.standard_normal(4), rng.uniform(0.1, 3, 4)
    expected, _ = batchnorm_inference(conv2d_forward(x, w, b, padding=1)[0], gamma, beta,
                                      mean, var, eps=1e-3)
    w_folded, b_folded = fold_batchnorm(w, b, gamma, beta, mean, var, eps=1e-3)
    assert w_folded.shape == w.shape and b_folded.shape == b.shape
    np.testing.assert_allclose(conv2d_forward(x, w_folded, b_folded, padding=1)[0], expected,
                               rtol=1e-10, atol=1e-12)
    folded32 = fold_batchnorm(w.astype(np.float32), b.astype(np.float32), gamma, beta, mean, var)
    assert all(a.dtype == np.float32 for a in folded32)


def test_agrees_with_torch_in_float64():
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    rng = np.random.default_rng(3)
    for shape, groups in [((3, 6, 4, 5), 3), ((2, 4, 3, 3), 4), ((4, 8), 2), ((2, 5, 1, 7), 1)]:
        x, gamma, beta, dout = case(shape, groups, (shape[1],))
        xt = torch.tensor(x, requires_grad=True)
        gt, bt = torch.tensor(gamma, requires_grad=True), torch.tensor(beta, requires_grad=True)
        outt = functional.group_norm(xt, groups, gt, bt, eps=1e-5)
        outt.backward(torch.tensor(dout))
        out, cache = groupnorm_forward(x, gamma, beta, groups)
        np.testing.assert_allclose(out, outt.detach().numpy(), rtol=1e-10, atol=1e-10)
        for ours, theirs in zip(groupnorm_backward(dout, cache), (xt, gt, bt)):
            np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-10, atol=1e-10)

        gamma, beta = rng.standard_normal(shape[1:]), rng.standard_normal(shape[1:])
        xt = torch.tensor(x, requires_grad=True)
        gt, bt = torch.tensor(gamma, requires_grad=True), torch.tensor(beta, requires_grad=True)
        outt = functional.layer_norm(xt, shape[1:], gt, bt, eps=1e-5)
        outt.backward(torch.tensor(dout))
        out, cache = layernorm_forward(x, gamma, beta)
        np.testing.assert_allclose(out, outt.detach().numpy(), rtol=1e-10, atol=1e-10)
        for ours, theirs in zip(layernorm_backward(dout, cache), (xt, gt, bt)):
            np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("call, error, pattern", [
    (lambda: layernorm_forward(np.zeros(4), np.ones(()), np.zeros(())), ValueError, r"\(N, C"),
    (lambda: layernorm_forward(np.zeros((2, 3)), np.ones(2), np.zeros(3)), ValueError,
     r"gamma must have shape x.shape\[1:\] = \(3,\)"),
    (lambda: layernorm_forward(np.zeros((2, 3)), np.ones(3), np.zeros(3), eps=0), ValueError, "eps"),
    (lambda: groupnorm_forward(np.zeros((2, 6, 2, 2)), np.ones(6), np.zeros(6), 4), ValueError,
     "C=6.*groups=4"),
    (lambda: groupnorm_forward(np.zeros((2, 6)), np.ones(6), np.zeros(5), 2), ValueError,
     r"beta must have shape \(C,\)"),
    (lambda: groupnorm_forward(np.zeros((2, 6)), np.ones(6), np.zeros(6), 0), ValueError, "groups"),
    (lambda: groupnorm_forward(np.zeros((2, 6), dtype=int), np.ones(6), np.zeros(6), 2), TypeError,
     "floating"),
    (lambda: GroupNorm(4, 6), ValueError, "C=6 num_channels cannot be split into groups=4"),
    (lambda: LayerNorm(0), ValueError, "normalized_shape"),
    (lambda: fold_batchnorm(np.ones((4, 3, 3, 3)), np.ones(4), np.ones(3), np.ones(4), np.ones(4),
                            np.ones(4)), ValueError, r"gamma.*F=4"),
    (lambda: fold_batchnorm(np.ones((4, 3, 3, 3)), np.ones(4), np.ones(4), np.ones(4), np.ones(4),
                            -np.ones(4)), ValueError, "running_var"),
    (lambda: layernorm_backward(np.zeros((2, 3)), None), TypeError, "LayerNormCache"),
    (lambda: groupnorm_backward(np.zeros((2, 3)), None), TypeError, "GroupNormCache"),
])
def test_bad_inputs_raise_clear_errors(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_backward_rejects_a_wrong_dout():
    _, cache = groupnorm_forward(np.arange(12.0).reshape(2, 6), np.ones(6), np.zeros(6), 3)
    with pytest.raises(ValueError, match="dout"):
        groupnorm_backward(np.zeros((2, 5)), cache)


@settings(max_examples=25, deadline=None)
@given(sample_shapes, st.integers(0, 2**32 - 1), st.data())
def test_the_tuned_groupnorm_is_the_plain_one(shape, seed, data):
    from cnn.fast.norm import groupnorm_backward_fast, groupnorm_forward_fast

    x, gamma, beta, dout, groups = groupnorm_case(shape, seed, data)
    x_copy = x.copy()
    out, cache = groupnorm_forward(x, gamma, beta, groups)
    out_fast, cache_fast = groupnorm_forward_fast(x, gamma, beta, groups)
    np.testing.assert_allclose(out_fast, out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cache_fast.norm.x_hat, cache.norm.x_hat, rtol=1e-10, atol=1e-12)
    assert cache_fast.norm.inv_std.shape == cache.norm.inv_std.shape
    assert cache_fast.norm.axes == cache.norm.axes
    expected = groupnorm_backward(dout, cache)
    # Either backward pass takes either forward pass's cache.
    for grads in (groupnorm_backward_fast(dout, cache_fast),
                  groupnorm_backward_fast(dout, cache), groupnorm_backward(dout, cache_fast)):
        for got, want in zip(grads, expected):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(x, x_copy)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_tuned_groupnorm_layer_keeps_the_dtype_and_passes_the_gradient_check(dtype):
    from cnn.fast.norm import GroupNorm as FastGroupNorm

    x, gamma, beta, dout = case((3, 6, 4, 5), 4, (6,))
    plain, tuned = GroupNorm(3, 6, dtype=dtype), FastGroupNorm(3, 6, dtype=dtype)
    assert isinstance(tuned, GroupNorm) and repr(tuned) == repr(plain)
    for layer in (plain, tuned):
        layer.params["gamma"][...], layer.params["beta"][...] = gamma, beta
    out = tuned.forward(x.astype(dtype))
    assert out.dtype == dtype
    np.testing.assert_allclose(out, plain.forward(x.astype(dtype)), rtol=1e-5, atol=1e-5)
    dx = tuned.backward(dout.astype(dtype))
    assert dx.dtype == dtype and tuned.grads["gamma"].dtype == dtype
    np.testing.assert_allclose(dx, plain.backward(dout.astype(dtype)), rtol=1e-4, atol=1e-4)
    if dtype == np.float64:
        assert max(check_layer(tuned, x).values()) < 1e-7


@pytest.mark.parametrize("call, error, pattern", [
    (lambda f: f(np.zeros((2, 6, 2, 2)), np.ones(6), np.zeros(6), 4), ValueError, "C=6.*groups=4"),
    (lambda f: f(np.zeros((2, 6)), np.ones(6), np.zeros(5), 2), ValueError, r"beta.*\(C,\)"),
    (lambda f: f(np.zeros((2, 6), dtype=int), np.ones(6), np.zeros(6), 2), TypeError, "floating"),
    (lambda f: f(np.full((2, 6), np.nan), np.ones(6), np.zeros(6), 2), ValueError, "x"),
    (lambda f: f(np.zeros((2, 6)), np.ones(6), np.zeros(6), 2, eps=0), ValueError, "eps"),
])
def test_the_tuned_groupnorm_refuses_what_the_plain_one_refuses(call, error, pattern):
    from cnn.fast.norm import groupnorm_backward_fast, groupnorm_forward_fast

    for forward in (groupnorm_forward, groupnorm_forward_fast):
        with pytest.raises(error, match=pattern):
            call(forward)
    _, cache = groupnorm_forward_fast(np.arange(12.0).reshape(2, 6), np.ones(6), np.zeros(6), 3)
    with pytest.raises(ValueError, match="dout"):
        groupnorm_backward_fast(np.zeros((2, 5)), cache)
    with pytest.raises(TypeError, match="GroupNormCache"):
        groupnorm_backward_fast(np.zeros((2, 6)), None)
