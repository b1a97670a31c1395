"""The PDF editions (make pdf), read back with a PDF text extractor (pypdf).

The LaTeX build needs TeX Live: without it these tests are skipped with the command that
installs it, except under CI=true, where a missing TeX fails (.ci/run installs it). The
site's side (the downloads page, the header's menu) is tested on a small Sphinx project,
with and without PDFs, and needs no TeX.
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from cnnbook import release

import build_pdf  # scripts/, on the path through pyproject.toml
from _site import ROOT, build_pdfs, build_site, index, site_numbers


VERSION = release.read_version(ROOT)
EDITIONS = list(release.EDITIONS)


def require_tex() -> None:
    missing = build_pdf.missing_tex()
    if not missing:
        return
    message = build_pdf.install_message(missing)
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but the PDF build cannot run. {message}")
    pytest.skip(message)


def squash(text: str) -> str:
    """Text as compared here: no spaces, line breaks or hyphens, ligatures undone, casefolded.

    pypdf drops some spaces between words of justified lines and keeps the hyphens of
    words broken at a line end, so words are compared without either.
    """
    text = unicodedata.normalize("NFKC", text).replace("\u00ad", "")
    return re.sub(r"[\s\-\u2010\u2011]+", "", text).casefold()


@dataclass
class Pdf:
    pages: list[str]
    named_pages: dict[str, int]  # hyperref destination -> page index

    @functools.cached_property
    def text(self) -> str:
        return "\n".join(self.pages)

    @functools.cached_property
    def squashed_all(self) -> str:
        return squash(self.text)

    @functools.cached_property
    def squashed(self) -> str:
        """The text without the page headers and footers, which interrupt sentences."""
        bodies = []
        for page in self.pages:
            lines = page.splitlines()
            if lines and lines[0].startswith("CNN from Scratch with NumPy, Version"):
                lines = lines[1:]
            if lines and re.fullmatch(r"\d+ .*|.* \d+|[ivxl]+", lines[-1]):
                lines = lines[:-1]
            bodies.append("\n".join(lines))
        return squash("\n".join(bodies))


@functools.cache
def read_pdf(path: Path) -> Pdf:
    from pypdf import PdfReader

    reader = PdfReader(path)
    named = {name: reader.get_destination_page_number(dest)
             for name, dest in reader.named_destinations.items()}
    return Pdf([page.extract_text() for page in reader.pages], named)


@pytest.fixture(scope="module")
def built():
    require_tex()
    build = build_pdfs()
    assert build.returncode == 0, (
        f"make pdf failed after {build.seconds:.0f} s:\n{build.log[-6000:]}")
    return build


@pytest.fixture(scope="module")
def pdfs(built) -> dict[str, Pdf]:
    return {edition: read_pdf(built.pdfs / release.pdf_name(edition, VERSION))
            for edition in EDITIONS}


def latex_dir(built, edition: str) -> Path:
    return built.build / edition / "_build" / "latex"


def aux_labels(built, edition: str) -> dict[str, tuple[str, str]]:
    """LaTeX label -> (number, hyperref destination) from the final run's .aux file."""
    aux = latex_dir(built, edition) / Path(release.pdf_name(edition, VERSION)).with_suffix(".aux")
    labels = {}
    for match in re.finditer(r"\\newlabel\{([^}]*)\}\{\{([^}]*)\}\{[^}]*\}\{.*?\}\{([^}]*)\}\{\}\}",
                             aux.read_text(encoding="utf-8")):
        labels[match[1]] = (match[2], match[3])
    return labels


@pytest.fixture(scope="module")
def site():
    build = build_site()
    if build.returncode != 0:
        pytest.fail("the strict build failed (see test_book.py)")
    return build


@pytest.mark.book
def test_both_editions_are_built_under_their_names(built):
    for edition in EDITIONS:
        assert (built.pdfs / f"cnn-from-scratch-numpy-{VERSION}-{edition}.pdf").is_file()
    print(f"make pdf, both editions: {built.seconds:.0f} s")


