"""Equations, code and tests linked both ways on the page (the book's provenance).

Everything here is generated from three sources, never listed by hand:

* the labelled equations of the chapters (``$$ ... $$ (eq-label)`` or ``{math}`` with
  ``:label:``), as Sphinx's math domain records them, with the numbers the site shows;
* the docstrings of the package (``cnn/``, read with :mod:`ast`): a function, class or
  method *implements* an equation when the description part of its docstring (the text
  before the first NumPy-style section such as ``Parameters``) names the label, as in
  "Implements eq-conv-dw." or "(eq-relu-dx)";
* the test names of ``tests/test_equations.py``: a test *verifies* an equation when its
  name contains the label with ``-`` written ``_`` between underscores or at an end
  (``test_eq_conv_dx``, ``test_eq_relu_dx_subgradient_at_zero``); the longest label wins,
  so ``test_eq_softmax_ce_dz`` verifies ``eq-softmax-ce-dz``, not ``eq-softmax-ce``.

What it adds to the site (HTML builders):

* under every labelled equation, a line "Implemented by ``cnn.conv.conv2d_backward`` ·
  Verified by ``test_eq_conv_dx``" whose links open the highlighted source of the function
  (``sphinx.ext.viewcode``, ``_modules/``) and of the test (pages written here, ``_tests/``),
  and "Cite this equation" with a short citation to copy;
* every label named in a docstring, on the API page and on the source pages, links to its
  equation;
* the directive ``{equation-index}``: the table of the "Equation index" page.

The strict build (``-W``) fails when a gradient equation (a label matching
:data:`GRADIENT_LABEL`) has no test, when a docstring names a label that no chapter defines,
and when a test is named after a label that does not exist.
"""

from __future__ import annotations

import ast
import html
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.ext import viewcode
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from .kits import labelled_equation
from .release import package_version, release_date, tag

logger = logging.getLogger(__name__)

#: A label states a gradient when its last part names one: ``-dx``, ``-dw``, ``-db``,
#: ``-dz``, ``-dh1`` (``d`` and one or two characters), ``-dout``, ``-dlogits``,
#: ``-dtheta``, ``-dparams``, ``-dgamma``, ``-dbeta``, ``-grad`` or ``-backward``; words
#: such as ``-dilated`` or ``-difference`` do not.
GRADIENT_LABEL = re.compile(
    r"-(?:d(?:[a-z][a-z0-9]?|out|logits|theta|params|gamma|beta)|grad|backward)$"
)
#: An equation label named in running text: ``eq-`` and hyphen-separated words.
LABEL_IN_TEXT = re.compile(r"(?<![\w-])eq(?:-[A-Za-z0-9]+)+")
#: A NumPy-style section underline; the description ends at the section's title.
SECTION_UNDERLINE = re.compile(r"\s*-{3,}\s*")
#: A test named after some equation: the word ``eq`` between underscores.
NAMED_FOR_EQUATION = re.compile(r"(?:^|_)eq_")

TESTS_PAGE_DIR = "_tests"
SOURCE_PAGE_DIR = "_modules"


# -- reading the package and the tests ---------------------------------------------------
@dataclass(frozen=True)
class CodeObject:
    """A module, class, function or method of the package, with the labels it names."""

    module: str  # "cnn.conv"
    name: str  # "conv2d_backward", "Conv2D.backward"; "" for the module itself
    path: Path
    line: int
    implements: tuple[str, ...]  # labels named in the docstring's description
    names: tuple[str, ...]  # every label the docstring names

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}" if self.name else self.module


@dataclass(frozen=True)
class EquationTest:
    name: str
    path: Path
    relpath: str  # "tests/test_equations.py"
    start: int  # first line, decorators included (1-based)
    end: int
    labels: tuple[str, ...] = ()

    @property
    def page(self) -> str:
        return f"{TESTS_PAGE_DIR}/{Path(self.relpath).stem}"


def labels_in(text: str) -> tuple[str, ...]:
    """Equation labels named in ``text``, each once, in order."""
    return tuple(dict.fromkeys(LABEL_IN_TEXT.findall(text)))


def docstring_description(docstring: str) -> str:
    """The summary and extended description: the text before the first section title."""
    lines = docstring.splitlines()
    for k in range(len(lines) - 1):
        if lines[k].strip() and SECTION_UNDERLINE.fullmatch(lines[k + 1]):
            return "\n".join(lines[:k])
    return docstring


