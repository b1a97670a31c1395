"""Running the reader's function under supervision: no book solutions, a time limit.

While ``check`` runs the reader's function, the package's own versions of the function
being checked (the book's solution and its naive and tuned twins, for example
``cnn.conv.conv2d_backward``, ``conv2d_backward_naive`` and
``cnn.fast.conv.conv2d_backward_fast``) are unavailable to it: however the reader's code
reaches them (``import cnn``, ``from cnn.conv import ...``, a layer's ``backward``, a
default argument), calling one raises ``ReferenceUnavailable`` and the check fails with
a message saying so. The checker itself still calls them: each one's code is swapped
for a trampoline that asks whether the reader's function is running (a thread-local
flag) and otherwise runs the original. Everything is restored when the check ends.

A call of the reader's function that takes longer than ``time_limit`` seconds is
stopped, and the check fails saying so. On POSIX, in the main thread (a Jupyter kernel,
a script), a ``SIGALRM`` timer interrupts it. Elsewhere (Windows, or a check run from a
thread) the function runs in a worker thread that the checker stops waiting for after
the limit and then interrupts with an asynchronous exception; a thread cannot be
killed, so a function stuck inside one long NumPy call (rather than in a Python loop)
runs on in the background until it returns. Either way a single NumPy call is only
interrupted once it returns to Python, and a function that swallows every stop (a bare
``except:`` inside its endless loop) is not stopped: only a separate process, which
can be killed, stops that.
"""

from __future__ import annotations

import contextvars
import ctypes
import importlib
import signal
import sys
import threading
import time
import types
from contextlib import contextmanager
from pathlib import Path

from cnn.exercises.checks import CheckResult

#: Seconds one call of the reader's function may take (the cases are small: a correct
#: loop version takes milliseconds).
TIME_LIMIT = 10.0

#: The modules whose functions can be the book's solution to an exercise.
MODULES = ("cnn.dense", "cnn.activations", "cnn.losses", "cnn.conv", "cnn.pool",
           "cnn.gradcheck", "cnn.norm", "cnn.regularization", "cnn.conv_transpose",
           "cnn.init", "cnn.fast.conv", "cnn.fast.pool", "cnn.fast.conv_transpose",
           "cnn.layers")

#: Further package functions that answer an exercise, beyond its name and twins.
ALSO_UNAVAILABLE = {"check_model": ("check_layer",)}

#: Checks of a package function on further cases (the chapter "Convolution variants"),
#: by the name of the function they check.
VARIANTS = {"im2col_dilated": "im2col", "col2im_dilated": "col2im",
            "conv2d_forward_dilated_grouped": "conv2d_forward",
            "conv2d_backward_dilated_grouped": "conv2d_backward"}

_PACKAGE = Path(__file__).resolve().parents[1]


class ReferenceUnavailable(RuntimeError):
    """Raised by a book solution that the reader's function called during a check."""


class _UsedReference(BaseException):
    """The reader's function called a book solution (not an ``Exception``: the
    reader's ``except Exception`` must not hide it)."""


class _TimedOut(BaseException):
    """The reader's function ran past the time limit."""


_state = threading.local()
_swapped = {}  # id(trampoline code) -> (qualified name, the original as a copy)


# Neither function may be wrapped (by mutmut, say): the swapped code must have no free
# variables, and ``_dispatch`` finds the swapped function as its caller's frame.
def _trampoline(*args, **kwargs):  # pragma: no mutate block
    return __import__("cnn.exercises.sandbox", fromlist=["_"])._dispatch(args, kwargs)


def _dispatch(args, kwargs):  # pragma: no mutate block
    name, original = _swapped[id(sys._getframe(1).f_code)]
    if getattr(_state, "running", False):
        _state.used.append(name)
        raise ReferenceUnavailable(
            f"{name} is the book's own solution: it is unavailable while check runs"
            " your function. Write the computation yourself.")
    return original(*args, **kwargs)


def references(name):
    """The package functions that answer the exercise ``name``: its twins and extras."""
    base = VARIANTS.get(name, name).removesuffix("_naive").removesuffix("_fast")
    wanted = {base, f"{base}_naive", f"{base}_fast", *ALSO_UNAVAILABLE.get(base, ())}
    found = []
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        found += [value for key in sorted(wanted)
                  if isinstance(value := getattr(module, key, None), types.FunctionType)
                  and value.__module__ == module_name]
    return found


