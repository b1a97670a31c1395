"""The student notebooks: up to date, no reference body, nbgrader-valid, runnable.

Every notebook, with the package's bodies filled into its solution regions, runs clean
in a fresh kernel in an empty folder and every check in it passes; untouched, every
check says that its function is not written yet. The site offers them for download.
"""

from __future__ import annotations

import ast
import functools
import io
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor

import nbformat
import pytest
from nbclient import NotebookClient

from _site import ROOT, build_site, index, myst2ipynb
from cnn.exercises import CHECKS
from test_notebooks import myst_leftovers

from cnnbook import assignments, release

# Colab and Binder open the notebooks of the release the site belongs to.
TAG = release.tag(release.read_version(ROOT))

ASSIGNMENTS = assignments.ASSIGNMENTS
NAMES = [a.name for a in ASSIGNMENTS]
CELL_TIMEOUT = 300


def notebook(a) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / a.path, as_version=4)


def solution_cells(nb):
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]


def test_committed_assignments_are_current():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_assignments.py"), "--check"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, f"run `make assignments` and commit assignments/:\n{result.stdout}"


def test_every_derivation_chapter_has_an_assignment_and_every_function_a_check():
    chapters = {a.chapter for a in ASSIGNMENTS}
    assert {"book/dense", "book/activations", "book/conv_forward", "book/conv_backward",
            "book/pooling", "book/gradcheck"} <= chapters
    assert chapters <= set(myst2ipynb.notebook_docs(ROOT))
    checks = [a.check_name(assignments.split_name(q)[1]) for a in ASSIGNMENTS
              for q in a.functions]
    assert not [f for f in checks if f not in CHECKS], "a function to write has no check"


@pytest.mark.parametrize("a", ASSIGNMENTS, ids=NAMES)
def test_stubs_are_the_package_s_signature_and_docstring(a):
    nb = notebook(a)
    cells = solution_cells(nb)
    assert len(cells) == len(a.functions)
    for cell, qualified in zip(cells, a.functions):
        node, _, _ = assignments.find_function(ROOT, qualified)
        stub = ast.parse(cell.source).body[0]
        assert stub.name == node.name
        assert ast.dump(stub.args) == ast.dump(node.args)
        doc, package = (ast.get_docstring(n, clean=False) for n in (stub, node))
        assert doc.startswith(package.rstrip())
        assert doc[len(package.rstrip()):].strip() == "\n".join(
            (" " * 4 + line).rstrip() for line in assignments.cache_fields(ROOT, qualified)
        ).strip()
        body = stub.body[1:]
        assert len(body) == 1 and isinstance(body[0], ast.Raise), "the body is the stub only"
        assert "NotImplementedError" in ast.unparse(body[0])


def test_a_stub_lists_the_fields_of_the_caches_it_takes_or_returns():
    """The conv-backward stub says what a ConvCache holds: stride and padding pairs."""
    cell = next(c for c in solution_cells(notebook(
        next(a for a in ASSIGNMENTS if a.name == "conv_backward")))
        if "def conv2d_backward(" in c.source)
    doc = ast.get_docstring(ast.parse(cell.source).body[0])
    fields = doc[doc.index(assignments.CACHE_HEADING):]
    from cnn.conv import ConvCache
    for field in ConvCache._fields:
        assert f"\n{field} : " in fields
    assert "stride : tuple\n    ``(SH, SW)``" in fields
    assert "padding : tuple\n    ``(PH, PW)``" in fields


@pytest.mark.parametrize("a", ASSIGNMENTS, ids=NAMES)
def test_no_reference_body_appears_in_the_notebook(a):
    """No statement of the functions to write, nor of their twins, in any cell."""
    nb = notebook(a)
    lines = {line.strip() for cell in nb.cells for line in cell.source.split("\n")}
    leaks = []
    for qualified in a.functions:
        module, _ = assignments.split_name(qualified)
        for twin in sorted(assignments.protected_names(ROOT, a)):
            try:
                body = assignments.reference_body(ROOT, f"{module}.{twin}")
            except assignments.AssignmentError:
                continue  # no such twin in this module
            # Input validation (check_array(x, "x")) is shared with the layers' listings.
            statements = [s.strip() for s in body[1:] if len(s.strip()) >= 12
                          and not s.strip().startswith("check_")]
            leaks += [f"{twin}: {s}" for s in statements if s in lines]
    assert not leaks


def test_the_leak_test_would_see_a_leak():
    a = ASSIGNMENTS[0]
    filled = assignments.fill_in_references(notebook(a), ROOT)
    lines = {line.strip() for cell in filled.cells for line in cell.source.split("\n")}
    body = assignments.reference_body(ROOT, a.functions[-1])
    assert any(s.strip() in lines for s in body[1:] if len(s.strip()) >= 12)


