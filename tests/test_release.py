"""Releases readers can cite and pin: one version, its changelog, its labels, its citation."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from _site import ROOT, index, myst2ipynb

import published_labels  # scripts/, on the path through pyproject.toml
from cnnbook import release

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

VERSION = release.read_version(ROOT)
CFFCONVERT_HINT = "cffconvert validates CITATION.cff; make setup installs it in .venv/cffconvert"


# -- one version -----------------------------------------------------------------------

def test_the_package_reports_the_version_of_its_single_source():
    import cnn

    assert re.fullmatch(r"\d+\.\d+\.\d+", VERSION)
    assert cnn.__version__ == VERSION
    installed = importlib.metadata.version("cnn-from-scratch")
    assert installed == VERSION, f"installed metadata says {installed}: run make setup"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in pyproject["project"], "pyproject.toml must not repeat the version"
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "cnn.__version__"}


def test_citation_file_and_introduction_cite_this_release():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert str(cff["version"]) == VERSION
    assert str(cff["date-released"]) == release.release_date(ROOT).isoformat()
    assert cff["preferred-citation"]["year"] == release.release_date(ROOT).year
    intro = (ROOT / "book" / "intro.md").read_text(encoding="utf-8")
    assert f"version   = {{{VERSION}}}," in intro
    assert f"year      = {{{release.release_date(ROOT).year}}}," in intro


def test_committed_notebooks_install_the_release_tag_not_the_main_branch():
    pinned = f"git+{index().repo_url}@v{VERSION}"
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        install = nbformat.read(path, as_version=4).cells[0].source
        assert f'"cnn-from-scratch @ {pinned}"' in install, path.name
        assert f'cnn.__version__ != "{VERSION}"' in install, path.name


def test_install_commands_in_the_text_pin_the_release():
    texts = [ROOT / "README.md", *sorted((ROOT / "book").glob("*.md"))]
    found = [(path.name, match) for path in texts
             for match in re.findall(rf"git\+{re.escape(index().repo_url)}\S*",
                                     path.read_text(encoding="utf-8"))]
    assert not [(name, m) for name, m in found if not m.startswith(
        f"git+{index().repo_url}@v{VERSION}")], "an install command without the release tag"


def test_exported_install_cell_follows_the_version(monkeypatch):
    monkeypatch.setattr(myst2ipynb, "read_version", lambda: "9.8.7")
    doc = index().notebook_docs()[0]
    nb = nbformat.reads(myst2ipynb.export_chapter(doc, index()), as_version=4)
    assert f"git+{index().repo_url}@v9.8.7" in nb.cells[0].source
    assert 'cnn.__version__ != "9.8.7"' in nb.cells[0].source


def test_read_version_names_the_file_when_the_line_is_missing(tmp_path):
    (tmp_path / "cnn").mkdir()
    (tmp_path / "cnn" / "__init__.py").write_text("VERSION = '1'\n")
    with pytest.raises(ValueError, match=r"__init__\.py.*__version__"):
        release.read_version(tmp_path)


def test_a_package_without_a_version_is_an_error_not_an_empty_version(tmp_path):
    # The equations' citations read the version through the same reader: no silent "".
    with pytest.raises(ValueError, match=r"__init__\.py: no such file"):
        release.package_version(tmp_path / "pkg")


# -- the changelog -----------------------------------------------------------------------

def test_changelog_has_a_dated_entry_for_this_version_and_is_newest_first():
    entries = release.changelog(ROOT)
    released = [entry for entry in entries if entry.version != "Unreleased"]
    assert released[0].version == VERSION, "the newest release in CHANGELOG.md is not cnn's"
    versions = [tuple(map(int, entry.version.split("."))) for entry in released]
    assert versions == sorted(versions, reverse=True) and len(set(versions)) == len(versions)
    dates = [entry.date for entry in released]
    assert dates == sorted(dates, reverse=True)
    assert release.release_date(ROOT) <= datetime.date.today()
    assert all(entry.text for entry in released), "an empty changelog entry"


def test_changelog_rejects_a_release_without_a_date(tmp_path):
    (tmp_path / "CHANGELOG.md").write_text("# Changes\n\n## 1.0.0\n\nText.\n")
    with pytest.raises(ValueError, match=r"'## 1.0.0' has no \(YYYY-MM-DD\) date"):
        release.changelog(tmp_path)


def test_release_date_needs_an_entry_for_the_version(tmp_path):
    (tmp_path / "cnn").mkdir()
    (tmp_path / "cnn" / "__init__.py").write_text('__version__ = "1.1.0"\n')
    (tmp_path / "CHANGELOG.md").write_text("# Changes\n\n## 1.0.0 (2026-01-02)\n\nText.\n")
    with pytest.raises(ValueError, match="no entry '## 1.1.0"):
        release.release_date(tmp_path)


def test_changes_page_includes_the_changelog():
    page = (ROOT / "book" / "changes.md").read_text(encoding="utf-8")
    assert page.startswith("# Changes and errata\n")
    assert "```{include} ../CHANGELOG.md\n:start-line: 2\n```" in page
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert changelog.startswith("# Changes and errata\n\n")
    assert "book/changes" in index().docs


def test_erratum_form_asks_for_version_chapter_and_equation_label():
    form = yaml.safe_load((ROOT / ".github" / "ISSUE_TEMPLATE" / "erratum.yml").read_text())
    fields = {item["id"]: item for item in form["body"] if "id" in item}
    assert {"version", "chapter", "equation", "mistake"} <= fields.keys()
    assert fields["version"]["validations"]["required"]
    assert fields["chapter"]["validations"]["required"]
    assert "label" in fields["equation"]["attributes"]["description"]
    link = f"{index().repo_url}/issues/new?template=erratum.yml"
    assert link in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")


# -- CITATION.cff, validated offline by cffconvert ------------------------------------------

def cffconvert() -> str:
    found = Path(sys.executable).parent.parent / "cffconvert" / "bin" / "cffconvert"
    if found.exists():
        return str(found)
    on_path = shutil.which("cffconvert")
    if on_path:
        return on_path
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but cffconvert is missing: {CFFCONVERT_HINT}")
    pytest.skip(CFFCONVERT_HINT)


def validate_cff(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([cffconvert(), "--validate", "-i", str(path)], capture_output=True,
                          text=True, timeout=120, check=False)


def test_citation_file_is_valid_cff():
    result = validate_cff(ROOT / "CITATION.cff")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def test_cffconvert_rejects_an_invalid_date(tmp_path):
    broken = (ROOT / "CITATION.cff").read_text(encoding="utf-8").replace(
        f'date-released: "{release.release_date(ROOT).isoformat()}"', 'date-released: "2026-13-01"'
    )
    assert "2026-13-01" in broken
    (tmp_path / "CITATION.cff").write_text(broken)
    assert validate_cff(tmp_path / "CITATION.cff").returncode != 0


# -- equation labels are promises ---------------------------------------------------------

@pytest.fixture(scope="module")
def equations():
    return published_labels.current_equations(ROOT)


def test_no_published_label_disappeared_and_renumberings_are_listed(equations):
    assert release.label_problems(equations, ROOT) == []
    published = release.read_labels(ROOT)
    assert published.releases[-1] == VERSION or VERSION not in published.releases
    assert len(published.rows) > 0 and len(equations) > 0
    if "Unreleased" not in {entry.version for entry in release.changelog(ROOT)}:
        assert set(equations) <= set(published.rows)


@pytest.fixture
def book_copy(tmp_path):
    """CHANGELOG.md, cnn/__init__.py and the labels file of the repository, to edit."""
    for relpath in ["CHANGELOG.md", "cnn/__init__.py", str(release.LABELS_FILE)]:
        (tmp_path / relpath).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / relpath, tmp_path / relpath)
    return tmp_path


def test_a_removed_label_is_reported(book_copy, equations):
    label = next(iter(equations))
    current = {k: v for k, v in equations.items() if k != label}
    problems = release.label_problems(current, book_copy)
    assert len(problems) == 1 and problems[0].startswith(f"{label} (published in 0.1.0")


def test_a_renumbering_must_be_listed_in_the_changelog(book_copy, equations):
    label, (chapter, number) = next(iter(equations.items()))
    moved = {**equations, label: (chapter, "99.1")}
    # In a release already recorded, the record must follow the book.
    assert any("run python scripts/published_labels.py" in p
               for p in release.label_problems(moved, book_copy))
    # Recorded, the new number differs from the release before's: the changelog must
    # name the label, in this version's entry.
    earlier = [r for r in release.read_labels(book_copy).releases if r != VERSION][-1]
    labels = release.record_release(release.read_labels(book_copy), VERSION, moved)
    release.write_labels(labels, book_copy)
    problems = release.label_problems(moved, book_copy)
    assert problems == [f"{label} is ({number}) in {earlier} and (99.1) in {VERSION}: list "
                        f"the renumbering in CHANGELOG.md under {VERSION}"]
    changelog = book_copy / "CHANGELOG.md"
    text = changelog.read_text(encoding="utf-8")
    listed = f"### Equation numbers\n\n- `{label}`: ({number}) is now (99.1).\n\n"

    def listed_under(version):
        heading = re.search(rf"^## {re.escape(version)} \(.*\)\n\n", text, re.M)
        changelog.write_text(text[:heading.end()] + listed + text[heading.end():])
        return release.label_problems(moved, book_copy)

    assert listed_under(earlier) == problems, "listed under the wrong release"
    assert listed_under(VERSION) == []


def test_recording_a_release_keeps_old_rows_and_adds_new_labels(book_copy, equations):
    new = {**equations, "eq-new": ("book/new", "11.1")}
    labels = release.record_release(release.read_labels(book_copy), "0.3.0", new)
    assert labels.releases[-1] == "0.3.0"
    assert labels.rows["eq-new"] == ("book/new", {"0.3.0": "11.1"})
    # Every label of the book now, the unreleased ones and eq-new among them.
    assert set(labels.rows) == set(release.read_labels(book_copy).rows) | set(new)


# -- make pdf and CI know what TeX needs ------------------------------------------------------

def test_ci_installs_every_tex_package_the_pdf_build_names():
    from cnnbook import pdfbook

    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for package in pdfbook.TEX_PACKAGES.split():
        assert package in ci, f".ci/run does not install {package}"
    assert "--no-install-recommends" in ci


def test_make_pdf_says_which_packages_to_install(monkeypatch, capsys):
    import build_pdf

    monkeypatch.setattr(build_pdf.shutil, "which", lambda name: None)
    assert build_pdf.main(["--out", "/nonexistent"]) == 2
    message = capsys.readouterr().err
    assert "xelatex (texlive-xetex)" in message and "latexmk (latexmk)" in message
    assert "sudo apt-get install --no-install-recommends texlive-latex-recommended" in message
