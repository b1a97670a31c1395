"""Issue 27: no wrong answer without an error, no half-trained model.

One test (or one parametrised family of tests) per rule of CONTRIBUTING.md, section
"Errors and failures". Each case of the issue is here, with the other members of its
family that the rule covers.
"""

import numpy as np
import pytest

from cnn.activations import relu_backward, relu_forward
from cnn.checks import check_array, check_dtype, check_positive
from cnn.dense import dense_backward, dense_forward
from cnn.fast.pool import maxpool2d_backward_fast
from cnn.init import he_normal, xavier_normal
from cnn.layers import (
    AvgPool2D,
    Conv2D,
    ConvTranspose2D,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    ReLU,
    Sigmoid,
    Tanh,
)
from cnn.model import Sequential
from cnn.norm import BatchNorm, batchnorm_forward, batchnorm_inference
from cnn.optim import SGD, Adam
from cnn.pool import avgpool2d_forward, maxpool2d_forward
from cnn.regularization import Dropout

RNG = np.random.default_rng(0)
X4 = RNG.standard_normal((4, 2, 4, 4))


def mlp(*layers, dtype=np.float64):
    rng = np.random.default_rng(1)
    return Sequential([Dense(3, 4, rng=rng, dtype=dtype), *layers,
                       Dense(4, 3, rng=rng, dtype=dtype)])


def snapshot(model):
    return {key: value.copy() for key, value in {**model.parameters(),
                                                 **model.buffers()}.items()}


def assert_unchanged(model, before):
    after = {**model.parameters(), **model.buffers()}
    assert after.keys() == before.keys()
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


# --- Silent wrong gradients -------------------------------------------------------------

@pytest.mark.parametrize("make", [ReLU, Sigmoid, Tanh, Flatten, lambda: Dense(4, 4),
                                  lambda: BatchNorm(4), lambda: Dropout(0.5)])
def test_a_layer_object_used_twice_is_refused_at_construction(make):
    # One ReLU() twice in a Sequential gave gradients with relative error 0.74: the layer
    # keeps the cache of its second use only.
    layer = make()
    with pytest.raises(ValueError, match=r"layers 1 and 3 are the same object"):
        Sequential([Dense(4, 4), layer, Dense(4, 4), layer])


def test_backward_after_a_forward_that_raised_is_refused():
    # The first layer ran on the new batch, the second raised: backward used to combine
    # the first's new cache with the others' caches of the previous batch.
    model = mlp(ReLU())
    x = RNG.standard_normal((5, 3))
    model.forward(x)
    with pytest.raises(ValueError):
        model.forward(RNG.standard_normal((5, 7)))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        model.backward(np.ones((5, 3)))
    # The failure is local to that batch: a new forward pass works again.
    model.forward(x)
    assert model.backward(np.ones((5, 3))).shape == x.shape


@pytest.mark.parametrize("call", [
    lambda: relu_forward(np.ones(3), out=np.empty((2, 3))),  # broadcasts silently
    lambda: relu_forward(np.ones(3), out=np.empty(3, np.float32)),  # casts silently
    lambda: relu_backward(np.ones(3), relu_forward(np.ones(3))[1], out=np.empty((2, 3))),
    lambda: dense_backward(np.ones((2, 3)), dense_forward(np.ones((2, 4)), np.ones((4, 3)),
                                                         np.ones(3))[1],
                           out=(None, np.empty((5, 3)), None)),
    lambda: maxpool2d_backward_fast(np.ones((4, 2, 2, 2)), maxpool2d_forward(X4, 2)[1],
                                    out=np.empty((4, 2, 4, 5))),
])
def test_out_arrays_of_the_wrong_shape_or_dtype_are_refused(call):
    with pytest.raises((TypeError, ValueError), match=r"out"):
        call()


def test_a_read_only_out_array_is_refused():
    out = np.empty(3)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        relu_forward(np.ones(3), out=out)


@pytest.mark.parametrize("eps", [np.inf, -np.inf, np.nan, 0.0, -1e-5])
def test_batch_norm_eps_must_be_finite_and_positive(eps):
    # eps=inf made every output beta, without an error.
    gamma, beta = np.ones(2), np.zeros(2)
    for call in (lambda: batchnorm_forward(X4, gamma, beta, eps=eps),
                 lambda: batchnorm_inference(X4, gamma, beta, np.zeros(2), np.ones(2),
                                             eps=eps),
                 lambda: BatchNorm(2, eps=eps)):
        with pytest.raises(ValueError, match="eps must be a finite number > 0"):
            call()
    with pytest.raises(TypeError):
        check_positive(True, "eps")


