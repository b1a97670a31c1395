"""Residual blocks: out = body(x) + shortcut(x), the backward pass adds the two paths, and a
Sequential sees the block's parameters, gradients, buffers and mode like any layer's, so that
gradient checks, optimisers, save/load and train/eval work unchanged."""

import numpy as np
import pytest

from cnn.gradcheck import check_layer, check_model
from cnn.layers import Conv2D, Dense, Flatten, GlobalAvgPool2D, ReLU, Residual
from cnn.losses import softmax_cross_entropy
from cnn.model import Sequential
from cnn.norm import BatchNorm, GroupNorm
from cnn.optim import SGD, Adam
from cnn.regularization import Dropout


def block(C, rng, dtype, F=None, stride=1, norm=BatchNorm):
    """conv -> norm -> ReLU -> conv -> norm, with a strided 1x1 projection when F or stride
    change the shape."""
    F = F or C
    body = [Conv2D(C, F, 3, stride=stride, padding=1, rng=rng, dtype=dtype), norm(F, dtype=dtype),
            ReLU(), Conv2D(F, F, 3, padding=1, rng=rng, dtype=dtype), norm(F, dtype=dtype)]
    shortcut = None if (F, stride) == (C, 1) else [Conv2D(C, F, 1, stride=stride, rng=rng, dtype=dtype)]
    return Residual(body, shortcut)


def resnet(seed=0, dtype=np.float64, dropout=0.0):
    rng = np.random.default_rng(seed)
    layers = [Conv2D(1, 3, 3, padding=1, rng=rng, dtype=dtype), ReLU(),
              block(3, rng, dtype), ReLU(), block(3, rng, dtype, F=4, stride=2), ReLU(),
              GlobalAvgPool2D(), Dense(4, 3, rng=rng, dtype=dtype)]
    if dropout:
        layers.insert(-1, Dropout(dropout, rng=rng))
    return Sequential(layers)


def assert_small_errors(errors, grads):
    """Every relative error small, except for the biases that a training-mode BatchNorm follows:
    the batch mean removes them, so their gradient is checked to be zero instead."""
    for key in [key for key in errors if key.endswith(("body.0.b", "body.3.b"))]:
        assert np.abs(grads[key]).max() < 1e-10
        del errors[key]
    assert max(errors.values()) < 1e-6


def data(seed=0, N=6, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, 1, 6, 6)).astype(dtype)
    return x, rng.integers(0, 3, N)


def test_forward_is_body_plus_shortcut_and_backward_adds_the_two_paths():
    rng = np.random.default_rng(1)
    res = block(2, rng, np.float64, F=3, stride=2)
    x, dout = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((2, 3, 3, 3))
    body = Sequential(res.body)
    shortcut = Sequential(res.shortcut)
    np.testing.assert_allclose(res.forward(x), body.forward(x) + shortcut.forward(x), rtol=1e-12)
    res.forward(x)
    dx = res.backward(dout)
    np.testing.assert_allclose(dx, body.backward(dout) + shortcut.backward(dout), rtol=1e-12)
    identity = Residual([ReLU()])
    x = rng.standard_normal((2, 3))
    np.testing.assert_array_equal(identity.forward(x), np.maximum(x, 0) + x)
    np.testing.assert_array_equal(identity.backward(np.ones((2, 3))), (x > 0) + 1.0)


@pytest.mark.parametrize("training", [True, False])
def test_layer_gradient_check(training):
    rng = np.random.default_rng(2)
    group_norm = lambda C, dtype: GroupNorm(1, C, dtype=dtype)  # noqa: E731
    for res in (block(2, rng, np.float64), block(2, rng, np.float64, F=3, stride=2, norm=group_norm)):
        res.training = training
        errors = check_layer(res, rng.standard_normal((3, 2, 4, 4)))
        assert errors.keys() == {"x"} | res.params.keys()
        if training and isinstance(res.body[1], BatchNorm):
            assert_small_errors(errors, res.grads)
        else:
            assert max(errors.values()) < 1e-6


def test_whole_network_gradient_check_through_residual_blocks():
    model = resnet()
    x, y = data()
    errors = check_model(model, x, y)
    assert "2.body.0.w" in errors and "4.shortcut.0.w" in errors and "4.body.4.gamma" in errors
    assert errors.keys() == model.parameters().keys()
    assert_small_errors(errors, model.gradients())


def test_sequential_sees_the_blocks_arrays_and_optimisers_update_them():
    model = resnet()
    params = model.parameters()
    assert params["2.body.0.w"] is model.layers[2].body[0].params["w"]
    assert params["4.shortcut.0.b"] is model.layers[4].shortcut[0].params["b"]
    assert {"2.body.1.running_mean", "4.body.4.running_var"} <= model.buffers().keys()
    x, y = data()
    model.backward(softmax_cross_entropy(model.forward(x), y)[1])
    grads = model.gradients()
    assert grads.keys() == params.keys()
    assert grads["2.body.3.w"] is model.layers[2].body[3].grads["w"]
    before = {key: value.copy() for key, value in params.items()}
    SGD(lr=0.1).step(model.parameters(), grads)
    for key, value in model.parameters().items():
        np.testing.assert_allclose(value, before[key] - 0.1 * grads[key], rtol=1e-12)


