"""The book's provenance extension (book/_ext/cnnbook/provenance.py), without the whole book.

Its readers (docstrings, test names) on small inputs, the real package and tests against the
chapters, and small Sphinx projects built strictly: a consistent one passes and shows the links,
and each broken promise (an untested gradient equation, a docstring or a test naming a label
that does not exist) fails the build with a message that names it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cnnbook import provenance, release
from test_chapters import CHAPTERS, equation_labels

ROOT = Path(__file__).resolve().parents[1]



# -- readers -------------------------------------------------------------------------------------
def test_labels_in_text_stop_at_punctuation_and_ignore_longer_words():
    text = "Implements eq-conv-dx. Uses eq-im2col (eq-conv-out-size); not freq-1 or eq_conv_dx."
    assert provenance.labels_in(text) == ("eq-conv-dx", "eq-im2col", "eq-conv-out-size")
    assert provenance.labels_in("eq-a, then eq-a again") == ("eq-a",)


def test_the_description_ends_at_the_first_numpydoc_section():
    doc = textwrap.dedent("""\
        Summary naming eq-a.

        More about eq-b.

        Returns
        -------
        err : float
            relative_error (eq-c).
        """)
    assert provenance.labels_in(provenance.docstring_description(doc)) == ("eq-a", "eq-b")


def test_scan_module_finds_functions_classes_and_methods(tmp_path):
    path = tmp_path / "mod.py"
    path.write_text(textwrap.dedent('''\
        """Module naming eq-m."""

        def f():
            """Implements eq-f.

            Returns
            -------
            y : float
                As eq-g defines it.
            """

        class K:
            """A class (eq-k)."""

            def backward(self):
                """Implements eq-k-dx."""

                def inner():
                    """eq-inner: nested functions are not part of the API."""

        def _private():
            pass
        '''))
    found = {o.qualname: o for o in provenance.scan_module(path, "pkg.mod")}
    assert set(found) == {"pkg.mod", "pkg.mod.f", "pkg.mod.K", "pkg.mod.K.backward", "pkg.mod._private"}
    assert found["pkg.mod"].implements == () and found["pkg.mod"].names == ("eq-m",)
    assert found["pkg.mod.f"].implements == ("eq-f",)
    assert found["pkg.mod.f"].names == ("eq-f", "eq-g")
    assert found["pkg.mod.K.backward"].implements == ("eq-k-dx",)
    assert found["pkg.mod.K.backward"].line == 15


def test_a_test_verifies_the_longest_label_its_name_contains():
    labels = ["eq-softmax-ce", "eq-softmax-ce-dz", "eq-relu-dx", "eq-conv-dx", "eq-conv-dw"]
    name = provenance.labels_in_test_name
    assert name("test_eq_softmax_ce_dz", labels) == ("eq-softmax-ce-dz",)
    assert name("test_eq_softmax_ce", labels) == ("eq-softmax-ce",)
    assert name("test_eq_relu_dx_subgradient_at_zero", labels) == ("eq-relu-dx",)
    assert name("test_eq_conv_dx_and_eq_conv_dw", labels) == ("eq-conv-dx", "eq-conv-dw")
    # Only whole words: eq_conv_dxx is another label.
    assert name("test_eq_conv_dxx", labels) == ()
    assert name("test_conv_dx_matches", labels) == ()


@pytest.mark.parametrize("label, gradient", [
    ("eq-conv-dx", True), ("eq-dense-db", True), ("eq-softmax-ce-dz", True), ("eq-mlp-dh1", True),
    ("eq-batchnorm-dgamma", True), ("eq-weighted-ce-dlogits", True), ("eq-residual-grad", True),
    ("eq-neuron-backward", True), ("eq-conv-dout-dilated", False), ("eq-centred-difference", False),
    ("eq-conv-forward", False), ("eq-dense-forward", False), ("eq-adam", False),
])
def test_the_gradient_rule(label, gradient):
    assert bool(provenance.GRADIENT_LABEL.search(label)) is gradient


def test_the_version_is_the_package_s():
    import cnn

    assert release.package_version(ROOT / "cnn") == cnn.__version__


# -- the real package, tests and chapters ---------------------------------------------------------
BOOK_LABELS = {label for text in CHAPTERS.values() for label in equation_labels(text)}
OBJECTS = provenance.scan_package(ROOT / "cnn", "cnn")
TESTS = provenance.scan_tests(ROOT / "tests" / "test_equations.py", "tests/test_equations.py")


def test_every_label_a_docstring_names_is_an_equation_of_the_book():
    unknown = {(o.qualname, label) for o in OBJECTS for label in o.names if label not in BOOK_LABELS}
    assert not unknown


def test_the_package_implements_the_book_s_gradients():
    implemented = {label for o in OBJECTS for label in o.implements}
    for label in ("eq-conv-dx", "eq-conv-dw", "eq-conv-db", "eq-dense-dx", "eq-relu-dx",
                  "eq-maxpool-dx", "eq-avgpool-dx", "eq-softmax-ce-dz"):
        assert label in implemented, label
    conv_dx = [o.qualname for o in OBJECTS if "eq-conv-dx" in o.implements]
    assert "cnn.conv.conv2d_backward" in conv_dx and "cnn.fast.conv.conv2d_backward_fast" in conv_dx
    # The teaching core is listed before the tuned kernels.
    assert conv_dx.index("cnn.conv.conv2d_backward") < conv_dx.index("cnn.fast.conv.conv2d_backward_fast")


def test_every_equation_test_names_a_label_of_the_book():
    for test in TESTS:
        if provenance.NAMED_FOR_EQUATION.search(test.name):
            assert provenance.labels_in_test_name(test.name, BOOK_LABELS), test.name


# -- small strict Sphinx builds ---------------------------------------------------------------
CONF = '''\
project = "Tiny book"
extensions = ["myst_parser", "sphinx.ext.autodoc", "cnnbook.provenance"]
myst_enable_extensions = ["dollarmath"]
numfig = True
math_numfig = True
html_baseurl = "https://example.org/tiny/"
provenance_package = "pkg"
provenance_package_dir = "pkg"
provenance_test_files = ["tests/test_equations.py"]
exclude_patterns = ["_build"]
'''
INDEX = '''\
# Tiny chapter

```{{toctree}}
:hidden:
api
equations
```

$$
y = w x
$$ (eq-tiny-forward)

$$
dx = w\\, dy
$$ (eq-tiny-dx)
{extra}
'''
API = '''\
# API

```{eval-rst}
.. automodule:: pkg.layer
   :members:
```
'''
EQUATIONS = '''\
# Equation index

```{equation-index}
```
'''
LAYER = '''\
"""A tiny layer."""


def forward(x, w):
    """Implements eq-tiny-forward."""
    return w * x


def backward(dy, w):
    """Implements eq-tiny-dx.{extra}"""
    return w * dy
'''
TEST_FILE = '''\
def test_eq_tiny_dx():
    assert True
{extra}'''


def tiny_book(tmp_path: Path, *, chapter="", docstring="", tests="") -> Path:
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "tests").mkdir()
    (src / "conf.py").write_text(CONF)
    (src / "index.md").write_text(INDEX.format(extra=chapter))
    (src / "api.md").write_text(API)
    (src / "equations.md").write_text(EQUATIONS)
    (src / "pkg" / "__init__.py").write_text('__version__ = "9.8.7"\n')
    (src / "pkg" / "layer.py").write_text(LAYER.format(extra=docstring))
    (src / "tests" / "test_equations.py").write_text(TEST_FILE.format(extra=tests))
    return src


def sphinx(src: Path) -> tuple[int, str, Path]:
    out = src.parent / "html"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(src), str(out)],
        capture_output=True, text=True, timeout=300, check=False, cwd=src.parent,
        env={**os.environ, "PYTHONPATH": str(src)})  # autodoc imports the tiny package
    return result.returncode, result.stdout + result.stderr, out


def test_a_consistent_book_builds_and_links_equations_code_and_tests(tmp_path):
    code, log, out = sphinx(tiny_book(tmp_path))
    assert code == 0, log
    page = (out / "index.html").read_text()
    line = page[page.index('data-label="eq-tiny-dx"'):]
    line = line[:line.index("</details>")]
    assert 'href="_modules/pkg/layer.html#backward"' in line
    assert 'href="_tests/test_equations.html#test_eq_tiny_dx"' in line
    # The URL of the equation in this release's edition, which stays online.
    url = "https://example.org/tiny/v9.8.7/index.html#equation-eq-tiny-dx"
    assert f"Tiny book, version 9.8.7, &quot;Tiny chapter&quot;, Eq. (2). {url}" in line
    assert "@misc{cnnfromscratch-9.8.7-eq-tiny-dx," in line and f"url      = {{{url}}}" in line
    assert "year" not in line  # no CHANGELOG.md, so no release date: the year is left out
    assert "\\label{eq-tiny-dx}\\tag{2}\n\\end{equation}" in line
    source = (out / "_modules" / "pkg" / "layer.html").read_text()
    assert 'id="backward"' in source
    assert re.search(r'<a class="reference internal cnn-eq-ref" href="\.\./\.\./index\.html#equation-eq-tiny-dx"', source)
    tests = (out / "_tests" / "test_equations.html").read_text()
    assert 'id="test_eq_tiny_dx"' in tests and 'href="../index.html#equation-eq-tiny-dx"' in tests
    api = (out / "api.html").read_text()
    assert re.search(r'<a class="cnn-eq-ref reference internal" href="index\.html#equation-eq-tiny-forward"', api)
    index = (out / "equations.html").read_text()
    assert index.index('id="index-eq-tiny-forward"') < index.index('id="index-eq-tiny-dx"')


def test_a_new_label_appears_without_being_listed_anywhere(tmp_path):
    chapter = "\n$$\nz = x + 1\n$$ (eq-tiny-shift)\n"
    code, log, out = sphinx(tiny_book(tmp_path, chapter=chapter, docstring=" Also eq-tiny-shift."))
    assert code == 0, log
    assert 'id="index-eq-tiny-shift"' in (out / "equations.html").read_text()
    page = (out / "index.html").read_text()
    assert 'data-label="eq-tiny-shift"' in page


@pytest.mark.parametrize("kind, change, message", [
    ("untested gradient", {"chapter": "\n$$\ndw = x\\, dy\n$$ (eq-tiny-dw)\n"},
     "the gradient equation eq-tiny-dw has no test"),
    ("docstring names a missing label", {"docstring": " See eq-tiny-nowhere."},
     "the docstring of pkg.layer.backward names eq-tiny-nowhere"),
    ("test named after a missing label", {"tests": "\ndef test_eq_tiny_dq():\n    pass\n"},
     "test_eq_tiny_dq is named after an equation"),
])
def test_a_broken_promise_fails_the_strict_build(tmp_path, kind, change, message):
    code, log, _ = sphinx(tiny_book(tmp_path, **change))
    assert code != 0, f"{kind}: the strict build passed"
    assert message in log, log
