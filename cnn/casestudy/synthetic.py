"""Synthetic mammogram patches for the three CBIS-DDSM pathology classes.

The real CBIS-DDSM images (Lee et al., 2017) cannot be shipped with this project, so the
case study trains on patches drawn from a seeded generator instead. Each patch is a
grayscale square in [0, 1], like a region-of-interest crop centred on one abnormality.
Its background imitates fibroglandular tissue: Gaussian noise whose power spectrum falls
as ``1 / f**3``, the exponent measured on mammograms by Burgess et al. (2001). Its
foreground is a lesion drawn from the BI-RADS descriptors (ACR, 2013):

- ``benign``: a circumscribed round or oval mass with a sharp margin;
- ``benign_without_callback``: typically benign calcifications, coarse, smooth and
  scattered;
- ``malignant``: an irregular, spiculated mass with an ill-defined margin, or a tight
  cluster of fine pleomorphic microcalcifications (half of the patches each).

Lesion size, shape, contrast and position, tissue density and quantum noise vary from
patch to patch. These are pictures of radiological words, not of patients: nothing here
is medical data.

Every function draws all of its randomness from the ``numpy.random.Generator`` it is
given, so the same seed gives the same patches, bit for bit. Sizes in the code are in
pixels of a 64 x 64 patch and scale with the patch side.
"""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np
from PIL import Image

from cnn.checks import check_int, check_rng

CLASS_NAMES = ("benign", "benign_without_callback", "malignant")
"""Class names in label order, so that label ``k`` means ``CLASS_NAMES[k]`` (CBIS-DDSM's
``pathology``)."""

# Lesion sizes below are in pixels of a patch of this side, and scale with the actual
# side.
_REFERENCE_SIZE = 64


def _offsets(size, cx, cy):
    """Column and row offset of every pixel from one centre per patch.

    Parameters
    ----------
    size : int
        Patch side S.
    cx, cy : (N,) arrays
        Centre column and row of each patch's lesion, in pixels.

    Returns
    -------
    dx, dy : (N, S, S) arrays
    """
    grid = np.arange(size, dtype=np.float64)
    dx = np.broadcast_to(grid[None, None, :] - cx[:, None, None], (cx.size, size, size))
    dy = np.broadcast_to(grid[None, :, None] - cy[:, None, None], (cx.size, size, size))
    return dx, dy


def _soft_inside(r, radius, margin_width):
    """1 inside ``r < radius``, 0 outside, with a logistic edge of the given width."""
    # The clip keeps exp from overflowing far away from the boundary.
    z = np.clip((radius - r) / margin_width, -30.0, 30.0)
    return 1.0 / (1.0 + np.exp(-z))


def background_texture(n, size, rng, beta=3.0):
    """Fibroglandular background: Gaussian noise filtered to a power-law spectrum.

    The noise is shaped in the Fourier domain so that its power falls as
    ``1 / f**beta``; with ``beta`` near 3 this looks like the cloudy mix of glandular
    and fatty tissue in a mammogram.

    Parameters
    ----------
    n : int
        Number of patches N.
    size : int
        Patch side S.
    rng : numpy.random.Generator
    beta : float
        Spectral exponent.

    Returns
    -------
    texture : (N, S, S) float64
        Zero mean and unit standard deviation per patch.
    """
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    f = np.hypot(fy, fx)
    f[0, 0] = np.inf  # no constant term: the mean is set by the tissue density
    amplitude = f ** (-beta / 2.0)
    noise = rng.standard_normal((n, size, size))
    texture = np.fft.irfft2(np.fft.rfft2(noise) * amplitude, s=(size, size))
    texture -= texture.mean(axis=(1, 2), keepdims=True)
    return texture / texture.std(axis=(1, 2), keepdims=True)


