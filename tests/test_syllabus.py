"""The syllabus page: ten weeks, every chapter once, every student notebook once.

It is hand-written (the hours are a plan), so this test keeps it true to the book: the
chapters in the toc's order, each week's notebooks those of its chapters, and the
teachers' page and the toc link to it.
"""

from __future__ import annotations

import re

from _site import ROOT, index
from cnnbook import assignments


def weeks():
    text = (ROOT / "book" / "syllabus.md").read_text(encoding="utf-8")
    rows = [line for line in text.split("\n") if re.match(r"\| \d+ \|", line)]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def test_ten_weeks_with_hours():
    table = weeks()
    assert [int(week[0]) for week in table] == list(range(1, 11))
    for week in table:
        assert float(week[2]) > 0 and float(week[3]) > 0, week


def test_every_chapter_once_in_the_book_s_order():
    chapters = [doc for week in weeks() for doc in re.findall(r"\{doc\}`(\w+)`", week[1])]
    numbered = [doc.removeprefix("book/") for doc in index().numbers
                if doc.startswith("book/") and doc != "book/bugzoo"]
    assert chapters == numbered


def test_every_student_notebook_in_the_week_of_its_chapter():
    listed = {}
    for week in weeks():
        docs = set(re.findall(r"\{doc\}`(\w+)`", week[1]))
        for name in re.findall(r"`(\w+)`", re.sub(r"\{doc\}`\w+`", "", week[4])):
            listed[name] = docs
    having = {a.name: a.chapter.removeprefix("book/") for a in assignments.ASSIGNMENTS}
    assert set(listed) == set(having)
    assert all(having[name] in docs for name, docs in listed.items())


def test_the_teachers_page_and_the_toc_link_to_it():
    assert "{doc}`syllabus`" in (ROOT / "book" / "teachers.md").read_text(encoding="utf-8")
    assert "file: book/syllabus" in (ROOT / "_toc.yml").read_text(encoding="utf-8")