def _code_object(module: str, name: str, path: Path, line: int, doc: str | None,
                 implementing: bool) -> CodeObject:
    doc = doc or ""
    implements = labels_in(docstring_description(doc)) if implementing else ()
    return CodeObject(module, name, path, line, implements, labels_in(doc))


def scan_module(path: Path, module: str) -> list[CodeObject]:
    """The module, its classes and functions and the classes' methods, in source order."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = [_code_object(module, "", path, 1, ast.get_docstring(tree), implementing=False)]

    def visit(body, prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + node.name
                found.append(_code_object(module, name, path, node.lineno,
                                          ast.get_docstring(node), implementing=True))
                if isinstance(node, ast.ClassDef):
                    visit(node.body, name + ".")

    visit(tree.body, "")
    return found


def scan_package(package_dir: Path, package: str) -> list[CodeObject]:
    """Every documented object of the package, teaching core first, then subpackages."""
    objects = []
    for path in sorted(Path(package_dir).rglob("*.py")):
        parts = path.relative_to(package_dir).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        module = ".".join((package, *parts))
        objects += scan_module(path, module)
    objects.sort(key=lambda o: (o.module.count("."), o.module, o.line))
    return objects


def labels_in_test_name(name: str, labels) -> tuple[str, ...]:
    """The labels a test name contains (``-`` as ``_``), longest match first at each place."""
    spans = []
    for label in labels:
        token = re.escape(label.replace("-", "_"))
        for m in re.finditer(rf"(?:^|(?<=_)){token}(?=_|$)", name):
            spans.append((m.start(), m.end(), label))
    kept = [s for s in spans
            if not any(o[0] <= s[0] and s[1] <= o[1] and o[1] - o[0] > s[1] - s[0] for o in spans)]
    return tuple(dict.fromkeys(label for _, _, label in sorted(kept)))


def scan_tests(path: Path, relpath: str) -> list[EquationTest]:
    """The test functions of a pytest module (and of its ``Test*`` classes), in order."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    tests = []

    def visit(body) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                tests.append(EquationTest(node.name, path, relpath, start, node.end_lineno))
            elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                visit(node.body)

    visit(tree.body)
    return tests


@dataclass
class Sources:
    """What the package and the tests say, read once per build."""

    objects: list[CodeObject]
    tests: list[EquationTest]
    version: str
    test_files: dict[str, Path] = field(default_factory=dict)  # page -> file

    def implementers(self, label: str) -> list[CodeObject]:
        return [o for o in self.objects if label in o.implements]

    def with_test_labels(self, labels) -> None:
        self.tests = [EquationTest(t.name, t.path, t.relpath, t.start, t.end,
                                   labels_in_test_name(t.name, labels)) for t in self.tests]

    def verifiers(self, label: str) -> list[EquationTest]:
        return [t for t in self.tests if label in t.labels]


def read_sources(app) -> Sources:
    root = Path(app.srcdir)
    package_dir = root / app.config.provenance_package_dir
    objects = scan_package(package_dir, app.config.provenance_package)
    tests, test_files = [], {}
    for relpath in app.config.provenance_test_files:
        path = root / relpath
        found = scan_tests(path, relpath)
        tests += found
        test_files[f"{TESTS_PAGE_DIR}/{Path(relpath).stem}"] = path
    return Sources(objects, tests, package_version(package_dir), test_files)


# -- the book's equations ------------------------------------------------------------------
@dataclass(frozen=True)
class Equation:
    label: str
    docname: str
    anchor: str  # "equation-eq-conv-dx"
    number: str  # "5.3", as the site shows it
    chapter: str  # "5", or "" for an unnumbered page
    title: str  # the page's title

    @property
    def is_gradient(self) -> bool:
        return bool(GRADIENT_LABEL.search(self.label))


def book_order(env) -> list[str]:
    """Docnames in reading order: the toctree from the root document, then the rest."""
    order: list[str] = []

    def walk(doc: str) -> None:
        if doc in order:
            return
        order.append(doc)
        for child in env.toctree_includes.get(doc, ()):
            walk(child)

    walk(env.config.root_doc)
    return order + sorted(set(env.found_docs) - set(order))


