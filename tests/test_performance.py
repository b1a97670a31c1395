"""The fast paths stay exact: every speed-up of chapter "Making it fast" keeps the naive results.

Correctness only. Speed is measured by ``make bench`` (benchmarks/bench.py), never in a test.
"""

import numpy as np
import pytest

from cnn import conv
from cnn.conv import conv2d_backward_naive, conv2d_forward_naive
from cnn.fast import conv as fast_conv
from cnn.fast.conv import conv2d_backward_fast, conv2d_forward_fast
from cnn.fast.pool import maxpool2d_backward_fast, maxpool2d_forward_fast
from cnn.pool import maxpool2d_backward_naive, maxpool2d_forward_naive
from cnn.fast.profiling import (
    conv2d_flops,
    conv2d_gemms,
    conv2d_im2col_step,
    conv2d_phases,
    format_table,
    machine_info,
    peak_memory,
    time_min,
)
from cnn.fast.threads import blas_threads

# Both ways of forming dx: one product then col2im (few channels, or an output grid that does not
# cover the input), one product per kernel offset added into dx (dx_by_offset). Channel counts on
# both sides of the switch; the geometries marked "covers" take dx_by_offset from SWITCH on.
SWITCH = fast_conv.PER_OFFSET_MIN_CHANNELS
CHANNELS = [1, SWITCH - 1, SWITCH, SWITCH + 3]
GEOMETRIES = [
    # (H, W), (KH, KW), stride, padding
    ((7, 6), (3, 3), 1, 1),             # covers
    ((9, 8), (3, 2), 2, (1, 0)),        # covers
    ((8, 9), (2, 4), (1, 3), (0, 2)),   # does not: H_out = 7 < 8
    ((6, 6), (1, 1), 1, 0),             # covers
    ((10, 7), (4, 3), 3, 2),            # covers
]


def conv_arrays(C, hw, kernel, dtype, seed, N=2, F=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C) + hw).astype(dtype)
    w = rng.standard_normal((F, C) + kernel).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    return x, w, b


@pytest.mark.parametrize("C", CHANNELS)
@pytest.mark.parametrize("hw, kernel, stride, padding", GEOMETRIES)
def test_fast_conv_matches_naive_on_both_dx_paths(C, hw, kernel, stride, padding):
    x, w, b = conv_arrays(C, hw, kernel, np.float64, seed=C)
    out, cache = conv2d_forward_fast(x, w, b, stride=stride, padding=padding)
    out_naive, cache_naive = conv2d_forward_naive(x, w, b, stride=stride, padding=padding)
    np.testing.assert_allclose(out, out_naive, rtol=1e-12, atol=1e-12)
    dout = np.random.default_rng(C + 1).standard_normal(out.shape)
    expected = conv2d_backward_naive(dout, cache_naive)
    for got in (conv2d_backward_fast(dout, cache), conv2d_backward_fast(dout, cache_naive)):
        for g, e, name in zip(got, expected, ("dx", "dw", "db")):
            assert g.shape == e.shape, name
            np.testing.assert_allclose(g, e, rtol=1e-11, atol=1e-11, err_msg=name)


def test_geometries_take_both_dx_paths():
    covering = []
    for hw, kernel, stride, padding in GEOMETRIES:
        stride, padding = conv.as_pair(stride, "stride"), conv.as_pair(padding, "padding", 0)
        out_size = conv.output_size(hw, kernel, stride, padding)
        covering.append(fast_conv.covers_input((1, 1) + hw, out_size, stride))
    assert covering == [True, True, False, True, True]


