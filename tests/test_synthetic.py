"""The synthetic mammogram generator: shapes, ranges, determinism, balance, the lesions' looks."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from cnn.casestudy.synthetic import (
    CLASS_NAMES,
    background_texture,
    circumscribed_masses,
    clustered_microcalcifications,
    coarse_calcifications,
    load_synthetic,
    make_class_patches,
    make_mammogram_patches,
    sample_image,
    spiculated_masses,
)


@pytest.mark.parametrize("size", [16, 32, 33, 64])
def test_shapes_dtype_and_range(size):
    x, y = make_mammogram_patches(5, size, rng=np.random.default_rng(0))
    assert x.shape == (15, 1, size, size) and x.dtype == np.float32
    assert y.shape == (15,) and y.dtype == np.int64
    assert x.min() >= 0.0 and x.max() <= 1.0


def test_patches_are_not_saturated():
    # Clipping to [0, 1] must stay a safety net, not shape the images.
    x, _ = make_mammogram_patches(100, 32, rng=np.random.default_rng(1))
    assert np.mean((x == 0.0) | (x == 1.0)) < 1e-3


def test_same_seed_same_patches_other_seed_other_patches():
    a = make_mammogram_patches(4, 32, rng=np.random.default_rng(7))
    b = make_mammogram_patches(4, 32, rng=np.random.default_rng(7))
    c = make_mammogram_patches(4, 32, rng=np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_classes_are_balanced_and_shuffled():
    _, y = make_mammogram_patches(40, 16, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(np.bincount(y), [40, 40, 40])
    assert np.any(np.diff(y) < 0)  # not sorted by class


def test_load_synthetic_splits_are_balanced_and_seeded():
    x_train, y_train, x_test, y_test = load_synthetic(n_per_class=20, size=16, test_size=0.25,
                                                      seed=3)
    assert x_train.shape == (45, 1, 16, 16) and x_test.shape == (15, 1, 16, 16)
    np.testing.assert_array_equal(np.bincount(y_train), [15, 15, 15])
    np.testing.assert_array_equal(np.bincount(y_test), [5, 5, 5])
    again = load_synthetic(n_per_class=20, size=16, test_size=0.25, seed=3)
    np.testing.assert_array_equal(again[2], x_test)
    assert not np.array_equal(load_synthetic(20, 16, 0.25, seed=4)[2], x_test)


def test_class_names_follow_cbis_ddsm():
    assert CLASS_NAMES == ("benign", "benign_without_callback", "malignant")


def test_background_has_a_power_law_spectrum():
    # The radially averaged power of the texture falls as 1 / f**beta.
    beta = 3.0
    texture = background_texture(64, 64, np.random.default_rng(0), beta=beta)
    np.testing.assert_allclose(texture.mean(axis=(1, 2)), 0.0, atol=1e-12)
    np.testing.assert_allclose(texture.std(axis=(1, 2)), 1.0)
    power = (np.abs(np.fft.fft2(texture)) ** 2).mean(axis=0)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(64), np.fft.fftfreq(64), indexing="ij"))
    band = (f > 0.02) & (f < 0.4)
    slope = np.polyfit(np.log(f[band]), np.log(power[band]), 1)[0]
    assert slope == pytest.approx(-beta, abs=0.15)


def _compactness(layer):
    """4 pi area / perimeter**2 of the region above half the maximum (1 for a disk)."""
    region = layer > 0.5 * layer.max()
    padded = np.pad(region, 1)
    edges = sum(np.sum(padded != np.roll(padded, shift, axis))
                for axis in (0, 1) for shift in (1, -1)) / 2
    return 4 * np.pi * region.sum() / edges**2


def test_benign_masses_are_compact_malignant_ones_are_not():
    rng = np.random.default_rng(0)
    round_ = [_compactness(m) for m in circumscribed_masses(50, 64, rng)]
    spiculated = [_compactness(m) for m in spiculated_masses(50, 64, rng)]
    # Pixel perimeters overestimate a disk's (a digital circle scores about pi/4).
    assert np.median(round_) > 0.6
    assert np.median(spiculated) < 0.5 * np.median(round_)


def _spread_and_speck_size(layers):
    """Per layer: spatial standard deviation of the bright pixels and their count per speck."""
    spread, size = [], []
    for layer in layers:
        bright = layer > 0.5 * layer.max()
        rows, cols = np.nonzero(bright)
        spread.append(np.hypot(rows.std(), cols.std()))
        local_max = (layer == np.max([np.roll(layer, s, a) for a in (0, 1) for s in (-1, 0, 1)],
                                     axis=0)) & bright
        size.append(bright.sum() / local_max.sum())
    return np.median(spread), np.median(size)


def test_coarse_calcifications_are_scattered_and_larger_than_clustered_ones():
    rng = np.random.default_rng(0)
    coarse_spread, coarse_size = _spread_and_speck_size(coarse_calcifications(60, 64, rng))
    fine_spread, fine_size = _spread_and_speck_size(clustered_microcalcifications(60, 64, rng))
    assert coarse_spread > 2 * fine_spread
    assert coarse_size > 2 * fine_size


def test_lesions_are_brighter_than_the_tissue_around_them():
    rng = np.random.default_rng(0)
    for label in range(3):
        x = make_class_patches(label, 50, 64, rng=rng)[:, 0]
        centre = x[:, 24:40, 24:40].max(axis=(1, 2))
        border = np.concatenate([x[:, :8].reshape(50, -1), x[:, -8:].reshape(50, -1)], axis=1)
        assert np.median(centre - border.mean(axis=1)) > 0.1, CLASS_NAMES[label]


@pytest.mark.parametrize("call, error, message", [
    (lambda: make_mammogram_patches(0, rng=np.random.default_rng(0)), ValueError, "n_per_class"),
    (lambda: make_mammogram_patches(2.5, rng=np.random.default_rng(0)), TypeError, "n_per_class"),
    (lambda: make_mammogram_patches(2, size=8, rng=np.random.default_rng(0)), ValueError, "size"),
    (lambda: make_mammogram_patches(2, rng=0), TypeError, "numpy.random.Generator"),
    (lambda: make_class_patches(3, 2, rng=np.random.default_rng(0)), ValueError, "label"),
    (lambda: load_synthetic(10, test_size=1.5), ValueError, "test_size"),
    (lambda: load_synthetic(1), ValueError, "n_per_class"),
])
def test_bad_arguments_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_script_reproduces_the_committed_sample_images_bit_for_bit(tmp_path):
    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("make_sample_images",
                                                  root / "scripts" / "make_sample_images.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main(["--out", str(tmp_path)])
    for name in CLASS_NAMES:
        written = (tmp_path / f"{name}.png").read_bytes()
        assert written == (root / "images" / f"{name}.png").read_bytes(), name


def test_sample_image_rejects_an_unknown_class():
    with pytest.raises(ValueError, match="name must be one of"):
        sample_image("normal")


def test_per_class_counts_give_an_imbalanced_set():
    x, y = make_mammogram_patches((5, 1, 4), 16, rng=np.random.default_rng(0))
    assert x.shape == (10, 1, 16, 16) and np.bincount(y).tolist() == [5, 1, 4]
    # An int is the balanced case, drawn exactly as (n, n, n).
    balanced = make_mammogram_patches(3, 16, rng=np.random.default_rng(1))
    same = make_mammogram_patches([3, 3, 3], 16, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(balanced[0], same[0])
    with pytest.raises(ValueError, match="one count per class"):
        make_mammogram_patches((5, 1), 16, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_per_class must be >= 1"):
        make_mammogram_patches((5, 0, 4), 16, rng=np.random.default_rng(0))
