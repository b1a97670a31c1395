"""The book's release: one version number, its date, and the names of the PDF editions.

The version lives in one place, ``cnn/__init__.py`` (``__version__``); the package's
metadata (pyproject.toml, ``dynamic = ["version"]``), the site's footer, the PDF title
page, the notebooks' install cell and the tests read it from there. The date of a
release is the date of its entry in ``CHANGELOG.md`` (``## 0.2.0 (2026-12-01)``).
``CITATION.cff`` and the introduction's BibTeX entry repeat both; a test checks that
they agree. Nothing here imports ``cnn``: the build and the tests read the text.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
VERSION_LINE = re.compile(r'^__version__\s*=\s*"(?P<version>[^"]+)"\s*$', re.M)
ENTRY = re.compile(
    r"^## (?P<version>\d+\.\d+\.\d+|Unreleased)(?: \((?P<date>\d{4}-\d{2}-\d{2})\))?\s*$", re.M
)
# Which edition shows the exercises' solutions (sphinx-exercise's hide_solutions).
EDITIONS = {
    "instructor": "instructor edition, with solutions",
    "student": "student edition, without solutions",
}
PDF_STEM = "cnn-from-scratch-numpy"


@dataclass(frozen=True)
class Entry:
    """One section of CHANGELOG.md: a release (with its date) or the unreleased changes."""

    version: str
    date: datetime.date | None
    text: str


def package_version(package_dir: Path | str) -> str:
    """``__version__`` of a package, read from its ``__init__.py`` without importing it.

    The one version reader of the book's tools: the release, the notebooks' install
    cell, the PDF title page and the equations' citations all come through here.

    Raises
    ------
    ValueError
        Naming the file, when it has no line ``__version__ = "X.Y.Z"`` or is missing.
    """
    path = Path(package_dir) / "__init__.py"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f'{path}: no such file, so no line __version__ = "X.Y.Z"') from None
    match = VERSION_LINE.search(text)
    if match is None:
        raise ValueError(f'{path}: no line __version__ = "X.Y.Z"')
    return match["version"]


def read_version(root: Path | str = ROOT) -> str:
    """The version in ``cnn/__init__.py``, the single source of the version number."""
    return package_version(Path(root) / "cnn")


def changelog(root: Path | str = ROOT) -> list[Entry]:
    """The entries of ``CHANGELOG.md``, newest first."""
    path = Path(root) / "CHANGELOG.md"
    text = path.read_text(encoding="utf-8")
    heads = list(ENTRY.finditer(text))
    entries = []
    for head, following in zip(heads, [*heads[1:], None]):
        body = text[head.end() : following.start() if following else len(text)].strip()
        date = datetime.date.fromisoformat(head["date"]) if head["date"] else None
        if head["version"] != "Unreleased" and date is None:
            raise ValueError(f"{path}: {head.group(0).strip()!r} has no (YYYY-MM-DD) date")
        entries.append(Entry(head["version"], date, body))
    return entries


def release_entry(root: Path | str = ROOT) -> Entry:
    """The changelog entry of the current version; it must exist and be dated."""
    version = read_version(root)
    for entry in changelog(root):
        if entry.version == version:
            return entry
    raise ValueError(
        f"CHANGELOG.md has no entry '## {version} (YYYY-MM-DD)' for the version in cnn/__init__.py"
    )


def release_date(root: Path | str = ROOT) -> datetime.date:
    return release_entry(root).date


def long_date(date: datetime.date) -> str:
    """'1 December 2026', as on the title page and in the footer."""
    return f"{date.day} {date:%B %Y}"


def pdf_name(edition: str, version: str) -> str:
    """File name of a PDF edition: cnn-from-scratch-numpy-0.2.0-student.pdf."""
    if edition not in EDITIONS:
        raise ValueError(f"edition must be one of {sorted(EDITIONS)}, not {edition!r}")
    return f"{PDF_STEM}-{version}-{edition}.pdf"


def tag(version: str) -> str:
    """The git tag of a release (v0.2.0): what the notebooks' install cell installs."""
    return f"v{version}"


