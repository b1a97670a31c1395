"""Write assignments/<chapter>.ipynb, the student notebooks (``make assignments``).

They are built from the chapters and the package by ``book/_ext/cnnbook/assignments.py``: run
after editing a chapter they quote or a function they ask for, and commit them.
``--check`` only reports stale, missing or orphaned notebooks (the test suite does the
same).
"""

from __future__ import annotations

import sys
from pathlib import Path

from cnnbook.assignments import FOLDER, expected_notebooks
from export_notebooks import sync  # this folder: the same sync

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    return sync(FOLDER, expected_notebooks(ROOT), argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