@pytest.mark.parametrize("dtype", [np.float16, np.longdouble, np.int32, np.complex128])
def test_only_float32_and_float64_are_accepted_everywhere(dtype):
    # float16 used to be accepted: avgpool2d_forward of 60000 returned inf.
    x = np.full((1, 1, 2, 2), 6, dtype=dtype)
    if np.dtype(dtype) == np.longdouble and np.finfo(np.longdouble).bits == 64:
        pytest.skip("long double is float64 here")
    for call in (lambda: check_array(x, "x"), lambda: avgpool2d_forward(x, 2),
                 lambda: check_dtype(dtype)):
        with pytest.raises(TypeError, match=r"float32 or float64"):
            call()
    for make in (lambda: Dense(2, 2, dtype=dtype), lambda: Conv2D(1, 1, 2, dtype=dtype),
                 lambda: ConvTranspose2D(1, 1, 2, dtype=dtype),
                 lambda: BatchNorm(2, dtype=dtype),
                 lambda: he_normal((2, 2), 2, dtype=dtype),
                 lambda: xavier_normal((2, 2), 2, 2, dtype=dtype)):
        with pytest.raises(TypeError, match=r"float32 or float64"):
            make()


def test_layers_without_parameters_refuse_float16_in_forward():
    x = np.ones((1, 1, 2, 2), np.float16)
    for layer in (ReLU(), Sigmoid(), Tanh(), Flatten(), MaxPool2D(2), AvgPool2D(2),
                  GlobalAvgPool2D(), Dropout(0.5)):
        with pytest.raises(TypeError, match=r"float32 or float64"):
            layer.forward(x)


# --- Half-trained models ----------------------------------------------------------------

def fit_data(n=8):
    rng = np.random.default_rng(2)
    return rng.standard_normal((n, 3)), np.array([0, 0, 0, 0, 1, 1, 2, 2, 0, 1, 2][:n])


@pytest.mark.parametrize("kwargs, pattern", [
    # wrong-shaped weights raised only after the running statistics moved
    (dict(class_weights=np.ones(5)), r"class_weights must have shape \(3,\)"),
    (dict(class_weights=np.array([1.0, -1.0, 1.0])), r"class_weights must be >= 0"),
    (dict(class_weights=np.array([1.0, np.nan, 1.0])), r"class_weights contains NaN"),
    (dict(class_weights=[1.0, 1.0, 1.0]), r"class_weights must be a numpy.ndarray"),
    # zero weight for class 0: some batch of epoch 2 holds only class-0 labels
    (dict(class_weights=np.array([0.0, 1.0, 1.0]), epochs=3),
     r"epoch 2, batch 4: class_weights gives weight 0 to every label"),
    (dict(seed=-1), r"seed must be >= 0"),
    (dict(seed=None), r"seed must be an int"),
])
def test_fit_refuses_before_the_first_step_and_leaves_the_model_as_it_was(kwargs, pattern):
    model = mlp(BatchNorm(4, dtype=np.float64), ReLU())
    x, y = fit_data()
    before = snapshot(model)
    optimizer = Adam(1e-2)
    arguments = {"epochs": 1, "batch_size": 2, "optimizer": optimizer, **kwargs}
    with pytest.raises((TypeError, ValueError), match=pattern):
        model.fit(x, y, **arguments)
    assert_unchanged(model, before)
    assert optimizer.state == {}


def test_fit_refuses_a_batch_norm_batch_of_one_sample_before_any_step():
    # 9 samples in batches of 2: the last holds one, whose dense batch norm has one value
    # per channel; it used to raise after four optimiser steps.
    model = mlp(BatchNorm(4, dtype=np.float64), ReLU())
    x, y = fit_data(9)
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"batch_size 2 leaves a batch of one sample"):
        model.fit(x, y, epochs=1, batch_size=2, optimizer=SGD(0.1))
    assert_unchanged(model, before)
    with pytest.raises(ValueError, match=r"batch_size 1 leaves a batch of one sample"):
        model.fit(x, y, epochs=1, batch_size=1, optimizer=SGD(0.1))
    model.fit(x, y, epochs=1, batch_size=3, optimizer=SGD(0.1))  # batches of 3 are fine
    # Spatial batch norm has H W values per channel in a sample: one sample is enough.
    conv = Sequential([Conv2D(2, 2, 3, padding=1, dtype=np.float64), BatchNorm(2),
                       Flatten(), Dense(32, 3, dtype=np.float64)])
    conv.fit(X4[:3], np.array([0, 1, 2]), epochs=1, batch_size=2, optimizer=SGD(0.1))


def test_an_optimizer_step_with_a_read_only_parameter_updates_nothing():
    for optimizer in (SGD(0.1, momentum=0.9), Adam()):
        params = {"a": np.ones(3), "b": np.ones(3), "c": np.ones(3)}
        params["b"].flags.writeable = False
        grads = {key: np.ones(3) for key in params}
        with pytest.raises(ValueError, match=r"params\['b'\] is read-only"):
            optimizer.step(params, grads)
        for value in params.values():
            np.testing.assert_array_equal(value, 1.0)
        assert optimizer.state == {}


# --- Resources: image decoding is bounded --------------------------------------------------

import subprocess  # noqa: E402
import sys  # noqa: E402
import re  # noqa: E402
import warnings  # noqa: E402

from PIL import Image  # noqa: E402

import cnn.data  # noqa: E402
from cnn.data import ImageWarning, load_image  # noqa: E402


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

import os  # noqa: E402
from pathlib import Path  # noqa: E402

from cnn import cli  # noqa: E402

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