# (N, C, H, W), (F, KH, KW), stride, padding: all with an output grid that covers the input.
DX_BY_OFFSET_CASES = [
    ((3, 2, 6, 5), (2, 3, 3), (1, 1), (1, 1)),   # "same" padding, stride 1
    ((2, 3, 8, 6), (4, 3, 3), (2, 2), (1, 1)),   # four stride phases
    ((2, 2, 7, 8), (3, 5, 2), (3, 2), (2, 0)),   # phases of unequal sizes, uneven kernel
    ((2, 2, 1, 3), (2, 5, 5), (1, 1), (2, 2)),   # shifts of two rows on a one-row grid
    ((2, 1, 4, 4), (1, 1, 1), (1, 1), (0, 0)),   # one offset, no shift at all
    ((1, 2, 3, 3), (2, 3, 3), (1, 1), (2, 2)),   # padding wider than (K - 1) / 2
    ((2, 3, 5, 6), (2, 2, 2), (2, 2), (1, 1)),   # phases that only shifted offsets reach
    ((2, 2, 6, 5), (2, 1, 1), (2, 2), (0, 0)),   # phases that no offset reaches: dx is 0 there
]


@pytest.mark.parametrize("x_shape, w_shape, stride, padding", DX_BY_OFFSET_CASES)
@pytest.mark.parametrize("block_bytes", [1, 200, fast_conv.BLOCK_BYTES])
def test_dx_by_offset_equals_col2im(x_shape, w_shape, stride, padding, block_bytes,
                                    monkeypatch):
    # BLOCK_BYTES of 1 and 200 bytes: one sample per block, and blocks that leave a remainder.
    monkeypatch.setattr(fast_conv, "BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(sum(x_shape))
    N, C, H, W = x_shape
    F, KH, KW = w_shape
    out_size = conv.output_size((H, W), (KH, KW), stride, padding)
    assert fast_conv.covers_input(x_shape, out_size, stride)
    w = rng.standard_normal((F, C, KH, KW))
    dout = rng.standard_normal((N, F) + out_size)
    dout_before = dout.copy()
    x_padded_shape = (N, C, H + 2 * padding[0], W + 2 * padding[1])
    dcols = w.reshape(F, -1).T @ dout.reshape(N, F, -1)
    expected = conv.crop(conv.col2im(dcols, x_padded_shape, (KH, KW), stride), padding)
    dx = fast_conv.dx_by_offset(dout, w, x_shape, stride, padding)
    assert dx.shape == x_shape and dx.flags.c_contiguous
    np.testing.assert_allclose(dx, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(dout, dout_before)


def test_dx_by_offset_rejects_an_output_grid_that_does_not_cover_the_input():
    # padding 0: H_out = 6 < 8, the border rows of dx have no place on the grid.
    dout = np.zeros((1, 2, 6, 6))
    with pytest.raises(ValueError, match=r"\(H_out, W_out\) = \(6, 6\).*\(H, W\) = \(8, 8\)"):
        fast_conv.dx_by_offset(dout, np.zeros((2, 3, 3, 3)), (1, 3, 8, 8), (1, 1), (0, 0))


@pytest.mark.parametrize("C", CHANNELS)
def test_fast_conv_float32_keeps_dtype_and_matches_float64(C):
    x, w, b = conv_arrays(C, (9, 9), (3, 3), np.float64, seed=7)
    out64, cache64 = conv2d_forward_naive(x, w, b, stride=2, padding=1)
    dout = np.random.default_rng(8).standard_normal(out64.shape)
    grads64 = conv2d_backward_naive(dout, cache64)
    x32, w32, b32, dout32 = (a.astype(np.float32) for a in (x, w, b, dout))
    out32, cache32 = conv2d_forward_fast(x32, w32, b32, stride=2, padding=1)
    grads32 = conv2d_backward_fast(dout32, cache32)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=1e-4, atol=1e-4)
    for g32, g64 in zip(grads32, grads64):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-4 * np.abs(g64).max())


