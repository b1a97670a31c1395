"""The CBIS-DDSM loader on a tiny fixture tree: CSV files and DICOM images written with pydicom."""

import csv
import sys

import numpy as np
import pytest

from cnn.casestudy.cbis import (
    CROPPED_COLUMN,
    IMAGE_COLUMN,
    MASK_COLUMN,
    crop_square,
    load_cbis_ddsm,
    read_dicom,
)
from cnn.casestudy.synthetic import CLASS_NAMES

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import FileDataset, FileMetaDataset  # noqa: E402
from pydicom.uid import (  # noqa: E402
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

# The header of the official mass_case_description_test_set.csv.
HEADER = ["patient_id", "breast_density", "left or right breast", "image view", "abnormality id",
          "abnormality type", "mass shape", "mass margins", "assessment", "pathology", "subtlety",
          IMAGE_COLUMN, CROPPED_COLUMN, MASK_COLUMN]


def write_dicom(path, pixels, photometric="MONOCHROME2"):
    """A minimal single-frame 16-bit grayscale DICOM file."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Rows, dataset.Columns = pixels.shape
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = photometric
    dataset.BitsAllocated = dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = 0
    dataset.PixelData = pixels.astype("<u2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        pydicom.dcmwrite(path, dataset, enforce_file_format=True)
    except TypeError:  # pydicom 2.x spells the option differently
        pydicom.dcmwrite(path, dataset, write_like_original=False)


def disk(shape, centre, radius, value):
    rows, cols = np.indices(shape)
    inside = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2
    return np.where(inside, value, 0).astype(np.uint16)


CASES = [
    # patient, pathology, lesion centre in the 120 x 90 mammogram
    ("P_00001", "BENIGN", (40, 30)),
    ("P_00002", "MALIGNANT", (80, 60)),
    ("P_00003", "BENIGN_WITHOUT_CALLBACK", (60, 45)),
    ("P_00004", "MALIGNANT", (30, 70)),
]


def case_paths(patient):
    """CSV-style relative paths of the full image, the crop and the mask of one case."""
    full = f"Mass-Test_{patient}_LEFT_CC/1.3.6.1.4.1.9590.1/1.3.6.1.4.1.9590.2/000000.dcm"
    crop = f"Mass-Test_{patient}_LEFT_CC_1/1.3.6.1.4.1.9590.3/1.3.6.1.4.1.9590.4/000000.dcm"
    mask = f"Mass-Test_{patient}_LEFT_CC_1/1.3.6.1.4.1.9590.3/1.3.6.1.4.1.9590.4/000001.dcm"
    return full, crop, mask


def write_csv(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for patient, pathology, full, crop, mask in rows:
            # The official files end the mask path with a newline inside the quoted cell.
            writer.writerow([patient, 3, "LEFT", "CC", 1, "mass", "OVAL", "CIRCUMSCRIBED", 3,
                             pathology, 4, full, crop, mask + "\n"])


@pytest.fixture
def tree(tmp_path):
    """Four cases: a 120 x 90 mammogram with one bright disk, its mask and a 30 x 20 crop."""
    rows = []
    for patient, pathology, centre in CASES:
        full, crop, mask = case_paths(patient)
        background = np.full((120, 90), 1000, dtype=np.uint16)
        write_dicom(tmp_path / full, background + disk((120, 90), centre, 8, 3000))
        write_dicom(tmp_path / mask, disk((120, 90), centre, 8, 255))
        cropped = np.full((30, 20), 1000, dtype=np.uint16)
        cropped[10:20, 5:15] = 4000
        write_dicom(tmp_path / crop, cropped)
        rows.append((patient, pathology, full, crop, mask))
    write_csv(tmp_path / "mass_case_description_test_set.csv", rows)
    return tmp_path, rows


def test_loads_cropped_patches_labels_and_counts(tree):
    root, rows = tree
    data = load_cbis_ddsm(root, [root / "mass_case_description_test_set.csv"], size=16)
    assert data.x.shape == (4, 1, 16, 16) and data.x.dtype == np.float32
    assert data.x.min() >= 0.0 and data.x.max() <= 1.0
    np.testing.assert_array_equal(data.y, [0, 2, 1, 2])
    assert data.y.dtype == np.int64
    assert data.class_counts == {"benign": 1, "benign_without_callback": 1, "malignant": 2}
    assert list(data.class_counts) == list(CLASS_NAMES)
    assert data.sources[1] == "mass_case_description_test_set.csv row 2"
    assert data.skipped == ()
    # One patient id per patch, so that a validation split can keep patients together.
    assert data.patients == tuple(row[0] for row in rows)


def test_cropped_patch_keeps_the_aspect_ratio(tree):
    # The 30 x 20 crop is padded to 30 x 30 before resizing, so its bright 10 x 10 square stays
    # square: as many bright rows as bright columns.
    root, _ = tree
    patch = load_cbis_ddsm(root, root / "mass_case_description_test_set.csv", size=30).x[0, 0]
    bright = patch > 0.5
    assert bright.any(axis=1).sum() == bright.any(axis=0).sum() == 10


def test_roi_crop_is_centred_on_the_mask(tree):
    root, _ = tree
    data = load_cbis_ddsm(root, root / "mass_case_description_test_set.csv", size=21, crop="roi",
                          margin=0.25)
    for patch in data.x[:, 0]:
        assert patch[10, 10] > 0.95  # the disk fills the centre
        assert max(patch[0, 0], patch[0, -1], patch[-1, 0], patch[-1, -1]) < 0.05  # context


def test_several_csv_files_are_concatenated(tree):
    root, rows = tree
    write_csv(root / "calc_case_description_test_set.csv", rows[:1])
    data = load_cbis_ddsm(root, [root / "mass_case_description_test_set.csv",
                                 root / "calc_case_description_test_set.csv"], size=8)
    assert len(data.y) == 5 and data.class_counts["benign"] == 2
    assert data.sources[-1] == "calc_case_description_test_set.csv row 1"


def test_missing_file_names_the_row_and_patient(tree):
    root, _ = tree
    (root / case_paths("P_00002")[1]).unlink()
    with pytest.raises(FileNotFoundError, match=r"row 2 \(patient P_00002\).*000000\.dcm"):
        load_cbis_ddsm(root, root / "mass_case_description_test_set.csv")


def test_unknown_pathology_names_the_row(tree):
    root, rows = tree
    rows[2] = rows[2][:1] + ("PROBABLY_BENIGN",) + rows[2][2:]
    write_csv(root / "bad.csv", rows)
    with pytest.raises(ValueError, match=r"bad\.csv row 3 .*unknown pathology 'PROBABLY_BENIGN'"):
        load_cbis_ddsm(root, root / "bad.csv")


def test_unreadable_dicom_names_the_row(tree):
    root, _ = tree
    (root / case_paths("P_00004")[1]).write_bytes(b"not a DICOM file")
    with pytest.raises(ValueError, match=r"row 4 \(patient P_00004\): cannot read DICOM"):
        load_cbis_ddsm(root, root / "mass_case_description_test_set.csv")


def test_mask_of_the_wrong_size_names_the_row(tree):
    root, _ = tree
    write_dicom(root / case_paths("P_00001")[2], np.ones((10, 10), dtype=np.uint16))
    with pytest.raises(ValueError, match=r"row 1 .*ROI mask has shape \(10, 10\)"):
        load_cbis_ddsm(root, root / "mass_case_description_test_set.csv", crop="roi")


def test_skip_reports_bad_rows_and_loads_the_rest(tree):
    root, _ = tree
    (root / case_paths("P_00002")[1]).unlink()
    (root / case_paths("P_00004")[1]).write_bytes(b"garbage")
    data = load_cbis_ddsm(root, root / "mass_case_description_test_set.csv", size=8,
                          on_error="skip")
    np.testing.assert_array_equal(data.y, [0, 1])
    assert len(data.skipped) == 2
    assert data.skipped[0].startswith("mass_case_description_test_set.csv row 2")


def test_short_row_names_the_row_and_the_empty_cell(tree):
    root, _ = tree
    with open(root / "mass_case_description_test_set.csv", "a", newline="") as handle:
        handle.write("P_00005,3,LEFT,CC,1,mass,OVAL,CIRCUMSCRIBED,3,BENIGN\n")
    with pytest.raises(FileNotFoundError,
                       match=r"row 5 \(patient P_00005\): the file path cell is empty"):
        load_cbis_ddsm(root, root / "mass_case_description_test_set.csv")


def test_missing_column_is_named(tmp_path):
    (tmp_path / "x.csv").write_text("patient_id,pathology\nP_1,BENIGN\n")
    with pytest.raises(ValueError, match="no column 'cropped image file path'"):
        load_cbis_ddsm(tmp_path, tmp_path / "x.csv")


def test_missing_csv(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_cbis_ddsm(tmp_path, tmp_path / "nope.csv")


@pytest.mark.parametrize("kwargs, message", [
    ({"crop": "full"}, "crop must be one of"),
    ({"on_error": "ignore"}, "on_error must be"),
    ({"margin": -0.1}, "margin must be"),
    ({"size": 0}, "size must be >= 1"),
])
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_cbis_ddsm(tmp_path, [], **kwargs)


def test_monochrome1_is_inverted(tmp_path):
    pixels = np.array([[0, 100], [200, 300]], dtype=np.uint16)
    write_dicom(tmp_path / "a.dcm", pixels, photometric="MONOCHROME1")
    np.testing.assert_array_equal(read_dicom(tmp_path / "a.dcm"), 300 - pixels)


def test_crop_square_pads_with_edge_values_outside_the_image():
    pixels = np.arange(12.0).reshape(3, 4)
    window = crop_square(pixels, -1, 2, 3)
    np.testing.assert_array_equal(window, [[2, 3, 3], [2, 3, 3], [6, 7, 7]])


def test_missing_pydicom_gives_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(ImportError, match=r"pip install 'cnn-from-scratch\[dicom\]'"):
        load_cbis_ddsm(tmp_path, [])
