"""The command line: ``cnn train`` and ``cnn predict`` (exit codes, output format, bad images)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnn import cli
from cnn.casestudy import training
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


@pytest.mark.trains
def test_train_reports_every_epoch_and_saves_a_loadable_model(tmp_path, capsys):
    out = tmp_path / "m"  # numpy adds .npz, and the message says where the file went
    assert cli.main(["train", "--data", "synthetic", "--epochs", "2", "--n-per-class", "12",
                     "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "epoch 1/2" in stdout and "epoch 2/2" in stdout
    # Validation chooses the epoch; the test patches are used once, for the last line.
    assert "6 of the 27 training patches held out for validation" in stdout
    assert "keeping the weights of epoch" in stdout
    assert stdout.count("test accuracy") == 1
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


@pytest.mark.trains
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
    captured = capsys.readouterr()
    stdout = captured.out
    assert f"cnn train: warning: {csv} is used for training and for testing" in captured.err
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
    # The bar: samples done (54 of the 66 training patches, the rest held out for
    # validation), samples per second, time left, running loss.
    assert re.search(r"epoch 1/2: +\d+%\|[^|]*\| +\d+/54 \[\d\d:\d\d<\d\d:\d\d, +[\d.]+"
                     r"sample/s, loss \d+\.\d{4}\]", shown), shown
    # Then the epoch's line, in the place of the cleared bar.
    lines = [line for line in re.split(r"[\r\n]+", shown) if line.startswith("epoch 2/2: loss")]
    assert len(lines) == 1


def test_train_with_balanced_class_weights(tmp_path, capsys):
    out = tmp_path / "weighted.npz"
    assert cli.main(["train", "--epochs", "1", "--n-per-class", "12", "--class-weights",
                     "balanced", "--out", str(out)]) == 0
    assert out.is_file()
    with pytest.raises(SystemExit):
        cli.main(["train", "--class-weights", "inverse", "--out", str(out)])
    assert "invalid choice: 'inverse'" in capsys.readouterr().err


# --- failing politely: signals, pipes, odd names, arguments checked first ------------------

import signal  # noqa: E402
import string  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _as_in_a_terminal():
    # A shell that runs the suite in the background ignores SIGINT for it, and children
    # inherit that (Python then raises no KeyboardInterrupt); `cnn train` in a terminal
    # has the default disposition.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_training(out, epochs=1000):
    """A long `cnn train` in a child process, returned once it has printed its first epoch."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cnn", "train", "--epochs", str(epochs), "--n-per-class", "200",
         "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
        preexec_fn=_as_in_a_terminal)
    for line in process.stdout:
        if line.startswith("epoch 1/"):
            return process
    raise AssertionError(f"no epoch line: {process.communicate()}")


@pytest.mark.parametrize("signum, status, word", [(signal.SIGINT, 130, "interrupted"),
                                                  (signal.SIGTERM, 143, "terminated")])
def test_a_signal_during_training_gives_one_line_and_keeps_the_old_model(model_path, tmp_path,
                                                                         signum, status, word):
    out = tmp_path / "model.npz"
    out.write_bytes(model_path.read_bytes())
    process = start_training(out)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == status
    assert stderr == f"cnn train: {word}\n"
    assert out.read_bytes() == model_path.read_bytes()
    assert os.listdir(tmp_path) == ["model.npz"]


def test_a_closed_pipe_ends_predict_quietly(model_path):
    images = " ".join(IMAGES * 100)
    script = (f"{sys.executable} -m cnn predict {images} --model {model_path} | head -1; "
              "echo status ${PIPESTATUS[0]} >&2")
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=ENV,
                            timeout=120)
    assert result.stdout == HEADER + "\n"
    assert result.stderr.splitlines() == [
        "note: a model trained on synthetic patches; not a medical device", "status 141"]


