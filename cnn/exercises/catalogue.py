"""The cases of every checked function, and ``CHECKS``, every check by name.

The cases are chosen for the mistakes readers make: strided and padded convolutions
with rows no window reads, overlapping and non-square pooling windows, ties and exact
zeros, large logits, float32; a case's hint is told to the reader when it fails.
"""

from __future__ import annotations

import numpy as np

from cnn.activations import relu_backward, relu_forward, softmax
from cnn.conv import (
    col2im,
    conv2d_backward,
    conv2d_forward,
    conv2d_forward_naive,
    im2col,
    output_size,
)
from cnn.dense import dense_backward, dense_forward
from cnn.exercises.cases import case
from cnn.exercises.checks import BackwardCheck, ForwardCheck, FunctionCheck, LossCheck
from cnn.exercises.deeper import DEEPER_CHECKS
from cnn.exercises.modern import MODERN_CHECKS
from cnn.exercises.special import CheckModelCheck, NumericalGradientCheck
from cnn.gradcheck import relative_error
from cnn.losses import softmax_cross_entropy
from cnn.pool import (
    avgpool2d_backward,
    avgpool2d_forward,
    maxpool2d_backward,
    maxpool2d_forward,
)


def _conv(N, C, H, W, F, KH, KW, **options):
    return case({"x": (N, C, H, W), "w": (F, C, KH, KW), "b": (F,)}, **options)


_STRIDED = ("Output (i, j) reads the window at (SH i, SW j) of the padded input, and"
            " the gradient of the padding is cropped off (eq-conv-dx).")
_UNREAD = (" Here the last rows or columns of the padded input are read by no window:"
           " their gradient is 0.")
CONV_CASES = (
    _conv(2, 3, 5, 5, 4, 3, 3, stride=1, padding=0),
    _conv(1, 2, 6, 5, 3, 3, 2, stride=1, padding=1),
    _conv(2, 2, 7, 6, 3, 3, 2, stride=2, padding=1, hint=_STRIDED),
    _conv(2, 1, 8, 7, 2, 2, 3, stride=(2, 3), padding=(0, 2), hint=_STRIDED + _UNREAD),
    _conv(1, 3, 4, 4, 2, 1, 1, stride=1, padding=0),
    _conv(3, 2, 9, 9, 2, 3, 3, stride=3, padding=2, hint=_STRIDED + _UNREAD),
    _conv(2, 2, 6, 6, 3, 3, 3, stride=2, padding=1, dtype=np.float32),
)

DENSE_CASES = (
    case({"x": (4, 3), "w": (3, 2), "b": (2,)}),
    case({"x": (1, 5), "w": (5, 3), "b": (3,)}, hint="One sample here, N = 1."),
    case({"x": (3, 3), "w": (3, 3), "b": (3,)}, hint=(
        "Here N = D = M, so a transposed product or a sum over the wrong axis still has"
        " the right shape: only the values show the mistake.")),
    case({"x": (5, 2), "w": (2, 4), "b": (4,)}),
    case({"x": (4, 6), "w": (6, 3), "b": (3,)}, dtype=np.float32),
)

RELU_CASES = (
    case({"x": (4, 5)}, values={"x": "kink-free"}),
    case({"x": (2, 3, 4, 4)}, values={"x": "kink-free"}),
    case({"x": (3, 4)}, values={"x": "zeros"},
         hint="x has exact zeros here: the book's ReLU lets no gradient through x = 0,"
              " the subgradient 0 (eq-relu-dx), so use x > 0, not x >= 0."),
    case({"x": (2, 5)}, values={"x": "kink-free"}, dtype=np.float32),
)

_OVERLAP = ("The windows overlap here (stride smaller than the kernel): an input can"
            " lie in several windows, and its gradient is the sum of what each sends"
            " it.")
_NON_SQUARE = ("The window is not square here: offset (p, q) of a KH x KW window is"
               " p KW + q in row-major order.")
_POOL = (
    ((2, 3, 4, 4), {"kernel_size": 2}, ""),
    ((1, 2, 6, 5), {"kernel_size": 3, "stride": 2}, _OVERLAP),
    ((2, 1, 5, 7), {"kernel_size": (2, 3), "stride": (1, 2)},
     _OVERLAP + " " + _NON_SQUARE),
    ((1, 2, 6, 6), {"kernel_size": (3, 2), "stride": (3, 2)}, _NON_SQUARE),
)
POOL_CASES = tuple(
    case({"x": shape}, values={"x": "distinct"}, hint=hint, **kwargs)
    for shape, kwargs, hint in _POOL
) + (case({"x": (2, 2, 4, 4)}, dtype=np.float32, kernel_size=2),)
MAXPOOL_FORWARD_CASES = POOL_CASES + (
    case({"x": (2, 2, 4, 4)}, values={"x": "ties"}, kernel_size=2, hint=(
        "x has tied maxima here. The book's tie rule (pooling chapter): the gradient"
        " goes to the FIRST maximum of the window in row-major order, the one"
        " numpy.argmax picks; replace the running maximum only when an entry is"
        " strictly greater.")),
)

