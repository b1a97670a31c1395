"""Student notebooks built from the chapters and the package (``make assignments``).

One notebook per derivation chapter, ``assignments/<chapter>.ipynb``. Nothing in it is
typed twice, so text, code and assignments cannot drift apart:

* the derivation is the chapter's own text (the sections named in ``ASSIGNMENTS``),
  rendered by :mod:`myst2ipynb` like the downloaded notebooks, so equations carry the
  site's numbers and references are links; code cells and the listings of the
  functions to write are left out;
* each function to write is its signature and docstring, read from the package
  source with :mod:`ast`, and a body that only raises ``NotImplementedError``: the
  reference body is removed, not hidden;
* under each function, a read-only cell runs ``cnn.exercises.check`` on it;
* the chapter's figures that the quoted text keeps stand where their code cells stood,
  as PNG attachments of the derivation cell (JupyterLab renders no SVG attachment).
  Making them runs the chapter's code up to the figure, once: the derivation cell
  records a fingerprint of that code per figure, and while it holds, the image in the
  committed notebook is current and is kept (``make assignments`` runs the chapter
  again only for a figure whose code changed; ``--check`` never runs it).

Cells carry nbgrader's metadata (schema version 3): the function cells are
autograded answer cells with a ``### BEGIN SOLUTION`` region (holding only the stub),
the check cells locked, graded test cells with points. The same file therefore works
with no grader, and as an nbgrader source notebook.

For graded work, ``source_notebook`` makes the teacher's nbgrader *source* version of a
student notebook: the package's bodies in the solution regions, and under each check a
``### BEGIN HIDDEN TESTS`` region that checks the function again on cases drawn from
a seed the teacher chooses. ``nbgrader generate_assignment`` removes both from the copy
it releases; ``nbgrader autograde`` puts the hidden tests back. The committed student
notebooks never contain them (``make assignments SEED=...`` writes the source versions
into ``_build/nbgrader/source/``, outside the repository's committed files).

As a Sphinx extension (loaded by ``cnnbook``), it copies the notebooks and a zip of
them to ``_build/html/assignments/``, adds an "assignment" download button to each
chapter that has one, and provides the ``{assignment-table}`` directive.
"""

from __future__ import annotations

import ast
import base64
import builtins
import copy
import hashlib
import json
import posixpath
import re
import shutil
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
from docutils import nodes
from docutils.parsers.rst import Directive

from . import myst2ipynb, theme
from .release import read_version, tag

FOLDER = "assignments"
ZIP_NAME = "assignments.zip"
SCHEMA_VERSION = 3
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
#: A check cell: the check's name, and the function it checks.
CHECK_CELL = re.compile(r'^check\("(\w+)", (\w+)\)$')
STUB = 'raise NotImplementedError("write the body of {name}")'

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
LABEL = re.compile(r"\beq-[a-z0-9]+(?:-[a-z0-9]+)*\b")


class AssignmentError(ValueError):
    """A chapter, section or function named in ``ASSIGNMENTS`` cannot be used."""


@dataclass(frozen=True)
class Assignment:
    """One student notebook: the chapter it comes from and the functions to write."""

    #: The chapter's docname; the notebook is ``assignments/<name>.ipynb``.
    chapter: str
    #: Package functions to write, in order, as ``module.function``.
    functions: tuple[str, ...]
    #: Headings of the chapter sections whose text the notebook quotes, in order.
    sections: tuple[str, ...]
    #: Import lines of the set-up cell: types and helpers, never a function to write.
    imports: tuple[str, ...] = ()
    #: The check of each function, by the function's name, where it is not the check of
    #: that name (``{"im2col": "im2col_dilated"}``: the same function on other cases).
    checks: tuple[tuple[str, str], ...] = ()

    def check_name(self, function: str) -> str:
        """The name of the check that the notebook runs on ``function``."""
        return dict(self.checks).get(function, function)

    @property
    def name(self) -> str:
        return Path(self.chapter).name

    @property
    def path(self) -> str:
        return f"{FOLDER}/{self.name}.ipynb"


