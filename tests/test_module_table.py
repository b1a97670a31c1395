"""The chapter -> module table (package docstring and README) matches the book and the package."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import yaml

import cnn

ROOT = Path(__file__).resolve().parents[1]
MODULE = re.compile(r"(`{1,2})(cnn(?:\.\w+)*)\1(?: \(([^)]*)\))?")


def modules_in(text, quote):
    """Module names in a cell; ``cnn.fast`` (``conv``, ...) names its submodules."""
    names = set()
    for _, name, inside in MODULE.findall(text):
        subs = re.findall(rf"{quote}(\w+){quote}", inside or "")
        package = hasattr(importlib.import_module(name), "__path__")
        names |= {f"{name}.{sub}" for sub in subs} if package and subs else {name}
    return names


def docstring_table():
    """Chapter -> module names, in the order of the package docstring's table."""
    lines = cnn.__doc__.split("\n")
    borders = [i for i, line in enumerate(lines) if line.startswith("==  ")]
    rows = []
    for line in lines[borders[1] + 1 : borders[2]]:
        if line[:18].strip():
            rows.append([line[4:18].strip(), ""])
        rows[-1][1] += " " + line[20:]
    return [(chapter, modules_in(text, "``")) for chapter, text in rows]


def readme_table():
    rows = re.findall(r"^\| [\d ]*\| (?:`(\w+)`: [^|]*|\(no chapter\)) \| (.*) \|$",
                      (ROOT / "README.md").read_text(encoding="utf-8"), re.M)
    return [(chapter or "(no chapter)", modules_in(text, "`")) for chapter, text in rows]


def test_the_table_lists_the_chapters_in_the_book_s_order():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    numbered = [Path(c["file"]).name for part in toc["parts"]
                if part.get("numbered", True) for c in part["chapters"]]
    chapters = [chapter for chapter, _ in docstring_table()]
    assert chapters == [*numbered, "teachers", "(no chapter)"]


def test_every_module_of_the_table_exists_and_every_module_is_in_the_table():
    listed = set().union(*(names for _, names in docstring_table()))
    for name in sorted(listed):
        importlib.import_module(name)
    package = ROOT / "cnn"
    modules = {".".join(("cnn", *p.relative_to(package).with_suffix("").parts))
               for p in package.rglob("*.py") if not p.name.startswith("_")}
    packages = {".".join(("cnn", *p.parent.relative_to(package).parts))
                for p in package.rglob("__init__.py") if p.parent != package}
    # A subpackage is listed as a whole (cnn.exercises) or module by module (cnn.fast).
    missing = {m for m in modules if m not in listed and not any(
        m.startswith(p + ".") and p in listed and not any(
            other.startswith(p + ".") for other in listed) for p in packages)}
    assert not missing, f"add these modules to the chapter -> module table: {sorted(missing)}"


def test_the_readme_shows_the_same_table():
    assert readme_table() == docstring_table()
