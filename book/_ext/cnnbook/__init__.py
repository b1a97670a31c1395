"""Local Sphinx extension for the book (loaded from ``_config.yml``).

* MathJax 3 is served by the site itself: the build fetches the ``mathjax`` package
  from the npm registry into ``_build/mathjax`` (nothing third-party is committed)
  and copies its ``es5`` bundle to ``_static/mathjax``. When that is impossible the
  site keeps Sphinx's CDN default and the build says so.
* Every chapter page offers the notebook executed during this build as ``.ipynb``,
  rewritten into plain Jupyter by :mod:`myst2ipynb` (no raw MyST, install cell first).
* ``{literalinclude}`` takes ``:docstring: summary`` (see :mod:`listing`).
* The student notebooks of ``assignments/`` are offered for download (see
  :mod:`assignments`).
* The Binder and Colab buttons open ``notebooks/<chapter>.ipynb``, the committed
  copy in the repository (Colab cannot open a MyST ``.md`` file).
* The version and its date in the footer, the PDF editions and the site's links to
  them (see :mod:`pdfbook`).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import nbformat
import sphinxcontrib.bibtex.plugin
from sphinx.util import logging
from sphinxcontrib.bibtex.style.referencing import BracketStyle
from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle

from . import assignments, kits, listing, myst2ipynb, pdfbook, provenance, theme
from .release import read_version, tag

logger = logging.getLogger(__name__)

MATHJAX_SPEC = "mathjax@3"
MATHJAX_ENTRY = "tex-chtml.js"
# What tex-chtml.js loads at run time (fonts, TeX extensions, menu, accessibility);
# the other bundles of the package are not needed.
MATHJAX_PARTS = (MATHJAX_ENTRY, "output/chtml", "input/tex", "ui", "a11y", "sre")
CDN_FALLBACK_MESSAGE = (
    "cnnbook: could not install MathJax 3 from the npm registry ({reason}); "
    "the site will load MathJax from the CDN ({url}) and needs network access to show math."
)


def fetch_mathjax(cache: Path) -> Path:
    """Unpack MathJax's ``es5`` bundle from the npm registry into ``cache``; return its folder."""
    es5 = cache / "package" / "es5"
    if (es5 / MATHJAX_ENTRY).exists():
        return es5
    cache.mkdir(parents=True, exist_ok=True)
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed")
    result = subprocess.run(
        [npm, "pack", MATHJAX_SPEC, "--json", "--prefer-offline", "--pack-destination", str(cache)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"npm pack failed: {result.stderr.strip()[-300:]}")
    tarball = cache / json.loads(result.stdout)[0]["filename"]
    with tarfile.open(tarball) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith("package/es5/")]
        # The "data" filter (no links out of the folder) exists from Python 3.10.12/3.11.4.
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        archive.extractall(cache, members=members, **safe)
    tarball.unlink()
    return es5


def setup_mathjax(app, config) -> None:
    cache = Path(app.outdir).parent / "mathjax"
    try:
        app.cnnbook_mathjax = fetch_mathjax(cache)
    except (OSError, RuntimeError, subprocess.SubprocessError, ValueError, KeyError) as error:
        app.cnnbook_mathjax = None
        logger.info(CDN_FALLBACK_MESSAGE.format(reason=error, url=config.mathjax_path), color="red")
        return
    # Relative paths are resolved against _static/ by Sphinx.
    config.mathjax_path = f"mathjax/{MATHJAX_ENTRY}"
    logger.info(f"cnnbook: serving MathJax 3 from _static/mathjax (fetched into {cache})")


def copy_mathjax(app, exception) -> None:
    if exception is not None or app.builder.format != "html" or app.cnnbook_mathjax is None:
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    for part in MATHJAX_PARTS:
        source = app.cnnbook_mathjax / part
        if source.is_dir():
            shutil.copytree(source, target / part, dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / part)


