"""The built site in a real browser: the system Chromium driven by Playwright over loopback HTTP.

Every page is loaded three times: at a desktop width (1280 px) in the light and in the dark
theme, and at a phone width (390 px). On every load the page logs no console error and makes
no failed request and no request outside the site. At 1280 px the math must be typeset by
MathJax and every code block and display equation must fit the text column; at 390 px the page
itself must not scroll sideways, a block wider than the screen scrolls inside its own box with
a visible cue (it fades out where more is hidden), and tables wrap between words, not inside
one. In the dark theme every figure and every explorer keep a legible contrast.
Previews of links (hover and keyboard focus) and highlighted targets are checked on a chapter.
"""

from __future__ import annotations

import functools
import html.parser
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from _site import ROOT, build_site, index, serve

# Playwright launches headless itself; it never downloads a browser here (executable_path).
# Every test here serves the built book to a browser.
pytestmark = pytest.mark.book

CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
SCREENSHOT_DIR = ROOT / "_build" / "screenshots"
# Half a pixel of rounding in layout widths is not an overflow.
SLACK = 1


def find_chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = "headless Chromium is needed for the browser check: sudo apt-get install chromium"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but no browser: {message}")
    pytest.skip(message)


@pytest.fixture(scope="module")
def site_url():
    build = build_site()
    if build.returncode != 0:
        pytest.fail("the strict build failed (see test_book.py)")
    return serve(build.html)


@pytest.fixture(scope="module")
def browser():
    executable = find_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


# Runs in the page once it is loaded: with ``expand``, opens every dropdown (solutions, hidden
# inputs) as a reader may; then waits for MathJax's first typesetting pass and for the fonts.
SETTLE = """async (expand) => {
    if (expand) {
        document.querySelectorAll('details').forEach(d => { d.open = true; });
        document.querySelectorAll('.toggle-hidden').forEach(e => e.classList.remove('toggle-hidden'));
    }
    if (document.querySelector('.math')) {
        for (let i = 0; !(window.MathJax && MathJax.startup && MathJax.startup.promise); i++) {
            if (i > 300) throw new Error('MathJax did not load');
            await new Promise(resolve => setTimeout(resolve, 100));
        }
        await MathJax.startup.promise;
    }
    await document.fonts.ready;
}"""

# Every code block (quoted listing, code-cell input or output, code in the prose) and every
# display equation in the article that is wider than its box or reaches past the text column.
OVERFLOW = """() => {
    const article = document.querySelector('article.bd-article');
    const box = article.getBoundingClientRect(), style = getComputedStyle(article);
    const left = box.left + parseFloat(style.paddingLeft);
    const right = box.right - parseFloat(style.paddingRight);
    const column = Math.round(right - left);
    const scrollers = el => {
        const found = [];
        for (let e = el.parentElement; e && e !== article; e = e.parentElement)
            if (['auto', 'scroll'].includes(getComputedStyle(e).overflowX)) found.push(e);
        return found;
    };
    const measure = (els) => {
        let width = 0, room = column, over = false;
        for (const el of els) {
            for (const e of [el, ...scrollers(el)]) {
                if (e.scrollWidth > e.clientWidth + %(slack)d) over = true;
                width = Math.max(width, e.scrollWidth);
                room = Math.min(room, e.clientWidth);
            }
            const r = el.getBoundingClientRect();
            if (r.right > right + %(slack)d) over = true;
            width = Math.max(width, Math.round(r.right - Math.max(r.left, left)));
        }
        return {over, width, room};
    };
    const found = [];
    // Characters of the text font that fit one line of each kind of code block.
    const fits = {};
    for (const pre of article.querySelectorAll('div.highlight pre')) {
        const kind = pre.closest('.cell_output') ? 'output'
            : pre.closest('.cell_input') ? 'cell' : pre.closest('.listing') ? 'listing' : 'code';
        const ps = getComputedStyle(pre);
        if (!(kind in fits) && pre.clientWidth > 0) {
            const probe = document.createElement('span');
            probe.textContent = '0'.repeat(200);
            pre.appendChild(probe);
            const char = probe.getBoundingClientRect().width / 200;
            probe.remove();
            const inner = pre.clientWidth - parseFloat(ps.paddingLeft) - parseFloat(ps.paddingRight);
            fits[kind] = Math.floor(inner / char + 1e-6);
        }
        const m = measure([pre]);
        const lines = pre.textContent.replace(/\\n$/, '').split('\\n');
        if (m.over) found.push({kind, ...m, chars: Math.max(...lines.map(l => l.length)),
                                text: pre.textContent.trim().slice(0, 60)});
    }
    const equations = new Set();
    for (const el of article.querySelectorAll('div.math, mjx-container[display="true"]'))
        equations.add(el.closest('div.math') || el);
    for (const eq of equations) {
        const m = measure([eq, ...eq.querySelectorAll('mjx-container[display="true"]')]);
        if (!m.over) continue;
        let tex = eq.textContent;
        try { tex = MathJax.startup.document.getMathItemsWithin(eq)[0].math; } catch (e) {}
        const label = eq.id ? eq.id.replace(/^equation-/, '') : '';
        found.push({kind: 'equation', ...m, label, text: tex.trim().replace(/\\s+/g, ' ').slice(0, 60)});
    }
    return {column, fits, found};
}""" % {"slack": SLACK}

