"""The strict book build: clean, warnings as errors, numbering and downloads as promised."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from _site import ROOT, build_site, index, myst2ipynb
from test_notebooks import myst_leftovers

from cnnbook import release

CHAPTERS = myst2ipynb.notebook_docs(ROOT)


@pytest.fixture(scope="module")
def site():
    build = build_site()
    assert build.returncode == 0, f"strict build failed after {build.seconds:.0f} s:\n{build.log[-6000:]}"
    return build


def page(site, doc: str) -> str:
    return (site.html / f"{doc}.html").read_text(encoding="utf-8")


@pytest.mark.book
def test_strict_build_passes_without_warnings(site):
    assert not re.findall(r".*: WARNING: .*", site.log)
    print(f"clean strict build: {site.seconds:.0f} s")


@pytest.mark.book
def test_every_toc_page_is_built(site):
    missing = [doc for doc in index().docs if not (site.html / f"{doc}.html").exists()]
    assert not missing


@pytest.mark.book
def test_chapters_and_equations_are_numbered_as_the_notebooks_say(site):
    """The exporter's "Eq. (4.3)", "Exercise 4.1", "Fig. 4.2" are the numbers the site shows."""
    checked = 0
    for label, target in index().targets.items():
        if not target.number:
            continue
        html = page(site, target.docname)
        if target.anchor.startswith("equation-"):
            shown = re.search(rf'<span class="eqno">\(([\d.]+)\)<a class="headerlink" href="#{re.escape(target.anchor)}"', html)
        else:
            # The element with the label's id, then its caption number.
            after = html[html.find(f'id="{target.anchor}"'):]
            shown = re.search(r'<span class="caption-number">(?:[A-Za-z.]+ )?([\d.]+)', after)
        assert shown, f"{label}: no numbered element with id {target.anchor} in {target.docname}"
        assert shown.group(1).rstrip(".") == target.number, (
            f"{label}: the site shows {shown.group(1)}, the notebooks say {target.number}")
        checked += 1
    assert checked or not CHAPTERS


