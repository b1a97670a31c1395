"""The arguments of the normalisation functions and layers reach the arithmetic and the
error messages: ``eps`` (its default 1e-5, as PyTorch's, and a layer's own value), the
shapes and dtypes of the layers' parameters, ``momentum=1``, ``fold_batchnorm`` for any
filter shape, and a message that names the offending argument for each of them.

Issue 27 (mutation testing of ``cnn.norm``). The layers are built inside the tests, so
that a broken constructor fails a test rather than the collection."""

import numpy as np
import pytest

from cnn.norm import (
    BatchNorm,
    GroupNorm,
    LayerNorm,
    batchnorm_backward,
    batchnorm_forward,
    batchnorm_inference,
    fold_batchnorm,
    groupnorm_forward,
    layernorm_forward,
)

PYTORCH_EPS = 1e-5


def small_spread(shape, seed=0):
    """An input whose variance (about 1e-6) is comparable to eps, so eps shows."""
    rng = np.random.default_rng(seed)
    return 1e-3 * rng.standard_normal(shape) + rng.standard_normal(shape[1])[
        (None, slice(None)) + (None,) * (len(shape) - 2)]


# --- eps: the documented default and a layer's own value ---------------------------


def test_default_eps_is_pytorchs_in_every_function():
    x = small_spread((4, 3, 2, 2))
    gamma, beta = np.full(3, 2.0), np.full(3, 0.5)
    mean, var = np.zeros(3), np.zeros(3)
    # With var = 0 the evaluation-mode output is gamma x / sqrt(eps) + beta: eps alone.
    out, _ = batchnorm_inference(x, gamma, beta, mean, var)
    np.testing.assert_allclose(out, 2.0 * x / np.sqrt(PYTORCH_EPS) + 0.5, rtol=1e-12)
    w, b = np.ones((3, 1, 1, 1)), np.zeros(3)
    w_folded, _ = fold_batchnorm(w, b, gamma, beta, mean, var)
    np.testing.assert_allclose(w_folded.ravel(), 2.0 / np.sqrt(PYTORCH_EPS), rtol=1e-12)
    for default, explicit in [
        (batchnorm_forward(x, gamma, beta)[0],
         batchnorm_forward(x, gamma, beta, eps=PYTORCH_EPS)[0]),
        (layernorm_forward(x, np.ones(x.shape[1:]), np.zeros(x.shape[1:]))[0],
         layernorm_forward(x, np.ones(x.shape[1:]), np.zeros(x.shape[1:]),
                           eps=PYTORCH_EPS)[0]),
        (groupnorm_forward(x, gamma, beta, 3)[0],
         groupnorm_forward(x, gamma, beta, 3, eps=PYTORCH_EPS)[0]),
    ]:
        np.testing.assert_array_equal(default, explicit)


def layers_and_functions(eps):
    """(layer, the function computing what its forward pass must return) pairs."""
    kwargs = {} if eps is None else {"eps": eps}
    eps = PYTORCH_EPS if eps is None else eps
    gamma, beta = np.ones(3), np.zeros(3)
    return [
        (LayerNorm((3, 2, 2), dtype=np.float64, **kwargs),
         lambda x: layernorm_forward(x, np.ones((3, 2, 2)), np.zeros((3, 2, 2)), eps)[0]),
        (GroupNorm(3, 3, dtype=np.float64, **kwargs),
         lambda x: groupnorm_forward(x, gamma, beta, 3, eps)[0]),
        (BatchNorm(3, dtype=np.float64, **kwargs),
         lambda x: batchnorm_forward(x, gamma, beta, eps)[0]),
    ]


@pytest.mark.parametrize("eps", [None, 1e-3, 0.5])
def test_every_layer_normalises_with_its_own_eps(eps):
    x = small_spread((4, 3, 2, 2), seed=1)
    for layer, expected in layers_and_functions(eps):
        assert layer.eps == (PYTORCH_EPS if eps is None else eps)
        np.testing.assert_allclose(layer.forward(x), expected(x), rtol=1e-12)


def standardised(x, axes, eps):
    """The formula eq-norm-xhat written out: ``(x - mean) / sqrt(var + eps)``."""
    mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


@pytest.mark.parametrize("eps", [1e-3, 0.5])
def test_the_functions_use_the_eps_they_are_given(eps):
    x = small_spread((2, 4, 3, 3), seed=3)
    C = np.ones(4)
    out, _ = layernorm_forward(x, np.ones((4, 3, 3)), np.zeros((4, 3, 3)), eps=eps)
    np.testing.assert_allclose(out, standardised(x, (1, 2, 3), eps), rtol=1e-10)
    out, _ = groupnorm_forward(x, C, 0 * C, 4, eps=eps)
    np.testing.assert_allclose(out, standardised(x, (2, 3), eps), rtol=1e-10)
    out, _ = batchnorm_forward(x, C, 0 * C, eps=eps)
    np.testing.assert_allclose(out, standardised(x, (0, 2, 3), eps), rtol=1e-10)


