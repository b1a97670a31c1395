"""Benchmark of the convolution and pooling layers against the BLAS ceiling and PyTorch.

Run with ``make bench`` (or ``python benchmarks/bench.py --json out.json``). For each reference
layer it prints, at 1 and 2 BLAS threads: the naive loop version's time (extrapolated from a
small batch, since the full batch would take minutes), the fast forward+backward time, the time of
the three plain matrix products (GEMMs) that do the same arithmetic, measured in the same run,
the GFLOP/s that makes, the step/GEMM ratio, PyTorch's time and our/PyTorch ratio when ``torch``
is importable (it is never a dependency of the package), and the peak memory of one training step.
The machine, NumPy version and BLAS library and kernel are printed with the table and stored in
the JSON.

A second table times whole training steps (forward, loss, backward, optimiser update) of the
networks in ``NETWORKS`` against the same network in PyTorch (same weights, same batch): the
README's digits CNN, the case-study CNN and the original network at full size (38 million
parameters). For the full-size network it also reports the time of each of the first three steps of
a fresh model and optimiser, the peak memory of training it for five steps (resident memory of a
child process, for both libraries), the time of each part of a step (``network_phases``), and the
memory speed of the optimiser updates next to ``numpy.copyto`` of the same number of bytes.

Timings are minima over repeats (``cnn.fast.profiling.time_min``) and over rounds that go through all
layers in turn: on a shared machine other work only adds time, and a busy moment spoils at most
one round. Targets (a benchmark, never a timed test). Issue 7: L1, L3 and both poolings no slower
than PyTorch at the same thread count; the digits CNN reaches 98 % test accuracy in <= 20 s of
training. Issue 12: every network's step no slower than PyTorch's at 1 thread; the first three steps
of the full-size network each within 1.5 x its steady step; its peak training memory at most 1.3 x
PyTorch's; no convolution's step/GEMM more than 10 % above the committed ``results.json``.
Issue 24: the modern rows (dilated, grouped, depthwise-separable convolution, GroupNorm, a
residual block; ``MODERN_LAYERS``) at most 1.5 x PyTorch's time at 1 thread; their parts
(``MODERN_PARTS``) and the GEMM floor (``GEMM/torch``) show why a row misses. With
``--cpu-clock`` the 1-thread rows time the calling thread's CPU time, which waiting for a core
on a busy machine does not inflate (``results.json`` keeps such a run under ``modern``).
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
    format_network_table,
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
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.json")
"""The committed run: the regression guard compares this run's step/GEMM ratios with it."""
STEP_OVER_GEMM_SLACK = 1.10
"""A convolution's step/GEMM may grow by at most this factor over the committed run."""


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


def measure(cases, threads_list, repeat, rounds, cpu_clock=False):
    """Rows, one per case and thread count, each time the minimum over all rounds.

    With ``cpu_clock`` the rows at 1 thread time the CPU time of the calling thread
    (``time.thread_time``), where both NumPy's BLAS and PyTorch compute at 1 thread: on
    a machine shared with other programs it leaves out the waits for a core.

    A round times every case at every thread count, NumPy first and PyTorch after it, so the
    measurements of one row are spread over the whole run and a busy moment on a shared machine
    spoils at most one round. Derived columns (GFLOP/s and the ratios) come from the minima.
    """
    best = {}

    def clock(threads):
        return time.thread_time if cpu_clock and threads == 1 else time.perf_counter

    for _ in range(rounds):
        timers = [case.make_timers() for case in cases]
        for threads in threads_list:
            with threadpool_limits(threads):
                for case, case_timers in zip(cases, timers):
                    slot = best.setdefault((case.row["layer"], threads), {})
                    for key, fn in case_timers.items():
                        slot[key] = min(slot.get(key, np.inf),
                                        time_min(fn, repeat=repeat, clock=clock(threads)))
        for threads in threads_list:
            for case in (c for c in cases if c.torch_step is not None):
                torch.set_num_threads(threads)
                slot = best[(case.row["layer"], threads)]
                slot["torch_s"] = min(slot.get("torch_s", np.inf),
                                      time_min(case.torch_step, repeat=repeat,
                                               clock=clock(threads)))
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
            if "torch_s" in row and "gemm_s" in row:
                row["gemm_over_torch"] = row["gemm_s"] / row["torch_s"]
            rows.append(row)
    return rows


