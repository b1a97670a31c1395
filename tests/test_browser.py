"""The built site in a real browser: the system Chromium driven by Playwright over loopback HTTP.

Every page is loaded once at a desktop width (1280 px) and once at a phone width (390 px).
At 1280 px the math must be typeset by MathJax and every code block and display equation
must fit the text column; at 390 px the page itself must not scroll sideways (a block may
scroll inside its own box there).
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


@dataclass(frozen=True)
class Page:
    dom: str  # the DOM at 1280 px once MathJax has typeset
    column: int  # the text column at 1280 px
    fits: dict  # characters per line that fit each kind of code block at 1280 px
    overflow: list  # blocks wider than the text column at 1280 px
    phone: dict  # the page's own width at 390 px


def visit(browser, url: str, viewport: dict, script: str):
    page = browser.new_page(viewport=viewport)
    try:
        page.goto(url, wait_until="load")
        page.evaluate(SETTLE, True)
        return page.content(), page.evaluate(script)
    finally:
        page.close()


@pytest.fixture(scope="module")
def pages(browser, site_url) -> dict[str, Page]:
    result = {}
    for doc in index().docs:
        url = f"{site_url}{doc}.html"
        dom, wide = visit(browser, url, DESKTOP, OVERFLOW)
        _, phone = visit(browser, url, PHONE, SIDEWAYS)
        result[doc] = Page(dom, wide["column"], wide["fits"], wide["found"], phone)
    return result


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
