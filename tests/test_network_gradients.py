"""Whole-network gradients of random small networks against finite differences (issue 27).

Hypothesis builds ``Sequential`` models from the layers of the package, in float64:
convolutions, transposed convolutions, batch norm in training mode, dropout, pooling,
sigmoid, tanh and ReLU, with a layer type often repeated, and residual blocks whose body
holds such layers, with an identity shortcut or a 1x1 convolution (strided when the body
is, and maybe followed by batch norm). The gradient of the softmax cross-entropy with
respect to the input and to every parameter, from ``backward``, is compared with centred
differences of the loss. Dropout keeps one mask: its generator is rewound before every
forward pass (inside residual blocks too), so that the loss is one fixed function of the
weights. A layer object that appears twice is refused at construction (its cache would
hold only the second use), which the strategy tries too.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnn.gradcheck import numerical_gradient, relative_error
from cnn.layers import (
    AvgPool2D,
    Conv2D,
    ConvTranspose2D,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    ReLU,
    Residual,
    Sigmoid,
    Tanh,
)
from cnn.losses import softmax_cross_entropy
from cnn.model import Sequential
from cnn.norm import BatchNorm
from cnn.regularization import Dropout

F64 = np.float64
ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}


def conv_layers(draw, rng, channels, width, stride=1, transpose=True):
    """A convolution (or a transposed one), maybe batch norm, an activation, maybe
    dropout: ``(N, channels, S, S)`` -> ``(N, width, S', S')``."""
    kind = draw(st.sampled_from(["conv", "conv", "transpose"])) if transpose else "conv"
    if kind == "transpose":
        layers = [ConvTranspose2D(channels, width, 3, stride=1, padding=1, rng=rng,
                                  dtype=F64)]
    else:
        layers = [Conv2D(channels, width, 3, stride=stride, padding=1, rng=rng,
                         dtype=F64)]
    if draw(st.booleans()):
        layers.append(BatchNorm(width, dtype=F64))
    layers.append(ACTIVATIONS[draw(st.sampled_from(sorted(ACTIVATIONS)))]())
    if draw(st.booleans()):
        layers.append(Dropout(draw(st.sampled_from([0.2, 0.5])), rng=rng))
    return layers


def residual_block(draw, rng, channels, width, side):
    """A ``Residual`` with an identity or a 1x1-convolution shortcut; its output side.

    The identity keeps the shape, so its body maps ``channels`` to ``channels``; a
    projection maps them to ``width`` and, with stride 2, halves the side.
    """
    identity = draw(st.booleans())
    stride = 1 if identity or side < 4 else draw(st.sampled_from([1, 2, 2]))
    width = channels if identity else width
    body = conv_layers(draw, rng, channels, width, stride, transpose=stride == 1)
    if draw(st.booleans()):
        body += [Conv2D(width, width, 3, padding=1, rng=rng, dtype=F64)]
        if draw(st.booleans()):
            body.append(BatchNorm(width, dtype=F64))
    if identity:
        return Residual(body), side
    shortcut = [Conv2D(channels, width, 1, stride=stride, rng=rng, dtype=F64)]
    if draw(st.booleans()):
        shortcut.append(BatchNorm(width, dtype=F64))
    return Residual(body, shortcut), (side - 1) // stride + 1


def parameters_of(layers):
    """Every parameter array of ``layers``, keyed as inside its layer (``body.0.b``)."""
    return [(key, value) for layer in layers for key, value in layer.params.items()]


@st.composite
def networks(draw, residual=False):
    """A random network, its input batch, labels, and a generator seed for Dropout.

    With ``residual`` every convolutional block is a residual block; otherwise one
    is, now and then.
    """
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    n = 2
    channels, side = draw(st.integers(1, 2)), draw(st.sampled_from([4, 5]))
    x = rng.standard_normal((n, channels, side, side))
    layers = []
    for _ in range(draw(st.integers(1, 2))):  # convolutional blocks, often alike
        width = draw(st.integers(1, 3))
        if residual or draw(st.integers(0, 3)) == 0:
            block, side = residual_block(draw, rng, channels, width, side)
            layers.append(block)
            width = block.body[0].out_channels
            if draw(st.booleans()):
                layers.append(ACTIVATIONS[draw(st.sampled_from(sorted(ACTIVATIONS)))]())
        else:
            layers += conv_layers(draw, rng, channels, width)
        channels = width
        if side >= 4 and draw(st.booleans()):
            layers.append(draw(st.sampled_from([MaxPool2D, AvgPool2D]))(2))
            side //= 2
    if draw(st.booleans()):
        layers += [GlobalAvgPool2D()]
        features = channels
    else:
        layers += [Flatten()]
        features = channels * side * side
    for _ in range(draw(st.integers(0, 1))):  # a dense block
        hidden = draw(st.integers(2, 4))
        layers.append(Dense(features, hidden, rng=rng, dtype=F64))
        if draw(st.booleans()):
            layers.append(BatchNorm(hidden, dtype=F64))
        layers.append(ACTIVATIONS[draw(st.sampled_from(sorted(ACTIVATIONS)))]())
        features = hidden
    layers.append(Dense(features, 3, rng=rng, dtype=F64))
    # Biases start at 0, and a ReLU then often sees exactly 0 (a window of zeros),
    # where it has a kink that a finite difference straddles: random biases avoid it.
    for key, value in parameters_of(layers):
        if key.rsplit(".", 1)[-1] in ("b", "beta"):
            value[...] = rng.standard_normal(value.shape)
    return layers, draw(st.booleans()), x, rng.integers(0, 3, n)


def sublayers(layers):
    """``layers`` and, inside every residual block, its body's and shortcut's layers."""
    for layer in layers:
        yield layer
        if isinstance(layer, Residual):
            yield from sublayers([*layer.body, *(layer.shortcut or ())])


def fixed_mask_loss(model, x, y):
    """The loss of ``model`` on ``(x, y)``, every Dropout drawing the same mask."""
    dropouts = [layer for layer in sublayers(model.layers)
                if isinstance(layer, Dropout)]
    states = [layer.rng.bit_generator.state for layer in dropouts]

    def loss(_=None):
        for layer, state in zip(dropouts, states):
            layer.rng.bit_generator.state = state
        return softmax_cross_entropy(model.forward(x), y)
    return loss


SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


def check_network(network):
    """The gradients of ``backward`` for a drawn network against finite differences."""
    layers, shared, x, y = network
    if shared:
        # The same ReLU object at two places: refused, as its cache would be overwritten.
        relu = ReLU()
        with pytest.raises(ValueError, match="are the same object"):
            Sequential([*layers, relu, Dense(3, 3, dtype=F64), relu])
    model = Sequential(layers)
    loss = fixed_mask_loss(model, x, y)
    value, dlogits = loss()
    dx = model.backward(dlogits)
    analytic = {key: grad.copy() for key, grad in model.gradients().items()}
    # A kink of ReLU or max pooling within h of a probe would spoil one entry; with
    # Gaussian inputs and h = 1e-5 that has probability of order 1e-5 per entry. A wrong
    # gradient gives errors of 1e-2 or more; rounding in deep float64 networks, 1e-7.
    h = 1e-5
    pairs = {"x": (dx, numerical_gradient(lambda _: loss()[0], x, h))}
    for key, param in model.parameters().items():
        pairs[key] = (analytic[key], numerical_gradient(lambda _: loss()[0], param, h))
    for key, (exact, estimate) in pairs.items():
        # A bias followed by batch norm has gradient 0 (the mean removes it): the
        # relative error of two tiny arrays means nothing, their difference does.
        close = np.linalg.norm(exact - estimate) < 1e-8
        assert relative_error(exact, estimate) < 1e-5 or close, (
            key, relative_error(exact, estimate), [repr(layer) for layer in layers])
    assert np.isfinite(value)


@SETTINGS
@given(network=networks())
def test_whole_network_gradients_match_finite_differences(network):
    check_network(network)


@SETTINGS
@given(network=networks(residual=True))
def test_residual_network_gradients_match_finite_differences(network):
    layers = network[0]
    blocks = [layer for layer in layers if isinstance(layer, Residual)]
    assert blocks and all(block.body for block in blocks)
    check_network(network)
