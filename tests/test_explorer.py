"""Equations, code and tests linked on the page, and the explorers, in a real browser.

Playwright for Python drives the system Chromium (``/usr/bin/chromium``, no browser download)
over the strict build of ``tests/_site.py``, served on a loopback port. Checked:

* the explorer's ``window.cnnExplorer.compute`` equals ``cnn.conv.conv2d_backward`` on random
  configurations (batches, channels, filters, non-square kernels, strides 1-3, padding 0-2);
* selecting a cell, with the mouse or the keyboard, highlights exactly the entries of its sum
  and writes the sum out in a live region; focus is visible; every cell has a text alternative;
* the max-pooling explorer's ``window.cnnPoolExplorer.compute`` equals ``maxpool2d_forward`` and
  ``maxpool2d_backward`` (ties, overlapping windows); its grids show the package's numbers for
  inputs typed into it, and a window's cells, its winner by the tie rule and its tied entries
  are marked;
* the batch-norm explorer's numbers equal ``batchnorm_forward`` and ``batchnorm_backward``, and
  its three paths of eq-bn-dx-paths equal the package's ``dx`` split into them (path 1 is the
  backward pass with the statistics held fixed);
* on a phone, the result of a tap is on screen together with the tapped control;
* under every labelled equation of every chapter: the provenance line, whose links resolve to
  the function's and the test's highlighted source, and a citation that can be copied;
* the Equation index lists every labelled equation of the chapters, in book order;
* equation labels in the API page's docstrings and on the source pages are links.

Without Chromium (or Playwright) the module is skipped locally; under ``CI=true`` it fails.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import urllib.parse
from pathlib import Path

import numpy as np
import pytest

from cnnbook import provenance

import cnn
from _site import ROOT, build_site, index, serve
from cnn.conv import conv2d_backward, conv2d_forward
from cnn.norm import batchnorm_backward, batchnorm_backward_naive, batchnorm_forward
from cnn.pool import maxpool2d_backward, maxpool2d_forward
from test_chapters import CHAPTERS, equation_labels

# Every test here serves the built book to a browser.
pytestmark = pytest.mark.book

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]
EXPLORER_PAGE = "book/conv_backward"


def missing(message: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {message}")
    pytest.skip(message)


def chromium_executable() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        missing("no Chromium for the browser tests: sudo apt-get install chromium")
    return found


@pytest.fixture(scope="module")
def site_url():
    build = build_site()
    if build.returncode != 0:
        pytest.fail("the strict build failed (see test_book.py)")
    return serve(build.html)


@pytest.fixture(scope="module")
def browser():
    executable = chromium_executable()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("Playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, site_url):
    # Loopback http:// is a secure context, so the page may use the clipboard.
    context = browser.new_context(viewport={"width": 1280, "height": 1000},
                                  permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    errors: list[str] = []
    # The theme's own scripts are not under test (sphinx-thebe declares a constant twice).
    page.on("pageerror", lambda error: errors.append(f"{error}\n{error.stack}")
            if re.search(r"(explorer-kit|conv-explorer|pool-explorer|bn-explorer|provenance)\.js", error.stack or "") else None)
    yield page
    context.close()
    assert not errors, f"JavaScript errors in the book's scripts: {errors}"


def open_explorer(page, site_url):
    page.goto(f"{site_url}{EXPLORER_PAGE}.html")
    page.wait_for_selector(".cnn-explorer.is-live")
    return page


# -- the arithmetic ------------------------------------------------------------------------------
def random_configurations(rng, count):
    fixed = [dict(N=1, C=1, F=1, H=7, W=6, KH=3, KW=2, stride=(2, 2), padding=(1, 1)),
             dict(N=2, C=3, F=2, H=9, W=10, KH=3, KW=3, stride=(3, 3), padding=(0, 0)),
             dict(N=1, C=2, F=3, H=5, W=8, KH=2, KW=4, stride=(3, 2), padding=(2, 1)),
             dict(N=2, C=1, F=1, H=1, W=4, KH=3, KW=1, stride=(1, 3), padding=(1, 0))]
    yield from fixed
    for _ in range(count - len(fixed)):
        KH, KW = (int(k) for k in rng.integers(1, 5, size=2))
        padding = tuple(int(p) for p in rng.integers(0, 3, size=2))
        stride = tuple(int(s) for s in rng.integers(1, 4, size=2))
        H = int(rng.integers(max(1, KH - 2 * padding[0]), 10))
        W = int(rng.integers(max(1, KW - 2 * padding[1]), 10))
        N, C, F = (int(n) for n in rng.integers(1, 4, size=3))
        yield dict(N=N, C=C, F=F, H=H, W=W, KH=KH, KW=KW, stride=stride, padding=padding)


def package_gradients(x, w, dout_rng, stride, padding):
    out, cache = conv2d_forward(x, w, np.zeros(w.shape[0]), stride=stride, padding=padding)
    dout = dout_rng.standard_normal(out.shape)
    return dout, conv2d_backward(dout, cache)


def test_compute_equals_the_package_on_random_configurations(page, site_url):
    open_explorer(page, site_url)
    rng = np.random.default_rng(17)
    configs = list(random_configurations(rng, 30))
    assert any(max(c["stride"]) == 3 for c in configs) and any(c["KH"] != c["KW"] for c in configs)
    for config in configs:
        x = rng.standard_normal((config["N"], config["C"], config["H"], config["W"]))
        w = rng.standard_normal((config["F"], config["C"], config["KH"], config["KW"]))
        dout, (dx, dw, db) = package_gradients(x, w, rng, config["stride"], config["padding"])
        got = page.evaluate("args => window.cnnExplorer.compute(args)", {
            "x": x.tolist(), "w": w.tolist(), "dout": dout.tolist(),
            "stride": list(config["stride"]), "padding": list(config["padding"])})
        for name, expected in (("dx", dx), ("dw", dw), ("db", db)):
            assert np.asarray(got[name]).shape == expected.shape, (config, name)
            np.testing.assert_allclose(got[name], expected, rtol=1e-12, atol=1e-12, err_msg=f"{config} {name}")


def test_compute_takes_integers_and_names_a_wrong_argument(page, site_url):
    open_explorer(page, site_url)
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((1, 2, 6, 5)), rng.standard_normal((2, 2, 3, 2))
    dout, (dx, _, _) = package_gradients(x, w, rng, 2, 1)
    got = page.evaluate("args => window.cnnExplorer.compute(args).dx",
                        {"x": x.tolist(), "w": w.tolist(), "dout": dout.tolist(), "stride": 2, "padding": 1})
    np.testing.assert_allclose(got, dx, rtol=1e-12, atol=1e-12)
    error = page.evaluate("""args => { try { window.cnnExplorer.compute(args); return ""; }
                                       catch (e) { return e.message; } }""",
                          {"x": x.tolist(), "w": w.tolist(), "dout": dout[:, :, :-1].tolist(), "stride": 2, "padding": 1})
    assert error.startswith("dout has shape (1, 2, 2, 3)") and "(N, F, H_out, W_out) = (1, 2, 3, 3)" in error
    error = page.evaluate("""args => { try { window.cnnExplorer.compute(args); return ""; }
                                       catch (e) { return e.message; } }""",
                          {"x": x.tolist(), "w": w.tolist(), "dout": dout.tolist(), "stride": 0})
    assert error.startswith("stride must be an integer >= 1")


# -- the interactive part -----------------------------------------------------------------------
def configure(page, **values):
    type_settings(page, values)
    state = page.evaluate("window.cnnExplorer.state()")
    for key, value in values.items():
        assert state[key] == value, f"the explorer did not take {key} = {value}"
    return state


def marked(page) -> dict[str, dict[tuple[int, int], str]]:
    """{grid: {(row, col): badge}} of the cells highlighted as terms of the selected sum."""
    cells = page.evaluate("""() => Array.from(document.querySelectorAll('.cnn-explorer .is-term'), c => [
        c.dataset.grid, Number(c.dataset.row), Number(c.dataset.col),
        c.querySelector('.cnn-cell-badge').textContent])""")
    out: dict[str, dict[tuple[int, int], str]] = {}
    for grid, r, c, badge in cells:
        out.setdefault(grid, {})[(r, c)] = badge
    return out


def pairs(marks, first, second):
    """Pairs of cells of two grids that carry the same term number."""
    by_badge = {badge: cell for cell, badge in marks.get(second, {}).items()}
    assert len(by_badge) == len(marks.get(second, {})), "two cells carry the same term number"
    return {(cell, by_badge[badge]) for cell, badge in marks.get(first, {}).items()}


def sizes(state):
    return state["H"], state["W"], state["KH"], state["KW"], state["stride"], state["padding"], state["Ho"], state["Wo"]


def expected_dx_terms(state, r, s):
    H, W, KH, KW, S, P, Ho, Wo = sizes(state)
    return {((i, j), (p, q)) for i in range(Ho) for j in range(Wo) for p in range(KH) for q in range(KW)
            if i * S + p == r + P and j * S + q == s + P}


def package_on_state(state):
    """conv2d_backward on the numbers the explorer shows (one sample, channel and filter)."""
    x = np.array(state["x"], dtype=float)[None, None]
    w = np.array(state["w"], dtype=float)[None, None]
    dout = np.array(state["dout"], dtype=float)[None, None]
    _, cache = conv2d_forward(x, w, np.zeros(1), stride=state["stride"], padding=state["padding"])
    dx, dw, db = conv2d_backward(dout, cache)
    return dx[0, 0], dw[0, 0], db[0]


def shown(page, grid) -> np.ndarray:
    values = page.evaluate("""grid => Array.from(document.querySelectorAll(
        `.cnn-explorer [data-grid="${grid}"]`), c => [Number(c.dataset.row), Number(c.dataset.col), Number(c.dataset.value)])""",
        grid)
    out = np.zeros((max(v[0] for v in values) + 1, max(v[1] for v in values) + 1))
    for r, c, v in values:
        out[r, c] = v
    return out


def number_text(value: float) -> str:
    text = f"{abs(value):g}"
    return ("\u2212" if value < 0 else "") + text


@pytest.mark.parametrize("settings", [
    {},  # the chapter's example: 7 x 6 input, 3 x 2 kernel, stride 2, padding 1
    {"H": 8, "W": 5, "KH": 2, "KW": 4, "stride": 3, "padding": 2},
    {"H": 6, "W": 7, "KH": 4, "KW": 1, "stride": 1, "padding": 0},
])
def test_grids_show_the_package_s_gradients_and_clicks_mark_the_right_terms(page, site_url, settings):
    open_explorer(page, site_url)
    state = configure(page, **settings)
    dx, dw, db = package_on_state(state)
    np.testing.assert_array_equal(shown(page, "dx"), dx)
    np.testing.assert_array_equal(shown(page, "dw"), dw)
    np.testing.assert_array_equal(shown(page, "db"), [[db]])
    H, W, KH, KW, S, P, Ho, Wo = sizes(state)
    summary = page.locator(".cnn-explorer-sum")

    for r, s in {(0, 0), (H - 1, W - 1), (H // 2, W // 2), (1, W - 2)}:
        page.locator(f'[data-grid="dx"][data-row="{r}"][data-col="{s}"]').click()
        marks = marked(page)
        assert pairs(marks, "dout", "w") == expected_dx_terms(state, r, s), (r, s)
        assert set(marks) <= {"dout", "w"}
        text = summary.text_content()
        if expected_dx_terms(state, r, s):
            assert text.startswith(f"dx[{r}, {s}] = dout[") and f" = {number_text(dx[r, s])}. Input pixel" in text
        else:
            assert text.startswith(f"dx[{r}, {s}] = 0: no window")

    for p, q in {(0, 0), (KH - 1, KW - 1)}:
        page.locator(f'[data-grid="dw"][data-row="{p}"][data-col="{q}"]').click()
        marks = marked(page)
        expected = {((i, j), (i * S + p, j * S + q)) for i in range(Ho) for j in range(Wo)}
        assert pairs(marks, "dout", "xpad") == expected
        assert f"= {number_text(dw[p, q])}:" in summary.text_content()

    for i, j in {(0, 0), (Ho - 1, Wo - 1)}:
        page.locator(f'[data-grid="dout"][data-row="{i}"][data-col="{j}"]').click()
        marks = marked(page)
        inside = {((i * S + p - P, j * S + q - P), (p, q)) for p in range(KH) for q in range(KW)
                  if 0 <= i * S + p - P < H and 0 <= j * S + q - P < W}
        assert pairs(marks, "dx", "w") == inside
        assert set(marks["xpad"]) == {(i * S + p, j * S + q) for p in range(KH) for q in range(KW)}
        assert set(marks["db"]) == {(0, 0)}

    page.locator('[data-grid="db"]').click()
    assert set(marked(page)["dout"]) == {(i, j) for i in range(Ho) for j in range(Wo)}
    assert summary.text_content().endswith(f"= {number_text(db)}.")


def test_a_pixel_no_window_reads_has_no_terms(page, site_url):
    open_explorer(page, site_url)
    # (8 - 3) mod 3 = 2: the last two rows and columns of an 8 x 8 input are read by no window.
    state = configure(page, H=8, W=8, KH=3, KW=3, stride=3, padding=0)
    assert (state["Ho"], state["Wo"]) == (2, 2)
    page.locator('[data-grid="dx"][data-row="7"][data-col="7"]').click()
    assert marked(page) == {}
    assert "no window of the forward pass reads input pixel (7, 7)" in page.locator(".cnn-explorer-sum").text_content()
    assert shown(page, "dx")[6:, :].tolist() == np.zeros((2, 8)).tolist()


def test_an_impossible_size_is_refused_with_a_message(page, site_url):
    open_explorer(page, site_url)
    before = configure(page, KH=4, H=2)  # with padding 1 the padded input has 4 rows
    field = page.locator(".cnn-explorer input[data-setting='padding']")
    field.fill("0")
    field.press("Tab")
    alert = page.locator(".cnn-explorer-error[role='alert']")
    assert "kernel_size (KH, KW) = (4, 2) is larger than the padded input" in alert.text_content()
    assert page.evaluate("window.cnnExplorer.state()") == before, "the last valid sizes are kept"
    field.fill("1")
    field.press("Tab")
    assert alert.text_content() == ""


def focused(page):
    return page.evaluate("""() => { const c = document.activeElement;
        return c && c.dataset.grid ? [c.dataset.grid, Number(c.dataset.row), Number(c.dataset.col)] : null; }""")


def test_the_explorer_works_from_the_keyboard_with_visible_focus(page, site_url):
    open_explorer(page, site_url)
    state = page.evaluate("window.cnnExplorer.state()")
    # Tab from the last control reaches the grids; each grid is one tab stop.
    page.locator(".cnn-explorer-reroll").focus()
    stops = []
    for _ in range(6):
        page.keyboard.press("Tab")
        stops.append(focused(page))
    assert [s[0] for s in stops] == ["xpad", "w", "dout", "dx", "dw", "db"]
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert focused(page) == ["dx", 0, 0]
    for key in ("ArrowDown", "ArrowDown", "ArrowRight", "ArrowUp", "ArrowRight", "ArrowRight"):
        page.keyboard.press(key)
    assert focused(page) == ["dx", 1, 3]
    page.keyboard.press("Enter")
    assert page.evaluate("window.cnnExplorer.state().selection") == {"grid": "dx", "row": 1, "col": 3}
    assert pairs(marked(page), "dout", "w") == expected_dx_terms(state, 1, 3)
    live = page.locator(".cnn-explorer-sum")
    assert live.get_attribute("aria-live") == "polite" and live.text_content().startswith("dx[1, 3] = dout[")
    # Arrow keys stop at the edges; Space selects too.
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    assert focused(page) == ["dx", 1, state["W"] - 1]
    page.keyboard.press(" ")
    assert page.evaluate("window.cnnExplorer.state().selection")["col"] == state["W"] - 1

    ring = """cell => getComputedStyle(cell.querySelector('.cnn-cell-focus'))"""
    focused_cell = page.locator(f'[data-grid="dx"][data-row="1"][data-col="{state["W"] - 1}"]')
    other_cell = page.locator('[data-grid="dx"][data-row="0"][data-col="0"]')
    assert focused_cell.evaluate(ring + ".stroke") != "none"
    assert float(focused_cell.evaluate(ring + ".strokeWidth").rstrip("px")) >= 2
    assert other_cell.evaluate(ring + ".stroke") == "none"


def test_every_cell_and_grid_has_a_text_alternative(page, site_url):
    open_explorer(page, site_url)
    grids = page.evaluate("""() => Array.from(document.querySelectorAll('.cnn-explorer svg'), svg => [
        svg.getAttribute('role'), document.getElementById(svg.getAttribute('aria-labelledby')).textContent])""")
    assert len(grids) == 6 and all(role == "grid" and name for role, name in grids)
    cells = page.evaluate("""() => Array.from(document.querySelectorAll('.cnn-explorer [role=gridcell]'),
        c => [c.getAttribute('aria-label'), c.dataset.value])""")
    for label, value in cells:
        assert label and label.split(" = ")[1].split(",")[0].replace("\u2212", "-") == f"{float(value):g}"
    labels = page.evaluate("""() => Array.from(document.querySelectorAll('.cnn-explorer input'),
        i => document.querySelector(`label[for="${i.id}"]`).textContent)""")
    assert len(labels) == 6 and all(labels)


# -- the max-pooling explorer (chapter "Pooling") ------------------------------------------------
POOL_PAGE = "book/pooling"


def open_pool_explorer(page, site_url):
    page.goto(f"{site_url}{POOL_PAGE}.html")
    page.wait_for_selector(".cnn-explorer[data-cnn-explorer='maxpool2d'].is-live")
    return page


def pool_state(page):
    return page.evaluate("window.cnnPoolExplorer.state()")


def test_pool_compute_equals_the_package_with_ties_and_overlaps(page, site_url):
    open_pool_explorer(page, site_url)
    rng = np.random.default_rng(5)
    setups = [(2, None), (2, 1), (3, 2), ((2, 3), (1, 2)), ((3, 1), None), (1, 1)]
    for k in range(24):
        kernel_size, stride = setups[k % len(setups)]
        N, C = (int(n) for n in rng.integers(1, 3, size=2))
        H, W = (int(n) for n in rng.integers(3, 8, size=2))
        # Small integers make ties common; every other case is continuous.
        x = (rng.integers(0, 3, size=(N, C, H, W)) if k % 2 == 0
             else rng.standard_normal((N, C, H, W))).astype(float)
        out, cache = maxpool2d_forward(x, kernel_size=kernel_size, stride=stride)
        dout = rng.standard_normal(out.shape)
        got = page.evaluate("args => window.cnnPoolExplorer.compute(args)", {
            "x": x.tolist(), "dout": dout.tolist(), "kernel_size": kernel_size, "stride": stride})
        np.testing.assert_array_equal(got["out"], out, err_msg=f"{kernel_size} {stride}")
        np.testing.assert_array_equal(got["argmax"], cache.argmax, err_msg=f"{kernel_size} {stride}")
        np.testing.assert_allclose(got["dx"], maxpool2d_backward(dout, cache), rtol=1e-12, atol=1e-12)
    error = page.evaluate("""() => { try { window.cnnPoolExplorer.compute({x: [[[[1, 2], [3, 4]]]],
        kernel_size: 3}); return ""; } catch (e) { return e.message; } }""")
    assert error.startswith("kernel_size (KH, KW) = (3, 3) is larger than the input")


def type_settings(page, values):
    """Type each setting into its field of the page's explorer (leaving a field commits it)."""
    for key, value in values.items():
        field = page.locator(f".cnn-explorer input[data-setting='{key}']")
        field.fill(str(value))
        field.press("Tab")