def narrow_digits_layers(rng):
    """The network of book/cnn.md (cnn.digits) with 8 filters instead of its 16.

    Built, as the chapter builds it, from the plain layers of ``cnn.layers``.
    """
    from cnn.digits import build_digits_cnn

    return build_digits_cnn(rng=rng, filters=8).layers


def wider_digits_layers(rng):
    """Two convolutions: the configuration that reaches the 98 % target (tuned layers)."""
    from cnn.fast.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU

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
    from cnn.fast.optim import Adam
    from cnn.model import Sequential

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


def readme_digits_cnn(rng):
    """(a) The digits CNN of the README, on 8 x 8 images, of the tuned layers."""
    from cnn.fast.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
    from cnn.model import Sequential

    return Sequential([Conv2D(1, 32, 3, padding=1, rng=rng), ReLU(), MaxPool2D(2), Flatten(),
                       Dense(32 * 4 * 4, 10, rng=rng)])


def case_study_cnn(rng):
    """(b) The case-study CNN, on 32 x 32 patches."""
    from cnn.casestudy.networks import build_cnn

    return build_cnn(rng=rng)


def original_network(rng):
    """(c) The original network at full size, on 50 x 50 patches."""
    from cnn.casestudy.networks import build_original

    return build_original(rng=rng)


# name: (builder(rng) -> Sequential, sample shape, classes). Batch 32, float32, Adam(1e-3).
NETWORKS = {
    "a digits": (readme_digits_cnn, (1, 8, 8), 10),
    "b case study": (case_study_cnn, (1, 32, 32), 3),
    "c original": (original_network, (1, 50, 50), 3),
}
# (d) The deeper network of the issue "Deeper networks": when cnn.casestudy.networks has a
# builder for it, add it here as "d deeper": (builder, sample shape, classes); torch_model
# translates any stack of the layers it knows, and a new layer type needs a line there.
NETWORK_BATCH = 32
FULL_SIZE = "c original"
"""The network whose first steps, peak memory, phases and optimiser speed are measured."""


def torch_model(model):
    """The same network in PyTorch, with copies of ``model``'s weights."""
    from cnn.layers import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU

    nn, modules = torch.nn, []
    for layer in model.layers:
        if isinstance(layer, Conv2D):
            w, b = layer.params["w"], layer.params["b"]
            module = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:], stride=layer.stride,
                               padding=layer.padding)
            module.weight.data, module.bias.data = torch.tensor(w), torch.tensor(b)
        elif isinstance(layer, Dense):
            w, b = layer.params["w"], layer.params["b"]
            module = nn.Linear(*w.shape)
            module.weight.data, module.bias.data = torch.tensor(w.T), torch.tensor(b)
        elif isinstance(layer, (MaxPool2D, AvgPool2D)):
            pool = nn.MaxPool2d if isinstance(layer, MaxPool2D) else nn.AvgPool2d
            module = pool(layer.kernel_size, layer.stride)
        elif isinstance(layer, ReLU):
            module = nn.ReLU()
        elif isinstance(layer, Flatten):
            module = nn.Flatten()
        else:
            raise TypeError(f"no PyTorch translation for {layer!r}")
        modules.append(module)
    return nn.Sequential(*modules)


def network_batch(shape, classes, rng):
    x = rng.standard_normal((NETWORK_BATCH, *shape), dtype=np.float32)
    return x, rng.integers(0, classes, NETWORK_BATCH)


def cnn_trainer(model, x, y):
    """One training step of ``model`` as ``Sequential.fit`` takes it, with a fresh Adam."""
    from cnn.fast.optim import Adam
    from cnn.losses import softmax_cross_entropy

    optimizer = Adam(1e-3)

    def step():
        loss, dlogits = softmax_cross_entropy(model.forward(x), y)
        model.backward(dlogits)
        optimizer.step(model.parameters(), model.gradients())
        return loss

    return step


