"""Data: scikit-learn's bundled 8x8 digits, and single images read with Pillow.

Nothing is downloaded: the digits ship with scikit-learn (an optional dependency, in the
``test`` and ``book`` extras), and ``load_image`` reads local files.
"""

from __future__ import annotations

import numbers
import stat
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

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

    Raises
    ------
    ValueError
        If an argument is malformed, or if either part would be empty (too few
        samples, or a single group).
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
    if held_out.all() or not held_out.any():
        side = "training" if held_out.all() else "validation"
        kind = f"{len(set(groups))} group(s)" if groups is not None else "each class"
        raise ValueError(
            f"validation_size {validation_size} of {n} samples in {kind} leaves no "
            f"{side} sample: the split needs at least two samples of some class"
            + (" and two groups" if groups is not None else "")
        )
    return x[~held_out], y[~held_out], x[held_out], y[held_out]


def load_image(path, size):
    """Read an image file as a grayscale array for a model, shape ``(1, 1, H, W)``.

    The EXIF orientation tag is applied (a phone photo comes out upright). Colour
    images are converted to grey with Pillow's ITU-R 601-2 luma transform; 8-bit images
    are divided by 255 and 16-bit ones (as medical images often are) by 65535, so that
    values lie in ``[0, 1]``. Transparency (an alpha channel, or a transparent colour
    or palette entry, of 8- or 16-bit images) is composited over black, the background
    of a mammogram: a pixel of grey value ``g`` and opacity ``a`` in ``[0, 1]`` reads as
    ``a g``, so a fully transparent pixel is 0 whatever its colour. The image is then
    resized to ``size`` with bilinear interpolation (antialiased when shrinking).

    Memory is bounded: the size and mode in the file's header are checked before any
    pixel is decoded (``MAX_PIXELS``, ``MAX_DECODED_BYTES``); the grey conversion runs
    over strips of rows, and an image of more than twice the needed size is first
    shrunk by averaging blocks of pixels, strip by strip, so that the arrays besides
    the decoded image stay small. A blank image (every pixel the same value, e.g. fully
    transparent) is read, with an ``ImageWarning``: a model would classify it anyway.

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
        If the file is missing or unreadable, has more than ``MAX_PIXELS`` pixels or
        would decode to more than ``MAX_DECODED_BYTES``, or holds floating-point or
        32-bit pixel values (no known full scale to divide by); the message always
        names the path.
    TypeError
        If ``size`` is not an int or a pair of ints.
    """
    height, width = as_pair(size, "size", minimum=1)
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ValueError(f"cannot read image {path}: no such file") from None
    except OSError as error:  # a name too long, no search permission, a link loop
        raise ValueError(f"cannot read image {path}: {error.strerror}") from None
    if not stat.S_ISREG(mode):
        raise ValueError(f"cannot read image {path}: not a regular file")
    try:
        # Pillow warns of a large size (MAX_PIXELS is checked below) and of damaged
        # metadata (EXIF, TIFF tags); a damaged image itself raises.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                grey, visible = _grey(image, path, max(height, width))
                grey = grey.resize((width, height), Image.Resampling.BILINEAR)
    except _Refused:
        raise
    except _DECODE_ERRORS as error:
        # Pillow quotes the path in some messages; once, at the start, is enough.
        detail = str(error).replace(f" {str(path)!r}", "")
        raise ValueError(
            f"cannot read image {path}: {type(error).__name__}: {detail}"
        ) from error
    array = np.asarray(grey, dtype=np.float32)
    if not visible:
        warnings.warn(f"image {path} is fully transparent: it reads as black",
                      ImageWarning, stacklevel=2)
    elif array.min() == array.max():
        warnings.warn(f"image {path} is blank: every pixel reads as {array.min():.3g}",
                      ImageWarning, stacklevel=2)
    # Interpolation weights are non-negative, but float rounding can step a hair outside
    # [0, 1].
    return np.clip(array, 0.0, 1.0)[None, None]


class ImageWarning(UserWarning):
    """An image that ``load_image`` reads but that is unlikely to be what was meant."""