SOFTMAX_CASES = (
    case({"z": (4, 5)}),
    case({"z": (1, 3)}),
    case({"z": (2, 3, 4)}, hint="z has three axes here: softmax runs along the last"
                                " axis, whatever comes before it."),
    case({"z": (3, 10)}, values={"z": "large"}, hint=(
        "These logits are large: exp overflows unless you subtract the maximum of each"
        " row first (eq-softmax-shift).")),
    case({"z": (3, 4)}, dtype=np.float32),
)

LOSS_CASES = (
    case({"logits": (4, 3)}),
    case({"logits": (1, 5)}),
    case({"logits": (6, 4)}),
    case({"logits": (3, 10)}, values={"logits": "large"}, hint=(
        "These logits are large: compute log softmax with log-sum-exp (eq-logsumexp)"
        " rather than the log of the softmax, which underflows to log(0).")),
    case({"logits": (5, 3)}, dtype=np.float32),
)


def _im2col_case(N, C, Hp, Wp, KH, KW, SH, SW, dtype=np.float64):
    return case({"x_padded": (N, C, Hp, Wp)}, kernel_size=(KH, KW), stride=(SH, SW),
                dtype=dtype)


def _col2im_case(N, C, Hp, Wp, KH, KW, SH, SW, dtype=np.float64):
    H_out, W_out = output_size((Hp, Wp), (KH, KW), (SH, SW), (0, 0))
    return case({"dcols": (N, C * KH * KW, H_out * W_out)}, dtype=dtype,
                x_padded_shape=(N, C, Hp, Wp), kernel_size=(KH, KW), stride=(SH, SW))


# The last one in float32: the result must keep the dtype of its input.
_GEOMETRIES = ((2, 3, 5, 5, 3, 3, 1, 1), (1, 2, 7, 6, 3, 2, 2, 1),
               (2, 1, 8, 7, 2, 3, 2, 3), (1, 2, 4, 4, 1, 1, 1, 1),
               (2, 2, 5, 6, 3, 2, 2, 2, np.float32))


def _relations(a_from_b):
    return lambda arrays: {"a": a_from_b(arrays["b"]), "b": arrays["b"]}


RELATIVE_ERROR_CASES = (
    case({"a": (3, 4), "b": (3, 4)}),
    case({"a": (2, 3, 4, 4), "b": (2, 3, 4, 4)}, note="a = b + 1e-7",
         derive=_relations(lambda b: b + 1e-7)),
    case({"a": (4, 5), "b": (4, 5)}, note="a = 4 b",
         derive=_relations(lambda b: 4 * b)),
    case({"a": (5,), "b": (5,)}, values={"a": "zero", "b": "zero"}, hint=(
        "Both arrays are zero: the relative error is 0, not NaN. The floor delta in"
        " the denominator of eq-relative-error keeps the quotient defined.")),
    case({"a": (3,), "b": (3,)}, values={"a": "zero"}),
)


def _register(*checks):
    return {check.name: check for check in checks}


#: Every check, by the name of the function it checks.
#:
#: :meta hide-value:
CHECKS = _register(
    ForwardCheck(dense_forward, dense_backward, DENSE_CASES),
    BackwardCheck(dense_forward, dense_backward, ("dx", "dw", "db"), DENSE_CASES),
    ForwardCheck(relu_forward, relu_backward, RELU_CASES),
    BackwardCheck(relu_forward, relu_backward, ("dx",), RELU_CASES),
    FunctionCheck(softmax, SOFTMAX_CASES, outputs=("p",)),
    LossCheck(softmax_cross_entropy, LOSS_CASES),
    ForwardCheck(conv2d_forward, conv2d_backward, CONV_CASES,
                 name="conv2d_forward_naive"),
    ForwardCheck(conv2d_forward, conv2d_backward, CONV_CASES),
    FunctionCheck(im2col, [_im2col_case(*g) for g in _GEOMETRIES], outputs=("cols",)),
    BackwardCheck(conv2d_forward, conv2d_backward, ("dx", "dw", "db"), CONV_CASES,
                  name="conv2d_backward_naive", also=(conv2d_forward_naive,)),
    FunctionCheck(col2im, [_col2im_case(*g) for g in _GEOMETRIES],
                  outputs=("dx_padded",)),
    BackwardCheck(conv2d_forward, conv2d_backward, ("dx", "dw", "db"), CONV_CASES,
                  also=(conv2d_forward_naive,)),
    ForwardCheck(maxpool2d_forward, maxpool2d_backward, MAXPOOL_FORWARD_CASES),
    BackwardCheck(maxpool2d_forward, maxpool2d_backward, ("dx",), POOL_CASES),
    ForwardCheck(avgpool2d_forward, avgpool2d_backward, POOL_CASES),
    BackwardCheck(avgpool2d_forward, avgpool2d_backward, ("dx",), POOL_CASES),
    NumericalGradientCheck(),
    FunctionCheck(relative_error, RELATIVE_ERROR_CASES, outputs=("error",)),
    CheckModelCheck(),
    *DEEPER_CHECKS,
    *MODERN_CHECKS,
)