@pytest.mark.parametrize("a", ASSIGNMENTS, ids=NAMES)
def test_the_set_up_cell_imports_nothing_the_student_writes(a):
    written = {assignments.split_name(q)[1] for q in a.functions}
    imported = set()
    for cell in notebook(a).cells:
        if cell.cell_type != "code" or cell.source.startswith("# Installs"):
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.ImportFrom):
                imported |= {alias.name for alias in node.names}
    assert imported and not imported & written


SCHEMA_KEYS = {"schema_version", "grade", "locked", "solution", "task", "grade_id", "points",
               "checksum", "cell_type"}


@pytest.mark.parametrize("a", ASSIGNMENTS, ids=NAMES)
def test_nbgrader_metadata_follows_schema_version_3(a):
    """The rules of nbgrader's v3.json schema and MetadataValidatorV3."""
    nb = notebook(a)
    nbformat.validate(nb)
    ids = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader")
        if meta is None:
            continue
        assert set(meta) <= SCHEMA_KEYS
        assert {"schema_version", "grade", "locked", "solution"} <= set(meta)
        assert meta["schema_version"] == 3
        assert all(isinstance(meta[k], bool) for k in ("grade", "locked", "solution", "task"))
        assert re.fullmatch(r"[a-zA-Z0-9_\-]+", meta["grade_id"])
        ids.append(meta["grade_id"])
        if meta["grade"]:
            assert isinstance(meta["points"], (int, float)) and meta["points"] > 0
        else:
            assert "points" not in meta
        assert cell.cell_type == "code"
        if meta["solution"]:
            assert not meta["grade"] and not meta["locked"]
            lines = [line.strip() for line in cell.source.split("\n")]
            begin, end = lines.index(assignments.BEGIN), lines.index(assignments.END)
            assert end == begin + 2 and lines[begin + 1].startswith("raise NotImplementedError")
        else:
            assert meta["grade"] and meta["locked"]
            check, function = re.fullmatch(r'check\("(\w+)", (\w+)\)', cell.source).groups()
            assert check == a.check_name(function) and check in CHECKS
    assert len(ids) == len(set(ids)) == 2 * len(a.functions)


@pytest.mark.parametrize("a", ASSIGNMENTS, ids=NAMES)
def test_notebook_text_is_plain_markdown_with_the_site_s_numbers(a):
    nb = notebook(a)
    markdown = "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert not myst_leftovers(markdown)
    chapter = nbformat.reads(myst2ipynb.export_chapter(a.chapter, index()), as_version=4)
    chapter_text = "\n\n".join(c.source for c in chapter.cells if c.cell_type == "markdown")
    tags = re.findall(r"\$\$\n((?:(?!\$\$).)*?)\n\\tag\{([\d.]+)\}\n\$\$", markdown, re.S)
    assert tags, "the derivation should carry numbered equations"
    for formula, tag in tags:
        assert f"{formula}\n\\tag{{{tag}}}" in chapter_text, f"equation ({tag}) differs"
    for label in set(re.findall(r"`(eq-[a-z0-9-]+)` is \[Eq\. \(([\d.]+)\)\]", markdown)):
        assert index().targets[label[0]].number == label[1]


def test_quoted_text_drops_code_talk_and_keeps_links_whole():
    block = ["See [Eq. (5.4)](https://x/y.html#e) for it. The next cell evaluates",
             "$a. b$ and prints it. The end."]
    assert assignments.without_code_talk(block) == [
        "See [Eq. (5.4)](https://x/y.html#e) for it. The end."]
    assert assignments.without_code_talk(["The cell runs."]) == []
    found = assignments.sections(["# A\n\ntext\n\n```python\n# not a heading\n```\n## B\nmore"])
    assert [(s.level, s.title) for s in found] == [(0, ""), (1, "A"), (2, "B")]
    assert "# not a heading" in found[1].chunks[0]


def test_a_missing_section_is_an_error(monkeypatch):
    broken = assignments.Assignment("book/dense", ("cnn.dense.dense_backward",),
                                    ("No such section",))
    with pytest.raises(assignments.AssignmentError, match="no section 'No such section'"):
        assignments.build_notebook(broken, index())


# -- running them ---------------------------------------------------------------------

def execute(nb) -> nbformat.NotebookNode:
    with tempfile.TemporaryDirectory(prefix="cnn-assignment-") as empty:
        NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": empty}}).execute()
    return nb


@functools.cache
def executed() -> dict[tuple[str, bool], nbformat.NotebookNode]:
    jobs = [(a, filled) for a in ASSIGNMENTS for filled in (True, False)]

    def run(job):
        a, filled = job
        nb = notebook(a)
        return execute(assignments.fill_in_references(nb, ROOT) if filled else nb)

    # Two kernels at a time: the machine has two cores.
    with ThreadPoolExecutor(max_workers=2) as pool:
        return {(a.name, filled): nb for (a, filled), nb in zip(jobs, pool.map(run, jobs))}


