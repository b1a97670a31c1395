"""Write notebooks/<chapter>.ipynb, the plain-Jupyter copies of the chapters.

Colab and Binder open these files from the repository; they carry no outputs.
Run after editing a chapter or a quoted function in cnn/ (``make notebooks``);
``--check`` only reports stale or missing copies (the test suite does the same).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnnbook.myst2ipynb import BookIndex, export_chapter, notebook_path

ROOT = Path(__file__).resolve().parents[1]


def expected_notebooks(root: Path = ROOT) -> dict[str, str]:
    """Repository path -> text of every chapter notebook, as the chapters stand now."""
    index = BookIndex.load(root)
    return {notebook_path(doc): export_chapter(doc, index) for doc in index.notebook_docs()}


def stale(folder: str, expected: dict[str, str], root: Path = ROOT) -> list[str]:
    """Notebooks in ``folder`` that are missing, out of date, or not in ``expected``."""
    changed = [
        path for path, text in expected.items()
        if not (root / path).exists() or (root / path).read_text(encoding="utf-8") != text
    ]
    orphans = [
        path.relative_to(root).as_posix() for path in (root / folder).glob("*.ipynb")
        if path.relative_to(root).as_posix() not in expected
    ]
    return sorted(changed + orphans)


def sync(folder: str, expected: dict[str, str], argv: list[str] | None,
         description: str) -> int:
    """Bring ``folder`` in line with ``expected`` (path -> text); ``--check`` only lists.

    Shared by this script and ``make_assignments.py``.
    """
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only list stale notebooks; exit 1 if any")
    args = parser.parse_args(argv)
    paths = stale(folder, expected)
    if args.check:
        for path in paths:
            print(f"stale: {path}")
        return 1 if paths else 0
    (ROOT / folder).mkdir(exist_ok=True)
    for path in paths:
        if path in expected:
            (ROOT / path).write_text(expected[path], encoding="utf-8")
            print(f"wrote {path}")
        else:
            (ROOT / path).unlink()
            print(f"removed {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return sync("notebooks", expected_notebooks(), argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