@pytest.mark.parametrize("edition", EDITIONS)
@pytest.mark.book
def test_title_page_names_book_version_edition_and_date(pdfs, edition):
    title = squash(pdfs[edition].pages[0])
    assert squash("CNN from Scratch with NumPy") in title
    assert squash(f"Version {VERSION}, {edition} edition") in title
    assert squash(release.long_date(release.release_date(ROOT))) in title
    # Every page header names the version and the edition too.
    assert pdfs[edition].squashed_all.count(squash(f"Version {VERSION}, {edition} edition")) > 20


@pytest.mark.book
def test_page_counts(pdfs, built):
    chapters = len(index().numbers)
    for edition, pdf in pdfs.items():
        log = (built.build / f"{edition}.log").read_text(encoding="utf-8")
        written = re.findall(r"Output written on \S+\.pdf \((\d+) pages\)", log)
        assert int(written[-1]) == len(pdf.pages), "the PDF is not LaTeX's last output"
        assert len(pdf.pages) >= 5 * chapters
    assert len(pdfs["student"].pages) < len(pdfs["instructor"].pages)


@pytest.mark.parametrize("edition", EDITIONS)
@pytest.mark.book
def test_no_unresolved_references(pdfs, built, edition):
    log = (built.build / f"{edition}.log").read_text(encoding="utf-8")
    assert "Latex failed to resolve" not in log
    unresolved = [i + 1 for i, page in enumerate(pdfs[edition].pages) if "??" in page]
    assert not unresolved, f"'??' on pages {unresolved}"


@pytest.mark.parametrize("edition", EDITIONS)
@pytest.mark.book
def test_equation_numbers_are_the_site_s(pdfs, built, site, edition):
    """Eq. (5.4) in the PDF is the equation the site numbers (5.4), for every label."""
    shown = site_numbers(site.html)
    equations = {label: number for label, number in shown.items()
                 if index().targets[label].anchor.startswith("equation-")}
    assert equations
    latex = aux_labels(built, edition)
    pdf = pdfs[edition]
    for label, number in equations.items():
        key = f"equation:{index().targets[label].docname}:{label}"
        assert key in latex, f"{label}: not in the PDF"
        printed, destination = latex[key]
        assert printed == number, f"{label}: the PDF prints ({printed}), the site ({number})"
        page = pdf.named_pages[destination]
        assert f"({number})" in pdf.pages[page].replace(" ", ""), (
            f"{label}: ({number}) is not on page {page + 1}, where the equation is")


@pytest.mark.parametrize("edition", EDITIONS)
@pytest.mark.book
def test_exercise_numbers_are_the_site_s(pdfs, built, site, edition):
    shown = site_numbers(site.html)
    exercises = {label: number for label, number in shown.items()
                 if index().targets[label].text.startswith("Exercise")}
    assert exercises
    latex = aux_labels(built, edition)
    pdf = pdfs[edition]
    for label, number in exercises.items():
        _, destination = latex[f"exercise:{label}"]
        page = pdf.named_pages[destination]
        # The anchor sits just before the exercise's box, which may start the next page.
        assert squash(f"Exercise {number}") in squash("".join(pdf.pages[page : page + 2])), label
    printed = set(re.findall(r"Exercise (\d+(?:\.\d+)+)", pdf.text))
    unknown = printed - set(exercises.values())
    assert not unknown, f"exercise numbers the site does not use: {unknown}"


@pytest.mark.book
def test_chapters_are_numbered_and_titled_as_on_the_site(pdfs):
    text = pdfs["student"].squashed_all
    for doc, title in index().titles.items():
        assert squash(title) in text, f"{doc}: title {title!r} missing"
        number = index().numbers.get(doc)
        if number:
            # The running footer: "Chapter 5. Convolution, backward".
            assert squash(f"Chapter {number}. {title}") in text, doc
        elif doc != index().docs[0]:
            assert not re.search(rf"chapter\d+\.{re.escape(squash(title))}", text), (
                f"{doc} is numbered as a chapter in the PDF, not on the site")


