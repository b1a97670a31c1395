"""Run the package's tests on every supported Python and with the lowest declared
dependency versions (``make test-matrix``); the runs are recorded in
``book/tested_with.json``.

Each run gets a virtual environment of its own in ``_build/matrix/<run>/``, made and
filled by uv (installed into the project's ``.venv`` by the make target): the project
with the extras that ``make setup`` installs, resolved either to the newest releases
(``highest``) or, with ``--resolution lowest-direct``, to the lowest version that
``pyproject.toml`` allows for every dependency the project names itself. The tests are
``pytest -m "not book"``. uv never downloads an interpreter here: each Python must be
installed (pyenv, the distribution or actions/setup-python).

The record keeps, per run, the interpreter's and the direct dependencies' versions and
pytest's counts; the intro page's "Tested with" paragraph is written from the runs that
passed, under ``MARKER`` (the tests check that it matches the record).
Not part of ``make test`` or CI's test job: the five runs take about half an hour.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "book" / "tested_with.json"
INTRO = ROOT / "book" / "intro.md"
LOCK = ROOT / "_build" / "matrix" / "record.lock"
#: The MyST comment above the intro's "Tested with" paragraph (write_record writes it).
MARKER = "% Written by `make test-matrix` from book/tested_with.json: do not edit."
EXTRAS = "test,book,dicom,bench"
#: Distributions whose installed version each run records (the package's own
#: dependencies, and the heaviest ones of the tests).
RECORDED = ("numpy", "pillow", "tqdm", "scikit-learn", "matplotlib", "jupyter-book",
            "pytest", "hypothesis")
VERSIONS = """import json, sys
from importlib.metadata import version, PackageNotFoundError
def v(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return None
print(json.dumps({"python": sys.version.split()[0],
                  "packages": {n: v(n) for n in sys.argv[1:]}}))
"""


@dataclass(frozen=True)
class Run:
    python: str
    resolution: str = "highest"

    @property
    def name(self) -> str:
        suffix = "" if self.resolution == "highest" else f"-{self.resolution}"
        return f"py{self.python}{suffix}"


PYTHONS = ("3.10", "3.11", "3.12", "3.13")
RUNS = tuple(Run(p) for p in PYTHONS) + (Run(PYTHONS[0], "lowest-direct"),)


def uv() -> str:
    here = str(Path(sys.executable).parent)
    found = shutil.which("uv", path=here) or shutil.which("uv")
    if found is None:
        sys.exit("tested_with: uv is not installed; run `make test-matrix`, which "
                 "installs it into .venv, or `pip install uv`")
    return found


def interpreter(version: str) -> str:
    """The interpreter of ``version`` ("3.10"): pyenv's newest patch release when pyenv
    has one (its shims answer only for the selected version), else uv's own search."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    releases = {int(p.parts[-3].rpartition(".")[2]): p
                for p in (root / "versions").glob(f"{version}.*/bin/python{version}")
                if p.parts[-3].rpartition(".")[2].isdigit()}
    found = [releases[k] for k in sorted(releases)]
    return str(found[-1]) if found else version


def pytest_counts(junit: Path) -> dict[str, int]:
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    kinds = ("tests", "failures", "errors", "skipped")
    counts = {k: int(suite.get(k, 0)) for k in kinds}
    counts["passed"] = counts["tests"] - sum(counts[k] for k in kinds[1:])
    return counts