def torch_trainer(model, x, y):
    """One training step in PyTorch: zero_grad, forward, cross-entropy, backward, Adam."""
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def first_steps(make_step, steps=3):
    """Seconds of each of the first ``steps`` steps of a freshly built trainer."""
    step = make_step()
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    return seconds


def check_threads(threads):
    """Raise unless every BLAS (and PyTorch) runs ``threads`` threads inside the limit."""
    from threadpoolctl import threadpool_info

    counts = {lib["internal_api"]: lib["num_threads"] for lib in threadpool_info()
              if lib["user_api"] == "blas"}
    if torch is not None:
        counts["torch"] = torch.get_num_threads()
    if any(n != threads for n in counts.values()):
        raise RuntimeError(f"asked for {threads} thread(s), threadpoolctl sees {counts}")


def measure_networks(names, threads_list, repeat, rounds):
    """Rows of whole training steps, ours and PyTorch's, minima over rounds and repeats."""
    cases = {}
    for name in names:
        build, shape, classes = NETWORKS[name]
        x, y = network_batch(shape, classes, np.random.default_rng(1))
        model = build(np.random.default_rng(0))
        tmodel = None if torch is None else torch_model(model)
        ours = cnn_trainer(model, x, y)
        if tmodel is not None:
            theirs = torch_trainer(tmodel, x, y)
            # Same network, same weights, same batch: the first losses agree.
            first_ours, first_theirs = ours(), theirs()
            if not np.isclose(first_ours, first_theirs, rtol=1e-4):
                raise RuntimeError(f"{name}: loss {first_ours} here, {first_theirs} in PyTorch")
        else:
            theirs = None
        cases[name] = (ours, theirs)
    best = {}
    for _ in range(rounds):
        for threads in threads_list:
            for name, (ours, theirs) in cases.items():
                slot = best.setdefault((name, threads), {})
                if torch is not None:
                    torch.set_num_threads(threads)
                with threadpool_limits(threads):
                    check_threads(threads)
                    slot["step_s"] = min(slot.get("step_s", np.inf), time_min(ours, repeat=repeat))
                if theirs is not None:
                    slot["torch_s"] = min(slot.get("torch_s", np.inf),
                                          time_min(theirs, repeat=repeat))
            time.sleep(1.0 if torch is not None else 0.0)
    rows = []
    for name in names:
        for threads in threads_list:
            row = {"network": name, "threads": threads, **best[(name, threads)]}
            if "torch_s" in row:
                row["over_torch"] = row["step_s"] / row["torch_s"]
            rows.append(row)
    return rows


def cnn_first_step_phases(model, x, y, steps=3):
    """Seconds of the forward pass (with the loss), backward pass and update of each step."""
    from cnn.fast.optim import Adam
    from cnn.losses import softmax_cross_entropy

    optimizer, clock, phases = Adam(1e-3), time.perf_counter, []
    for _ in range(steps):
        start = clock()
        loss, dlogits = softmax_cross_entropy(model.forward(x), y)
        forward = clock()
        model.backward(dlogits)
        backward = clock()
        optimizer.step(model.parameters(), model.gradients())
        phases.append([forward - start, backward - forward, clock() - backward])
    return np.array(phases)


def measure_first_steps(name, threads, rounds):
    """The first three steps of a fresh model and optimiser, min per step over rounds.

    For ours also the forward, backward and update time of each of them (each part's
    minimum over the rounds), which says where a slow first step spends its time.
    """
    build, shape, classes = NETWORKS[name]
    x, y = network_batch(shape, classes, np.random.default_rng(1))
    result, phases = {}, np.inf
    for _ in range(rounds):
        with threadpool_limits(threads):
            step_phases = cnn_first_step_phases(build(np.random.default_rng(0)), x, y)
        phases = np.minimum(phases, step_phases)
        result["first_s"] = list(np.minimum(result.get("first_s", np.inf),
                                            step_phases.sum(axis=1)))
        result["first_phases_s"] = [dict(zip(["forward", "backward", "optimizer"], map(float, p)))
                                    for p in phases]
        if torch is not None:
            torch.set_num_threads(threads)
            seconds = first_steps(
                lambda: torch_trainer(torch_model(build(np.random.default_rng(0))), x, y))
            result["torch_first_s"] = list(np.minimum(result.get("torch_first_s", np.inf),
                                                      seconds))
    return result


