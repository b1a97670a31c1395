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

The same code serves the committed ``notebooks/*.ipynb`` (no outputs, for Colab and
Binder; ``scripts/export_notebooks.py``) and the executed notebooks the site offers
for download (``cnnbook.py``), so both read the same. Numbering is computed in one
pass over all chapters in toc order with the same walker that renders them.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import jupytext
import nbformat
import yaml
from docutils.nodes import make_id
from listing import summarise_docstrings

INSTALL_CELL = """\
# Installs the book's package `cnn` when it is missing (Colab, Binder, a fresh environment).
try:
    import cnn
except ImportError:
    %pip install --quiet "cnn-from-scratch @ git+{repo_url}"
    import importlib
    importlib.invalidate_caches()"""

ADMONITIONS = {
    "admonition", "note", "tip", "hint", "important", "warning", "caution",
    "attention", "danger", "error", "seealso",
}
# Containers whose content is shown as is, with the argument (if any) as a bold title.
CONTAINERS = {"margin", "sidebar", "epigraph", "topic", "card", "div", "container", "only", "rubric"}
DROPPED = {"toctree", "tableofcontents", "index"}
AMSMATH_ENVS = {
    "equation": None, "multline": "gathered", "gather": "gathered", "align": "aligned",
    "alignat": "alignedat", "flalign": "aligned",
}

FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
DIRECTIVE = re.compile(r"^\{(?P<name>[^}\s]+)\}\s*(?P<arg>.*)$")
OPTION = re.compile(r"^:(?P<key>[\w-]+):\s*(?P<value>.*)$")
# One left-to-right scan: a role, an inline code span (kept verbatim) or a link.
INLINE = re.compile(
    r"\{(?P<name>[a-zA-Z][\w:+-]*)\}`(?P<text>[^`]*)`"
    r"|(?P<code>``.+?``|`[^`]+`)"
    r"|(?P<bang>!?)\[(?P<linktext>[^\]]*)\]\((?P<target>[^)\s]+)\)"
)
TARGET = re.compile(r"^\((?P<label>[^()\s]+)\)=\s*$")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
DOLLAR_LABEL = re.compile(r"^\s*\((?P<label>[^()\s]+)\)\s*$")
AMS_BEGIN = re.compile(r"^\s*\\begin\{(?P<env>[a-z]+)(?P<star>\*?)\}")
EXPLICIT_TITLE = re.compile(r"^(?P<title>.*?)\s*<(?P<target>[^<>]+)>$", re.S)
PROOF_TYPES = {
    "proof": "Proof", "definition": "Definition", "theorem": "Theorem", "lemma": "Lemma",
    "corollary": "Corollary", "proposition": "Proposition", "example": "Example",
    "remark": "Remark", "algorithm": "Algorithm", "conjecture": "Conjecture",
    "axiom": "Axiom", "criterion": "Criterion", "observation": "Observation",
    "assumption": "Assumption", "notation": "Notation", "property": "Property",
}
PY_ROLES = {"func", "class", "meth", "mod", "attr", "obj", "data", "exc", "const"}


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
    bibliography_doc: str = "book/bibliography"
    api_doc: str = "book/api"

    @classmethod
    def load(cls, root: Path | str) -> "BookIndex":
        """Read ``_config.yml``, ``_toc.yml`` and the bibliography, then number every chapter."""
        root = Path(root).resolve()
        config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
        toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
        docs = toc_docnames(toc)
        numbers = chapter_numbers(toc)
        sphinx_config = (config.get("sphinx") or {}).get("config") or {}
        index = cls(
            root=root,
            site_url=config["html"]["baseurl"].rstrip("/") + "/",
            repo_url=config["repository"]["url"].rstrip("/"),
            branch=config["repository"].get("branch", "main"),
            eqref_format=sphinx_config.get("math_eqref_format", "({number})"),
            docs=docs,
            numbers=numbers,
        )
        for bibfile in config.get("bibtex_bibfiles", []):
            index.citations.update(read_citations(root / bibfile))
        for doc in docs:
            path = root / f"{doc}.md"
            if not path.exists():
                continue
            nb = read_chapter(path)
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
        return notebook_docs(self.root)


def notebook_docs(root: Path | str) -> list[str]:
    """Chapters that are notebooks (a jupytext header with a kernelspec) and exist, in toc order."""
    root = Path(root)
    found = []
    for doc in toc_docnames(yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))):
        path = root / f"{doc}.md"
        if path.exists() and "kernelspec" in front_matter(path.read_text(encoding="utf-8")):
            found.append(doc)
    return found


def chapter_numbers(toc: dict) -> dict[str, int]:
    """Chapter numbers as Sphinx shows them: consecutive over the numbered parts
    (sphinx-multitoc-numbering); the root page is never numbered."""
    default = (toc.get("defaults") or {}).get("numbered", False)
    numbered = [
        str(Path(chapter["file"]).with_suffix(""))
        for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}])
        if part.get("numbered", default)
        for chapter in part.get("chapters", [])
    ]
    return {doc: i for i, doc in enumerate(numbered, start=1)}


def toc_docnames(toc: dict) -> list[str]:
    """Docnames of a jb-book toc in reading order (root first)."""
    docs = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                docs.append(str(Path(entry["file"]).with_suffix("")))
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    return docs


def front_matter(text: str) -> dict:
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    return yaml.safe_load(text[3:end]) or {} if end > 0 else {}


def read_chapter(path: Path) -> nbformat.NotebookNode:
    return jupytext.reads(path.read_text(encoding="utf-8"), fmt="md:myst")


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
        if len(names) == 1:
            authors = names[0]
        elif len(names) == 2:
            authors = f"{names[0]} and {names[1]}"
        else:
            authors = f"{names[0]} et al."
        citations[key] = (authors, entry.fields.get("year", "n.d."))
    return citations


def parse_directive_body(lines: list[str]) -> tuple[dict[str, str], list[str]]:
    """Split a directive's body into its options (``:key: value`` or YAML) and content."""
    options: dict[str, str] = {}
    i = 0
    if lines and lines[0].strip() == "---":
        end = next((j for j in range(1, len(lines)) if lines[j].strip() == "---"), None)
        if end is not None:
            options = {k: "" if v is None else str(v) for k, v in (yaml.safe_load("\n".join(lines[1:end])) or {}).items()}
            i = end + 1
    else:
        while i < len(lines) and (m := OPTION.match(lines[i].strip())):
            options[m["key"]] = m["value"].strip()
            i += 1
    content = lines[i:]
    while content and not content[0].strip():
        content = content[1:]
    while content and not content[-1].strip():
        content = content[:-1]
    return options, content


def quote(lines: list[str]) -> list[str]:
    return [f"> {line}" if line else ">" for line in lines]


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
        self.pending_target: str | None = None

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
        if label is None:
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
        return "\n".join(self.render_lines(text.split("\n")))

    def render_lines(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        # Roles may wrap across lines: inline markup is rewritten a paragraph at a time.
        paragraph: list[str] = []

        def flush() -> None:
            if paragraph:
                out.extend(self.inline("\n".join(paragraph)).split("\n"))
                paragraph.clear()

        i = 0
        while i < len(lines):
            line = lines[i]
            stripped = line.strip()
            fence = FENCE.match(line)
            heading = HEADING.match(line)
            if fence or stripped.startswith("$$") or heading or TARGET.match(stripped) or not stripped:
                flush()
            if fence:
                end = self._fence_end(lines, i, fence["fence"])
                body = lines[i + 1 : end]
                directive = DIRECTIVE.match(fence["info"].strip())
                if directive:
                    out.extend(self.directive(directive["name"], directive["arg"].strip(), body))
                elif fence["fence"][0] == ":":
                    out.extend(self.render_lines(body))
                else:
                    out.extend(lines[i : end + 1])
                i = end + 1
                continue
            if stripped.startswith("$$"):
                i = self._dollar_math(lines, i, out)
                continue
            if (ams := AMS_BEGIN.match(line)) and ams["env"] in AMSMATH_ENVS:
                flush()
                i = self._amsmath(lines, i, ams, out)
                continue
            i += 1
            if target := TARGET.match(stripped):
                self.pending_target = target["label"]
                out.append(f'<a id="{make_id(target["label"])}"></a>')
            elif stripped.startswith("%") and not stripped.startswith("%%"):
                continue  # a MyST comment
            elif heading:
                title = self.inline(heading[2])
                if self.pending_target:
                    self._register(self.pending_target, make_id(self.pending_target), title)
                if heading[1] == "#" and self.collecting:
                    self.index.titles.setdefault(self.doc, title)
                self.pending_target = None
                out.append(self.inline(line))
            else:
                if stripped:
                    self.pending_target = None
                paragraph.append(line)
        flush()
        return out

    @staticmethod
    def _fence_end(lines: list[str], start: int, fence: str) -> int:
        for j in range(start + 1, len(lines)):
            close = lines[j].strip()
            if close and set(close) == {fence[0]} and len(close) >= len(fence) and len(lines[j]) - len(lines[j].lstrip()) < 4:
                return j
        return len(lines)

    def _dollar_math(self, lines: list[str], i: int, out: list[str]) -> int:
        """``$$ ... $$`` optionally followed by ``(label)`` on the closing line."""
        first = lines[i].strip()[2:]
        if "$$" in first:
            content, rest = first.split("$$", 1)
            end = i
        else:
            body = [first]
            end = i + 1
            while end < len(lines) and "$$" not in lines[end]:
                body.append(lines[end])
                end += 1
            if end == len(lines):
                raise ExportError(f"{self.doc}: unclosed $$ starting at {lines[i]!r}")
            before, rest = lines[end].split("$$", 1)
            content = "\n".join(body + [before])
        label = DOLLAR_LABEL.match(rest)
        if rest.strip() and not label:
            raise ExportError(f"{self.doc}: text after display math: {rest!r}")
        out.extend(self.equation(content, label["label"] if label else None))
        return end + 1

    def _amsmath(self, lines: list[str], i: int, ams: re.Match, out: list[str]) -> int:
        env, star = ams["env"], ams["star"]
        end_marker = f"\\end{{{env}{star}}}"
        end = i
        while end < len(lines) and end_marker not in lines[end]:
            end += 1
        block = "\n".join(lines[i : end + 1]).strip()
        inner = block[len(f"\\begin{{{env}{star}}}") : -len(end_marker)]
        wrapper = AMSMATH_ENVS[env]
        content = f"\\begin{{{wrapper}}}{inner}\\end{{{wrapper}}}" if wrapper else inner
        # myst numbers every unstarred amsmath block under a generated, unreferenceable label.
        if star:
            out.extend(["$$", content.strip(), "$$"])
        else:
            number = self._number("equation")
            out.extend(["$$", content.strip(), f"\\tag{{{number}}}", "$$"])
        return end + 1

    def directive(self, name: str, arg: str, body: list[str]) -> list[str]:
        options, content = parse_directive_body(body)
        label = options.get("label") or options.get("name")
        if name == "math":
            return self.equation("\n".join(content), options.get("label"))
        if name == "literalinclude":
            # Quoted code holds no labels: the numbering pass need not read it.
            return [] if self.collecting else self.literalinclude(arg, options)
        if name in {"code-block", "code", "sourcecode"}:
            return [f"```{arg}", *content, "```"]
        if name in DROPPED:
            return []
        if name == "bibliography":
            return [f"See the [bibliography]({self.index.page_url(self.index.bibliography_doc)})."]
        if name in {"figure", "image"}:
            return self.figure(arg, options, content)
        rendered = self.render_lines(content)
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
            kind = PROOF_TYPES.get(name[4:], name[4:].capitalize())
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

    def figure(self, arg: str, options: dict[str, str], content: list[str]) -> list[str]:
        url = arg if "://" in arg else self.index.raw_url(_normpath(f"{Path(self.doc).parent.as_posix()}/{arg}"))
        lines = [f"![{options.get('alt', '')}]({url})"]
        number = self.figure_number(options.get("name"))
        caption = self.render_lines(content)
        if number:
            caption[:1] = [f"**Figure {number}.** " + (caption[0] if caption else "")]
        return lines + ["", *caption] if caption else lines

    # -- inline level ----------------------------------------------------
    def inline(self, line: str) -> str:
        return INLINE.sub(self._inline_match, line)

    def _inline_match(self, m: re.Match) -> str:
        if m["code"]:
            # Inline code is kept verbatim: a chapter may show MyST syntax as code.
            return m["code"]
        if m["name"]:
            return self._role(m)
        return self._link(m)

    def _link(self, m: re.Match) -> str:
        target = m["target"]
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            return m.group(0)
        path, _, anchor = target.partition("#")
        relpath = _normpath(f"{Path(self.doc).parent.as_posix()}/{path}")
        if path.endswith(".md"):
            url = self.index.page_url(relpath[:-3], anchor)
        elif m["bang"]:
            url = self.index.raw_url(relpath)
        else:
            url = self.index.blob_url(relpath)
        return f"{m['bang']}[{m['linktext']}]({url})"

    def _resolve(self, label: str, role: str) -> Target:
        target = self.index.targets.get(label)
        if target is None:
            if self.collecting:
                return Target(self.doc, "", label)
            raise ExportError(f"{self.doc}: {{{role}}} refers to unknown label {label!r}")
        return target

    def _role(self, m: re.Match) -> str:
        name, text = m["name"], m["text"]
        explicit = EXPLICIT_TITLE.match(text)
        title, target = (explicit["title"], explicit["target"]) if explicit else (None, text)
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
            return f"{explicit['title']} ({explicit['target']})"
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
    parts: list[str] = []
    for part in posix.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in {"", "."}:
            parts.append(part)
    return "/".join(parts)


def export_notebook(nb: nbformat.NotebookNode, docname: str, index: BookIndex) -> nbformat.NotebookNode:
    """Plain-Jupyter copy of a chapter notebook (outputs, if any, are kept).

    ``nb`` is either the chapter read with jupytext (no outputs) or the notebook
    MyST-NB executed during the build (with outputs).
    """
    renderer = Renderer(index, docname)
    cells = [nbformat.v4.new_code_cell(INSTALL_CELL.format(repo_url=index.repo_url))]
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
    at = next((i + 1 for i, line in enumerate(lines) if line.startswith("# ")), 0)
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