@pytest.mark.parametrize("C", [1, SWITCH])
def test_fast_conv_leaves_inputs_alone_and_returns_fresh_arrays(C):
    x, w, b = conv_arrays(C, (8, 8), (3, 3), np.float32, seed=3)
    originals = [a.copy() for a in (x, w, b)]
    out, cache = conv2d_forward_fast(x, w, b, stride=1, padding=1)
    dout = np.random.default_rng(4).standard_normal(out.shape).astype(np.float32)
    dout_before = dout.copy()
    cache_before = [None if a is None else np.copy(a) for a in cache]
    first = conv2d_backward_fast(dout, cache)
    out_again, _ = conv2d_forward_fast(x, w, b, stride=1, padding=1)
    second = conv2d_backward_fast(dout, cache)
    for a, original in zip((x, w, b), originals):
        np.testing.assert_array_equal(a, original)
    np.testing.assert_array_equal(dout, dout_before)
    for field, before in zip(cache, cache_before):
        if before is not None:
            np.testing.assert_array_equal(field, before)
    # A second call gives the same bits and new arrays: nothing is shared between calls.
    np.testing.assert_array_equal(out_again, out)
    for g1, g2 in zip(first, second):
        np.testing.assert_array_equal(g1, g2)
        assert not np.shares_memory(g1, g2)
    inputs = [x, w, b, dout] + [a for a in cache if isinstance(a, np.ndarray)]
    for result in (out, *first):
        assert not any(np.shares_memory(result, a) for a in inputs)


@pytest.mark.parametrize("shape, kernel, stride", [
    ((2, 3, 8, 8), 2, None),          # the reference case: tiling 2x2 windows
    ((2, 2, 9, 7), (3, 2), (2, 1)),   # overlapping windows accumulate
    ((1, 2, 17, 17), 16, 1),          # 256 offsets: the argmax still fits its dtype
    ((2, 2, 7, 9), 3, 3),             # rows and columns left over at the border
])
def test_fast_maxpool_matches_naive_with_ties(shape, kernel, stride):
    # Few distinct values: most windows hold ties, which the fast path must break like argmax.
    x = np.random.default_rng(0).integers(0, 3, shape).astype(np.float32)
    x_before = x.copy()
    out, cache = maxpool2d_forward_fast(x, kernel, stride)
    out_naive, cache_naive = maxpool2d_forward_naive(x, kernel, stride)
    np.testing.assert_array_equal(out, out_naive)
    np.testing.assert_array_equal(cache.argmax, cache_naive.argmax)
    dout = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    dout_before = dout.copy()
    dx = maxpool2d_backward_fast(dout, cache)
    np.testing.assert_allclose(dx, maxpool2d_backward_naive(dout, cache_naive), rtol=1e-6)
    assert dx.dtype == np.float32 and not np.shares_memory(dx, dout)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(dout, dout_before)


def test_flops_match_the_three_gemms():
    x_shape, w_shape, out_shape = (4, 3, 10, 10), (5, 3, 3, 3), (4, 5, 8, 8)
    fwd, dw, dcols = conv2d_gemms(x_shape, w_shape, out_shape)()
    # (F, K) @ (K, P), (F, P) @ (P, K), (K, F) @ (F, P): each 2 F K P flops.
    F, K, P = 5, 3 * 3 * 3, 4 * 8 * 8
    assert fwd.shape == (F, P) and dw.shape == (F, K) and dcols.shape == (K, P)
    assert conv2d_flops(x_shape, w_shape, out_shape) == 2 * F * K * P
    # Twice the number of multiply-adds in eq-conv-forward: C KH KW per output entry.
    out, _ = conv2d_forward_fast(np.zeros(x_shape), np.zeros(w_shape), np.zeros(5))
    assert out.shape == out_shape
    assert conv2d_flops(x_shape, w_shape, out_shape) == 2 * out.size * 3 * 3 * 3
    with pytest.raises(ValueError, match="x_shape"):
        conv2d_flops((4, 2, 10, 10), w_shape, out_shape)


def test_peak_memory_sees_numpy_temporaries():
    size = 2_000_000  # float64: 16 MB
    peak = peak_memory(lambda: np.ones(size).sum())
    assert size * 8 <= peak < size * 8 + 1_000_000
    assert peak_memory(lambda: None) < 100_000


