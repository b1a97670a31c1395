"""When a function fails because a helper it calls is wrong, say which helper.

A reader's ``conv2d_backward`` may be right and still fail its check because it calls
the reader's own ``col2im``, which is wrong. ``name_faulty_helper`` finds the checked
functions that the reader's function calls by name (``col2im``, ``im2col``,
``relu_forward``, ...), checks each one, and for a helper that fails, runs the
function's check again with the book's helper in its place: if it then passes, the
message says that the mistake is in the helper.
"""

from __future__ import annotations

import types
from dataclasses import replace

from cnn.exercises.sandbox import VARIANTS, _in_package


def _names(code):
    """Global names a code object and the functions nested in it use."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def helpers_called(fn, name, checks):
    """``(helper name, function)`` for each reader's function with a check that ``fn``
    calls by name from its module (the notebook), other than ``name`` and ``fn`` itself
    (the check ``im2col_dilated`` runs the reader's ``im2col``)."""
    code, scope = getattr(fn, "__code__", None), getattr(fn, "__globals__", None)
    if code is None or scope is None:
        return []
    found = []
    for helper in sorted(_names(code)):
        value = scope.get(helper)
        if (helper != name and helper in checks and value is not fn
                and isinstance(value, types.FunctionType) and not _in_package(value)):
            found.append((helper, value))
    return found


def book_function(check):
    """The book's function that a check compares with, or ``None``."""
    role = "backward" if "backward" in check.name else "forward"
    for attribute in ("reference", role):
        if hasattr(check, attribute):
            return getattr(check, attribute)
    return None


def helper_check(helper, name, checks):
    """The check to run on the reader's ``helper`` when the check ``name`` fails: the
    helper's variant on the same kind of cases (``im2col_dilated`` within
    ``conv2d_forward_dilated_grouped``), else the helper's own."""
    if name in VARIANTS:
        return next((variant for variant, function in VARIANTS.items()
                     if function == helper and variant in checks), helper)
    return helper


def name_faulty_helper(result, fn, checks, run):
    """``result`` with the first failing helper of ``fn`` named in its message.

    ``run(name, fn)`` runs a check as ``run_check`` does.
    """
    if result.passed:
        return result
    for helper, theirs in helpers_called(fn, result.name, checks):
        own_check = helper_check(helper, result.name, checks)
        own = run(own_check, theirs)
        book = book_function(checks[own_check])
        if own.passed or book is None:
            continue
        scope = fn.__globals__
        scope[helper] = book
        try:
            with_book = run(result.name, fn)
        finally:
            scope[helper] = theirs
        if with_book.passed:
            verdict = (f"With the book's {helper} in its place, your {result.name}"
                       f" passes every case: the mistake is in your {helper}, not in"
                       f" {result.name}.")
        else:
            verdict = (f"Fix {helper} first: {result.name} may be right once it"
                       " is.")
        first = own.message.split("\n")
        message = (f"{result.name} fails, and it calls your {helper}, which fails its"
                   f" own check. {verdict} What check('{own_check}', {helper}) says:\n"
                   + "\n".join(first[:2])
                   + f"\n\nWhat check('{result.name}', {fn.__name__}) says:\n"
                   + result.message)
        return replace(result, message=message)
    return result