def test_odd_file_names_are_escaped_and_every_image_classified(model_path, tmp_path):
    png = Path(IMAGES[0]).read_bytes()
    names = [b"tab\there.png", b"new\nline.png", b"latin1-\xe9.png", b"back\\slash.png",
             "caf\u00e9.png".encode(), b"esc\x1b[31m.png"]
    for name in names:
        (tmp_path / os.fsdecode(name)).write_bytes(png)
    (tmp_path / os.fsdecode(b"bad\n\xff.png")).write_bytes(b"not a png")
    argv = [os.fsencode(tmp_path / os.fsdecode(name)) for name in names[:3]]
    argv += [os.fsencode(tmp_path) + b"/bad\n\xff.png"]
    argv += [os.fsencode(tmp_path / os.fsdecode(name)) for name in names[3:]]
    result = subprocess.run([sys.executable, "-m", "cnn", "predict", *argv, "--model",
                             str(model_path)], capture_output=True, env=ENV, timeout=120)
    assert result.returncode == 1
    stdout = result.stdout.decode("utf-8")
    rows = parse(stdout)
    expected = ["tab\\there.png", "new\\nline.png", "latin1-\\xe9.png", "back\\\\slash.png",
                "caf\u00e9.png", "esc\\x1b[31m.png"]
    assert [Path(row[0]).name for row in rows] == expected
    stderr = result.stderr.decode("utf-8").splitlines()
    errors = [line for line in stderr if line.startswith("cnn predict: error: cannot read image ")]
    assert len(stderr) == 2 and len(errors) == 1
    assert errors[0].startswith(f"cnn predict: error: cannot read image {tmp_path}/bad\\n\\xff.png: ")
    assert "Traceback" not in result.stderr.decode()


def test_escape():
    assert cli.escape("a\tb\nc\\d\re\x7f\x00") == "a\\tb\\nc\\\\d\\re\\x7f\\x00"
    assert cli.escape(os.fsdecode(b"\xff\xfe")) == "\\xff\\xfe"
    assert cli.escape("\u2028\ud800\U000e0001") == "\\u2028\\ud800\\U000e0001"
    assert cli.escape("caf\u00e9 \u4e2d\U0001F600") == "caf\u00e9 \u4e2d\U0001F600"


@pytest.fixture
def fake_training(monkeypatch):
    """Replace training by a call record; the 'trained' model is the untrained default."""
    calls = []

    def train_model(epochs, n_per_class, seed, verbose, data, groups=None,
                    class_weights="none", arch="small"):
        calls.append((epochs, n_per_class, seed))
        return build_cnn(rng=np.random.default_rng(seed)), 0.5

    monkeypatch.setattr(cli, "train_model", train_model)
    return calls


def integer_text(low, high):
    return st.one_of(st.integers(low - 3, high + 3).map(str), st.sampled_from(
        ["", " ", "1.5", "1e3", "0x10", "ten", "-0", "+7", "1_0", "\u0663"]))


def parsed_int(text, low, high):
    try:
        value = int(text)
    except ValueError:
        return None
    return value if low <= value <= high else None


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(epochs=integer_text(1, cli.MAX_EPOCHS), n_per_class=integer_text(cli.MIN_N_PER_CLASS, cli.MAX_N_PER_CLASS),
       seed=integer_text(0, 10), out=st.sampled_from(["m.npz", "m", "", " ", "sub/", "."]))
def test_train_arguments_are_checked_before_any_work(fake_training, tmp_path, monkeypatch,
                                                    capsys, epochs, n_per_class, seed, out):
    monkeypatch.chdir(tmp_path)
    fake_training.clear()
    argv = ["train", "--epochs", epochs, "--n-per-class", n_per_class, "--seed", seed,
            "--out", out]
    expected = (parsed_int(epochs, 1, cli.MAX_EPOCHS),
                parsed_int(n_per_class, cli.MIN_N_PER_CLASS, cli.MAX_N_PER_CLASS), parsed_int(seed, 0, 2**63))
    valid = None not in expected and out in ("m.npz", "m")
    if valid:
        assert cli.main(argv) == 0
        assert fake_training == [expected]
        assert (tmp_path / "m.npz").is_file()
    else:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2
        assert fake_training == []
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert valid or captured.err.startswith("usage: cnn train")


