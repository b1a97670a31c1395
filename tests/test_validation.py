"""Bad input raises TypeError/ValueError naming the argument and the expected shape."""

import numpy as np
import pytest

from cnn.activations import relu_backward, relu_forward, softmax
from cnn.checks import as_pair
from cnn.conv import conv2d_backward, conv2d_backward_naive, conv2d_forward, conv2d_forward_naive
from cnn.dense import dense_backward, dense_forward
from cnn.layers import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D
from cnn.losses import softmax_cross_entropy
from cnn.model import Sequential
from cnn.optim import SGD
from cnn.pool import (
    avgpool2d_backward,
    avgpool2d_forward,
    avgpool2d_forward_naive,
    maxpool2d_backward,
    maxpool2d_forward,
    maxpool2d_forward_naive,
)

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3, 6, 6))
W = rng.standard_normal((4, 3, 3, 3))
B = np.zeros(4)


def with_nan(a):
    a = a.copy()
    a.flat[0] = np.nan
    return a


def with_inf(a):
    a = a.copy()
    a.flat[-1] = np.inf
    return a


CONV_CASES = [
    # (kwargs, exception, pattern in the message)
    (dict(x=X[0]), ValueError, r"x must have shape \(N, C, H, W\), got shape \(3, 6, 6\)"),
    (dict(w=W[:, :2]), ValueError, r"w must have shape \(F, C=3, KH, KW\), got shape \(4, 2, 3, 3\)"),
    (dict(w=W[0]), ValueError, r"w must have shape \(F, C=3, KH, KW\), got shape \(3, 3, 3\)"),
    (dict(b=np.zeros(5)), ValueError, r"b must have shape \(F=4,\), got shape \(5,\)"),
    (dict(b=np.zeros((4, 1))), ValueError, r"b must have shape \(F=4,\), got shape \(4, 1\)"),
    (dict(w=rng.standard_normal((4, 3, 7, 3))), ValueError, r"kernel_size .* \(7, 3\) is larger than the padded input .* \(6, 6\)"),
    (dict(w=rng.standard_normal((4, 3, 9, 3)), padding=1), ValueError, r"\(9, 3\) is larger than the padded input .* \(8, 8\)"),
    (dict(stride=0), ValueError, r"stride must be >= 1, got 0"),
    (dict(stride=(1, -1)), ValueError, r"stride must be >= 1"),
    (dict(padding=-1), ValueError, r"padding must be >= 0, got -1"),
    (dict(stride=1.5), TypeError, r"stride must be an int or a pair of ints, got 1.5"),
    (dict(stride=True), TypeError, r"stride must be an int or a pair of ints"),
    (dict(padding=(1, 1, 1)), ValueError, r"padding must be an int or a pair of ints, got 3 values"),
    (dict(x=with_nan(X)), ValueError, r"x contains NaN or infinity"),
    (dict(w=with_inf(W)), ValueError, r"w contains NaN or infinity"),
    (dict(x=X.tolist()), TypeError, r"x must be a numpy.ndarray, got list"),
    (dict(x=X.astype(int)), TypeError, r"x must have a floating-point dtype .* got int64"),
]


@pytest.mark.parametrize("forward", [conv2d_forward, conv2d_forward_naive])
@pytest.mark.parametrize("kwargs, error, pattern", CONV_CASES)
def test_conv_forward_rejects(forward, kwargs, error, pattern):
    args = dict(x=X, w=W, b=B, stride=1, padding=0) | kwargs
    with pytest.raises(error, match=pattern):
        forward(**args)


@pytest.mark.parametrize("backward", [conv2d_backward, conv2d_backward_naive])
def test_conv_backward_rejects_a_wrong_dout(backward):
    out, cache = conv2d_forward(X, W, B, stride=2, padding=1)
    with pytest.raises(ValueError, match=r"dout must have shape \(N=2, F=4, H_out=3, W_out=3\), got shape \(2, 4, 6, 6\)"):
        backward(np.zeros((2, 4, 6, 6)), cache)
    with pytest.raises(ValueError, match="dout contains NaN"):
        backward(with_nan(out), cache)