def test_batchnorm_in_evaluation_mode_uses_its_own_eps():
    x = small_spread((4, 3), seed=2)
    for eps in (1e-3, 0.5):
        layer = BatchNorm(3, eps=eps, dtype=np.float64)
        layer.buffers["running_var"][:] = 0.0
        layer.training = False
        np.testing.assert_allclose(layer.forward(x), x / np.sqrt(eps), rtol=1e-12)


def test_eps_changes_the_output_of_a_small_spread_input():
    """The premise of the two tests above: on this input eps is not negligible."""
    x = small_spread((4, 3, 2, 2), seed=1)
    gamma, beta = np.ones(3), np.zeros(3)
    assert np.abs(batchnorm_forward(x, gamma, beta, eps=0.5)[0]
                  - batchnorm_forward(x, gamma, beta)[0]).max() > 0.1


# --- the layers' parameters ----------------------------------------------------------


@pytest.mark.parametrize("make, shape", [
    (lambda dtype: LayerNorm(5, dtype=dtype), (5,)),
    (lambda dtype: LayerNorm((3, 2, 2), dtype=dtype), (3, 2, 2)),
    (lambda dtype: LayerNorm([3, 4], dtype=dtype), (3, 4)),
    (lambda dtype: GroupNorm(2, 4, dtype=dtype), (4,)),
    (lambda dtype: BatchNorm(4, dtype=dtype), (4,)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layers_start_as_the_identity_with_parameters_of_the_right_shape(make, shape,
                                                                          dtype):
    layer, expected = make(dtype), np.dtype(dtype)
    assert layer.params.keys() == layer.grads.keys() == {"gamma", "beta"}
    for name, fill in (("gamma", 1.0), ("beta", 0.0)):
        value, grad = layer.params[name], layer.grads[name]
        assert value.shape == grad.shape == shape
        assert value.dtype == grad.dtype == expected
        np.testing.assert_array_equal(value, fill)
        np.testing.assert_array_equal(grad, 0.0)


@pytest.mark.parametrize("make", [lambda: LayerNorm(4), lambda: GroupNorm(2, 4),
                                  lambda: BatchNorm(4)])
def test_layers_default_to_float32_parameters(make):
    layer = make()
    assert {value.dtype for value in layer.params.values()} == {np.dtype(np.float32)}
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    assert layer.forward(x).dtype == np.float32


def test_repr_shows_the_constructor_arguments():
    assert repr(LayerNorm((2, 3), eps=1e-3)) == "LayerNorm((2, 3), eps=0.001)"
    assert repr(GroupNorm(2, 6, eps=0.5)) == "GroupNorm(2, 6, eps=0.5)"
    assert repr(BatchNorm(3, momentum=0.2, eps=0.5)) == "BatchNorm(3, momentum=0.2, eps=0.5)"


def test_momentum_one_keeps_only_the_last_batch():
    rng = np.random.default_rng(3)
    layer = BatchNorm(2, momentum=1.0, dtype=np.float64)
    for _ in range(2):
        x = rng.standard_normal((5, 2, 3, 3)) * 2 + 1
        layer.forward(x)
    np.testing.assert_allclose(layer.buffers["running_mean"], x.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(layer.buffers["running_var"], x.var(axis=(0, 2, 3), ddof=1))


# --- messages that name the argument ---------------------------------------------------


def nan(shape):
    return np.full(shape, np.nan)


X4, C1 = np.ones((2, 3, 2, 2)), np.ones(3)


@pytest.mark.parametrize("call, error, pattern", [
    (lambda: batchnorm_forward(nan((2, 3)), C1, C1), ValueError, "^x contains NaN"),
    (lambda: batchnorm_forward(X4, np.ones(2), C1), ValueError,
     r"^gamma must have shape \(C=3,\)"),
    (lambda: batchnorm_forward(X4, C1, np.ones(4)), ValueError,
     r"^beta must have shape \(C=3,\)"),
    (lambda: batchnorm_forward(np.ones((1, 3)), C1, C1), ValueError,
     r"^x of shape \(1, 3\) has one value per channel; batch statistics need at least "
     r"two \(use evaluation mode for single samples\)$"),
    (lambda: batchnorm_inference(nan((1, 3)), C1, C1, C1, C1), ValueError,
     "^x contains NaN"),
    (lambda: layernorm_forward(nan((2, 3)), C1, C1), ValueError, "^x contains NaN"),
    (lambda: layernorm_forward(np.ones((2, 3)), nan(3), C1), ValueError,
     "^gamma contains NaN"),
    (lambda: groupnorm_forward(np.ones((2, 3)), C1, nan(3), 1), ValueError,
     "^beta contains NaN"),
    (lambda: groupnorm_forward(np.ones((2, 6)), np.ones(6), np.ones(6), 4), ValueError,
     "^the C=6 channels of x cannot be split into groups=4 groups of equal size$"),
    (lambda: BatchNorm(0), ValueError, "^num_features must be >= 1"),
    (lambda: BatchNorm(3, momentum=1.5), ValueError,
     r"^momentum must be in \[0.0, 1.0\], got 1.5$"),
    (lambda: GroupNorm(1, 0), ValueError, "^num_channels must be >= 1"),
    (lambda: GroupNorm(1, 2.0), TypeError, "^num_channels must be an int"),
    (lambda: LayerNorm(0), ValueError, "^normalized_shape must be >= 1"),
    (lambda: LayerNorm((3, 0)), ValueError, "^normalized_shape must be >= 1, got 0$"),
    (lambda: LayerNorm([3, 2.0]), TypeError, "^normalized_shape must be an int"),
    (lambda: LayerNorm(3, eps=0), ValueError, "^eps must be a finite number > 0"),
    (lambda: GroupNorm(1, 3, eps=np.inf), ValueError, "^eps must be a finite number > 0"),
])
def test_the_message_names_the_argument(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


F4 = np.ones(4)


def fold_args(**change):
    args = {"w": np.ones((4, 3, 3, 3)), "b": F4, "gamma": F4, "beta": F4,
            "running_mean": F4, "running_var": F4}
    return {**args, **change}


@pytest.mark.parametrize("name", ["b", "gamma", "beta", "running_mean", "running_var"])
def test_fold_batchnorm_names_a_vector_of_the_wrong_length(name):
    with pytest.raises(ValueError, match=rf"^{name} must have shape \(F=4,\), got shape "
                                         r"\(3,\)$"):
        fold_batchnorm(**fold_args(**{name: np.ones(3)}))
    with pytest.raises(ValueError, match=f"^{name} contains NaN"):
        fold_batchnorm(**fold_args(**{name: nan(4)}))


def test_fold_batchnorm_names_a_bad_w():
    with pytest.raises(ValueError, match=r"^w must have shape \(F, C, KH, KW\), got shape "
                                         r"\(4,\)$"):
        fold_batchnorm(**fold_args(w=np.ones(4)))
    with pytest.raises(ValueError, match="^w contains NaN"):
        fold_batchnorm(**fold_args(w=nan((4, 3, 3, 3))))


def test_fold_batchnorm_treats_every_filter_shape_alike():
    """``w`` of any shape ``(F, ...)``: a dense-like ``(F, D)`` folds as ``(F, D, 1, 1)``,
    and a zero running variance is allowed (eps keeps it finite)."""
    rng = np.random.default_rng(4)
    w, b = rng.standard_normal((4, 6)), rng.standard_normal(4)
    gamma, beta, mean = rng.standard_normal(4), rng.standard_normal(4), rng.standard_normal(4)
    var = np.array([0.0, 0.5, 1.0, 2.0])
    flat = fold_batchnorm(w, b, gamma, beta, mean, var, eps=0.1)
    conv = fold_batchnorm(w[:, :, None, None], b, gamma, beta, mean, var, eps=0.1)
    np.testing.assert_array_equal(flat[0], conv[0][:, :, 0, 0])
    np.testing.assert_array_equal(flat[1], conv[1])
    scale = gamma / np.sqrt(var + 0.1)
    np.testing.assert_allclose(flat[0], w * scale[:, None], rtol=1e-12)
    np.testing.assert_allclose(flat[1], (b - mean) * scale + beta, rtol=1e-12)


def test_evaluation_cache_records_the_statistics_used():
    rng = np.random.default_rng(5)
    x, mean, var = rng.standard_normal((3, 2)), rng.standard_normal(2), np.array([0.5, 2])
    out, cache = batchnorm_inference(x, np.ones(2), np.zeros(2), mean, var)
    np.testing.assert_array_equal(cache.mean, mean)
    np.testing.assert_array_equal(cache.var, var)
    assert not cache.batch_statistics
    dx, _, _ = batchnorm_backward(np.ones_like(x), cache)
    np.testing.assert_allclose(dx, np.broadcast_to(1 / np.sqrt(var + PYTORCH_EPS), x.shape))
