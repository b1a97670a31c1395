"""Checks over the book's chapters, read as text: every chapter listed in _toc.yml that exists.

(a) every {eq} reference resolves to exactly one equation label defined in some chapter;
(b) every gradient equation has its test in tests/test_equations.py;
(c) no code cell defines a function or class the ``cnn`` package already has (one source of
    truth: chapters import package code, they never re-implement it);
(d) every literalinclude points at an existing file and, with :pyobject:, an existing object;
(e) every lesson has learning objectives, exercises with solutions and a figure;
(f) every lesson is self-contained and reproducible: its first code cell makes its own seeded
    generator, no cell uses NumPy's global random state, and no cell installs packages (the
    notebook exporter adds the install cell to downloads).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml
from cnnbook.provenance import GRADIENT_LABEL

ROOT = Path(__file__).resolve().parents[1]

# Pages of the toc that are not lessons: no objectives, exercises or figures required.
NOT_LESSONS = {
    "book/intro", "book/downloads", "book/changes", "book/api", "book/equations",
    "book/bibliography", "book/teachers", "book/glossary", "book/syllabus",
}

# A label that states a gradient ends with the gradient's name: -dx, -dw, -db, -dz, -dout,
# -dlogits, ..., -grad, -backward, but not words such as -dilated or -difference. The book's
# extension applies the same rule at build time and states it on the Equation index page
# (GRADIENT_LABEL, imported above).

FENCED = re.compile(
    r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[^}\s]+)\}[ \t]*(?P<arg>[^\n]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
DOLLAR_LABEL = re.compile(r"^\$\$[ \t]*\((?P<label>[^)\s]+)\)[ \t]*$", re.MULTILINE)
OPTION = re.compile(r"^[ \t]*:(?P<key>[\w-]+):[ \t]*(?P<value>.*)$")
EQ_REFERENCE = re.compile(r"\{eq\}`(?:[^`<]*<)?(?P<label>[^`<>]+)>?`")
FENCE_LINE = re.compile(r"^[ \t]{0,3}(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
INLINE_CODE = re.compile(r"(``+)(?!`).+?(?<!`)\1")


def toc_documents(node):
    if isinstance(node, dict):
        for key in ("root", "file"):
            if key in node:
                yield node[key]
        for value in node.values():
            yield from toc_documents(value)
    elif isinstance(node, list):
        for item in node:
            yield from toc_documents(item)


def chapters():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    docs = dict.fromkeys(toc_documents(toc))
    return {doc: (ROOT / f"{doc}.md").read_text(encoding="utf-8")
            for doc in docs if (ROOT / f"{doc}.md").exists()}


CHAPTERS = chapters()
LESSONS = [doc for doc in CHAPTERS if doc not in NOT_LESSONS]


def directives(text, name):
    """(argument, options, body) of every fenced directive ``{name}``, nested ones included."""
    for m in FENCED.finditer(text):
        if m["name"] != name:
            yield from directives(m["body"], name)
            continue
        lines = m["body"].splitlines()
        options = {}
        while lines and (option := OPTION.match(lines[0])):
            options[option["key"]] = option["value"].strip()
            lines.pop(0)
        yield m["arg"].strip(), options, "\n".join(lines)
        yield from directives(m["body"], name)


def equation_labels(text):
    labels = [m["label"] for m in DOLLAR_LABEL.finditer(text)]
    labels += [opts["label"] for _, opts, _ in directives(text, "math") if "label" in opts]
    return labels


def prose(text):
    """The chapter without code cells, code blocks and inline code, where MyST may be shown verbatim.

    Directive fences (``{exercise}``, ``{solution}``, ...) are kept with their content; any other
    fenced block is dropped up to its closing fence (same character, at least as long).
    """
    kept, directive_fences, code_fence = [], [], None

    def closes(m, fence):
        return not m["info"].strip() and m["fence"][0] == fence[0] and len(m["fence"]) >= len(fence)

    for line in text.splitlines():
        m = FENCE_LINE.match(line)
        if code_fence:
            if m and closes(m, code_fence):
                code_fence = None
        elif m and directive_fences and closes(m, directive_fences[-1]):
            directive_fences.pop()
        elif m and m["info"].strip().startswith("{") and not m["info"].strip().startswith("{code-cell}"):
            directive_fences.append(m["fence"])
            kept.append(line)
        elif m:
            code_fence = m["fence"]
        else:
            kept.append(line)
    return INLINE_CODE.sub("", "\n".join(kept))


def code_cells(text):
    for _, _, body in directives(text, "code-cell"):
        if body.startswith("---\n"):  # YAML block of cell options
            body = body.split("\n---\n", 1)[1] if "\n---\n" in body else ""
        # IPython magics and shell escapes are not Python; keep the line count for messages.
        yield re.sub(r"^[ \t]*[%!].*$", "pass", body, flags=re.MULTILINE)


def all_labels():
    defined = {}
    for doc, text in CHAPTERS.items():
        for label in equation_labels(text):
            defined.setdefault(label, []).append(doc)
    return defined


def test_the_toc_lists_existing_chapters():
    assert "book/notation" in CHAPTERS, "the checks below would silently check nothing"


def test_equation_labels_are_unique():
    duplicated = {label: docs for label, docs in all_labels().items() if len(docs) > 1}
    assert not duplicated, f"equation labels defined more than once: {duplicated}"


@pytest.mark.parametrize("doc", list(CHAPTERS))
def test_eq_references_resolve(doc):
    defined = all_labels()
    unknown = sorted({m["label"] for m in EQ_REFERENCE.finditer(prose(CHAPTERS[doc]))} - set(defined))
    assert not unknown, f"{doc}.md: {{eq}} references to undefined labels {unknown}"


def test_gradient_equations_have_tests():
    tree = ast.parse((ROOT / "tests" / "test_equations.py").read_text(encoding="utf-8"))
    tests = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    missing = sorted(
        f"{label} ({docs[0]}.md) needs test_{label.replace('-', '_')}"
        for label, docs in all_labels().items()
        if GRADIENT_LABEL.search(label) and f"test_{label.replace('-', '_')}" not in tests
    )
    assert not missing, "gradient equations without a test in tests/test_equations.py:\n" + "\n".join(missing)


def package_definitions():
    """Top-level function and class names of every module of the package: name -> module."""
    names = {}
    for path in sorted((ROOT / "cnn").glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.setdefault(node.name, f"cnn.{path.stem}")
    return names


def defined_names(code):
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.name
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Lambda):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            yield from (t.id for t in targets if isinstance(t, ast.Name))


@pytest.mark.parametrize("doc", list(CHAPTERS))
def test_code_cells_do_not_redefine_package_functions(doc):
    package = package_definitions()
    clashes = []
    for number, code in enumerate(code_cells(CHAPTERS[doc]), start=1):
        try:
            names = list(defined_names(code))
        except SyntaxError as error:
            pytest.fail(f"{doc}.md, code cell {number} is not valid Python: {error}")
        clashes += [f"cell {number} defines {name}, which {package[name]} has"
                    for name in names if name in package]
    assert not clashes, f"{doc}.md re-implements package code (import it instead): {clashes}"


def find_object(tree, dotted):
    """The node of a top-level function/class, or ``Class.method``, as Sphinx's :pyobject: reads it."""
    body = tree.body
    node = None
    for part in dotted.split("."):
        node = next((n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                     and n.name == part), None)
        if node is None:
            return None
        body = node.body
    return node