@pytest.mark.book
def test_unnumbered_parts_are_not_numbered(pdfs):
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    numbered = [part for part in toc["parts"] if part.get("numbered", True)]
    roman = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII"]
    text = pdfs["student"].squashed_all
    for i, part in enumerate(numbered):
        assert squash(f"Part {roman[i]} {part['caption']}") in text
    assert squash(f"Part {roman[len(numbered)]}") not in text


@pytest.mark.book
def test_one_bibliography(pdfs):
    text = pdfs["instructor"]
    bibliography = (ROOT / "book" / "bibliography.md").read_text(encoding="utf-8")
    intro = bibliography.splitlines()[2]  # the page's own text, which the PDF leaves out
    assert squash(intro) not in text.squashed
    contents = [line for page in text.pages[:8] for line in page.splitlines()]
    assert len([line for line in contents if re.fullmatch(r"Bibliography\s*\d+", line)]) == 1


def solutions() -> list[str]:
    """Bodies of the {solution} directives of every chapter."""
    pattern = re.compile(r"^(`{3,}|:{3,})\{solution\}[^\n]*\n(.*?)^\1\s*$", re.M | re.S)
    return [match[2] for doc in index().notebook_docs()
            for match in pattern.finditer((ROOT / f"{doc}.md").read_text(encoding="utf-8"))]


def solution_phrase(markdown: str) -> str:
    """A distinctive piece of a solution: its longest run of plain words (no math, roles
    or links) or its longest line of code that fits the page unbroken, whichever is longer."""
    blocks = re.findall(r"^(`{3,})\w+\n(.*?)^\1\s*$", markdown, re.M | re.S)
    code = [line.strip() for _, block in blocks for line in block.splitlines() if len(line) <= 80]
    return max([plain_phrase(markdown), *code], key=lambda text: len(squash(text)))


def plain_phrase(markdown: str) -> str:
    """The longest run of plain words in a solution (no math, code, roles or links)."""
    text = re.sub(r"^(`{3,}).*?^\1\s*$", " . ", markdown, flags=re.M | re.S)
    text = re.sub(r"^:\w[\w-]*:.*$", " . ", text, flags=re.M)
    text = re.sub(r"\$\$.*?\$\$|\$[^$]*\$|\{[\w:-]+\}`[^`]*`|`[^`]*`|\[[^\]]*\]\([^)]*\)", " . ",
                  text, flags=re.S)
    fragments = re.split(r"[^A-Za-z ,\n]+", text)
    return max((" ".join(f.split()) for f in fragments), key=len)


@pytest.mark.book
def test_student_edition_has_no_solutions(pdfs):
    bodies = solutions()
    assert bodies
    instructor, student = pdfs["instructor"], pdfs["student"]
    assert instructor.text.count("Solution to Exercise") == len(bodies)
    assert "Solution to" not in student.text
    for body in bodies:
        phrase = solution_phrase(body)
        assert len(squash(phrase)) >= 15, f"nothing distinctive in {body[:80]!r}"
        # The phrase may also occur outside the solution: the instructor edition has it
        # once more than the student edition, whose text is otherwise the same.
        more = instructor.squashed.count(squash(phrase)) - student.squashed.count(squash(phrase))
        assert more >= 1, f"solution text in the student edition: {phrase!r}"


@pytest.mark.parametrize("edition", EDITIONS)
@pytest.mark.book
def test_code_lines_never_break_inside_a_token(pdfs, edition):
    """A long code line wraps at a space or after a comma, never inside a name or number."""
    token = re.compile(r"[\w.\"'=<>!*/+%&|^~-]")
    for page in pdfs[edition].pages:
        lines = page.splitlines()
        for before, after in zip(lines, lines[1:]):
            if not after.startswith("↪") or before.endswith("␣"):
                continue
            end, start = before[-1:], after[1:2]
            assert not (token.match(end) and token.match(start)), f"{before!r} / {after!r}"


