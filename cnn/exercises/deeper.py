"""The cases and checks of the part "Deeper networks".

Initialisation (He and Xavier, the sigmoid and tanh backward passes), batch
normalisation, dropout, global average pooling and the transposed convolution; the
catalogue adds ``DEEPER_CHECKS`` to ``CHECKS``.
"""

from __future__ import annotations

import numpy as np

from cnn.activations import (
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from cnn.conv_transpose import conv_transpose2d_backward, conv_transpose2d_forward
from cnn.exercises.cases import case
from cnn.exercises.checks import BackwardCheck, ForwardCheck
from cnn.exercises.draws import Draw, DropoutForwardCheck, InitialiserCheck
from cnn.init import he_normal, xavier_normal
from cnn.norm import batchnorm_backward, batchnorm_forward
from cnn.pool import global_avgpool2d_backward, global_avgpool2d_forward
from cnn.regularization import dropout_backward, dropout_forward

HE_CASES = (
    Draw({"shape": (256, 128), "fan_in": 256}, "shape (256, 128), fan_in=256"),
    Draw({"shape": (128, 32, 3, 3), "fan_in": 288},
         "shape (128, 32, 3, 3), fan_in=288 (a convolution: C KH KW)"),
    Draw({"shape": (300, 120), "fan_in": 300, "dtype": np.float64},
         "shape (300, 120), fan_in=300, float64",
         hint="dtype=float64 here: the weights must come back in the dtype asked for."),
)
XAVIER_CASES = (
    Draw({"shape": (256, 128), "fan_in": 256, "fan_out": 128},
         "shape (256, 128), fan_in=256, fan_out=128"),
    Draw({"shape": (64, 32, 3, 3), "fan_in": 288, "fan_out": 576},
         "shape (64, 32, 3, 3), fan_in=288, fan_out=576"),
    Draw({"shape": (300, 120), "fan_in": 300, "fan_out": 120, "dtype": np.float64},
         "shape (300, 120), fan_in=300, fan_out=120, float64"),
)

ACTIVATION_CASES = (
    case({"x": (4, 5)}),
    case({"x": (2, 3, 4, 4)}),
    case({"x": (3, 6)}, values={"x": "large"}, hint=(
        "x is large here: the gradient is tiny where the function saturates, not"
        " NaN. Use the output stored in the cache, not exp of x.")),
    case({"x": (2, 5)}, dtype=np.float32),
)

_SPATIAL = ("x has four axes here, (N, C, H, W): each channel's statistics are taken"
            " over N, H and W, every axis except axis 1.")
BN_CASES = (
    case({"x": (4, 3), "gamma": (3,), "beta": (3,)}),
    case({"x": (8, 5), "gamma": (5,), "beta": (5,)}),
    case({"x": (2, 3, 4, 4), "gamma": (3,), "beta": (3,)}, hint=_SPATIAL),
    case({"x": (3, 2, 3, 5), "gamma": (2,), "beta": (2,)}, hint=_SPATIAL),
    case({"x": (6, 4), "gamma": (4,), "beta": (4,)}, dtype=np.float32),
)

DROPOUT_FORWARD_CASES = (
    Draw({"shape": (40, 50), "dtype": np.float64, "p": 0.5}, "x (40, 50), p=0.5"),
    Draw({"shape": (2, 3, 8, 8), "dtype": np.float64, "p": 0.2},
         "x (2, 3, 8, 8), p=0.2"),
    Draw({"shape": (30, 40), "dtype": np.float64, "p": 0.0}, "x (30, 40), p=0",
         hint="p = 0 drops nothing: out equals x."),
    Draw({"shape": (40, 50), "dtype": np.float32, "p": 0.5}, "x (40, 50), p=0.5,"
         " float32"),
)


def dropout_forward_seeded(x, p):
    """``dropout_forward`` with a mask from a fixed seed: a deterministic forward pass
    to check ``dropout_backward`` against."""
    return dropout_forward(x, p, np.random.default_rng(7))


DROPOUT_CASES = (
    case({"x": (4, 5)}, p=0.5),
    case({"x": (2, 3, 4, 4)}, p=0.25),
    case({"x": (3, 4)}, p=0.0, hint="p = 0 here: every unit is kept, dx = dout."),
    case({"x": (5, 6)}, dtype=np.float32, p=0.5),
)

GAP_CASES = (
    case({"x": (2, 3, 4, 4)}),
    case({"x": (1, 2, 5, 3)}, hint="The maps are not square here: H W = 15."),
    case({"x": (3, 1, 1, 1)}),
    case({"x": (2, 2, 3, 3)}, dtype=np.float32),
)


def _convt(N, C_in, H, W, C_out, KH, KW, **options):
    return case({"x": (N, C_in, H, W), "w": (C_in, C_out, KH, KW), "b": (C_out,)},
                **options)


_OVERLAP = ("The stride is smaller than the kernel here: the patches of neighbouring"
            " input pixels overlap in the output and add up.")
CONVT_CASES = (
    _convt(2, 3, 3, 3, 2, 3, 3, stride=1, padding=0, hint=_OVERLAP),
    _convt(1, 2, 4, 3, 3, 2, 2, stride=2, padding=0),
    _convt(2, 2, 3, 4, 2, 3, 3, stride=2, padding=1, hint=(
        _OVERLAP + " With padding (PH, PW), PH rows and PW columns are cropped from"
        " each side of the output (eq-convt-out-size).")),
    _convt(1, 1, 3, 3, 2, 2, 3, stride=(2, 3), padding=(0, 1)),
    _convt(2, 2, 3, 3, 2, 3, 3, stride=2, padding=1, dtype=np.float32),
)

DEEPER_CHECKS = (
    InitialiserCheck(he_normal, HE_CASES,
                     std=lambda fan_in, **_: np.sqrt(2 / fan_in)),
    InitialiserCheck(xavier_normal, XAVIER_CASES,
                     std=lambda fan_in, fan_out, **_: np.sqrt(2 / (fan_in + fan_out))),
    BackwardCheck(sigmoid_forward, sigmoid_backward, ("dx",), ACTIVATION_CASES),
    BackwardCheck(tanh_forward, tanh_backward, ("dx",), ACTIVATION_CASES),
    ForwardCheck(batchnorm_forward, batchnorm_backward, BN_CASES,
                 grads=("dx", "dgamma", "dbeta")),
    BackwardCheck(batchnorm_forward, batchnorm_backward, ("dx", "dgamma", "dbeta"),
                  BN_CASES),
    DropoutForwardCheck(dropout_forward, dropout_backward, DROPOUT_FORWARD_CASES),
    BackwardCheck(dropout_forward_seeded, dropout_backward, ("dx",), DROPOUT_CASES),
    ForwardCheck(global_avgpool2d_forward, global_avgpool2d_backward, GAP_CASES,
                 grads=("dx",)),
    BackwardCheck(global_avgpool2d_forward, global_avgpool2d_backward, ("dx",),
                  GAP_CASES),
    ForwardCheck(conv_transpose2d_forward, conv_transpose2d_backward, CONVT_CASES),
    BackwardCheck(conv_transpose2d_forward, conv_transpose2d_backward,
                  ("dx", "dw", "db"), CONVT_CASES),
)
