"""Benchmark of the convolution and pooling layers against the BLAS ceiling and PyTorch.

Run with ``make bench`` (or ``python benchmarks/bench.py --json out.json``). For each reference
layer it prints, at 1 and 2 BLAS threads: the naive loop version's time (extrapolated from a
small batch, since the full batch would take minutes), the fast forward+backward time, the time of
the three plain matrix products (GEMMs) that do the same arithmetic, measured in the same run,
the GFLOP/s that makes, the step/GEMM ratio, PyTorch's time and our/PyTorch ratio when ``torch``
is importable (it is never a dependency of the package), and the peak memory of one training step.
The machine, NumPy version and BLAS library and kernel are printed with the table and stored in
the JSON.

Timings are minima over repeats (``cnn.fast.profiling.time_min``) and over rounds that go through all
layers in turn: on a shared machine other work only adds time, and a busy moment spoils at most
one round. Targets (issue 7; a benchmark, never a timed test): step/GEMM <= 1.35 on L2 and L4 at
1 thread; L1, L3 and both poolings no slower than PyTorch at the same thread count; the digits CNN
reaches 98 % test accuracy in <= 20 s of training.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from cnn.conv import conv2d_backward_naive, conv2d_forward_naive
from cnn.fast.conv import conv2d_backward_fast, conv2d_forward_fast
from cnn.fast.pool import maxpool2d_backward_fast, maxpool2d_forward_fast
from cnn.pool import maxpool2d_backward_naive, maxpool2d_forward_naive
from cnn.fast.profiling import (
    conv2d_flops,
    conv2d_gemms,
    format_table,
    machine_info,
    peak_memory,
    time_min,
)

try:
    import torch
except ImportError:
    torch = None

# name: (N, C, H, W, filters, kernel, stride, padding)
CONV_LAYERS = {
    "L1": (64, 1, 28, 28, 32, 3, 1, 1),
    "L2": (64, 32, 14, 14, 64, 3, 1, 1),
    "L3": (64, 1, 50, 50, 128, 3, 1, 0),
    "L4": (32, 64, 32, 32, 64, 3, 2, 1),
}
# name: (input shape, what it is); max-pool 2x2 with stride 2 on the outputs of L1 and L3
POOL_LAYERS = {
    "P1": ((64, 32, 28, 28), "maxpool 2x2/2 on L1's output"),
    "P3": ((64, 128, 48, 48), "maxpool 2x2/2 on L3's output"),
}
NAIVE_BATCH = 1
"""The naive versions run on this many samples; their time is scaled to the full batch."""


def conv_case(spec, rng):
    """Random float32 input, filters, bias and upstream gradient of one reference layer."""
    N, C, H, W, F, k, stride, padding = spec
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    w = rng.standard_normal((F, C, k, k), dtype=np.float32) * np.float32(np.sqrt(2 / (C * k * k)))
    b = rng.standard_normal(F, dtype=np.float32)
    out, _ = conv2d_forward_fast(x, w, b, stride=stride, padding=padding)
    dout = rng.standard_normal(out.shape, dtype=np.float32)
    return x, w, b, dout


def conv_step(forward, backward, x, w, b, dout, stride, padding):
    out, cache = forward(x, w, b, stride=stride, padding=padding)
    return out, backward(dout, cache)


def pool_step(forward, backward, x, dout):
    out, cache = forward(x, kernel_size=2, stride=2)
    return out, backward(dout, cache)


def naive_seconds(step, n_full):
    """Time of one naive step on ``NAIVE_BATCH`` samples, scaled linearly to ``n_full``."""
    start = time.perf_counter()
    step()
    return (time.perf_counter() - start) * n_full / NAIVE_BATCH


class Case:
    """One reference layer: its fixed row fields and the steps to time.

    ``make_timers()`` returns a dict from a row key (``"fast_s"``, ``"gemm_s"``, ...) to a
    function of no arguments that runs once what that key measures. It is called once per round,
    so that the GEMMs' matrices are new arrays in every round, as the convolution's are in every
    call: how fast a product runs depends a little on where its arrays lie in memory.
    ``torch_step`` does PyTorch's forward and backward pass of the same layer (``None`` without
    PyTorch).
    """

    def __init__(self, row, make_timers, torch_step):
        self.row, self.make_timers, self.torch_step = row, make_timers, torch_step


def conv_case_timers(name, spec, naive, rng):
    N, C, H, W, F, k, stride, padding = spec
    x, w, b, dout = conv_case(spec, rng)
    _, cache = conv2d_forward_fast(x, w, b, stride=stride, padding=padding)
    row = {
        "layer": name,
        "shape": f"N={N} C={C} {H}x{W} F={F} {k}x{k} s={stride} p={padding}",
        "step_gflop": 3 * conv2d_flops(x.shape, w.shape, dout.shape) / 1e9,
    }

    def fast():
        return conv_step(conv2d_forward_fast, conv2d_backward_fast, x, w, b, dout, stride, padding)

    with threadpool_limits(1):
        row["peak_mib"] = peak_memory(fast) / 2**20
        if naive:
            row["naive_s"] = naive_seconds(
                lambda: conv_step(conv2d_forward_naive, conv2d_backward_naive,
                                  x[:NAIVE_BATCH], w, b, dout[:NAIVE_BATCH], stride, padding),
                N,
            )
    def make_timers():
        return {
            "gemm_s": conv2d_gemms(x.shape, w.shape, dout.shape, rng=rng),
            "fwd_s": lambda: conv2d_forward_fast(x, w, b, stride=stride, padding=padding),
            "bwd_s": lambda: conv2d_backward_fast(dout, cache),
            "fast_s": fast,
        }

    torch_step = None
    if torch is not None:
        xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
        dt = torch.from_numpy(dout)

        def torch_step():
            torch.nn.functional.conv2d(xt, wt, bt, stride=stride, padding=padding).backward(dt)

    return Case(row, make_timers, torch_step)


def pool_case_timers(name, shape, what, naive, rng):
    x = rng.standard_normal(shape, dtype=np.float32)
    out, _ = maxpool2d_forward_fast(x, kernel_size=2, stride=2)
    dout = rng.standard_normal(out.shape, dtype=np.float32)

    def fast():
        return pool_step(maxpool2d_forward_fast, maxpool2d_backward_fast, x, dout)

    row = {"layer": name, "shape": f"{what}: {shape}", "peak_mib": peak_memory(fast) / 2**20}
    if naive:
        row["naive_s"] = naive_seconds(
            lambda: pool_step(maxpool2d_forward_naive, maxpool2d_backward_naive,
                              x[:NAIVE_BATCH], dout[:NAIVE_BATCH]),
            shape[0],
        )
    torch_step = None
    if torch is not None:
        xt, dt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dout)

        def torch_step():
            torch.nn.functional.max_pool2d(xt, 2, 2).backward(dt)

    return Case(row, lambda: {"fast_s": fast}, torch_step)


def measure(cases, threads_list, repeat, rounds):
    """Rows, one per case and thread count, each time the minimum over all rounds.

    A round times every case at every thread count, NumPy first and PyTorch after it, so the
    measurements of one row are spread over the whole run and a busy moment on a shared machine
    spoils at most one round. Derived columns (GFLOP/s and the ratios) come from the minima.
    """
    best = {}
    for _ in range(rounds):
        timers = [case.make_timers() for case in cases]
        for threads in threads_list:
            with threadpool_limits(threads):
                for case, case_timers in zip(cases, timers):
                    slot = best.setdefault((case.row["layer"], threads), {})
                    for key, fn in case_timers.items():
                        slot[key] = min(slot.get(key, np.inf), time_min(fn, repeat=repeat))
        for threads in threads_list:
            for case in (c for c in cases if c.torch_step is not None):
                torch.set_num_threads(threads)
                slot = best[(case.row["layer"], threads)]
                slot["torch_s"] = min(slot.get("torch_s", np.inf),
                                      time_min(case.torch_step, repeat=repeat))
        # PyTorch's OpenMP threads spin for a while after their last task; let them go to
        # sleep before OpenBLAS threads are timed again on the same two cores.
        time.sleep(1.0 if torch is not None else 0.0)
    rows = []
    for case in cases:
        for threads in threads_list:
            row = dict(case.row, threads=threads, **best[(case.row["layer"], threads)])
            if "gemm_s" in row:
                row["gflops"] = row["step_gflop"] / row["fast_s"]
                row["step_over_gemm"] = row["fast_s"] / row["gemm_s"]
            if "torch_s" in row:
                row["over_torch"] = row["fast_s"] / row["torch_s"]
            rows.append(row)
    return rows


def narrow_digits_layers(rng):
    """The network of book/cnn.md (cnn.digits) with 8 filters instead of its 16."""
    from cnn.digits import build_digits_cnn

    return build_digits_cnn(rng=rng, filters=8).layers


def wider_digits_layers(rng):
    """Two convolutions: the configuration that reaches the 98 % target."""
    from cnn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU

    return [Conv2D(1, 16, 3, padding=1, rng=rng), ReLU(),
            Conv2D(16, 32, 3, padding=1, rng=rng), ReLU(), MaxPool2D(2), Flatten(),
            Dense(32 * 4 * 4, 10, rng=rng)]


DIGITS_MODELS = {
    "conv 8, pool, dense": narrow_digits_layers,
    "conv 16, conv 32, pool, dense": wider_digits_layers,
}


def bench_digits(threads, epochs=15, batch_size=32, lr=2e-3, seed=0):
    """Training time and test accuracy of the digits CNNs (target: >= 98 % in <= 20 s)."""
    from cnn.data import load_digits
    from cnn.model import Sequential
    from cnn.optim import Adam

    x_train, y_train, x_test, y_test = load_digits(test_size=0.25, seed=0)
    rows = []
    for name, make_layers in DIGITS_MODELS.items():
        model = Sequential(make_layers(np.random.default_rng(seed)))
        with threadpool_limits(threads):
            start = time.perf_counter()
            model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size,
                      optimizer=Adam(lr=lr), seed=seed)
            seconds = time.perf_counter() - start
        rows.append({"model": name, "threads": threads, "epochs": epochs,
                     "batch_size": batch_size, "optimizer": f"Adam(lr={lr})", "seed": seed,
                     "train_s": seconds, "test_accuracy": float(model.evaluate(x_test, y_test)[1])})
    return rows


# -- Deeper networks (issue 13): batch norm, dropout, transposed convolution -----------------
# Each row times one layer's forward and backward pass in float32, like the rows above, against
# the same operation in PyTorch when it is importable. Target: ours/torch <= 1.5 at 1 thread.

# name: (kind, input shape, arguments, what it is)
DEEPER_LAYERS = {
    "BN1": ("batchnorm", (64, 32, 28, 28), {}, "batch norm, training mode, on L1's output"),
    "BN2": ("batchnorm", (256, 512), {}, "batch norm of dense activations (N=256, C=512)"),
    "DO1": ("dropout", (64, 32, 28, 28), {"p": 0.5}, "dropout p=0.5 on L1's output"),
    "DO2": ("dropout", (256, 512), {"p": 0.5}, "dropout p=0.5 on dense activations"),
    "CT1": ("conv_transpose", (64, 64, 14, 14), {"out": 32, "k": 4, "stride": 2, "padding": 1},
            "transposed conv 64->32, 4x4, stride 2, padding 1: 14x14 -> 28x28"),
    "CT2": ("conv_transpose", (64, 32, 14, 14), {"out": 32, "k": 3, "stride": 1, "padding": 1},
            "transposed conv 32->32, 3x3, stride 1, padding 1: 14x14 -> 14x14"),
}


def deeper_case_timers(name, spec, rng):
    """A ``Case`` for one row of ``DEEPER_LAYERS``: our forward+backward and PyTorch's."""
    from cnn.fast.conv_transpose import (
        conv_transpose2d_backward_fast,
        conv_transpose2d_forward_fast,
    )
    from cnn.norm import batchnorm_backward, batchnorm_forward
    from cnn.regularization import dropout_backward, dropout_forward

    kind, shape, args, what = spec
    x = rng.standard_normal(shape, dtype=np.float32)
    if kind == "batchnorm":
        C = shape[1]
        gamma = rng.standard_normal(C, dtype=np.float32)
        beta = rng.standard_normal(C, dtype=np.float32)
        dout = rng.standard_normal(shape, dtype=np.float32)

        def ours():
            out, cache = batchnorm_forward(x, gamma, beta)
            return out, batchnorm_backward(dout, cache)

        def theirs_builder():
            xt, gt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, gamma, beta))
            dt = torch.from_numpy(dout)
            return lambda: torch.nn.functional.batch_norm(
                xt, None, None, gt, bt, training=True).backward(dt)
    elif kind == "dropout":
        dout = rng.standard_normal(shape, dtype=np.float32)
        drop_rng = np.random.default_rng(1)

        def ours():
            out, cache = dropout_forward(x, args["p"], drop_rng)
            return out, dropout_backward(dout, cache)

        def theirs_builder():
            xt, dt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dout)
            return lambda: torch.nn.functional.dropout(xt, args["p"], training=True).backward(dt)
    else:
        C_in, (k, stride, padding) = shape[1], (args["k"], args["stride"], args["padding"])
        w = rng.standard_normal((C_in, args["out"], k, k), dtype=np.float32)
        w *= np.float32(np.sqrt(2 / (C_in * k * k / stride**2)))
        b = rng.standard_normal(args["out"], dtype=np.float32)
        out, _ = conv_transpose2d_forward_fast(x, w, b, stride, padding)
        dout = rng.standard_normal(out.shape, dtype=np.float32)

        def ours():
            out, cache = conv_transpose2d_forward_fast(x, w, b, stride, padding)
            return out, conv_transpose2d_backward_fast(dout, cache)

        def theirs_builder():
            xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
            dt = torch.from_numpy(dout)
            return lambda: torch.nn.functional.conv_transpose2d(
                xt, wt, bt, stride=stride, padding=padding).backward(dt)

    with threadpool_limits(1):
        row = {"layer": name, "shape": f"{what}: {shape}", "peak_mib": peak_memory(ours) / 2**20}
    make_timers = lambda: {"fast_s": ours}  # noqa: E731
    if kind == "conv_transpose":
        # The adjoint convolution: input of the output's shape, filters (C_in, C_out, k, k), output
        # of x's shape. Its three GEMMs are the arithmetic of this layer's step as well.
        row["step_gflop"] = 3 * conv2d_flops(dout.shape, w.shape, x.shape) / 1e9
        make_timers = lambda: {"fast_s": ours,  # noqa: E731
                               "gemm_s": conv2d_gemms(dout.shape, w.shape, x.shape, rng=rng)}
    return Case(row, make_timers, None if torch is None else theirs_builder())


