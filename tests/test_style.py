"""The package's lines fit the book's text column: ruff enforces 88 characters."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_package_passes_ruff_with_the_book_line_length():
    # pyproject.toml sets line-length and max-doc-length to 88: a quoted listing of that
    # width fits the column (tests/test_browser.py measures the rendered page).
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "cnn"], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
