"""Record the equation numbers of the current release in book/published_labels.tsv.

Run when cutting a release (after setting the version in cnn/__init__.py and adding its
entry to CHANGELOG.md): the current version's column is set from the book as it stands,
new labels get a row, and no row is ever removed. It then prints what
tests/test_release.py would report, for example a renumbering that CHANGELOG.md does not
list yet. ``--check`` only prints those problems (exit status 1 if any).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnnbook.myst2ipynb import BookIndex
from cnnbook.release import (
    label_problems,
    read_labels,
    read_version,
    record_release,
    write_labels,
)

ROOT = Path(__file__).resolve().parents[1]


def current_equations(root: Path = ROOT) -> dict[str, tuple[str, str]]:
    """Every labelled, numbered equation of the book: label -> (chapter, number)."""
    index = BookIndex.load(root)
    return {
        label: (target.docname, target.number)
        for label, target in index.targets.items()
        if target.anchor.startswith("equation-") and target.number
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report problems")
    args = parser.parse_args(argv)
    current = current_equations()
    if not args.check:
        version = read_version(ROOT)
        write_labels(record_release(read_labels(ROOT), version, current), ROOT)
        print(f"recorded {len(current)} equation numbers for {version}")
    problems = label_problems(current, ROOT)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
