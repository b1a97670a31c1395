"""How many threads BLAS may use: ``blas_threads`` (chapter "Making it fast").

The chapters that train and the command line run the small networks with one BLAS
thread: their matrix products are too small to gain from a second one, and on a machine
shared with other programs a second thread waits whenever its core is taken.
"""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def blas_threads(n):
    """Run the ``with`` block with at most ``n`` BLAS threads (``threadpoolctl``).

    Yields ``True`` when the limit is in force and ``False`` when ``threadpoolctl`` is
    missing, in which case BLAS keeps its default number of threads. One thread makes
    timings on a shared machine steadier: a second BLAS thread waits whenever the other
    programs take its core.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield False
        return
    with threadpool_limits(n, user_api="blas"):
        yield True
