"""Automatic feedback for the assignments: ``check(name, your_function)``.

Each student notebook (``make assignments``) asks for functions of this package, written
from their signatures and docstrings. ``check("conv2d_backward", conv2d_backward)``
runs the reader's function on small random cases (several shapes, strides and
paddings, float64 and one float32 case) and reports, in plain words, the first problem
it finds: a wrong return type, shape or dtype, a modified input, wrong values (which
output, its relative error eq-relative-error, the first wrong entry) and how far a
wrong gradient is from centred finite differences of the forward pass. Otherwise it
says "all N cases pass". ``run_check`` returns the same report without raising.

Every check is one entry of ``CHECKS``. The subpackage follows the checker's jobs:
``cases`` (what a case is), ``calling`` (running the reader's function),
``compare`` (finding and wording a difference), ``checks`` and ``special`` (the kinds
of check) and ``catalogue`` (the cases of every function, and ``CHECKS``). A new pair
of functions, for example a batch normalisation, needs one ``ForwardCheck`` and one
``BackwardCheck`` entry in ``catalogue``::

    BackwardCheck(batchnorm_forward, batchnorm_backward,
                  grads=("dx", "dgamma", "dbeta"),
                  cases=[case({"x": (4, 3), "gamma": (3,), "beta": (3,)}), ...])
"""

from __future__ import annotations

import numpy as np

from cnn.exercises.cases import VALUES, Case, case
from cnn.exercises.catalogue import (
    CHECKS,
    CONV_CASES,
    DENSE_CASES,
    LOSS_CASES,
    MAXPOOL_FORWARD_CASES,
    POOL_CASES,
    RELATIVE_ERROR_CASES,
    RELU_CASES,
    SOFTMAX_CASES,
)
from cnn.exercises.checks import (
    BackwardCheck,
    Check,
    CheckFailed,
    CheckResult,
    ForwardCheck,
    FunctionCheck,
    LossCheck,
)
from cnn.exercises.compare import TOLERANCE
from cnn.exercises.helpers import name_faulty_helper
from cnn.exercises.sandbox import TIME_LIMIT, ReferenceUnavailable, run_supervised
from cnn.exercises.special import CheckModelCheck, NumericalGradientCheck

__all__ = [
    "CHECKS", "TIME_LIMIT", "TOLERANCE", "VALUES", "BackwardCheck", "Case", "Check",
    "CheckFailed", "ReferenceUnavailable",
    "CheckModelCheck", "CheckResult", "ForwardCheck", "FunctionCheck", "LossCheck",
    "NumericalGradientCheck", "case", "check", "gradient_check", "run_check",
    "CONV_CASES", "DENSE_CASES", "LOSS_CASES", "MAXPOOL_FORWARD_CASES", "POOL_CASES",
    "RELATIVE_ERROR_CASES", "RELU_CASES", "SOFTMAX_CASES",
]


def _get(name):
    if not isinstance(name, str):
        raise TypeError(
            f"name must be the name of a checked function, a str such as"
            f" 'relu_forward', got {type(name).__name__} {name!r}")
    if name not in CHECKS:
        raise ValueError(
            f"name must be one of the checked functions {sorted(CHECKS)}, got {name!r}")
    return CHECKS[name]


def run_check(name, fn, seed=0, time_limit=TIME_LIMIT):
    """Run the check of the function ``name`` on ``fn``; return a ``CheckResult``.

    While it runs ``fn``, the package's own versions of ``name`` are unavailable to it
    (calling one fails the check), and a call that takes longer than ``time_limit``
    seconds is stopped (``cnn.exercises.sandbox``). When ``fn`` fails and a function
    of the reader's that it calls (``col2im``, say) fails its own check, the message
    names that helper.

    Parameters
    ----------
    name : str
        A key of ``CHECKS``, the name of the package function that ``fn`` replaces,
        for example ``"conv2d_backward"``.
    fn : callable
        The reader's function, with the signature of the package's.
    seed : int
        Seeds the random cases.
    time_limit : float
        Seconds one call of ``fn`` may take.

    Returns
    -------
    result : CheckResult
        ``passed``, the ``message`` (the first problem found, or "all N cases pass")
        and one verdict per case.
    """
    result = run_supervised(_get(name), fn, seed, time_limit)
    return name_faulty_helper(result, fn, CHECKS,
                              lambda other, f: run_supervised(
                                  _get(other), f, seed, time_limit))


def check(name, fn, seed=0, time_limit=TIME_LIMIT):
    """Check the reader's ``fn`` and say in plain words what is wrong, if anything.

    Prints "name: all N cases pass." or raises ``CheckFailed`` whose message names the
    first problem: the case, the output, the relative error and the first wrong entry,
    and how the function does on every case. Arguments as for ``run_check``.
    """
    result = run_check(name, fn, seed=seed, time_limit=time_limit)
    if not result.passed:
        raise CheckFailed(result.message)
    print(result.message)


def gradient_check(name, fn, seed=0):
    """The plain gradient check of a backward pass or loss: one dict per case.

    Each dict maps a result of ``fn`` (``"dx"``, ``"dw"``, ...) to its relative error
    against centred finite differences of the forward pass (``None`` for cases where
    finite differences are not meaningful; ``{"raised": name}`` when ``fn`` raised the
    exception ``name``). Unlike ``check``, it does not compare with
    the book's function, nor look at dtypes or modified inputs.
    """
    chosen = _get(name)
    if not hasattr(chosen, "gradient_check"):
        raise ValueError(f"{name} is not a backward pass or a loss; no gradient check")
    # A broken function's overflow or NaN belongs in its row, whatever np.seterr the
    # reader chose: the errors and differences are computed with warnings off too.
    with np.errstate(all="ignore"):
        return chosen.gradient_check(fn, seed=seed)