# -- published equation labels -------------------------------------------------------
# book/published_labels.tsv: one row per equation label, one column per release with the
# number that release gave it. Readers cite labels, so none may disappear; numbers may
# change from one release to the next, and CHANGELOG.md lists every change.
LABELS_FILE = Path("book") / "published_labels.tsv"
LABELS_HEADER = """\
# Equation labels published in each release of the book, with the number each release gave
# them. A published label never disappears (readers cite it). A number may change from one
# release to the next; the later release's entry in CHANGELOG.md then names the label.
# Checked by tests/test_release.py. When cutting a release, run
# `python scripts/published_labels.py` to record its numbers (it adds or updates the
# current version's column and never removes a row).
"""


@dataclass
class PublishedLabels:
    releases: list[str]
    # label -> (chapter docname, {release: number})
    rows: dict[str, tuple[str, dict[str, str]]]


def read_labels(root: Path | str = ROOT) -> PublishedLabels:
    path = Path(root) / LABELS_FILE
    lines = [line for line in path.read_text(encoding="utf-8").splitlines()
             if line and not line.startswith("#")]
    header = lines[0].split("\t")
    if header[:2] != ["label", "chapter"]:
        raise ValueError(f"{path}: the first row must be 'label<TAB>chapter<TAB><release>...'")
    releases = header[2:]
    rows = {}
    for line in lines[1:]:
        label, chapter, *numbers = line.split("\t")
        if label in rows:
            raise ValueError(f"{path}: {label} is listed twice")
        rows[label] = (chapter, {r: n for r, n in zip(releases, numbers) if n})
    return PublishedLabels(releases, rows)


def write_labels(labels: PublishedLabels, root: Path | str = ROOT) -> None:
    lines = ["\t".join(["label", "chapter", *labels.releases])]
    for label, (chapter, numbers) in labels.rows.items():
        lines.append("\t".join([label, chapter, *(numbers.get(r, "") for r in labels.releases)]))
    (Path(root) / LABELS_FILE).write_text(LABELS_HEADER + "\n".join(lines) + "\n", encoding="utf-8")


def record_release(labels: PublishedLabels, version: str,
                   current: dict[str, tuple[str, str]]) -> PublishedLabels:
    """The table with ``version``'s column set from the book's current labels and numbers."""
    releases = labels.releases if version in labels.releases else [*labels.releases, version]
    rows = {label: (chapter, dict(numbers)) for label, (chapter, numbers) in labels.rows.items()}
    for label, (chapter, number) in current.items():
        _, numbers = rows.get(label, (chapter, {}))
        numbers[version] = number
        rows[label] = (chapter, numbers)
    for label in rows.keys() - current.keys():
        rows[label][1].pop(version, None)
    return PublishedLabels(releases, rows)


def label_problems(current: dict[str, tuple[str, str]], root: Path | str = ROOT) -> list[str]:
    """What breaks the promise of the published labels, each as a sentence.

    ``current`` maps each equation label of the book to (chapter, number) as the site
    numbers it now.
    """
    labels = read_labels(root)
    version = read_version(root)
    entries = {entry.version: entry for entry in changelog(root)}
    problems = []
    for label, (chapter, numbers) in labels.rows.items():
        if label not in current:
            first = next(iter(numbers), "?")
            problems.append(
                f"{label} (published in {first} in {chapter}) is gone: readers cite it; "
                "restore the label (renumbering is allowed, removing is not)"
            )
    for older, newer in zip(labels.releases, labels.releases[1:]):
        text = entries[newer].text if newer in entries else ""
        for label, (_, numbers) in labels.rows.items():
            before, after = numbers.get(older), numbers.get(newer)
            if before and after and before != after and label not in text:
                problems.append(
                    f"{label} is ({before}) in {older} and ({after}) in {newer}: list the "
                    f"renumbering in CHANGELOG.md under {newer}"
                )
    if version in labels.releases:
        for label, (chapter, number) in current.items():
            recorded = labels.rows.get(label, ("", {}))[1].get(version)
            if recorded != number:
                problems.append(
                    f"{label} is ({number}) in the book but {LABELS_FILE} records "
                    f"{'(' + recorded + ')' if recorded else 'nothing'} for {version}: "
                    "run python scripts/published_labels.py"
                )
    return problems