def test_modes_reach_the_layers_inside_the_blocks():
    model = resnet(dropout=0.5)
    inner = [layer for res in (model.layers[2], model.layers[4]) for layer in res.body + (res.shortcut or [])]
    model.eval()
    assert not any(layer.training for layer in inner)
    model.train()
    assert all(layer.training for layer in inner)
    x, y = data(N=12)
    model.fit(x, y, epochs=2, batch_size=4, optimizer=Adam(1e-2))
    running = {key: value.copy() for key, value in model.buffers().items()}
    first = model.predict_proba(x)
    np.testing.assert_array_equal(model.predict_proba(x), first)  # evaluation mode: deterministic
    np.testing.assert_allclose(model.predict_proba(x[:1], batch_size=1), first[:1], rtol=1e-10)
    for key, value in model.buffers().items():
        np.testing.assert_array_equal(value, running[key])  # no running update in evaluation
    assert model.training and all(layer.training for layer in inner)


def test_predict_between_forward_and_backward_changes_nothing():
    model = resnet()
    x, y = data()
    dlogits = softmax_cross_entropy(model.forward(x), y)[1]
    model.predict(x[:2])
    dx = model.backward(dlogits)
    model.forward(x)
    np.testing.assert_allclose(model.backward(dlogits), dx, rtol=1e-12)


def test_save_and_load_round_trip(tmp_path):
    model = resnet(seed=0, dtype=np.float32)
    x, y = data(N=12, dtype=np.float32)
    model.fit(x, y, epochs=2, batch_size=4, optimizer=Adam(1e-2))
    path = model.save(tmp_path / "resnet")
    other = resnet(seed=1, dtype=np.float32)
    assert not np.array_equal(other.predict_proba(x), model.predict_proba(x))
    other.load(path)
    np.testing.assert_array_equal(other.predict_proba(x), model.predict_proba(x))
    for key, value in model.buffers().items():
        np.testing.assert_array_equal(other.buffers()[key], value)
    plain = Sequential([Flatten(), Dense(36, 3)])
    with pytest.raises(ValueError, match="missing keys"):
        plain.load(path)


def test_summary_and_repr():
    model = resnet()
    table = model.summary((1, 6, 6))
    assert "Residual(body of 5 layers, identity shortcut)" in table
    assert "Residual(body of 5 layers, shortcut of 1 layer)" in table
    assert f"Total parameters: {sum(v.size for v in model.parameters().values()):,}" in table


def test_agrees_with_torch_in_float64():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    res = Residual([Conv2D(3, 4, 3, stride=2, padding=1, rng=rng, dtype=np.float64), ReLU(),
                    Conv2D(4, 4, 3, padding=1, rng=rng, dtype=np.float64)],
                   [Conv2D(3, 4, 1, stride=2, rng=rng, dtype=np.float64)])
    for layer in (res.body[0], res.body[2], res.shortcut[0]):
        layer.params["b"][:] = rng.standard_normal(4)
    x, dout = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((2, 4, 4, 3))
    tensors = {key: torch.tensor(value, requires_grad=True) for key, value in res.params.items()}
    xt = torch.tensor(x, requires_grad=True)
    conv = torch.nn.functional.conv2d
    hidden = torch.relu(conv(xt, tensors["body.0.w"], tensors["body.0.b"], stride=2, padding=1))
    outt = (conv(hidden, tensors["body.2.w"], tensors["body.2.b"], padding=1)
            + conv(xt, tensors["shortcut.0.w"], tensors["shortcut.0.b"], stride=2))
    outt.backward(torch.tensor(dout))
    np.testing.assert_allclose(res.forward(x), outt.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(res.backward(dout), xt.grad.numpy(), rtol=1e-10, atol=1e-10)
    for key, grad in res.grads.items():
        np.testing.assert_allclose(grad, tensors[key].grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("call, error, pattern", [
    (lambda: Residual([]), TypeError, "body must be a non-empty list"),
    (lambda: Residual(ReLU()), TypeError, "body must be a non-empty list"),
    (lambda: Residual([ReLU(), "relu"]), TypeError, "body must hold layers.*str"),
    (lambda: Residual([ReLU()], shortcut=[]), TypeError, "shortcut must be a non-empty list"),
    (lambda: Residual([Dense(3, 2)]).forward(np.ones((2, 3))), ValueError,
     r"body's output has shape \(2, 2\) and the shortcut's \(2, 3\)"),
    (lambda: Residual([ReLU()]).backward(np.ones((2, 3))), RuntimeError, "before forward"),
])
def test_bad_blocks_raise_clear_errors(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()
