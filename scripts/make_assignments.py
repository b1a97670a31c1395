"""Write assignments/<chapter>.ipynb, the student notebooks (``make assignments``).

They are built from the chapters and the package by ``book/_ext/assignments.py``: run
after editing a chapter they quote or a function they ask for, and commit them.
``--check`` only reports stale, missing or orphaned notebooks (the test suite does the
same).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))

from assignments import FOLDER, expected_notebooks  # noqa: E402


def stale_notebooks(root: Path = ROOT) -> list[str]:
    """Notebooks that are missing, out of date, or belong to no assignment."""
    expected = expected_notebooks(root)
    stale = [path for path, text in expected.items()
             if not (root / path).exists() or (root / path).read_text(encoding="utf-8") != text]
    orphans = [path.relative_to(root).as_posix() for path in (root / FOLDER).glob("*.ipynb")
               if path.relative_to(root).as_posix() not in expected]
    return sorted(stale + orphans)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only list stale notebooks; exit 1 if any")
    args = parser.parse_args(argv)
    stale = stale_notebooks()
    if args.check:
        for path in stale:
            print(f"stale: {path}")
        return 1 if stale else 0
    expected = expected_notebooks(ROOT)
    (ROOT / FOLDER).mkdir(exist_ok=True)
    for path in stale:
        if path in expected:
            (ROOT / path).write_text(expected[path], encoding="utf-8")
            print(f"wrote {path}")
        else:
            (ROOT / path).unlink()
            print(f"removed {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
