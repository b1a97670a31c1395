"""Data: scikit-learn's bundled 8x8 digits, and single images read with Pillow.

Nothing is downloaded: the digits ship with scikit-learn (an optional dependency, in the
``test`` and ``book`` extras), and ``load_image`` reads local files.
"""

from __future__ import annotations

import numbers
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cnn.checks import as_pair, check_labels

#: Largest image, in pixels (width times height), that ``load_image`` accepts. 40
#: million pixels is more than a full-field digitised mammogram (about 6000 x 4000) and
#: keeps a decoded 16-bit image under 100 MB; larger files are rejected before they are
#: decoded.
MAX_PIXELS = 40_000_000

# Full-scale value of each integer grey mode that load_image reads.
_FULL_SCALE = {
    "L": 255.0,
    "I": 65535.0,
    "I;16": 65535.0,
    "I;16B": 65535.0,
    "I;16L": 65535.0,
}

# Modes with an alpha channel (premultiplied or not).
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}

# What Pillow's decoders raise on damaged or hostile files, besides OSError.
_DECODE_ERRORS = (
    OSError,
    ValueError,
    TypeError,
    SyntaxError,
    EOFError,
    IndexError,
    KeyError,
    struct.error,
    zlib.error,
    UnidentifiedImageError,
    Image.DecompressionBombError,
)


class _Refused(ValueError):
    """An image ``load_image`` reads but refuses; its message already names the file."""


