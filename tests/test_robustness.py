"""Issue 27: no wrong answer without an error, no half-trained model, a checker that
never crashes.

One test (or one parametrised family of tests) per rule of CONTRIBUTING.md; the rules of
files, images and the command line are tested in ``test_robustness_io.py``. Each case of
the issue is here, with the other members of its family that the rule covers.
"""

import sys

import numpy as np
import pytest

from cnn.activations import relu_backward, relu_forward
from cnn.activations import relu_forward as book_relu_forward
from cnn.checks import check_array, check_dtype, check_positive
from cnn.conv import col2im, conv2d_backward, im2col
from cnn.dense import dense_backward, dense_forward
from cnn.exercises import CHECKS, check
from cnn.fast.activations import relu_forward_fast
from cnn.fast.pool import maxpool2d_backward_fast
from cnn.gradcheck import check_model
from cnn.init import he_normal, xavier_normal
from cnn.layers import (
    AvgPool2D,
    Conv2D,
    ConvTranspose2D,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    ReLU,
    Sigmoid,
    Tanh,
)
from cnn.losses import softmax_cross_entropy
from cnn.model import Sequential
from cnn.norm import BatchNorm, batchnorm_forward, batchnorm_inference
from cnn.optim import SGD, Adam
from cnn.pool import avgpool2d_forward, maxpool2d_forward
from cnn.regularization import Dropout

RNG = np.random.default_rng(0)
X4 = RNG.standard_normal((4, 2, 4, 4))


def run_check(name, fn):
    """The check without its sandbox (tests/test_sandbox.py): these wrong functions
    are built from the book's own, which a reader's function may not call."""
    return CHECKS[name].run(fn)


def mlp(*layers, dtype=np.float64):
    rng = np.random.default_rng(1)
    return Sequential([Dense(3, 4, rng=rng, dtype=dtype), *layers,
                       Dense(4, 3, rng=rng, dtype=dtype)])


def snapshot(model):
    return {key: value.copy() for key, value in {**model.parameters(),
                                                 **model.buffers()}.items()}


def assert_unchanged(model, before):
    after = {**model.parameters(), **model.buffers()}
    assert after.keys() == before.keys()
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


# --- Silent wrong gradients -------------------------------------------------------------

@pytest.mark.parametrize("make", [ReLU, Sigmoid, Tanh, Flatten, lambda: Dense(4, 4),
                                  lambda: BatchNorm(4), lambda: Dropout(0.5)])
def test_a_layer_object_used_twice_is_refused_at_construction(make):
    # One ReLU() twice in a Sequential gave gradients with relative error 0.74: the layer
    # keeps the cache of its second use only.
    layer = make()
    with pytest.raises(ValueError, match=r"layers 1 and 3 are the same object"):
        Sequential([Dense(4, 4), layer, Dense(4, 4), layer])


def test_backward_after_a_forward_that_raised_is_refused():
    # The first layer ran on the new batch, the second raised: backward used to combine
    # the first's new cache with the others' caches of the previous batch.
    model = mlp(ReLU())
    x = RNG.standard_normal((5, 3))
    model.forward(x)
    with pytest.raises(ValueError):
        model.forward(RNG.standard_normal((5, 7)))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        model.backward(np.ones((5, 3)))
    # The failure is local to that batch: a new forward pass works again.
    model.forward(x)
    assert model.backward(np.ones((5, 3))).shape == x.shape


@pytest.mark.parametrize("call", [
    lambda: relu_forward(np.ones(3), out=np.empty((2, 3))),  # broadcasts silently
    lambda: relu_forward(np.ones(3), out=np.empty(3, np.float32)),  # casts silently
    lambda: relu_backward(np.ones(3), relu_forward(np.ones(3))[1], out=np.empty((2, 3))),
    lambda: dense_backward(np.ones((2, 3)), dense_forward(np.ones((2, 4)), np.ones((4, 3)),
                                                         np.ones(3))[1],
                           out=(None, np.empty((5, 3)), None)),
    lambda: maxpool2d_backward_fast(np.ones((4, 2, 2, 2)), maxpool2d_forward(X4, 2)[1],
                                    out=np.empty((4, 2, 4, 5))),
])
def test_out_arrays_of_the_wrong_shape_or_dtype_are_refused(call):
    with pytest.raises((TypeError, ValueError), match=r"out"):
        call()


def test_a_read_only_out_array_is_refused():
    out = np.empty(3)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        relu_forward_fast(np.ones(3), out=out)