# At a phone width: how wide the page scrolls, and the outermost elements reaching past it.
SIDEWAYS = """() => {
    const width = document.scrollingElement.scrollWidth, view = window.innerWidth;
    const culprits = [];
    if (width > view + %(slack)d) {
        for (const el of document.querySelectorAll('body *')) {
            const r = el.getBoundingClientRect();
            if (r.right > view + %(slack)d && r.width > 0 && !(el.parentElement
                    && el.parentElement.getBoundingClientRect().right > view + %(slack)d))
                culprits.push(`${el.tagName.toLowerCase()}.${[...el.classList].join('.')} `
                              + `(${Math.round(r.right)} px): ${el.textContent.trim().slice(0, 40)}`);
        }
    }
    return {width, view, culprits: culprits.slice(0, 8)};
}""" % {"slack": SLACK}


# At a phone width: display equations and code blocks wider than their box, and whether the
# box shows that it scrolls (scrolls sideways itself and fades out where more is hidden, the
# cue of reader.js and reader.css); and the pieces of words in table cells laid out over two
# lines (a break after "_", ".", "/" and the like is between words).
PHONE_CHECKS = r"""() => {
    const article = document.querySelector('article.bd-article');
    const scrollers = el => {
        const found = [];
        for (let e = el; e && e !== article; e = e.parentElement)
            if (['auto', 'scroll'].includes(getComputedStyle(e).overflowX)) found.push(e);
        return found;
    };
    const blocks = new Set();
    for (const el of article.querySelectorAll('div.math, mjx-container[display="true"]'))
        blocks.add(el.closest('div.math') || el);
    for (const el of article.querySelectorAll('div.highlight pre')) blocks.add(el);
    const cut = [], view = window.innerWidth;
    let wide = 0;
    for (const block of blocks) {
        if (!block.getClientRects().length) continue;
        const els = [block, ...block.querySelectorAll('mjx-container')];
        let over = false, cued = false;
        for (const el of els) {
            if (el.getBoundingClientRect().right > view + %(slack)d) over = true;
            for (const s of [el, ...scrollers(el)]) {
                if (s.scrollWidth > s.clientWidth + %(slack)d) over = true;
                const style = getComputedStyle(s);
                if (s.scrollWidth > s.clientWidth + %(slack)d
                        && (style.maskImage || style.webkitMaskImage || 'none') !== 'none') cued = true;
            }
        }
        if (!over) continue;
        wide++;
        if (cued) continue;
        let text = block.textContent;
        try { text = MathJax.startup.document.getMathItemsWithin(block)[0].math; } catch (e) {}
        cut.push(`${block.tagName === 'PRE' ? 'code' : 'equation'} ${block.id || ''}: `
                 + text.trim().replace(/\s+/g, ' ').slice(0, 50));
    }
    const splits = [];
    for (const cell of article.querySelectorAll('table td, table th')) {
        const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
        for (let t = walker.nextNode(); t; t = walker.nextNode()) {
            if (t.parentElement.closest('mjx-container')) continue;
            const word = /[^\s_.\/,()=\[\]:-]{2,}[_.\/,()=\[\]:-]*/g;
            for (let m; (m = word.exec(t.data));) {
                const range = document.createRange();
                range.setStart(t, m.index);
                range.setEnd(t, m.index + m[0].length);
                const lines = new Set([...range.getClientRects()].filter(r => r.width > 0)
                                      .map(r => Math.round(r.top)));
                if (lines.size > 1) splits.push(m[0]);
            }
        }
    }
    return {wide, cut, splits};
}""" % {"slack": SLACK}

