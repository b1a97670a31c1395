"""The checks of the part "Deeper networks" name the mistakes readers make, in words.

Each wrong function is written as a reader would write it (in a namespace of its own,
as a notebook's cell), and the check must fail it with a message naming the problem.
"""

from __future__ import annotations

import pytest

from cnn.exercises import run_check


def notebook(source):
    scope = {"__name__": "__main__"}
    exec(compile("import numpy as np\n" + source, "<notebook cell>", "exec"), scope)
    return scope


# The loop of eq-convt-forward; with "=" for OP, overlapping patches overwrite each other.
CONVT_LOOP = """
from cnn.conv_transpose import ConvTransposeCache
def conv_transpose2d_forward(x, w, b, stride=1, padding=0):
    N, C_in, H, W = x.shape
    _, C_out, KH, KW = w.shape
    SH, SW = (stride, stride) if isinstance(stride, int) else stride
    PH, PW = (padding, padding) if isinstance(padding, int) else padding
    out = np.zeros((N, C_out, (H - 1) * SH + KH, (W - 1) * SW + KW), dtype=x.dtype)
    for n, c, i, j in np.ndindex(N, C_in, H, W):
        out[n, :, SH * i:SH * i + KH, SW * j:SW * j + KW] OP x[n, c, i, j] * w[c]
    out = out[:, :, PH:out.shape[2] - PH, PW:out.shape[3] - PW] + b[:, None, None]
    return out, ConvTransposeCache(x, w, (SH, SW), (PH, PW))
"""

MISTAKES = [
    ("he_normal", """
def he_normal(shape, fan_in, rng=None, dtype=np.float32):
    rng = np.random.default_rng(0) if rng is None else rng
    return (rng.standard_normal(shape) * np.sqrt(1.0 / fan_in)).astype(dtype)
""", ["standard deviation", "a variance, not a standard deviation"]),
    ("he_normal", """
def he_normal(shape, fan_in, rng=None, dtype=np.float32):
    return (np.random.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)
""", ["never from np.random's global functions"]),
    ("xavier_normal", """
def xavier_normal(shape, fan_in, fan_out, rng=None, dtype=np.float32):
    rng = np.random.default_rng(0) if rng is None else rng
    return rng.standard_normal(shape) * np.sqrt(2.0 / (fan_in + fan_out))
""", ["dtype float64, expected float32"]),
    ("sigmoid_backward", """
from cnn.activations import SigmoidCache
def sigmoid_backward(dout, cache):
    return dout * cache.out
""", ["dx is wrong", "finite differences"]),
    ("batchnorm_backward", """
def batchnorm_backward(dout, cache):
    axes = (0,) + tuple(range(2, dout.ndim))
    shape = (1, -1) + (1,) * (dout.ndim - 2)
    dx = dout * (cache.gamma * cache.inv_std).reshape(shape)
    return dx, (dout * cache.x_hat).sum(axis=axes), dout.sum(axis=axes)
""", ["dx is wrong", "dgamma and dbeta are right"]),
    ("batchnorm_forward", """
from cnn.norm import BatchNormCache
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    mean, var = x.mean(axis=0), x.var(axis=0)
    inv_std = 1 / np.sqrt(var + eps)
    x_hat = (x - mean) * inv_std
    return gamma * x_hat + beta, BatchNormCache(x_hat, inv_std, gamma, mean, var)
""", ["case 3 of 5", "over N, H and W"]),
    ("dropout_forward", """
from cnn.regularization import DropoutCache
def dropout_forward(x, p, rng):
    mask = rng.random(x.shape) >= p
    return x * mask, DropoutCache(mask, 1.0, x.dtype)
""", ["x / (1 - p)"]),
    ("dropout_forward", """
from cnn.regularization import DropoutCache
def dropout_forward(x, p, rng):
    mask = rng.random(x.shape) < p
    return x * mask / (1 - p), DropoutCache(mask, 1 / (1 - p), x.dtype)
""", ["dropped", "with probability p"]),
    ("global_avgpool2d_backward", """
def global_avgpool2d_backward(dout, cache):
    return np.broadcast_to(dout[:, :, None, None], cache.x_shape).copy()
""", ["dx is wrong", "times the expected one"]),
    ("conv_transpose2d_forward", CONVT_LOOP.replace("OP", "="),
      ["out is wrong", "overlap"]),
]


@pytest.mark.parametrize("name, source, phrases", MISTAKES,
                         ids=[f"{m[0]}-{i}" for i, m in enumerate(MISTAKES)])
def test_a_mistake_is_named_in_plain_words(name, source, phrases):
    result = run_check(name, notebook(source)[name])
    assert not result.passed
    for phrase in phrases:
        assert phrase in result.message, result.message


def test_a_loop_version_written_from_the_equations_passes():
    fn = notebook(CONVT_LOOP.replace("OP", "+="))["conv_transpose2d_forward"]
    assert run_check("conv_transpose2d_forward", fn).passed