def equations(env) -> list[Equation]:
    """Every labelled equation of the book, in book order."""
    domain = env.get_domain("math")
    rank = {doc: k for k, doc in enumerate(book_order(env))}
    found = []
    for label, (docname, serial) in domain.equations.items():
        anchor = nodes.make_id(f"equation-{label}")
        numbers = env.toc_fignumbers.get(docname, {}).get("displaymath", {}).get(anchor, ())
        number = ".".join(map(str, numbers)) or str(serial)
        chapter = str(numbers[0]) if len(numbers) > 1 else ""
        title = env.titles[docname].astext() if docname in env.titles else docname
        found.append((rank.get(docname, len(rank)), serial,
                      Equation(label, docname, anchor, number, chapter, title)))
    return [eq for *_, eq in sorted(found, key=lambda item: item[:2])]


def equation_labels(env) -> set[str]:
    return set(env.get_domain("math").equations)


# -- checks (the strict build fails on any of these) ---------------------------------------
def check_consistency(app, env) -> None:
    sources: Sources = app.provenance
    labels = equation_labels(env)
    sources.with_test_labels(labels)
    for obj in sources.objects:
        for label in obj.names:
            if label not in labels:
                logger.warning(
                    f"the docstring of {obj.qualname} names {label}, but no chapter has an "
                    f"equation with that label", location=f"{obj.path}:{obj.line}",
                    type="provenance", subtype="unknown-label")
    for test in sources.tests:
        if NAMED_FOR_EQUATION.search(test.name) and not test.labels:
            logger.warning(
                f"{test.name} is named after an equation, but its name contains no label of "
                f"the book (a label eq-a-b is written eq_a_b)", location=f"{test.path}:{test.start}",
                type="provenance", subtype="unknown-label")
    for label in sorted(labels):
        docname = env.get_domain("math").equations[label][0]
        if GRADIENT_LABEL.search(label) and not sources.verifiers(label):
            files = ", ".join(app.config.provenance_test_files)
            logger.warning(
                f"the gradient equation {label} has no test: add one to {files} whose name "
                f"contains {label.replace('-', '_')}", location=docname,
                type="provenance", subtype="untested")


# -- links ---------------------------------------------------------------------------------
def source_uri(app, fromdoc: str, obj: CodeObject) -> str | None:
    """The highlighted source of ``obj`` (sphinx.ext.viewcode's page), or None."""
    entry = getattr(app.builder.env, "_viewcode_modules", {}).get(obj.module)
    if not entry:
        return None
    page = posixpath.join(SOURCE_PAGE_DIR, obj.module.replace(".", "/"))
    uri = app.builder.get_relative_uri(fromdoc, page)
    used = entry[2]
    return uri + (f"#{obj.name}" if obj.name in used else "")


def tests_page_uri(app, fromdoc: str, test: EquationTest) -> str:
    return app.builder.get_relative_uri(fromdoc, test.page) + f"#{test.name}"


def equation_uri(app, fromdoc: str, eq: Equation) -> str:
    return app.builder.get_relative_uri(fromdoc, eq.docname) + f"#{eq.anchor}"


def _code_link(uri: str | None, text: str, title: str = "") -> str:
    code = f'<code class="docutils literal notranslate"><span class="pre">{html.escape(text)}</span></code>'
    if uri is None:
        return code
    attr = f' title="{html.escape(title)}"' if title else ""
    return f'<a class="reference internal" href="{html.escape(uri)}"{attr}>{code}</a>'


def equation_url(app, eq: Equation) -> str:
    """The equation in this release's edition of the site, which stays online:
    ``<html_baseurl>/v0.3.0/book/conv_backward.html#equation-eq-conv-dx``."""
    base = (app.config.html_baseurl or "").rstrip("/")
    path = f"{tag(app.provenance.version)}/{eq.docname}.html#{eq.anchor}"
    return f"{base}/{path}" if base else path


def citation(app, eq: Equation) -> str:
    """"CNN from Scratch with NumPy, version 0.1.0, chapter 5 "...", Eq. (5.3). URL"."""
    where = f'chapter {eq.chapter} "{eq.title}"' if eq.chapter else f'"{eq.title}"'
    return (f"{book_title(app)}, version {app.provenance.version}, {where}, "
            f"Eq. ({eq.number}). {equation_url(app, eq)}")


def release_year(app) -> str:
    """The year of this release's CHANGELOG.md entry; "" for a book without a changelog
    (a BibTeX entry may leave the year out)."""
    try:
        return str(release_date(Path(app.srcdir)).year)
    except (OSError, ValueError):
        return ""