# In the dark theme: the contrast (WCAG ratio) of each figure's ink with the background it is
# seen on, and of each text of the explorers (convolution, pooling, batch norm) with its background.
CONTRAST = r"""async () => {
    const parse = c => {
        const m = c.match(/[\d.]+/g);
        return m ? {r: +m[0], g: +m[1], b: +m[2], a: m.length > 3 ? +m[3] : 1} : null;
    };
    const lum = (r, g, b) => {
        const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
        return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const ratio = (a, b) => (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const background = el => {
        for (let e = el; e; e = e.parentElement) {
            const c = parse(getComputedStyle(e).backgroundColor);
            if (c && c.a > 0.5) return c;
        }
        return parse(getComputedStyle(document.body).backgroundColor) || {r: 255, g: 255, b: 255};
    };
    const figures = [];
    for (const img of document.querySelectorAll('article.bd-article img')) {
        if (!img.complete) await new Promise(done => { img.onload = img.onerror = done; });
        if (!img.naturalWidth) continue;
        const w = Math.min(img.naturalWidth, 600), h = Math.round(img.naturalHeight * w / img.naturalWidth);
        const canvas = document.createElement('canvas');
        canvas.width = w; canvas.height = h;
        const context = canvas.getContext('2d');
        const bg = background(img);
        context.fillStyle = `rgb(${bg.r},${bg.g},${bg.b})`;
        context.fillRect(0, 0, w, h);
        context.drawImage(img, 0, 0, w, h);
        const data = context.getImageData(0, 0, w, h).data, values = [], counts = new Map();
        for (let k = 0; k < data.length; k += 4) {
            const l = lum(data[k], data[k + 1], data[k + 2]);
            values.push(l);
            const key = Math.round(l * 200);
            counts.set(key, (counts.get(key) || 0) + 1);
        }
        const mode = [...counts.entries()].sort((a, b) => b[1] - a[1])[0][0] / 200;
        values.sort((a, b) => a - b);
        // The ink: the darkest 1 % on a light background, the lightest 1 % on a dark one.
        const ink = mode > 0.18 ? values[Math.floor(values.length * 0.01)]
                                : values[Math.floor(values.length * 0.99)];
        figures.push({src: img.getAttribute('src').split('/').pop().slice(0, 24),
                      contrast: Math.round(ratio(mode, ink) * 10) / 10});
    }
    const explorer = [];
    for (const el of document.querySelectorAll('.cnn-explorer *')) {
        const own = [...el.childNodes].some(n => n.nodeType === 3 && n.data.trim());
        if (!own || !el.getClientRects().length) continue;
        let fg, bg;
        if (el instanceof SVGElement) {
            fg = parse(getComputedStyle(el).fill);
            const cell = el.closest('.cnn-cell');
            const rect = cell && cell.querySelector('.cnn-cell-bg');
            bg = rect ? parse(getComputedStyle(rect).fill) : background(el.closest('svg'));
        } else {
            fg = parse(getComputedStyle(el).color);
            bg = background(el);
        }
        if (!fg || !bg) continue;
        explorer.push({text: el.textContent.trim().slice(0, 30),
                       contrast: Math.round(ratio(lum(fg.r, fg.g, fg.b), lum(bg.r, bg.g, bg.b)) * 10) / 10});
    }
    return {theme: document.documentElement.dataset.theme, figures, explorer};
}"""

# Lower limits of the contrast ratios (WCAG 2: 4.5 for text).
FIGURE_CONTRAST = 4.5
TEXT_CONTRAST = 4.5


@dataclass(frozen=True)
class Page:
    dom: str  # the DOM at 1280 px once MathJax has typeset
    column: int  # the text column at 1280 px
    fits: dict  # characters per line that fit each kind of code block at 1280 px
    overflow: list  # blocks wider than the text column at 1280 px
    phone: dict  # the page's own width at 390 px
    narrow: dict  # blocks wider than the screen and words split in tables at 390 px
    dark: dict  # contrasts in the dark theme at 1280 px
    console: list  # console errors and failed or outside requests, on every load


