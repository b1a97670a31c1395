"""Graded mode: the teacher's nbgrader source notebooks, solutions and hidden tests.

The source version of a student notebook holds the package's bodies in its solution
regions and, under each check, a hidden-tests region that checks again on cases drawn
from the teacher's seed; the committed student copies hold neither. nbgrader itself
(``make setup`` installs it in ``.venv/nbgrader``) accepts a source notebook and
releases a copy without them.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import make_assignments  # scripts/, on the path through pyproject.toml
import nbformat
import pytest
from _site import ROOT
from cnnbook import assignments

ASSIGNMENTS = assignments.ASSIGNMENTS
NAMES = [a.name for a in ASSIGNMENTS]
SEED = 8128
NBGRADER_HINT = "nbgrader: make setup installs it in .venv/nbgrader"


def student(a) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / a.path, as_version=4)


def solution_cells(nb):
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]


def graded_cells(nb):
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]


@pytest.mark.parametrize("a", ASSIGNMENTS, ids=NAMES)
def test_student_copies_never_hold_hidden_tests_or_another_seed(a):
    text = (ROOT / a.path).read_text(encoding="utf-8")
    assert "HIDDEN TESTS" not in text and "seed=" not in text
    for cell in graded_cells(student(a)):
        assert assignments.CHECK_CELL.fullmatch(cell.source)


@pytest.mark.parametrize("a", ASSIGNMENTS, ids=NAMES)
def test_source_version_adds_solutions_and_hidden_tests_on_the_teacher_s_seed(a):
    nb = student(a)
    source = assignments.source_notebook(nb, ROOT, SEED)
    assert [c.metadata for c in source.cells] == [c.metadata for c in nb.cells]
    assert [c.id for c in source.cells] == [c.id for c in nb.cells]
    for cell, original in zip(graded_cells(source), graded_cells(nb)):
        name = cell.metadata["nbgrader"]["grade_id"].removeprefix("check_")
        assert cell.source.split("\n") == [
            original.source, assignments.BEGIN_HIDDEN,
            f'check("{a.check_name(name)}", {name}, seed={SEED})',
            assignments.END_HIDDEN]
    solutions, originals = solution_cells(source), solution_cells(nb)
    assert len(solutions) == len(a.functions)
    for cell, original in zip(solutions, originals):
        head, region = cell.source.split(assignments.BEGIN)
        assert original.source.startswith(head)  # signature and docstring kept
        body, tail = region.split(assignments.END)
        assert "NotImplementedError" not in body and body.strip()
        assert not tail.strip()
    assert student(a) == nb, "the student copy was modified"


@pytest.mark.parametrize("seed", [-1, 1.5, "7", True])
def test_a_seed_that_is_not_a_natural_number_is_refused(seed):
    with pytest.raises(assignments.AssignmentError, match="seed must be an int >= 0"):
        assignments.source_notebook(student(ASSIGNMENTS[0]), ROOT, seed)


def test_the_hidden_tests_run_the_check_on_the_teacher_s_cases():
    """The source notebook's code, run as nbgrader autograde runs it (install cell left
    out), passes each check twice: on the practice cases and on the teacher's."""
    a = next(a for a in ASSIGNMENTS if a.name == "dense")
    source = assignments.source_notebook(student(a), ROOT, SEED)
    scope: dict = {"__name__": "__main__"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for cell in source.cells:
            if cell.cell_type == "code" and "pip install" not in cell.source:
                exec(compile(cell.source, "<source>", "exec"), scope)
    printed = out.getvalue().split("\n")
    for name in ("dense_forward", "dense_backward"):
        assert len([line for line in printed
                    if re.match(rf"{name}: all \d+ cases pass", line)]) == 2


def test_make_assignments_writes_the_source_versions_only_with_a_seed(tmp_path, capsys):
    assert make_assignments.main(["--seed", "-3", "--source-dir", str(tmp_path)]) == 2
    assert "--seed must be >= 0" in capsys.readouterr().err
    assert make_assignments.main(["--check", "--seed", "5", "--source-dir",
                                  str(tmp_path)]) == 0
    assert not list(tmp_path.iterdir())
    assert make_assignments.main(["--seed", str(SEED), "--source-dir",
                                  str(tmp_path)]) == 0
    written = sorted(p.relative_to(tmp_path).as_posix()
                     for p in tmp_path.rglob("*.ipynb"))
    assert written == sorted(f"{a.name}/{a.name}.ipynb" for a in ASSIGNMENTS)
    assert not list(tmp_path.rglob("*.partial"))
    text = (tmp_path / "dense" / "dense.ipynb").read_text(encoding="utf-8")
    assert f"seed={SEED}" in text and assignments.BEGIN_HIDDEN in text


def nbgrader() -> Path:
    found = Path(sys.executable).parent.parent / "nbgrader" / "bin" / "nbgrader"
    if found.exists():
        return found
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but nbgrader is missing: {NBGRADER_HINT}")
    pytest.skip(NBGRADER_HINT)


@pytest.mark.book
def test_nbgrader_generate_assignment_releases_a_copy_without_hidden_tests(tmp_path):
    tool = nbgrader()
    a = next(a for a in ASSIGNMENTS if a.name == "conv_backward")
    folder = tmp_path / "source" / a.name
    folder.mkdir(parents=True)
    nbformat.write(assignments.source_notebook(student(a), ROOT, SEED),
                   folder / f"{a.name}.ipynb")
    # nbgrader runs its own alembic, from the folder it is installed in.
    env = {**os.environ, "PATH": f"{tool.parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([str(tool), "generate_assignment", a.name,
                           f"--CourseDirectory.root={tmp_path}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    released = nbformat.read(tmp_path / "release" / a.name / f"{a.name}.ipynb",
                             as_version=4)
    text = nbformat.writes(released)
    assert "HIDDEN" not in text and f"seed={SEED}" not in text
    lines = {line.strip() for cell in released.cells
             for line in cell.source.split("\n")}
    for qualified in a.functions:
        body = assignments.reference_body(ROOT, qualified)[1:]
        assert not [s for s in body if len(s.strip()) >= 12 and s.strip() in lines
                    and not s.strip().startswith("check_")], "a solution was released"
    checks = graded_cells(released)
    assert [c.source for c in checks] == [c.source for c in graded_cells(student(a))]
    figures = [c.get("attachments") for c in released.cells if c.get("attachments")]
    assert figures == [c.attachments for c in student(a).cells if c.get("attachments")]
    assert len(figures[0]) == 2, "the chapter's two figures go to the students"
    assert all(c.metadata["nbgrader"]["locked"] and "checksum" in c.metadata["nbgrader"]
               for c in checks)
    for cell, original in zip(released.cells, student(a).cells):
        if cell.metadata.get("nbgrader", {}).get("solution"):
            head = original.source.split(assignments.BEGIN)[0]
            assert cell.source.startswith(head), "signature or docstring lost"
            assert "raise NotImplementedError" in cell.source
            assert assignments.BEGIN not in cell.source
    # What autograde will run: the hidden tests, kept in the gradebook.
    with contextlib.closing(sqlite3.connect(tmp_path / "gradebook.db")) as db:
        kept = dict(db.execute("SELECT name, source FROM source_cell"))
    for name in (assignments.split_name(q)[1] for q in a.functions):
        hidden = f'check("{a.check_name(name)}", {name}, seed={SEED})'
        assert hidden in kept[f"check_{name}"]
