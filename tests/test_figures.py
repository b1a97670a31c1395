"""Figures a reader can use: meaningful alternative text, and sharp on high-density screens.

Read from the strict build of ``_site.build_site()``. Every ``<img>`` on a chapter page must say in
words what it shows (not be empty, not be its own file name or hash, as MyST-NB writes when a cell
sets no ``mystnb: image: alt:``). Every image must be sharp at twice the CSS pixel density: an SVG
is, and a raster image (PNG, JPEG, ...) must have at least twice as many pixels across as it is
displayed wide. The displayed width is measured in the system Chromium through Playwright; that
part is skipped locally without a browser and fails under ``CI=true``, like the browser check.
"""

from __future__ import annotations

import base64
import html.parser
import os
import re
import shutil
import struct
from pathlib import Path

import pytest

from _site import build_site, index, serve

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
MIN_ALT_WORDS = 4
RASTER = re.compile(r"\.(png|jpe?g|gif|webp|bmp)$", re.I)
# A file name, or the hex digest MyST-NB names its output files by.
FILE_NAME = re.compile(r"^\S+\.(png|svg|jpe?g|gif|webp|bmp|pdf)$|^[0-9a-f]{16,}$", re.I)
# Only images inside the page's article are the book's; the theme adds none there.
ARTICLE = re.compile(r'<article class="bd-article".*?</article>', re.S)


class ImageCollector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.images: list[dict] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))


def images_of(page_html: str) -> list[dict]:
    collector = ImageCollector()
    article = ARTICLE.search(page_html)
    collector.feed(article.group(0) if article else page_html)
    return collector.images


def alt_problem(image: dict) -> str | None:
    """Why an image's alt text does not say what it shows, or None when it does."""
    alt = (image.get("alt") or "").strip()
    src = image.get("src", "")
    if not alt:
        return "no alt text"
    if FILE_NAME.match(alt) or alt == Path(src).name or alt == Path(src).stem:
        return f"alt text is a file name ({alt!r})"
    if len(alt.split()) < MIN_ALT_WORDS:
        return f"alt text too short to say what the figure shows ({alt!r})"
    return None


@pytest.fixture(scope="module")
def site():
    build = build_site()
    if build.returncode != 0:
        pytest.fail("the strict build failed (see test_book.py)")
    return build.html


def chapter_images(site: Path) -> dict[str, list[dict]]:
    return {doc: images_of((site / f"{doc}.html").read_text(encoding="utf-8"))
            for doc in index().docs}


@pytest.mark.book
def test_chapters_have_figures(site):
    # Otherwise the checks below would pass on a site without images.
    assert sum(len(images) for images in chapter_images(site).values()) >= 20


@pytest.mark.book
def test_every_image_says_what_it_shows(site):
    problems = [f"{doc}: {image.get('src')}: {problem}"
                for doc, images in chapter_images(site).items() for image in images
                if (problem := alt_problem(image))]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("image, problem", [
    ({"src": "../_images/ab12.png"}, "no alt text"),
    ({"src": "../_images/ab12.png", "alt": "  "}, "no alt text"),
    ({"src": "../_images/3f9a0c1d2e4b5a6c7d8e9f00.png",
      "alt": "3f9a0c1d2e4b5a6c7d8e9f00.png"}, "file name"),
    ({"src": "../_images/3f9a0c1d2e4b5a6c7d8e9f00.png", "alt": "3f9a0c1d2e4b5a6c7d8e9f00"},
     "file name"),
    ({"src": "../_images/plot.svg", "alt": "figure.svg"}, "file name"),
    ({"src": "../_images/plot.svg", "alt": "plot"}, "file name"),
    ({"src": "../_images/plot.svg", "alt": "a plot"}, "too short"),
])
def test_the_alt_check_rejects_empty_and_file_name_alt_texts(image, problem):
    assert problem in alt_problem(image)


def test_the_alt_check_accepts_a_description():
    assert alt_problem({"src": "x.svg", "alt": "Learning curves of two networks over 12 epochs"}) is None


# -- resolution ------------------------------------------------------------------------------

def launch_chromium(playwright):
    """The system Chromium under Playwright; skipped locally, a failure under CI=true."""
    if not Path(CHROMIUM).is_file() and not shutil.which("chromium"):
        message = "Chromium is needed to measure displayed image sizes: sudo apt-get install chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but no browser: {message}")
        pytest.skip(message)
    executable = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        message = "Playwright is needed for the resolution check: pip install -e '.[test]'"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {message}")
        pytest.skip(message)
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


MEASURE = """() => [...document.querySelectorAll("article.bd-article img, body.test img")].map(
    img => ({src: img.getAttribute("src"), natural: img.naturalWidth,
             shown: img.getBoundingClientRect().width, complete: img.complete}))"""


def resolution_problems(page, url: str, viewport_width: int) -> list[str]:
    page.set_viewport_size({"width": viewport_width, "height": 1000})
    page.goto(url, wait_until="load")
    problems = []
    for image in page.evaluate(MEASURE):
        src = image["src"] or ""
        if not image["complete"] or image["natural"] == 0:
            problems.append(f"{src}: did not load")
        elif src.lower().endswith(".svg") or src.startswith("data:image/svg"):
            continue  # vector: sharp at any density
        elif image["natural"] < 2 * image["shown"] - 0.5:
            problems.append(f"{src}: {image['natural']} px wide, shown {image['shown']:.0f} CSS px "
                            f"wide (needs at least {2 * image['shown']:.0f} px for 2x screens)")
    return problems


@pytest.mark.book
def test_every_image_is_sharp_on_high_density_screens(site, browser):
    base = serve(site)
    page = browser.new_page()
    problems = []
    # A wide desktop window and a narrow one (the theme's layout changes in between).
    for width in (1400, 800):
        for doc in index().docs:
            problems += [f"{doc} ({width} px window): {p}"
                         for p in resolution_problems(page, f"{base}{doc}.html", width)]
    page.close()
    assert not problems, "\n".join(problems)


def png(width: int, height: int) -> bytes:
    """A valid grey PNG of the given size (only its size matters here)."""
    import zlib

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.mark.book
def test_the_resolution_check_rejects_a_1x_png_and_accepts_2x_and_svg(browser, tmp_path):
    def data_url(kind, payload):
        return f"data:{kind};base64,{base64.b64encode(payload).decode()}"

    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="300" height="100"/>'
    (tmp_path / "page.html").write_text(
        '<html><body class="test">'
        f'<img alt="one" src="{data_url("image/png", png(300, 100))}" width="300">'
        f'<img alt="two" src="{data_url("image/png", png(600, 200))}" width="300">'
        f'<img alt="three" src="{data_url("image/svg+xml", svg)}">'
        "</body></html>", encoding="utf-8")
    page = browser.new_page()
    problems = resolution_problems(page, serve(tmp_path) + "page.html", 1000)
    page.close()
    assert len(problems) == 1 and "300 px wide, shown 300 CSS px" in problems[0]
