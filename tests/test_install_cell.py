"""The notebooks' install cell, without network: it stops and says what to run.

A kernel in which ``import cnn`` fails and pip cannot reach the repository (git may
use no network protocol) runs the install cell of a downloaded chapter notebook: the
cell must stop the notebook with a message naming the pip command, so that the next
cell does not fail with ``ModuleNotFoundError: No module named 'cnn'``.
"""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from _site import ROOT


def test_without_network_the_install_cell_stops_and_says_what_to_run(tmp_path, monkeypatch):
    nb = nbformat.read(ROOT / "notebooks" / "dense.ipynb", as_version=4)
    install = nb.cells[next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")]
    assert "%pip install" in install.source
    # A package named cnn that cannot be imported stands for one that is missing.
    (tmp_path / "cnn").mkdir()
    (tmp_path / "cnn" / "__init__.py").write_text("raise ImportError('not here')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv("GIT_ALLOW_PROTOCOL", "file")  # no https: as if offline
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    after = nbformat.v4.new_code_cell("import cnn.dense")
    run = nbformat.v4.new_notebook(cells=[install, after])
    client = NotebookClient(run, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    with pytest.raises(CellExecutionError) as stopped:
        client.execute()
    assert stopped.value.ename == "SystemExit"
    text = str(stopped.value)
    assert "installing it failed (no network?)" in text
    assert 'pip install "cnn-from-scratch @ git+https://github.com/' in text
    assert "ModuleNotFoundError" not in text
    assert "outputs" not in run.cells[1] or not run.cells[1].outputs, "it went on"