def bibtex(app, eq: Equation) -> str:
    """A BibTeX entry for one equation of this release, keyed by version and label."""
    version = app.provenance.version
    where = f"Chapter {eq.chapter}, " if eq.chapter else ""
    fields = {
        "title": f"{{{book_title(app)}}}, Eq. ({eq.number}), \\texttt{{{eq.label}}}",
        "author": f"{{{app.config.author}}}",
        "year": release_year(app),
        "version": version,
        "url": equation_url(app, eq),
        "note": f"{where}``{eq.title}''",
    }
    body = ",\n".join(f"  {name:<8} = {{{value}}}" for name, value in fields.items() if value)
    return f"@misc{{cnnfromscratch-{version}-{eq.label},\n{body}\n}}"


def book_title(app) -> str:
    """The book's title: plain Sphinx sets ``project``; Jupyter Book leaves Sphinx's
    placeholder there and sets ``html_title``."""
    project = app.config.project
    return project if project and project != "Project name not set" else app.config.html_title


def provenance_html(app, fromdoc: str, eq: Equation, tex: str | None = None) -> str:
    """The line under an equation; ``tex`` is its source, offered to copy."""
    sources: Sources = app.provenance
    parts = []
    implementers = sources.implementers(eq.label)
    if implementers:
        links = ", ".join(_code_link(source_uri(app, fromdoc, o), o.qualname, "highlighted source")
                          for o in implementers)
        parts.append(f'<span class="cnn-provenance-impl">Implemented by {links}</span>')
    tests = sources.verifiers(eq.label)
    if tests:
        links = ", ".join(_code_link(tests_page_uri(app, fromdoc, t), t.name, f"{t.relpath}, line {t.start}")
                          for t in tests)
        parts.append(f'<span class="cnn-provenance-test">Verified by {links}</span>')
    line = '<span class="cnn-provenance-sep" aria-hidden="true"> · </span>'.join(parts)
    # The citation in one line; the BibTeX entry and the TeX source keep their lines.
    copies = [("text", "citation", "code", citation(app, eq)),
              ("bibtex", "BibTeX entry", "pre", bibtex(app, eq))]
    if tex is not None:
        copies.append(("tex", "TeX source", "pre",
                       labelled_equation(tex.strip(), eq.label, eq.number)))
    blocks = ""
    for kind, what, element, value in copies:
        ident = f"cite-{kind}-{eq.anchor}"
        blocks += (
            f'<div class="cnn-cite-body"><span class="cnn-cite-what">{what}</span>'
            f'<{element} class="cnn-cite-{kind}" id="{ident}">{html.escape(value)}</{element}>'
            f'<button type="button" class="cnn-cite-copy" data-cite="{ident}" '
            f'aria-label="Copy the {what} of Eq. ({eq.number})">Copy</button></div>')
    return (
        f'<div class="cnn-provenance" data-label="{html.escape(eq.label)}">'
        + (f'<p class="cnn-provenance-line">{line}</p>' if line else "")
        + f'<details class="cnn-cite"><summary>Cite this equation</summary>{blocks}</details></div>'
    )


def linkify_html_text(markup: str, link) -> str:
    """Apply ``link(label) -> html or None`` to every label in the text (not the tags) of
    ``markup``, outside existing links."""
    out, depth = [], 0
    for piece in re.split(r"(<[^>]*>)", markup):
        if piece.startswith("<"):
            if re.match(r"<a[\s>]", piece):
                depth += 1
            elif piece.startswith("</a"):
                depth = max(depth - 1, 0)
            out.append(piece)
        elif depth or "eq-" not in piece:
            out.append(piece)
        else:
            out.append(LABEL_IN_TEXT.sub(lambda m: link(m.group(0)) or m.group(0), piece))
    return "".join(out)


def _equation_map(app) -> dict[str, Equation]:
    cached = getattr(app, "provenance_equations", None)
    if cached is None:
        cached = app.provenance_equations = {eq.label: eq for eq in equations(app.builder.env)}
        app.provenance.with_test_labels(cached)
    return cached


def _html_eq_link(app, fromdoc: str):
    eqs = _equation_map(app)

    def link(label: str) -> str | None:
        eq = eqs.get(label)
        if eq is None:
            return None
        uri, title = equation_uri(app, fromdoc, eq), f"Eq. ({eq.number}), {eq.title}"
        return (f'<a class="reference internal cnn-eq-ref" href="{html.escape(uri)}" '
                f'title="{html.escape(title)}">{label}</a>')

    return link


