"""Both transposed-convolution forward passes default to stride 1 and no padding, so
that ``H_out = H - 1 + KH``, and agree with each other when called with the defaults.

Issue 27 (mutation testing of ``cnn.conv_transpose``)."""

import numpy as np

from cnn.conv_transpose import conv_transpose2d_forward, conv_transpose2d_forward_naive


def test_the_defaults_are_stride_one_and_no_padding():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((3, 2, 3, 2)), np.ones(2)
    explicit, _ = conv_transpose2d_forward(x, w, b, stride=1, padding=0)
    assert explicit.shape == (2, 2, 4 - 1 + 3, 5 - 1 + 2)
    for forward in (conv_transpose2d_forward, conv_transpose2d_forward_naive):
        out, cache = forward(x, w, b)
        assert (cache.stride, cache.padding) == ((1, 1), (0, 0))
        np.testing.assert_allclose(out, explicit, rtol=1e-12, atol=1e-12)