@pytest.mark.parametrize("doc", CHAPTERS)
@pytest.mark.book
def test_chapter_offers_its_executed_notebook(site, doc):
    html = page(site, doc)
    name = f"{Path(doc).parent}/{myst2ipynb.download_name(doc, index())}"
    assert f'href="../_sources/{name}"' in html
    nb = nbformat.read(site.html / "_sources" / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "%pip install" in code[0].source
    assert any(c.outputs for c in code[1:]) or len(code) == 1, "the download should carry the outputs"
    assert not [c.source for c in nb.cells if c.cell_type == "markdown" and myst_leftovers(c.source)]


@pytest.mark.parametrize("doc", CHAPTERS)
@pytest.mark.book
def test_launch_buttons_open_the_committed_notebook(site, doc):
    html = page(site, doc)
    path = myst2ipynb.notebook_path(doc)
    colab = re.search(r'href="(https://colab\.research\.google\.com/[^"]+)"', html)
    binder = re.search(r'href="(https://mybinder\.org/[^"]+)"', html)
    # The notebook of the release the page belongs to, not the main branch's.
    ref = release.tag(release.read_version(ROOT))
    assert colab and colab.group(1).endswith(f"/blob/{ref}/{path}")
    assert binder and binder.group(1).endswith(f"/{ref}?urlpath=lab/tree/{path}")
    # The theme's ".pdf" entry only opened the print dialog: it is gone.
    assert "download-pdf-button" not in html and "window.print()" not in html
    assert (ROOT / path).exists()


@pytest.mark.book
def test_mathjax_is_served_by_the_site(site):
    html = page(site, index().docs[0])
    assert '_static/mathjax/tex-chtml.js' in html, "MathJax fell back to the CDN (see the build log)"
    assert (site.html / "_static" / "mathjax" / "tex-chtml.js").exists()
    assert (site.html / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()


def test_api_page_documents_every_module():
    api = (ROOT / "book" / "api.md").read_text(encoding="utf-8")
    modules = sorted(p.stem for p in (ROOT / "cnn").glob("*.py") if not p.stem.startswith("_"))
    assert not [m for m in modules if f".. automodule:: cnn.{m}\n" not in api]


@pytest.mark.book
def test_api_page_shows_every_module_s_functions(site):
    html = page(site, "book/api")
    modules = sorted(p.stem for p in (ROOT / "cnn").glob("*.py") if not p.stem.startswith("_"))
    assert not [m for m in modules if f'id="cnn.{m}.' not in html], "autodoc documented no member"


def test_mathjax_falls_back_to_the_cdn_when_npm_is_missing(monkeypatch, tmp_path):
    import cnnbook

    cdn = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"
    monkeypatch.setattr(cnnbook.shutil, "which", lambda name: None)
    messages = []
    monkeypatch.setattr(cnnbook.logger, "info", lambda message, **kwargs: messages.append(message))
    app = SimpleNamespace(outdir=str(tmp_path / "_build" / "html"))
    config = SimpleNamespace(mathjax_path=cdn)
    cnnbook.setup_mathjax(app, config)
    assert config.mathjax_path == cdn and app.cnnbook_mathjax is None
    assert "npm is not installed" in messages[0] and cdn in messages[0]


def test_citation_file_names_the_book_and_its_stable_urls():
    import yaml

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0"
    assert {"message", "title", "authors"} <= cff.keys()
    assert cff["url"] == index().site_url
    assert cff["repository-code"] == index().repo_url
    assert cff["preferred-citation"]["url"] == index().site_url
    intro = (ROOT / "book" / "intro.md").read_text(encoding="utf-8")
    assert "## How to cite" in intro and "```bibtex" in intro and index().site_url in intro


# -- the release and the PDF editions on the site ----------------------------------------

@pytest.mark.book
def test_every_page_shows_the_title_the_version_and_its_date(site):
    import yaml
    from cnnbook import release

    # The title, not Sphinx's placeholder "Project name not set" for an unset `project`.
    title = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["title"]
    footer = (f"{title}, version {release.read_version(ROOT)} "
              f"({release.long_date(release.release_date(ROOT))})")
    assert not [doc for doc in index().docs if footer not in page(site, doc)]


@pytest.mark.book
def test_intro_and_navigation_lead_to_the_pdf_editions(site):
    intro = page(site, index().docs[0])
    assert re.search(r'href="downloads.html"><span class="doc">PDF editions', intro), (
        "no PDF entry in the introduction's text")
    # The sidebar of any chapter lists the page.
    nav = page(site, "book/dense")
    assert re.search(r'<a class="reference internal" href="downloads.html">\s*PDF editions', nav)


@pytest.mark.book
def test_without_tex_the_site_says_how_to_make_the_pdfs(site):
    """The tested site is built as make book without TeX builds it: no PDF to link."""
    from cnnbook import pdfbook
    from cnnbook import release

    html = page(site, "book/downloads")
    text = " ".join(re.sub(r"<[^>]+>", "", html).split())
    assert "pdf-editions-missing" in html
    assert f"install TeX Live ({pdfbook.INSTALL_HINT}), then run make pdf and make book" in text
    for edition in release.EDITIONS:
        assert release.pdf_name(edition, release.read_version(ROOT)) in text
    assert "/pdf/" not in html and not (site.html / "pdf").exists()
    assert "download-pdf-student-button" not in page(site, "book/dense")


@pytest.mark.book
def test_changes_page_shows_every_changelog_entry_and_the_erratum_form(site):
    from cnnbook import release

    html = page(site, "book/changes")
    for entry in release.changelog(ROOT):
        heading = entry.version + (f" ({entry.date.isoformat()})" if entry.date else "")
        assert f"{heading}<a class=\"headerlink\"" in html, heading
    assert f'href="{index().repo_url}/issues/new?template=erratum.yml"' in html
