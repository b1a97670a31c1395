"""Write assignments/<chapter>.ipynb, the student notebooks (``make assignments``).

They are built from the chapters and the package by ``book/_ext/cnnbook/assignments.py``: run
after editing a chapter they quote or a function they ask for, and commit them.
``--check`` only reports stale, missing or orphaned notebooks (the test suite does the
same). A figure whose code in the chapter changed is drawn again by running the chapter up
to it; ``--check`` runs nothing and reports such a notebook as stale.

``--seed N`` (``make assignments SEED=N``) also writes the teacher's nbgrader source
versions, with the solutions and hidden tests on cases drawn from seed N, into
``_build/nbgrader/source/<chapter>/<chapter>.ipynb`` (``--source-dir``): never commit
them, the hidden tests and the seed are the teacher's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnnbook.assignments import FOLDER, expected_notebooks, source_notebooks
from export_notebooks import sync  # this folder: the same sync

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "_build" / "nbgrader" / "source"


def write_sources(folder: Path, seed: int) -> None:
    for path, text in source_notebooks(ROOT, seed).items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(target)
        print(f"wrote {target}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--source-dir", type=Path, default=SOURCE)
    graded, rest = parser.parse_known_args(argv)
    if graded.seed is not None and graded.seed < 0:
        print(f"error: --seed must be >= 0, got {graded.seed}", file=sys.stderr)
        return 2
    # Running chapters to draw figures is for writing; a check never runs code.
    status = sync(FOLDER, expected_notebooks(ROOT, execute="--check" not in rest), rest,
                  __doc__)
    if status == 0 and graded.seed is not None and "--check" not in rest:
        write_sources(graded.source_dir, graded.seed)
    return status


if __name__ == "__main__":
    sys.exit(main())