# -- the doctree: lines under equations, links in docstrings, the index ---------------------
class equation_index(nodes.General, nodes.Element):
    """Where ``{equation-index}`` puts its table (filled in when the document is resolved)."""


class EquationIndexDirective(SphinxDirective):
    """The table of every labelled equation, with its code and tests (no content)."""

    has_content = False

    def run(self):
        return [equation_index("")]


SKIP_INSIDE = (nodes.literal, nodes.literal_block, nodes.reference, nodes.raw,
               nodes.FixedTextElement, nodes.math, nodes.math_block, addnodes.pending_xref)


def link_labels_in_docstrings(app, doctree, fromdoc: str) -> None:
    eqs = _equation_map(app)
    for content in list(doctree.findall(addnodes.desc_content)):
        for text in list(content.findall(nodes.Text)):
            if "eq-" not in text or _inside(text, SKIP_INSIDE, content):
                continue
            pieces, last = [], 0
            for m in LABEL_IN_TEXT.finditer(str(text)):
                eq = eqs.get(m.group(0))
                if eq is None:
                    continue
                pieces.append(nodes.Text(str(text)[last:m.start()]))
                ref = nodes.reference("", m.group(0), internal=True, classes=["cnn-eq-ref"],
                                      refuri=equation_uri(app, fromdoc, eq),
                                      reftitle=f"Eq. ({eq.number}), {eq.title}")
                pieces.append(ref)
                last = m.end()
            if pieces:
                pieces.append(nodes.Text(str(text)[last:]))
                text.parent.replace(text, [p for p in pieces if not isinstance(p, nodes.Text) or p])


def _inside(node, kinds, stop) -> bool:
    parent = node.parent
    while parent is not None and parent is not stop:
        if isinstance(parent, kinds):
            return True
        parent = parent.parent
    return False


def add_lines_under_equations(app, doctree, fromdoc: str) -> None:
    eqs = _equation_map(app)
    for block in list(doctree.findall(nodes.math_block)):
        eq = eqs.get(block.get("label") or "")
        if eq is None or eq.docname != fromdoc:
            continue
        raw = nodes.raw("", provenance_html(app, fromdoc, eq, block.astext()), format="html")
        block.parent.insert(block.parent.index(block) + 1, raw)


def _paragraph(*children) -> nodes.paragraph:
    para = nodes.paragraph()
    para.extend(children)
    return para


def _ref(uri: str | None, child) -> nodes.Node:
    if uri is None:
        return child
    ref = nodes.reference("", "", internal=True, refuri=uri)
    ref.append(child)
    return ref


def _joined(items) -> list[nodes.Node]:
    out: list[nodes.Node] = []
    for k, item in enumerate(items):
        if k:
            out.append(nodes.Text(", "))
        out.append(item)
    return out


def _equation_sources(env) -> dict[str, nodes.math_block]:
    """Label -> the labelled display equation as its chapter's doctree holds it."""
    found = {}
    for docname in sorted({doc for doc, _ in env.get_domain("math").equations.values()}):
        for block in env.get_doctree(docname).findall(nodes.math_block):
            if block.get("label"):
                found[block["label"]] = block
    return found


def _index_parts(app, fromdoc: str, eq: Equation, html_links: bool) -> dict[str, list[nodes.Node]]:
    """The pieces of one equation's entry: number, label, chapter, code and tests."""
    sources: Sources = app.provenance

    # URIs are made only for HTML: the LaTeX builder has no page for the tests.
    def link(make_uri):
        return make_uri() if html_links else None

    label: list[nodes.Node] = [nodes.literal(eq.label, eq.label)]
    if eq.is_gradient:
        label += [nodes.Text(" "), nodes.inline("", "gradient", classes=["cnn-gradient-tag"])]
    return {
        "number": [_ref(link(lambda: equation_uri(app, fromdoc, eq)), nodes.Text(f"({eq.number})"))],
        "label": label,
        "chapter": [_ref(link(lambda: app.builder.get_relative_uri(fromdoc, eq.docname)),
                         nodes.Text(f"{eq.chapter}. {eq.title}" if eq.chapter else eq.title))],
        "impl": _joined(_ref(source_uri(app, fromdoc, o) if html_links else None,
                             nodes.literal(o.qualname, o.qualname))
                        for o in sources.implementers(eq.label)),
        "tests": _joined(_ref(link(lambda t=t: tests_page_uri(app, fromdoc, t)),
                              nodes.literal(t.name, t.name))
                         for t in sources.verifiers(eq.label)),
    }


