"""The cases and checks of the part "Modern convolutional networks".

Residual blocks (``residual_forward`` and ``residual_backward``, whose cases are small
blocks of layers), dilated and grouped convolution (the convolution functions checked
again on cases with ``dilation`` and ``groups``, under names of their own such as
``conv2d_backward_dilated_grouped``), and the normalisation of each sample; the
catalogue adds ``MODERN_CHECKS`` to ``CHECKS``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from cnn.conv import (
    col2im,
    conv2d_backward,
    conv2d_forward,
    conv2d_forward_naive,
    im2col,
    output_size,
)
from cnn.exercises.calling import _call
from cnn.exercises.cases import case
from cnn.exercises.checks import BackwardCheck, Check, ForwardCheck, FunctionCheck
from cnn.exercises.compare import (
    TOLERANCE,
    _changed,
    _error_text,
    _structure,
    _value_problem,
    _within,
)
from cnn.gradcheck import numerical_gradient, relative_error
from cnn.layers import (
    Conv2D,
    Dense,
    ReLU,
    Residual,
    residual_backward,
    residual_forward,
)
from cnn.norm import (
    groupnorm_backward,
    groupnorm_forward,
    normalize_backward,
    normalize_forward,
)

# -- dilated and grouped convolution --------------------------------------------------


def _conv(N, C, H, W, F, KH, KW, groups=1, **options):
    return case({"x": (N, C, H, W), "w": (F, C // groups, KH, KW), "b": (F,)},
                groups=groups, **options)


_DILATED = ("The kernel is dilated here: offset (p, q) of the window of output (i, j)"
            " reads x_padded[SH i + DH p, SW j + DW q] (eq-dconv-forward): the stride"
            " moves the window, the dilation spreads the kernel.")
_GROUPED = ("There are several groups here: filter f belongs to group g = f // (F // G)"
            " and reads the C // G channels of group g only (eq-gconv-forward).")
# Neither, dilation alone (stride and dilation different), groups alone (two filters a
# group, then depthwise: one), both together, and float32.
CONV_VARIANT_CASES = (
    _conv(2, 2, 5, 5, 2, 3, 3, stride=1, padding=0, dilation=1),
    _conv(1, 2, 7, 6, 3, 3, 2, stride=1, padding=1, dilation=2, hint=_DILATED),
    _conv(2, 1, 9, 8, 2, 2, 3, stride=(2, 1), padding=1, dilation=(3, 1),
          hint=_DILATED),
    _conv(2, 4, 5, 5, 6, 3, 3, groups=2, stride=1, padding=1, dilation=1,
          hint=_GROUPED),
    _conv(1, 3, 6, 6, 3, 3, 3, groups=3, stride=1, padding=1, dilation=1,
          hint=_GROUPED + " With groups = C = F it is a depthwise convolution."),
    _conv(2, 4, 8, 7, 4, 2, 2, groups=2, stride=2, padding=1, dilation=2,
          hint=_GROUPED + " " + _DILATED),
    _conv(2, 4, 7, 7, 4, 3, 3, groups=2, stride=1, padding=2, dilation=2,
          dtype=np.float32),
)


def _im2col_case(N, C, Hp, Wp, KH, KW, SH, SW, DH, DW, dtype=np.float64):
    return case({"x_padded": (N, C, Hp, Wp)}, kernel_size=(KH, KW), stride=(SH, SW),
                dilation=(DH, DW), dtype=dtype, hint="" if (DH, DW) == (1, 1) else (
                    "Row (c, p, q) of column (i, j) holds x_padded[n, c, SH i + DH p,"
                    " SW j + DW q] here (eq-dconv-forward)."))


def _col2im_case(N, C, Hp, Wp, KH, KW, SH, SW, DH, DW, dtype=np.float64):
    H_out, W_out = output_size((Hp, Wp), (KH, KW), (SH, SW), (0, 0), (DH, DW))
    return case({"dcols": (N, C * KH * KW, H_out * W_out)}, dtype=dtype,
                x_padded_shape=(N, C, Hp, Wp), kernel_size=(KH, KW), stride=(SH, SW),
                dilation=(DH, DW))


# (N, C, Hp, Wp, KH, KW, SH, SW, DH, DW); the last one in float32.
_GEOMETRIES = ((2, 2, 5, 5, 3, 3, 1, 1, 1, 1), (1, 2, 7, 6, 3, 2, 1, 1, 2, 2),
               (2, 1, 9, 8, 2, 3, 2, 1, 3, 1), (1, 3, 8, 8, 2, 2, 2, 2, 2, 2),
               (2, 2, 9, 9, 3, 3, 1, 2, 2, 3, np.float32))

# -- normalisation of each sample ----------------------------------------------------

_AXES = ("The statistics are taken over the axes {axes} here: one mean and one variance"
         " for each index of the other axes, m = {m} entries each.")


def _normalize(shape, axes, **options):
    m = int(np.prod([shape[a] for a in axes]))
    return case({"x": shape}, axes=axes, hint=_AXES.format(axes=axes, m=m), **options)


NORMALIZE_CASES = (
    _normalize((4, 6), (1,)),
    _normalize((2, 3, 4, 4), (1, 2, 3)),
    _normalize((2, 2, 3, 4, 4), (2, 3, 4)),
    _normalize((6, 3), (0,)),
    _normalize((2, 3, 4, 4), (1, 2, 3), dtype=np.float32),
)

_GROUPS = ("groups={G} here: sample n's channels form {G} groups of C // G = {size},"
           " each standardised over its channels and all of H and W; gamma and beta"
           " are per channel.")


def _groupnorm(N, C, H, W, groups, **options):
    return case({"x": (N, C, H, W), "gamma": (C,), "beta": (C,)}, groups=groups,
                hint=_GROUPS.format(G=groups, size=C // groups), **options)


GROUPNORM_CASES = (
    _groupnorm(2, 4, 3, 3, 2),
    _groupnorm(3, 6, 2, 4, 3),
    _groupnorm(2, 3, 4, 4, 1, note="LayerNorm with per-channel gamma"),
    _groupnorm(2, 3, 4, 4, 3, note="InstanceNorm"),
    case({"x": (4, 6), "gamma": (6,), "beta": (6,)}, groups=3, hint=(
        "x has two axes here, (N, C): each group is C // G = 2 channels of one sample,"
        " with no H and W.")),
    _groupnorm(1, 4, 3, 5, 2, dtype=np.float32),
)

# -- residual blocks -----------------------------------------------------------------


class BlockCase(NamedTuple):
    """A case whose arguments are a residual block: ``build(rng, dtype)`` gives its
    ``body``, its ``shortcut`` and an input ``x``."""

    text: str
    build: Callable
    dtype: type = np.float64
    hint: str = ""

    @property
    def smooth(self):
        return np.dtype(self.dtype) == np.float64

    def describe(self):
        return self.text + ("" if self.smooth else ", float32")


def _conv_relu(rng, dtype):
    body = [Conv2D(2, 2, 3, padding=1, rng=rng, dtype=dtype), ReLU()]
    return body, None, rng.standard_normal((2, 2, 4, 4)).astype(dtype)


def _projected(rng, dtype):
    body = [Conv2D(2, 3, 3, stride=2, padding=1, rng=rng, dtype=dtype), ReLU(),
            Conv2D(3, 3, 3, padding=1, rng=rng, dtype=dtype)]
    shortcut = [Conv2D(2, 3, 1, stride=2, rng=rng, dtype=dtype)]
    return body, shortcut, rng.standard_normal((2, 2, 5, 5)).astype(dtype)


def _dense(rng, dtype):
    body = [Dense(4, 5, rng=rng, dtype=dtype), ReLU(),
            Dense(5, 4, rng=rng, dtype=dtype)]
    return body, None, rng.standard_normal((3, 4)).astype(dtype)


_SHORTCUT = ("The shortcut is a strided 1x1 convolution here, not the identity:"
             " dout goes back through its layers too, in reverse order (eq-res-dx).")
BLOCK_CASES = (
    BlockCase("body [Conv2D(2, 2, 3, padding=1), ReLU()], identity shortcut,"
              " x (2, 2, 4, 4)", _conv_relu),
    BlockCase("body [Dense(4, 5), ReLU(), Dense(5, 4)], identity shortcut, x (3, 4)",
              _dense, hint="The body has three layers here: dout goes back through"
                           " them in reverse order."),
    BlockCase("body [Conv2D(2, 3, 3, stride=2, padding=1), ReLU(), Conv2D(3, 3, 3,"
              " padding=1)], shortcut [Conv2D(2, 3, 1, stride=2)], x (2, 2, 5, 5)",
              _projected, hint=_SHORTCUT),
    BlockCase("body [Conv2D(2, 2, 3, padding=1), ReLU()], identity shortcut,"
              " x (2, 2, 4, 4)", _conv_relu, dtype=np.float32),
)


class _BlockCheck(Check):
    """Common to the checks of a residual block's passes."""

    def __init__(self, name):
        self.name, self.cases = name, BLOCK_CASES

    @staticmethod
    def _twins(case, rng):
        """Two identical blocks with one input: the book's and the reader's copy."""
        state = rng.bit_generator.state
        ours = case.build(rng, case.dtype)
        rng.bit_generator.state = state
        theirs = case.build(rng, case.dtype)
        return ours, theirs


