"""The strict book build shared by test_book.py and test_browser.py (built once per session)."""

from __future__ import annotations

import atexit
import functools
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cnnbook import myst2ipynb

ROOT = Path(__file__).resolve().parents[1]

# Sphinx's warnings are also errors with -W; the log is kept to show them.
BUILD_TIMEOUT = 1200


@dataclass(frozen=True)
class Build:
    returncode: int
    log: str
    html: Path
    seconds: float


@functools.cache
def index() -> myst2ipynb.BookIndex:
    return myst2ipynb.BookIndex.load(ROOT)


@functools.cache
def build_site() -> Build:
    """``jupyter-book build . -W -n --keep-going`` from clean, into a fresh temporary folder.

    A temporary output folder makes the build clean by construction (no stale
    _build, no execution cache) and lets two people run the suite at once.
    """
    out = Path(tempfile.mkdtemp(prefix="cnn-book-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    # The site as make book builds it without TeX: PDFs made by a local `make pdf` in
    # _build/pdf must not change what is tested (tests/test_pdf.py builds its own).
    no_pdfs = out / "no-pdfs"
    env = {**os.environ, "CNNBOOK_PDF_DIR": str(no_pdfs)}
    start = time.perf_counter()
    result = subprocess.run(
        [str(jupyter_book), "build", str(ROOT), "--path-output", str(out), "-W", "-n", "--keep-going"],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False, env=env,
    )
    log = result.stdout + result.stderr
    # Kept for a person to read when the build test fails.
    (ROOT / "_build").mkdir(exist_ok=True)
    (ROOT / "_build" / "test-build.log").write_text(log, encoding="utf-8")
    return Build(result.returncode, log, out / "_build" / "html", time.perf_counter() - start)


@dataclass(frozen=True)
class PdfBuild:
    returncode: int
    log: str
    pdfs: Path  # the folder holding both editions
    build: Path  # the LaTeX builds (sources, .aux, logs), one folder per edition
    seconds: float


@functools.cache
def build_pdfs() -> PdfBuild:
    """``make pdf`` (scripts/build_pdf.py), both editions, into a fresh temporary folder."""
    out = Path(tempfile.mkdtemp(prefix="cnn-pdf-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_pdf.py"),
         "--out", str(out / "pdf"), "--build-dir", str(out / "build")],
        capture_output=True, text=True, timeout=2 * BUILD_TIMEOUT, check=False,
    )
    log = result.stdout + result.stderr
    (ROOT / "_build").mkdir(exist_ok=True)
    (ROOT / "_build" / "test-pdf.log").write_text(log, encoding="utf-8")
    return PdfBuild(result.returncode, log, out / "pdf", out / "build", time.perf_counter() - start)


def site_numbers(html: Path) -> dict[str, str]:
    """Label -> the number the built site shows ("5.4"), for every numbered target."""
    import re

    numbers = {}
    for label, target in index().targets.items():
        if not target.number:
            continue
        page = (html / f"{target.docname}.html").read_text(encoding="utf-8")
        if target.anchor.startswith("equation-"):
            shown = re.search(rf'<span class="eqno">\(([\d.]+)\)<a class="headerlink" '
                              rf'href="#{re.escape(target.anchor)}"', page)
        else:
            after = page[page.find(f'id="{target.anchor}"'):]
            shown = re.search(r'<span class="caption-number">(?:[A-Za-z.]+ )?([\d.]+)', after)
        if shown:
            numbers[label] = shown.group(1).rstrip(".")
    return numbers


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@functools.cache
def serve(directory: Path) -> str:
    """Serve ``directory`` on a free loopback port for the rest of the session; return its URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    atexit.register(server.shutdown)
    return f"http://127.0.0.1:{server.server_port}/"