def type_input(page, grid):
    """Type ``grid`` into the explorer's x fields (each commits on leaving it)."""
    for (r, c), value in np.ndenumerate(grid):
        field = page.locator(f".cnn-pool-cell[data-row='{r}'][data-col='{c}'] input")
        field.fill(f"{value:g}")
        field.press("Tab")


def pool_package(state):
    x = np.array(state["x"], dtype=float)[None, None]
    out, cache = maxpool2d_forward(x, kernel_size=(state["KH"], state["KW"]), stride=state["stride"])
    dx = maxpool2d_backward(np.array(state["dout"], dtype=float)[None, None], cache)
    return out[0, 0], cache.argmax[0, 0], dx[0, 0]


def window_marks(page):
    """{(r, c): (badge, winner, tied)} of the x fields marked as the selected window."""
    cells = page.evaluate("""() => Array.from(document.querySelectorAll('.cnn-pool-cell.is-window'), c => [
        Number(c.dataset.row), Number(c.dataset.col), c.querySelector('.cnn-pool-badge').textContent,
        c.classList.contains('is-winner'), c.classList.contains('is-tied')])""")
    return {(r, c): (badge, winner, tied) for r, c, badge, winner, tied in cells}


@pytest.mark.parametrize("settings, grid", [
    ({}, None),  # the chapter's example: a tie of two 5s in the top-left window
    ({"H": 5, "W": 5, "KH": 3, "KW": 3, "stride": 1},
     [[1, 2, 0, 1, 2], [2, 9, 9, 0, 1], [0, 9, 4, 3, 3], [1, 0, 3, 3, 2], [2, 1, 0, 2, 1]]),
    ({"H": 4, "W": 6, "KH": 2, "KW": 3, "stride": 2},
     [[4, 4, 4, 1, 0, 1], [4, 0, 2, 1, 1, 0], [3, 2, 3, -1, -1, -1], [3, 3, 0, -1, -1, -1]]),
])
def test_pool_explorer_shows_the_package_s_numbers_and_its_tie_rule(page, site_url, settings, grid):
    open_pool_explorer(page, site_url)
    type_settings(page, settings)
    if grid is not None:
        type_input(page, np.array(grid, dtype=float))
    state = pool_state(page)
    for key, value in settings.items():
        assert state[key] == value, key
    if grid is not None:
        assert state["x"] == grid
    typed = page.evaluate("""() => Array.from(document.querySelectorAll('.cnn-pool-cell input'),
        i => [Number(i.dataset.row), Number(i.dataset.col), Number(i.value)])""")
    assert all(state["x"][r][c] == v for r, c, v in typed) and len(typed) == state["H"] * state["W"]
    out, argmax, dx = pool_package(state)
    np.testing.assert_array_equal(shown(page, "out"), out)
    np.testing.assert_array_equal(shown(page, "dx"), dx)
    np.testing.assert_array_equal(shown(page, "dout"), state["dout"])
    np.testing.assert_array_equal(state["argmax"], argmax)
    KH, KW, S = state["KH"], state["KW"], state["stride"]
    summary = page.locator(".cnn-explorer-sum")
    ties = 0
    for (i, j), k in np.ndenumerate(argmax):
        page.locator(f'[data-grid="out"][data-row="{i}"][data-col="{j}"]').click()
        marks = window_marks(page)
        window = {(i * S + p, j * S + q): p * KW + q for p in range(KH) for q in range(KW)}
        assert {cell: int(badge) for cell, (badge, _, _) in marks.items()} == window
        winner = (i * S + k // KW, j * S + k % KW)
        assert [cell for cell, (_, won, _) in marks.items() if won] == [winner]
        values = {cell: state["x"][cell[0]][cell[1]] for cell in window}
        tied = {cell for cell, v in values.items() if v == out[i, j]} - {winner}
        assert {cell for cell, (_, _, t) in marks.items() if t} == tied
        # The package's rule: the first maximum in row-major order wins.
        assert all(window[cell] > k for cell in tied)
        assert set(marked(page)) == {"dout", "dx"} and set(marked(page)["dx"]) == {winner}
        text = summary.text_content()
        assert f"out[{i}, {j}] = max(" in text and f") = {number_text(out[i, j])}." in text
        assert f"to dx[{winner[0]}, {winner[1]}] alone" in text
        if tied:
            ties += 1
            assert "A tie" in text and f"picks the first in row-major order, x[{winner[0]}, {winner[1]}]" in text
    assert ties, "no window with a tie was checked"
    for (r, s), value in np.ndenumerate(dx):
        page.locator(f'[data-grid="dx"][data-row="{r}"][data-col="{s}"]').click()
        windows = {(i, j) for (i, j), k in np.ndenumerate(argmax) if (i * S + k // KW, j * S + k % KW) == (r, s)}
        assert set(marked(page).get("dout", {})) == windows
        text = summary.text_content()
        if windows:
            assert text.startswith(f"dx[{r}, {s}] = dout[") and f"= {number_text(value)}: x[{r}, {s}] is the" in text
        else:
            assert text.startswith(f"dx[{r}, {s}] = 0: x[{r}, {s}] is the chosen maximum of no window")


def test_pool_explorer_overlapping_windows_add_up(page, site_url):
    open_pool_explorer(page, site_url)
    type_settings(page, {"H": 5, "W": 5, "KH": 3, "KW": 3, "stride": 1})
    grid = np.zeros((5, 5))
    grid[2, 2] = 7  # the maximum of all nine windows
    type_input(page, grid)
    state = pool_state(page)
    page.locator('[data-grid="dx"][data-row="2"][data-col="2"]').click()
    assert set(marked(page)["dout"]) == {(i, j) for i in range(3) for j in range(3)}
    total = float(np.sum(state["dout"]))
    assert state["dx"][2][2] == total
    assert page.locator(".cnn-explorer-sum").text_content().endswith("which overlap there, so their gradients add up.")


def test_pool_explorer_refuses_a_bad_value_and_works_from_the_keyboard(page, site_url):
    open_pool_explorer(page, site_url)
    before = pool_state(page)
    field = page.locator(".cnn-pool-cell[data-row='0'][data-col='0'] input")
    field.fill("")
    field.press("Tab")
    assert "x[0, 0] must be a number" in page.locator(".cnn-explorer-error").text_content()
    assert pool_state(page)["x"] == before["x"] and field.input_value() == f"{before['x'][0][0]:g}"
    # Editing a field keeps the keyboard in the grid of fields.
    field = page.locator(".cnn-pool-cell[data-row='1'][data-col='1'] input")
    field.fill("8")
    field.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "x[1, 2]"
    page.locator(".cnn-pool-cell[data-row='3'][data-col='3'] input").focus()
    page.keyboard.press("Tab")
    assert focused(page) == ["out", 0, 0]
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    assert pool_state(page)["selection"] == {"grid": "out", "row": 0, "col": 1}
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert focused(page) == ["dx", 0, 0]
    page.keyboard.press(" ")
    assert pool_state(page)["selection"] == {"grid": "dx", "row": 0, "col": 0}
    assert page.locator(".cnn-explorer-sum").get_attribute("aria-live") == "polite"


# -- the batch-norm explorer (chapter "Batch normalisation") --------------------------------------
BN_PAGE = "book/batchnorm"


def open_bn_explorer(page, site_url):
    page.goto(f"{site_url}{BN_PAGE}.html")
    page.wait_for_selector(".cnn-explorer[data-cnn-explorer='batchnorm'].is-live")
    return page


def bn_package(x, gamma, beta, dout):
    """The package's numbers, and its dx split into the three paths of eq-bn-dx-paths.

    Path 1 holds the statistics fixed: the backward pass of the same normalisation in
    evaluation mode. The rest, dx - path 1, is path 2 (a multiple of x - mean, which sums
    to zero over the channel) plus path 3 (the same for every entry).
    """
    out, cache = batchnorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)
    dx_naive = batchnorm_backward_naive(dout, cache)[0]
    path1 = batchnorm_backward(dout, cache._replace(batch_statistics=False))[0]
    path3 = np.broadcast_to((dx - path1).mean(axis=0), dx.shape)
    return dict(out=out, x_hat=cache.x_hat, mean=cache.mean, var=cache.var, inv_std=cache.inv_std,
                dx=dx, dx_naive=dx_naive, dgamma=dgamma, dbeta=dbeta, path1=path1,
                path2=dx - path1 - path3, path3=path3)


def test_bn_compute_equals_the_package_and_splits_dx_into_its_three_paths(page, site_url):
    open_bn_explorer(page, site_url)
    rng = np.random.default_rng(11)
    cases = []
    for N, C in [(2, 1), (4, 3), (6, 2), (9, 4)]:
        cases.append((3 * rng.standard_normal((N, C)) + 2, rng.standard_normal(C), rng.standard_normal(C)))
    constant = np.full((5, 2), 1.5)  # a constant channel: x_hat is 0, eps keeps it finite
    cases.append((constant, np.array([2.0, -1.0]), np.array([0.5, 0.0])))
    for x, gamma, beta in cases:
        dout = rng.standard_normal(x.shape)
        want = bn_package(x, gamma, beta, dout)
        got = page.evaluate("args => window.cnnBnExplorer.compute(args)", {
            "x": x.tolist(), "gamma": gamma.tolist(), "beta": beta.tolist(), "dout": dout.tolist()})
        for key in ("out", "x_hat", "mean", "var", "inv_std", "dgamma", "dbeta"):
            np.testing.assert_allclose(got[key], want[key], rtol=1e-12, atol=1e-12, err_msg=key)
        for key in ("dx", "path1", "path2", "path3"):
            np.testing.assert_allclose(got[key], want[key], rtol=1e-9, atol=1e-12, err_msg=key)
        np.testing.assert_allclose(got["dx"], want["dx_naive"], rtol=1e-9, atol=1e-12)
        # The mean and the variance gradients behind paths 2 and 3 (eq-bn-dmu, eq-bn-dvar).
        m = x.shape[0]
        np.testing.assert_allclose(np.asarray(got["dmean"]) / m, want["path3"][0], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.asarray(got["dvar"]) * 2 * (x - want["mean"]) / m, want["path2"],
                                   rtol=1e-9, atol=1e-12)
    error = page.evaluate("""() => { try { window.cnnBnExplorer.compute({x: [[1], [2]], dout: [[1]],
        gamma: [1], beta: [0]}); return ""; } catch (e) { return e.message; } }""")
    assert error == "dout has shape (1, 1) but x has shape (2, 1)"


def bn_shown(page):
    """{row: values} of the table, and {statistic: value} below it, from data-value."""
    rows = page.evaluate("""() => { const out = {};
        document.querySelectorAll('.cnn-bn-table td[data-row]').forEach(td => {
            (out[td.dataset.row] = out[td.dataset.row] || [])[Number(td.dataset.col)] = Number(td.dataset.value); });
        return out; }""")
    stats = page.evaluate("""() => Object.fromEntries(Array.from(document.querySelectorAll('.cnn-bn-stats [data-stat]'),
        d => [d.dataset.stat, Number(d.dataset.value)]))""")
    return rows, stats


def rounded_text(value: float) -> str:
    """``value`` as the explorers show it: three decimals at most, a true minus sign."""
    text = f"{abs(value):.3f}".rstrip("0").rstrip(".")
    return ("\u2212" if round(value, 3) < 0 else "") + text


def bn_fill(page, row, values):
    for i, value in enumerate(values):
        field = page.locator(f".cnn-bn-table input[data-row='{row}'][data-col='{i}']")
        field.fill(f"{value:g}")
        field.press("Tab")


@pytest.mark.parametrize("settings, x, dout", [
    ({}, None, None),  # the chapter's batch with an outlier
    ({"gamma": -1.5, "beta": 2}, [0.5, -2, 3, 3, 1], [1, 0.5, -1, 2, -0.5]),
    ({"m": 3}, [2, 2, 2], [1, -2, 0.5]),  # all equal: only eps keeps the division finite
])
def test_bn_explorer_shows_the_package_s_numbers_and_writes_out_the_paths(page, site_url, settings, x, dout):
    open_bn_explorer(page, site_url)
    if x is not None and "m" not in settings:
        settings = {"m": len(x), **settings}
    type_settings(page, settings)
    if x is not None:
        bn_fill(page, "x", x)
        bn_fill(page, "dout", dout)
    state = page.evaluate("window.cnnBnExplorer.state()")
    if x is not None:
        assert state["x"] == x and state["dout"] == dout
    column = lambda values: np.array(values, dtype=float)[:, None]
    want = bn_package(column(state["x"]), np.array([state["gamma"]], dtype=float),
                      np.array([state["beta"]], dtype=float), column(state["dout"]))
    rows, stats = bn_shown(page)
    assert rows["x"] == state["x"] and rows["dout"] == state["dout"]
    np.testing.assert_allclose(rows["x_hat"], want["x_hat"][:, 0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rows["out"], want["out"][:, 0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rows["centred"], column(state["x"])[:, 0] - want["mean"][0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rows["dx_hat"], state["gamma"] * np.array(state["dout"]), rtol=1e-12)
    for key in ("path1", "path2", "path3", "dx"):
        np.testing.assert_allclose(rows[key], want[key][:, 0], rtol=1e-9, atol=1e-12, err_msg=key)
    for key in ("mean", "var", "inv_std", "dgamma", "dbeta"):
        np.testing.assert_allclose(stats[key], want[key][0], rtol=1e-12, atol=1e-12, err_msg=key)
    np.testing.assert_allclose(stats["dmean"] / state["m"], want["path3"][0, 0], rtol=1e-9, atol=1e-12)
    # The rounded numbers on screen are the package's, rounded.
    texts = page.evaluate("""() => Array.from(document.querySelectorAll('.cnn-bn-table tr[data-row="dx"] button'),
        b => b.textContent)""")
    assert texts == [rounded_text(v) for v in want["dx"][:, 0]]
    summary = page.locator(".cnn-explorer-sum")
    for i in range(state["m"]):
        page.locator(f".cnn-bn-table tr[data-row='dx'] button[data-col='{i}']").click()
        text = summary.text_content()
        sub = "".join(chr(0x2080 + int(d)) for d in str(i))
        assert text.startswith(f"x\u0304{sub} = x\u0302\u0304{sub} / \u221a(\u03c3\u00b2 + \u03b5)")
        for key, name in (("path1", "path 1, through x\u0302"), ("path2", "path 2, through the variance"),
                          ("path3", "path 3, through the mean")):
            assert f"{rounded_text(want[key][i, 0])}" in text and name in text
        assert text.endswith(f"= {rounded_text(want['dx'][i, 0])}.")
        selected = page.evaluate("""() => Array.from(document.querySelectorAll('.cnn-bn-table td.is-selected'),
            td => Number(td.dataset.col))""")
        assert set(selected) == {i} and len(selected) == 10


def test_bn_explorer_works_from_the_keyboard_and_refuses_bad_settings(page, site_url):
    open_bn_explorer(page, site_url)
    before = page.evaluate("window.cnnBnExplorer.state()")
    field = page.locator(".cnn-explorer input[data-setting='m']")
    field.fill("9")
    field.press("Tab")
    assert "Batch size m must be a whole number from 2 to 6" in page.locator(".cnn-explorer-error").text_content()
    assert page.evaluate("window.cnnBnExplorer.state()") == before
    field.fill("4")
    field.press("Tab")
    assert page.locator(".cnn-explorer-error").text_content() == ""
    # Editing an entry keeps the focus in the table; Tab reaches the entries of x-bar.
    entry = page.locator(".cnn-bn-table input[data-row='x'][data-col='0']")
    entry.fill("-4")
    entry.press("Tab")
    assert page.evaluate("document.activeElement.dataset.row + document.activeElement.dataset.col") == "x1"
    page.locator(".cnn-bn-table input[data-row='dout'][data-col='3']").focus()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    state = page.evaluate("window.cnnBnExplorer.state()")
    assert state["selected"] == 1 and state["x"][0] == -4
    assert page.locator(".cnn-explorer-sum").text_content().startswith("x\u0304\u2081 = ")
    pressed = page.evaluate("""() => Array.from(document.querySelectorAll('.cnn-bn-table button'),
        b => b.getAttribute('aria-pressed'))""")
    assert pressed == ["false", "true", "false", "false"]


# -- on a phone: the result stays next to the control ---------------------------------------------
@pytest.mark.parametrize("path, control", [
    ("book/pooling", '[data-grid="dx"][data-row="1"][data-col="1"]'),
    ("book/pooling", '[data-grid="out"][data-row="1"][data-col="0"]'),
    ("book/batchnorm", ".cnn-bn-table tr[data-row='dx'] button[data-col='2']"),
    (EXPLORER_PAGE, '[data-grid="dw"][data-row="1"][data-col="0"]'),
])
def test_on_a_phone_the_result_is_in_view_beside_the_control(browser, site_url, path, control):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.goto(f"{site_url}{path}.html")
        page.wait_for_selector(".cnn-explorer.is-live")
        target = page.locator(control)
        target.scroll_into_view_if_needed()
        target.tap()
        boxes = page.evaluate("""selector => {
            const r = e => { const b = e.getBoundingClientRect(); return [b.top, b.bottom, b.right]; };
            const root = document.querySelector(selector).closest('.cnn-explorer');
            return {control: r(document.querySelector(selector)), sum: r(root.querySelector('.cnn-explorer-sum')),
                    view: [window.innerHeight, document.documentElement.clientWidth],
                    page: document.scrollingElement.scrollWidth}; }""", control)
        height, width = boxes["view"]
        for name in ("control", "sum"):
            top, bottom, right = boxes[name]
            assert 0 <= top and bottom <= height + 1 and right <= width + 1, (name, boxes)
        assert boxes["page"] <= width + 1, "the page scrolls sideways"
    finally:
        context.close()


# -- provenance lines, citations, the equation index ----------------------------------------------
@functools.cache
def book_equations() -> list[tuple[str, str]]:
    """(docname, label) of every labelled equation of the chapters, in book order."""
    found = []
    for doc, text in CHAPTERS.items():
        for label in sorted(equation_labels(text), key=lambda lab: re.search(
                rf"\$\$[ \t]*\({re.escape(lab)}\)|:label:[ \t]*{re.escape(lab)}\b", text).start()):
            found.append((doc, label))
    return found


OBJECTS = provenance.scan_package(ROOT / "cnn", "cnn")
TESTS = provenance.scan_tests(ROOT / "tests" / "test_equations.py", "tests/test_equations.py")


def expected_tests(label: str) -> set[str]:
    labels = {lab for _, lab in book_equations()}
    return {t.name for t in TESTS if label in provenance.labels_in_test_name(t.name, labels)}


@functools.cache
def fetched_ids(url: str) -> tuple[int, frozenset[str], str]:
    import urllib.request
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode("utf-8")
        return response.status, frozenset(re.findall(r'\bid="([^"]+)"', text)), text


def assert_resolves(url: str) -> str:
    resource, _, fragment = url.partition("#")
    status, ids, text = fetched_ids(resource)
    assert status == 200, url
    if fragment:
        assert urllib.parse.unquote(fragment) in ids, f"{url}: no element with that id"
    return text


def block_of(text: str, anchor: str) -> str:
    """The viewcode block with id ``anchor`` (its highlighted source, tags removed)."""
    start = text.index(f'id="{anchor}"')
    return re.sub(r"<[^>]+>", "", text[start:text.find("</div>", start)])


def test_every_labelled_equation_has_its_provenance_line_and_citation(page, site_url):
    docs = sorted({doc for doc, _ in book_equations()}, key=list(CHAPTERS).index)
    assert docs, "no labelled equations"
    base = index().site_url
    checked_links = 0
    for doc in docs:
        page.goto(f"{site_url}{doc}.html")
        lines = page.evaluate("""() => Array.from(document.querySelectorAll('.math[id^="equation-"]'), eq => {
            const line = eq.nextElementSibling;
            const links = sel => line ? Array.from(line.querySelectorAll(sel + ' a'), a => [a.textContent, a.href]) : [];
            return {anchor: eq.id, number: (eq.querySelector('.eqno') || {}).textContent || '',
                    label: line && line.classList.contains('cnn-provenance') ? line.dataset.label : null,
                    impl: links('.cnn-provenance-impl'), tests: links('.cnn-provenance-test'),
                    cite: line ? (line.querySelector('.cnn-cite-text') || {}).textContent : null};
        })""")
        by_label = {line["label"]: line for line in lines if line["label"]}
        for _, label in (item for item in book_equations() if item[0] == doc):
            line = by_label.get(label)
            assert line, f"{doc}: no provenance line under {label}"
            assert line["anchor"] == f"equation-{label}"
            implementers = {o.qualname for o in OBJECTS if label in o.implements}
            assert {text for text, _ in line["impl"]} == implementers, label
            assert {text for text, _ in line["tests"]} == expected_tests(label), label
            if provenance.GRADIENT_LABEL.search(label):
                assert line["tests"], f"the gradient equation {label} shows no test"
            number = line["number"].split("(")[1].split(")")[0]
            assert line["cite"] == (f"CNN from Scratch with NumPy, version {cnn.__version__}, chapter "
                                    f"{index().numbers[doc]} \"{index().titles[doc]}\", Eq. ({number}). "
                                    f"{base}v{cnn.__version__}/{doc}.html#equation-{label}"), line["cite"]
            for name, url in line["impl"]:
                text = assert_resolves(url)
                assert "_modules/" in url
                assert re.search(rf"(def|class) {name.rsplit('.', 1)[-1]}\b", block_of(text, url.split("#")[1]))
                checked_links += 1
            for name, url in line["tests"]:
                text = assert_resolves(url)
                assert url.endswith(f"_tests/test_equations.html#{name}")
                assert f"def {name}(" in block_of(text, name)
                checked_links += 1
    assert checked_links > 20


def test_following_the_links_opens_the_source_and_back(page, site_url):
    page.goto(f"{site_url}book/conv_backward.html")
    line = page.locator('.cnn-provenance[data-label="eq-conv-dx"]')
    line.get_by_role("link", name="test_eq_conv_dx").click()
    page.wait_for_load_state()
    assert page.url.endswith("_tests/test_equations.html#test_eq_conv_dx")
    block = page.locator('[id="test_eq_conv_dx"]')
    assert block.is_visible() and "def test_eq_conv_dx(" in block.text_content()
    # The test's source links back to the equation it verifies.
    block.get_by_role("link", name="[eq-conv-dx]").click()
    page.wait_for_load_state()
    assert page.url.endswith("book/conv_backward.html#equation-eq-conv-dx")
    page.locator('.cnn-provenance[data-label="eq-conv-dx"]').get_by_role("link", name="cnn.conv.conv2d_backward", exact=True).click()
    page.wait_for_load_state()
    assert page.url.endswith("_modules/cnn/conv.html#conv2d_backward")
    source = page.locator('[id="conv2d_backward"]')
    assert "def conv2d_backward(dout, cache):" in source.text_content()
    # On the source page the docstring's labels link to the equations.
    source.get_by_role("link", name="eq-conv-dw").first.click()
    page.wait_for_load_state()
    assert page.url.endswith("book/conv_backward.html#equation-eq-conv-dw")


def test_cite_this_equation_copies_the_citation(page, site_url):
    from playwright.sync_api import expect

    page.goto(f"{site_url}book/conv_backward.html")
    line = page.locator('.cnn-provenance[data-label="eq-conv-dw"]')
    cite = line.locator(".cnn-cite-text")
    assert not cite.is_visible()
    line.locator("summary").click()
    assert cite.is_visible()
    button = line.get_by_role("button", name=re.compile(r"Copy the citation of Eq\. \(\d+\.\d+\)"))
    button.click()
    expect(button).to_have_text("Copied")  # the clipboard answers asynchronously
    assert page.evaluate("navigator.clipboard.readText()") == cite.text_content()
    assert cite.text_content().endswith(
        f"/v{cnn.__version__}/book/conv_backward.html#equation-eq-conv-dw")


def test_the_equation_index_lists_every_labelled_equation_in_book_order(page, site_url):
    page.goto(f"{site_url}book/equations.html")
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
    page.evaluate("() => MathJax.startup.promise")
    rows = page.evaluate("""() => Array.from(document.querySelectorAll('table.cnn-equation-index tbody tr'), tr => {
        const text = s => { const e = tr.querySelector(s); return e ? e.textContent.trim() : ''; };
        return {label: tr.id.replace(/^index-/, ''), number: text('.cnn-ix-number'),
                shown_label: text('.cnn-ix-label'), chapter: text('.cnn-ix-chapter'),
                implemented: text('.cnn-ix-impl').replace(/^Implemented by /, ''),
                verified: text('.cnn-ix-tests').replace(/^Verified by /, ''),
                typeset: !!tr.querySelector('.cnn-ix-shown mjx-container'),
                hrefs: Array.from(tr.querySelectorAll('a'), a => a.href),
                gradient: tr.classList.contains('cnn-gradient')};
    })""")
    assert [row["label"] for row in rows] == [label for _, label in book_equations()]
    docs = dict((label, doc) for doc, label in book_equations())
    for row in rows:
        label, doc = row["label"], docs[row["label"]]
        assert row["shown_label"].split()[0] == label
        assert row["number"] == f"({index().targets[label].number})", label
        assert row["chapter"] == f"{index().numbers[doc]}. {index().titles[doc]}"
        assert row["typeset"], f"{label}: the equation is not typeset in the index"
        assert row["gradient"] == bool(provenance.GRADIENT_LABEL.search(label))
        assert set(filter(None, row["verified"].split(", "))) == expected_tests(label)
        assert (set(filter(None, row["implemented"].split(", ")))
                == {o.qualname for o in OBJECTS if label in o.implements})
        for href in row["hrefs"]:
            assert_resolves(href)
    # The index fits the text column at 1280 px: nothing hides behind a scroll bar.
    page.set_viewport_size({"width": 1280, "height": 900})
    widths = page.evaluate("""() => { const t = document.querySelector('table.cnn-equation-index');
        const box = t.closest('.pst-scrollable-table-container') || t.parentElement;
        return [t.scrollWidth, box.clientWidth]; }""")
    assert widths[0] <= widths[1] + 1, f"the index is {widths[0]} px wide in {widths[1]} px"


UNLINKED_LABELS = """root => {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    const found = [];
    while (walker.nextNode()) {
        const node = walker.currentNode;
        if (node.parentElement.closest('a')) continue;
        for (const m of node.textContent.matchAll(/(?<![\\w-])eq(?:-[A-Za-z0-9]+)+/g)) found.push(m[0]);
    }
    return found;
}"""


@pytest.mark.parametrize("path, root", [
    ("book/api.html", "dl.py"),
    ("_modules/cnn/conv.html", ".highlight"),
    ("_modules/cnn/fast/conv.html", ".highlight"),
    ("_tests/test_equations.html", ".highlight"),
])
def test_labels_in_docstrings_are_links_to_their_equations(page, site_url, path, root):
    page.goto(f"{site_url}{path}")
    roots = page.locator(root)
    assert roots.count() > 0
    for k in range(roots.count()):
        assert roots.nth(k).evaluate(UNLINKED_LABELS) == [], f"{path}: labels left as plain text"
    links = page.evaluate("""() => Array.from(document.querySelectorAll('a.cnn-eq-ref'), a => [a.textContent, a.href])""")
    assert links
    for label, href in links:
        assert href.endswith(f"#equation-{label}")
        assert_resolves(href)