POOL_CASES = [
    (dict(x=X[0]), ValueError, r"x must have shape \(N, C, H, W\), got shape \(3, 6, 6\)"),
    (dict(kernel_size=7), ValueError, r"kernel_size .* \(7, 7\) is larger than the padded input .* \(6, 6\)"),
    (dict(kernel_size=0), ValueError, r"kernel_size must be >= 1, got 0"),
    (dict(stride=0), ValueError, r"stride must be >= 1, got 0"),
    (dict(kernel_size=(2, "2")), TypeError, r"kernel_size must be an int or a pair of ints"),
    (dict(x=with_nan(X)), ValueError, r"x contains NaN or infinity"),
    (dict(x=X.astype(np.int32)), TypeError, r"x must have a floating-point dtype"),
]


@pytest.mark.parametrize("forward", [maxpool2d_forward, maxpool2d_forward_naive, avgpool2d_forward,
                                     avgpool2d_forward_naive])
@pytest.mark.parametrize("kwargs, error, pattern", POOL_CASES)
def test_pool_forward_rejects(forward, kwargs, error, pattern):
    args = dict(x=X, kernel_size=2, stride=None) | kwargs
    with pytest.raises(error, match=pattern):
        forward(**args)


@pytest.mark.parametrize("forward, backward", [(maxpool2d_forward, maxpool2d_backward),
                                               (avgpool2d_forward, avgpool2d_backward)])
def test_pool_backward_rejects_a_wrong_dout(forward, backward):
    _, cache = forward(X, 2)
    with pytest.raises(ValueError, match=r"dout must have shape \(N=2, C=3, H_out=3, W_out=3\), got shape \(2, 3, 3, 2\)"):
        backward(np.zeros((2, 3, 3, 2)), cache)


def test_dense_rejects():
    x, w, b = np.ones((5, 3)), np.ones((3, 2)), np.ones(2)
    with pytest.raises(ValueError, match=r"x must have shape \(N, D\), got shape \(5, 3, 1\)"):
        dense_forward(x[..., None], w, b)
    with pytest.raises(ValueError, match=r"w must have shape \(D=3, M\), got shape \(4, 2\)"):
        dense_forward(x, np.ones((4, 2)), b)
    with pytest.raises(ValueError, match=r"b must have shape \(M=2,\), got shape \(3,\)"):
        dense_forward(x, w, np.ones(3))
    with pytest.raises(ValueError, match="x contains NaN"):
        dense_forward(with_nan(x), w, b)
    _, cache = dense_forward(x, w, b)
    with pytest.raises(ValueError, match=r"dout must have shape \(N=5, M=2\), got shape \(5, 3\)"):
        dense_backward(np.ones((5, 3)), cache)


def test_activations_reject():
    with pytest.raises(TypeError, match="x must be a numpy.ndarray, got list"):
        relu_forward([1.0, -1.0])
    with pytest.raises(ValueError, match="z contains NaN"):
        softmax(np.array([np.nan, 1.0]))
    _, cache = relu_forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"dout must have shape \(2, 3\), got shape \(3, 2\)"):
        relu_backward(np.ones((3, 2)), cache)


@pytest.mark.parametrize("logits, y, error, pattern", [
    (np.zeros((3, 4)), np.array([0, 1, 4]), ValueError, r"y must hold labels in 0..3, got values in 0..4"),
    (np.zeros((3, 4)), np.array([0, -1, 2]), ValueError, r"y must hold labels in 0..3, got values in -1..2"),
    (np.zeros((3, 4)), np.array([0, 1]), ValueError, r"y must have shape \(N=3,\), got shape \(2,\)"),
    (np.zeros((3, 4)), np.array([[0], [1], [2]]), ValueError, r"y must have shape \(N=3,\), got shape \(3, 1\)"),
    (np.zeros((3, 4)), np.array([0.0, 1.0, 2.0]), TypeError, r"y must be an integer numpy.ndarray"),
    (np.zeros((3, 4)), [0, 1, 2], TypeError, r"y must be an integer numpy.ndarray"),
    (np.zeros(4), np.array([0]), ValueError, r"logits must have shape \(N, K\), got shape \(4,\)"),
    (np.zeros((0, 4)), np.zeros(0, int), ValueError, r"logits must have shape \(N, K\) with N, K >= 1"),
    (np.full((1, 2), np.inf), np.array([0]), ValueError, r"logits contains NaN or infinity"),
])
def test_softmax_cross_entropy_rejects(logits, y, error, pattern):
    with pytest.raises(error, match=pattern):
        softmax_cross_entropy(logits, y)


