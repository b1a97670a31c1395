"""The notebooks readers download: plain Jupyter, up to date, and runnable on their own."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
import tempfile
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from _site import ROOT, index, myst2ipynb

CHAPTERS = myst2ipynb.notebook_docs(ROOT)
CELL_TIMEOUT = 600

MYST_LEFTOVERS = {
    "role": re.compile(r"\{[a-zA-Z][\w:+-]*\}`"),
    "directive fence": re.compile(r"^\s*(`{3,}|:{3,})\s*\{", re.M),
    "labelled $$": re.compile(r"\$\$\s*\([\w:.-]+\)"),
    "target": re.compile(r"^\([^()\s]+\)=\s*$", re.M),
    "directive option": re.compile(r"^\s*:(label|class|name|pyobject|nonumber):", re.M),
}


def myst_leftovers(markdown: str) -> list[str]:
    """Raw MyST a notebook front end would show literally (code is ignored)."""
    prose = re.sub(r"^(`{3,}|~{3,})[^`{\n]*\n.*?^\1\s*$", "", markdown, flags=re.S | re.M)
    prose = re.sub(r"(?<!\})(``.+?``|`[^`\n]+`)", "", prose)
    return [name for name, pattern in MYST_LEFTOVERS.items() if pattern.search(prose)]


# -- the exporter on a small book that uses every construct -------------------

HEADER = """\
---
jupytext:
  text_representation: {extension: .md, format_name: myst, format_version: 0.13}
kernelspec: {display_name: Python 3, language: python, name: python3}
---
"""

ONE = HEADER + r"""
# One

```{admonition} Learning objectives
- cite {cite}`lecun1998gradient` and {cite:t}`kingma2015adam`
```

(sec-one-graph)=
## Graph

$$
y = f(x)
$$ (eq-one-f)

$$ z = 1 $$

\begin{align}
a &= b
\end{align}

```{math}
:label: eq-one-g
g(x) = x^2
```