def circumscribed_masses(n, size, rng):
    """Benign masses: round or oval, with a sharp (circumscribed) margin.

    Returns
    -------
    layer : (N, S, S) float64
        Added brightness; the mass's own contrast is in its values.
    """
    scale = size / _REFERENCE_SIZE
    cx, cy = rng.uniform(0.4 * size, 0.6 * size, size=(2, n))
    a = rng.uniform(5.0, 10.0, size=n) * scale
    b = a * rng.uniform(0.6, 1.0, size=n)
    phi = rng.uniform(0.0, np.pi, size=n)
    contrast = rng.uniform(0.18, 0.30, size=n)
    dx, dy = _offsets(size, cx, cy)
    r, t = np.hypot(dx, dy), np.arctan2(dy, dx) - phi[:, None, None]
    a3, b3 = a[:, None, None], b[:, None, None]
    radius = a3 * b3 / np.hypot(b3 * np.cos(t), a3 * np.sin(t))
    return contrast[:, None, None] * _soft_inside(r, radius, 0.6 * scale)


def spiculated_masses(n, size, rng):
    """Malignant masses: irregular outline, ill-defined margin, radiating spicules.

    The outline is a circle whose radius is perturbed by random angular harmonics 2..6;
    the spicules are thin lines that start inside the mass and fade out over one to two
    radii.

    Returns
    -------
    layer : (N, S, S) float64
    """
    scale = size / _REFERENCE_SIZE
    cx, cy = rng.uniform(0.4 * size, 0.6 * size, size=(2, n))
    r0 = rng.uniform(3.0, 6.0, size=n) * scale
    contrast = rng.uniform(0.18, 0.30, size=n)
    dx, dy = _offsets(size, cx, cy)
    r, theta = np.hypot(dx, dy), np.arctan2(dy, dx)

    harmonics = np.arange(2, 7)
    amplitude = rng.uniform(0.1, 0.4, size=(n, harmonics.size)) / np.sqrt(harmonics - 1)
    phase = rng.uniform(0.0, 2 * np.pi, size=(n, harmonics.size))
    wobble = np.ones_like(r)
    for j, k in enumerate(harmonics):
        wobble += amplitude[:, j, None, None] * np.cos(
            k * theta + phase[:, j, None, None]
        )
    radius = r0[:, None, None] * wobble
    layer = _soft_inside(r, radius, 2.5 * scale)

    max_spicules = 12
    n_spicules = rng.integers(6, max_spicules + 1, size=n)
    angle = rng.uniform(0.0, 2 * np.pi, size=(n, max_spicules))
    length = r0[:, None] * rng.uniform(2.0, 4.0, size=(n, max_spicules))
    # Below about 0.7 pixel a spicule would vanish between the samples of a small patch.
    width = max(1.0 * scale, 0.7)
    for j in range(max_spicules):
        c, s = np.cos(angle[:, j, None, None]), np.sin(angle[:, j, None, None])
        along = c * dx + s * dy
        across = c * dy - s * dx
        reach = 0.5 * r0[:, None, None] + length[:, j, None, None]
        fade = np.clip(1.0 - along / reach, 0.0, 1.0) * (along > 0)
        active = j < n_spicules[:, None, None]
        line = np.where(active, fade * np.exp(-0.5 * (across / width) ** 2), 0.0)
        layer = np.maximum(layer, line)
    return contrast[:, None, None] * layer


def _gaussian_spots(size, x, y, sigma_long, sigma_short, angle, brightness, count):
    """Sum of elongated Gaussian spots, up to M per patch.

    Parameters
    ----------
    size : int
        Patch side S.
    x, y, sigma_long, sigma_short, angle, brightness : (N, M) arrays
        Centre, the two standard deviations, orientation and peak brightness of each
        spot.
    count : (N,) int array
        How many of the M spots each patch shows (the first ``count``).

    Returns
    -------
    layer : (N, S, S) float64
    """
    active = np.arange(x.shape[1])[None, :] < count[:, None]
    layer = np.zeros((x.shape[0], size, size))
    for j in range(x.shape[1]):
        dx, dy = _offsets(size, x[:, j], y[:, j])
        c, s = np.cos(angle[:, j, None, None]), np.sin(angle[:, j, None, None])
        u = (c * dx + s * dy) / sigma_long[:, j, None, None]
        v = (-s * dx + c * dy) / sigma_short[:, j, None, None]
        peak = np.where(active[:, j], brightness[:, j], 0.0)[:, None, None]
        layer += peak * np.exp(-0.5 * (u * u + v * v))
    return layer


