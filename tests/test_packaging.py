"""The package builds as PyPI would receive it: ``python -m build``, ``twine check``.

The sdist is built from the repository and the wheel from the sdist (what
``python -m build`` does), so a file missing from the sdist shows up here. Built without
build isolation (the test extra installs setuptools), so that the test runs offline.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile

from _site import ROOT


def run(*args, cwd):
    result = subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_the_distributions_build_and_pass_twine_check(tmp_path):
    run("build", "--no-isolation", "--outdir", str(tmp_path), str(ROOT), cwd=tmp_path)
    wheels, sdists = list(tmp_path.glob("*.whl")), list(tmp_path.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    checked = run("twine", "check", "--strict", *map(str, wheels + sdists), cwd=tmp_path)
    assert checked.count("PASSED") == 2
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = wheel.namelist()
    import cnn

    assert f"cnn_from_scratch-{cnn.__version__}" in wheels[0].name
    for module in ("cnn/__init__.py", "cnn/exercises/sandbox.py", "cnn/fast/conv.py",
                   "cnn/casestudy/__init__.py"):
        assert module in names
    assert not [n for n in names if n.startswith(("tests/", "book/"))]
