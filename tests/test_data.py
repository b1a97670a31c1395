"""Data loaders: the bundled digits and images read with Pillow."""

import math
import sys

import numpy as np
import pytest
from PIL import Image

import cnn.data
from cnn.data import load_digits, load_image


def test_digits_shapes_and_ranges():
    x_train, y_train, x_test, y_test = load_digits()
    assert x_train.shape[1:] == x_test.shape[1:] == (1, 8, 8)
    assert x_train.dtype == x_test.dtype == np.float32
    assert len(x_train) + len(x_test) == 1797 and len(x_test) == math.ceil(0.25 * 1797)  # as scikit-learn rounds
    assert y_train.shape == (len(x_train),) and y_test.shape == (len(x_test),)
    assert 0.0 == min(x_train.min(), x_test.min()) and max(x_train.max(), x_test.max()) == 1.0
    assert set(np.unique(y_train)) == set(range(10))
    # The 17 grey levels 0..16 become multiples of 1/16.
    np.testing.assert_array_equal(x_train * 16, np.round(x_train * 16))


def test_digits_split_is_stratified_seeded_and_disjoint():
    x_train, y_train, x_test, y_test = load_digits(test_size=0.3, seed=1)
    train_share = np.bincount(y_train, minlength=10) / len(y_train)
    test_share = np.bincount(y_test, minlength=10) / len(y_test)
    np.testing.assert_allclose(train_share, test_share, atol=0.01)
    again = load_digits(test_size=0.3, seed=1)
    for a, b in zip((x_train, y_train, x_test, y_test), again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(load_digits(test_size=0.3, seed=2)[3], y_test)
    train_rows = {row.tobytes() for row in x_train.reshape(len(x_train), -1)}
    overlap = sum(row.tobytes() in train_rows for row in x_test.reshape(len(x_test), -1))
    # The data set has a few duplicate images, but a split must not copy samples across.
    assert overlap < 5


def test_digits_without_scikit_learn_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"needs scikit-learn.*cnn-from-scratch\[test\]"):
        load_digits()


@pytest.mark.parametrize("test_size", [0, 1, 1.5, "0.2"])
def test_digits_rejects_bad_test_size(test_size):
    with pytest.raises(ValueError, match="test_size must be a fraction"):
        load_digits(test_size=test_size)


def test_image_8bit_grey_round_trip(tmp_path, rng):
    pixels = rng.integers(0, 256, (12, 20), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "grey.png")
    image = load_image(tmp_path / "grey.png", (12, 20))
    assert image.shape == (1, 1, 12, 20) and image.dtype == np.float32
    np.testing.assert_allclose(image[0, 0], pixels / 255.0, rtol=1e-6)


def test_image_16bit_is_scaled_by_its_full_range(tmp_path):
    pixels = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    Image.fromarray(pixels).save(tmp_path / "deep.png")
    np.testing.assert_allclose(load_image(tmp_path / "deep.png", 2)[0, 0], pixels / 65535.0, rtol=1e-6)


def test_image_colour_is_converted_and_resized(tmp_path):
    rgb = np.zeros((40, 30, 3), dtype=np.uint8)
    rgb[..., 1] = 255  # pure green: luma 0.587
    Image.fromarray(rgb).save(tmp_path / "green.jpg", quality=100)
    with pytest.warns(cnn.data.ImageWarning, match="is blank"):  # one colour
        image = load_image(str(tmp_path / "green.jpg"), 8)
    assert image.shape == (1, 1, 8, 8)
    np.testing.assert_allclose(image, 150 / 255, atol=2 / 255)
    assert 0.0 <= image.min() and image.max() <= 1.0


def test_image_missing_or_unreadable(tmp_path):
    with pytest.raises(ValueError, match=r"cannot read image .*nowhere.png: no such file"):
        load_image(tmp_path / "nowhere.png", 8)
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ValueError, match=r"cannot read image .*text.png"):
        load_image(tmp_path / "text.png", 8)
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "cut.png")
    data = (tmp_path / "cut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cannot read image .*cut.png"):
        load_image(tmp_path / "cut.png", 8)
    with pytest.raises(ValueError, match=r"cannot read image"):
        load_image(tmp_path, 8)  # a directory


