"""Loader for the real CBIS-DDSM data set, for readers who download it themselves.

CBIS-DDSM (Lee et al., 2017; Sawyer-Lee et al., 2016) comes as DICOM files plus four
case-description CSV files: ``mass_case_description_train_set.csv``,
``mass_case_description_test_set.csv``, ``calc_case_description_train_set.csv`` and
``calc_case_description_test_set.csv``. Each row describes one abnormality: its
``pathology`` (``BENIGN``, ``BENIGN_WITHOUT_CALLBACK`` or ``MALIGNANT``) and the paths,
relative to the download folder, of the full mammogram (``image file path``), the
region-of-interest crop (``cropped image file path``) and the binary ROI mask
(``ROI mask file path``).

``load_cbis_ddsm`` reads those rows, reads the DICOM files with pydicom (the optional
extra ``dicom``), turns every abnormality into a square grayscale patch of side S in [0,
1] and returns the patches with their labels and the class counts. Nothing is
downloaded.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path, PurePosixPath
from typing import NamedTuple

import numpy as np
from PIL import Image

from cnn.casestudy.synthetic import CLASS_NAMES
from cnn.checks import check_int
from cnn.data import MAX_PIXELS

PATHOLOGY_LABELS = {"BENIGN": 0, "BENIGN_WITHOUT_CALLBACK": 1, "MALIGNANT": 2}
"""CBIS-DDSM ``pathology`` value -> label, an index into ``CLASS_NAMES``."""

IMAGE_COLUMN = "image file path"
CROPPED_COLUMN = "cropped image file path"
MASK_COLUMN = "ROI mask file path"

CROPS = ("cropped", "roi")
"""Ways to cut a patch, the data set's own ROI crop or the full mammogram around the
bounding box of the ROI mask (with a margin of context)."""


class CBISDataset(NamedTuple):
    """Patches read from CBIS-DDSM, with their labels and where they come from."""

    #: Patches in [0, 1], shape ``(N, 1, S, S)``, float32.
    x: np.ndarray
    #: Labels, indices into ``CLASS_NAMES``, shape ``(N,)``, int64.
    y: np.ndarray
    #: Number of patches per class name, in ``CLASS_NAMES`` order.
    class_counts: dict
    #: Where each patch comes from, ``"<csv file name> row <k>"``.
    sources: tuple
    #: One error message per row left out (only with ``on_error="skip"``).
    skipped: tuple
    #: The patient of each patch (``patient_id``; the source when the CSV has none),
    #: for splits that keep every patient on one side.
    patients: tuple = ()


def _import_pydicom():
    try:
        import pydicom
    except ImportError as error:
        raise ImportError(
            "reading CBIS-DDSM DICOM files needs pydicom: install the 'dicom' extra, "
            "e.g. pip install 'cnn-from-scratch[dicom]', or pip install pydicom"
        ) from error
    return pydicom


def read_case_descriptions(csv_path, columns=(CROPPED_COLUMN,)):
    """Rows of one CBIS-DDSM case-description CSV file, with the columns checked.

    Header names are stripped of surrounding spaces (the official files are not
    consistent). The file must be UTF-8 text (a byte-order mark is allowed).

    Parameters
    ----------
    csv_path : str or pathlib.Path
    columns : tuple of str
        Path columns that must be present besides ``pathology``.

    Returns
    -------
    rows : list of dict
        One dict per data row, mapping column name to the stripped cell text.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not UTF-8 text or not valid CSV (the message names the file, the
        row and the line), a column name appears twice, or a required column is
        missing.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"CBIS-DDSM case-description file {csv_path} not found")
    reader = csv.reader(io.StringIO(_read_text(csv_path), newline=""))
    rows = []
    try:
        header = [name.strip() for name in next(reader, [])]
        _check_header(csv_path, header, columns)
        for row in reader:
            # A short row gets empty cells, so that the error names the row and the
            # empty column.
            if row:
                cells = row + [""] * len(header)
                rows.append({name: cell.strip() for name, cell in zip(header, cells)})
    except csv.Error as error:
        where = f"row {len(rows) + 1}" if rows or reader.line_num > 1 else "header"
        raise ValueError(
            f"{csv_path}: {where} (line {reader.line_num}) is not valid CSV: {error}"
        ) from error
    return rows


def _read_text(csv_path):
    """The text of a UTF-8 file; an error names the line of the first bad byte."""
    data = csv_path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ValueError(
            f"{csv_path}: line {line} is not UTF-8 text (byte "
            f"0x{data[error.start]:02x}); save the file as UTF-8"
        ) from error


