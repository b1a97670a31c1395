"""The command line: ``cnn train`` and ``cnn predict`` (exit codes, output format, bad images)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnn import cli
from cnn.casestudy.networks import build_cnn, build_original
from cnn.casestudy.synthetic import CLASS_NAMES

try:  # the CBIS-DDSM fixture tree (CSV and DICOM files) of test_cbis, which needs pydicom
    from test_cbis import case_paths
    from test_cbis import tree as cbis_tree  # noqa: F401  (a fixture)
except pytest.skip.Exception:
    @pytest.fixture
    def cbis_tree():
        pytest.skip("pydicom is not installed")

ROOT = Path(__file__).resolve().parent.parent
IMAGES = [str(ROOT / "images" / f"{name}.png") for name in CLASS_NAMES]
HEADER = "\t".join(["image", *CLASS_NAMES, "prediction"])


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A small model trained by ``cnn train`` (one epoch on 30 patches per class)."""
    out = tmp_path_factory.mktemp("model") / "model.npz"
    assert cli.main(["train", "--epochs", "1", "--n-per-class", "30", "--out", str(out)]) == 0
    return out


def parse(stdout):
    lines = stdout.splitlines()
    assert lines[0] == HEADER
    rows = [line.split("\t") for line in lines[1:]]
    for row in rows:
        assert len(row) == len(CLASS_NAMES) + 2
        proba = np.array(row[1:-1], dtype=float)
        assert proba.sum() == pytest.approx(1.0, abs=2e-3)
        assert row[-1] == CLASS_NAMES[int(proba.argmax())]
    return rows