def _table(classes: list[str], widths, headers) -> tuple[nodes.table, nodes.tbody]:
    table = nodes.table(classes=classes)
    group = nodes.tgroup(cols=len(widths))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    row = nodes.row()
    for text in headers:
        row += nodes.entry("", _paragraph(nodes.Text(text)))
    head += row
    group += head
    body = nodes.tbody()
    group += body
    return table, body


def index_table(app, fromdoc: str) -> list[nodes.Node]:
    """The site: each equation typeset beside its number, label, chapter, code and tests.
    The PDF: three columns (number, label, chapter)."""
    eqs = equations(app.builder.env)
    html_links = app.builder.format == "html"
    if html_links:
        table, body = _table(["cnn-equation-index"], (16, 84), ["Equation", "Typeset, with its code and tests"])
        typeset = _equation_sources(app.builder.env)
    else:
        table, body = _table(["cnn-equation-index"], (10, 45, 45), ["Eq.", "Label", "Chapter"])
    for eq in eqs:
        row = nodes.row(ids=[f"index-{eq.label}"], classes=["cnn-gradient"] if eq.is_gradient else [])
        parts = _index_parts(app, fromdoc, eq, html_links)
        if not html_links:
            for key in ("number", "label", "chapter"):
                row += nodes.entry("", _paragraph(*parts[key]))
            body += row
            continue
        about = nodes.entry(classes=["cnn-ix-about"])
        for key in ("number", "label", "chapter"):
            about += nodes.paragraph("", "", *parts[key], classes=[f"cnn-ix-{key}"])
        shown = nodes.entry(classes=["cnn-ix-shown"])
        source = typeset.get(eq.label)
        if source is not None:
            latex = source.astext()
            shown += nodes.math_block(latex, latex, nowrap=source.get("nowrap", False),
                                      number=None, label=None, docname=fromdoc)
        provenance = nodes.paragraph(classes=["cnn-ix-provenance"])
        for key, words in (("impl", "Implemented by "), ("tests", "Verified by ")):
            if parts[key]:
                if len(provenance):
                    provenance += nodes.inline("", " · ", classes=["cnn-provenance-sep"])
                provenance += nodes.inline("", "", nodes.Text(words), *parts[key],
                                           classes=[f"cnn-ix-{key}"])
        shown += provenance
        row += about
        row += shown
        body += row
    gradients = sum(eq.is_gradient for eq in eqs)
    summary = _paragraph(nodes.Text(
        f"{len(eqs)} labelled equations, {gradients} of them gradients (marked "),
        nodes.inline("", "gradient", classes=["cnn-gradient-tag"]),
        nodes.Text("): each gradient is checked against finite differences by the test named "
                   "beside it."))
    return [summary, table]


def resolve_doctree(app, doctree, docname: str) -> None:
    for placeholder in list(doctree.findall(equation_index)):
        placeholder.replace_self(index_table(app, docname))
    if app.builder.format != "html":
        return
    add_lines_under_equations(app, doctree, docname)
    link_labels_in_docstrings(app, doctree, docname)


# -- pages: the tests' highlighted source, links on the package's source pages -------------
def tests_pages(app):
    if not viewcode.is_supported_builder(app.builder):
        return
    sources: Sources = app.provenance
    eqs = _equation_map(app)
    for page, path in sources.test_files.items():
        code = path.read_text(encoding="utf-8")
        lines = app.builder.highlighter.highlight_block(code, "python", linenos=False).splitlines()
        before, after = lines[0].split("<pre>")
        lines[0:1] = [before + "<pre>", after]  # code line k is lines[k] from here on
        last = len(lines) - 1
        for test in (t for t in sources.tests if t.page == page):
            backs = "".join(
                f'<a class="viewcode-back" href="{html.escape(equation_uri(app, page, eqs[label]))}">'
                f"[{label}]</a>" for label in test.labels if label in eqs)
            lines[test.start] = f'<div class="viewcode-block" id="{test.name}">\n{backs}\n' + lines[test.start]
            lines[min(test.end, last)] += "</div>\n"
        relpath = path.relative_to(app.srcdir).as_posix()
        intro = (
            "<p>The tests that verify the book's equations numerically. A test verifies the "
            "equation whose label its name contains (<code>test_eq_conv_dx</code> verifies "
            "<code>eq-conv-dx</code>); the link beside a test opens that equation.</p>")
        body = f"<h1>Source code for {html.escape(relpath)}</h1>\n{intro}\n" + "\n".join(lines)
        context = {"title": relpath, "body": linkify_html_text(body, _html_eq_link(app, page)),
                   "parents": []}
        yield page, context, "page.html"


