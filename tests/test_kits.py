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
def test_the_chapter_s_references(doc):
    bib = kits.bibliography(ROOT, doc)
    for key in kits.cited_keys(ROOT, doc):
        assert f"{{{key}," in bib
