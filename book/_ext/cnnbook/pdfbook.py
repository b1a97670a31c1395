"""The PDF editions of the book (Jupyter Book's LaTeX builder) and the site's links to them.

``scripts/build_pdf.py`` (``make pdf``) runs ``jupyter-book build . --builder pdflatex``
once per edition with ``CNNBOOK_EDITION=instructor|student``; this module, loaded by
:mod:`cnnbook`, makes each LaTeX build say what the site says:

* the edition, version and release date on the title page and in the page headers,
  and a file named ``cnn-from-scratch-numpy-<version>-<edition>.pdf``;
* no solutions in the student edition (sphinx-exercise's ``hide_solutions``);
* equations, figures and exercises numbered as on the site: sphinx-jupyterbook-latex
  raises ``numfig_secnum_depth`` to 2 for books with parts, so that LaTeX numbers
  equations per chapter, but Sphinx then numbers exercises per section (5.8.1 instead
  of 5.1); here Sphinx reads with the site's 1 and the LaTeX writer gets 2;
* references to exercises in other chapters resolve (Sphinx's LaTeX writer would
  ``\\ref`` a label sphinx-exercise never defines, printing "??");
* parts that are unnumbered in ``_toc.yml`` (Reference) hold unnumbered chapters;
* the page holding the ``{bibliography}`` directive adds no empty chapter beside the
  bibliography Sphinx writes at the end of the book;
* code lines break only at spaces and after commas and closing brackets, never inside
  a name or a number, in a font size that fits the package's 88-column lines.

On the site, the ``{pdf-editions}`` directive lists both PDFs when ``make pdf`` has
made them for this version (they are copied to ``_build/html/pdf/``) and says how to
make them otherwise; the header's download menu then offers them on every page.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.builders.latex.nodes import thebibliography
from sphinx.errors import ConfigError
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util.docutils import SphinxDirective
from sphinx.util.osutil import relative_uri
from sphinx.util.texescape import escape as tex_escape
from sphinx_exercise.nodes import exercise_enumerable_node

from . import theme
from .release import EDITIONS, ROOT, long_date, pdf_name, read_version, release_date

EDITION_ENV = "CNNBOOK_EDITION"
# A jupyter-cache folder shared by the two editions of one `make pdf`, so the chapters
# are executed once (the cache keys on the cells' text, which cannot go stale within
# one run; the site's builds always execute afresh).
CACHE_ENV = "CNNBOOK_EXECUTION_CACHE"
# Where the site looks for the PDFs to link (default: _build/pdf, where make pdf puts them).
PDF_DIR_ENV = "CNNBOOK_PDF_DIR"
PDF_URL_DIR = "pdf"
TEX_PACKAGES = (
    "texlive-latex-recommended texlive-latex-extra texlive-xetex latexmk fonts-freefont-otf "
    "texlive-fonts-recommended xindy"
)
INSTALL_HINT = f"sudo apt-get install --no-install-recommends {TEX_PACKAGES}"

LATEX_PREAMBLE = r"""
% --- cnnbook (book/_ext/cnnbook/pdfbook.py) ---
\makeatletter
% Parts that are unnumbered in _toc.yml hold unnumbered chapters.
\AtBeginDocument{\edef\cnn@secnumdepth{\the\value{secnumdepth}}}
\newcommand*{\cnnnumberedpart}{\setcounter{secnumdepth}{\cnn@secnumdepth}}
\newcommand*{\cnnunnumberedpart}{\setcounter{secnumdepth}{-2}}
\makeatother
% Long code lines break at spaces, before { < # % $ and after , ; } ^ & > ~ only: never
% inside a name, a number, a string's quotes or an operator such as != (Sphinx also
% breaks after _ - . / ! ? and \ and before quotes).
\renewcommand*\sphinxbreaksbeforelist{%
    \do\PYGZob\{\do\PYGZlt\<\do\PYGZsh\#\do\PYGZpc\%\do\PYGZdl\$}
\renewcommand*\sphinxbreaksafterlist{%
    \do\PYGZcb\}\do\PYGZca\^\do\PYGZam\&\do\PYGZgt\>\do\PYGZti\~}
\renewcommand*\sphinxbreaksafteractivelist{\do\,\do\;}
% --- end cnnbook ---
"""
# 8 pt code: an 88-column line of the package fits the text width with room to spare.
LATEX_FVSET = r"\fvset{fontsize=\footnotesize}"


def pdf_dir(app) -> Path:
    return Path(os.environ.get(PDF_DIR_ENV) or ROOT / "_build" / "pdf")


def published_pdfs(app) -> dict[str, Path]:
    """Edition -> PDF of this version, when make pdf has made both; else empty."""
    version = read_version()
    found = {edition: pdf_dir(app) / pdf_name(edition, version) for edition in EDITIONS}
    return found if all(path.is_file() for path in found.values()) else {}


def configure(app, config) -> None:
    """config-inited: version, date and edition; LaTeX settings for the PDF builds."""
    version, date = read_version(), release_date()
    config.version = version
    config.release = version
    config.today = long_date(date)
    theme_options = config.html_theme_options
    theme_options["extra_footer"] = (
        f"<p>{config.project}, version {version} ({long_date(date)}).</p>"
        + theme_options.get("extra_footer", "")
    )

    edition = os.environ.get(EDITION_ENV) or config.cnnbook_edition
    if edition not in EDITIONS:
        raise ConfigError(f"{EDITION_ENV} must be one of {sorted(EDITIONS)}, not {edition!r}")
    config.cnnbook_edition = edition
    if edition == "student":
        config.hide_solutions = True
    cache = os.environ.get(CACHE_ENV)
    if cache:
        config.nb_execution_mode = "cache"
        config.nb_execution_cache_path = cache

    elements = config.latex_elements
    elements["preamble"] = elements.get("preamble", "") + LATEX_PREAMBLE
    elements["fvset"] = LATEX_FVSET
    elements["releasename"] = "Version"
    bbm = Path(__file__).parents[2] / "_latex" / "bbm.sty"
    config.latex_additional_files = [*config.latex_additional_files, str(bbm)]


def latex_builder_inited(app) -> None:
    """builder-inited, after sphinx-jupyterbook-latex: the site's numbering while reading."""
    if app.builder.format != "latex":
        return
    # Sphinx numbers exercises (sphinx-exercise prints these numbers) while reading; with
    # the site's depth 1 they are 5.1, not 5.8.1. LaTeX numbers equations and figures
    # itself, per chapter when the writer gets depth 2 (see latex_after_reading).
    app.cnnbook_latex_secnum_depth = app.config.numfig_secnum_depth
    app.config.numfig_secnum_depth = 1
    # "Version 0.2.0, student edition" on the title page and in every page header; the
    # builder has already copied config.release into its template context.
    label = EDITIONS[app.config.cnnbook_edition].split(",")[0]
    app.config.release = app.builder.context["release"] = f"{app.config.version}, {label}"


def latex_after_reading(app, env) -> None:
    """env-check-consistency (all read, exercises numbered, nothing written yet): the
    LaTeX writer gets depth 2 back and numbers equations within chapters (numfigreset=1)."""
    if app.builder.format == "latex":
        app.config.numfig_secnum_depth = app.cnnbook_latex_secnum_depth


def latex_document(app, env, docnames) -> None:
    """env-before-read-docs: name the PDF (Jupyter Book sets latex_documents after init)."""
    if app.builder.format != "latex":
        return
    target = Path(pdf_name(app.config.cnnbook_edition, app.config.version)).with_suffix(".tex")
    start, _, title, author, theme, *rest = app.config.latex_documents[0]
    app.config.latex_documents = [(start, target.name, title, author, theme, *rest)]


class ExerciseReferences(SphinxPostTransform):
    """``{numref}`` to an exercise in another chapter: link to sphinx-exercise's label.

    Sphinx's LaTeX writer prints a number_reference as ``\\ref{docname:label}``, a label
    sphinx-exercise does not define (it writes ``exercise:label``), so the PDF showed
    "Exercise ??". The text already holds the site's number.
    """

    default_priority = 21  # after reference resolution, before sphinx-exercise's own (22)
    formats = ("latex",)

    def run(self, **kwargs) -> None:
        registry = getattr(self.env, "sphinx_exercise_registry", {})
        for node in list(self.document.findall(addnodes.number_reference)):
            target = node.get("refid") or node.get("refuri", "").partition("#")[2]
            label = target.rpartition(":")[2]
            if not isinstance(registry.get(label, {}).get("node"), exercise_enumerable_node):
                continue
            latex = rf"\hyperref[exercise:{label}]{{{tex_escape(node.astext())}}}"
            node.replace_self(nodes.raw("", latex, format="latex"))


class PartsAndBibliography(SphinxPostTransform):
    """Unnumbered parts and no empty bibliography chapter, on the assembled LaTeX tree.

    Runs after sphinx-jupyterbook-latex (700) has turned the toc's captions into part
    sections (``docname`` = caption) and moved the bibliography to the end.
    """

    default_priority = 800
    formats = ("latex",)

    def run(self, **kwargs) -> None:
        if self.env.docname != self.config.root_doc:
            return
        site_map = getattr(self.config, "external_site_map", None)
        if site_map is not None:
            numbered = {
                tree.caption: bool(tree.numbered)
                for tree in site_map[site_map.root.docname].subtrees if tree.caption
            }
            for section in list(self.document.findall(nodes.section)):
                caption = section.get("docname")
                if caption in numbered and isinstance(section.parent, addnodes.start_of_file):
                    wrapper = section.parent.parent
                    command = r"\cnnnumberedpart" if numbered[caption] else r"\cnnunnumberedpart"
                    wrapper.parent.insert(
                        wrapper.parent.index(wrapper), nodes.raw("", command + "\n", format="latex")
                    )
        bibliography_docs = {key.docname for key in self.env.get_domain("cite").bibliographies}
        for start in list(self.document.findall(addnodes.start_of_file)):
            docname = start.get("docname")
            if docname not in bibliography_docs:
                continue
            # Keep the page's labels ({doc}`bibliography` links) where the bibliography starts.
            ids = dict.fromkeys([f"{docname}::doc"] + [
                f"{docname}:{node_id}"
                for section in start.findall(nodes.section) for node_id in section["ids"]
            ])
            labels = "".join(rf"\label{{\detokenize{{{node_id}}}}}" for node_id in ids)
            start.children = []
            latex = rf"\cleardoublepage\phantomsection{labels}" + "\n"
            marker = nodes.raw("", latex, format="latex")
            # Right before the bibliography (moved to the end of the book).
            bibliographies = [n for n in self.document.children if isinstance(n, thebibliography)]
            at = self.document.index(bibliographies[0]) if bibliographies else len(self.document)
            self.document.insert(at, marker)


class PdfEditions(SphinxDirective):
    """The two PDF editions of this version: links when built, else how to build them."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        version = read_version()
        site_url = self.config.html_baseurl.rstrip("/") + "/"
        pdfs = published_pdfs(self.env.app) if self.env.app.builder.format == "html" else {}
        items = nodes.bullet_list()
        for edition, description in EDITIONS.items():
            name = pdf_name(edition, version)
            paragraph = nodes.paragraph()
            label = f"{description[0].upper()}{description[1:]}"
            if self.env.app.builder.format != "html":
                uri = f"{site_url}{PDF_URL_DIR}/{name}"
            elif pdfs:
                here = self.env.app.builder.get_target_uri(self.env.docname)
                uri = relative_uri(here, f"{PDF_URL_DIR}/{name}")
            else:
                uri = None
            if uri:
                paragraph += nodes.reference("", label, refuri=uri, classes=["pdf-edition"])
            else:
                paragraph += nodes.Text(label)
            size = f", {pdfs[edition].stat().st_size / 1e6:.1f} MB" if pdfs else ""
            paragraph += nodes.Text(f" ({name}{size})")
            items += nodes.list_item("", paragraph)
        result = [items]
        if self.env.app.builder.format == "html" and not pdfs:
            note = nodes.note()
            note += nodes.paragraph(
                "",
                "This copy of the site was built without the PDF editions. To make them in "
                "a clone of the repository, install TeX Live (",
                nodes.literal(text=INSTALL_HINT),
                nodes.Text("), then run "),
                nodes.literal(text="make pdf"),
                nodes.Text(" and "),
                nodes.literal(text="make book"),
                nodes.Text(". The published site offers both."),
            )
            note["classes"].append("pdf-editions-missing")
            result.append(note)
        return result


def copy_pdfs(app, exception) -> None:
    """build-finished: put the PDFs where the site links them (pdf/<name>)."""
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / PDF_URL_DIR
    for path in published_pdfs(app).values():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / path.name)


def pdf_buttons(app, pagename, templatename, context, doctree) -> None:
    """html-page-context: both PDFs in the header's download menu of every page."""
    for edition, path in published_pdfs(app).items():
        theme.add_download_button(
            context, url=context["pathto"](PDF_URL_DIR, 1) + f"/{path.name}",
            text=f"PDF ({edition})", icon="fas fa-file-pdf",
            tooltip=f"Download the whole book, {EDITIONS[edition]}",
            label=f"download-pdf-{edition}-button")


def setup(app) -> None:
    app.add_config_value("cnnbook_edition", "instructor", "env")
    app.connect("config-inited", configure)
    # After sphinx-jupyterbook-latex's builder-inited (default priority 500).
    app.connect("builder-inited", latex_builder_inited, priority=600)
    app.connect("env-before-read-docs", latex_document)
    # The LaTeX builder emits no write-started event.
    app.connect("env-check-consistency", latex_after_reading)
    app.add_post_transform(ExerciseReferences)
    app.add_post_transform(PartsAndBibliography)
    app.add_directive("pdf-editions", PdfEditions)
    app.connect("build-finished", copy_pdfs)
    app.connect("html-page-context", pdf_buttons, priority=503)
