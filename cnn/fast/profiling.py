"""Measuring the convolution: FLOP counts, timers, the GEMM ceiling and peak memory.

One source of truth for the numbers in ``benchmarks/bench.py`` and in the chapter
"Making it fast": both import these helpers, so the table a reader reproduces with
``make bench`` and the figures in the book are computed the same way.

Timings are the minimum over repeats. On a shared machine the other processes only ever
add time, so the minimum is the best estimate of what the code itself costs.
"""

from __future__ import annotations

import os
import platform
import time
import tracemalloc
import warnings

import numpy as np

from cnn.conv import col2im, conv2d_forward, im2col, pad


def conv2d_flops(x_shape, w_shape, out_shape):
    """Floating-point operations of a convolution forward pass (multiply-add: 2).

    Parameters
    ----------
    x_shape : tuple
        ``(N, C, H, W)`` of the input.
    w_shape : tuple
        ``(F, C, KH, KW)`` of the filters.
    out_shape : tuple
        ``(N, F, H_out, W_out)`` of the output.

    Returns
    -------
    int
        ``2 * N * F * H_out * W_out * C * KH * KW``, the cost of the matrix product
        ``(F, C*KH*KW) @ (C*KH*KW, N*H_out*W_out)``. The backward pass does two products
        of the same size (one for ``dw``, one for ``dx``), so a training step costs
        three times this.
    """
    N, F, H_out, W_out = out_shape
    _, C, KH, KW = w_shape
    if x_shape[0] != N or x_shape[1] != C:
        raise ValueError(
            f"x_shape {tuple(x_shape)} does not match w_shape {tuple(w_shape)} "
            f"and out_shape {tuple(out_shape)}"
        )
    return 2 * N * F * H_out * W_out * C * KH * KW


def time_min(fn, repeat=5, number=1, clock=time.perf_counter):
    """Seconds per call of ``fn()``: the best of ``repeat`` runs of ``number`` calls.

    One untimed call first warms caches and lets the allocator settle. ``clock`` is the
    wall clock by default; ``time.thread_time`` counts only the calling thread's CPU
    time, which leaves out the time spent waiting for a core on a busy machine (valid
    for work that runs in the calling thread, such as one BLAS thread).
    """
    if repeat < 1 or number < 1:
        raise ValueError(
            f"repeat and number must be >= 1, got repeat={repeat}, number={number}"
        )
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = clock()
        for _ in range(number):
            fn()
        best = min(best, (clock() - start) / number)
    return best