def link_labels_on_source_pages(app, pagename, templatename, context, doctree) -> None:
    if not pagename.startswith(f"{SOURCE_PAGE_DIR}/") or "body" not in context:
        return
    context["body"] = linkify_html_text(context["body"], _html_eq_link(app, pagename))


# -- wiring ----------------------------------------------------------------------------------
STATIC = Path(__file__).resolve().parents[2] / "_static"


def builder_inited(app) -> None:
    app.provenance = read_sources(app)
    app.provenance_equations = None


def env_updated_docs(app, env) -> list[str]:
    """Rewrite every page that shows provenance: the package or the tests may have changed."""
    wanted = set(getattr(env, "provenance_docs", set()))
    wanted |= {doc for doc, _ in env.get_domain("math").equations.values()}
    app.provenance_equations = None
    return sorted(wanted & set(env.found_docs))


def note_doc(app, doctree) -> None:
    if next(iter(doctree.findall(equation_index)), None):
        # The index typesets equations once the document is resolved: the page needs MathJax.
        app.env.get_domain("math").data["has_equations"][app.env.docname] = True
    if next(iter(doctree.findall(lambda n: isinstance(n, (equation_index, addnodes.desc)))), None):
        if not hasattr(app.env, "provenance_docs"):
            app.env.provenance_docs = set()
        app.env.provenance_docs.add(app.env.docname)


def purge_doc(app, env, docname) -> None:
    getattr(env, "provenance_docs", set()).discard(docname)


def merge_info(app, env, docnames, other) -> None:
    if not hasattr(env, "provenance_docs"):
        env.provenance_docs = set()
    env.provenance_docs |= getattr(other, "provenance_docs", set()) & set(docnames)


def add_static_path(app, config) -> None:
    if str(STATIC) not in map(str, config.html_static_path):
        config.html_static_path.append(str(STATIC))


# The script of each kind of explorer (``data-cnn-explorer``), all built on explorer-kit.js.
EXPLORER_SCRIPTS = {"conv2d": "conv-explorer.js", "maxpool2d": "pool-explorer.js",
                    "batchnorm": "bn-explorer.js"}


def explorer_assets(app, pagename, templatename, context, doctree) -> None:
    body = context.get("body", "")
    kinds = [kind for kind in EXPLORER_SCRIPTS if f'data-cnn-explorer="{kind}"' in body]
    if kinds:
        app.add_js_file("explorer-kit.js", defer="defer")
        for kind in kinds:
            app.add_js_file(EXPLORER_SCRIPTS[kind], defer="defer")
        app.add_css_file("conv-explorer.css")


def _skip(self, node):
    raise nodes.SkipNode


def setup(app):
    app.setup_extension("sphinx.ext.viewcode")
    app.add_config_value("provenance_package", "cnn", "env", [str])
    app.add_config_value("provenance_package_dir", "cnn", "env", [str])
    app.add_config_value("provenance_test_files", ["tests/test_equations.py"], "env", [list])
    app.add_node(equation_index, html=(_skip, None), latex=(_skip, None), text=(_skip, None))
    app.add_directive("equation-index", EquationIndexDirective)
    app.connect("config-inited", add_static_path)
    app.connect("builder-inited", builder_inited)
    app.connect("doctree-read", note_doc)
    app.connect("env-purge-doc", purge_doc)
    app.connect("env-merge-info", merge_info)
    app.connect("env-check-consistency", check_consistency)
    app.connect("env-get-updated", env_updated_docs)
    app.connect("doctree-resolved", resolve_doctree)
    app.connect("html-collect-pages", tests_pages)
    app.connect("html-page-context", link_labels_on_source_pages)
    app.connect("html-page-context", explorer_assets)
    app.add_css_file("provenance.css")
    app.add_js_file("provenance.js", defer="defer")
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1.0"}
