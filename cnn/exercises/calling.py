"""Calling the reader's function: what it raised, and on which of the reader's lines.

``_call`` runs it with NumPy's warnings off and turns ``NotImplementedError`` (the
assignment's placeholder) and any other exception into the two outcomes a check
reports.
"""

from __future__ import annotations

import traceback
from pathlib import Path

import numpy as np


class _NotWritten(Exception):
    pass


class _Raised(Exception):
    pass


# Frames in these files are not the reader's code (the bug zoo plays the reader).
_PACKAGE = Path(__file__).resolve().parents[1]
_BUGZOO = _PACKAGE / "bugzoo.py"
_NUMPY = Path(np.__file__).resolve().parent


def _where(error):
    """The reader's line that raised ``error``: the last frame outside NumPy and cnn."""
    frames = traceback.extract_tb(error.__traceback__)[1:]
    paths = [Path(f.filename).resolve() for f in frames]
    theirs = [f for f, path in zip(frames, paths) if path == _BUGZOO or not (
        path.is_relative_to(_NUMPY) or path.is_relative_to(_PACKAGE))]
    if not theirs:
        return ""
    frame = theirs[-1]
    line = f": `{frame.line.strip()}`" if frame.line else ""
    return f" (in {frame.name}, line {frame.lineno}{line})"


def _call(fn, args, kwargs):
    """``fn(*args, **kwargs)``; nothing it does to NumPy's error state outlives it.

    ``sys.exit()`` in the reader's code is reported like an exception rather than
    ending the check (and the notebook's kernel).
    """
    state = np.geterr()
    try:
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)
    except NotImplementedError:
        raise _NotWritten from None
    except SystemExit as error:
        raise _Raised(
            f"called sys.exit({error.code!r}){_where(error)}, which would end the"
            " notebook's kernel; return the result instead") from None
    except Exception as error:  # the reader's code may raise anything
        text = str(error).strip().split("\n")[0]
        raise _Raised(f"raised {type(error).__name__}: {text}{_where(error)}") from None
    finally:
        np.seterr(**state)  # np.seterr(all="raise") in their code stays there