def test_image_over_the_pixel_limit(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(cnn.data, "MAX_PIXELS", 1000)
    with pytest.raises(ValueError, match=r"image .*big.png has 40 x 30 = 1,200 pixels, more than MAX_PIXELS = 1,000"):
        load_image(tmp_path / "big.png", 8)


def test_image_float_mode_is_rejected(tmp_path):
    Image.fromarray(np.full((4, 4), 3.5, np.float32)).save(tmp_path / "float.tiff")
    with pytest.raises(ValueError, match=r"float.tiff: pixel mode 'F'"):
        load_image(tmp_path / "float.tiff", 4)


@pytest.mark.parametrize("size, error", [(0, ValueError), ((8, 0), ValueError), (8.0, TypeError), ((8,), ValueError)])
def test_image_rejects_bad_size(tmp_path, size, error):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(error, match="size must be"):
        load_image(tmp_path / "a.png", size)


def test_train_validation_split_is_stratified_disjoint_and_seeded():
    from cnn.data import train_validation_split

    y = np.repeat(np.arange(3), [100, 20, 7])
    x = np.arange(len(y), dtype=np.float32)[:, None] + np.zeros((1, 2), np.float32)
    x_train, y_train, x_val, y_val = train_validation_split(x, y, 0.2, seed=0)
    assert np.bincount(y_val).tolist() == [20, 4, 1]  # round(0.2 * 7) = 1
    assert np.bincount(y_train).tolist() == [80, 16, 6]
    # Every sample lands on exactly one side, with its own label.
    ids = np.concatenate([x_train[:, 0], x_val[:, 0]]).astype(int)
    assert sorted(ids) == list(range(len(y)))
    np.testing.assert_array_equal(y[x_val[:, 0].astype(int)], y_val)
    again = train_validation_split(x, y, 0.2, seed=0)
    np.testing.assert_array_equal(again[2], x_val)
    assert not np.array_equal(train_validation_split(x, y, 0.2, seed=1)[2], x_val)
    # A class of two keeps one on each side; a class of one stays in training.
    small = train_validation_split(x[:3], np.array([0, 0, 1]), 0.1, seed=0)
    assert small[3].tolist() == [0] and sorted(small[1].tolist()) == [0, 1]


def test_train_validation_split_keeps_groups_together():
    from cnn.data import train_validation_split

    groups = [f"P{k // 3}" for k in range(30)]  # ten patients with three images each
    y = np.arange(30) % 3
    x = np.arange(30, dtype=np.float64)
    _, _, x_val, _ = train_validation_split(x, y, 0.3, seed=0, groups=groups)
    held_out = {groups[int(i)] for i in x_val}
    assert len(x_val) == 9 and len(held_out) == 3
    assert all(groups[k] not in held_out for k in range(30) if k not in set(x_val.astype(int)))


@pytest.mark.parametrize("kwargs, message", [
    (dict(validation_size=0.0), "validation_size must be a float in"),
    (dict(validation_size=1), "validation_size must be a float in"),
    (dict(groups=["a"]), "groups must have one key per sample"),
])
def test_train_validation_split_rejects_bad_arguments(kwargs, message):
    from cnn.data import train_validation_split

    with pytest.raises(ValueError, match=message):
        train_validation_split(np.zeros((4, 1)), np.array([0, 1, 0, 1]), seed=0, **kwargs)
    with pytest.raises(ValueError, match="x must be a numpy.ndarray with one sample per label"):
        train_validation_split(np.zeros((3, 1)), np.array([0, 1, 0, 1]), seed=0)


def test_image_exif_orientation_is_applied(tmp_path):
    # A 2 x 3 image stored sideways with orientation 6 ("rotate 90 degrees clockwise to
    # view"), as phones save photos: it must come out 3 x 2, upright.
    upright = np.array([[0, 100], [50, 150], [200, 250]], dtype=np.uint8)  # 3 rows, 2 columns
    stored = np.rot90(upright, k=1)  # what the camera wrote: 2 rows, 3 columns
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "phone.png", exif=exif)
    image = load_image(tmp_path / "phone.png", (3, 2))
    np.testing.assert_allclose(image[0, 0], upright / 255.0, atol=1e-6)
    Image.fromarray(stored).save(tmp_path / "plain.png")  # no tag: read as stored
    np.testing.assert_allclose(load_image(tmp_path / "plain.png", (2, 3))[0, 0], stored / 255.0,
                               atol=1e-6)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_image_alpha_is_composited_over_black(tmp_path, mode):
    # Grey 200 at opacity 255, 128 and 0: read as 200/255 times the opacity.
    grey = np.full((1, 3), 200, np.uint8)
    alpha = np.array([[255, 128, 0]], np.uint8)
    layers = [grey, grey, grey, alpha] if mode == "RGBA" else [grey, alpha]
    Image.fromarray(np.dstack(layers), mode=None).convert(mode).save(tmp_path / "a.png")
    image = load_image(tmp_path / "a.png", (1, 3))[0, 0]
    np.testing.assert_allclose(image, [[200 / 255, 200 / 255 * 128 / 255, 0.0]], atol=1e-6)


