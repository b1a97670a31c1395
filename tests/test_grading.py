"""The grading command: each submission in its own process, one CSV row per exercise.

Submissions are made from the dense assignment: the book's bodies filled in (full
marks), untouched (0, "not written yet"), one function looping forever (0 for it, within
the time limit), one calling the book's solution (0, "may not call"), and a cell looping
forever outside any function (the process is stopped; every exercise 0, with the reason).
"""

from __future__ import annotations

import csv
import time

import nbformat

from _site import ROOT
from cnn.exercises import grading
from cnnbook import assignments

DENSE = next(a for a in assignments.ASSIGNMENTS if a.name == "dense")


def submission(folder, name, replace=None, extra=None):
    nb = assignments.fill_in_references(nbformat.read(ROOT / DENSE.path, as_version=4),
                                        ROOT) if replace != "untouched" else \
        nbformat.read(ROOT / DENSE.path, as_version=4)
    if isinstance(replace, tuple):
        function, body = replace
        cell = next(c for c in nb.cells if f"def {function}(" in c.source)
        cell.source = body
    if extra:
        nb.cells.insert(5, nbformat.v4.new_code_cell(extra))
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_folder_of_submissions_is_graded_into_one_row_per_exercise(tmp_path):
    folder = tmp_path / "submissions"
    folder.mkdir()
    submission(folder, "ada")
    submission(folder, "ben", "untouched")
    submission(folder, "cy", ("dense_backward", "def dense_backward(dout, cache):\n"
                                               "    while True:\n        pass\n"))
    submission(folder, "dee", ("dense_forward",
                               "import cnn.dense\ndef dense_forward(x, w, b):\n"
                               "    return cnn.dense.dense_forward(x, w, b)\n"))
    submission(folder, "eve", extra="while True:\n    pass\n")
    out = tmp_path / "grades.csv"
    start = time.monotonic()
    code = grading.main([str(folder), "--seed", "4321", "--out", str(out),
                         "--time-limit", "10", "--call-limit", "1"])
    assert code == 0
    assert time.monotonic() - start < 5 * 10, "every submission within its limit"
    with out.open(newline="", encoding="utf-8") as f:
        rows = {(r["student"], r["exercise"]): r for r in csv.DictReader(f)}
    assert len(rows) == 5 * 2
    assert list(next(iter(rows.values()))) == list(grading.FIELDS)
    points = {key: int(r["points"]) for key, r in rows.items()}
    assert points[("ada", "dense_forward")] == 1 and points[("ada", "dense_backward")] == 2
    assert rows[("ada", "dense_backward")]["reason"] == "dense_backward: all 5 cases pass."
    assert "not written yet" in rows[("ben", "dense_forward")]["reason"]
    assert points[("cy", "dense_forward")] == 1 and points[("cy", "dense_backward")] == 0
    assert "did not finish within 1 s" in rows[("cy", "dense_backward")]["reason"]
    assert points[("dee", "dense_forward")] == 0
    assert "may not call" in rows[("dee", "dense_forward")]["reason"]
    assert all(points[("eve", e)] == 0 for e in ("dense_forward", "dense_backward"))
    assert "did not finish within 10 s" in rows[("eve", "dense_forward")]["reason"]


def test_mistakes_in_the_command_are_one_line(tmp_path, capsys):
    assert grading.main([str(tmp_path), "--out", str(tmp_path / "g.csv")]) == 2
    assert "--seed is required" in capsys.readouterr().err
    assert grading.main([str(tmp_path), "--seed", "1"]) == 2
    assert "no submissions" in capsys.readouterr().err
    (tmp_path / "x.ipynb").write_text("{not json")
    assert grading.main([str(tmp_path), "--seed", "1", "--out",
                         str(tmp_path / "g.csv")]) == 2
    assert "x.ipynb: not a readable notebook" in capsys.readouterr().err
    assert not (tmp_path / "g.csv").exists()


def test_a_variant_check_grades_the_function_its_cell_names(tmp_path):
    """conv_variants runs check("im2col_dilated", im2col): the row is the check's, the
    function the student's im2col; calling the package or looping forever scores 0."""
    variants = next(a for a in assignments.ASSIGNMENTS if a.name == "conv_variants")
    folder = tmp_path / "submissions"
    folder.mkdir()
    nb = assignments.fill_in_references(nbformat.read(ROOT / variants.path, as_version=4),
                                        ROOT)
    nbformat.write(nb, folder / "ada.ipynb")
    for cell in nb.cells:
        if "def im2col(" in cell.source:
            cell.source = "def im2col(*args, **kwargs):\n    while True:\n        pass\n"
        if "def conv2d_backward(" in cell.source:
            cell.source = ("import cnn.conv\ndef conv2d_backward(dout, cache):\n"
                           "    return cnn.conv.conv2d_backward(dout, cache)\n")
    nbformat.write(nb, folder / "cy.ipynb")
    out = tmp_path / "grades.csv"
    assert grading.main([str(folder), "--seed", "7", "--out", str(out),
                         "--time-limit", "60", "--call-limit", "1"]) == 0
    with out.open(newline="", encoding="utf-8") as f:
        rows = {(r["student"], r["exercise"]): r for r in csv.DictReader(f)}
    checks = ["im2col_dilated", "conv2d_forward_dilated_grouped",
              "conv2d_backward_dilated_grouped"]
    assert sorted(rows) == sorted((s, c) for s in ("ada", "cy") for c in checks)
    assert all(rows[("ada", c)]["passed"] == "True" for c in checks)
    assert rows[("cy", "im2col_dilated")]["points"] == "0"
    assert "did not finish within 1 s" in rows[("cy", "im2col_dilated")]["reason"]
    assert rows[("cy", "conv2d_backward_dilated_grouped")]["points"] == "0"
    assert "may not call" in rows[("cy", "conv2d_backward_dilated_grouped")]["reason"]
