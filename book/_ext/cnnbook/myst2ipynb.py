"""Turn the book's MyST Markdown chapters into plain Jupyter notebooks.

Jupyter, Colab and Binder do not understand MyST: a downloaded chapter would
show ``{eq}`eq-conv-dx``` literally. This module rewrites every MyST construct
the book uses into Markdown that any notebook front end renders:

* ``{eq}`label``` becomes "Eq. (4.3)" linked to the equation's anchor on the site,
  and the labelled equation itself gets ``\\tag{4.3}``, so the numbers match the
  site's (chapter number from the toc order, equations numbered per chapter);
* ``{cite}`key``` becomes author-year text linked to the bibliography page;
* ``{literalinclude}`` becomes a Markdown code block holding the quoted package
  source (read with Sphinx's own reader, so ``:pyobject:`` selects the same lines);
* exercises, solutions, proofs and admonitions become Markdown (solutions are
  collapsed ``<details>`` blocks); other roles become text or links.

Chapters are read with the parser the site is built with (myst-parser's markdown-it
set-up, the extensions of ``_config.yml``, myst-parser's directive options), so both see
the same constructs. Only their tokens are rewritten; all else is copied as written.

The same code serves the committed ``notebooks/*.ipynb`` (no outputs, for Colab and
Binder; ``scripts/export_notebooks.py``) and the executed notebooks the site offers
for download (``cnnbook.py``), so both read the same. Numbering is computed in one
pass over all chapters in toc order with the same walker that renders them.
"""

from __future__ import annotations

import copy
import functools
import itertools
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import jupytext
import nbformat
import yaml
from docutils.nodes import make_id
from docutils.parsers.rst.directives.misc import TestDirective
from markdown_it import MarkdownIt
from markdown_it.helpers import parseLinkLabel
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from myst_parser.config.main import MdParserConfig
from myst_parser.parsers.directives import parse_directive_text
from myst_parser.parsers.mdit import create_md_parser
from sphinx_external_toc.api import FileItem
from sphinx_external_toc.parsing import parse_toc_yaml
from sphinx.util.nodes import split_explicit_title

from .listing import summarise_docstrings
from .release import read_version, tag

# The release the text belongs to (the tag v0.2.0), not the moving main branch.
INSTALL_CELL = """\
# Installs the book's package `cnn`, release {version} (the code this text was written
# with), when it is missing (Colab, Binder, a fresh environment).
try:
    import cnn
except ImportError:
    %pip install --quiet "cnn-from-scratch @ git+{repo_url}@{tag}"
    import importlib
    importlib.invalidate_caches()
    try:
        import cnn
    except ImportError:
        # Stop here rather than fail in the next cell with "No module named 'cnn'".
        raise SystemExit(
            "The book's package cnn is not installed, and installing it failed (no"
            " network?). Connect to the internet and run this cell again, or run in a"
            " terminal, then restart the kernel:\\n"
            '    pip install "cnn-from-scratch @ git+{repo_url}@{tag}"') from None
else:
    if cnn.__version__ != "{version}":
        print("This text was written for cnn {version}; installed:", cnn.__version__)"""

ADMONITIONS = {
    "admonition", "note", "tip", "hint", "important", "warning", "caution",
    "attention", "danger", "error", "seealso",
}
# Containers whose content is shown as is, with the argument (if any) as a bold title.
CONTAINERS = {"margin", "sidebar", "epigraph", "topic", "card", "div", "container", "only", "rubric"}
DROPPED = {"toctree", "tableofcontents", "index"}
# amsmath environments inside $$: the *ed variant MathJax accepts there (None: no wrapper).
AMSMATH_ENVS = {
    "equation": None, "multline": "gathered", "gather": "gathered", "align": "aligned",
    "alignat": "alignedat", "flalign": "aligned",
}
PY_ROLES = {"func", "class", "meth", "mod", "attr", "obj", "data", "exc", "const"}
# markdown-it gives inline tokens no source position; these rules record the text they
# consumed, so a role or link is replaced where it stands and code spans are stepped over.
SOURCED_RULES = ("myst_role", "backticks", "link", "image")