def conv2d_gemms(x_shape, w_shape, out_shape, dtype=np.float32, rng=None):
    """The three plain matrix products of a convolution's training step.

    With ``K = C*KH*KW`` and ``P = N*H_out*W_out`` they are the forward product
    ``(F, K) @ (K, P)``, the weight gradient ``(F, P) @ (P, K)`` and the input-gradient
    columns ``(K, F) @ (F, P)``, on contiguous random matrices. Their time is what the
    arithmetic costs when nothing else has to happen: the ceiling NumPy's BLAS sets for
    a convolution.

    Returns
    -------
    callable
        A function of no arguments that runs the three products once.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    N, F, H_out, W_out = out_shape
    _, C, KH, KW = w_shape
    K, P = C * KH * KW, N * H_out * W_out
    w_mat = rng.standard_normal((F, K)).astype(dtype)
    cols = rng.standard_normal((K, P)).astype(dtype)
    dout_mat = rng.standard_normal((F, P)).astype(dtype)
    cols_t = np.ascontiguousarray(cols.T)
    w_t = np.ascontiguousarray(w_mat.T)

    def run():
        return w_mat @ cols, dout_mat @ cols_t, w_t @ dout_mat

    return run


def _im2col_steps(x, w, b, stride, padding):
    """The calls of one im2col/col2im training step, grouped by phase."""
    out, cache = conv2d_forward(x, w, b, stride=stride, padding=padding)
    # The forward pass has cast w to the dtype of x, and normalised stride and padding
    # to pairs.
    w, b, stride, padding = (
        cache.w,
        b.astype(x.dtype, copy=False),
        cache.stride,
        cache.padding,
    )
    N, F = out.shape[:2]
    dout = (
        np.random.default_rng(0)
        .standard_normal(out.shape)
        .astype(x.dtype)
        .reshape(N, F, -1)
    )
    x_padded = pad(x, padding)
    cols = im2col(x_padded, w.shape[2:], stride)
    w_mat = w.reshape(F, -1)
    dcols = w_mat.T @ dout
    out_mat = w_mat @ cols
    dx_padded = col2im(dcols, x_padded.shape, w.shape[2:], stride)
    (PH, PW), (H, W) = padding, x.shape[2:]
    return {
        "patch copy": [
            lambda: pad(x, padding),
            lambda: im2col(x_padded, w.shape[2:], stride),
        ],
        "GEMMs": [
            lambda: w_mat @ cols,
            lambda: (cols @ dout.transpose(0, 2, 1)).sum(axis=0),
            lambda: w_mat.T @ dout,
        ],
        "col2im": [lambda: col2im(dcols, x_padded.shape, w.shape[2:], stride)],
        "other": [
            lambda: np.add(out_mat, b[:, None], out=out_mat),
            lambda: dout.sum(axis=(0, 2)),
            lambda: dx_padded[:, :, PH : PH + H, PW : PW + W].copy(),
        ],
    }


def conv2d_phases(x, w, b, stride=1, padding=0, repeat=5):
    """Seconds spent in each phase of one im2col/col2im training step.

    The step is split into the calls it is made of, each timed on its own with
    ``time_min``:

    - ``"patch copy"``: ``pad`` and ``im2col``, the copies that lay the windows out as
      columns;
    - ``"GEMMs"``: the three batched products ``w @ cols`` (forward),
      ``cols @ dout.T`` summed over the batch (``dw``) and ``w.T @ dout`` (``dcols``);
    - ``"col2im"``: the scatter-add of ``dcols`` back to pixels;
    - ``"other"``: the bias add, ``db`` and cropping the padding off ``dx``.

    Parameters
    ----------
    x : numpy.ndarray
        Input, shape ``(N, C, H, W)``.
    w : numpy.ndarray
        Kernels, shape ``(F, C, KH, KW)``.
    b : numpy.ndarray
        Biases, shape ``(F,)``.
    stride, padding : int or tuple of two ints
        As for ``conv2d_forward``.
    repeat : int
        Timing repeats per call (the minimum is kept).

    Returns
    -------
    dict
        Phase name to seconds, in the order above.
    """
    steps = _im2col_steps(x, w, b, stride, padding)
    return {phase: sum(time_min(fn, repeat=repeat) for fn in calls)
            for phase, calls in steps.items()}


def conv2d_im2col_step(x, w, b, stride=1, padding=0, repeat=5):
    """Seconds of one im2col/col2im training step: ``conv2d_phases``' calls in a row.

    This is the convolution with one product for ``dcols`` followed by ``col2im`` for
    every channel count, without argument checks; ``conv2d_backward_fast`` does the same
    below ``PER_OFFSET_MIN_CHANNELS`` input channels. Parameters as for
    ``conv2d_phases``.
    """
    calls = [
        fn for fns in _im2col_steps(x, w, b, stride, padding).values() for fn in fns
    ]
    return time_min(lambda: [fn() for fn in calls], repeat=repeat)


def gemm_gflops(size=512, dtype=np.float32, repeat=20):
    """Measured GFLOP/s of a ``(size, size) @ (size, size)`` product here.

    Many repeats, because a product of small matrices takes microseconds and a burst of
    other work on the machine can slow several consecutive ones.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    seconds = time_min(lambda: a @ b, repeat=repeat)
    return 2 * size**3 / seconds / 1e9


def network_phases(model, x, y, optimizer, repeat=5):
    """Seconds of each part of a training step of ``model``, timed inside whole steps.

    Runs ``repeat + 1`` training steps as ``Sequential.fit`` does (forward, softmax
    cross-entropy, backward, ``optimizer.step``), timing every layer's ``forward`` and
    ``backward``, the loss and the optimiser's update. The first step is not counted (it
    allocates the optimiser's state and the layers' buffers); each part keeps its
    minimum over the others.

    Parameters
    ----------
    model : cnn.model.Sequential
    x : numpy.ndarray
        One batch, shape ``(N, ...)``.
    y : numpy.ndarray
        Its integer labels, shape ``(N,)``.
    optimizer : object
        With ``step(params, grads)``; its state and the parameters change.
    repeat : int
        Steps timed.

    Returns
    -------
    dict
        ``"layers"``: a list of ``(name, forward seconds, backward seconds)``, one per
        layer in order, named ``"<index> <class>"``; ``"loss"`` and ``"optimizer"``:
        seconds.
    """
    from cnn.losses import softmax_cross_entropy

    n = len(model.layers)
    best = np.full((n + 1, 2), np.inf)
    clock = time.perf_counter
    for step in range(repeat + 1):
        seconds = np.zeros((n + 1, 2))
        out = x
        for i, layer in enumerate(model.layers):
            start = clock()
            out = layer.forward(out)
            seconds[i, 0] = clock() - start
        start = clock()
        _, dout = softmax_cross_entropy(out, y)
        seconds[n, 0] = clock() - start
        for i in reversed(range(n)):
            start = clock()
            dout = model.layers[i].backward(dout)
            seconds[i, 1] = clock() - start
        start = clock()
        optimizer.step(model.parameters(), model.gradients())
        seconds[n, 1] = clock() - start
        if step > 0:
            best = np.minimum(best, seconds)
    names = [f"{i} {type(layer).__name__}" for i, layer in enumerate(model.layers)]
    return {
        "layers": [(name, float(f), float(b)) for name, (f, b) in zip(names, best)],
        "loss": float(best[n, 0]),
        "optimizer": float(best[n, 1]),
    }


