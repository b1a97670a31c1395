"""The built site in a real browser (headless Chromium) over a loopback HTTP server."""

from __future__ import annotations

import functools
import html.parser
import os
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from _site import ROOT, build_site, index, serve

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # MathJax typesets asynchronously; virtual time lets the page finish first.
    "--virtual-time-budget=20000",
]
SCREENSHOT_DIR = ROOT / "_build" / "screenshots"


def find_chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = "headless Chromium is needed for the browser check: sudo apt-get install chromium"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but no browser: {message}")
    pytest.skip(message)


def chromium(*args: str) -> str:
    with tempfile.TemporaryDirectory(prefix="cnn-chromium-") as profile:
        result = subprocess.run(
            [find_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=180, check=False,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def site_url():
    build = build_site()
    if build.returncode != 0:
        pytest.fail("the strict build failed (see test_book.py)")
    return serve(build.html)


@pytest.fixture(scope="module")
def browser():
    return find_chromium()


def math_pages() -> list[str]:
    return [doc for doc in index().docs if 'class="math' in (build_site().html / f"{doc}.html").read_text()]


@functools.cache
def typeset_doms(base: str) -> dict[str, str]:
    docs = math_pages()
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(docs, pool.map(lambda doc: chromium("--dump-dom", f"{base}{doc}.html"), docs)))


def test_math_is_typeset_by_mathjax(browser, site_url):
    doms = typeset_doms(site_url)
    assert doms, "no page with math"
    for doc, dom in doms.items():
        assert "<mjx-container" in dom, f"{doc}: MathJax did not typeset"
        text = re.sub(r"<(script|style|pre|code)\b.*?</\1>", "", dom, flags=re.S)
        assert "\\[" not in text and "\\(" not in text, f"{doc}: untypeset TeX left on the page"
        # MathJax shows an undefined macro as red text and a TeX error as <mjx-merror>.
        undefined = re.findall(r'<mtext mathcolor="red">(\\[^<]*)', dom)
        assert not undefined, f"{doc}: undefined TeX macros {sorted(set(undefined))}"
        assert "<mjx-merror" not in dom, f"{doc}: a TeX error"


def test_screenshot_of_a_chapter(browser, site_url):
    doc = next((d for d in ("book/conv_backward", "book/notation") if d in index().docs), index().docs[0])
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOT_DIR / f"{Path(doc).name}.png"
    target.unlink(missing_ok=True)
    chromium("--window-size=1280,2400", "--hide-scrollbars", f"--screenshot={target}", f"{site_url}{doc}.html")
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