def coarse_calcifications(n, size, rng):
    """Typically benign calcifications: a few coarse, smooth, scattered specks.

    Returns
    -------
    layer : (N, S, S) float64
    """
    scale = size / _REFERENCE_SIZE
    max_spots = 6
    count = rng.integers(2, max_spots + 1, size=n)
    x, y = rng.uniform(0.1 * size, 0.9 * size, size=(2, n, max_spots))
    sigma = rng.uniform(1.4, 2.4, size=(n, max_spots)) * scale
    brightness = rng.uniform(0.12, 0.28, size=(n, max_spots))
    return _gaussian_spots(
        size, x, y, sigma, sigma, np.zeros_like(x), brightness, count
    )


def clustered_microcalcifications(n, size, rng):
    """Suspicious calcifications: many fine specks of varied shape, clustered.

    Returns
    -------
    layer : (N, S, S) float64
    """
    scale = size / _REFERENCE_SIZE
    max_spots = 16
    count = rng.integers(6, max_spots + 1, size=n)
    cx, cy = rng.uniform(0.4 * size, 0.6 * size, size=(2, n))
    spread = rng.uniform(2.5, 5.0, size=n) * scale
    x = cx[:, None] + spread[:, None] * rng.standard_normal((n, max_spots))
    y = cy[:, None] + spread[:, None] * rng.standard_normal((n, max_spots))
    sigma_short = rng.uniform(0.6, 1.0, size=(n, max_spots)) * scale
    # Pleomorphic: some specks are dots, some short rods (an elongation of up to 3).
    sigma_long = sigma_short * rng.uniform(1.0, 3.0, size=(n, max_spots))
    angle = rng.uniform(0.0, np.pi, size=(n, max_spots))
    brightness = rng.uniform(0.15, 0.35, size=(n, max_spots))
    return _gaussian_spots(
        size, x, y, sigma_long, sigma_short, angle, brightness, count
    )


def _malignant_lesions(n, size, rng):
    """Half spiculated masses, half microcalcification clusters (a random split)."""
    n_masses = int(rng.binomial(n, 0.5))
    masses = spiculated_masses(n_masses, size, rng)
    return np.concatenate(
        [masses, clustered_microcalcifications(n - n_masses, size, rng)]
    )


_LESIONS = (circumscribed_masses, coarse_calcifications, _malignant_lesions)


def make_class_patches(label, n, size=32, *, rng):
    """Patches of one class: tissue background + that class's lesion + quantum noise.

    Parameters
    ----------
    label : int
        Class index into ``CLASS_NAMES`` (0, 1 or 2).
    n : int
        Number of patches N.
    size : int
        Patch side S (at least 16).
    rng : numpy.random.Generator

    Returns
    -------
    x : (N, 1, S, S) float32
        Patches in [0, 1].
    """
    label = check_int(label, "label", 0)
    if label >= len(CLASS_NAMES):
        raise ValueError(f"label must be in 0..{len(CLASS_NAMES) - 1}, got {label}")
    n = check_int(n, "n", 0)
    size = check_int(size, "size", 16)
    rng = check_rng(rng)

    density = rng.uniform(0.30, 0.50, size=(n, 1, 1))
    tissue_contrast = rng.uniform(0.03, 0.06, size=(n, 1, 1))
    image = density + tissue_contrast * background_texture(n, size, rng)
    image += _LESIONS[label](n, size, rng)
    noise_level = rng.uniform(0.01, 0.03, size=(n, 1, 1))
    image += noise_level * rng.standard_normal((n, size, size))
    return np.clip(image, 0.0, 1.0).astype(np.float32)[:, None]