def visit(browser, url: str, viewport: dict, scripts: list[str], site: str, scheme: str = "light"):
    """Load ``url`` once; return its DOM, what each script returns, and what went wrong."""
    page = browser.new_page(viewport=viewport, color_scheme=scheme)
    problems = []
    where = f"{viewport['width']} px, {scheme}"
    page.on("console", lambda m: problems.append(f"console error ({where}): {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"JavaScript error ({where}): {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed request ({where}): {r.url}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status} ({where}): {r.url}")
            if r.status >= 400 else None)
    page.on("request", lambda r: None if r.url.startswith((site, "data:", "blob:"))
            else problems.append(f"request outside the site ({where}): {r.url}"))
    try:
        page.goto(url, wait_until="load")
        page.evaluate(SETTLE, True)
        return page.content(), [page.evaluate(script) for script in scripts], problems
    finally:
        page.close()


@pytest.fixture(scope="module")
def pages(browser, site_url) -> dict[str, Page]:
    result = {}
    for doc in index().docs:
        url = f"{site_url}{doc}.html"
        dom, [wide], light = visit(browser, url, DESKTOP, [OVERFLOW], site_url)
        _, [phone, narrow], small = visit(browser, url, PHONE, [SIDEWAYS, PHONE_CHECKS], site_url)
        _, [dark], night = visit(browser, url, DESKTOP, [CONTRAST], site_url, "dark")
        result[doc] = Page(dom, wide["column"], wide["fits"], wide["found"], phone, narrow, dark,
                           light + small + night)
    return result


def test_no_console_errors_and_no_failed_or_outside_requests(pages):
    report = [f"{doc}: {problem}" for doc, page in pages.items() for problem in page.console]
    assert not report, "\n".join(report[:40])


def test_wide_blocks_show_that_they_scroll_on_a_phone(pages):
    report = [f"{doc}: {block}" for doc, page in pages.items() for block in page.narrow["cut"]]
    assert sum(page.narrow["wide"] for page in pages.values()) > 0, "no block wider than a phone"
    assert not report, ("cut off at 390 px with no sign that it scrolls:\n"
                        + "\n".join(report[:40]))


def test_tables_wrap_between_words_on_a_phone(pages):
    report = [f"{doc}: {', '.join(page.narrow['splits'][:8])}"
              for doc, page in pages.items() if page.narrow["splits"]]
    assert not report, "words split over two lines in tables at 390 px:\n" + "\n".join(report)


def test_figures_and_explorer_are_legible_in_the_dark_theme(pages):
    assert {page.dark["theme"] for page in pages.values()} == {"dark"}
    figures = [(doc, f) for doc, page in pages.items() for f in page.dark["figures"]]
    texts = [(doc, t) for doc, page in pages.items() for t in page.dark["explorer"]]
    assert figures and texts, "no figure or no explorer text measured"
    report = [f"{doc}: figure {f['src']}: contrast {f['contrast']} < {FIGURE_CONTRAST}"
              for doc, f in figures if f["contrast"] < FIGURE_CONTRAST]
    report += [f"{doc}: explorer text {t['text']!r}: contrast {t['contrast']} < {TEXT_CONTRAST}"
               for doc, t in texts if t["contrast"] < TEXT_CONTRAST]
    assert not report, "\n".join(report)


def test_math_is_typeset_by_mathjax(pages):
    doms = {doc: page.dom for doc, page in pages.items() if 'class="math' in page.dom}
    assert doms, "no page with math"
    for doc, dom in doms.items():
        assert "<mjx-container" in dom, f"{doc}: MathJax did not typeset"
        text = re.sub(r"<(script|style|pre|code)\b.*?</\1>", "", dom, flags=re.S)
        assert "\\[" not in text and "\\(" not in text, f"{doc}: untypeset TeX left on the page"
        # MathJax shows an undefined macro as red text and a TeX error as <mjx-merror>.
        undefined = re.findall(r'<mtext mathcolor="red">(\\[^<]*)', dom)
        assert not undefined, f"{doc}: undefined TeX macros {sorted(set(undefined))}"
        assert "<mjx-merror" not in dom, f"{doc}: a TeX error"


def describe(block: dict) -> str:
    what = block["kind"]
    if what == "equation" and block["label"]:
        what = f"equation ({block['label']})"
    elif what != "equation":
        what = f"{what}, {block['chars']} characters"
    return f"  {what}: {block['width']} px > {block['room']} px: {block['text']!r}"


def test_code_and_equations_fit_the_text_column(pages):
    report = []
    for doc, page in pages.items():
        if page.overflow:
            report.append(f"{doc} (text column {page.column} px, code lines of "
                          + ", ".join(f"{k} {v}" for k, v in sorted(page.fits.items()))
                          + " characters):")
            report.extend(describe(block) for block in page.overflow)
    assert not report, ("wider than the text column at 1280 px (listing: quoted from cnn/ with "
                        "literalinclude; cell: a chapter's code cell; code: code in the "
                        "prose or an exercise):\n" + "\n".join(report))


def test_pages_do_not_scroll_sideways_on_a_phone(pages):
    report = [
        f"{doc}: {page.phone['width']} px wide in a {page.phone['view']} px viewport, past it: "
        + "; ".join(page.phone["culprits"])
        for doc, page in pages.items()
        if page.phone["width"] > page.phone["view"] + SLACK
    ]
    assert not report, "\n".join(report)


def test_screenshot_of_a_chapter(browser, site_url):
    doc = next((d for d in ("book/conv_backward", "book/notation") if d in index().docs), index().docs[0])
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOT_DIR / f"{Path(doc).name}.png"
    target.unlink(missing_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 2400})
    try:
        page.goto(f"{site_url}{doc}.html", wait_until="load")
        page.evaluate(SETTLE, False)
        page.screenshot(path=str(target))
    finally:
        page.close()
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert target.stat().st_size > 20_000, "the screenshot looks blank"