class ExportError(ValueError):
    """A chapter uses a label, key or construct the exporter cannot resolve."""


@dataclass
class Target:
    docname: str
    anchor: str
    text: str
    number: str = ""  # "4.3" for numbered equations, figures, exercises and proofs


@dataclass
class BookIndex:
    """Everything a reference can point to, collected over the whole book."""

    root: Path
    site_url: str
    repo_url: str
    branch: str
    eqref_format: str
    docs: list[str]
    numbers: dict[str, int]
    titles: dict[str, str] = field(default_factory=dict)
    targets: dict[str, Target] = field(default_factory=dict)
    citations: dict[str, tuple[str, str]] = field(default_factory=dict)
    extensions: frozenset[str] = frozenset()
    notebooks: list[str] = field(default_factory=list)
    bibliography_doc: str = "book/bibliography"
    api_doc: str = "book/api"

    @property
    def md(self) -> MarkdownIt:
        return myst_parser(self.extensions)

    @classmethod
    def load(cls, root: Path | str) -> "BookIndex":
        """Read ``_config.yml``, ``_toc.yml`` and the bibliography, then number every chapter."""
        root = Path(root).resolve()
        config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
        docs, numbers = read_toc(root)
        sphinx_config = (config.get("sphinx") or {}).get("config") or {}
        index = cls(
            root=root,
            site_url=config["html"]["baseurl"].rstrip("/") + "/",
            repo_url=config["repository"]["url"].rstrip("/"),
            branch=config["repository"].get("branch", "main"),
            eqref_format=sphinx_config.get("math_eqref_format", "({number})"),
            docs=docs,
            numbers=numbers,
            extensions=frozenset((config.get("parse") or {}).get("myst_enable_extensions", [])),
        )
        for bibfile in config.get("bibtex_bibfiles", []):
            index.citations.update(read_citations(root / bibfile))
        for doc in docs:
            path = root / f"{doc}.md"
            if not path.exists():
                continue
            nb = read_chapter(path)
            if "kernelspec" in nb.metadata:
                index.notebooks.append(doc)
            renderer = Renderer(index, doc, collecting=True)
            for cell in nb.cells:
                if cell.cell_type == "markdown":
                    renderer.render(cell.source)
                elif cell.cell_type == "code":
                    renderer.code_cell_caption(cell)
        return index

    def page_url(self, docname: str, anchor: str = "") -> str:
        return f"{self.site_url}{docname}.html" + (f"#{anchor}" if anchor else "")

    def blob_url(self, relpath: str) -> str:
        return f"{self.repo_url}/blob/{self.branch}/{relpath}"

    def raw_url(self, relpath: str) -> str:
        return self.repo_url.replace("https://github.com/", "https://raw.githubusercontent.com/") + (
            f"/{self.branch}/{relpath}"
        )

    def notebook_docs(self) -> list[str]:
        return self.notebooks


def notebook_docs(root: Path | str) -> list[str]:
    """Chapters that are notebooks (a jupytext header with a kernelspec) and exist, in toc order."""
    root = Path(root)
    return [doc for doc in read_toc(root)[0]
            if (root / f"{doc}.md").exists() and "kernelspec" in read_chapter(root / f"{doc}.md").metadata]


def read_toc(root: Path | str) -> tuple[list[str], dict[str, int]]:
    """The docnames of ``_toc.yml`` in reading order (root first), read as Jupyter Book does,
    and the chapter numbers Sphinx shows: consecutive over the numbered parts
    (sphinx-multitoc-numbering); the root page is never numbered."""
    site_map = parse_toc_yaml(Path(root) / "_toc.yml")

    def files(tree) -> list[str]:
        return [item for item in tree.items if isinstance(item, FileItem)]

    def walk(doc: str) -> list[str]:
        return [doc] + [d for tree in site_map[doc].subtrees for item in files(tree) for d in walk(item)]

    def docname(doc: str) -> str:
        return Path(doc).with_suffix("").as_posix()

    numbered = [doc for tree in site_map.root.subtrees if tree.numbered for doc in files(tree)]
    return [docname(d) for d in walk(site_map.root.docname)], {docname(d): i for i, d in enumerate(numbered, 1)}


