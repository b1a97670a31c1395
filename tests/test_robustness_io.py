"""Issue 27: images, DICOM files and the command line: bounded memory, no lost work, no
traceback.

The rules are those of CONTRIBUTING.md; these tests read and write files and run the
command line, some in a subprocess (pipes, a full device, a closed standard output).
"""

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cnn.data
from cnn import cli
from cnn.casestudy.cbis import read_dicom
from cnn.data import ImageWarning, load_image

pydicom = pytest.importorskip("pydicom")  # the CBIS-DDSM fixtures of test_cbis need it
from test_cbis import tree as cbis_tree  # noqa: E402, F401  (a fixture)
from test_cbis import write_csv, write_dicom  # noqa: E402

# --- Resources: image decoding is bounded --------------------------------------------------


def test_an_image_that_decodes_to_more_than_the_limit_is_refused_from_its_header(
        tmp_path, monkeypatch):
    # A 140 kB RGBA PNG of 6000 x 6000 peaked at 1.0 GB; here the same rule on a small
    # file: the size and mode of the header decide, before any pixel is decoded.
    Image.new("RGBA", (30, 20), (10, 20, 30, 255)).save(tmp_path / "rgba.png")
    Image.new("L", (30, 20), 7).save(tmp_path / "grey.png")
    monkeypatch.setattr(cnn.data, "MAX_DECODED_BYTES", 30 * 20 * 4 - 1)
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self) or None)
    with pytest.raises(ValueError, match=r"rgba.png has 30 x 20 pixels of mode 'RGBA', "
                                         r"which decode to 2,400 bytes, more than "
                                         r"MAX_DECODED_BYTES = 2,399"):
        load_image(tmp_path / "rgba.png", 8)
    assert decoded == []
    monkeypatch.undo()
    monkeypatch.setattr(cnn.data, "MAX_DECODED_BYTES", 30 * 20 * 4 - 1)
    with pytest.warns(ImageWarning):
        assert load_image(tmp_path / "grey.png", 8).shape == (1, 1, 8, 8)  # 1 byte/pixel