def test_image_palette_transparency_is_composited_over_black(tmp_path):
    pixels = np.array([[0, 1]], np.uint8)
    image = Image.fromarray(pixels, mode="L").convert("P")
    image.putpalette([255, 255, 255, 255, 255, 255] + [0] * (256 * 3 - 6))
    image.save(tmp_path / "p.png", transparency=0)  # index 0 is transparent, index 1 white
    np.testing.assert_allclose(load_image(tmp_path / "p.png", (1, 2))[0, 0], [[0.0, 1.0]])


def test_image_errors_of_pillow_name_the_file(tmp_path):
    # A PNG whose header claims a size its data do not have: Pillow raises from deep inside.
    data = (tmp_path / "ok.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(data)
    raw = bytearray(data.read_bytes())
    raw[16:24] = (10**6).to_bytes(4, "big") * 2  # IHDR width and height
    (tmp_path / "lies.png").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"cannot read image .*lies.png: \w+"):
        load_image(tmp_path / "lies.png", 8)


def test_image_over_pillow_warning_size_is_refused_without_a_warning(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow warns above this, errors at 2x
    monkeypatch.setattr(cnn.data, "MAX_PIXELS", 1199)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"1,200 pixels, more than MAX_PIXELS = 1,199"):
            load_image(tmp_path / "big.png", 8)
    monkeypatch.setattr(cnn.data, "MAX_PIXELS", 1200)  # exactly at the limit: read
    with pytest.warns(cnn.data.ImageWarning, match="is blank"):
        assert load_image(tmp_path / "big.png", 8).shape == (1, 1, 8, 8)


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@st.composite
def image_bytes(draw):
    """Random bytes, or a real small image cut, flipped or with bytes inserted."""
    kind = draw(st.sampled_from(["random", "png", "jpeg", "gif", "tiff", "bmp"]))
    if kind == "random":
        return draw(st.sampled_from([b"", PNG, b"\xff\xd8\xff", b"GIF89a", b"II*\0"])) + draw(
            st.binary(max_size=200))
    buffer = __import__("io").BytesIO()
    mode = draw(st.sampled_from(["L", "RGB", "RGBA", "I;16", "P"]))
    if kind in ("jpeg", "gif", "bmp") and mode in ("I;16", "RGBA", "P"):
        mode = "L"
    Image.new(mode, (draw(st.integers(1, 12)), draw(st.integers(1, 12)))).save(buffer, kind)
    data = bytearray(buffer.getvalue())
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data) - 1))
        edit = draw(st.sampled_from(["cut", "flip", "insert"]))
        if edit == "cut":
            data = data[:at]
        elif edit == "flip":
            data[at] ^= draw(st.integers(1, 255))
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        if not data:
            break
    return bytes(data)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=image_bytes())