def read_chapter(path: Path) -> nbformat.NotebookNode:
    return jupytext.reads(path.read_text(encoding="utf-8"), fmt="md:myst")


@functools.cache
def myst_parser(extensions: frozenset[str]) -> MarkdownIt:
    """The Markdown parser MyST builds the site with, its inline tokens keeping their source."""
    md = create_md_parser(MdParserConfig(enable_extensions=set(extensions)), RendererHTML)
    for rule in md.inline.ruler.__rules__:
        if rule.name in SOURCED_RULES:
            md.inline.ruler.at(rule.name, _keeping_source(rule.fn))
    return md


def _keeping_source(rule):
    def keep_source(state, silent: bool) -> bool:
        start, count = state.pos, len(state.tokens)
        if not rule(state, silent):
            return False
        token = None if silent else next((t for t in state.tokens[count:] if t.type != "text"), None)
        if token is not None:
            token.meta["source"] = state.src[start : state.pos]
            if token.type in {"link_open", "image"}:  # where "[label]" ends and the destination starts
                label = start + (token.type == "image")
                token.meta["label_end"] = parseLinkLabel(state, label, token.type == "link_open") + 1 - start
        return True

    return keep_source


def latex_to_text(latex: str) -> str:
    from pybtex.richtext import Text

    return Text.from_latex(latex).render_as("text")


def read_citations(bibfile: Path) -> dict[str, tuple[str, str]]:
    """Map each BibTeX key to (authors as cited, year), author-year style."""
    from pybtex.database import parse_file

    citations = {}
    for key, entry in parse_file(str(bibfile)).entries.items():
        persons = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [latex_to_text(" ".join(p.prelast_names + p.last_names)) for p in persons]
        if not names:
            names = [latex_to_text(entry.fields.get("organization", entry.fields.get("title", key)))]
        authors = " and ".join(names) if len(names) <= 2 else f"{names[0]} et al."
        citations[key] = (authors, entry.fields.get("year", "n.d."))
    return citations


def quote(lines: list[str]) -> list[str]:
    return [f"> {line}" if line else ">" for line in lines]


def _replace(text: str, edits: list[tuple[int, int, str]]) -> str:
    """``text`` with each ``(start, end, new)`` span replaced (spans in order, not overlapping)."""
    out, pos = [], 0
    for start, end, new in edits:
        out += [text[pos:start], new]
        pos = end
    return "".join(out) + text[pos:]