ASSIGNMENTS = (
    Assignment(
        "book/dense",
        ("cnn.dense.dense_forward", "cnn.dense.dense_backward"),
        ("The forward pass", "The backward pass, entry by entry"),
        ("from cnn.dense import DenseCache",),
    ),
    Assignment(
        "book/activations",
        ("cnn.activations.relu_forward", "cnn.activations.relu_backward",
         "cnn.activations.softmax", "cnn.losses.softmax_cross_entropy"),
        ("The rectified linear unit", "Softmax", "Overflow, and the log-sum-exp trick",
         "Softmax cross-entropy", "The gradient"),
        ("from cnn.activations import ReLUCache, log_softmax",),
    ),
    Assignment(
        "book/conv_forward",
        ("cnn.conv.conv2d_forward_naive", "cnn.conv.im2col", "cnn.conv.conv2d_forward"),
        ("Padding and stride", "The output size", "The naive loop version",
         "im2col: convolution as one matrix product"),
        ("from cnn.conv import ConvCache, output_size, pad",),
    ),
    Assignment(
        "book/conv_backward",
        ("cnn.conv.conv2d_backward_naive", "cnn.conv.col2im", "cnn.conv.conv2d_backward"),
        ("Setting up", "The bias gradient", "The weight gradient", "The input gradient",
         "Stride 1, no padding", "Padding: crop", "Stride: dilate", "All together",
         "The naive loops", "im2col and col2im"),
        ("from cnn.conv import ConvCache, crop, im2col, offset_index, output_size, pad",),
    ),
    Assignment(
        "book/pooling",
        ("cnn.pool.maxpool2d_forward", "cnn.pool.maxpool2d_backward",
         "cnn.pool.avgpool2d_forward", "cnn.pool.avgpool2d_backward"),
        ("Max pooling", "The backward pass: route the gradient to the maximum",
         "Ties, and why they matter for gradient checking", "The vectorised version",
         "Average pooling", "Overlapping windows and accumulation"),
        ("from cnn.conv import offset_index, output_size",
         "from cnn.pool import AvgPoolCache, MaxPoolCache"),
    ),
    Assignment(
        "book/gradcheck",
        ("cnn.gradcheck.numerical_gradient", "cnn.gradcheck.relative_error",
         "cnn.gradcheck.check_model"),
        ("Finite differences", "The relative error", "Checking a whole network"),
        ("from cnn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU",
         "from cnn.losses import softmax_cross_entropy",
         "from cnn.model import Sequential"),
    ),
    Assignment(
        "book/initialisation",
        ("cnn.init.he_normal", "cnn.init.xavier_normal",
         "cnn.activations.sigmoid_backward", "cnn.activations.tanh_backward"),
        ("Variance through one layer", "Through the nonlinearity: He and Xavier",
         "Saturating activations"),
        ("from cnn.activations import SigmoidCache, TanhCache, sigmoid_forward,"
         " tanh_forward",),
    ),
    Assignment(
        "book/batchnorm",
        ("cnn.norm.batchnorm_forward", "cnn.norm.batchnorm_backward"),
        ("The forward pass", "The backward pass, stage by stage", "The compact form",
         "Spatial batch normalisation"),
        ("from cnn.norm import BatchNormCache",),
    ),
    Assignment(
        "book/regularisation",
        ("cnn.regularization.dropout_forward", "cnn.regularization.dropout_backward",
         "cnn.pool.global_avgpool2d_forward", "cnn.pool.global_avgpool2d_backward"),
        ("Dropout", "Fixing the case study's failure on shifted patches"),
        ("from cnn.pool import GlobalAvgPoolCache",
         "from cnn.regularization import DropoutCache"),
    ),
    Assignment(
        "book/deeper_cnn",
        ("cnn.conv_transpose.conv_transpose2d_forward",
         "cnn.conv_transpose.conv_transpose2d_backward"),
        ("Running a convolution backwards: the transposed convolution",
         "The adjoint of the convolution", "The backward pass"),
        ("from cnn.conv import col2im, crop, im2col, pad",
         "from cnn.conv_transpose import ConvTransposeCache,"
         " conv_transpose2d_output_size"),
),
    Assignment(
        "book/residual",
        ("cnn.layers.residual_forward", "cnn.layers.residual_backward"),
        ("The block and its backward pass", "Why the first layers keep their gradient"),
        ("from cnn.layers import Conv2D, Dense, ReLU",),
    ),
    Assignment(
        "book/conv_variants",
        ("cnn.conv.im2col", "cnn.conv.conv2d_forward", "cnn.conv.conv2d_backward"),
        ("Dilated convolution", "Grouped convolution"),
        ("from cnn.conv import ConvCache, col2im, crop, offset_index, output_size, pad",),
        checks=(("im2col", "im2col_dilated"),
                ("conv2d_forward", "conv2d_forward_dilated_grouped"),
                ("conv2d_backward", "conv2d_backward_dilated_grouped")),
    ),
    Assignment(
        "book/normalisation",
        ("cnn.norm.normalize_forward", "cnn.norm.normalize_backward",
         "cnn.norm.groupnorm_forward", "cnn.norm.groupnorm_backward"),
        ("One normalisation, four choices of axes", "One backward pass"),
        ("from cnn.norm import GroupNormCache, NormCache",),
    ),
)


# -- the package source -----------------------------------------------------------

def module_path(root: Path, module: str) -> Path:
    return root / Path(*module.split(".")).with_suffix(".py")


def split_name(qualified: str) -> tuple[str, str]:
    module, _, name = qualified.rpartition(".")
    return module, name