def outputs(cell):
    return [o for o in cell.get("outputs", [])]


@pytest.mark.parametrize("a", ASSIGNMENTS, ids=NAMES)
@pytest.mark.book
def test_with_the_reference_filled_in_every_check_passes(a):
    nb = executed()[(a.name, True)]
    errors = [o for c in nb.cells for o in outputs(c) if o.output_type == "error"]
    assert not errors, "\n".join(e.ename + ": " + e.evalue for e in errors)
    checks = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    for cell in checks:
        text = "".join(o.get("text", "") for o in outputs(cell))
        assert re.fullmatch(r"\w+: all \d+ cases pass\.\n", text), text


@pytest.mark.parametrize("a", ASSIGNMENTS, ids=NAMES)
@pytest.mark.book
def test_untouched_every_check_says_not_written_yet(a):
    nb = executed()[(a.name, False)]
    for cell in nb.cells:
        errors = [o for o in outputs(cell) if o.output_type == "error"]
        if cell.metadata.get("nbgrader", {}).get("grade"):
            assert len(errors) == 1 and errors[0].ename == "CheckFailed"
            assert "is not written yet" in errors[0].evalue
            # IPython rendered the message, not a traceback through cnn.exercises.
            assert errors[0].traceback[0].startswith("CheckFailed: ")
        else:
            assert not errors, "only check cells may fail"


# -- on the site --------------------------------------------------------------------

@pytest.fixture(scope="module")
def site():
    build = build_site()
    assert build.returncode == 0, f"strict build failed:\n{build.log[-6000:]}"
    return build


@pytest.mark.book
def test_downloads_have_distinct_numbered_names():
    a = next(a for a in ASSIGNMENTS if a.name == "conv_backward")
    assert assignments.download_name(a, index()) == "05-conv_backward-assignment.ipynb"
    assert myst2ipynb.download_name(a.chapter, index()) == "05-conv_backward.ipynb"
    names = [assignments.download_name(a, index()) for a in ASSIGNMENTS]
    chapters = [myst2ipynb.download_name(a.chapter, index()) for a in ASSIGNMENTS]
    assert len(set(names + chapters)) == 2 * len(ASSIGNMENTS)


@pytest.mark.book
def test_site_offers_every_notebook_and_a_zip(site):
    folder = site.html / assignments.FOLDER
    names = {a: assignments.download_name(a, index()) for a in ASSIGNMENTS}
    for a, name in names.items():
        assert (folder / name).read_bytes() == (ROOT / a.path).read_bytes()
    with zipfile.ZipFile(folder / assignments.ZIP_NAME) as archive:
        assert sorted(archive.namelist()) == sorted(
            f"{assignments.FOLDER}/{name}" for name in names.values())
        json.load(io.BytesIO(archive.read(f"{assignments.FOLDER}/{names[ASSIGNMENTS[0]]}")))
    chapter = ASSIGNMENTS[0].chapter
    html = (site.html / f"{chapter}.html").read_text(encoding="utf-8")
    assert f'href="../_sources/book/{myst2ipynb.download_name(chapter, index())}"' in html
    assert (site.html / "_sources" / "book" / myst2ipynb.download_name(chapter, index())
            ).exists()


@pytest.mark.parametrize("a", ASSIGNMENTS, ids=NAMES)
@pytest.mark.book
def test_chapter_page_links_its_assignment(site, a):
    html = (site.html / f"{a.chapter}.html").read_text(encoding="utf-8")
    assert f'href="../assignments/{assignments.download_name(a, index())}"' in html


@pytest.mark.book
def test_teachers_page_lists_every_notebook_with_launch_links(site):
    html = (site.html / "book" / "teachers.html").read_text(encoding="utf-8")
    repo = index().repo_url.removeprefix("https://github.com/")
    for a in ASSIGNMENTS:
        assert f'href="../assignments/{assignments.download_name(a, index())}"' in html
        assert f"colab.research.google.com/github/{repo}/blob/{TAG}/{a.path}" in html
        assert f"mybinder.org/v2/gh/{repo}/{TAG}?urlpath=lab/tree/{a.path}" in html
    assert 'href="../assignments/assignments.zip"' in html


def test_intro_names_exactly_the_chapters_that_have_student_notebooks():
    having = {a.chapter.removeprefix("book/") for a in assignments.ASSIGNMENTS}
    intro = (ROOT / "book" / "intro.md").read_text(encoding="utf-8")
    sentence = re.search(r"The derivation chapters\s+(.*?)\s+each have a\s+student notebook",
                         intro, re.S)
    assert sentence, "the intro should say which chapters have a student notebook"
    assert set(re.findall(r"\{doc\}`(\w+)`", sentence.group(1))) == having