def test_train_reports_every_epoch_and_saves_a_loadable_model(tmp_path, capsys):
    out = tmp_path / "m"  # numpy adds .npz, and the message says where the file went
    assert cli.main(["train", "--data", "synthetic", "--epochs", "2", "--n-per-class", "12",
                     "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "epoch 1/2" in stdout and "epoch 2/2" in stdout
    assert f"saved to {out}.npz" in stdout
    build_cnn(rng=np.random.default_rng(1)).load(f"{out}.npz")


def test_predict_prints_one_line_per_image(model_path, capsys):
    assert cli.main(["predict", *IMAGES, "--model", str(model_path)]) == 0
    captured = capsys.readouterr()
    assert [row[0] for row in parse(captured.out)] == IMAGES
    assert "synthetic" in captured.err and "not a medical device" in captured.err


def test_bad_images_are_reported_and_the_others_still_classified(model_path, tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    missing = tmp_path / "missing.png"
    args = ["predict", IMAGES[0], str(missing), str(broken), IMAGES[2], "--model", str(model_path)]
    assert cli.main(args) == 1
    captured = capsys.readouterr()
    assert [row[0] for row in parse(captured.out)] == [IMAGES[0], IMAGES[2]]
    errors = captured.err.splitlines()
    assert any(str(missing) in line and "no such file" in line for line in errors)
    assert any(str(broken) in line and line.startswith("cnn predict: error:") for line in errors)


def test_a_model_of_another_architecture_is_rejected(tmp_path, capsys):
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, **{"0.w": np.zeros((4, 1, 3, 3), np.float32)})
    assert cli.main(["predict", IMAGES[0], "--model", str(wrong)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"cannot load model {wrong}" in captured.err


def test_missing_model_file(tmp_path, capsys):
    assert cli.main(["predict", IMAGES[0], "--model", str(tmp_path / "none.npz")]) == 1
    assert "cannot load model" in capsys.readouterr().err


def test_predict_without_model_trains_the_default_and_says_so(model_path, monkeypatch, capsys):
    calls = []

    def fake_train_model(arch):
        calls.append(arch == "small")
        model = build_cnn(rng=np.random.default_rng(0))
        model.load(model_path)
        return model, 0.0

    monkeypatch.setattr(cli, "train_model", fake_train_model)
    assert cli.main(["predict", IMAGES[1]]) == 0
    captured = capsys.readouterr()
    assert calls == [True]
    assert "no --model given; training the default model (seed 0" in captured.err
    assert len(parse(captured.out)) == 1


def test_training_is_reproducible(tmp_path, capsys):
    for name in ("a", "b"):
        cli.main(["train", "--epochs", "1", "--n-per-class", "10", "--seed", "3",
                  "--out", str(tmp_path / name)])
    logs = capsys.readouterr().out
    first, second = (np.load(tmp_path / f"{name}.npz") for name in ("a", "b"))
    for key in first.files:
        np.testing.assert_array_equal(first[key], second[key])
    epoch_lines = [line for line in logs.splitlines() if line.startswith("epoch")]
    assert epoch_lines[0] == epoch_lines[1]


def test_unwritable_output_fails_cleanly(tmp_path, capsys):
    out = tmp_path / "no" / "such" / "folder" / "model.npz"
    assert cli.main(["train", "--epochs", "1", "--n-per-class", "4", "--out", str(out)]) == 1
    assert "cannot save the model" in capsys.readouterr().err


@pytest.mark.parametrize("args", [
    [],
    ["train", "--epochs", "0", "--out", "m.npz"],
    ["train", "--n-per-class", "1", "--out", "m.npz"],
    ["train", "--epochs", "two", "--out", "m.npz"],
    ["train", "--data", "imagenet", "--out", "m.npz"],
    ["train"],
    ["predict"],
])
def test_usage_errors_exit_with_2(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    assert exit_info.value.code == 2
    assert "usage: cnn" in capsys.readouterr().err


def test_python_dash_m_cnn(model_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "cnn", "predict", IMAGES[0], "--model",
                             str(model_path)], capture_output=True, text=True, env=env,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert len(parse(result.stdout)) == 1


def test_train_on_a_cbis_ddsm_fixture(cbis_tree, tmp_path, capsys):
    root, _ = cbis_tree
    csv = str(root / "mass_case_description_test_set.csv")
    out = tmp_path / "real.npz"
    assert cli.main(["train", "--data", "cbis", "--cbis-root", str(root), "--cbis-train", csv,
                     "--cbis-test", csv, "--crop", "roi", "--epochs", "2", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    counts = "(benign 1, benign_without_callback 1, malignant 2)"
    assert f"CBIS-DDSM training patches: 4 {counts}" in stdout
    assert "epoch 2/2" in stdout and out.is_file()


def test_cbis_errors_name_the_row_and_exit_with_1(cbis_tree, tmp_path, capsys):
    root, _ = cbis_tree
    (root / case_paths("P_00003")[1]).unlink()
    csv = str(root / "mass_case_description_test_set.csv")
    assert cli.main(["train", "--data", "cbis", "--cbis-root", str(root), "--cbis-train", csv,
                     "--cbis-test", csv, "--out", str(tmp_path / "m.npz")]) == 1
    assert "row 3 (patient P_00003)" in capsys.readouterr().err
    assert not (tmp_path / "m.npz").exists()


def test_cbis_needs_its_folder_and_csv_files(capsys):
    assert cli.main(["train", "--data", "cbis", "--cbis-train", "a.csv", "--out", "m.npz"]) == 2
    assert "--data cbis needs --cbis-root, --cbis-test" in capsys.readouterr().err


def test_train_and_predict_the_original_network_at_full_size(tmp_path, capsys):
    out = tmp_path / "original.npz"
    assert cli.main(["train", "--arch", "original", "--epochs", "1", "--n-per-class", "3",
                     "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "patches of 50 x 50" in stdout and "epoch 1/1" in stdout
    # Not a terminal: the progress bar stays quiet, only whole lines are printed.
    assert "\r" not in stdout and "sample/s" not in stdout
    model = build_original(rng=np.random.default_rng(1))
    model.load(out)
    assert model.parameters()["4.w"].shape == (128 * 24 * 24, 512)
    assert cli.main(["predict", IMAGES[0], "--arch", "original", "--model", str(out)]) == 0
    assert len(parse(capsys.readouterr().out)) == 1
    # The small network cannot take these weights, and says so.
    assert cli.main(["predict", IMAGES[0], "--model", str(out)]) == 1
    assert "cannot load model" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_progress_bar_on_a_terminal(tmp_path):
    import fcntl
    import pty
    import re
    import struct
    import termios

    leader, follower = pty.openpty()
    # A terminal 24 x 120 (a new pseudo-terminal has 0 columns, and tqdm draws nothing).
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    # tqdm reads TQDM_* defaults when imported: redraw at every batch, however fast.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_MININTERVAL": "0"}
    process = subprocess.Popen(
        [sys.executable, "-m", "cnn", "train", "--epochs", "2", "--n-per-class", "30",
         "--out", str(tmp_path / "m.npz")], stdout=follower, stderr=subprocess.PIPE, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.wait(timeout=120) == 0, process.stderr.read()
    os.close(leader)
    shown = b"".join(chunks).decode()
    # The bar: samples done, samples per second, time left, running loss.
    assert re.search(r"epoch 1/2: +\d+%\|[^|]*\| +\d+/66 \[\d\d:\d\d<\d\d:\d\d, +[\d.]+"
                     r"sample/s, loss \d+\.\d{4}\]", shown), shown
    # Then the epoch's line, in the place of the cleared bar.
    lines = [line for line in re.split(r"[\r\n]+", shown) if line.startswith("epoch 2/2: loss")]
    assert len(lines) == 1
