"""Teacher kits' text parts: every labelled equation of a chapter, numbered as in the
release, compiles with LaTeX; the chapter's share of the bibliography is complete."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import zipfile

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
        svgs = sorted(n for n in names if n.startswith("fig-") and n.endswith(".svg"))
        assert len(svgs) == len(kits.figures(html)) == len(shown), "every figure in the kit"
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


SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20">'
       '<rect width="40" height="20" fill="#3366cc"/></svg>')


def test_the_kit_has_every_figure_as_svg_and_pdf_with_caption_and_credit(tmp_path):
    pytest.importorskip("cairosvg", reason="the site's build needs CairoSVG")
    from cnnbook.release import read_version
    from pypdf import PdfReader

    doc = "book/conv_backward"
    (tmp_path / "book").mkdir()
    (tmp_path / "_images").mkdir()
    (tmp_path / "_images" / "abc123.svg").write_text(SVG, encoding="utf-8")
    page = tmp_path / "book" / "conv_backward.html"
    page.write_text(PAGE, encoding="utf-8")
    target = tmp_path / "kit.zip"
    kits.write_kit(doc, index(), page, target)
    with zipfile.ZipFile(target) as kit:
        names = set(kit.namelist())
        listed = kit.read("figures.txt").decode()
        pdf = PdfReader(io.BytesIO(kit.read("fig-5-2.pdf")))
        assert kit.read("fig-5-2.svg").decode() == SVG
    assert {"fig-5-2.svg", "fig-5-2.pdf", "figures.txt", "equations.tex",
            "references.bib", "slides.tex"} <= names
    assert len(pdf.pages) == 1
    # CairoSVG writes points: 40 x 20 px at 96 dpi
    assert [round(float(v)) for v in pdf.pages[0].mediabox[2:]] == [30, 15]
    assert listed.split("\n")[:2] == [
        "fig-5-2.svg, fig-5-2.pdf: Fig. 5.2. The input gradient \\(\\bar x\\) & its "
        "windows.", kits.credit("5.2", read_version(ROOT))]


def test_compiled_slides_go_into_the_kit_only_when_current(tmp_path, monkeypatch):
    monkeypatch.setattr(kits, "kit_folder", lambda doc, index: tmp_path / "made")
    doc = "book/dense"
    folder = tmp_path / "made"
    folder.mkdir()
    assert kits.compiled_slides(doc, index()) is None
    (folder / "slides.tex").write_text(kits.slides_tex(doc, index()), encoding="utf-8")
    (folder / "slides.pdf").write_bytes(b"%PDF-1.5 made from the current slides")
    assert kits.compiled_slides(doc, index()) == folder / "slides.pdf"
    (folder / "slides.tex").write_text("\\documentclass{beamer} an older chapter",
                                       encoding="utf-8")
    os.utime(folder / "slides.pdf")
    assert kits.compiled_slides(doc, index()) is None


@pytest.mark.skipif(shutil.which("latexmk") is None, reason="needs TeX Live")
def test_make_kits_compiles_a_chapter_s_slides_one_page_per_frame(tmp_path):
    import make_kits
    from pypdf import PdfReader

    doc = "book/dense"
    assert make_kits.main([str(tmp_path), "--only", doc]) == 0
    folder = tmp_path / f"{index().numbers[doc]:02d}-dense"
    assert sorted(p.name for p in folder.iterdir()) == [
        "equations.tex", "references.bib", "slides.pdf", "slides.tex"]
    tex = (folder / "slides.tex").read_text(encoding="utf-8")
    pages = PdfReader(folder / "slides.pdf").pages
    assert len(pages) == tex.count("\\begin{frame}")
    assert "Summary" in " ".join(p.extract_text() for p in pages)


def test_make_kits_refuses_an_unknown_chapter(tmp_path, capsys):
    import make_kits

    with pytest.raises(SystemExit):
        make_kits.main([str(tmp_path), "--only", "book/nosuch"])
    assert "--only book/nosuch: not a numbered chapter" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
