"""Teacher kits' text parts: every labelled equation of a chapter, numbered as in the
release, compiles with LaTeX; the chapter's share of the bibliography is complete."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from _site import ROOT, index
from cnnbook import kits

CHAPTERS = [doc for doc, n in index().numbers.items() if isinstance(n, int)
            and kits.equations(ROOT, doc)]


@pytest.mark.parametrize("doc", CHAPTERS)
def test_every_labelled_equation_of_the_chapter_with_its_number(doc):
    labels = [label for label, _ in kits.equations(ROOT, doc)]
    defined = [label for label, target in index().targets.items()
               if target.docname == doc and label.startswith("eq-")]
    assert sorted(labels) == sorted(defined)
    tex = kits.equations_tex(doc, index())
    for label in labels:
        assert f"\\label{{{label}}}\\tag{{{index().targets[label].number}}}" in tex


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="needs TeX Live")
def test_the_equations_compile(tmp_path):
    body = "\n".join(kits.equations_tex(doc, index()) for doc in CHAPTERS)
    (tmp_path / "all.tex").write_text(
        "\\documentclass{article}\\usepackage{amsmath,amssymb}\\begin{document}\n"
        + body + "\n\\end{document}\n", encoding="utf-8")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error",
                           "all.tex"], cwd=tmp_path, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:]


@pytest.mark.parametrize("doc", CHAPTERS)
def test_slides_have_a_frame_per_section_and_every_equation_numbered(doc):
    tex = kits.slides_tex(doc, index())
    headings = [heading for heading, _ in kits.sections(ROOT, doc)]
    assert headings and "Summary" in headings
    for heading in headings:
        assert f"{{{kits._latex_text(heading)}}}" in tex
    for label, _ in kits.equations(ROOT, doc):
        assert f"\\tag{{{index().targets[label].number}}}" in tex


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="needs TeX Live")
@pytest.mark.parametrize("doc", ["book/conv_backward", "book/batchnorm"])
def test_slides_compile_with_beamer(tmp_path, doc):
    (tmp_path / "slides.tex").write_text(kits.slides_tex(doc, index()), encoding="utf-8")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error",
                           "slides.tex"], cwd=tmp_path, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    assert (tmp_path / "slides.pdf").stat().st_size > 0


@pytest.mark.parametrize("doc", CHAPTERS)
def test_the_chapter_s_references(doc):
    bib = kits.bibliography(ROOT, doc)
    for key in kits.cited_keys(ROOT, doc):
        assert f"{{{key}," in bib


PAGE = """<figure class="align-default" id="fig-conv-dx">
<img alt="The input gradient" src="../_images/abc123.svg" />
<figcaption>
<p><span class="caption-number">Fig. 5.2 </span><span class="caption-text">The input
gradient <span class="math">\\(\\bar x\\)</span> &amp; its windows.</span>
<a class="headerlink" href="#fig-conv-dx">#</a></p>
</figcaption>
</figure>"""


def test_figures_are_found_with_number_and_plain_caption():
    assert kits.figures(PAGE) == [
        ("5.2", "../_images/abc123.svg", "The input gradient \\(\\bar x\\) & its windows.")]
    assert kits.credit("5.2", "0.3.0") == \
        "CC BY 4.0, CNN from Scratch with NumPy v0.3.0, Fig. 5.2"


@pytest.mark.book
def test_every_chapter_offers_its_kit(site):
    import re
    import zipfile

    from cnnbook.release import read_version

    for doc in kits.kit_docs(index()):
        name = kits.kit_name(doc, index())
        html = (site.html / f"{doc}.html").read_text(encoding="utf-8")
        assert f'href="../kits/{name}"' in html
        with zipfile.ZipFile(site.html / "kits" / name) as kit:
            names = set(kit.namelist())
            listed = kit.read("figures.txt").decode()
        assert {"figures.txt", "equations.tex", "references.bib"} <= names
        shown = re.findall(r'<span class="caption-number">Fig\. ([\d.]+)', html)
        svgs = sorted(n for n in names if n.startswith("fig-"))
        assert len(svgs) == len(kits.figures(html)) <= len(shown)
        for number, _, _ in kits.figures(html):
            assert f"fig-{number.replace('.', '-')}.svg" in names
            assert kits.credit(number, read_version(ROOT)) in listed
        teachers = (site.html / "book" / "teachers.html").read_text(encoding="utf-8")
        assert f'href="../kits/{name}"' in teachers


@pytest.fixture(scope="module")
def site():
    from _site import build_site

    build = build_site()
    assert build.returncode == 0, f"strict build failed:\n{build.log[-6000:]}"
    return build