def bench_deeper(threads_list, repeat, rounds, rng):
    """Rows for batch norm, dropout and transposed convolution (forward + backward)."""
    cases = [deeper_case_timers(name, spec, rng) for name, spec in DEEPER_LAYERS.items()]
    return measure(cases, threads_list, repeat, rounds)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--repeat", type=int, default=5, help="timing repeats per round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds over all layers; the minimum over all of them is kept")
    parser.add_argument("--threads", default="1,2", help="comma-separated BLAS thread counts")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive versions")
    parser.add_argument("--no-digits", action="store_true", help="skip training the digits CNNs")
    parser.add_argument("--no-deeper", action="store_true",
                        help="skip the batch norm, dropout and transposed convolution rows")
    parser.add_argument("--layers", default=",".join([*CONV_LAYERS, *POOL_LAYERS]),
                        help="comma-separated subset of " + ",".join([*CONV_LAYERS, *POOL_LAYERS]))
    args = parser.parse_args(argv)
    threads_list = [int(t) for t in args.threads.split(",")]
    names = args.layers.split(",")
    unknown = [n for n in names if n not in CONV_LAYERS and n not in POOL_LAYERS]
    if unknown:
        parser.error(f"unknown layers {unknown}")

    rng = np.random.default_rng(0)
    info = machine_info()
    info["torch"] = None if torch is None else torch.__version__
    cases = [conv_case_timers(n, CONV_LAYERS[n], not args.no_naive, rng) if n in CONV_LAYERS
             else pool_case_timers(n, *POOL_LAYERS[n], not args.no_naive, rng) for n in names]
    load_before = os.getloadavg()[0]
    rows = measure(cases, threads_list, args.repeat, args.rounds)
    # Other programs on the machine inflate timings, most of all with 2 threads on 2 cores.
    info["load_average_1min"] = {"before": load_before, "after": os.getloadavg()[0]}

    print(f"CPU: {info['cpu']} ({info['logical_cpus']} logical CPUs)")
    coretype = info.get("openblas_coretype")
    print(f"Python {info['python']}, NumPy {info['numpy']}, "
          f"BLAS {info.get('blas')} {info.get('blas_version')} kernel {info.get('blas_kernel')} "
          f"({info.get('blas_threading')}"
          f"{f', OPENBLAS_CORETYPE={coretype}' if coretype else ''}), "
          f"PyTorch {info['torch'] or 'not installed'}")
    print(f"load average (1 min) {info['load_average_1min']['before']:.2f} before, "
          f"{info['load_average_1min']['after']:.2f} after the timings")
    print(f"float32, NCHW, forward+backward; min of {args.repeat} repeats x {args.rounds} rounds; "
          f"threads = BLAS (and PyTorch) threads; naive time extrapolated from "
          f"{NAIVE_BATCH} sample(s)")
    for name, shape in dict((r["layer"], r["shape"]) for r in rows).items():
        print(f"  {name}: {shape}")
    print(format_table(rows))
    deeper = [] if args.no_deeper else bench_deeper(threads_list, args.repeat, args.rounds, rng)
    if deeper:
        print("Deeper networks: forward+backward of one layer, float32 (ours/torch target <= 1.5)")
        for name, shape in dict((r["layer"], r["shape"]) for r in deeper).items():
            print(f"  {name}: {shape}")
        print(format_table(deeper))
    digits = [] if args.no_digits else bench_digits(threads_list[0])
    for row in digits:
        print(f"digits CNN ({row['model']}): {row['epochs']} epochs, batch {row['batch_size']}, "
              f"{row['optimizer']}, {row['threads']} thread(s): trained in {row['train_s']:.1f} s, "
              f"test accuracy {row['test_accuracy']:.4f}")
    if args.json:
        result = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(["python", "benchmarks/bench.py", *(argv or sys.argv[1:])]),
            "machine": info,
            "repeat": args.repeat,
            "rounds": args.rounds,
            "naive_batch": NAIVE_BATCH,
            "rows": rows,
            "digits": digits,
            "deeper": deeper,
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