@pytest.mark.parametrize("eps", [np.inf, -np.inf, np.nan, 0.0, -1e-5])
def test_batch_norm_eps_must_be_finite_and_positive(eps):
    # eps=inf made every output beta, without an error.
    gamma, beta = np.ones(2), np.zeros(2)
    for call in (lambda: batchnorm_forward(X4, gamma, beta, eps=eps),
                 lambda: batchnorm_inference(X4, gamma, beta, np.zeros(2), np.ones(2),
                                             eps=eps),
                 lambda: BatchNorm(2, eps=eps)):
        with pytest.raises(ValueError, match="eps must be a finite number > 0"):
            call()
    with pytest.raises(TypeError):
        check_positive(True, "eps")


@pytest.mark.parametrize("dtype", [np.float16, np.longdouble, np.int32, np.complex128])
def test_only_float32_and_float64_are_accepted_everywhere(dtype):
    # float16 used to be accepted: avgpool2d_forward of 60000 returned inf.
    x = np.full((1, 1, 2, 2), 6, dtype=dtype)
    if np.dtype(dtype) == np.longdouble and np.finfo(np.longdouble).bits == 64:
        pytest.skip("long double is float64 here")
    for call in (lambda: check_array(x, "x"), lambda: avgpool2d_forward(x, 2),
                 lambda: check_dtype(dtype)):
        with pytest.raises(TypeError, match=r"float32 or float64"):
            call()
    for make in (lambda: Dense(2, 2, dtype=dtype), lambda: Conv2D(1, 1, 2, dtype=dtype),
                 lambda: ConvTranspose2D(1, 1, 2, dtype=dtype),
                 lambda: BatchNorm(2, dtype=dtype),
                 lambda: he_normal((2, 2), 2, dtype=dtype),
                 lambda: xavier_normal((2, 2), 2, 2, dtype=dtype)):
        with pytest.raises(TypeError, match=r"float32 or float64"):
            make()


def test_layers_without_parameters_refuse_float16_in_forward():
    x = np.ones((1, 1, 2, 2), np.float16)
    for layer in (ReLU(), Sigmoid(), Tanh(), Flatten(), MaxPool2D(2), AvgPool2D(2),
                  GlobalAvgPool2D(), Dropout(0.5)):
        with pytest.raises(TypeError, match=r"float32 or float64"):
            layer.forward(x)


# --- Half-trained models ----------------------------------------------------------------

def fit_data(n=8):
    rng = np.random.default_rng(2)
    return rng.standard_normal((n, 3)), np.array([0, 0, 0, 0, 1, 1, 2, 2, 0, 1, 2][:n])


@pytest.mark.parametrize("kwargs, pattern", [
    # wrong-shaped weights raised only after the running statistics moved
    (dict(class_weights=np.ones(5)), r"class_weights must have shape \(3,\)"),
    (dict(class_weights=np.array([1.0, -1.0, 1.0])), r"class_weights must be >= 0"),
    (dict(class_weights=np.array([1.0, np.nan, 1.0])), r"class_weights contains NaN"),
    (dict(class_weights=[1.0, 1.0, 1.0]), r"class_weights must be a numpy.ndarray"),
    # zero weight for class 0: some batch of epoch 2 holds only class-0 labels
    (dict(class_weights=np.array([0.0, 1.0, 1.0]), epochs=3),
     r"epoch 2, batch 4: class_weights gives weight 0 to every label"),
    (dict(seed=-1), r"seed must be >= 0"),
    (dict(seed=None), r"seed must be an int"),
])
def test_fit_refuses_before_the_first_step_and_leaves_the_model_as_it_was(kwargs, pattern):
    model = mlp(BatchNorm(4, dtype=np.float64), ReLU())
    x, y = fit_data()
    before = snapshot(model)
    optimizer = Adam(1e-2)
    arguments = {"epochs": 1, "batch_size": 2, "optimizer": optimizer, **kwargs}
    with pytest.raises((TypeError, ValueError), match=pattern):
        model.fit(x, y, **arguments)
    assert_unchanged(model, before)
    assert optimizer.state == {}


def test_fit_refuses_a_batch_norm_batch_of_one_sample_before_any_step():
    # 9 samples in batches of 2: the last holds one, whose dense batch norm has one value
    # per channel; it used to raise after four optimiser steps.
    model = mlp(BatchNorm(4, dtype=np.float64), ReLU())
    x, y = fit_data(9)
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"batch_size 2 leaves a batch of one sample"):
        model.fit(x, y, epochs=1, batch_size=2, optimizer=SGD(0.1))
    assert_unchanged(model, before)
    with pytest.raises(ValueError, match=r"batch_size 1 leaves a batch of one sample"):
        model.fit(x, y, epochs=1, batch_size=1, optimizer=SGD(0.1))
    model.fit(x, y, epochs=1, batch_size=3, optimizer=SGD(0.1))  # batches of 3 are fine
    # Spatial batch norm has H W values per channel in a sample: one sample is enough.
    conv = Sequential([Conv2D(2, 2, 3, padding=1, dtype=np.float64), BatchNorm(2),
                       Flatten(), Dense(32, 3, dtype=np.float64)])
    conv.fit(X4[:3], np.array([0, 1, 2]), epochs=1, batch_size=2, optimizer=SGD(0.1))