class ResidualForwardCheck(_BlockCheck):
    """``residual_forward(x, body, shortcut)``: ``out``, and caches the book's
    ``residual_backward`` can use."""

    def __init__(self):
        super().__init__("residual_forward")

    def check_case(self, fn, case, rng):
        (body, shortcut, x), (body_in, shortcut_in, _) = self._twins(case, rng)
        out = residual_forward(x, body, shortcut)
        x_in = x.copy()
        got = _call(fn, (x_in, body_in, shortcut_in), {})
        problem = (_structure("out", got, out, case) or _changed({"x": (x_in, x)})
                   or _value_problem("out", got, out, case))
        if problem:
            return problem
        dout = rng.standard_normal(out.shape).astype(out.dtype)
        expected = residual_backward(dout, body, shortcut)
        try:
            dx = residual_backward(dout, body_in, shortcut_in)
        except Exception as error:
            return "layers not run", (
                f"out is right, but the book's residual_backward cannot run on the"
                f" layers afterwards: {_error_text(error)}. Compute out with"
                " each layer's forward, which keeps the cache its backward needs.")
        if not _within(dx, expected, TOLERANCE[np.dtype(dx.dtype)]):
            return "wrong caches", (
                "out is right, but the layers' caches are not those of this input:"
                " from them the book's residual_backward computes a wrong dx. Run"
                " every layer's forward once, on its own input.")
        return None