def test_out_equal_to_an_input_file_is_refused(tmp_path, monkeypatch, capsys, no_training):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "root").mkdir()
    (tmp_path / "train.npz").write_text("pathology,cropped image file path\n")
    (tmp_path / "test.csv").write_text("pathology,cropped image file path\n")
    status = cli.main(["train", "--data", "cbis", "--cbis-root", "root", "--cbis-train",
                       "train.npz", "--cbis-test", "test.csv", "--out", "train"])
    assert status == 2
    assert "--out train.npz is the --cbis-train file train.npz" in capsys.readouterr().err
    assert (tmp_path / "train.npz").read_text().startswith("pathology")


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

pydicom = pytest.importorskip("pydicom")
from test_cbis import write_csv, write_dicom  # noqa: E402
from test_cbis import tree as cbis_tree  # noqa: E402, F401  (a fixture)

from cnn.casestudy.cbis import read_dicom  # noqa: E402


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
def test_cbis_training_data_that_cannot_be_split_is_one_line(cbis_tree, tmp_path, capsys,
                                                             keep):
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


# --- The exercise checker ---------------------------------------------------------------------

from cnn.activations import relu_forward as book_relu_forward  # noqa: E402
from cnn.conv import col2im, conv2d_backward, im2col  # noqa: E402
from cnn.exercises import CHECKS, check  # noqa: E402


def run_check(name, fn):
    """The check without its sandbox (tests/test_sandbox.py): these wrong functions
    are built from the book's own, which a reader's function may not call."""
    return CHECKS[name].run(fn)
from cnn.gradcheck import check_model  # noqa: E402
from cnn.losses import softmax_cross_entropy  # noqa: E402


def loss_in_float64(logits, y):
    loss, dlogits = softmax_cross_entropy(logits.astype(np.float64), y)
    return loss, dlogits.astype(logits.dtype)


def test_a_correct_float32_loss_summed_in_float64_passes():
    # The loss was compared with a tolerance of 1e-9 whatever the dtype of the logits.
    assert run_check("softmax_cross_entropy", loss_in_float64).passed


def needs_cols(dout, cache):
    if cache.cols is None:
        raise AttributeError("'NoneType' object has no attribute 'reshape'")
    return conv2d_backward(dout, cache)


def first_result_returned_as(kind):
    def wrapped(*args, **kwargs):
        out = book_relu_forward(*args, **kwargs)
        return kind(out[0]), out[1]
    return wrapped


def loss_returned_as(kind):
    def wrapped(logits, y):
        loss, dlogits = softmax_cross_entropy(logits, y)
        return kind(loss), dlogits
    return wrapped


def empties_the_model(model, x, y):
    errors = check_model(model, x, y)
    model.layers.clear()
    return errors


def overwrites_the_labels(model, x, y):
    errors = check_model(model, x, y)
    y[:] = 0
    return errors


def reshapes_its_input(x):
    out = book_relu_forward(x)
    x.shape = (-1,)
    return out


def exits(x):
    sys.exit(3)


@pytest.mark.parametrize("name, fn, verdict", [
    ("im2col", lambda x, **k: im2col(x, **k).astype(np.float64), "cols: wrong dtype"),
    ("col2im", lambda d, **k: col2im(d, **k).astype(np.float64),
     "dx_padded: wrong dtype"),
    ("conv2d_backward", needs_cols, "raised AttributeError"),
    ("softmax_cross_entropy", loss_returned_as(lambda v: np.array(str(v))),
     "loss: not a number"),
    ("softmax_cross_entropy", loss_returned_as(complex), "loss: not a number"),
    ("softmax_cross_entropy", loss_returned_as(lambda v: True), "loss: not a number"),
    ("relative_error", lambda a, b: "0.0", "not a number"),
    ("check_model", empties_the_model, "changed the model"),
    ("check_model", overwrites_the_labels, "modified y"),
    ("relu_forward", first_result_returned_as(lambda a: np.ma.masked_less(a, -1)),
     "out: not a plain array"),
    ("relu_forward", first_result_returned_as(lambda a: a.astype(complex)),
     "out: wrong dtype"),
    ("relu_forward", first_result_returned_as(lambda a: a.astype(str)),
     "out: wrong dtype"),
    ("relu_forward", reshapes_its_input, "reshaped x"),
    ("relu_forward", exits, "called sys.exit(3)"),
])
def test_the_checker_fails_a_wrong_function_and_says_why_without_crashing(name, fn,
                                                                          verdict):
    result = run_check(name, fn)
    assert not result.passed
    assert verdict in [v for v in result.verdicts if v][0], result.message


def test_the_checker_undoes_what_the_function_does_to_numpys_error_state():
    def raises_everywhere(x):
        np.seterr(all="raise")
        return book_relu_forward(x)

    before = np.geterr()
    assert run_check("relu_forward", raises_everywhere).passed
    assert np.geterr() == before


@pytest.mark.parametrize("name", [["relu_forward"], None, 3])
def test_a_name_that_is_not_a_string_is_a_clear_type_error(name):
    with pytest.raises(TypeError, match=r"name must be the name of a checked function"):
        check(name, book_relu_forward)