def make_mammogram_patches(n_per_class, size=32, *, rng):
    """A shuffled set of synthetic mammogram patches, class-balanced or in given counts.

    Parameters
    ----------
    n_per_class : int or sequence of three ints
        Patches per class: one count for every class (a balanced set of N =
        3 * n_per_class patches), or one count per class in ``CLASS_NAMES`` order,
        e.g. ``(291, 57, 297)``, the imbalance of a CBIS-DDSM test split.
    size : int
        Patch side S (at least 16).
    rng : numpy.random.Generator

    Returns
    -------
    x : (N, 1, S, S) float32
        Patches in [0, 1].
    y : (N,) int64
        Labels, indices into ``CLASS_NAMES``; class ``k`` occurs exactly as often as
        ``n_per_class`` says.
    """
    if isinstance(n_per_class, (list, tuple, np.ndarray)):
        if len(n_per_class) != len(CLASS_NAMES):
            raise ValueError(
                f"n_per_class must be an int or one count per class "
                f"({len(CLASS_NAMES)}), got {n_per_class!r}"
            )
        counts = [check_int(n, "n_per_class", 1) for n in n_per_class]
    else:
        counts = [check_int(n_per_class, "n_per_class", 1)] * len(CLASS_NAMES)
    x = np.concatenate(
        [make_class_patches(k, n, size, rng=rng) for k, n in enumerate(counts)]
    )
    y = np.repeat(np.arange(len(CLASS_NAMES), dtype=np.int64), counts)
    order = rng.permutation(y.size)
    return x[order], y[order]


def load_synthetic(n_per_class=2000, size=32, test_size=0.25, seed=0):
    """Train/test split of synthetic patches, class-balanced on both sides.

    The counterpart of ``cnn.data.load_digits`` for the case study. The training and the
    test patches are drawn one after the other from one generator: independent samples
    of the same distribution.

    Parameters
    ----------
    n_per_class : int
        Patches per class over both splits.
    size : int
        Patch side S.
    test_size : float
        Fraction of each class held out for testing, in (0, 1).
    seed : int
        Seed of the ``numpy.random.Generator`` that draws everything.

    Returns
    -------
    x_train : (N_train, 1, S, S) float32
    y_train : (N_train,) int64
    x_test : (N_test, 1, S, S) float32
    y_test : (N_test,) int64
    """
    n_per_class = check_int(n_per_class, "n_per_class", 2)
    if not isinstance(test_size, numbers.Real) or not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be a float in (0, 1), got {test_size!r}")
    n_test = min(max(round(n_per_class * test_size), 1), n_per_class - 1)
    rng = np.random.default_rng(seed)
    x_train, y_train = make_mammogram_patches(n_per_class - n_test, size, rng=rng)
    x_test, y_test = make_mammogram_patches(n_test, size, rng=rng)
    return x_train, y_train, x_test, y_test


SAMPLE_SEEDS = {"benign": 1, "benign_without_callback": 1, "malignant": 2}
"""Seed of the sample image of each class (``images/<class>.png`` in the repository).

The seeds were picked by eye, so that each image shows its class's lesion clearly, not
by what any network predicts."""


def sample_image(name, size=32):
    """The sample patch of class ``name`` (seed ``SAMPLE_SEEDS[name]``), 8-bit grey.

    Returns
    -------
    image : (S, S) uint8
        ``round(255 * patch)``.
    """
    if name not in SAMPLE_SEEDS:
        raise ValueError(f"name must be one of {CLASS_NAMES}, got {name!r}")
    rng = np.random.default_rng(SAMPLE_SEEDS[name])
    patch = make_class_patches(CLASS_NAMES.index(name), 1, size, rng=rng)[0, 0]
    return np.round(patch * 255).astype(np.uint8)


def write_sample_images(folder, size=32):
    """Write ``<folder>/<class>.png`` for each class, the same bytes every run.

    The PNG files hold 8-bit grey pixels and no metadata (no time stamp), so that
    rewriting them reproduces the committed files bit for bit.

    Returns
    -------
    paths : list of pathlib.Path
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png" for name in CLASS_NAMES]
    for name, path in zip(CLASS_NAMES, paths):
        Image.fromarray(sample_image(name, size)).save(path, format="PNG")
    return paths