class ResidualBackwardCheck(_BlockCheck):
    """``residual_backward(dout, body, shortcut)``: ``dx`` and every layer's grads."""

    def __init__(self):
        super().__init__("residual_backward")

    def _setup(self, case, rng):
        (body, shortcut, x), theirs = self._twins(case, rng)
        out = residual_forward(x, body, shortcut)
        residual_forward(theirs[2], theirs[0], theirs[1])
        dout = rng.standard_normal(out.shape).astype(out.dtype)
        return (body, shortcut, x), theirs, dout

    @staticmethod
    def _numeric(block, dout, array):
        """Centred differences of ``sum(residual_forward(x) * dout)`` for ``array``
        (``x`` or a parameter, perturbed in place)."""
        body, shortcut, x = block
        return numerical_gradient(
            lambda _: float(np.sum(residual_forward(x, body, shortcut) * dout)), array)

    def check_case(self, fn, case, rng):
        (body, shortcut, x), (body_in, shortcut_in, _), dout = self._setup(case, rng)
        dx = residual_backward(dout, body, shortcut)
        dout_in = dout.copy()
        got = _call(fn, (dout_in, body_in, shortcut_in), {})
        problem = (_structure("dx", got, dx, case, " (the shape of x)")
                   or _changed({"dout": (dout_in, dout)}))
        if problem:
            return problem
        # Keyed "body.0.w" as a Residual keys its layers' gradients.
        expected = Residual(body, shortcut).grads
        grads = Residual(body_in, shortcut_in).grads
        wrong = [key for key in expected
                 if not _within(grads[key], expected[key],
                                TOLERANCE[np.dtype(dx.dtype)])]
        problem = _value_problem("dx", got, dx, case, fd=lambda: self._numeric(
            (body, shortcut, x), dout, x))
        if problem:
            right = "" if wrong else (
                " Every layer's parameter gradients are right: the mistake is in what"
                " your function adds up and returns as dx.")
            return problem[0], problem[1] + right
        if wrong:
            return f"{wrong[0]}: wrong gradient", (
                f"dx is right, but the gradient that layer {wrong[0].rsplit('.', 1)[0]}"
                f" holds for {wrong[0].rsplit('.', 1)[1]} is not (and {len(wrong)} of"
                f" {len(expected)} are wrong): run each layer's backward exactly once,"
                " on the gradient of its own output.")
        return None

    def gradient_check(self, fn, seed=0):
        """Relative errors of ``dx`` and of every layer's parameter gradients against
        centred differences: one dict per case, ``None`` for float32 cases."""
        rows = []
        for k, one in enumerate(self.cases):
            rng = np.random.default_rng([seed, k])
            block, _, dout = self._setup(one, rng)
            if not one.smooth:
                rows.append(None)
                continue
            try:
                dx = fn(dout.copy(), block[0], block[1])
            except Exception as error:  # a broken function may raise anything
                rows.append({"raised": type(error).__name__})
                continue
            row = {"dx": (relative_error(dx, self._numeric(block, dout, block[2]))
                          if np.shape(dx) == block[2].shape else float("nan"))}
            grads = Residual(block[0], block[1]).grads
            for key, value in Residual(block[0], block[1]).params.items():
                row[key] = relative_error(grads[key], self._numeric(block, dout, value))
            rows.append(row)
        return rows