def execute(run: Run, folder: Path, pytest_args: list[str]) -> dict:
    """Make the run's environment, install, test; the record of the run."""
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "VIRTUAL_ENV": str(folder)}
    env.pop("PYTHONPATH", None)
    subprocess.run([uv(), "venv", "--quiet", "--clear", "--python",
                    interpreter(run.python), str(folder)], check=True, env=env)
    python = folder / "bin" / "python"
    subprocess.run([uv(), "pip", "install", "--quiet", "--python", str(python),
                    "--resolution", run.resolution, "-e", f".[{EXTRAS}]",
                    "-e", "book/_ext"], check=True, cwd=ROOT, env=env)
    found = json.loads(subprocess.run(
        [str(python), "-c", VERSIONS, *RECORDED], check=True, capture_output=True,
        text=True).stdout)
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        done = subprocess.run(
            [str(python), "-m", "pytest", "-m", "not book", "-q", "-p",
             "no:cacheprovider", f"--junitxml={junit}", *pytest_args],
            cwd=ROOT, env=env, check=False)
        counts = pytest_counts(junit) if junit.exists() else {}
    return {"run": run.name, "python": found["python"], "resolution": run.resolution,
            "passed": done.returncode == 0, "tests": counts,
            "packages": found["packages"],
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")}


def read_record(path: Path = RECORD) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["runs"] if path.exists() else []


def replace_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def write_record(runs: list[dict], path: Path = RECORD, intro: Path = INTRO) -> None:
    """Replace the runs of the same name, keep the others, and rewrite the intro's
    paragraph; each file replaced atomically."""
    names = {r["run"] for r in runs}
    order = [r.name for r in RUNS]
    # Two `make test-matrix RUNS=...` at once must not lose each other's runs.
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        kept = [r for r in read_record(path) if r["run"] not in names]
        merged = sorted(kept + runs, key=lambda r: (
            order.index(r["run"]) if r["run"] in order else len(order), r["run"]))
        text = json.dumps({"command": "make test-matrix", "runs": merged}, indent=2)
        replace_atomically(path, text + "\n")
        replace_atomically(intro, intro_with(intro.read_text(encoding="utf-8"),
                                             tested_with(merged)))


def intro_with(text: str, sentence: str) -> str:
    """The intro page with ``sentence`` as the paragraph under ``MARKER``."""
    lines = text.split("\n")
    if MARKER not in lines:
        raise ValueError(f"book/intro.md has no line {MARKER!r} to write under")
    start = lines.index(MARKER) + 1
    end = start
    while end < len(lines) and lines[end].strip():
        end += 1
    wrapped = textwrap.wrap(sentence, 99, break_long_words=False,
                            break_on_hyphens=False)
    return "\n".join(lines[:start] + wrapped + lines[end:])


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def tested_with(runs: list[dict]) -> str:
    """The intro page's sentence, from the runs that passed (Markdown)."""
    passed = [r for r in runs if r["passed"]]
    newest = [r for r in passed if r["resolution"] == "highest"]
    lowest = [r for r in passed if r["resolution"] == "lowest-direct"]
    if not newest:
        return "*Tested with*: no recorded run of the test matrix has passed."
    numpys = sorted({r["packages"]["numpy"] for r in newest})
    text = (f"**Tested with** Python {_and([r['python'] for r in newest])} and NumPy "
            f"{_and(numpys)}")
    if lowest:
        low = lowest[0]
        pins = ", ".join(f"{n} {low['packages'][n]}"
                         for n in ("numpy", "pillow", "tqdm"))
        text += (f"; and on Python {low['python']} with the lowest versions that the "
                 f"package declares ({pins})")
    dates = sorted(r["date"] for r in passed)
    return (text + ": the package's tests (`pytest -m \"not book\"`, "
            f"`make test-matrix`), {dates[-1]}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", choices=[r.name for r in RUNS],
                        help="only these runs (default: all)")
    parser.add_argument("--no-record", action="store_true",
                        help="do not update book/tested_with.json (CI)")
    parser.add_argument("pytest_args", nargs="*", help="passed on to pytest")
    args = parser.parse_args(argv)
    runs = [r for r in RUNS if not args.runs or r.name in args.runs]
    results = []
    for run in runs:
        print(f"== {run.name}: Python {run.python}, resolution {run.resolution}",
              flush=True)
        result = execute(run, ROOT / "_build" / "matrix" / run.name, args.pytest_args)
        print(f"== {run.name}: {'passed' if result['passed'] else 'FAILED'} "
              f"{result['tests']}", flush=True)
        results.append(result)
    # Written once at the end: the runs test the record and the intro they would change.
    if not args.no_record:
        write_record(results)
    failed = [r["run"] for r in results if not r["passed"]]
    if failed:
        print(f"tested_with: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
