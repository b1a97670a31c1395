"""Listings quote functions with one-line docstrings (book/_ext/cnnbook/listing.py)."""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from cnnbook.listing import summarise_docstrings
from sphinx.directives.code import LiteralIncludeReader

ROOT = Path(__file__).resolve().parents[1]

METHOD = '''\
    def step(self, params, grads):
        r"""Update every array in place.

        Parameters
        ----------
        params : dict
        """
        for key in params:  # a comment stays
            params[key] -= grads[key]
'''


def test_a_method_keeps_its_indentation_code_and_comments():
    assert summarise_docstrings(METHOD) == (
        "    def step(self, params, grads):\n"
        '        r"""Update every array in place."""\n'
        "        for key in params:  # a comment stays\n"
        "            params[key] -= grads[key]\n"
    )


def test_every_docstring_of_a_class_is_summarised_and_one_liners_are_kept():
    source = '''class A:
    """Summary of A.

    Details.
    """

    def f(self):
        """Already one line."""
        return 1

    def g(self):
        """Summary of g.

        More.
        """
        return "not a docstring"
'''
    result = summarise_docstrings(source)
    assert result.count('"""') == 6
    assert '"""Summary of A."""' in result and '"""Summary of g."""' in result
    assert "Details" not in result and "More" not in result
    assert '"""Already one line."""' in result and 'return "not a docstring"' in result


def test_a_function_without_docstring_is_unchanged():
    source = "def f(x):\n    y = x + 1\n    return y\n"
    assert summarise_docstrings(source) == source


def quoted_objects():
    for chapter in sorted((ROOT / "book").glob("*.md")):
        text = chapter.read_text(encoding="utf-8")
        pattern = r"```\{literalinclude\} (\S+)\n:pyobject: (\S+)\n:docstring: summary"
        for path, name in re.findall(pattern, text):
            yield pytest.param(chapter.parent / path, name, id=f"{chapter.stem}:{name}")


@pytest.mark.parametrize("path, name", list(quoted_objects()))
def test_quoted_listings_are_valid_python_and_fit_88_columns(path, name):
    options = {"pyobject": name}
    config = SimpleNamespace(source_encoding="utf-8")
    text, _ = LiteralIncludeReader(str(path), options, config).read()
    listing = summarise_docstrings(text)
    ast.parse(textwrap.dedent(listing))
    widest = max(listing.split("\n"), key=len)
    assert len(widest) <= 88, f"{path.name}:{name}: {len(widest)} characters: {widest!r}"
    assert "Parameters\n" not in listing and "Returns\n" not in listing