MODERN_CHECKS = (
    ResidualForwardCheck(),
    ResidualBackwardCheck(),
    FunctionCheck(im2col, [_im2col_case(*g) for g in _GEOMETRIES], outputs=("cols",),
                  name="im2col_dilated"),
    FunctionCheck(col2im, [_col2im_case(*g) for g in _GEOMETRIES],
                  outputs=("dx_padded",), name="col2im_dilated"),
    ForwardCheck(conv2d_forward, conv2d_backward, CONV_VARIANT_CASES,
                 name="conv2d_forward_dilated_grouped"),
    BackwardCheck(conv2d_forward, conv2d_backward, ("dx", "dw", "db"),
                  CONV_VARIANT_CASES, name="conv2d_backward_dilated_grouped",
                  also=(conv2d_forward_naive,)),
    ForwardCheck(normalize_forward, normalize_backward, NORMALIZE_CASES, grads=("dx",)),
    BackwardCheck(normalize_forward, normalize_backward, ("dx",), NORMALIZE_CASES),
    ForwardCheck(groupnorm_forward, groupnorm_backward, GROUPNORM_CASES,
                 grads=("dx", "dgamma", "dbeta")),
    BackwardCheck(groupnorm_forward, groupnorm_backward, ("dx", "dgamma", "dbeta"),
                  GROUPNORM_CASES),
)