def _proc_status_kib(key):
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def peak_memory_child(library, name, steps=5):
    """In this process: train ``name`` for ``steps`` steps; print its memory as JSON.

    ``base_mib`` is the resident memory once the model, its batch (and PyTorch) are loaded,
    ``peak_mib`` the most it reached during training (Linux's VmHWM, reset before the first
    step through /proc/self/clear_refs), so ``peak_mib - base_mib`` is what training added.
    """
    build, shape, classes = NETWORKS[name]
    x, y = network_batch(shape, classes, np.random.default_rng(1))
    model = build(np.random.default_rng(0))
    with threadpool_limits(1):
        if library == "torch":
            torch.set_num_threads(1)
            step = torch_trainer(torch_model(model), x, y)
            del model
        else:
            step = cnn_trainer(model, x, y)
        import gc
        gc.collect()
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
            f.write("5")
        base = _proc_status_kib("VmRSS")
        for _ in range(steps):
            step()
        peak = _proc_status_kib("VmHWM")
    print(json.dumps({"base_mib": base / 1024, "peak_mib": peak / 1024}))


def measure_peak_memory(name):
    """Peak resident memory of training ``name`` for 5 steps, here and in PyTorch."""
    import subprocess

    result = {}
    for library in ["cnn"] + ([] if torch is None else ["torch"]):
        try:
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--peak-child",
                                  library, name], check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as error:
            print(f"peak memory of {library} not measured: {error.stderr.strip()[-300:]}")
            continue
        memory = json.loads(out.stdout.splitlines()[-1])
        prefix = "" if library == "cnn" else "torch_"
        result[prefix + "base_mib"] = memory["base_mib"]
        result[prefix + "peak_mib"] = memory["peak_mib"]
    return result