# The kinds of link that show a preview: a page with such a link, the link (by its href), and
# what the preview must hold.
PREVIEW_KINDS = {
    "equation": ("book/deeper_cnn", "a.reference.internal[href*='.html#equation-']",
                 "mjx-container", ("Implemented by", "Verified by")),
    "figure": ("book/deeper_cnn", "a.reference.internal[href*='#fig-']", "figure img", ("Fig.",)),
    "exercise": ("book/deeper_cnn", "a.reference.internal[href*='#ex-']", ".exercise",
                 ("Exercise",)),
    "citation": ("book/deeper_cnn", "a.reference.internal[href*='bibliography.html#cite-']",
                 "div.citation", ()),
    "chapter": ("book/conv_backward", "a.reference.internal[href$='.html']", "h1", ()),
}


def test_previews_on_hover_and_focus_and_highlighted_targets(browser, site_url):
    page = browser.new_page(viewport=DESKTOP)
    outside = []
    page.on("request", lambda r: None if r.url.startswith((site_url, "data:", "blob:"))
            else outside.append(r.url))
    try:
        report, shown = [], None
        for k, (kind, (doc, selector, inside, words)) in enumerate(PREVIEW_KINDS.items()):
            if doc != shown:
                page.goto(f"{site_url}{doc}.html", wait_until="load")
                page.evaluate(SETTLE, False)
                shown = doc
            links = page.locator(f"article.bd-article {selector}").filter(visible=True)
            assert links.count(), f"{doc} has no visible link to a {kind}"
            link = links.first
            link.scroll_into_view_if_needed()
            # Alternately the mouse and the keyboard (focus), as a reader may use either.
            if k % 2:
                link.focus()
            else:
                page.mouse.move(0, 0)
                link.hover()
            box = page.locator("#cnn-preview")
            try:
                box.wait_for(state="visible", timeout=5000)
                page.wait_for_function(
                    "s => document.querySelector('#cnn-preview ' + s)", arg=inside, timeout=5000)
            except Exception:  # noqa: BLE001 - reported below with the kind of target
                report.append(f"{kind}: no preview with {inside} for {link.get_attribute('href')}")
                continue
            text = box.inner_text()
            report += [f"{kind}: the preview lacks {word!r}" for word in words if word not in text]
            if link.get_attribute("aria-describedby") != "cnn-preview":
                report.append(f"{kind}: the link is not described by its preview")
            page.keyboard.press("Escape")
            page.mouse.move(0, 0)
            box.wait_for(state="hidden", timeout=5000)
        assert not report, "\n".join(report)
        assert not outside, f"requests outside the site: {outside}"

        # A followed link's target is highlighted; other equations are not.
        target = page.locator("div.math[id^='equation-']").first.get_attribute("id")
        page.goto(f"{site_url}{shown}.html#{target}", wait_until="load")
        page.evaluate(SETTLE, False)
        outline = page.evaluate(
            "() => [...document.querySelectorAll('div.math[id]')].map("
            "e => [e.id, getComputedStyle(e).outlineStyle, getComputedStyle(e).backgroundColor])")
        styles = {eq: (style, colour) for eq, style, colour in outline}
        assert styles[target][0] != "none" and styles[target][1] != "rgba(0, 0, 0, 0)", styles[target]
        assert all(style == "none" for eq, (style, _) in styles.items() if eq != target)
    finally:
        page.close()


# What a student types, and the chapter that must come first in the site's search.
SEARCHES = {
    "He initialisation": "book/initialisation",
    "Kaiming": "book/initialisation",
    "im2col": "book/conv_forward",
    "col2im": "book/conv_backward",
    "receptive field": "book/conv_forward",
}


