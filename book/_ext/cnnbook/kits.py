"""Teacher kits, first part: a chapter's equations as LaTeX and its share of the references.

``equations_tex`` gives every labelled display equation of a chapter (MyST's
``$$ ... $$ (eq-label)``) as an ``equation`` environment with its ``\\label{eq-...}``
and, as ``\\tag``, the number it has in this release, so that slides and exam sheets
quote the book's numbers. ``bibliography`` gives the BibTeX entries that the chapter
cites. ``scripts/make_kits.py`` writes both into ``_build/kits/<NN>-<chapter>/``, with
``slides.tex`` and, compiled by LaTeX, ``slides.pdf``. On the site, each numbered
chapter's download menu offers ``kits/<NN>-<chapter>-kit.zip``: those files (the slides'
PDF when ``make kits`` has made it), and every figure of the page as ``fig-5-2.svg`` and
``fig-5-2.pdf`` (converted by CairoSVG) with its caption and a credit line in
``figures.txt``.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from html import unescape
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive
from pybtex.database import BibliographyData, parse_file

from .myst2ipynb import BookIndex
from .release import read_version

DISPLAY = re.compile(r"^\$\$\n(?P<tex>(?:(?!\$\$).)*?)\n\$\$ \((?P<label>eq-[a-z0-9-]+)\)[ \t]*$",
                     re.MULTILINE | re.DOTALL)
CITE = re.compile(r"\{cite(?::\w+)?\}`([^`]+)`")
PREAMBLE = r"""% Equations of Chapter {number}, {title}: CNN from Scratch with NumPy v{version}.
% CC BY 4.0. Numbers (\tag) as in that release; labels as in the book (eq-...).
% Needs \usepackage{{amsmath,amssymb}}.
"""


def equations(root: Path | str, doc: str) -> list[tuple[str, str]]:
    """``(label, tex)`` of every labelled display equation of a chapter, in order."""
    text = (Path(root) / f"{doc}.md").read_text(encoding="utf-8")
    return [(m.group("label"), m.group("tex").strip()) for m in DISPLAY.finditer(text)]


def equations_tex(doc: str, index) -> str:
    """The chapter's labelled equations as LaTeX, numbered as in this release."""
    number = index.numbers.get(doc)
    parts = [PREAMBLE.format(number=number, title=index.titles.get(doc, doc),
                             version=read_version(index.root))]
    for label, tex in equations(index.root, doc):
        parts.append(labelled_equation(tex, label, index.targets[label].number) + "\n")
    return "\n".join(parts)


def labelled_equation(tex: str, label: str, number: str) -> str:
    """One display equation as LaTeX: its label as in the book, its number as ``\\tag``."""
    return (f"\\begin{{equation}}\n{tex}\n\\label{{{label}}}\\tag{{{number}}}\n"
            "\\end{equation}")


def cited_keys(root: Path | str, doc: str) -> list[str]:
    text = (Path(root) / f"{doc}.md").read_text(encoding="utf-8")
    keys = [k.strip() for m in CITE.finditer(text) for k in m.group(1).split(",")]
    return list(dict.fromkeys(keys))


def bibliography(root: Path | str, doc: str) -> str:
    """The BibTeX entries of ``book/references.bib`` that the chapter cites."""
    database = parse_file(str(Path(root) / "book" / "references.bib"))
    keys = cited_keys(root, doc)
    missing = [k for k in keys if k not in database.entries]
    if missing:
        raise KeyError(f"{doc} cites {missing}, which book/references.bib lacks")
    return BibliographyData({k: database.entries[k] for k in keys}).to_string("bibtex")


# -- the kit on the site: figures by number, with captions and credit lines ------------

FIGURE = re.compile(
    r'<figure[^>]*>\s*<img[^>]*src="(?P<src>[^"]+\.svg)"[^>]*>.*?'
    r'<span class="caption-number">Fig\.\s*(?P<number>[\d.]+)\s*</span>'
    r'<span class="caption-text">(?P<caption>.*?)</span>\s*(?:<a class="headerlink"|</p>)',
    re.DOTALL)
