"""Listings that read like a textbook's: a quoted function without its long docstring.

The package keeps full NumPy-style docstrings for the API page; a chapter that quotes a
function with ``{literalinclude}`` and ``:docstring: summary`` shows each docstring in the
listing as its one-line summary. The site (``cnnbook.py``) and the downloaded notebooks
(``myst2ipynb.py``) both call ``summarise_docstrings``, so they show the same lines.
"""

from __future__ import annotations

import ast
import re
import textwrap

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.directives.code import LiteralInclude

DOCSTRING_MODES = ("full", "summary")


def summarise_docstrings(source: str) -> str:
    """Replace every docstring of a def or class in ``source`` by its first line.

    ``source`` is a quoted object as ``:pyobject:`` selects it (a method keeps its class's
    indentation). Code, comments and blank lines outside docstrings are kept as they are.
    """
    lines = source.split("\n")
    tree = ast.parse(textwrap.dedent(source))
    docstrings = [
        node.body[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
        and isinstance(node.body[0].value.value, str)
    ]
    # From the bottom up, so that earlier line numbers stay valid.
    for expr in sorted(docstrings, key=lambda e: e.lineno, reverse=True):
        first, last = expr.lineno - 1, expr.end_lineno - 1
        if first == last:
            continue
        line = lines[first]
        indent = line[: len(line) - len(line.lstrip())]
        summary = expr.value.value.strip().split("\n", 1)[0].strip()
        prefix = re.match(r"[rRuUbB]*", line.lstrip()).group()
        lines[first:last + 1] = [f'{indent}{prefix}"""{summary}"""']
    return "\n".join(lines)


class Listing(LiteralInclude):
    """``literalinclude`` with one more option, ``:docstring: summary`` (default ``full``)."""

    option_spec = {
        **LiteralInclude.option_spec,
        "docstring": lambda value: directives.choice(value, DOCSTRING_MODES),
    }

    def run(self) -> list[nodes.Node]:
        mode = self.options.pop("docstring", "full")
        result = super().run()
        # The site marks quoted package code (div.listing), which the browser test reports apart.
        for block in (n for node in result for n in node.findall(nodes.literal_block)):
            block["classes"].append("listing")
        if mode == "summary":
            for block in (n for node in result for n in node.findall(nodes.literal_block)):
                text = summarise_docstrings(block.astext())
                block.rawsource = text
                block.children = [nodes.Text(text)]
        return result


def setup(app):
    app.add_directive("literalinclude", Listing, override=True)