@pytest.mark.parametrize("doc", list(CHAPTERS))
def test_literalincludes_point_at_existing_objects(doc):
    problems = []
    for argument, options, _ in directives(CHAPTERS[doc], "literalinclude"):
        path = (ROOT / doc).parent / argument
        if not path.is_file():
            problems.append(f"{argument}: no such file")
        elif "pyobject" in options:
            tree = ast.parse(path.read_text(encoding="utf-8"))
            if find_object(tree, options["pyobject"]) is None:
                problems.append(f"{argument}: no object {options['pyobject']}")
    assert not problems, f"{doc}.md: broken literalinclude: {problems}"


@pytest.mark.parametrize("doc", LESSONS)
def test_lessons_have_objectives_exercises_and_a_figure(doc):
    text = CHAPTERS[doc]
    assert any(arg == "Learning objectives" for arg, _, _ in directives(text, "admonition")), \
        f"{doc}.md has no {{admonition}} Learning objectives"

    exercises = [opts.get("label") for _, opts, _ in directives(text, "exercise")]
    solved = {arg for arg, _, _ in directives(text, "solution")}
    assert 3 <= len(exercises) <= 6, f"{doc}.md has {len(exercises)} exercises, expected 3 to 6"
    assert None not in exercises, f"{doc}.md has an exercise without a :label:"
    unsolved = [label for label in exercises if label not in solved]
    assert not unsolved, f"{doc}.md: exercises without a {{solution}}: {unsolved}"

    assert any(re.search(r"\bplt\.|matplotlib", code) for code in code_cells(text)), \
        f"{doc}.md has no code cell that draws a figure with matplotlib"


LEGACY_RANDOM = re.compile(
    r"\bnp\.random\.(seed|rand|randn|randint|random|random_sample|normal|uniform|choice|shuffle|permutation)\("
)


@pytest.mark.parametrize("doc", LESSONS)
def test_lessons_are_self_contained_and_seeded(doc):
    cells = list(code_cells(CHAPTERS[doc]))
    assert cells, f"{doc}.md has no code cell"
    assert re.search(r"default_rng\(\s*\d", cells[0]), \
        f"{doc}.md: the first code cell must make its own generator, rng = np.random.default_rng(0)"
    for number, code in enumerate(cells, start=1):
        assert not LEGACY_RANDOM.search(code), \
            f"{doc}.md, code cell {number}: use the seeded rng, not NumPy's global random state"
        assert not re.search(r"^[ \t]*[%!]\s*pip\b|pip install", code, re.MULTILINE), \
            f"{doc}.md, code cell {number} installs packages"


def test_the_training_chapter_describes_the_network_of_cnn_digits():
    # Other chapters and the benchmark read the digits CNN and its recipe from cnn.digits; the
    # training chapter's prose must describe that same network (issue 14, erratum 3).
    from cnn import digits

    text = " ".join(prose(CHAPTERS["book/cnn"]).split())
    for phrase in [f"$F = {digits.FILTERS}$ filters", f"for {digits.EPOCHS} epochs of",
                   f"mini-batches of {digits.BATCH_SIZE} images",
                   f"hold out the last {digits.VALIDATION_SIZE} training images"]:
        assert phrase in text, f"book/cnn.md should say {phrase!r} (from cnn.digits)"


TRAINS = re.compile(r"\.fit\(|\btrain\(|optimi[sz]er?\.step\(")


@pytest.mark.parametrize("doc", list(CHAPTERS))
def test_chapters_that_train_end_by_naming_numpy_blas_and_kernel(doc):
    # A seeded float32 run is reproducible only on one BLAS kernel (issue 21): a reader
    # compares numbers like with like only when the chapter says which kernel produced them.
    cells = list(code_cells(CHAPTERS[doc]))
    if any(TRAINS.search(code) for code in cells):
        assert "print(environment())" in cells[-1], \
            f"{doc}.md trains a network but does not end by printing environment()"