def find_function(root: Path, qualified: str) -> tuple[ast.FunctionDef, list[str], ast.Module]:
    module, name = split_name(qualified)
    path = module_path(root, module)
    if not path.exists():
        raise AssignmentError(f"{qualified}: no module {path}")
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    node = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)
    if node is None:
        raise AssignmentError(f"{qualified}: {path.name} has no top-level function {name}")
    if ast.get_docstring(node) is None:
        raise AssignmentError(f"{qualified} has no docstring to start from")
    return node, source.split("\n"), tree


CACHE = re.compile(r"\b([A-Z]\w*Cache)\b")
CACHE_HEADING = "Cache fields"


def cache_fields(root: Path, qualified: str) -> list[str]:
    """Docstring lines listing the fields of every cache type the docstring names.

    Read from the ``NamedTuple`` in the function's module: each field, its type and its
    ``#:`` comment, so that a student knows what a cache holds (and that ``stride`` is
    a pair) without the package's body.
    """
    node, lines, tree = find_function(root, qualified)
    names = list(dict.fromkeys(CACHE.findall(ast.get_docstring(node))))
    classes = {c.name: c for c in tree.body if isinstance(c, ast.ClassDef)}
    out: list[str] = []
    for name in names:
        if name not in classes:
            raise AssignmentError(f"{qualified}: its docstring names {name}, which its "
                                  "module does not define")
        out += [f"``{name}``, a NamedTuple whose fields are:"]
        for field in classes[name].body:
            if not isinstance(field, ast.AnnAssign):
                continue
            comment, k = [], field.lineno - 2
            while lines[k].strip().startswith("#:"):
                comment.insert(0, lines[k].strip()[2:].strip())
                k -= 1
            out += [f"{field.target.id} : {ast.unparse(field.annotation)}"]
            out += textwrap.wrap(" ".join(comment), 80, initial_indent="    ",
                                 subsequent_indent="    ")
    return [CACHE_HEADING, "-" * len(CACHE_HEADING)] + out if out else []


def stub(root: Path, qualified: str) -> str:
    """Signature and docstring from the source, the fields of the caches it names added;
    a body that raises NotImplementedError."""
    node, lines, _ = find_function(root, qualified)
    head = lines[node.lineno - 1 : node.body[0].end_lineno]
    indent = " " * node.body[0].col_offset
    fields = cache_fields(root, qualified)
    if fields:  # before the closing quotes, on a line of their own
        head = head[:-1] + [""] + [indent + line for line in fields] + [head[-1]]
    body = [BEGIN, STUB.format(name=node.name), END]
    return "\n".join(head + [indent + line for line in body])


def reference_body(root: Path, qualified: str) -> list[str]:
    """The body of the package function after its docstring, with the imports it needs.

    For the tests only: they fill it into the student notebook to show that the
    notebook runs with a correct answer. The names the body takes from its module
    (helpers, caches, ``np``) are imported from that module.
    """
    node, lines, tree = find_function(root, qualified)
    module, _ = split_name(qualified)
    statements = node.body[1:]
    body = lines[statements[0].lineno - 1 : statements[-1].end_lineno]
    defined = set()
    for top in tree.body:
        if isinstance(top, (ast.FunctionDef, ast.ClassDef)):
            defined.add(top.name)
        elif isinstance(top, (ast.Import, ast.ImportFrom)):
            defined.update((a.asname or a.name).split(".")[0] for a in top.names)
        elif isinstance(top, ast.Assign):
            defined.update(t.id for t in top.targets if isinstance(t, ast.Name))
    used = {n.id for s in statements for n in ast.walk(s) if isinstance(n, ast.Name)}
    needed = sorted((used & defined) - set(dir(builtins)))
    indent = " " * statements[0].col_offset
    imports = [f"{indent}from {module} import {', '.join(needed)}"] if needed else []
    return imports + body


def docstring_labels(root: Path, qualified: str) -> list[str]:
    node, _, _ = find_function(root, qualified)
    return list(dict.fromkeys(LABEL.findall(ast.get_docstring(node))))


def protected_names(root: Path, assignment: Assignment) -> set[str]:
    """The functions to write and their twins (``_naive``/``_fast``), whose listings go."""
    names = set()
    for qualified in assignment.functions:
        module, name = split_name(qualified)
        base = re.sub(r"_(naive|fast)$", "", name)
        names |= {base, f"{base}_naive", f"{base}_fast"}
    return names


# -- the chapter text -------------------------------------------------------------

@dataclass
class Section:
    level: int
    title: str
    chunks: list[list[str]]


def read_chapter(root: Path, doc: str) -> nbformat.NotebookNode:
    path = root / f"{doc}.md"
    if not path.exists():
        raise AssignmentError(f"no chapter {path}")
    return myst2ipynb.read_chapter(path)


@dataclass(frozen=True)
class Figure:
    """A figure of a chapter: a code cell with MyST-NB ``figure`` metadata."""

    label: str
    alt: str
    caption: str
    #: Of the chapter's code up to and including the figure's cell: what draws it.
    fingerprint: str

    @property
    def attachment(self) -> str:
        return f"{self.label}.png"