PEAK = """
import resource, sys
from cnn.data import load_image
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
load_image(sys.argv[1], 32)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


@pytest.mark.parametrize("mode, name", [("L", "big.png"), ("RGB", "big.jpg"),
                                        ("I;16", "big16.png")])
def test_a_large_image_is_read_within_the_memory_the_docs_promise(tmp_path, mode, name):
    # 6000 x 6000 8-bit grey used to peak at 482 MB, a JPEG at 586 MB (float copies of
    # the whole image); now the decoded image plus strips of about 4 MB.
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (6000, 6000), dtype=np.uint8)
    image = Image.fromarray(noise)
    if mode == "RGB":
        image = image.convert("RGB")
    elif mode == "I;16":
        image = Image.fromarray(noise.astype(np.uint16) * 257)
    image.save(tmp_path / name)
    out = subprocess.run([sys.executable, "-c", PEAK, str(tmp_path / name)],
                         capture_output=True, text=True, check=True)
    assert float(out.stdout) < 100, out.stdout


def test_shrinking_strip_by_strip_gives_the_pixels_of_the_whole_image(tmp_path,
                                                                      monkeypatch):
    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 256, (203, 157, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    whole = load_image(tmp_path / "a.png", 16)  # one strip, shrunk by 157 // 32 = 4
    monkeypatch.setattr(cnn.data, "_STRIP_PIXELS", 157 * 9)  # strips of 8 rows
    np.testing.assert_array_equal(load_image(tmp_path / "a.png", 16), whole)
    # The shrunk image is close to compositing and resizing the whole image at once.
    grey = (np.asarray(Image.fromarray(rgba, "RGBA").convert("L"), np.float32)
            * rgba[..., 3] / 255**2)
    direct = np.asarray(Image.fromarray(grey).resize((16, 16), Image.Resampling.BILINEAR))
    # (The last, partial block of a row is averaged alone: the edge differs most.)
    assert np.abs(whole[0, 0] - direct).max() < 0.05
    assert np.abs(whole[0, 0] - direct).mean() < 0.01


# --- Silent data issues -------------------------------------------------------------------

def test_16_bit_grey_transparency_is_composited_as_8_bit_is(tmp_path):
    pixels = np.array([[1000, 40000, 65535]], np.uint16)
    Image.fromarray(pixels).save(tmp_path / "g16.png", transparency=40000)
    Image.fromarray((pixels // 257).astype(np.uint8)).save(tmp_path / "g8.png",
                                                           transparency=40000 // 257)
    expected = [[1000 / 65535, 0.0, 1.0]]
    np.testing.assert_allclose(load_image(tmp_path / "g16.png", (1, 3))[0, 0], expected,
                               rtol=1e-6)
    np.testing.assert_allclose(load_image(tmp_path / "g8.png", (1, 3))[0, 0],
                               [[3 / 255, 0.0, 1.0]], rtol=1e-6)


@pytest.mark.parametrize("image, message", [
    (Image.new("L", (9, 9), 0), r"is blank: every pixel reads as 0"),
    (Image.new("RGB", (9, 9), (255, 255, 255)), r"is blank: every pixel reads as 1"),
    (Image.new("RGBA", (9, 9), (200, 10, 10, 0)), r"is fully transparent"),
    (Image.new("LA", (9, 9), (200, 0)), r"is fully transparent"),
])
def test_a_blank_or_fully_transparent_image_is_read_with_a_warning(tmp_path, image,
                                                                   message):
    image.save(tmp_path / "blank.png")
    with pytest.warns(ImageWarning, match=message):
        load_image(tmp_path / "blank.png", 4)
    noisy = np.random.default_rng(0).integers(0, 256, (9, 9), dtype=np.uint8)
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_image(tmp_path / "noisy.png", 4)


# --- Lost work, tracebacks and a hang at the command line -----------------------------------


ROOT = Path(__file__).resolve().parent.parent
TRAIN = [sys.executable, "-m", "cnn", "train", "--epochs", "1", "--n-per-class", "3"]
CLI_ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def run_shell(command, cwd):
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=CLI_ENV,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("redirect, status, message", [
    ("| head -1; exit ${PIPESTATUS[0]}", 141, ""),  # stopped training, saved nothing
    ("> /dev/full", 1, r"No space left on device; the model was saved to m.npz"),
    (">&-", 1, r"standard output is closed; the model was saved to m.npz"),
])
def test_train_saves_the_model_whatever_happens_to_standard_output(tmp_path, redirect,
                                                                   status, message):
    command = " ".join(TRAIN + ["--out", "m"]) + " " + redirect
    result = run_shell(command, tmp_path)
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "m.npz").is_file()
    if message:
        assert result.stderr.strip().splitlines()[-1].endswith(message.replace("\\", ""))


def test_predict_stops_quietly_when_the_reader_goes_away(tmp_path):
    images = " ".join([str(ROOT / "images" / "benign.png")] * 200)
    run_shell(" ".join(TRAIN + ["--out", "m"]), tmp_path)
    result = run_shell(f"{sys.executable} -m cnn predict {images} --model m.npz | head -1;"
                       " exit ${PIPESTATUS[0]}", tmp_path)
    assert result.returncode == 141
    assert "Traceback" not in result.stderr and "error" not in result.stderr


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("training started")
    monkeypatch.setattr(cli, "train_model", refuse)


def out_cases(tmp_path):
    (tmp_path / "folder.npz").mkdir()
    (tmp_path / "locked.npz").write_bytes(b"an old model")
    (tmp_path / "locked.npz").chmod(0o444)
    (tmp_path / "loop").symlink_to("loop")
    return [("folder", r"folder.npz is a folder, not a file"),
            ("locked", r"locked.npz exists and is write-protected: it is not replaced"),
            ("x" * 300, r"File name too long"),
            ("x" * 300 + "/m", r"File name too long"),
            ("loop/m", r"loop/m.npz: Too many levels of symbolic links")]


def test_a_bad_out_is_refused_in_one_line_before_training(tmp_path, monkeypatch, capsys,
                                                           no_training):
    monkeypatch.chdir(tmp_path)
    for out, message in out_cases(tmp_path):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["train", "--out", out])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert re.search(message, err), err
        assert "Traceback" not in err
    assert (tmp_path / "locked.npz").read_bytes() == b"an old model"


@pytest.mark.parametrize("flag", ["--cbis-train", "--cbis-test"])
def test_out_equal_to_an_input_file_is_refused(tmp_path, monkeypatch, capsys, no_training,
                                               flag):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "root").mkdir()
    names = {"--cbis-train": "train.csv", "--cbis-test": "test.csv", flag: "m.npz"}
    for name in names.values():
        (tmp_path / name).write_text("pathology,cropped image file path\n")
    status = cli.main(["train", "--data", "cbis", "--cbis-root", "root",
                       *[part for item in names.items() for part in item], "--out", "m"])
    assert status == 2
    assert capsys.readouterr().err == (f"cnn train: error: --out m.npz is the {flag} file "
                                       "m.npz: it would be overwritten\n")
    assert (tmp_path / "m.npz").read_text().startswith("pathology")


def test_predict_classifies_every_readable_image_past_unreadable_paths(tmp_path,
                                                                      monkeypatch,
                                                                      capsys):
    monkeypatch.chdir(tmp_path)
    from cnn.casestudy.networks import build_cnn
    build_cnn(rng=np.random.default_rng(0)).save("m.npz")
    (tmp_path / "loop").symlink_to("loop")
    good = str(ROOT / "images" / "benign.png")
    paths = ["loop", "y" * 300 + ".png", str(tmp_path), good, "missing.png", good]
    assert cli.main(["predict", *paths, "--model", "m.npz"]) == 1
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 1 + 2  # the header and the two readable images
    assert "Too many levels of symbolic links" in err and "File name too long" in err
    assert "not a regular file" in err and "no such file" in err
    assert "Traceback" not in err


def test_predict_warns_of_a_blank_image(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    from cnn.casestudy.networks import build_cnn
    build_cnn(rng=np.random.default_rng(0)).save("m.npz")
    Image.new("RGBA", (40, 40), (255, 255, 255, 0)).save("clear.png")
    assert cli.main(["predict", "clear.png", "--model", "m.npz"]) == 0
    assert "cnn predict: warning: image clear.png is fully transparent" in (
        capsys.readouterr().err)


def test_predict_original_without_a_model_refuses_instead_of_training(monkeypatch, capsys,
                                                                       no_training):
    # It used to train the full network first, about 50 minutes on 2 cores.
    assert cli.main(["predict", "x.png", "--arch", "original"]) == 2
    err = capsys.readouterr().err
    assert "--arch original needs --model: train one first" in err
    with pytest.raises(SystemExit):
        cli.main(["predict", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--arch original needs --model" in help_text and "about 10 s" in help_text


@pytest.mark.parametrize("argv", [
    ["train", "--n-per-class", "2", "--out", "m"],  # the parser's old minimum
])
def test_the_smallest_values_the_parser_allows_work_or_are_refused_by_it(
        tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert cli.main(["train", "--epochs", "1", "--n-per-class",
                     str(cli.MIN_N_PER_CLASS), "--out", "m"]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_an_unforeseen_file_system_or_data_error_is_one_line(tmp_path, monkeypatch, capsys):
    def fails(*args, **kwargs):
        raise ValueError("the split needs at least two groups")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "train_model", fails)
    assert cli.main(["train", "--out", "m"]) == 1
    assert capsys.readouterr().err == (
        "cnn train: error: the split needs at least two groups\n")


# --- CBIS-DDSM: DICOM size from the header, data that cannot be split -------------------------


def test_a_dicom_header_that_declares_too_many_pixels_is_refused_before_decoding(
        tmp_path, monkeypatch):
    # A 70 kB file peaked at 1.15 GB: the pixel data were decoded whatever the header said.
    write_dicom(tmp_path / "big.dcm", np.zeros((40, 30), np.uint16))
    monkeypatch.setattr("cnn.casestudy.cbis.MAX_PIXELS", 40 * 30 - 1)
    decoded = []
    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array",
                        property(lambda self: decoded.append(1)))
    with pytest.raises(ValueError, match=r"big.dcm declares 40 x 30 = 1,200 pixels, more "
                                         r"than MAX_PIXELS = 1,199"):
        read_dicom(tmp_path / "big.dcm")
    assert decoded == []


def test_a_multi_frame_dicom_header_is_refused_before_decoding(tmp_path, monkeypatch):
    write_dicom(tmp_path / "frames.dcm", np.zeros((4, 3), np.uint16))
    dataset = pydicom.dcmread(tmp_path / "frames.dcm")
    dataset.NumberOfFrames = 2
    dataset.Rows = 2
    dataset.save_as(tmp_path / "frames.dcm")
    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array",
                        property(lambda self: pytest.fail("pixel data decoded")))
    with pytest.raises(ValueError, match=r"has 2 frame\(s\) of 1 sample\(s\) per pixel"):
        read_dicom(tmp_path / "frames.dcm")


@pytest.mark.parametrize("keep", [
    [0, 1, 2, 3],  # every row relabelled to one patient
    [1],  # a one-row CSV
])
def test_cbis_training_data_that_cannot_be_split_is_one_line(  # noqa: F811
        cbis_tree, tmp_path, capsys, keep):
    root, rows = cbis_tree
    rows = [("P_00001", *row[1:]) for i, row in enumerate(rows) if i in keep]
    write_csv(root / "train.csv", rows)
    status = cli.main(["train", "--data", "cbis", "--cbis-root", str(root), "--cbis-train",
                       str(root / "train.csv"), "--cbis-test",
                       str(root / "mass_case_description_test_set.csv"), "--epochs", "1",
                       "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("cnn train: error: validation_size 0.2")
    assert "needs at least two samples of some class and two groups" in err
    assert not (tmp_path / "m.npz").exists()