@pytest.mark.parametrize("out", ["no/such/folder/m.npz", "file.txt/m.npz"])
def test_an_unwritable_out_is_found_before_training(fake_training, tmp_path, monkeypatch, capsys,
                                                   out):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("a file, not a folder")
    assert cli.main(["train", "--out", out]) == 1
    assert fake_training == []
    err = capsys.readouterr().err
    assert err.startswith(f"cnn train: error: cannot save the model to {out}: folder ")
    assert sorted(os.listdir(tmp_path)) == ["file.txt"]


def test_non_finite_weights_are_not_saved(monkeypatch, tmp_path, capsys):
    def diverged(*args, **kwargs):
        model = build_cnn(rng=np.random.default_rng(0))
        model.parameters()["0.w"][0, 0, 0, 0] = np.nan
        return model, 0.0

    monkeypatch.setattr(cli, "train_model", diverged)
    assert cli.main(["train", "--out", str(tmp_path / "m.npz")]) == 1
    assert capsys.readouterr().err == (f"cnn train: error: cannot save the model to {tmp_path}/"
                                       "m.npz: parameter '0.w' contains NaN or infinity\n")
    assert os.listdir(tmp_path) == []


def test_the_seed_reaches_the_initial_weights(monkeypatch):
    seen = []
    monkeypatch.setattr(training, "train", lambda model, data, **kwargs: seen.append(model)
                        or {"val_acc": [0.0]})
    for seed in (3, 3, 4):
        training.train_model(epochs=1, n_per_class=4, seed=seed)
    first, again, other = (model.parameters() for model in seen)
    reference = build_cnn(rng=np.random.default_rng(3)).parameters()
    for key in reference:
        np.testing.assert_array_equal(first[key], reference[key])
        np.testing.assert_array_equal(again[key], reference[key])
    assert not np.array_equal(first["0.w"], other["0.w"])


def test_cbis_root_must_be_a_folder(tmp_path, capsys):
    assert cli.main(["train", "--data", "cbis", "--cbis-root", str(tmp_path / "none"),
                     "--cbis-train", "a.csv", "--cbis-test", "b.csv",
                     "--out", str(tmp_path / "m.npz")]) == 2
    assert f"cnn train: error: --cbis-root {tmp_path / 'none'} is not a folder" in (
        capsys.readouterr().err)


NAME_CHARS = st.characters(blacklist_categories=["Cs"], blacklist_characters="/\0")


@st.composite
def file_names(draw):
    """Names a Linux folder can hold: text with control characters, or bytes that are not UTF-8."""
    if draw(st.booleans()):
        name = draw(st.text(NAME_CHARS, min_size=1, max_size=12))
    else:
        raw = draw(st.binary(min_size=1, max_size=12)).replace(b"/", b"_").replace(b"\0", b"_")
        name = os.fsdecode(raw)
    return name if name not in (".", "..") else name + "_"


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(st.tuples(file_names(), st.booleans()), min_size=1, max_size=4,
                        unique_by=lambda entry: os.fsencode(entry[0])))
def test_predict_on_generated_names_classifies_every_good_image(model_path, tmp_path, capsys,
                                                               entries):
    folder = tmp_path / f"run{len(os.listdir(tmp_path))}"
    folder.mkdir()
    png = Path(IMAGES[1]).read_bytes()
    paths = []
    for name, good in entries:
        (folder / name).write_bytes(png if good else b"\x89PNG\r\n\x1a\n broken")
        paths.append(str(folder / name))
    status = cli.main(["predict", *paths, "--model", str(model_path)])
    captured = capsys.readouterr()
    rows = parse(captured.out)
    good = [path for path, (_, ok) in zip(paths, entries) if ok]
    assert [row[0] for row in rows] == [cli.escape(path) for path in good]
    errors = [line for line in captured.err.splitlines() if line.startswith("cnn predict:")]
    assert len(errors) == len(paths) - len(good)
    assert status == (0 if len(good) == len(paths) else 1)
    assert all(cell.isprintable() for line in captured.out.splitlines() for cell in line.split("\t"))
    assert all(line.isprintable() for line in errors)