class Renderer:
    """Rewrite the MyST of one chapter into plain Markdown, in document order.

    With ``collecting=True`` it only records what labels point to (equation and
    exercise numbers, section titles); the numbering code is the same in both modes.
    """

    def __init__(self, index: BookIndex, docname: str, collecting: bool = False):
        self.index = index
        self.doc = docname
        self.collecting = collecting
        self.chapter = index.numbers.get(docname)
        self.counters: dict[str, int] = {}

    # -- numbering -------------------------------------------------------
    def _number(self, kind: str) -> str:
        self.counters[kind] = self.counters.get(kind, 0) + 1
        n = self.counters[kind]
        return f"{self.chapter}.{n}" if self.chapter else str(n)

    def _register(self, label: str, anchor: str, text: str, number: str = "") -> None:
        if self.collecting:
            if label in self.index.targets and self.index.targets[label].docname != self.doc:
                raise ExportError(f"label {label!r} defined in {self.doc} and {self.index.targets[label].docname}")
            self.index.targets[label] = Target(self.doc, anchor, text, number)

    def equation(self, content: str, label: str | None) -> list[str]:
        if not label:
            return ["$$", content.strip(), "$$"]
        number = self._number("equation")
        self._register(label, make_id(f"equation-{label}"), self.index.eqref_format.format(number=number), number)
        return ["$$", content.strip(), f"\\tag{{{number}}}", "$$"]

    def figure_number(self, label: str | None) -> str:
        """Number a labelled figure (Sphinx numbers only figures that have a label)."""
        if not label:
            return ""
        number = self._number("figure")
        self._register(label, make_id(label), f"Fig. {number}", number)
        return number

    def code_cell_caption(self, cell: nbformat.NotebookNode) -> str | None:
        """Caption of a MyST-NB figure (``mystnb: figure: {name, caption}``), as Markdown."""
        figure = (cell.metadata.get("mystnb") or {}).get("figure")
        if not figure:
            return None
        number = self.figure_number(figure.get("name"))
        caption = self.render(str(figure.get("caption", ""))).strip()
        anchor = f'<a id="{make_id(figure["name"])}"></a>\n\n' if figure.get("name") else ""
        return f"{anchor}**Figure {number}.** {caption}" if number else caption or None

    # -- block level -----------------------------------------------------
    def render(self, text: str) -> str:
        """``text`` with its MyST rewritten; whatever needs no change is copied as written."""
        source = text + "\n"
        lines = source.split("\n")
        starts = [0, *itertools.accumulate(len(line) + 1 for line in lines)]  # offset of each line
        edits: list[tuple[int, int, str]] = []
        targets: list[str] = []  # labels waiting for the heading they name
        tokens = self.index.md.parse(source)
        for i, token in enumerate(tokens):
            if token.type == "inline":
                edits += self._inline_edits(token, source, max(starts[token.map[0]], edits[-1][1] if edits else 0))
                continue
            if token.type == "heading_open":
                title = self.inline(tokens[i + 1].content)
                for label in targets:
                    self._register(label, make_id(label), title)
                if token.tag == "h1" and self.collecting:
                    self.index.titles.setdefault(self.doc, title)
            if token.nesting == 1:
                targets = []
            if token.type == "myst_target":
                targets.append(token.content)
                new = [f'<a id="{make_id(token.content)}"></a>']
            elif token.type == "myst_line_comment":
                new = []
            elif token.type in {"math_block", "math_block_label"}:
                new = self.equation(token.content, token.info)
            elif token.type == "amsmath":
                new = self.amsmath(token)
            elif token.type in {"fence", "colon_fence"}:
                name, arg = (token.info.split(maxsplit=1) + ["", ""])[:2]
                if name.startswith("{") and name.endswith("}"):
                    new = self.directive(name[1:-1], arg.strip(), token.content)
                elif token.type == "colon_fence":  # a plain div: its content is Markdown
                    new = [self.render(token.content.removesuffix("\n"))]
                else:
                    continue
            else:
                continue
            # amsmath's map ends on its last line, every other block's after it.
            first, end = token.map[0], token.map[1] + (token.type == "amsmath")
            edits.append((starts[first], starts[end], self._block_lines(lines[first], new)))
        return _replace(source, edits)[:-1]

    @staticmethod
    def _block_lines(first_line: str, new: list[str]) -> str:
        """Replacement lines for a block, inside the list item or quote the block is in."""
        if not new:
            return ""
        prefix = first_line[: len(first_line) - len(first_line.lstrip(" \t>-*+0123456789.)"))]
        rest = re.sub(r"[^\s>]", " ", prefix)
        return "".join((rest if k else prefix) + line + "\n" for k, line in enumerate("\n".join(new).split("\n")))

    def amsmath(self, token: Token) -> list[str]:
        env, star = token.meta["environment"], token.meta["numbered"]
        inner = token.content.strip()[len(f"\\begin{{{env}{star}}}") : -len(f"\\end{{{env}{star}}}")]
        wrapper = AMSMATH_ENVS.get(env, env)
        content = f"\\begin{{{wrapper}}}{inner}\\end{{{wrapper}}}" if wrapper else inner
        # myst numbers every unstarred amsmath block under a generated, unreferenceable label.
        tag = [] if star else [f"\\tag{{{self._number('equation')}}}"]
        return ["$$", content.strip(), *tag, "$$"]

    def directive(self, name: str, arg: str, text: str) -> list[str]:
        # Options are split off as myst-parser does; TestDirective keeps every one as text.
        parsed = parse_directive_text(TestDirective, arg, text)
        options = parsed.options
        content = "\n".join(parsed.body).strip("\n")
        label = options.get("label") or options.get("name")
        if name == "math":
            return self.equation(content, options.get("label"))
        if name == "literalinclude":
            # Quoted code holds no labels: the numbering pass need not read it.
            return [] if self.collecting else self.literalinclude(arg, options)
        if name in {"code-block", "code", "sourcecode"}:
            return [f"```{arg}", content, "```"]
        if name in DROPPED:
            return []
        if name == "bibliography":
            return [f"See the [bibliography]({self.index.page_url(self.index.bibliography_doc)})."]
        if name in {"figure", "image"}:
            return self.figure(arg, options, content)
        rendered = self.render(content).split("\n") if content else []
        numbered = "nonumber" not in options
        if name == "exercise":
            number = self._number("exercise") if numbered else ""
            kind = f"Exercise {number}".strip()
            if label:
                self._register(label, make_id(label), kind, number)
            title = kind + (f" ({self.inline(arg)})" if arg else "")
            head = [f'<a id="{make_id(label)}"></a>', ""] if label else []
            return [*head, f"**{title}.**", "", *rendered]
        if name == "solution":
            target = self.index.targets.get(arg)
            summary = f"Solution to {target.text}" if target else "Solution"
            return ["<details>", f"<summary>{summary}</summary>", "", *rendered, "", "</details>"]
        if name == "dropdown":
            return ["<details>", f"<summary>{self.inline(arg) or 'Details'}</summary>", "", *rendered, "", "</details>"]
        if name.startswith("prf:"):
            kind = name[4:].capitalize()  # "prf:definition" is a "Definition"
            # sphinx-proof numbers each kind separately; proofs are not numbered.
            number = self._number(name) if name != "prf:proof" and numbered else ""
            title = f"{kind} {number}".strip() + (f" ({self.inline(arg)})" if arg else "")
            if label:
                self._register(label, make_id(label), title, number)
            if name == "prf:proof":
                return [f"*{title}.*", "", *rendered, "", "$\\square$"]
            return quote([f"**{title}.**", "", *rendered])
        if name in ADMONITIONS:
            title = self.inline(arg) if arg else name.capitalize()
            if name == "seealso" and not arg:
                title = "See also"
            return quote([f"**{title}**", "", *rendered])
        if name in CONTAINERS:
            return quote(([f"**{self.inline(arg)}**", ""] if arg else []) + rendered)
        if self.collecting:
            return []  # e.g. autodoc on the API page, which is not a notebook
        raise ExportError(f"{self.doc}: no plain-Markdown rendering for the directive {{{name}}}")

    def literalinclude(self, arg: str, options: dict[str, str]) -> list[str]:
        from sphinx.directives.code import LiteralIncludeReader

        path = (self.index.root / Path(self.doc).parent / arg).resolve()
        relpath = path.relative_to(self.index.root).as_posix()
        reader_options = {k: v for k, v in options.items() if k in {
            "pyobject", "lines", "start-after", "end-before", "start-at", "end-at", "prepend", "append",
        }}
        if "dedent" in options:
            reader_options["dedent"] = int(options["dedent"]) if options["dedent"] else None
        try:
            text, _ = LiteralIncludeReader(str(path), reader_options, SimpleNamespace(source_encoding="utf-8-sig")).read()
        except (OSError, ValueError) as error:
            raise ExportError(f"{self.doc}: literalinclude {arg}: {error}") from error
        if options.get("docstring", "full") == "summary":
            text = summarise_docstrings(text)
        language = options.get("language", "python" if path.suffix == ".py" else "")
        what = f", `{options['pyobject']}`" if "pyobject" in options else ""
        caption = f"From [`{relpath}`]({self.index.blob_url(relpath)}){what}:"
        return [caption, "", f"```{language}", *text.rstrip("\n").split("\n"), "```"]

    def figure(self, arg: str, options: dict[str, str], content: str) -> list[str]:
        url = arg if "://" in arg else self.index.raw_url(_normpath(f"{Path(self.doc).parent.as_posix()}/{arg}"))
        lines = [f"![{options.get('alt', '')}]({url})"]
        number = self.figure_number(options.get("name"))
        caption = self.render(content) if content else ""
        if number:
            caption = f"**Figure {number}.** {caption}"
        return lines + ["", caption] if caption else lines

    # -- inline level ----------------------------------------------------
    def inline(self, text: str) -> str:
        """``text`` (a title, a directive's argument) with its roles and links rewritten."""
        return _replace(text, self._inline_edits(self.index.md.parseInline(text)[0], text, 0))

    def _inline_edits(self, token: Token, text: str, pos: int) -> list[tuple[int, int, str]]:
        """Where in ``text`` (from ``pos`` on) the roles and links of ``token`` stand, and
        their Markdown. Code spans are found too, so that the search steps over them."""
        edits, link = [], None  # a link's destination follows its label
        for child in token.children or []:
            source, new = child.meta.get("source"), None
            if child.type == "link_open":
                link = self._destination(child) if source else None
                continue
            if child.type == "link_close":
                source, new = link or (None, None)
            elif child.type == "image" and source:
                source, new = self._destination(child) or (None, None)
            elif child.type == "myst_role":
                new = self._role(child.meta["name"], child.content)
            elif child.type != "code_inline":
                continue
            if not source:
                continue
            # The text of a multi-line span lost its line's indentation or quote marker.
            found = re.compile(re.escape(source).replace("\\\n", "\n[ \t>]*")).search(text, pos)
            if found is None:
                raise ExportError(f"{self.doc}: cannot find {source!r} in its paragraph")
            pos = found.end()
            if new is not None:
                edits.append((found.start(), pos, new))
        return edits

    def _destination(self, token: Token) -> tuple[str, str] | None:
        """A relative link's or image's ``(destination)`` and its absolute replacement."""
        href = token.attrs["src" if token.type == "image" else "href"]
        source = token.meta["source"][token.meta["label_end"] :]
        if urlsplit(href).scheme or href.startswith("#") or not source.startswith("("):
            return None
        path, _, anchor = href.partition("#")
        relpath = _normpath(f"{Path(self.doc).parent.as_posix()}/{path}")
        if path.endswith(".md"):
            url = self.index.page_url(relpath[:-3], anchor)
        elif token.type == "image":
            url = self.index.raw_url(relpath)
        else:
            url = self.index.blob_url(relpath)
        title = f' "{token.attrs["title"]}"' if token.attrs.get("title") else ""
        return source, f"({url}{title})"

    def _resolve(self, label: str, role: str) -> Target:
        target = self.index.targets.get(label)
        if target is None:
            if self.collecting:
                return Target(self.doc, "", label)
            raise ExportError(f"{self.doc}: {{{role}}} refers to unknown label {label!r}")
        return target

    def _role(self, name: str, text: str) -> str:
        explicit, title, target = split_explicit_title(text)
        title = title if explicit else None
        if name == "eq":
            t = self._resolve(target, name)
            return f"[{t.text}]({self.index.page_url(t.docname, t.anchor)})"
        if name in {"ref", "numref", "prf:ref"}:
            t = self._resolve(target, name)
            if name == "numref" and title:
                title = title.replace("%s", t.number).replace("{number}", t.number)
            return f"[{title or t.text}]({self.index.page_url(t.docname, t.anchor)})"
        if name == "doc":
            doc = _normpath((Path(self.doc).parent / target).as_posix())
            return f"[{title or self.index.titles.get(doc, doc)}]({self.index.page_url(doc)})"
        if name.startswith("cite"):
            return self._cite(name, target)
        if name == "math":
            return f"${text}$"
        if name in {"download"}:
            relpath = _normpath((Path(self.doc).parent / target).as_posix())
            return f"[{title or Path(target).name}]({self.index.raw_url(relpath)})"
        short = name.split(":")[-1]
        if short in PY_ROLES:
            full = target.lstrip("~!.")
            shown = full.rsplit(".", 1)[-1] if target.startswith("~") else full
            suffix = "()" if short in {"func", "meth"} else ""
            return f"[`{title or shown + suffix}`]({self.index.page_url(self.index.api_doc, full)})"
        if name in {"abbr"} and explicit:
            return f"{title} ({target})"
        if name in {"sub", "sup", "kbd"}:
            return f"<{name}>{text}</{name}>"
        if name in {"term", "abbr", "guilabel", "menuselection", "samp", "file", "command", "program"}:
            return title or text
        raise ExportError(f"{self.doc}: no plain-Markdown rendering for the role {{{name}}}")

    def _cite(self, role: str, keys_text: str) -> str:
        parts = []
        for key in [k.strip() for k in keys_text.split(",") if k.strip()]:
            if key not in self.index.citations:
                raise ExportError(f"{self.doc}: unknown citation key {key!r}")
            authors, year = self.index.citations[key]
            url = self.index.page_url(self.index.bibliography_doc, make_id(f"cite-{key}"))
            textual = role in {"cite:t", "cite:ts", "cite:ct", "cite:cts"}
            parts.append(f"[{authors} ({year})]({url})" if textual else f"[{authors}, {year}]({url})")
        if role in {"cite:t", "cite:ts", "cite:ct", "cite:cts", "cite:author", "cite:year"}:
            return ", ".join(parts)
        return "(" + "; ".join(parts) + ")"


