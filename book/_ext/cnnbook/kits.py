"""Teacher kits, first part: a chapter's equations as LaTeX and its share of the references.

``equations_tex`` gives every labelled display equation of a chapter (MyST's
``$$ ... $$ (eq-label)``) as an ``equation`` environment with its ``\\label{eq-...}``
and, as ``\\tag``, the number it has in this release, so that slides and exam sheets
quote the book's numbers. ``bibliography`` gives the BibTeX entries that the chapter
cites. ``scripts/make_kits.py`` writes both into ``_build/kits/<NN>-<chapter>/``.
"""

from __future__ import annotations

import re
from pathlib import Path

from pybtex.database import BibliographyData, parse_file

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
        tag = index.targets[label].number
        parts.append(f"\\begin{{equation}}\n{tex}\n\\label{{{label}}}\\tag{{{tag}}}\n"
                     "\\end{equation}\n")
    return "\n".join(parts)


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