def figure_options(cell: nbformat.NotebookNode) -> tuple[dict, dict]:
    """A code cell's MyST-NB options and, within them, its ``figure`` options."""
    meta = cell.metadata.get("mystnb") or {}
    return meta, meta.get("figure") or {}


def chapter_figures(chapter: nbformat.NotebookNode) -> dict[int, list[Figure]]:
    """The labelled figures of a chapter, by the Markdown cell (counted from 0) they follow."""
    found: dict[int, list[Figure]] = {}
    markdown, code = -1, hashlib.sha256()
    for cell in chapter.cells:
        if cell.cell_type == "markdown":
            markdown += 1
            continue
        code.update(cell.source.encode() + b"\0")
        meta, figure = figure_options(cell)
        if figure.get("name"):
            alt = " ".join(str((meta.get("image") or {}).get("alt", "")).split())
            if not alt:
                raise AssignmentError(f"figure {figure['name']} has no alternative text")
            found.setdefault(markdown, []).append(Figure(
                figure["name"], alt, str(figure.get("caption", "")).strip(),
                code.hexdigest()[:16]))
    return found


def rendered_prose(chapter: nbformat.NotebookNode, exported: nbformat.NotebookNode,
                   doc: str, index: myst2ipynb.BookIndex) -> list[str]:
    """The Markdown cells of ``chapter`` (``doc``) as the downloaded notebook renders them.

    The chapter is exported without its code cells. Equation numbers only depend on
    the Markdown, and the check against the full export (``exported``) makes sure of it.
    """
    prose = copy.deepcopy(chapter)
    prose.cells = [c for c in prose.cells if c.cell_type == "markdown"]
    full = {c.source for c in exported.cells if c.cell_type == "markdown"}
    cells = [c.source for c in myst2ipynb.export_notebook(prose, doc, index).cells
             if c.cell_type == "markdown"]
    differ = [c for c in cells if c not in full]
    if differ:
        raise AssignmentError(
            f"{doc}: without its code cells the chapter renders differently (a number "
            f"changed?): {differ[0][:200]!r}")
    return cells


def fence_state(line: str, fence: str | None) -> str | None:
    """The open code fence after ``line``: opened, closed or unchanged."""
    m = FENCE.match(line)
    if not m:
        return fence
    if fence is None:
        return m.group(1)
    closes = m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence)
    return None if closes and not line.strip().strip(fence[0]) else fence


FIGURE_MARK = "\x00figure "


def sections(cells: list[str], figures: dict[int, list[Figure]] | None = None) -> list[Section]:
    """Split rendered Markdown at its headings; each cell boundary starts a new chunk.

    A boundary between two Markdown cells is where a code cell stood; the figures among
    those code cells (``figures``, by the cell before them) end the chunk as a block of
    their own, ``FIGURE_MARK`` and the label.
    """
    found: list[Section] = [Section(0, "", [])]
    for position, source in enumerate(cells):
        found[-1].chunks.append([])
        fence = None
        for line in source.split("\n"):
            if fence is None and (h := HEADING.match(line)):
                found.append(Section(len(h.group(1)), h.group(2), [[]]))
                continue
            fence = fence_state(line, fence)
            found[-1].chunks[-1].append(line)
        for figure in (figures or {}).get(position, []):
            found[-1].chunks[-1] += ["", FIGURE_MARK + figure.label]
    return found


def paragraphs(lines: list[str]) -> list[list[str]]:
    """Blank-line separated blocks; fenced code stays one block."""
    blocks: list[list[str]] = []
    current: list[str] = []
    fence = None
    for line in lines:
        if fence is None and not line.strip():
            if current:
                blocks.append(current)
                current = []
            continue
        current.append(line)
        fence = fence_state(line, fence)
    if current:
        blocks.append(current)
    return blocks


def defines(block: list[str], names: set[str]) -> str | None:
    """The protected function a fenced code block lists, if any."""
    if not FENCE.match(block[0]):
        return None
    for line in block[1:]:
        m = re.match(r"^def (\w+)\(", line)
        if m and m.group(1) in names:
            return m.group(1)
    return None


CODE_TALK = re.compile(r"\b(cell|cells)\b")


SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\[`*$\x00])")
# Inline math, links and code may hold a full stop: never split inside them.
ATOMS = re.compile(r"\$[^$]+\$|!?\[[^\]]*\]\([^)]*\)|`[^`]+`")


def without_code_talk(block: list[str]) -> list[str]:
    """The sentences of a paragraph that do not speak of the chapter's code cells."""
    if any(line.strip().startswith("$$") for line in block):
        return block  # display math: keep the paragraph whole
    atoms: list[str] = []

    def mask(m: re.Match) -> str:
        atoms.append(m.group(0))
        return f"\x00{len(atoms) - 1}\x00"

    masked = ATOMS.sub(mask, " ".join(line.strip() for line in block))
    kept = " ".join(s for s in SENTENCE_END.split(masked) if not CODE_TALK.search(s))
    out = re.sub(r"\x00(\d+)\x00", lambda m: atoms[int(m.group(1))], kept)
    return [out] if out else []


def placeholder(name: str, assignment: Assignment) -> list[str]:
    written = [split_name(q)[1] for q in assignment.functions]
    if name in written:
        return [f"*(Here the chapter lists the package's `{name}`: you write it below.)*"]
    base = re.sub(r"_(naive|fast)$", "", name)
    yours = next(w for w in written if re.sub(r"_(naive|fast)$", "", w) == base)
    return [f"*(Here the chapter lists the package's `{name}`, which computes what you"
            f" write below as `{yours}`.)*"]


def figure_block(figure: Figure, doc: str, index: myst2ipynb.BookIndex) -> list[str]:
    """A figure as the notebook shows it: the image, then its number and caption."""
    alt = re.sub(r"([\[\]])", r"\\\1", figure.alt)
    caption = myst2ipynb.Renderer(index, doc).render(figure.caption).strip()
    number = index.targets[figure.label].number
    return [f"![{alt}](attachment:{figure.attachment})", "",
            f"**Figure {number}.** {' '.join(caption.split())}"]


def quoted_text(assignment: Assignment, index: myst2ipynb.BookIndex,
                source: nbformat.NotebookNode, exported: nbformat.NotebookNode,
                dropped: list | None = None, shown: list | None = None) -> list[str]:
    """The chapter sections of ``assignment`` (its ``source`` and its notebook as
    exported), listings of the functions to write removed.

    Code cells are not quoted, nor the paragraphs about them: a paragraph ending in a
    colon just before a code cell, and every paragraph that speaks of "the cell".
    A figure stays where its code cell stood (``shown`` collects them, in order).
    Headings go one level down; a section whose parent is not quoted becomes level 3.
    ``dropped`` collects the paragraphs left out, for review.
    """
    figures = chapter_figures(source)
    by_label = {f.label: f for found in figures.values() for f in found}
    shown = [] if shown is None else shown
    chapter = sections(rendered_prose(source, exported, assignment.chapter, index), figures)
    found = {s.title: s for s in chapter}
    missing = [t for t in assignment.sections if t not in found]
    if missing:
        raise AssignmentError(
            f"{assignment.chapter} has no section {missing[0]!r} (its headings: "
            f"{[s.title for s in chapter if s.title]})")
    protected = protected_names(index.root, assignment)
    dropped = [] if dropped is None else dropped
    levels: dict[str, int] = {}
    out: list[str] = []
    for position, section in enumerate(chapter):
        if section.title not in assignment.sections:
            continue
        parent = next((s for s in reversed(chapter[:position]) if s.level < section.level),
                      None)
        level = levels[parent.title] + 1 if parent and parent.title in levels else 3
        levels[section.title] = level
        out += ["#" * level + " " + section.title, ""]
        for k, chunk in enumerate(section.chunks):
            kept: list[list[str]] = []
            for block in paragraphs(chunk):
                name = defines(block, protected)
                if block[0].startswith(FIGURE_MARK):
                    figure = by_label[block[0].removeprefix(FIGURE_MARK)]
                    shown.append(figure)
                    kept.append(figure_block(figure, assignment.chapter, index))
                elif name:
                    if kept and f"`{name}`" in kept[-1][-1] and kept[-1][-1].endswith(":"):
                        kept.pop()  # the listing's caption
                    kept.append(placeholder(name, assignment))
                elif not FENCE.match(block[0]) and CODE_TALK.search(" ".join(block)):
                    rest = without_code_talk(block)
                    dropped.append(block)
                    if rest:
                        kept.append(rest)
                else:
                    kept.append(block)
            if kept and k < len(section.chunks) - 1 and kept[-1][-1].rstrip().endswith(":"):
                dropped.append(kept.pop())  # it introduced a code cell
            for block in kept:
                out += block + [""]
    return out


# -- the notebook -----------------------------------------------------------------

def nbgrader(grade_id: str, *, solution=False, grade=False, locked=False, points=None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked,
            "schema_version": SCHEMA_VERSION, "solution": solution, "task": False}
    if grade:
        meta["points"] = points
    return {"nbgrader": meta}


def points(name: str) -> int:
    """Backward passes and the network check are the heart of the book: 2 points."""
    return 2 if "backward" in name or name == "check_model" else 1


def equation_links(labels: list[str], doc: str, index: myst2ipynb.BookIndex) -> str:
    renderer = myst2ipynb.Renderer(index, doc)
    return ", ".join(f"`{label}` is " + renderer.render(f"{{eq}}`{label}`") for label in labels)


def build_notebook(assignment: Assignment, index: myst2ipynb.BookIndex,
                   execute: bool = False) -> nbformat.NotebookNode:
    """The student notebook; ``execute`` runs the chapter for figures whose image is stale."""
    root, doc = index.root, assignment.chapter
    if doc not in index.notebook_docs():
        raise AssignmentError(f"{doc} is not a chapter of the toc")
    names = [split_name(q)[1] for q in assignment.functions]
    renderer = myst2ipynb.Renderer(index, doc)
    title = renderer.render(f"{{doc}}`/{doc}`")
    number = index.numbers.get(doc)
    chapter = f"Chapter {number}, " if number else ""
    listed = ", ".join(f"`{n}`" for n in names)
    intro = [
        f"# Assignment: {index.titles.get(doc, doc)}",
        "",
        f"*Student notebook for {chapter}{title}, of [CNN from Scratch with NumPy]"
        f"({index.site_url}). It is generated from the chapter and from the package "
        f"`cnn` ([`{assignment.path}`]({index.blob_url(assignment.path)})).*",
        "",
        f"You write {listed} yourself, from the derivation below and from each "
        "function's signature and docstring (their *Raises* sections describe the "
        "package's input validation, which you may leave out). Replace the line `raise NotImplementedError"
        "(...)` of each function with your code and run its cell; then run the cell under "
        "it. `check` calls your function on small random cases of several shapes "
        "and tells you in plain words what is wrong: a wrong shape or dtype, "
        "a modified input, wrong values (which output, the relative error, the first wrong "
        "entry), a gradient that disagrees with finite differences. When it prints \"all N "
        "cases pass\", move on.",
        "",
        "Import nothing you are asked to write from `cnn`: the package holds the book's "
        "own solutions. The set-up cell imports what you may use: NumPy, the cache types "
        "and the helpers.",
    ]
    cells = [nbformat.v4.new_markdown_cell("\n".join(intro))]
    source = read_chapter(root, doc)
    exported = myst2ipynb.export_notebook(source, doc, index)
    cells += [nbformat.v4.new_code_cell(c.source) for c in exported.cells
              if c.cell_type == "code"][:1]  # the install cell
    shown: list[Figure] = []
    derivation = nbformat.v4.new_markdown_cell("\n".join(
        [f"## The derivation, from the chapter", "",
         f"*The sections of the chapter that this assignment needs, with their figures "
         f"but without the code cells: [read the chapter]({index.page_url(doc)}) for "
         f"those.*", ""]
        + quoted_text(assignment, index, source, exported, shown=shown)).strip())
    if shown:
        images = figure_images(assignment, shown, index.root, execute)
        derivation.metadata["figures"] = {f.label: f.fingerprint for f in shown}
        derivation.attachments = {f.attachment: {"image/png": images[f.label]}
                                  for f in shown if f.label in images}
    cells.append(derivation)
    setup = ["import numpy as np", "", "from cnn.exercises import check", *assignment.imports,
             "", "rng = np.random.default_rng(0)  # for your own experiments"]
    cells.append(nbformat.v4.new_markdown_cell("## Your turn"))
    cells.append(nbformat.v4.new_code_cell("\n".join(setup)))
    for qualified, name in zip(assignment.functions, names):
        labels = docstring_labels(root, qualified)
        for label in labels:
            if label not in index.targets:
                raise AssignmentError(f"{qualified}: its docstring names {label}, which no chapter defines")
        implements = (f" Its docstring names the book's equations by their labels: "
                      f"{equation_links(labels, doc, index)}.") if labels else ""
        cells.append(nbformat.v4.new_markdown_cell(
            f"### `{name}`\n\nWrite the body of `{name}`.{implements}"))
        cells.append(nbformat.v4.new_code_cell(stub(root, qualified), metadata=nbgrader(name, solution=True)))
        cells.append(nbformat.v4.new_code_cell(
            f'check("{assignment.check_name(name)}", {name})',
            metadata=nbgrader(f"check_{name}", grade=True, locked=True, points=points(name))))
    cells.append(nbformat.v4.new_markdown_cell(
        "When every check passes, you have derived and written this chapter's functions "
        "yourself. The " + renderer.render("{doc}`/book/bugzoo`") + " shows the mistakes "
        "that the checks and the gradient check catch, and what their failures look like."))
    for i, cell in enumerate(cells):
        cell.id = f"{assignment.name.replace('_', '-')}-{i:02d}"
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    return nb


def expected_notebooks(root: Path | str, execute: bool = False) -> dict[str, str]:
    """Repository path -> text of every student notebook, as chapters and package stand.

    Without ``execute``, a figure whose code changed since its image was made has no
    image, so the notebook differs from the committed one: it is stale.
    """
    index = myst2ipynb.BookIndex.load(root)
    return {a.path: nbformat.writes(build_notebook(a, index, execute)) + "\n"
            for a in ASSIGNMENTS if a.chapter in index.notebook_docs()}


# -- the figures: drawn by the chapter's code, kept while that code is unchanged ----

#: Device pixels per CSS pixel of the images: sharp on high-density screens.
FIGURE_SCALE = 2


def committed_images(root: Path, assignment: Assignment) -> dict[str, tuple[str, str]]:
    """Label -> (fingerprint, base64 PNG) of the figures in the committed notebook."""
    path = root / assignment.path
    if not path.exists():
        return {}
    for cell in nbformat.read(path, as_version=4).cells:
        fingerprints = cell.metadata.get("figures")
        if cell.cell_type == "markdown" and fingerprints:
            attachments = cell.get("attachments", {})
            return {label: (fingerprint, attachments[f"{label}.png"]["image/png"])
                    for label, fingerprint in fingerprints.items()
                    if f"{label}.png" in attachments}
    return {}


def figure_images(assignment: Assignment, figures: list[Figure], root: Path,
                  execute: bool) -> dict[str, str]:
    """Label -> base64 PNG of each figure: the committed image while its fingerprint
    holds, otherwise (with ``execute``) drawn by running the chapter."""
    committed = committed_images(root, assignment)
    images = {f.label: committed[f.label][1] for f in figures
              if committed.get(f.label, ("",))[0] == f.fingerprint}
    missing = [f for f in figures if f.label not in images]
    if missing and execute:
        images.update(draw_figures(root, assignment.chapter, missing))
    return images


def draw_figures(root: Path, doc: str, figures: list[Figure]) -> dict[str, str]:
    """Run the chapter's code up to its last figure in ``figures`` (in ``book/``, as the
    build does) and return each figure's image as base64 PNG."""
    import cairosvg  # loads the Cairo library: only making the images needs it
    from nbclient import NotebookClient

    chapter = read_chapter(root, doc)
    wanted = {f.label for f in figures}
    code, cells = [c for c in chapter.cells if c.cell_type == "code"], {}
    for cell in code:
        name = figure_options(cell)[1].get("name")
        if name in wanted:
            cells[name] = cell
        if set(cells) == wanted:
            break
    last = max(code.index(cell) for cell in cells.values())
    nb = nbformat.v4.new_notebook(cells=code[:last + 1])
    nb.metadata = chapter.metadata
    print(f"{doc}: running the chapter to draw {', '.join(sorted(wanted))}", flush=True)
    NotebookClient(nb, timeout=1800, kernel_name="python3",
                   resources={"metadata": {"path": str(root / Path(doc).parent)}}).execute()
    images = {}
    for label, cell in cells.items():
        # Every chapter draws SVG (the teacher kits take their figures from it too).
        svg = next((o["data"]["image/svg+xml"] for o in cell.outputs
                    if o.get("output_type") == "display_data"
                    and "image/svg+xml" in o.get("data", {})), None)
        if svg is None:
            raise AssignmentError(f"{doc}: the cell of {label} displays no SVG image")
        png = cairosvg.svg2png(bytestring=svg.encode(), scale=FIGURE_SCALE)
        images[label] = base64.b64encode(png).decode()
    return images


def fill_in_references(nb: nbformat.NotebookNode, root: Path | str,
                       keep_markers: bool = False) -> nbformat.NotebookNode:
    """A copy of a student notebook with the package's bodies in the solution regions.

    With ``keep_markers``, the body stays between ``### BEGIN SOLUTION`` and ``### END
    SOLUTION``, so that nbgrader replaces only the body, not the signature and docstring.
    """
    root = Path(root)
    qualified = {split_name(q)[1]: q for a in ASSIGNMENTS for q in a.functions}
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if not cell.metadata.get("nbgrader", {}).get("solution"):
            continue
        name = ast.parse(cell.source).body[0].name
        lines = cell.source.split("\n")
        begin = next(i for i, line in enumerate(lines) if line.strip() == BEGIN)
        end = next(i for i, line in enumerate(lines) if line.strip() == END)
        body = reference_body(root, qualified[name])
        if keep_markers:
            body = [lines[begin], *body, lines[end]]
        cell.source = "\n".join(lines[:begin] + body + lines[end + 1:])
    return nb


def source_notebook(nb: nbformat.NotebookNode, root: Path | str,
                    seed: int) -> nbformat.NotebookNode:
    """The teacher's nbgrader source version of a student notebook.

    The solution regions hold the package's bodies (``fill_in_references``), and every
    check cell ends in a hidden-tests region that checks the function again on cases
    drawn from ``seed``: students practise on seed 0 and never see this one.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise AssignmentError(f"seed must be an int >= 0, got {seed!r}")
    nb = fill_in_references(nb, root, keep_markers=True)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("grade"):
            continue
        m = CHECK_CELL.match(cell.source)
        if m is None:
            raise AssignmentError(f"{meta['grade_id']}: not a check cell: {cell.source!r}")
        cell.source = "\n".join([cell.source, BEGIN_HIDDEN,
                                 f'check("{m.group(1)}", {m.group(2)}, seed={seed})',
                                 END_HIDDEN])
    return nb


def source_notebooks(root: Path | str, seed: int) -> dict[str, str]:
    """``<assignment>/<assignment>.ipynb`` -> text of every nbgrader source notebook,
    laid out as nbgrader's ``source/`` folder wants it (one assignment per chapter)."""
    found = {}
    for path, text in expected_notebooks(root).items():
        nb = source_notebook(nbformat.reads(text, as_version=4), root, seed)
        name = Path(path).stem
        found[f"{name}/{name}.ipynb"] = nbformat.writes(nb) + "\n"
    return found


# -- the site ---------------------------------------------------------------------

def publish(app, exception) -> None:
    """Copy the notebooks and a zip of them into the built site."""
    if exception is not None or app.builder.format != "html":
        return
    source = Path(app.srcdir) / FOLDER
    target = Path(app.outdir) / FOLDER
    target.mkdir(parents=True, exist_ok=True)
    index = myst2ipynb.BookIndex.load(app.srcdir)
    files = {source / f"{a.name}.ipynb": download_name(a, index) for a in ASSIGNMENTS
             if (source / f"{a.name}.ipynb").exists()}
    for path, name in files.items():
        shutil.copy2(path, target / path.name)
        shutil.copy2(path, target / name)
    with zipfile.ZipFile(target / ZIP_NAME, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, name in files.items():
            archive.write(path, f"{FOLDER}/{name}")


def add_button(app, pagename, templatename, context, doctree) -> None:
    """An "assignment" entry in the download menu of a chapter that has one."""
    if app.builder.format != "html":
        return
    assignment = next((a for a in ASSIGNMENTS if a.chapter == pagename), None)
    if assignment is None or not (Path(app.srcdir) / assignment.path).exists():
        return
    from cnnbook import book_index  # the index this build has loaded already

    name = download_name(assignment, book_index(app))
    theme.add_download_button(
        context, url=context["pathto"](f"{FOLDER}/{name}", 1), text="assignment",
        icon="fas fa-pencil-alt", tooltip="Download the student notebook of this chapter",
        label="download-assignment-button")


def download_name(assignment: Assignment, index: myst2ipynb.BookIndex) -> str:
    """``05-conv_backward-assignment.ipynb``: distinct from the chapter's download."""
    return myst2ipynb.download_name(assignment.chapter, index, kind="assignment")


def _paragraph(*parts) -> nodes.paragraph:
    para = nodes.paragraph()
    for part in parts:
        para += part if isinstance(part, nodes.Node) else nodes.Text(part)
    return para


def _link(text: str, url: str, literal=False) -> nodes.reference:
    ref = nodes.reference("", "", refuri=url)
    ref += nodes.literal(text, text) if literal else nodes.Text(text)
    return ref


class AssignmentTable(Directive):
    """A table of the student notebooks: download, chapter, functions, Colab, Binder."""

    has_content = False

    def run(self):
        env = self.state.document.settings.env
        here = posixpath.dirname(env.docname)
        index = myst2ipynb.BookIndex.load(env.srcdir)
        rel = lambda path: posixpath.relpath(path, here or ".")
        header = ["Notebook", "Chapter", "You write", "Open in"]
        rows = []
        for a in ASSIGNMENTS:
            if a.chapter not in index.notebook_docs():
                continue
            urls = theme.launch_urls(env.app, index, a.path, tag(read_version()))
            number = index.numbers.get(a.chapter)
            title = index.titles.get(a.chapter, a.chapter)
            functions = _paragraph()
            for i, q in enumerate(a.functions):
                if i:
                    functions += nodes.Text(", ")
                functions += nodes.literal(split_name(q)[1], split_name(q)[1])
            rows.append([
                _paragraph(_link(download_name(a, index),
                                 rel(f"{FOLDER}/{download_name(a, index)}"), literal=True)),
                _paragraph(_link(f"{number}. {title}" if number else title, rel(f"{a.chapter}.html"))),
                functions,
                _paragraph(_link("Colab", urls["Colab"]), " · ", _link("Binder", urls["Binder"])),
            ])
        table = nodes.table(classes=["assignment-table"])
        group = nodes.tgroup(cols=len(header))
        table += group
        for width in (18, 30, 36, 16):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        group += head
        head += nodes.row("", *[nodes.entry("", _paragraph(h)) for h in header])
        body = nodes.tbody()
        group += body
        for row in rows:
            body += nodes.row("", *[nodes.entry("", cell) for cell in row])
        zipped = _paragraph("All of them in one file: ",
                            _link(ZIP_NAME, rel(f"{FOLDER}/{ZIP_NAME}"), literal=True), ".")
        return [table, zipped]


def setup(app):
    app.add_directive("assignment-table", AssignmentTable)
    app.connect("build-finished", publish)
    # After sphinx-book-theme (501) and cnnbook (502) have built the header buttons.
    app.connect("html-page-context", add_button, priority=503)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1.0"}