def _normpath(posix: str) -> str:
    return posixpath.normpath(posix).lstrip("/")


def export_notebook(nb: nbformat.NotebookNode, docname: str, index: BookIndex) -> nbformat.NotebookNode:
    """Plain-Jupyter copy of a chapter notebook (outputs, if any, are kept).

    ``nb`` is either the chapter read with jupytext (no outputs) or the notebook
    MyST-NB executed during the build (with outputs).
    """
    renderer = Renderer(index, docname)
    version = read_version()
    install = INSTALL_CELL.format(repo_url=index.repo_url, version=version, tag=tag(version))
    cells = [nbformat.v4.new_code_cell(install)]
    first_markdown = True
    for cell in nb.cells:
        cell = copy.deepcopy(cell)
        if cell.cell_type == "markdown":
            cell.source = renderer.render(cell.source).strip("\n")
            if first_markdown:
                cell.source = _add_provenance(cell.source, docname, index)
                first_markdown = False
        elif cell.cell_type == "code":
            caption = renderer.code_cell_caption(cell)
            cell.metadata = {k: v for k, v in cell.metadata.items() if k in {"tags"}}
            cells.append(cell)
            if caption:
                cells.append(nbformat.v4.new_markdown_cell(caption))
            continue
        cells.append(cell)
    for i, cell in enumerate(cells):
        cell.id = f"cell-{i:03d}"
        if cell.cell_type != "code":
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
    out = nbformat.v4.new_notebook(cells=cells)
    out.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    return out