@pytest.mark.filterwarnings("ignore::cnn.data.ImageWarning")  # blank: read, with a warning
@pytest.mark.filterwarnings("error")
def test_any_file_gives_an_image_or_a_value_error_naming_it(tmp_path, data):
    path = tmp_path / "fuzzed image.bin"
    path.write_bytes(data)
    try:
        image = load_image(path, (5, 7))
    except ValueError as error:
        assert str(error).startswith(f"cannot read image {path}") or f"image {path} has" in str(error)
    else:
        assert image.shape == (1, 1, 5, 7) and image.dtype == np.float32
        assert np.isfinite(image).all() and 0 <= image.min() and image.max() <= 1


@pytest.mark.parametrize("low, high, accepted", [(0, 65535, True), (-1, 100, False),
                                                 (0, 65536, False), (1, 65535, True)])
def test_32_bit_grey_is_read_only_within_16_bits(tmp_path, low, high, accepted):
    # Pillow's mode "I" (32-bit integers, as some 16-bit files open): read as 16-bit when
    # every value fits 0..65535, refused otherwise (no known full scale).
    pixels = np.array([[low, high]], np.int32)
    Image.fromarray(pixels).save(tmp_path / "i.tiff")
    if accepted:
        np.testing.assert_allclose(load_image(tmp_path / "i.tiff", (1, 2))[0, 0],
                                   pixels / 65535.0, rtol=1e-6)
    else:
        with pytest.raises(ValueError, match=rf"i\.tiff: pixel mode 'I' with values "
                                             rf"\({low}, {high}\) is not 8- or 16-bit"):
            load_image(tmp_path / "i.tiff", (1, 2))


def test_transparent_colour_of_grey_and_rgb_images_is_composited_over_black(tmp_path):
    Image.fromarray(np.array([[0, 255, 128]], np.uint8)).save(tmp_path / "l.png",
                                                              transparency=255)
    np.testing.assert_allclose(load_image(tmp_path / "l.png", (1, 3))[0, 0],
                               [[0.0, 0.0, 128 / 255]], rtol=1e-6)
    rgb = np.array([[[255, 0, 0], [0, 255, 0]]], np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png", transparency=(255, 0, 0))
    np.testing.assert_allclose(load_image(tmp_path / "rgb.png", (1, 2))[0, 0],
                               [[0.0, 150 / 255]], atol=1 / 255)  # green's luma, 0.587


def test_image_is_resized_bilinearly(tmp_path):
    # Pillow's default filter for resize is bicubic, which overshoots at an edge; bilinear
    # (with antialiasing when shrinking) stays between the neighbours.
    pixels = np.array([[0, 0, 0, 255, 255, 255]], np.uint8)
    Image.fromarray(pixels).save(tmp_path / "edge.png")
    image = load_image(tmp_path / "edge.png", (1, 4))[0, 0]
    expected = Image.fromarray(pixels.astype(np.float32) / 255).resize(
        (4, 1), Image.Resampling.BILINEAR)
    np.testing.assert_allclose(image, np.asarray(expected), rtol=1e-6)
    bicubic = np.asarray(Image.fromarray(pixels.astype(np.float32) / 255).resize((4, 1)))
    assert not np.allclose(image, np.clip(bicubic, 0, 1))


def test_an_unreadable_image_message_names_the_file_once(tmp_path):
    path = tmp_path / "text.png"
    path.write_text("not an image")
    with pytest.raises(ValueError) as error:
        load_image(path, 8)
    assert str(error.value) == (f"cannot read image {path}: UnidentifiedImageError: cannot "
                                "identify image file")


def test_digits_defaults_and_test_size_reach_the_split():
    default = load_digits()
    for a, b in zip(default, load_digits(test_size=0.25, seed=0)):
        np.testing.assert_array_equal(a, b)
    assert len(load_digits(test_size=0.4)[3]) == math.ceil(0.4 * 1797)


def test_digits_import_message_exactly(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError) as error:
        load_digits()
    assert str(error.value) == (
        "cnn.data.load_digits needs scikit-learn, which ships the digits: install the 'test' "
        "or 'book' extra, e.g. pip install 'cnn-from-scratch[test]', or pip install "
        "scikit-learn")