TAG = re.compile(r"<[^>]+>")


def kit_name(doc: str, index) -> str:
    return f"{index.numbers[doc]:02d}-{Path(doc).name}-kit.zip"


def kit_docs(index) -> list[str]:
    """The numbered chapters: each has a kit."""
    return [doc for doc, n in index.numbers.items()
            if isinstance(n, int) and (Path(index.root) / f"{doc}.md").exists()]


def figures(html: str) -> list[tuple[str, str, str]]:
    """``(number, image path, caption as plain text)`` of every SVG figure of a page."""
    found = []
    for m in FIGURE.finditer(html):
        caption = " ".join(unescape(TAG.sub("", m.group("caption"))).split())
        found.append((m.group("number"), m.group("src"), caption))
    return found


def credit(number: str, version: str) -> str:
    return f"CC BY 4.0, CNN from Scratch with NumPy v{version}, Fig. {number}"


def kit_folder(doc: str, index) -> Path:
    """Where ``make kits`` writes the chapter's text parts and compiled slides."""
    name = f"{index.numbers[doc]:02d}-{Path(doc).name}"
    return Path(index.root) / "_build" / "kits" / name


def write_kit(doc: str, index, page: Path, target: Path) -> None:
    """The chapter's kit: figures (fig-5-2.svg and .pdf), figures.txt, equations.tex,
    refs, slides.tex, and slides.pdf when ``make kits`` has compiled it."""
    import cairosvg  # loads the Cairo library: only the site's build needs it

    version = read_version(index.root)
    html = page.read_text(encoding="utf-8")
    lines = []
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as kit:
        for number, src, caption in figures(html):
            name = f"fig-{number.replace('.', '-')}"
            svg = (page.parent / src).resolve()
            kit.write(svg, f"{name}.svg")
            kit.writestr(f"{name}.pdf", cairosvg.svg2pdf(url=str(svg)))
            lines += [f"{name}.svg, {name}.pdf: Fig. {number}. {caption}",
                      credit(number, version), ""]
        kit.writestr("figures.txt", "\n".join(lines))
        kit.writestr("equations.tex", equations_tex(doc, index))
        kit.writestr("references.bib", bibliography(index.root, doc))
        kit.writestr("slides.tex", slides_tex(doc, index))
        slides = compiled_slides(doc, index)
        if slides is not None:
            kit.write(slides, "slides.pdf")


def compiled_slides(doc: str, index) -> Path | None:
    """``make kits``'s slides.pdf of the chapter, if it was compiled from the slides
    that the chapter gives now (a stale PDF is left out rather than shipped)."""
    folder = kit_folder(doc, index)
    tex, pdf = folder / "slides.tex", folder / "slides.pdf"
    if not (tex.is_file() and pdf.is_file()):
        return None
    if pdf.stat().st_mtime < tex.stat().st_mtime:
        return None
    return pdf if tex.read_text(encoding="utf-8") == slides_tex(doc, index) else None


def publish(app, exception) -> None:
    """build-finished: a kit per numbered chapter in ``kits/`` of the site."""
    if exception is not None or app.builder.format != "html":
        return
    from . import book_index

    index = book_index(app)
    folder = Path(app.outdir) / "kits"
    folder.mkdir(exist_ok=True)
    for doc in kit_docs(index):
        page = Path(app.outdir) / f"{doc}.html"
        if page.exists():
            write_kit(doc, index, page, folder / kit_name(doc, index))


def add_button(app, pagename, templatename, context, doctree) -> None:
    """A "teacher kit" entry in the download menu of a numbered chapter."""
    from . import book_index, theme

    index = book_index(app)
    if app.builder.format != "html" or pagename not in kit_docs(index):
        return
    theme.add_download_button(
        context, url=context["pathto"]("kits", 1) + f"/{kit_name(pagename, index)}",
        text="teacher kit", icon="fas fa-chalkboard-teacher",
        tooltip="Slides, figures by number (SVG, PDF) with credit lines, equations",
        label="download-kit-button")