def _check_header(csv_path, header, columns):
    """Refuse a header without the needed columns or with a name twice."""
    twice = sorted({name for name in header if name and header.count(name) > 1})
    if twice:
        raise ValueError(
            f"{csv_path.name} has the column {', '.join(map(repr, twice))} more than "
            "once, so a row's value would be ambiguous"
        )
    missing = [name for name in ("pathology", *columns) if name not in header]
    if missing:
        raise ValueError(
            f"{csv_path.name} has no column {', '.join(map(repr, missing))}; "
            f"its columns are {header}"
        )


def resolve_dicom(root, relative_path):
    """The DICOM file a CSV cell points to: ``root / relative_path``.

    The CSV paths are relative to the download folder, e.g.
    ``Mass-Training_P_00001_LEFT_CC/1.3.6.../1.3.6.../000000.dcm``; backslashes count as
    separators. No other file is guessed: a crop and its mask live in the same folder,
    and a guess could silently swap them. The file must stay inside ``root``: an
    absolute path, a drive letter, a ``..`` or a symbolic link that leads out of the
    folder is refused, so that a CSV file cannot make the loader read any file.

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    FileNotFoundError
        If the cell is empty or the file does not exist.
    ValueError
        If the path leaves ``root``.
    """
    text = relative_path.replace("\\", "/")
    parts = PurePosixPath(text).parts
    if not parts:
        raise FileNotFoundError("the file path cell is empty")
    if text.startswith("/") or re.match(r"[A-Za-z]:", text) or ".." in parts:
        raise ValueError(
            f"file path {relative_path!r} leaves the data folder root={root}: CSV "
            "paths must be relative to it, without '..'"
        )
    path = Path(root).joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found (CSV paths are taken relative to root={root})"
        )
    if not path.resolve().is_relative_to(Path(root).resolve()):
        raise ValueError(
            f"{path} is a link to {path.resolve()}, outside the data folder root={root}"
        )
    return path