def test_time_min_and_machine_info():
    assert time_min(lambda: sum(range(1000)), repeat=2) > 0
    with pytest.raises(ValueError, match="repeat"):
        time_min(lambda: None, repeat=0)
    info = machine_info()
    assert info["numpy"] == np.__version__


def test_blas_threads_limits_and_restores():
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_counts():
        return [lib["num_threads"] for lib in threadpoolctl.threadpool_info()
                if lib["user_api"] == "blas"]

    before = blas_counts()
    with blas_threads(1) as limited:
        assert limited
        assert all(n == 1 for n in blas_counts())
    assert blas_counts() == before


def test_the_old_import_path_of_blas_threads_warns_and_still_works():
    import cnn.fast.profiling

    with pytest.warns(DeprecationWarning, match="cnn.fast.threads.blas_threads"):
        assert cnn.fast.profiling.blas_threads is blas_threads
    with pytest.raises(AttributeError, match="no_such_probe"):
        cnn.fast.profiling.no_such_probe  # noqa: B018


def test_conv2d_phases_names_every_phase():
    x, w, b = conv_arrays(3, (8, 8), (3, 3), np.float32, seed=5)
    phases = conv2d_phases(x, w.astype(np.float64), b, stride=2, padding=1, repeat=1)
    assert list(phases) == ["patch copy", "GEMMs", "col2im", "other"]
    assert all(seconds > 0 for seconds in phases.values())
    assert conv2d_im2col_step(x, w, b, stride=2, padding=1, repeat=1) > 0


def test_format_table_shows_milliseconds_and_gaps():
    rows = [{"layer": "L1", "threads": 1, "fast_s": 0.0025, "step_over_gemm": 1.234},
            {"layer": "P1", "threads": 2, "fast_s": 0.5}]
    lines = format_table(rows).splitlines()
    assert len(lines) == 4 and set(lines[1]) <= {"-", " "}
    first, second = lines[2].split(), lines[3].split()
    assert first[:2] == ["L1", "1"] and "2.50" in first and "1.23" in first
    assert second[:2] == ["P1", "2"] and "500.00" in second and "1.23" not in second
    assert len(first) == len(second) == 13  # every column has a cell, "-" when missing


def test_time_min_on_the_thread_cpu_clock_leaves_out_waiting():
    import time

    def wait():
        time.sleep(0.02)

    assert time_min(wait, repeat=2) >= 0.02
    assert time_min(wait, repeat=2, clock=time.thread_time) < 0.01


def test_format_network_table_shows_milliseconds_and_gaps():
    from cnn.fast.profiling import format_network_table

    rows = [{"network": "a digits", "threads": 1, "step_s": 0.0015, "torch_s": 0.003,
             "over_torch": 0.5},
            {"network": "c original", "threads": 2, "step_s": 0.25}]
    lines = format_network_table(rows).splitlines()
    assert lines[1].split() == ["a", "digits", "1", "1.50", "3.00", "0.50"]
    assert lines[2].split() == ["c", "original", "2", "250.00", "-", "-"]


def test_network_phases_times_every_layer_and_the_update():
    from cnn.fast.profiling import network_phases
    from cnn.layers import Dense, Flatten, ReLU
    from cnn.model import Sequential
    from cnn.optim import SGD

    rng = np.random.default_rng(0)
    model = Sequential([Flatten(), Dense(12, 8, rng=rng), ReLU(), Dense(8, 3, rng=rng)])
    x, y = rng.standard_normal((5, 3, 2, 2)).astype(np.float32), rng.integers(0, 3, 5)
    before = model.layers[1].params["w"].copy()
    phases = network_phases(model, x, y, SGD(0.1), repeat=2)
    assert [name for name, _, _ in phases["layers"]] == ["0 Flatten", "1 Dense", "2 ReLU",
                                                          "3 Dense"]
    assert all(f > 0 and b > 0 for _, f, b in phases["layers"])
    assert phases["loss"] > 0 and phases["optimizer"] > 0
    assert not np.array_equal(model.layers[1].params["w"], before)  # it trained