def _add_provenance(source: str, docname: str, index: BookIndex) -> str:
    """State where the notebook comes from right under the chapter title."""
    number = index.numbers.get(docname)
    chapter = f"Chapter {number} of " if number else ""
    note = (
        f"*{chapter}[CNN from Scratch with NumPy]({index.site_url}). "
        f"[Read it online]({index.page_url(docname)}); this notebook is generated from "
        f"[`{docname}.md`]({index.blob_url(docname + '.md')}).*"
    )
    lines = source.split("\n")
    at = next((t.map[1] for t in index.md.parse(source) if t.type == "heading_open" and t.tag == "h1"), 0)
    rest = "\n".join(lines[at:]).strip("\n")
    return "\n".join(lines[:at] + ["", note, "", rest]).strip("\n")


def strip_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def export_chapter(docname: str, index: BookIndex) -> str:
    """The committed ``notebooks/<chapter>.ipynb`` text (no outputs) for one chapter."""
    nb = read_chapter(index.root / f"{docname}.md")
    return nbformat.writes(strip_outputs(export_notebook(nb, docname, index))) + "\n"


def notebook_path(docname: str) -> str:
    """Where a chapter's notebook lives in the repository (Colab and Binder open it)."""
    return f"notebooks/{Path(docname).name}.ipynb"


def download_name(docname: str, index: "BookIndex", kind: str = "") -> str:
    """The file name a download of the chapter gets: ``05-conv_backward.ipynb``.

    ``kind="assignment"`` names its student notebook
    ``05-conv_backward-assignment.ipynb``, so the two never overwrite each other in a
    downloads folder; a page without a number keeps its plain name.
    """
    number = index.numbers.get(docname)
    stem = Path(docname).name + (f"-{kind}" if kind else "")
    return f"{number:02d}-{stem}.ipynb" if isinstance(number, int) else f"{stem}.ipynb"