def read_dicom(path):
    """Pixel array of a grayscale DICOM file, float64, with bright meaning dense.

    ``MONOCHROME1`` images (where a high value means dark) are inverted.

    Returns
    -------
    pixels : (H, W) float64

    Raises
    ------
    ValueError
        If the file is not a readable single-frame grayscale DICOM image, its header
        declares more than ``cnn.data.MAX_PIXELS`` pixels (checked before the pixel
        data are read), or it has NaN or infinite pixel values (possible in float
        pixel data).
    """
    pydicom = _import_pydicom()
    # pydicom raises many types (InvalidDicomError, AttributeError, ...): each becomes
    # a ValueError naming the file.
    try:
        # Large elements (the pixel data) are read only when used: the size the header
        # declares is checked first, so a small compressed file cannot claim gigabytes.
        dataset = pydicom.dcmread(path, defer_size=4096)
    except Exception as error:
        raise _unreadable(path, error) from error
    _check_dicom_size(dataset, path)
    try:
        pixels = np.asarray(dataset.pixel_array, dtype=np.float64)
    except Exception as error:
        raise _unreadable(path, error) from error
    if pixels.ndim != 2:
        raise ValueError(
            f"DICOM {path} has pixel array of shape {pixels.shape}, expected one "
            f"grayscale frame (H, W)"
        )
    if not np.isfinite(pixels).all():
        raise ValueError(f"DICOM {path} has NaN or infinite pixel values")
    if getattr(dataset, "PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1":
        pixels = pixels.max() - pixels
    return pixels


def _unreadable(path, error):
    return ValueError(f"cannot read DICOM {path}: {type(error).__name__}: {error}")


def _check_dicom_size(dataset, path):
    """Refuse, from the header, all but one grey frame of at most ``MAX_PIXELS``."""
    rows, columns = int(dataset.get("Rows", 0)), int(dataset.get("Columns", 0))
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    samples = int(dataset.get("SamplesPerPixel", 1))
    if frames != 1 or samples != 1:
        raise ValueError(
            f"DICOM {path} has {frames} frame(s) of {samples} sample(s) per pixel, "
            "expected one grayscale frame (H, W)"
        )
    if rows * columns > MAX_PIXELS:
        raise ValueError(
            f"DICOM {path} declares {rows} x {columns} = {rows * columns:,} pixels, "
            f"more than MAX_PIXELS = {MAX_PIXELS:,}"
        )


def square_box(top, left, height, width, margin):
    """A square around a box, grown by ``margin`` times its larger side.

    Returns
    -------
    top, left, side : int
        The square may reach outside the image; ``crop_square`` pads it.
    """
    side = int(np.ceil(max(height, width) * (1 + 2 * margin)))
    return (
        int(round(top + height / 2 - side / 2)),
        int(round(left + width / 2 - side / 2)),
        side,
    )


def crop_square(pixels, top, left, side):
    """The ``side x side`` window at ``(top, left)``, edge-padded outside the image."""
    height, width = pixels.shape
    pad = max(0, -top, -left, top + side - height, left + side - width)
    padded = np.pad(pixels, pad, mode="edge")
    return padded[top + pad:top + pad + side, left + pad:left + pad + side]


def to_patch(pixels, size):
    """Square window -> ``(S, S)`` float32 in [0, 1], min-max scaled and resized.

    The scaling is per patch, because exposure and digitiser differ from film to film; a
    constant patch becomes all zeros.
    """
    low, high = pixels.min(), pixels.max()
    scaled = (pixels - low) / (high - low) if high > low else np.zeros_like(pixels)
    image = Image.fromarray(scaled.astype(np.float32))
    resized = np.asarray(
        image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32
    )
    return np.clip(resized, 0.0, 1.0)


def _patch_from_row(row, root, size, crop, margin):
    """One abnormality's patch, ``(S, S)``; errors name the file, the caller the row."""
    if crop == "cropped":
        pixels = read_dicom(resolve_dicom(root, row[CROPPED_COLUMN]))
        height, width = pixels.shape
        return to_patch(
            crop_square(pixels, *square_box(0, 0, height, width, 0.0)), size
        )
    pixels = read_dicom(resolve_dicom(root, row[IMAGE_COLUMN]))
    mask = read_dicom(resolve_dicom(root, row[MASK_COLUMN])) > 0
    if mask.shape != pixels.shape:
        raise ValueError(f"ROI mask has shape {mask.shape} but the mammogram has shape "
                         f"{pixels.shape}")
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise ValueError("ROI mask is empty")
    box = square_box(rows.min(), cols.min(), rows.max() - rows.min() + 1,
                     cols.max() - cols.min() + 1, margin)
    return to_patch(crop_square(pixels, *box), size)


def load_cbis_ddsm(
    root, csv_files, size=64, crop="cropped", margin=0.2, on_error="raise"
):
    """Patches, labels and class counts from CBIS-DDSM CSV and DICOM files.

    Parameters
    ----------
    root : str or pathlib.Path
        Folder the CSV paths are relative to (the download folder).
    csv_files : sequence of str or pathlib.Path
        Case-description files, e.g. the mass and calcification test sets.
    size : int
        Side S of the square patches.
    crop : {"cropped", "roi"}
        ``"cropped"`` reads the data set's own ROI crop (``cropped image file path``),
        pads it to a square and resizes it; ``"roi"`` cuts a square around the bounding
        box of the ROI mask (``ROI mask file path``) out of the full mammogram
        (``image file path``).
    margin : float
        With ``crop="roi"``, context added on each side, as a fraction of the box's
        larger side.
    on_error : {"raise", "skip"}
        Stop at the first bad row, or leave it out and report it in ``skipped``.

    Returns
    -------
    CBISDataset
        ``x : (N, 1, S, S)`` float32, ``y : (N,)`` int64, ``class_counts``, ``sources``,
        ``skipped``, ``patients``.

    Raises
    ------
    ValueError
        For an unknown ``pathology`` value, an unreadable DICOM file or an unusable ROI
        mask; the message names the CSV file and the row (1 = first data row) and the
        patient.
    FileNotFoundError
        For a missing CSV or DICOM file, likewise naming the row.
    ImportError
        If pydicom is not installed.
    """
    size = check_int(size, "size")
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if not np.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
    if isinstance(csv_files, (str, Path)):
        csv_files = [csv_files]
    _import_pydicom()
    columns = (CROPPED_COLUMN,) if crop == "cropped" else (IMAGE_COLUMN, MASK_COLUMN)
    patches, labels, sources, skipped, patients = [], [], [], [], []
    for csv_path in map(Path, csv_files):
        for number, row in enumerate(
            read_case_descriptions(csv_path, columns), start=1
        ):
            where = f"{csv_path.name} row {number}"
            if "patient_id" in row:
                where += f" (patient {row['patient_id']})"
            try:
                pathology = row["pathology"]
                if pathology not in PATHOLOGY_LABELS:
                    raise ValueError(
                        f"unknown pathology {pathology!r}, expected one of "
                        f"{sorted(PATHOLOGY_LABELS)}"
                    )
                patch = _patch_from_row(row, root, size, crop, margin)
            except (ValueError, FileNotFoundError) as error:
                if on_error == "raise":
                    raise type(error)(f"{where}: {error}") from error
                skipped.append(f"{where}: {error}")
                continue
            patches.append(patch)
            labels.append(PATHOLOGY_LABELS[pathology])
            sources.append(f"{csv_path.name} row {number}")
            patients.append(row.get("patient_id") or sources[-1])
    x = (
        np.stack(patches)[:, None]
        if patches
        else np.zeros((0, 1, size, size), np.float32)
    )
    y = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(y, minlength=len(CLASS_NAMES))
    class_counts = {name: int(count) for name, count in zip(CLASS_NAMES, counts)}
    return CBISDataset(
        x, y, class_counts, tuple(sources), tuple(skipped), tuple(patients)
    )