def peak_memory(fn):
    """Peak bytes allocated while ``fn()`` runs, as seen by ``tracemalloc``.

    NumPy reports its array buffers to ``tracemalloc``, so this counts every temporary
    array of the call (inputs that already exist are not counted).
    """
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return peak - base


def format_table(rows, keys=None):
    """The benchmark table as text, a line per row of results.

    Parameters
    ----------
    rows : list of dict
        Rows as stored under ``"rows"`` in ``benchmarks/results.json``: times in seconds
        under keys ending in ``_s``, and ``layer``, ``threads``, ``gflops``,
        ``step_over_gemm``, ``over_torch``, ``gemm_over_torch``, ``peak_mib``. A
        missing key prints as ``-``.
    keys : list of str, optional
        The columns to show, by key, in the table's order (a narrower table, e.g. for
        a page); by default all of them.

    Returns
    -------
    str
        The table, times in milliseconds, columns aligned.
    """
    columns = [
        ("layer", "layer", "{}"),
        ("threads", "thr", "{}"),
        ("naive_s", "naive ms", "{:.0f}"),
        ("fast_s", "fast ms", "{:.2f}"),
        ("fwd_s", "fwd ms", "{:.2f}"),
        ("bwd_s", "bwd ms", "{:.2f}"),
        ("gemm_s", "GEMM ms", "{:.2f}"),
        ("gflops", "GFLOP/s", "{:.0f}"),
        ("step_over_gemm", "step/GEMM", "{:.2f}"),
        ("torch_s", "torch ms", "{:.2f}"),
        ("over_torch", "ours/torch", "{:.2f}"),
        ("gemm_over_torch", "GEMM/torch", "{:.2f}"),
        ("peak_mib", "peak MiB", "{:.1f}"),
    ]
    if keys is not None:
        unknown = set(keys) - {key for key, _, _ in columns}
        if unknown:
            raise ValueError(f"keys must be column keys, got unknown {sorted(unknown)}")
        columns = [column for column in columns if column[0] in keys]
    cells = [[title for _, title, _ in columns]]
    for row in rows:
        line = []
        for key, _, fmt in columns:
            value = row.get(key)
            if value is not None and key.endswith("_s"):
                value *= 1e3
            line.append("-" if value is None else fmt.format(value))
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(wd) for c, wd in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * wd for wd in widths))
    return "\n".join(lines)


def format_network_table(rows):
    """The table of whole training steps as text, a line per network and thread count.

    Parameters
    ----------
    rows : list of dict
        As stored under ``"networks"`` in ``benchmarks/results.json``: ``network``,
        ``threads``, ``step_s`` and, when PyTorch was measured, ``torch_s`` and
        ``over_torch``.

    Returns
    -------
    str
        Times in milliseconds; ``-`` where PyTorch was not measured.
    """
    header = ["network".ljust(14), "thr", "  step ms", " torch ms", "ours/torch"]
    lines = [" ".join(header)]
    for row in rows:
        torch_ms = f"{1e3 * row['torch_s']:9.2f}" if "torch_s" in row else f"{'-':>9}"
        ratio = f"{row['over_torch']:10.2f}" if "over_torch" in row else f"{'-':>10}"
        lines.append(f"{row['network']:14} {row['threads']:3d} "
                     f"{1e3 * row['step_s']:9.2f} {torch_ms} {ratio}")
    return "\n".join(lines)


def machine_info():
    """CPU, Python, NumPy and BLAS (library, kernel, threads) of the running process.

    The BLAS details come from ``threadpoolctl`` when it is installed (the ``bench``
    extra); without it only the NumPy version and the CPU are reported.
    """
    info = {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    # Set on some processors to force an OpenBLAS kernel; blas_kernel below is the one
    # that runs.
    if os.environ.get("OPENBLAS_CORETYPE"):
        info["openblas_coretype"] = os.environ["OPENBLAS_CORETYPE"]
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return info
    blas = [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
    if blas:
        lib = blas[0]
        info.update(
            blas=lib.get("internal_api"),
            blas_version=lib.get("version"),
            blas_kernel=lib.get("architecture"),
            blas_threads=lib.get("num_threads"),
            blas_threading=lib.get("threading_layer"),
        )
    return info


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def __getattr__(name):
    # Moved after 0.2.0: the command line and the chapters limit threads without
    # importing the probes; kept here for one release.
    if name == "blas_threads":
        warnings.warn("cnn.fast.profiling.blas_threads is now cnn.fast.threads."
                      "blas_threads", DeprecationWarning, stacklevel=2)
        from cnn.fast.threads import blas_threads

        return blas_threads
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