def load_digits(test_size=0.25, seed=0):
    """The 1,797 8x8 handwritten digits of scikit-learn, in training and test sets.

    Pixel values 0..16 are divided by 16. The split is stratified (each digit keeps its
    share in both sets) and seeded, so it is the same on every run.

    Parameters
    ----------
    test_size : float
        Fraction of the samples in the test set, strictly between 0 and 1.
    seed : int
        Seeds the split.

    Returns
    -------
    x_train : numpy.ndarray
        Shape ``(N_train, 1, 8, 8)``, float32 in ``[0, 1]``.
    y_train : numpy.ndarray
        Shape ``(N_train,)``, int64 labels 0..9.
    x_test : numpy.ndarray
        Shape ``(N_test, 1, 8, 8)``, float32 in ``[0, 1]``.
    y_test : numpy.ndarray
        Shape ``(N_test,)``, int64.

    Raises
    ------
    ImportError
        If scikit-learn is not installed.
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
        from sklearn.model_selection import train_test_split
    except ImportError as error:
        raise ImportError(
            "cnn.data.load_digits needs scikit-learn, which ships the digits: install "
            "the 'test' or 'book' extra, e.g. pip install 'cnn-from-scratch[test]', "
            "or pip install scikit-learn"
        ) from error
    if not isinstance(test_size, numbers.Real) or not 0 < test_size < 1:
        raise ValueError(
            f"test_size must be a fraction strictly between 0 and 1, got {test_size!r}"
        )
    digits = sklearn_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y
    )
    return x_train, y_train, x_test, y_test


def train_validation_split(x, y, validation_size=0.2, *, seed, groups=None):
    """Hold out part of a training set for validation, class by class or group by group.

    Settings (epochs, learning rate, class weights, ...) are chosen on the validation
    part; the test set is kept for one final measurement. Without ``groups`` the split
    is stratified: each class gives ``round(validation_size * N_k)`` of its ``N_k``
    samples (at least one, and never all, when it has two or more). With ``groups``
    (e.g. one patient id per image) whole groups go to one side, in a seeded random
    order, until the validation part holds about ``validation_size`` of the samples,
    so that no group is on both sides.

    Parameters
    ----------
    x : numpy.ndarray
        Samples, shape ``(N, ...)``.
    y : numpy.ndarray
        Integer labels, shape ``(N,)``.
    validation_size : float
        Fraction held out, in (0, 1).
    seed : int
        Seeds the choice.
    groups : sequence, optional
        One hashable group key per sample.

    Returns
    -------
    x_train, y_train, x_val, y_val : numpy.ndarray
        The two parts, each in the original order of ``x``.
    """
    n = y.shape[0] if isinstance(y, np.ndarray) and y.ndim == 1 else -1
    check_labels(y, "y", n)
    if not isinstance(x, np.ndarray) or x.ndim == 0 or len(x) != n:
        raise ValueError(
            f"x must be a numpy.ndarray with one sample per label ({n} of them), "
            f"got {type(x).__name__} of shape {np.shape(x)}"
        )
    if not isinstance(validation_size, numbers.Real) or not 0 < validation_size < 1:
        raise ValueError(
            f"validation_size must be a float in (0, 1), got {validation_size!r}"
        )
    rng = np.random.default_rng(seed)
    held_out = np.zeros(n, dtype=bool)
    if groups is None:
        for label in np.unique(y):
            members = rng.permutation(np.flatnonzero(y == label))
            count = round(validation_size * len(members))
            count = min(max(count, 1), len(members) - 1) if len(members) > 1 else 0
            held_out[members[:count]] = True
    else:
        if len(groups) != n:
            raise ValueError(
                f"groups must have one key per sample ({n}), got {len(groups)}"
            )
        keys = np.unique(np.asarray(groups, dtype=str), return_inverse=True)[1]
        for key in rng.permutation(keys.max() + 1 if n else 0):
            if held_out.sum() >= validation_size * n:
                break
            held_out[keys == key] = True
    return x[~held_out], y[~held_out], x[held_out], y[held_out]


def load_image(path, size):
    """Read an image file as a grayscale array for a model, shape ``(1, 1, H, W)``.

    The EXIF orientation tag is applied first (a phone photo comes out upright). Colour
    images are converted to grey with Pillow's ITU-R 601-2 luma transform; 8-bit images
    are divided by 255 and 16-bit ones (as medical images often are) by 65535, so that
    values lie in ``[0, 1]``. Transparency is composited over black, the background of
    a mammogram: a pixel of grey value ``g`` and opacity ``a`` in ``[0, 1]`` reads as
    ``a g``, so a fully transparent pixel is 0 whatever its colour. The image is then
    resized to ``size`` with bilinear interpolation (antialiased when shrinking).

    Parameters
    ----------
    path : str or pathlib.Path
        An image file Pillow can read (PNG, JPEG, TIFF, ...).
    size : int or tuple of two ints
        ``(H, W)`` of the result (NumPy order: height first); an int means a square.

    Returns
    -------
    image : numpy.ndarray
        Shape ``(1, 1, H, W)``, float32 in ``[0, 1]``: a batch of one sample with one
        channel.

    Raises
    ------
    ValueError
        If the file is missing or unreadable, has more than ``MAX_PIXELS`` pixels, or
        holds floating-point or 32-bit pixel values (no known full scale to divide by);
        the message always names the path.
    TypeError
        If ``size`` is not an int or a pair of ints.
    """
    height, width = as_pair(size, "size", minimum=1)
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"cannot read image {path}: no such file")
    try:
        # Pillow warns of a large size (MAX_PIXELS is checked below) and of damaged
        # metadata (EXIF, TIFF tags); a damaged image itself raises.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                grey = _grey(image, path).resize(
                    (width, height), Image.Resampling.BILINEAR
                )
    except _Refused:
        raise
    except _DECODE_ERRORS as error:
        # Pillow quotes the path in some messages; once, at the start, is enough.
        detail = str(error).replace(f" {str(path)!r}", "")
        raise ValueError(
            f"cannot read image {path}: {type(error).__name__}: {detail}"
        ) from error
    array = np.asarray(grey, dtype=np.float32)
    # Interpolation weights are non-negative, but float rounding can step a hair outside
    # [0, 1].
    return np.clip(array, 0.0, 1.0)[None, None]


def _grey(image, path):
    """An opened image as Pillow mode "F" in [0, 1], upright and composited."""
    pixels = image.size[0] * image.size[1]
    if pixels > MAX_PIXELS:
        raise _Refused(
            f"image {path} has {image.size[0]} x {image.size[1]} = {pixels:,} "
            f"pixels, more than MAX_PIXELS = {MAX_PIXELS:,}"
        )
    if image.mode == "F" or (image.mode == "I" and not _within_16_bits(image)):
        raise _Refused(
            f"cannot read image {path}: pixel mode {image.mode!r} with values "
            f"{image.getextrema()} is not 8- or 16-bit grey or colour"
        )
    image = ImageOps.exif_transpose(image)
    if image.mode in _ALPHA_MODES or (
        "transparency" in image.info and image.mode in ("1", "L", "P", "RGB")
    ):
        rgba = image.convert("RGBA")
        luma = np.asarray(rgba.convert("L"), dtype=np.float32)
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32)
        return Image.fromarray(luma * alpha / np.float32(255 * 255))
    if image.mode not in _FULL_SCALE:
        image = image.convert("L")
    scale = np.float32(_FULL_SCALE[image.mode])
    return Image.fromarray(np.asarray(image.convert("F")) / scale)


def _within_16_bits(image):
    """Whether a 32-bit image (Pillow mode "I", some 16-bit PNGs) fits 0..65535."""
    low, high = image.getextrema()
    return low >= 0 and high <= 65535
