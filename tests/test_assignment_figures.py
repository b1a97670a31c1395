"""The chapters' figures in the student notebooks: there, where the text refers to them.

A figure whose code cell stands in a quoted section is a PNG attachment of the derivation
cell, with the chapter's alternative text and the site's number, drawn at two device
pixels per CSS pixel; it is the figure the built chapter shows; and when the code that
draws it changes, the committed notebook is reported stale.
"""

from __future__ import annotations

import base64
import io
import re

import nbformat
import numpy as np
import pytest
from PIL import Image

from _site import ROOT, build_site, index

from cnnbook import assignments

ASSIGNMENTS = assignments.ASSIGNMENTS
NAMES = [a.name for a in ASSIGNMENTS]
IMAGE = re.compile(r"!\[(?P<alt>(?:[^\]\\]|\\.)*)\]\(attachment:(?P<name>[^)]+)\)")


def derivation(a) -> nbformat.NotebookNode:
    nb = nbformat.read(ROOT / a.path, as_version=4)
    return next(c for c in nb.cells if c.source.startswith("## The derivation"))


def chapter_figures(a) -> dict[str, dict]:
    """Label -> MyST-NB metadata of every figure cell of the chapter, read directly."""
    chapter = assignments.read_chapter(ROOT, a.chapter)
    return {c.metadata["mystnb"]["figure"]["name"]: c.metadata["mystnb"]
            for c in chapter.cells if c.cell_type == "code"
            and (c.metadata.get("mystnb") or {}).get("figure", {}).get("name")}


def png(attachment: dict) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(attachment["image/png"])))


@pytest.mark.parametrize("a", ASSIGNMENTS, ids=NAMES)
def test_every_image_is_an_attached_figure_of_the_chapter_with_its_alt_text(a):
    cell = derivation(a)
    images = {m.group("name"): m.group("alt") for m in IMAGE.finditer(cell.source)}
    attachments = cell.get("attachments", {})
    assert set(images) == set(attachments), "every image attached, every attachment shown"
    figures = chapter_figures(a)
    for name, alt in images.items():
        label = name.removesuffix(".png")
        assert label in figures, f"{name}: not a figure of {a.chapter}"
        chapter_alt = " ".join(str(figures[label]["image"]["alt"]).split())
        assert re.sub(r"\\(.)", r"\1", alt) == chapter_alt
        number = index().targets[label].number
        after = cell.source[cell.source.index(f"(attachment:{name})"):]
        assert re.match(rf"\)\n\n\*\*Figure {re.escape(number)}\.\*\* \S", after[len(name) + 12:])
        image = png(attachments[name])
        assert image.format == "PNG"
        # Two device pixels per CSS pixel: at most a 1000 px column shows it unscaled.
        assert 2 * 280 <= image.width <= 2 * 1000, image.size
    assert set(cell.metadata.get("figures", {})) == {n.removesuffix(".png") for n in images}


@pytest.mark.parametrize("a", ASSIGNMENTS, ids=NAMES)
def test_text_that_points_to_a_figure_below_has_one_before_the_next_heading(a):
    text = derivation(a).source
    for m in re.finditer(r"(?i)\b(?:the|a|second|third) (?:\w+ )?figures? below\b", text):
        rest = text[m.end():]
        heading = re.search(r"^#+ ", rest, re.M)
        section = rest[:heading.start()] if heading else rest
        assert "(attachment:" in section, f"{a.name}: {text[m.start():m.end() + 60]!r}"


def test_the_figures_are_where_their_code_cells_stood():
    """Figure 5.1 and 5.2 of conv_backward end the text that precedes their cells."""
    a = next(a for a in ASSIGNMENTS if a.name == "conv_backward")
    text = derivation(a).source
    first = text.index("(attachment:fig-conv-dx-fan-in.png)")
    second = text.index("(attachment:fig-conv-dout-dilated.png)")
    said = text.index("The second figure below draws")
    assert said < first < second
    assert not re.search(r"^#+ ", text[said:second], re.M)


def test_a_figure_whose_code_changed_makes_the_notebook_stale(monkeypatch):
    """Without running anything, the expected notebook drops the stale image (so the
    committed one no longer matches); figures drawn before the change keep theirs."""
    read = assignments.read_chapter

    def edited(root, doc):
        chapter = read(root, doc)
        for cell in chapter.cells:
            if (cell.metadata.get("mystnb") or {}).get("figure", {}).get("name") == "fig-im2col":
                cell.source += "\n# an edit"
        return chapter

    monkeypatch.setattr(assignments, "read_chapter", edited)
    path = next(a.path for a in ASSIGNMENTS if a.name == "conv_forward")
    expected = nbformat.reads(assignments.expected_notebooks(ROOT)[path], as_version=4)
    cell = next(c for c in expected.cells if c.source.startswith("## The derivation"))
    assert set(cell.attachments) == {"fig-conv-sliding.png"}
    assert (ROOT / path).read_text(encoding="utf-8") != nbformat.writes(expected) + "\n"


@pytest.fixture(scope="module")
def site():
    build = build_site()
    assert build.returncode == 0, f"strict build failed:\n{build.log[-6000:]}"
    return build


FIGURE = re.compile(r'<figure[^>]*\bid="(?P<label>fig-[\w-]+)"[^>]*>\s*(?:<a [^>]*>\s*)?'
                    r'<img[^>]*\bsrc="(?P<src>[^"]+)"', re.S)


def site_image(html_dir, doc: str, label: str) -> Image.Image:
    """The figure ``label`` as the built chapter shows it, drawn as the notebooks are."""
    import cairosvg

    page = (html_dir / f"{doc}.html").read_text(encoding="utf-8")
    found = [m.group("src") for m in FIGURE.finditer(page) if m.group("label") == label]
    at = page.find(f'id="{label}"')
    assert found, f"no figure {label} in {doc}.html: {page[at - 300:at + 700]}"
    src = found[0]
    path = (html_dir / doc).parent / src
    if path.suffix == ".svg":
        data = cairosvg.svg2png(bytestring=path.read_bytes(), scale=assignments.FIGURE_SCALE)
        return Image.open(io.BytesIO(data))
    return Image.open(path)


@pytest.mark.book
@pytest.mark.parametrize("a", [a for a in ASSIGNMENTS if derivation(a).get("attachments")],
                         ids=lambda a: a.name)
def test_each_image_is_the_figure_the_built_chapter_shows(site, a):
    """Same size, and the same pixels but for a figure of a training run (BLAS kernels
    round differently across machines, so its curves may move by a pixel)."""
    figures = chapter_figures(a)
    for name, attachment in derivation(a).attachments.items():
        label = name.removesuffix(".png")
        ours = np.asarray(png(attachment).convert("RGB"), dtype=int)
        built = np.asarray(site_image(site.html, a.chapter, label).convert("RGB"), dtype=int)
        assert ours.shape == built.shape, label
        differ = np.mean(np.abs(ours - built).max(axis=2) > 32)
        trained = "this chapter's run" in figures[label]["figure"]["caption"].lower()
        assert differ <= (0.02 if trained else 0.001), (label, differ)