def test_an_optimizer_step_with_a_read_only_parameter_updates_nothing():
    for optimizer in (SGD(0.1, momentum=0.9), Adam()):
        params = {"a": np.ones(3), "b": np.ones(3), "c": np.ones(3)}
        params["b"].flags.writeable = False
        grads = {key: np.ones(3) for key in params}
        with pytest.raises(ValueError, match=r"params\['b'\] is read-only"):
            optimizer.step(params, grads)
        for value in params.values():
            np.testing.assert_array_equal(value, 1.0)
        assert optimizer.state == {}


# --- The exercise checker ---------------------------------------------------------------------



def loss_in_float64(logits, y):
    loss, dlogits = softmax_cross_entropy(logits.astype(np.float64), y)
    return loss, dlogits.astype(logits.dtype)


def test_a_correct_float32_loss_summed_in_float64_passes():
    # The loss was compared with a tolerance of 1e-9 whatever the dtype of the logits.
    assert run_check("softmax_cross_entropy", loss_in_float64).passed


def needs_cols(dout, cache):
    if cache.cols is None:
        raise AttributeError("'NoneType' object has no attribute 'reshape'")
    return conv2d_backward(dout, cache)


def first_result_returned_as(kind):
    def wrapped(*args, **kwargs):
        out = book_relu_forward(*args, **kwargs)
        return kind(out[0]), out[1]
    return wrapped


def loss_returned_as(kind):
    def wrapped(logits, y):
        loss, dlogits = softmax_cross_entropy(logits, y)
        return kind(loss), dlogits
    return wrapped


def empties_the_model(model, x, y):
    errors = check_model(model, x, y)
    model.layers.clear()
    return errors


def overwrites_the_labels(model, x, y):
    errors = check_model(model, x, y)
    y[:] = 0
    return errors


def reshapes_its_input(x):
    out = book_relu_forward(x)
    x.shape = (-1,)
    return out


def exits(x):
    sys.exit(3)


@pytest.mark.parametrize("name, fn, verdict", [
    ("im2col", lambda x, **k: im2col(x, **k).astype(np.float64), "cols: wrong dtype"),
    ("col2im", lambda d, **k: col2im(d, **k).astype(np.float64),
     "dx_padded: wrong dtype"),
    ("conv2d_backward", needs_cols, "raised AttributeError"),
    ("softmax_cross_entropy", loss_returned_as(lambda v: np.array(str(v))),
     "loss: not a number"),
    ("softmax_cross_entropy", loss_returned_as(complex), "loss: not a number"),
    ("softmax_cross_entropy", loss_returned_as(lambda v: True), "loss: not a number"),
    ("relative_error", lambda a, b: "0.0", "not a number"),
    ("check_model", empties_the_model, "changed the model"),
    ("check_model", overwrites_the_labels, "modified y"),
    ("relu_forward", first_result_returned_as(lambda a: np.ma.masked_less(a, -1)),
     "out: not a plain array"),
    ("relu_forward", first_result_returned_as(lambda a: a.astype(complex)),
     "out: wrong dtype"),
    ("relu_forward", first_result_returned_as(lambda a: a.astype(str)),
     "out: wrong dtype"),
    ("relu_forward", reshapes_its_input, "reshaped x"),
    ("relu_forward", exits, "called sys.exit(3)"),
])
def test_the_checker_fails_a_wrong_function_and_says_why_without_crashing(name, fn,
                                                                          verdict):
    result = run_check(name, fn)
    assert not result.passed
    assert verdict in [v for v in result.verdicts if v][0], result.message


def test_the_checker_undoes_what_the_function_does_to_numpys_error_state():
    def raises_everywhere(x):
        np.seterr(all="raise")
        return book_relu_forward(x)

    before = np.geterr()
    assert run_check("relu_forward", raises_everywhere).passed
    assert np.geterr() == before


@pytest.mark.parametrize("name", [["relu_forward"], None, 3])
def test_a_name_that_is_not_a_string_is_a_clear_type_error(name):
    with pytest.raises(TypeError, match=r"name must be the name of a checked function"):
        check(name, book_relu_forward)