#: Largest decoded image, in bytes, that ``load_image`` accepts: width times height
#: times Pillow's bytes per pixel of the file's mode (1 for 8-bit grey or a palette, 2
#: for 16-bit grey, 4 for colour or an alpha channel). 100 MB holds a 6000 x 4000
#: 16-bit mammogram twice over; a 6000 x 6000 RGBA image (144 MB) is refused.
MAX_DECODED_BYTES = 100_000_000

# Bytes per pixel of Pillow's decoded modes; every other mode takes 4.
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}

# Pixels of a strip that _grey converts at a time.
_STRIP_PIXELS = 2**20

# EXIF orientation -> the transposition that makes the image upright (ImageOps).
_ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _grey(image, path, side):
    """An opened image as Pillow mode "F" in [0, 1], upright and composited.

    Returns the image, shrunk by an integer factor when it has more than twice
    ``side`` pixels on both axes, and whether any pixel is visible (not transparent).
    """
    image.draft(image.mode, (side, side))  # JPEG: decode at 1/2, 1/4 or 1/8 scale
    columns, rows = image.size
    pixels = columns * rows
    if pixels > MAX_PIXELS:
        raise _Refused(
            f"image {path} has {columns} x {rows} = {pixels:,} "
            f"pixels, more than MAX_PIXELS = {MAX_PIXELS:,}"
        )
    decoded = pixels * _MODE_BYTES.get(image.mode, 4)
    if decoded > MAX_DECODED_BYTES:
        raise _Refused(
            f"image {path} has {columns} x {rows} pixels of mode {image.mode!r}, "
            f"which decode to {decoded:,} bytes, more than MAX_DECODED_BYTES = "
            f"{MAX_DECODED_BYTES:,}"
        )
    if image.mode == "F" or (image.mode == "I" and not _within_16_bits(image)):
        raise _Refused(
            f"cannot read image {path}: pixel mode {image.mode!r} with values "
            f"{image.getextrema()} is not 8- or 16-bit grey or colour"
        )
    orientation = image.getexif().get(0x0112)
    factor = max(1, min(columns, rows) // (2 * side))
    # Strips of whole blocks of factor x factor pixels, so that shrinking a strip
    # averages the same blocks as shrinking the whole image would.
    step = max(factor, _STRIP_PIXELS // columns // factor * factor)
    result = Image.new("F", (-(-columns // factor), -(-rows // factor)))
    visible = False
    for top in range(0, rows, step):
        box = (0, top, columns, min(top + step, rows))
        strip, opaque = _composited(image.crop(box))
        visible = visible or opaque
        result.paste(strip.reduce(factor) if factor > 1 else strip, (0, top // factor))
    if orientation in _ORIENTATIONS:
        result = result.transpose(_ORIENTATIONS[orientation])
    return result, visible


def _composited(image):
    """A strip as mode "F" in [0, 1], composited over black, and whether a pixel shows.

    Every operation is per pixel, so strips give the pixels the whole image would.
    """
    transparent = image.info.get("transparency")
    if image.mode in _ALPHA_MODES or (
        transparent is not None and image.mode in ("1", "L", "P", "RGB")
    ):
        rgba = image.convert("RGBA")
        luma = np.asarray(rgba.convert("L"), dtype=np.float32)
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32)
        return Image.fromarray(luma * alpha / np.float32(255 * 255)), bool(alpha.any())
    if image.mode not in _FULL_SCALE:
        image = image.convert("L")
    scale = np.float32(_FULL_SCALE[image.mode])
    grey = np.asarray(image.convert("F")) / scale
    if isinstance(transparent, int) and image.mode in _FULL_SCALE:
        # A 16-bit grey PNG's transparent value (tRNS); Pillow composites 8-bit only.
        opaque = np.asarray(image.convert("I")) != transparent
        return Image.fromarray(grey * opaque), bool(opaque.any())
    return Image.fromarray(grey), True


def _within_16_bits(image):
    """Whether a 32-bit image (Pillow mode "I", some 16-bit PNGs) fits 0..65535."""
    low, high = image.getextrema()
    return low >= 0 and high <= 65535