def book_index(app) -> myst2ipynb.BookIndex:
    if getattr(app, "cnnbook_index", None) is None:
        app.cnnbook_index = myst2ipynb.BookIndex.load(app.srcdir)
    return app.cnnbook_index


def publish_notebook(app, pagename, templatename, context, doctree) -> None:
    """Offer the executed, plain-Jupyter notebook and point launch buttons at notebooks/."""
    if app.builder.format != "html":
        return
    index = book_index(app)
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if pagename not in index.notebook_docs() or not executed.exists():
        return
    nb = myst2ipynb.export_notebook(nbformat.read(executed, as_version=4), pagename, index)
    # The theme links its .ipynb download to _sources/<page>.ipynb; publish our copy there,
    # and under the numbered name that the button offers (05-conv_backward.ipynb).
    download = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    download.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, download)
    name = myst2ipynb.download_name(pagename, index)
    if name != download.name:
        shutil.copy2(download, download.with_name(name))

    url = context["pathto"]("_sources", 1) + f"/{Path(pagename).parent}/{name}"
    if not theme.add_download_button(
            context, url=url, text=".ipynb", icon="fas fa-code",
            tooltip="Download notebook file", label="download-notebook-button",
            first=True):
        # The theme's own .ipynb entry: give it the numbered name.
        for button in (theme.button_group(context, "download-buttons") or {}).get(
                "buttons", []):
            if button.get("label") == "download-notebook-button":
                button["url"] = url
    theme.set_launch_urls(context, theme.launch_urls(
        app, index, myst2ipynb.notebook_path(pagename), tag(read_version())))


def drop_print_button(app, pagename, templatename, context, doctree) -> None:
    """The theme's ".pdf" entry only opens the browser's print dialog: the download menu
    offers the edition's PDFs instead (pdfbook), so the print entry goes."""
    theme.remove_button(context, "download-buttons", "download-pdf-button")


def theme_mode_default(app, config) -> None:
    """Light or dark as the reader's system says: without a default the theme logs a console
    error ("Got invalid theme mode") on a first visit."""
    config.html_context.setdefault("default_mode", "auto")


def drop_repeated_scripts(app, pagename, templatename, context, doctree) -> None:
    """Each script once: Jupyter Book adds sphinx-thebe's and togglebutton's inline settings
    twice, and a second ``const THEBE_JS_URL`` is a JavaScript error on every page."""
    seen, kept = set(), []
    for script in context.get("script_files", []):
        # The same inline script comes once with filename None and once with "".
        key = (str(getattr(script, "filename", script) or ""),
               tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def round_brackets() -> BracketStyle:
    return BracketStyle(left="(", right=")")


@dataclasses.dataclass
class RoundAuthorYearStyle(AuthorYearReferenceStyle):
    """Author-year citations in round brackets: (LeCun et al., 1998), Kingma and Ba (2015)."""

    bracket_parenthetical: BracketStyle = dataclasses.field(default_factory=round_brackets)
    bracket_textual: BracketStyle = dataclasses.field(default_factory=round_brackets)
    bracket_author: BracketStyle = dataclasses.field(default_factory=round_brackets)
    bracket_label: BracketStyle = dataclasses.field(default_factory=round_brackets)
    bracket_year: BracketStyle = dataclasses.field(default_factory=round_brackets)


sphinxcontrib.bibtex.plugin.register_plugin(
    "sphinxcontrib.bibtex.style.referencing", "author_year_round", RoundAuthorYearStyle
)


def setup(app):
    listing.setup(app)
    provenance.setup(app)
    assignments.setup(app)
    kits.setup(app)
    pdfbook.setup(app)
    app.connect("config-inited", setup_mathjax)
    app.connect("config-inited", theme_mode_default)
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    app.connect("build-finished", copy_mathjax)
    # After sphinx-book-theme (priority 501) has built the header buttons.
    app.connect("html-page-context", publish_notebook, priority=502)
    app.connect("html-page-context", drop_print_button, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1.0"}
