"""The "Tested with" line: the intro page says what the recorded test-matrix runs show.

``make test-matrix`` (scripts/tested_with.py) runs the package's tests on Python 3.10 to
3.13 and with the lowest declared dependency versions, records the runs in
``book/tested_with.json`` and writes the intro's paragraph from it.
"""

from __future__ import annotations

import json
import re

import pytest
import tested_with  # scripts/, on the path through pyproject.toml
from _site import ROOT


def run(name, python, numpy, passed=True, resolution="highest", date="2026-12-06"):
    return {"run": name, "python": python, "resolution": resolution, "passed": passed,
            "tests": {"tests": 10, "failures": 0 if passed else 1, "errors": 0,
                      "skipped": 0, "passed": 10 if passed else 9},
            "packages": {"numpy": numpy, "pillow": "10.0.0", "tqdm": "4.66.0"},
            "date": date}


def test_the_intro_says_what_the_committed_record_shows():
    record = json.loads(tested_with.RECORD.read_text(encoding="utf-8"))
    intro = tested_with.INTRO.read_text(encoding="utf-8")
    line = tested_with.tested_with(record["runs"])
    assert tested_with.intro_with(intro, line) == intro, (
        "book/intro.md does not say what book/tested_with.json records: run "
        "make test-matrix")


def test_the_line_names_only_the_runs_that_passed():
    runs = [run("py3.10", "3.10.13", "2.2.6"), run("py3.11", "3.11.7", "2.3.1"),
            run("py3.12", "3.12.1", "2.3.1", passed=False),
            run("py3.10-lowest-direct", "3.10.13", "2.0.0", resolution="lowest-direct")]
    line = tested_with.tested_with(runs)
    assert line.startswith(
        "**Tested with** Python 3.10.13 and 3.11.7 and NumPy 2.2.6 and 2.3.1; and on "
        "Python 3.10.13 with the lowest versions that the package declares (numpy "
        "2.0.0, pillow 10.0.0, tqdm 4.66.0)")
    assert "3.12.1" not in line and line.endswith("2026-12-06.")
    failed = tested_with.tested_with([run("py3.10", "3.10.13", "2.2.6", passed=False)])
    assert "no recorded run of the test matrix has passed" in failed


def test_the_paragraph_under_the_marker_is_replaced_and_nothing_else():
    marker = tested_with.MARKER
    text = f"# Intro\n\nBefore.\n\n{marker}\nold line one\nold two\n\nAfter.\n"
    new = tested_with.intro_with(text, "A new sentence. " * 10)
    assert new.startswith(f"# Intro\n\nBefore.\n\n{marker}\nA new sentence.")
    assert new.endswith("\n\nAfter.\n") and "old" not in new
    assert max(len(line) for line in new.split("\n")) <= 99
    with pytest.raises(ValueError, match="has no line"):
        tested_with.intro_with("# Intro\n", "x")


def test_the_record_keeps_other_runs_and_is_written_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(tested_with, "LOCK", tmp_path / "lock")
    record, intro = tmp_path / "tested_with.json", tmp_path / "intro.md"
    intro.write_text(f"# Intro\n\n{tested_with.MARKER}\nold\n", encoding="utf-8")
    tested_with.write_record([run("py3.11", "3.11.7", "2.3.1")], record, intro)
    tested_with.write_record([run("py3.10", "3.10.13", "2.2.6")], record, intro)
    tested_with.write_record([run("py3.11", "3.11.9", "2.3.2")], record, intro)
    runs = tested_with.read_record(record)
    assert [(r["run"], r["python"]) for r in runs] == [
        ("py3.10", "3.10.13"), ("py3.11", "3.11.9")]
    assert "Python 3.10.13 and 3.11.9" in intro.read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["intro.md", "lock",
                                                          "tested_with.json"]


def test_pytest_counts_are_read_from_junit_xml(tmp_path):
    junit = tmp_path / "junit.xml"
    junit.write_text('<?xml version="1.0"?><testsuites><testsuite name="pytest" '
                     'errors="1" failures="2" skipped="3" tests="20"/></testsuites>')
    assert tested_with.pytest_counts(junit) == {
        "tests": 20, "failures": 2, "errors": 1, "skipped": 3, "passed": 14}


def test_the_ci_workflow_runs_every_run_of_the_matrix():
    workflow = (ROOT / ".github" / "workflows" / "tested-with.yml").read_text()
    pythons = re.search(r'python: \[(.*?)\]', workflow).group(1)
    assert [p.strip(' "') for p in pythons.split(",")] == list(tested_with.PYTHONS)
    assert "--runs py${{ matrix.python }}" in workflow
    lowest = [r.name for r in tested_with.RUNS if r.resolution == "lowest-direct"]
    assert lowest and all(f"--runs {name}" in workflow for name in lowest)