@pytest.mark.parametrize("query, chapter", SEARCHES.items())
def test_search_ranks_the_chapter_first(browser, site_url, query, chapter):
    page = browser.new_page(viewport=DESKTOP)
    try:
        page.goto(f"{site_url}search.html?q={urllib.parse.quote_plus(query)}", wait_until="load")
        first = page.locator("#search-results ul.search > li").first
        page.wait_for_function("""() => /Search finished|did not match/.test(
            (document.querySelector('#search-results') || {}).textContent || '')""", timeout=30_000)
        # The snippets are filled in as each page is fetched.
        page.wait_for_load_state("networkidle")
        href = first.locator("a").first.get_attribute("href")
        assert urllib.parse.urlsplit(href).path.removesuffix(".html").endswith(chapter), (
            f"{query!r}: first result {href}, not {chapter}")
        assert page.locator("#search-results p.context").count(), f"{query!r}: no snippet"
    finally:
        page.close()


# Words whose search snippets hold math (a formula near the word on its page).
MATH_SEARCHES = ("biased", "subgradient")
RAW_TEX = re.compile(r"\\[(\[)\]]|\\[A-Za-z]+|[_^]\{")


@pytest.mark.parametrize("query", MATH_SEARCHES)
def test_search_snippets_show_formulas_without_raw_tex(browser, site_url, query):
    page = browser.new_page(viewport=DESKTOP)
    try:
        page.goto(f"{site_url}search.html?q={urllib.parse.quote_plus(query)}", wait_until="load")
        page.wait_for_function("""() => /Search finished|did not match/.test(
            (document.querySelector('#search-results') || {}).textContent || '')""", timeout=30_000)
        page.wait_for_load_state("networkidle")
        snippets = page.locator("#search-results p.context").all_text_contents()
        assert snippets, f"{query!r}: no snippet"
        raw = [text for text in snippets if RAW_TEX.search(text)]
        assert not raw, f"{query!r}: raw TeX in the snippets: {raw[:3]}"
        # The formula is still there, as text: the page's own TeX, converted.
        source = page.evaluate("""async query => {
            const hits = [];
            for (const a of document.querySelectorAll('#search-results ul.search > li > a')) {
                const html = await (await fetch(a.href.split('#')[0])).text();
                const at = html.toLowerCase().indexOf(query);
                if (at >= 0) hits.push(html.slice(Math.max(0, at - 600), at + 600));
            }
            return hits; }""", query)
        assert any("\\(" in text or "\\[" in text for text in source), f"{query!r}: no math near it"
        plain = page.evaluate("tex => window.cnnReader.plainTeX(tex)", r"\mu_c")
        assert plain == "\u03bc_c"
        assert any(re.search("[\u0300-\u036f\u03b1-\u03c9\u221a\u2211\u2202]", text)
                   for text in snippets), f"{query!r}: no formula shown in {snippets[:2]}"
    finally:
        page.close()


class LinkCollector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key) and tag in {"a", "link", "script", "img", "source"}:
                self.links.append(attrs[key])


@functools.cache
def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


@functools.cache
def parse(url: str) -> LinkCollector:
    collector = LinkCollector()
    collector.feed(fetch(url).decode("utf-8", errors="replace"))
    return collector


def test_every_internal_and_download_link_resolves(site_url):
    html = build_site().html
    pages = [p.relative_to(html).as_posix() for p in html.rglob("*.html") if not p.relative_to(html).as_posix().startswith("_")]
    broken = []
    for page_path in pages:
        page_url = urllib.parse.urljoin(site_url, page_path)
        for link in parse(page_url).links:
            url = urllib.parse.urljoin(page_url, link)
            if not url.startswith(site_url):
                continue  # external: launch buttons, repository, DOIs
            resource, _, fragment = url.partition("#")
            resource = resource.split("?")[0]
            try:
                fetch(resource)
            except urllib.error.HTTPError as error:
                broken.append(f"{page_path}: {link} ({error.code})")
                continue
            if fragment and resource.endswith(".html") and urllib.parse.unquote(fragment) not in parse(resource).ids:
                broken.append(f"{page_path}: {link} (no anchor #{fragment})")
    assert not broken, "\n".join(sorted(set(broken))[:50])


def test_a_missing_browser_is_skipped_locally_and_fails_under_ci(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium"):
        find_chromium()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        find_chromium()