@pytest.mark.parametrize("value, expected", [(3, (3, 3)), ((2, 5), (2, 5)), ([1, 2], (1, 2)),
                                             (np.int64(2), (2, 2))])
def test_as_pair_accepts_ints_and_pairs(value, expected):
    assert as_pair(value, "stride") == expected
    assert all(type(v) is int for v in as_pair(value, "stride"))


@pytest.mark.parametrize("make, error, pattern", [
    (lambda: Conv2D(0, 4, 3), ValueError, r"in_channels must be >= 1, got 0"),
    (lambda: Conv2D(1, 2.0, 3), TypeError, r"out_channels must be an int, got 2.0"),
    (lambda: Conv2D(1, 2, (3, 0)), ValueError, r"kernel_size must be >= 1"),
    (lambda: Conv2D(1, 2, 3, stride=0), ValueError, r"stride must be >= 1"),
    (lambda: Conv2D(1, 2, 3, padding=-2), ValueError, r"padding must be >= 0"),
    (lambda: Conv2D(1, 2, 3, rng=42), TypeError, r"rng must be a numpy.random.Generator \(e.g. numpy.random.default_rng\(0\)\), got int"),
    (lambda: Dense(3, 2, dtype=np.int32), TypeError, r"dtype must be a floating-point dtype .*got int32"),
    (lambda: Dense(3, True), TypeError, r"out_features must be an int"),
    (lambda: MaxPool2D(0), ValueError, r"kernel_size must be >= 1"),
    (lambda: AvgPool2D(2, stride=(1, 0)), ValueError, r"stride must be >= 1"),
])
def test_layer_constructors_reject(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_layers_reject_inputs_that_do_not_fit():
    with pytest.raises(ValueError, match=r"w must have shape \(F, C=2, KH, KW\), got shape \(4, 3, 3, 3\)"):
        Conv2D(3, 4, 3).forward(np.zeros((1, 2, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"w must have shape \(D=10, M\), got shape \(12, 2\)"):
        Dense(12, 2).forward(np.zeros((1, 10), np.float32))
    with pytest.raises(ValueError, match=r"x must have shape \(N, ...\) with at least 2 axes, got shape \(5,\)"):
        Flatten().forward(np.zeros(5))
    flatten = Flatten()
    flatten.forward(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"dout must have shape \(2, 12\), got shape \(2, 3, 4\)"):
        flatten.backward(np.zeros((2, 3, 4)))


def test_model_rejects_bad_training_arguments():
    model = Sequential([Flatten(), Dense(4, 3)])
    x, y = np.zeros((6, 1, 2, 2), np.float32), np.zeros(6, dtype=int)
    optimizer = SGD(0.1)
    with pytest.raises(ValueError, match=r"y must have shape \(N=6,\), got shape \(5,\)"):
        model.fit(x, y[:5], epochs=1, batch_size=2, optimizer=optimizer)
    with pytest.raises(TypeError, match=r"y must be an integer numpy.ndarray"):
        model.fit(x, y.astype(float), epochs=1, batch_size=2, optimizer=optimizer)
    with pytest.raises(ValueError, match=r"y must hold labels in 0..2, got values in .*3"):
        model.fit(x, np.array([0, 1, 2, 3, 0, 1]), epochs=1, batch_size=2, optimizer=optimizer)
    with pytest.raises(ValueError, match=r"epochs must be >= 1, got 0"):
        model.fit(x, y, epochs=0, batch_size=2, optimizer=optimizer)
    with pytest.raises(TypeError, match=r"batch_size must be an int, got 2.5"):
        model.fit(x, y, epochs=1, batch_size=2.5, optimizer=optimizer)
    with pytest.raises(ValueError, match=r"x must have shape \(N, ...\) with N >= 1"):
        model.predict(np.zeros((0, 4), np.float32))
    with pytest.raises(ValueError, match=r"x contains NaN"):
        model.predict(np.full((1, 4), np.nan, np.float32))


@pytest.mark.parametrize("where", [0, 70_000, -1])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_large_arrays_are_checked_to_the_last_entry(where, bad):
    # Above 2**16 entries check_array looks at blocks: a bad value in the first, a middle or
    # the last, partial block is found, in contiguous and in strided arrays.
    from cnn.checks import check_array

    a = np.ones(200_001, dtype=np.float32)
    check_array(a, "a")
    a[where] = bad
    with pytest.raises(ValueError, match="a contains NaN or infinity"):
        check_array(a, "a")
    strided = np.ones((2, 200_001), dtype=np.float32)
    strided[0, where] = bad
    with pytest.raises(ValueError, match="t contains NaN or infinity"):
        check_array(strided.T, "t")


from cnn.dense import dense_backward_naive  # noqa: E402
from cnn.fast.conv import conv2d_backward_fast  # noqa: E402
from cnn.fast.pool import maxpool2d_backward_fast  # noqa: E402
from cnn.pool import avgpool2d_backward_naive, maxpool2d_backward_naive  # noqa: E402
from cnn.conv_transpose import conv_transpose2d_backward, conv_transpose2d_forward  # noqa: E402
from cnn.norm import batchnorm_backward, batchnorm_forward  # noqa: E402
from cnn.pool import global_avgpool2d_backward, global_avgpool2d_forward  # noqa: E402
from cnn.regularization import dropout_backward, dropout_forward  # noqa: E402
from cnn.activations import sigmoid_backward, sigmoid_forward  # noqa: E402
from cnn.activations import tanh_backward, tanh_forward  # noqa: E402

BACKWARDS = [
    (conv2d_backward, "ConvCache", lambda: conv2d_forward(X, W, B)),
    (conv2d_backward_naive, "ConvCache", lambda: conv2d_forward(X, W, B)),
    (conv2d_backward_fast, "ConvCache", lambda: conv2d_forward(X, W, B)),
    (maxpool2d_backward, "MaxPoolCache", lambda: maxpool2d_forward(X, 2)),
    (maxpool2d_backward_naive, "MaxPoolCache", lambda: maxpool2d_forward(X, 2)),
    (maxpool2d_backward_fast, "MaxPoolCache", lambda: maxpool2d_forward(X, 2)),
    (avgpool2d_backward, "AvgPoolCache", lambda: avgpool2d_forward(X, 2)),
    (avgpool2d_backward_naive, "AvgPoolCache", lambda: avgpool2d_forward(X, 2)),
    (dense_backward, "DenseCache", lambda: dense_forward(X[:, 0, 0, :3], W[:, 0, 0].T, B)),
    (dense_backward_naive, "DenseCache", lambda: dense_forward(X[:, 0, 0, :3], W[:, 0, 0].T, B)),
    (relu_backward, "ReLUCache", lambda: relu_forward(X)),
    (sigmoid_backward, "SigmoidCache", lambda: sigmoid_forward(X)),
    (tanh_backward, "TanhCache", lambda: tanh_forward(X)),
    (conv_transpose2d_backward, "ConvTransposeCache",
     lambda: conv_transpose2d_forward(X, W.transpose(1, 0, 2, 3), B)),
    (batchnorm_backward, "BatchNormCache",
     lambda: batchnorm_forward(X, np.ones(3), np.zeros(3))),
    (dropout_backward, "DropoutCache", lambda: dropout_forward(X, 0.5, np.random.default_rng(0))),
    (global_avgpool2d_backward, "GlobalAvgPoolCache", lambda: global_avgpool2d_forward(X)),
]


@pytest.mark.parametrize("backward, cache_name, forward", BACKWARDS,
                         ids=[b[0].__name__ for b in BACKWARDS])
def test_backward_without_its_cache_is_a_type_error_naming_the_argument(backward, cache_name,
                                                                        forward):
    out, cache = forward()
    with pytest.raises(TypeError, match=rf"cache must be the {cache_name} returned by the "
                                        r"forward pass, got NoneType"):
        backward(out, None)
    wrong = relu_forward(X)[1] if cache_name != "ReLUCache" else dense_forward(X[:, 0, 0, :3], W[:, 0, 0].T, B)[1]
    with pytest.raises(TypeError, match=rf"got {type(wrong).__name__}"):
        backward(out, wrong)
    with pytest.raises(TypeError, match="got tuple"):
        backward(out, tuple(cache))  # a plain tuple with the right fields is not the cache


# Issue 27, silent wrong gradients: the rule is that a backward pass accepts the cache of
# its own forward pass only. sigmoid_backward and tanh_backward shared a cache type, as
# did the two pooling backward passes, and each computed a wrong gradient from the
# other's cache. Every pair of different functions is tried, so a new pair that shares a
# cache type fails here.
def _family(backward):
    """Functions that compute the same thing (naive, vectorised, fast) share a cache."""
    return backward.__name__.replace("_naive", "").replace("_fast", "")


@pytest.mark.parametrize("backward, cache_name, forward", BACKWARDS,
                         ids=[b[0].__name__ for b in BACKWARDS])
def test_backward_refuses_the_cache_of_every_other_forward_pass(backward, cache_name,
                                                                forward):
    out = forward()[0]
    for other, _, other_forward in BACKWARDS:
        if _family(other) == _family(backward):
            continue
        cache = other_forward()[1]
        with pytest.raises(TypeError, match=rf"cache must be the {cache_name} .* got "
                                            rf"{type(cache).__name__}"):
            backward(out, cache)


@pytest.mark.parametrize("call, pattern", [
    (lambda: conv2d_forward(X[:0], W, B), r"x must have shape \(N, C, H, W\) with N, C, H, W >= 1, got shape \(0, 3, 6, 6\)"),
    (lambda: conv2d_forward(X[:, :0], W[:, :0], B), r"x must have shape .* got shape \(2, 0, 6, 6\)"),
    (lambda: conv2d_forward_naive(X[:, :0], W[:, :0], B), r"x must have shape .* got shape \(2, 0, 6, 6\)"),
    (lambda: conv2d_forward(X, W[:0], B[:0]), r"w must have shape \(F, C, KH, KW\) with F, C, KH, KW >= 1, got shape \(0, 3, 3, 3\)"),
    (lambda: maxpool2d_forward(X[:0], 2), r"x must have shape \(N, C, H, W\) with N, C, H, W >= 1"),
    (lambda: avgpool2d_forward(X[:, :0], 2), r"x must have shape .* got shape \(2, 0, 6, 6\)"),
    (lambda: dense_forward(np.ones((0, 3)), np.ones((3, 2)), np.ones(2)), r"x must have shape \(N, D\) with N, D >= 1, got shape \(0, 3\)"),
    (lambda: dense_forward(np.ones((2, 0)), np.ones((0, 2)), np.ones(2)), r"x must have shape \(N, D\) with N, D >= 1, got shape \(2, 0\)"),
    (lambda: dense_forward(np.ones((2, 3)), np.ones((3, 0)), np.ones(0)), r"w must have shape \(D, M\) with D, M >= 1, got shape \(3, 0\)"),
    (lambda: Conv2D(3, 4, 3).forward(np.zeros((0, 3, 5, 5), np.float32)), r"with N, C, H, W >= 1"),
])
def test_empty_batches_and_channels_are_refused(call, pattern):
    # Before: a reshape error deep inside, or (zero channels) an output of biases alone.
    with pytest.raises(ValueError, match=pattern):
        call()


def test_float64_dout_into_a_float32_layer_keeps_float32():
    x = X.astype(np.float32)
    for layer in (Conv2D(3, 4, 3, rng=np.random.default_rng(0)), MaxPool2D(2), AvgPool2D(2)):
        out = layer.forward(x)
        dx = layer.backward(np.ones(out.shape))  # float64 upstream gradient
        assert dx.dtype == np.float32
        assert all(g.dtype == np.float32 for g in layer.grads.values())
    dense = Dense(3, 2, rng=np.random.default_rng(0))
    out = dense.forward(x[:, :, 0, 0])
    assert dense.backward(np.ones(out.shape)).dtype == np.float32
    assert dense.grads["w"].dtype == dense.grads["b"].dtype == np.float32
    out, cache = relu_forward(x)
    assert relu_backward(np.ones(out.shape), cache).dtype == np.float32


from cnn.checks import check_labels  # noqa: E402


@pytest.mark.parametrize("y, got", [([0, 1], "list"), (np.array([0.0, 1.0]), "float64"),
                                    (None, "NoneType")])
def test_check_labels_names_what_it_got(y, got):
    with pytest.raises(TypeError, match=rf"^y must be an integer numpy.ndarray of class labels, "
                                        rf"got {got}$"):
        check_labels(y, "y", 2)


def test_check_labels_without_a_class_count_refuses_negative_labels_only():
    check_labels(np.array([0, 99]), "y", 2)  # any K
    with pytest.raises(ValueError, match=r"^y must hold labels in 0..K - 1, got values in -1..0$"):
        check_labels(np.array([-1, 0]), "y", 2)
    check_labels(np.zeros(0, int), "y", 0, num_classes=3)  # an empty set of labels is fine