class KitTable(Directive):
    """A list of every chapter's kit, linked, for the teachers' page."""

    has_content = False

    def run(self):
        env = self.state.document.settings.env
        index = BookIndex.load(env.srcdir)
        here = posixpath.dirname(env.docname) or "."
        items = nodes.bullet_list()
        for doc in kit_docs(index):
            url = posixpath.relpath(f"kits/{kit_name(doc, index)}", here)
            ref = nodes.reference("", "", refuri=url)
            ref += nodes.literal(kit_name(doc, index), kit_name(doc, index))
            para = nodes.paragraph()
            para += ref
            para += nodes.Text(f": {index.numbers[doc]}. {index.titles.get(doc, doc)}")
            items += nodes.list_item("", para)
        return [items]


def setup(app):
    app.add_directive("kit-table", KitTable)
    app.connect("build-finished", publish)
    app.connect("html-page-context", add_button, priority=503)


# -- lecture slides: a beamer frame per section, its equations numbered as the book --

SLIDES = r"""\documentclass[11pt]{{beamer}}
\usepackage{{amsmath,amssymb}}
\setbeamertemplate{{navigation symbols}}{{}}
\setbeamertemplate{{footline}}{{\hfill\tiny CC BY 4.0, CNN from Scratch with NumPy
  v{version}, Chapter {number}\hspace{{1em}}\insertframenumber\hspace{{1em}}\vspace{{2pt}}}}
\title{{{number}. {title}}}
\subtitle{{CNN from Scratch with NumPy, v{version}}}
\date{{}}
\begin{{document}}
\begin{{frame}}
\titlepage
\end{{frame}}
"""


def sections(root: Path | str, doc: str) -> list[tuple[str, str]]:
    """``(heading, text)`` of every ``##`` section of a chapter, code fences skipped."""
    from .assignments import fence_state

    found, fence = [], None
    for line in (Path(root) / f"{doc}.md").read_text(encoding="utf-8").split("\n"):
        if fence is None and line.startswith("## "):
            found.append([line[3:].strip(), []])
        elif found:
            found[-1][1].append(line)
        fence = fence_state(line, fence)
    return [(title, "\n".join(lines)) for title, lines in found]


def _latex_text(text: str) -> str:
    """A heading as LaTeX text: its inline math kept, special characters escaped."""
    parts = re.split(r"(\$[^$]+\$)", text)
    escape = str.maketrans({c: f"\\{c}" for c in "&%#_{}"})
    return "".join(p if p.startswith("$") else p.replace("`", "").translate(escape)
                   for p in parts)


def slides_tex(doc: str, index) -> str:
    """Beamer slides: a title frame, then per section its labelled equations, two to
    a frame, each with the book's number (a section without one gets a title frame)."""
    number = index.numbers[doc]
    out = [SLIDES.format(version=read_version(index.root), number=number,
                         title=_latex_text(index.titles.get(doc, doc)))]
    for heading, text in sections(index.root, doc):
        found = [(m.group("label"), m.group("tex").strip()) for m in DISPLAY.finditer(text)]
        groups = [found[i:i + 2] for i in range(0, len(found), 2)] or [[]]
        for group in groups:
            shrink = "[shrink=5]" if group else ""  # beamer cannot shrink an empty frame
            out.append(f"\\begin{{frame}}{shrink}{{{_latex_text(heading)}}}")
            for label, tex in group:
                tag = index.targets[label].number
                out.append(f"\\begin{{equation}}\n{tex}\n\\tag{{{tag}}}\n\\end{{equation}}")
            out.append("\\end{frame}\n")
    out.append("\\end{document}\n")
    return "\n".join(out)