See {eq}`eq-one-g`, {ref}`sec-one-graph`, `{eq}` as code, [next](two.md#graph) and {py:func}`~cnn.dense.affine`.

```{code-cell} ipython3
x = 1
```

```{literalinclude} ../cnn/dense.py
:pyobject: affine
```

:::{note}
A note.
:::

```{prf:definition} Jacobian
:label: def-one-jac
The matrix.
```

% a comment

```{exercise}
:label: ex-one-a
Derive {eq}`eq-one-f`.
```

````{solution} ex-one-a
:class: dropdown
```python
print("answer")
```
````
"""

TWO = HEADER + r"""
# Two

$$ w = 2 $$ (eq-two-w)

Back to {eq}`eq-one-f` and {prf:ref}`def-one-jac`; {numref}`ex-one-a`.
"""

DENSE = '''\
def affine(x, w):
    """Return x @ w."""
    return x @ w


def other():
    return 0
'''


@pytest.fixture
def mini_book(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "cnn").mkdir()
    for name in ("_config.yml", "_toc.yml"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    (tmp_path / "_toc.yml").write_text(textwrap.dedent("""\
        format: jb-book
        root: book/intro
        defaults:
          numbered: true
        parts:
          - caption: A
            chapters:
              - file: book/one
              - file: book/two
        """))
    (tmp_path / "book" / "references.bib").write_text((ROOT / "book" / "references.bib").read_text())
    (tmp_path / "book" / "intro.md").write_text("# Intro\n")
    (tmp_path / "book" / "one.md").write_text(ONE)
    (tmp_path / "book" / "two.md").write_text(TWO)
    (tmp_path / "cnn" / "dense.py").write_text(DENSE)
    return tmp_path


def exported_markdown(book: Path, doc: str) -> tuple[nbformat.NotebookNode, str]:
    nb = nbformat.reads(myst2ipynb.export_chapter(doc, myst2ipynb.BookIndex.load(book)), as_version=4)
    return nb, "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def test_exporter_numbers_equations_like_the_site(mini_book):
    _, one = exported_markdown(mini_book, "book/one")
    _, two = exported_markdown(mini_book, "book/two")
    # Chapter 1 (the root page is unnumbered): labelled $$, then an amsmath block
    # (numbered by myst under a hidden label), then {math}; unlabelled $$ is not numbered.
    assert re.search(r"y = f\(x\)\s*\\tag\{1\.1\}", one)
    assert re.search(r"a &= b\s*\\end\{aligned\}\s*\\tag\{1\.2\}", one)
    assert re.search(r"g\(x\) = x\^2\s*\\tag\{1\.3\}", one)
    assert "z = 1\n$$" in one
    assert "[Eq. (1.3)](https://cnn-from-scratch.github.io/cnn-from-scratch-numpy/book/one.html#equation-eq-one-g)" in one
    assert re.search(r"w = 2\s*\\tag\{2\.1\}", two)
    assert "[Eq. (1.1)](https://cnn-from-scratch.github.io/cnn-from-scratch-numpy/book/one.html#equation-eq-one-f)" in two


def test_exporter_rewrites_references_citations_and_code(mini_book):
    nb, one = exported_markdown(mini_book, "book/one")
    site = "https://cnn-from-scratch.github.io/cnn-from-scratch-numpy/"
    assert f"([LeCun et al., 1998]({site}book/bibliography.html#cite-lecun1998gradient))" in one
    assert f"[Kingma and Ba (2015)]({site}book/bibliography.html#cite-kingma2015adam)" in one
    assert f"[Graph]({site}book/one.html#sec-one-graph)" in one
    assert f"[next]({site}book/two.html#graph)" in one
    assert f"[`affine()`]({site}book/api.html#cnn.dense.affine)" in one
    assert "`{eq}` as code" in one
    assert 'def affine(x, w):\n    """Return x @ w."""\n    return x @ w\n```' in one
    assert "def other" not in one
    assert "> **Note**" in one and "> **Definition 1.1 (Jacobian).**" in one
    assert "**Exercise 1.1.**" in one
    assert "<summary>Solution to Exercise 1.1</summary>" in one
    assert '```python\nprint("answer")\n```' in one
    assert "a comment" not in one
    _, two = exported_markdown(mini_book, "book/two")
    assert f"[Definition 1.1 (Jacobian)]({site}book/one.html#def-one-jac)" in two
    assert f"[Exercise 1.1]({site}book/one.html#ex-one-a)" in two
    assert myst_leftovers(one) == [] and myst_leftovers(two) == []


def test_exported_notebook_installs_the_package_first(mini_book):
    nb, _ = exported_markdown(mini_book, "book/one")
    first = nb.cells[0]
    assert first.cell_type == "code"
    assert "import cnn" in first.source and "%pip install" in first.source
    assert "git+https://github.com/cnn-from-scratch/cnn-from-scratch-numpy" in first.source
    assert [c.source for c in nb.cells if c.cell_type == "code"][1] == "x = 1"
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    nbformat.validate(nb)


def test_exporter_refuses_unknown_labels(mini_book):
    (mini_book / "book" / "two.md").write_text(TWO + "\nSee {eq}`eq-nowhere`.\n")
    with pytest.raises(myst2ipynb.ExportError, match="eq-nowhere"):
        exported_markdown(mini_book, "book/two")


NESTED = r"""
(sec-two-a)=
(sec-two-b)=
## Nested

- a role that wraps {cite:p}`lecun1998gradient,
  kingma2015adam`, a [titled link](one.md "One") and

  $$ v = 3 $$ (eq-two-v)

> :::{note}
> See {eq}`eq-two-v`.
> :::

{ref}`sec-two-a` and {ref}`sec-two-b`; ``{eq}`eq-two-v` `` stays code.
"""


def test_exporter_rewrites_inside_lists_and_quotes(mini_book):
    (mini_book / "book" / "two.md").write_text(TWO + NESTED)
    _, two = exported_markdown(mini_book, "book/two")
    site = "https://cnn-from-scratch.github.io/cnn-from-scratch-numpy/"
    assert (f"([LeCun et al., 1998]({site}book/bibliography.html#cite-lecun1998gradient); "
            f"[Kingma and Ba, 2015]({site}book/bibliography.html#cite-kingma2015adam))") in two
    assert f'[titled link]({site}book/one.html "One")' in two
    assert "\n  $$\n  v = 3\n  \\tag{2.2}\n  $$\n" in two
    assert f"> > **Note**\n> >\n> > See [Eq. (2.2)]({site}book/two.html#equation-eq-two-v)." in two
    assert f"[Nested]({site}book/two.html#sec-two-a) and [Nested]({site}book/two.html#sec-two-b)" in two
    assert "``{eq}`eq-two-v` `` stays code" in two
    assert myst_leftovers(two) == []


def test_myst_leftovers_are_detected():
    assert myst_leftovers("see {eq}`eq-a`") == ["role"]
    assert myst_leftovers("```{note}\nx\n```") == ["directive fence"]
    assert myst_leftovers("$$ x $$ (eq-x)") == ["labelled $$"]
    assert myst_leftovers("(sec-x)=\n# X") == ["target"]
    assert myst_leftovers("write `{eq}` like this") == []


# -- the real chapters ----------------------------------------------------------

@pytest.mark.parametrize("doc", CHAPTERS)
def test_exported_chapter_has_no_raw_myst(doc):
    nb = nbformat.reads(myst2ipynb.export_chapter(doc, index()), as_version=4)
    leftovers = {i: myst_leftovers(c.source) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"}
    assert not {i: found for i, found in leftovers.items() if found}


def test_committed_notebooks_are_current():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "export_notebooks.py"), "--check"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, f"run `make notebooks` and commit notebooks/:\n{result.stdout}"


def run_alone(doc: str) -> str | None:
    """Execute the exported notebook in a fresh kernel in an empty folder; return the error."""
    nb = nbformat.reads(myst2ipynb.export_chapter(doc, index()), as_version=4)
    with tempfile.TemporaryDirectory(prefix="cnn-notebook-") as empty:
        client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                resources={"metadata": {"path": empty}})
        try:
            client.execute()
        except CellExecutionError as error:
            return str(error)
    return None


@functools.cache
def run_all() -> dict[str, str | None]:
    # Two kernels at a time: the machine has two cores.
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(CHAPTERS, pool.map(run_alone, CHAPTERS)))


@pytest.mark.parametrize("doc", CHAPTERS)
@pytest.mark.book
def test_downloaded_chapter_runs_alone(doc):
    error = run_all()[doc]
    assert error is None, error