@contextmanager
def unavailable(functions):
    """Within the block, ``functions`` raise when called by the reader's function."""
    saved = []
    try:
        for fn in functions:
            if id(fn.__code__) in _swapped:
                continue  # already unavailable (a check within a check)
            copy = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__,
                                      fn.__defaults__, fn.__closure__)
            copy.__kwdefaults__ = fn.__kwdefaults__
            code = _trampoline.__code__.replace(co_name=fn.__name__)
            _swapped[id(code)] = (f"{fn.__module__}.{fn.__name__}", copy)
            saved.append((fn, fn.__code__, code))
            fn.__code__ = code
        yield
    finally:
        for fn, original, code in reversed(saved):
            fn.__code__ = original
            del _swapped[id(code)]


def _in_package(fn):
    """Whether ``fn`` is the package's own code, the bug zoo's exhibits included."""
    code = getattr(fn, "__code__", None)
    path = Path(code.co_filename).resolve() if code is not None else None
    return path is not None and path.is_relative_to(_PACKAGE)


def _on_alarm(signum, frame):
    if getattr(_state, "running", False):
        _state.timed_out = True
        raise _TimedOut


def _with_alarm(fn, args, kwargs, limit):
    handler = signal.signal(signal.SIGALRM, _on_alarm)
    # Repeats every 0.5 s: a loop that catches the stop once and goes on is stopped
    # again (one that swallows every stop with a bare ``except:`` is not: run it in its
    # own process, as the grading command does).
    earlier, _ = signal.setitimer(signal.ITIMER_REAL, limit, 0.5)
    start = time.monotonic()
    try:
        return fn(*args, **kwargs)
    finally:
        _state.running = False  # an alarm from here on is ignored
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, handler)
        if earlier:  # someone else's timer (pytest-timeout, say) keeps running
            left = max(earlier - (time.monotonic() - start), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left)


def _in_thread(fn, args, kwargs, limit):
    box, used = {}, _state.used
    context = contextvars.copy_context()  # NumPy's errstate lives in a context variable

    def target():
        _state.running, _state.used, _state.timed_out = True, used, False
        try:
            box["result"] = context.run(fn, *args, **kwargs)
        except BaseException as error:  # handed to the checking thread
            box["error"] = error
        finally:
            _state.running = False

    worker = threading.Thread(target=target, daemon=True, name="cnn-exercises-check")
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident),
                                                   ctypes.py_object(_TimedOut))
        worker.join(1.0)
        raise _TimedOut
    if "error" in box:
        raise box["error"]
    return box["result"]


def supervised(fn, limit):
    """``fn`` wrapped: a book solution it calls fails, a call past ``limit`` stops."""
    alarm = (hasattr(signal, "setitimer")
             and threading.current_thread() is threading.main_thread())

    def call(*args, **kwargs):
        _state.running, _state.used, _state.timed_out = True, [], False
        try:
            if alarm:
                result = _with_alarm(fn, args, kwargs, limit)
            else:
                result = _in_thread(fn, args, kwargs, limit)
        except Exception:
            if _state.used:
                raise _UsedReference(_state.used[0]) from None
            raise
        finally:
            _state.running = False
        if _state.timed_out:
            raise _TimedOut
        if _state.used:
            raise _UsedReference(_state.used[0])
        return result

    return call


def run_supervised(check, fn, seed, time_limit=TIME_LIMIT):
    """``check.run(fn)`` with the book's solutions unavailable and a time limit."""
    name = check.name
    solutions = references(name)
    if any(fn is s or getattr(fn, "__code__", None) is s.__code__ for s in solutions):
        return CheckResult(name, False, (
            f"{name}: check got the book's own {fn.__module__}.{fn.__name__}, not a"
            f" function of yours. Define {name} yourself (a `def {name}(...)` cell)"
            " instead of importing it from cnn."))
    if not callable(fn) or _in_package(fn):
        return check.run(fn, seed=seed)  # the package's own code runs as it is
    try:
        with unavailable(solutions):
            return check.run(supervised(fn, time_limit), seed=seed)
    except _UsedReference as used:
        return CheckResult(name, False, (
            f"{name}: your function calls {used.args[0]}, the book's own solution,"
            " which it may not call: while check runs your function, the package's"
            f" versions of {name} are unavailable. Write the computation yourself"
            " (the helpers that the set-up cell imports are allowed)."))
    except _TimedOut:
        return CheckResult(name, False, (
            f"{name}: your function did not finish within {time_limit:g} s on a small"
            " case, so check stopped it. Look for a loop that never ends (a `while`"
            " whose condition never changes, an index that is never increased) or"
            " a loop over far more elements than the shapes need."))