@pytest.mark.book
def test_the_package_s_quoted_lines_print_unbroken(pdfs):
    """Package lines are at most 88 characters; each quoted one is one line of the PDF."""
    package = {line.strip() for path in (ROOT / "cnn").rglob("*.py")
               for line in path.read_text(encoding="utf-8").splitlines()}
    quoted = set()
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "markdown":
                for block in re.findall(r"```python\n(.*?)```", cell.source, re.S):
                    quoted |= {line.strip() for line in block.splitlines()
                               if len(line) >= 80 and line.strip() in package}
    assert quoted, "no long quoted line to check"
    printed = {squash(line) for page in pdfs["instructor"].pages for line in page.splitlines()}
    assert not [line for line in quoted if squash(line) not in printed]


# -- the site's links to the PDFs (no TeX needed) ------------------------------------------

SITE_CONF = """
project = "CNN from Scratch with NumPy"
extensions = ["cnnbook.pdfbook"]
html_theme = "sphinx_book_theme"
html_baseurl = "https://example.org/book/"
html_theme_options = {"use_download_button": True}
"""


def build_small_site(tmp_path: Path, pdf_dir: Path, monkeypatch) -> Path:
    """A two-page Sphinx project with the {pdf-editions} directive; returns its HTML."""
    from sphinx.application import Sphinx
    from sphinx.util.docutils import docutils_namespace

    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(SITE_CONF)
    (src / "index.rst").write_text("Book\n====\n\n.. toctree::\n\n   downloads\n")
    (src / "downloads.rst").write_text("PDF editions\n============\n\n.. pdf-editions::\n")
    monkeypatch.setenv("CNNBOOK_PDF_DIR", str(pdf_dir))
    with docutils_namespace():
        app = Sphinx(str(src), str(src), str(tmp_path / "html"), str(tmp_path / "doctrees"),
                     "html", status=None, warning=None, freshenv=True)
        app.build()
    return tmp_path / "html"


def test_site_links_both_pdfs_when_they_are_built(tmp_path, monkeypatch):
    pdf_dir = tmp_path / "pdf"
    pdf_dir.mkdir()
    for edition in EDITIONS:
        (pdf_dir / release.pdf_name(edition, VERSION)).write_bytes(b"%PDF-1.5 " + edition.encode())
    html = build_small_site(tmp_path, pdf_dir, monkeypatch)
    page = (html / "downloads.html").read_text(encoding="utf-8")
    home = (html / "index.html").read_text(encoding="utf-8")
    for edition in EDITIONS:
        name = release.pdf_name(edition, VERSION)
        assert (html / "pdf" / name).read_bytes().endswith(edition.encode())
        assert f'href="pdf/{name}"' in page
        # The header's download menu of every page offers both.
        assert f'href="pdf/{name}"' in home and f"download-pdf-{edition}-button" in home
    assert "pdf-editions-missing" not in page
    assert f"version {VERSION} (" in page


def test_site_says_how_to_make_the_pdfs_when_they_are_not_built(tmp_path, monkeypatch):
    html = build_small_site(tmp_path, tmp_path / "nothing-here", monkeypatch)
    page = (html / "downloads.html").read_text(encoding="utf-8")
    text = " ".join(re.sub(r"<[^>]+>", "", page).split())
    assert "pdf-editions-missing" in page and "run make pdf and make book" in text
    assert f"install TeX Live ({build_pdf.INSTALL_HINT})" in text
    assert 'href="pdf/' not in page and not (html / "pdf").exists()
    for edition in EDITIONS:
        assert release.pdf_name(edition, VERSION) in page  # named, not linked
