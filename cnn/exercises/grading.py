"""Grade a folder of student notebooks: one process per submission, one CSV row each.

``python -m cnn.exercises.grading SUBMISSIONS... --seed 1234 --out grades.csv`` runs
every submitted notebook in a process of its own: the student's code cells (not the
install cell, not the check cells) are run, then the check of every function that the
notebook's check cells name, on cases drawn from the teacher's ``--seed`` (students
practise on seed 0, so a function tuned to those cases gains nothing). A check call
that runs past ``--call-limit`` seconds fails that exercise; a submission whose process
runs past ``--time-limit`` seconds is stopped, and each of its exercises not yet graded
scores 0 with that reason. The CSV has one row per student and exercise: ``student``
(the notebook's file name without ``.ipynb``), ``exercise``, ``points``, ``max_points``,
``passed`` and ``reason`` (the first line of the check's message).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

CHECK_CELL = re.compile(r'^check\("(\w+)", (\w+)\)$')
FIELDS = ("student", "exercise", "points", "max_points", "passed", "reason")


class GradingError(ValueError):
    """A submission or an argument that cannot be graded; the message says why."""


def exercises(nb):
    """``(name, function, points)`` of every check cell of a notebook, in order: the
    check's name and the function it checks (``check("im2col_dilated", im2col)``)."""
    found = []
    for cell in nb["cells"]:
        source = "".join(cell.get("source", "")).strip()
        if cell.get("cell_type") == "code" and (m := CHECK_CELL.match(source)):
            points = cell.get("metadata", {}).get("nbgrader", {}).get("points", 1)
            found.append((m.group(1), m.group(2), points))
    return found


def read_notebook(path):
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise GradingError(f"{path}: not a readable notebook ({error})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise GradingError(f"{path}: not a Jupyter notebook (no list of cells)")
    return nb


def _student_code(nb):
    """The code cells a student wrote or was given: no install cell, no check cells."""
    for cell in nb["cells"]:
        source = "".join(cell.get("source", ""))
        if cell.get("cell_type") != "code" or CHECK_CELL.match(source.strip()):
            continue
        if "%pip install" in source:
            continue
        yield source


def grade_in_this_process(path, seed, call_limit, result_file):
    """Run one submission here and write its verdicts to ``result_file`` (JSON lines).

    Each verdict is written as soon as it is known, so that a stopped process leaves
    the verdicts it reached.
    """
    from cnn.exercises import run_check

    nb = read_notebook(path)
    scope = {"__name__": "__main__"}
    errors = []
    for source in _student_code(nb):
        try:
            exec(compile(source, f"<{Path(path).name}>", "exec"), scope)
        except BaseException as error:  # a student's cell may raise anything
            errors.append(f"{type(error).__name__}: {error}".split("\n")[0])
    with open(result_file, "a", encoding="utf-8") as out:
        for name, function, points in exercises(nb):
            fn = scope.get(function)
            if fn is None:
                passed, reason = False, (f"{function} is not defined (a cell raised "
                                         f"{errors[0]})" if errors else
                                         f"{function} is not defined")
            else:
                result = run_check(name, fn, seed=seed, time_limit=call_limit)
                passed, reason = result.passed, result.message.split("\n")[0]
            out.write(json.dumps({"exercise": name, "points": points if passed else 0,
                                  "max_points": points, "passed": passed,
                                  "reason": reason}) + "\n")
            out.flush()


def grade(path, seed, time_limit, call_limit):
    """The rows of one submission, graded in a process of its own."""
    nb = read_notebook(path)
    student = Path(path).stem
    with tempfile.TemporaryDirectory(prefix="cnn-grade-") as folder:
        result_file = Path(folder) / "verdicts.jsonl"
        result_file.touch()
        command = [sys.executable, "-m", "cnn.exercises.grading", "--one", str(path),
                   "--seed", str(seed), "--call-limit", str(call_limit),
                   "--result-file", str(result_file)]
        stopped = ""
        try:
            done = subprocess.run(command, capture_output=True, text=True,
                                  timeout=time_limit, cwd=folder, check=False)
            if done.returncode != 0:
                last = done.stderr.strip().split("\n")[-1]
                stopped = f"the submission's process ended with an error: {last}"
        except subprocess.TimeoutExpired:
            stopped = (f"the submission did not finish within {time_limit:g} s and was"
                       " stopped (an endless loop outside a function?)")
        verdicts = {v["exercise"]: v for v in map(json.loads, result_file.read_text(
            encoding="utf-8").split("\n")[:-1])}
    rows = []
    for name, _, points in exercises(nb):
        verdict = verdicts.get(name) or {
            "points": 0, "max_points": points, "passed": False,
            "reason": stopped or "not graded"}
        rows.append({"student": student, "exercise": name, **{
            key: verdict[key] for key in FIELDS[2:]}})
    return rows


def write_csv(rows, out):
    """Write the rows to ``out`` atomically: a reader never sees half a file."""
    out = Path(out)
    with tempfile.NamedTemporaryFile("w", dir=out.parent, suffix=".csv",
                                     delete=False, newline="", encoding="utf-8") as tmp:
        writer = csv.DictWriter(tmp, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp.name, out)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m cnn.exercises.grading", description=__doc__.split("\n\n")[0])
    parser.add_argument("submissions", nargs="*", type=Path,
                        help="student notebooks (.ipynb), or folders of them")
    parser.add_argument("--seed", type=int, default=None,
                        help="seeds the cases; choose one the students do not know")
    parser.add_argument("--out", type=Path, default=Path("grades.csv"))
    parser.add_argument("--time-limit", type=float, default=300.0,
                        help="seconds one submission may run (default 300)")
    parser.add_argument("--call-limit", type=float, default=10.0,
                        help="seconds one call of a student's function may take")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:  # the child process of one submission
        grade_in_this_process(args.one, args.seed, args.call_limit, args.result_file)
        return 0
    try:
        if args.seed is None:
            raise GradingError("--seed is required: choose a number the students do"
                               " not know (they practise on seed 0)")
        if args.time_limit <= 0 or args.call_limit <= 0:
            raise GradingError("--time-limit and --call-limit must be > 0")
        paths = []
        for given in args.submissions:
            if given.is_dir():
                paths += sorted(given.glob("*.ipynb"))
            elif given.suffix == ".ipynb" and given.is_file():
                paths.append(given)
            else:
                raise GradingError(f"{given}: not a notebook (.ipynb) nor a folder")
        if not paths:
            raise GradingError("no submissions: give notebooks or folders of them")
        if not args.out.parent.is_dir():
            raise GradingError(f"--out {args.out}: no folder {args.out.parent}")
        rows = []
        for path in paths:
            rows += grade(path, args.seed, args.time_limit, args.call_limit)
            earned = sum(r["points"] for r in rows if r["student"] == path.stem)
            total = sum(r["max_points"] for r in rows if r["student"] == path.stem)
            print(f"{path.stem}: {earned} of {total} points")
        write_csv(rows, args.out)
    except (GradingError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