def measure_optimizers(name, threads, repeat, rounds):
    """GB/s of Adam and SGD with momentum on the parameters of ``name``, and of copyto.

    An update reads and writes whole arrays: Adam reads the parameter, its gradient and the
    two moments and writes back the parameter and the moments (7 arrays of the parameters'
    size), SGD with momentum reads the parameter, the gradient and the velocity and writes
    the parameter and the velocity (5 arrays). ``copyto`` of an array of half those bytes
    moves as many (one read, one write).
    """
    from cnn.fast.optim import SGD, Adam

    build = NETWORKS[name][0]
    rng = np.random.default_rng(2)
    params = build(np.random.default_rng(0)).parameters()
    grads = {k: rng.standard_normal(v.shape, dtype=np.float32) for k, v in params.items()}
    nbytes = sum(v.nbytes for v in params.values())
    rows = {}
    torch_params = None
    if torch is not None:
        torch_params = [torch.tensor(v) for v in params.values()]
        for tp, g in zip(torch_params, grads.values()):
            tp.grad = torch.tensor(g)
    for _ in range(rounds):
        with threadpool_limits(threads):
            for label, optimizer, arrays in [("Adam", Adam(1e-3), 7),
                                             ("SGD momentum", SGD(1e-3, momentum=0.9), 5)]:
                seconds = time_min(lambda: optimizer.step(params, grads), repeat=repeat)
                row = rows.setdefault(label, {"optimizer": label, "bytes": arrays * nbytes})
                row["seconds"] = min(row.get("seconds", np.inf), seconds)
            for label, arrays in [("Adam", 7), ("SGD momentum", 5)]:
                src = np.ones(arrays * nbytes // 8, dtype=np.float32)
                dst = np.empty_like(src)
                seconds = time_min(lambda: np.copyto(dst, src), repeat=repeat)
                row = rows[label]
                row["copyto_s"] = min(row.get("copyto_s", np.inf), seconds)
                del src, dst
        if torch_params is not None:
            torch.set_num_threads(threads)
            for label, optimizer in [
                ("Adam", torch.optim.Adam(torch_params, 1e-3)),
                ("SGD momentum", torch.optim.SGD(torch_params, 1e-3, momentum=0.9)),
            ]:
                seconds = time_min(optimizer.step, repeat=repeat)
                rows[label]["torch_s"] = min(rows[label].get("torch_s", np.inf), seconds)
    for row in rows.values():
        row["gb_per_s"] = row["bytes"] / row["seconds"] / 1e9
        row["copyto_gb_per_s"] = row["bytes"] / row["copyto_s"] / 1e9
    return list(rows.values())


def regression_guard(rows, path=RESULTS):
    """Lines comparing each convolution's step/GEMM with the committed run."""
    try:
        with open(path, encoding="utf-8") as f:
            committed = {(r["layer"], r["threads"]): r for r in json.load(f)["rows"]}
    except (OSError, ValueError, KeyError):
        return [f"no committed run at {path}: no regression guard"]
    lines = []
    for row in rows:
        old = committed.get((row["layer"], row["threads"]), {}).get("step_over_gemm")
        if old is None or "step_over_gemm" not in row:
            continue
        growth = row["step_over_gemm"] / old
        verdict = "ok" if growth <= STEP_OVER_GEMM_SLACK else "REGRESSION (> +10 %)"
        lines.append(f"  {row['layer']} {row['threads']} thread(s): step/GEMM {old:.2f} committed, "
                     f"{row['step_over_gemm']:.2f} now ({growth - 1:+.0%}) {verdict}")
    return lines


def print_full_size(full, network_rows, threads):
    """The first steps, memory, phases and optimiser speeds of the full-size network."""
    steady = {r["threads"]: r for r in network_rows if r["network"] == full["network"]}[threads]
    print(f"\n{full['network']}, {threads} thread(s): first three steps of a fresh model (ms)")
    for prefix, label, key in [("", "cnn", "step_s"), ("torch_", "torch", "torch_s")]:
        if prefix + "first_s" in full and key in steady:
            firsts = full[prefix + "first_s"]
            print(f"  {label:6}" + "".join(f"{1e3 * s:9.1f}" for s in firsts)
                  + f"   steady {1e3 * steady[key]:.1f}, first/steady at most "
                  f"{max(firsts) / steady[key]:.2f}")
    for i, parts in enumerate(full.get("first_phases_s", []), start=1):
        print(f"  cnn step {i}: " + ", ".join(f"{k} {1e3 * v:.1f}" for k, v in parts.items()))
    if "peak_mib" in full:
        print("peak resident memory while training 5 steps (MiB): before the first step -> peak")
        for prefix, label in [("", "cnn"), ("torch_", "torch")]:
            if prefix + "peak_mib" in full:
                base, peak = full[prefix + "base_mib"], full[prefix + "peak_mib"]
                print(f"  {label:6} {base:8.0f} -> {peak:8.0f}  (training adds {peak - base:.0f})")
        if "torch_peak_mib" in full:
            ours = full["peak_mib"] - full["base_mib"]
            theirs = full["torch_peak_mib"] - full["torch_base_mib"]
            print(f"  added by training, ours/torch: {ours / theirs:.2f}; "
                  f"peaks: {full['peak_mib'] / full['torch_peak_mib']:.2f}")
    phases = full.get("phases")
    if phases:
        print("where a step goes (ms, each part's minimum over the steps):")
        for name, fwd, bwd in phases["layers"]:
            print(f"  {name:14} forward {1e3 * fwd:8.2f}  backward {1e3 * bwd:8.2f}")
        print(f"  {'loss':14} {1e3 * phases['loss']:8.2f}")
        print(f"  {'optimizer':14} {1e3 * phases['optimizer']:8.2f}")
    for row in full.get("optimizers", []):
        torch_ms = f", torch {1e3 * row['torch_s']:.1f} ms" if "torch_s" in row else ""
        print(f"{row['optimizer']:13} update: {1e3 * row['seconds']:7.1f} ms, "
              f"{row['gb_per_s']:5.1f} GB/s; numpy.copyto of the same "
              f"{row['bytes'] / 1e9:.2f} GB: {1e3 * row['copyto_s']:6.1f} ms, "
              f"{row['copyto_gb_per_s']:5.1f} GB/s{torch_ms}")


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


# name: (kind, input shape, arguments, what it is); forward+backward, float32 (issue 24)
MODERN_LAYERS = {
    "DIL": ("conv", (32, 32, 28, 28), {"out": 32, "k": 3, "padding": 2, "dilation": 2},
            "dilated conv 32->32, 3x3, dilation 2, padding 2"),
    "GRP": ("conv", (32, 64, 28, 28), {"out": 64, "k": 3, "padding": 1, "groups": 4},
            "grouped conv 64->64, 3x3, groups 4, padding 1"),
    "DWS": ("separable", (32, 64, 28, 28), {"out": 128},
            "depthwise 3x3 (groups 64) + pointwise 1x1 64->128"),
    "GN": ("groupnorm", (64, 64, 14, 14), {"groups": 8}, "GroupNorm, 8 groups"),
    "RES": ("residual", (32, 32, 14, 14), {},
            "residual block: x + BN(conv3x3(ReLU(BN(conv3x3(x)))))"),
}
# The parts of DWS and RES on their own, to show where their time goes.
MODERN_PARTS = {
    "DWS.dw": ("conv", (32, 64, 28, 28), {"out": 64, "k": 3, "padding": 1, "groups": 64},
               "DWS's depthwise 3x3 alone"),
    "DWS.pw": ("conv", (32, 64, 28, 28), {"out": 128, "k": 1, "padding": 0},
               "DWS's pointwise 1x1 64->128 alone"),
    "RES.conv": ("conv", (32, 32, 14, 14), {"out": 32, "k": 3, "padding": 1},
                 "one of RES's two convolutions alone"),
    "RES.bn": ("batchnorm", (32, 32, 14, 14), {}, "one of RES's two batch norms alone"),
}


def conv_layer_gemms(layer, x_shape, out_shape, rng):
    """The three plain GEMMs of a ``Conv2D`` (one set per group), or ``None`` if depthwise.

    A depthwise convolution's products have one row and one column per group: not
    GEMMs at all, so it has no GEMM floor.
    """
    F, C_g, KH, KW = layer.params["w"].shape
    G = layer.groups
    if C_g == 1 and F == G:
        return None
    per_group = conv2d_gemms((x_shape[0], C_g, *x_shape[2:]), (F // G, C_g, KH, KW),
                             (out_shape[0], F // G, *out_shape[2:]), rng=rng)
    return lambda: [per_group() for _ in range(G)]


def modern_case_timers(name, spec, rng):
    """A ``Case`` for one row of ``MODERN_LAYERS`` or ``MODERN_PARTS``.

    Ours runs the layers of ``cnn.fast.layers`` (convolutions), ``cnn.fast.norm``
    (GroupNorm) and ``cnn.norm`` (BatchNorm); PyTorch's the same arithmetic with
    ``torch.nn.functional`` on tensors sharing our arrays. Rows made of convolutions
    other than depthwise ones also get ``gemm_s``, the time of their plain GEMMs
    (``conv2d_gemms``), the floor of an im2col convolution on NumPy's BLAS.
    """
    from cnn.fast.layers import Conv2D, ReLU
    from cnn.fast.norm import GroupNorm
    from cnn.layers import Residual
    from cnn.norm import BatchNorm

    kind, shape, args, what = spec
    x = rng.standard_normal(shape, dtype=np.float32)
    C = shape[1]
    init = np.random.default_rng(1)
    functional = None if torch is None else torch.nn.functional

    def bn(a, gamma, beta):
        return functional.batch_norm(a, None, None, gamma, beta, training=True)

    if kind == "conv":
        layers = [Conv2D(C, args["out"], args["k"], padding=args["padding"], rng=init,
                         dilation=args.get("dilation", 1), groups=args.get("groups", 1))]

        def torch_forward(xt, ps):
            return functional.conv2d(xt, ps[0], ps[1], padding=args["padding"],
                                     dilation=args.get("dilation", 1),
                                     groups=args.get("groups", 1))
    elif kind == "separable":
        layers = [Conv2D(C, C, 3, padding=1, groups=C, rng=init),
                  Conv2D(C, args["out"], 1, rng=init)]

        def torch_forward(xt, ps):
            depthwise = functional.conv2d(xt, ps[0], ps[1], padding=1, groups=C)
            return functional.conv2d(depthwise, ps[2], ps[3])
    elif kind == "groupnorm":
        layers = [GroupNorm(args["groups"], C)]

        def torch_forward(xt, ps):
            return functional.group_norm(xt, args["groups"], ps[0], ps[1])
    elif kind == "batchnorm":
        layers = [BatchNorm(C)]

        def torch_forward(xt, ps):
            return bn(xt, ps[0], ps[1])
    else:
        layers = [Residual([Conv2D(C, C, 3, padding=1, rng=init), BatchNorm(C), ReLU(),
                            Conv2D(C, C, 3, padding=1, rng=init), BatchNorm(C)])]

        def torch_forward(xt, ps):
            hidden = torch.relu(bn(functional.conv2d(xt, ps[0], ps[1], padding=1),
                                   ps[2], ps[3]))
            return xt + bn(functional.conv2d(hidden, ps[4], ps[5], padding=1), ps[6], ps[7])

    out, gemms, flop = x, [], 0
    for layer in getattr(layers[0], "body", layers):
        x_shape, out = out.shape, layer.forward(out)
        if isinstance(layer, Conv2D):
            gemms.append(conv_layer_gemms(layer, x_shape, out.shape, rng))
            # 2 F K per output position, K = C // groups * KH * KW, times three products
            flop += 3 * 2 * out.size * layer.params["w"][0].size
    out = x
    for layer in layers:
        out = layer.forward(out)
    dout = rng.standard_normal(out.shape, dtype=np.float32)

    def ours():
        out = x
        for layer in layers:
            out = layer.forward(out)
        grad = dout
        for layer in reversed(layers):
            grad = layer.backward(grad)
        return out, grad

    with threadpool_limits(1):
        row = {"layer": name, "shape": f"{what}: {shape}", "peak_mib": peak_memory(ours) / 2**20}
    timers = {"fast_s": ours}
    if gemms and None not in gemms:
        timers["gemm_s"] = lambda: [run() for run in gemms]
        row["step_gflop"] = flop / 1e9
    torch_step = None
    if torch is not None:
        params = [torch.from_numpy(v).requires_grad_()
                  for layer in layers for v in layer.params.values()]
        xt, dt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dout)

        def torch_step():
            torch_forward(xt, params).backward(dt)

    return Case(row, lambda: dict(timers), torch_step)


def bench_modern(threads_list, repeat, rounds, rng, parts=True, cpu_clock=False):
    """Rows for dilated, grouped and separable convolution, GroupNorm and a residual
    block, and (``parts``) for the parts of the separable and residual rows."""
    specs = {**MODERN_LAYERS, **(MODERN_PARTS if parts else {})}
    cases = [modern_case_timers(name, spec, rng) for name, spec in specs.items()]
    return measure(cases, threads_list, repeat, rounds, cpu_clock)


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
    parser.add_argument("--cpu-clock", action="store_true",
                        help="at 1 thread, time the CPU time of the calling thread instead "
                             "of wall time (robust to other programs on the machine)")
    parser.add_argument("--no-modern", action="store_true",
                        help="skip the dilated, grouped, separable, GroupNorm and residual rows")
    parser.add_argument("--layers", default=",".join([*CONV_LAYERS, *POOL_LAYERS]),
                        help="comma-separated subset of " + ",".join([*CONV_LAYERS, *POOL_LAYERS]))
    parser.add_argument("--networks", default=",".join(NETWORKS),
                        help="comma-separated subset of " + ",".join(NETWORKS) + " ('' for none)")
    parser.add_argument("--peak-child", nargs=2, metavar=("LIBRARY", "NETWORK"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_child:
        peak_memory_child(*args.peak_child)
        return
    threads_list = [int(t) for t in args.threads.split(",")]
    names = [n for n in args.layers.split(",") if n]
    unknown = [n for n in names if n not in CONV_LAYERS and n not in POOL_LAYERS]
    if unknown:
        parser.error(f"unknown layers {unknown}")
    networks = [n for n in args.networks.split(",") if n]
    if any(n not in NETWORKS for n in networks):
        parser.error(f"unknown networks {[n for n in networks if n not in NETWORKS]}")

    rng = np.random.default_rng(0)
    info = machine_info()
    info["torch"] = None if torch is None else torch.__version__
    cases = [conv_case_timers(n, CONV_LAYERS[n], not args.no_naive, rng) if n in CONV_LAYERS
             else pool_case_timers(n, *POOL_LAYERS[n], not args.no_naive, rng) for n in names]
    load_before = os.getloadavg()[0]
    rows = measure(cases, threads_list, args.repeat, args.rounds, args.cpu_clock)
    network_rows = measure_networks(networks, threads_list, args.repeat, args.rounds)
    full = {}
    if FULL_SIZE in networks:
        full = {"network": FULL_SIZE,
                **measure_first_steps(FULL_SIZE, threads_list[0], args.rounds),
                **measure_peak_memory(FULL_SIZE)}
        build, shape, classes = NETWORKS[FULL_SIZE]
        x, y = network_batch(shape, classes, np.random.default_rng(1))
        from cnn.fast.profiling import network_phases
        from cnn.fast.optim import Adam

        with threadpool_limits(threads_list[0]):
            full["phases"] = network_phases(build(np.random.default_rng(0)), x, y, Adam(1e-3),
                                            repeat=args.repeat)
        full["optimizers"] = measure_optimizers(FULL_SIZE, threads_list[0], args.repeat,
                                                args.rounds)
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
          f"{NAIVE_BATCH} sample(s)"
          f"{'; at 1 thread: CPU time of the calling thread' if args.cpu_clock else ''}")
    for name, shape in dict((r["layer"], r["shape"]) for r in rows).items():
        print(f"  {name}: {shape}")
    print(format_table(rows))
    for line in regression_guard(rows):
        print(line)
    if network_rows:
        print(f"\nwhole training steps (forward, loss, backward, Adam), batch {NETWORK_BATCH}, "
              f"float32; min of {args.repeat} repeats x {args.rounds} rounds")
        print(format_network_table(network_rows))
    if full:
        print_full_size(full, network_rows, threads_list[0])
    deeper = [] if args.no_deeper else bench_deeper(threads_list, args.repeat, args.rounds, rng)
    if deeper:
        print("Deeper networks: forward+backward of one layer, float32 (ours/torch target <= 1.5)")
        for name, shape in dict((r["layer"], r["shape"]) for r in deeper).items():
            print(f"  {name}: {shape}")
        print(format_table(deeper))
    modern = [] if args.no_modern else bench_modern(threads_list, args.repeat, args.rounds, rng,
                                                    cpu_clock=args.cpu_clock)
    if modern:
        print("Modern layers: forward+backward, float32 (ours/torch target <= 1.5)")
        for name, shape in dict((r["layer"], r["shape"]) for r in modern).items():
            print(f"  {name}: {shape}")
        print(format_table(modern))
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
            "cpu_clock": args.cpu_clock,
            "naive_batch": NAIVE_BATCH,
            "rows": rows,
            "networks": network_rows,
            "full_size": full,
            "digits": digits,
            "deeper": deeper,
            "modern": modern,
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
