"""Arguments of the transposed convolution and of nearest-neighbour upsampling: each
entry of ``output_padding`` is bounded by its own stride entry, the upsampling input's
checks name ``x`` and its axes, ``scale`` defaults to 2 and the backward pass computes
in the forward input's dtype.

Issue 27 (mutation testing of ``cnn.conv_transpose``, tests/MUTATION.md)."""

import numpy as np
import pytest

from cnn.conv_transpose import (
    conv_transpose2d_forward,
    upsample_nearest_backward,
    upsample_nearest_forward,
)


@pytest.mark.parametrize("stride, output_padding", [
    ((1, 2), (1, 0)),  # the row entry alone is too large, for a tall stride of 1
    ((2, 3), (2, 0)),  # equal to its stride is too large already
    ((3, 2), (0, 2)),
])
def test_each_output_padding_entry_must_be_below_its_stride_entry(stride, output_padding):
    x, w, b = np.ones((1, 2, 3, 3)), np.ones((2, 1, 3, 3)), np.zeros(1)
    with pytest.raises(ValueError, match=r"^output_padding \(AH, AW\) = "
                       + rf"\({output_padding[0]}, {output_padding[1]}\) must be smaller "
                       + rf"than stride \(SH, SW\) = \({stride[0]}, {stride[1]}\)$"):
        conv_transpose2d_forward(x, w, b, stride=stride, output_padding=output_padding)


@pytest.mark.parametrize("stride, output_padding", [((2, 3), (1, 2)), ((3, 2), (2, 1))])
def test_the_largest_output_padding_below_the_stride_is_accepted(stride, output_padding):
    x, w, b = np.ones((1, 2, 3, 3)), np.ones((2, 1, 3, 3)), np.zeros(1)
    out, _ = conv_transpose2d_forward(x, w, b, stride=stride, output_padding=output_padding)
    assert out.shape[2:] == (2 * stride[0] + 3 + output_padding[0],
                             2 * stride[1] + 3 + output_padding[1])


def test_upsampling_doubles_by_default():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    out, cache = upsample_nearest_forward(x)
    assert cache.scale == (2, 2)
    np.testing.assert_array_equal(out, x.repeat(2, axis=2).repeat(2, axis=3))


@pytest.mark.parametrize("shape", [(2, 3, 4), (1, 2, 3, 4, 5)])
def test_upsampling_refuses_an_input_of_another_rank_and_names_it(shape):
    with pytest.raises(ValueError, match=r"^x must have shape \(N, C, H, W\), got shape "
                       + rf"\({', '.join(map(str, shape))}\)$"):
        upsample_nearest_forward(np.ones(shape), 2)


def test_upsampling_refuses_a_non_float_input_and_names_it():
    with pytest.raises(TypeError, match=r"^x must have a floating-point dtype"):
        upsample_nearest_forward(np.ones((1, 1, 2, 2), dtype=np.int64), 2)


def test_upsampling_backward_computes_in_the_input_dtype():
    x = np.ones((1, 2, 3, 3), dtype=np.float32)
    out, cache = upsample_nearest_forward(x, (2, 3))
    assert cache.dtype == np.float32
    dx = upsample_nearest_backward(np.ones(out.shape, dtype=np.float64), cache)
    assert dx.dtype == np.float32
    np.testing.assert_array_equal(dx, np.full(x.shape, 6, dtype=np.float32))
