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


# --- refusing bad CSV files, pixels and paths -------------------------------------------------

import os  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from cnn.casestudy.cbis import read_case_descriptions, resolve_dicom  # noqa: E402


def write_float_dicom(path, pixels):
    """A single-frame 32-bit float DICOM file (Float Pixel Data), which can hold NaN."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Rows, dataset.Columns = pixels.shape
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = 32
    dataset.BitsStored = 32
    dataset.FloatPixelData = pixels.astype("<f4").tobytes()
    pydicom.dcmwrite(path, dataset, enforce_file_format=True)


def test_a_csv_that_is_not_utf8_names_the_file_and_line(tree):
    root, _ = tree
    path = root / "mass_case_description_test_set.csv"
    data = path.read_bytes().replace(b"P_00003", b"P_0000\xe9", 1)
    path.write_bytes(data)
    line = data[: data.index(b"\xe9")].count(b"\n") + 1
    with pytest.raises(ValueError, match=rf"mass_case_description_test_set\.csv: line {line} is "
                                         r"not UTF-8 text \(byte 0xe9\)"):
        load_cbis_ddsm(root, path)


def test_a_byte_order_mark_is_allowed(tree):
    root, _ = tree
    path = root / "mass_case_description_test_set.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert len(load_cbis_ddsm(root, path, size=8).y) == 4


def test_a_csv_parse_error_names_the_file_row_and_line(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("pathology,cropped image file path\nBENIGN,a.dcm\nBENIGN,"
                    + "x" * (csv.field_size_limit() + 1) + "\n")
    with pytest.raises(ValueError, match=r"long\.csv: row 2 \(line 3\) is not valid CSV: "
                                         r"field larger than field limit"):
        read_case_descriptions(path)
    path.write_text("pathology," + "x" * (csv.field_size_limit() + 1) + "\n")
    with pytest.raises(ValueError, match=r"long\.csv: header \(line 1\) is not valid CSV"):
        read_case_descriptions(path)


def test_duplicate_columns_are_refused(tmp_path):
    path = tmp_path / "twice.csv"
    path.write_text("pathology,cropped image file path, pathology ,,\nBENIGN,a.dcm,MALIGNANT,,\n")
    with pytest.raises(ValueError, match=r"twice\.csv has the column 'pathology' more than once"):
        read_case_descriptions(path)


def test_non_finite_pixels_are_refused_with_the_row(tree):
    root, _ = tree
    crop = root / case_paths("P_00002")[1]
    write_float_dicom(crop, np.array([[1.0, np.nan], [2.0, 3.0]]))
    with pytest.raises(ValueError, match=r"row 2 \(patient P_00002\): DICOM .*000000\.dcm has "
                                         r"NaN or infinite pixel values"):
        load_cbis_ddsm(root, root / "mass_case_description_test_set.csv")
    write_float_dicom(crop, np.array([[1.0, 0.5], [2.0, 3.0]]))  # finite floats are fine
    assert len(load_cbis_ddsm(root, root / "mass_case_description_test_set.csv", size=8).y) == 4


@pytest.mark.parametrize("cell", ["../outside.dcm", "a/../../outside.dcm", "/etc/passwd",
                                  "\\\\server\\share\\x.dcm", "C:\\data\\x.dcm", "c:x.dcm",
                                  "..\\outside.dcm"])
def test_paths_that_leave_the_data_folder_are_refused(tmp_path, cell):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside.dcm").write_bytes(b"secret")
    with pytest.raises(ValueError, match=r"leaves the data folder root="):
        resolve_dicom(root, cell)


def test_a_symlink_out_of_the_data_folder_is_refused_and_one_inside_is_followed(tree, tmp_path):
    root, _ = tree
    full, crop, _ = case_paths("P_00001")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.dcm"
    (root / crop).rename(outside)
    (root / crop).symlink_to(outside)
    with pytest.raises(ValueError, match=r"row 1 \(patient P_00001\): .* is a link to .*outside"
                                         r"\.dcm, outside the data folder"):
        load_cbis_ddsm(root, root / "mass_case_description_test_set.csv")
    (root / crop).unlink()
    (root / crop).symlink_to(os.path.relpath(root / full, (root / crop).parent))
    assert len(load_cbis_ddsm(root, root / "mass_case_description_test_set.csv", size=8).y) == 4


def test_unknown_labels_are_refused_even_when_close(tree):
    root, rows = tree
    for label in ["benign", "MALIGNANT ", "Benign_without_callback", ""]:
        rows[0] = rows[0][:1] + (label,) + rows[0][2:]
        write_csv(root / "bad.csv", rows)
        if label.strip() in {"MALIGNANT"}:  # surrounding spaces are stripped, as in the files
            assert load_cbis_ddsm(root, root / "bad.csv", size=8).y[0] == 2
            continue
        with pytest.raises(ValueError, match=rf"bad\.csv row 1 .*unknown pathology {label!r}"):
            load_cbis_ddsm(root, root / "bad.csv")


def test_class_counts_list_absent_classes_as_zero(tree):
    root, rows = tree
    write_csv(root / "two.csv", [rows[1], rows[3]])  # both malignant
    data = load_cbis_ddsm(root, root / "two.csv", size=8)
    assert data.class_counts == {"benign": 0, "benign_without_callback": 0, "malignant": 2}
    empty = load_cbis_ddsm(root, [], size=8)
    assert empty.x.shape == (0, 1, 8, 8) and empty.x.dtype == np.float32
    assert empty.y.shape == (0,) and empty.y.dtype == np.int64
    assert empty.class_counts == dict.fromkeys(CLASS_NAMES, 0)


def test_crop_square_at_every_edge():
    pixels = np.arange(20.0).reshape(4, 5)
    np.testing.assert_array_equal(crop_square(pixels, 0, 0, 4), pixels[:, :4])  # inside
    np.testing.assert_array_equal(crop_square(pixels, 0, 1, 4), pixels[:, 1:])  # touches right
    np.testing.assert_array_equal(crop_square(pixels, 2, 3, 3),
                                  [[13, 14, 14], [18, 19, 19], [18, 19, 19]])  # bottom right
    np.testing.assert_array_equal(crop_square(pixels, -2, -1, 3),
                                  [[0, 0, 1], [0, 0, 1], [0, 0, 1]])  # top left
    np.testing.assert_array_equal(crop_square(pixels, -1, 0, 6)[0], [0, 1, 2, 3, 4, 4])


CSV_TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=300)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(CSV_TEXT.map(str.encode), st.binary(max_size=300)),
       header=st.sampled_from([b"pathology,cropped image file path\n", b"\xef\xbb\xbfpathology,"
                               b"cropped image file path,pathology\n", b""]))
def test_any_csv_gives_rows_or_a_value_error_naming_it(tmp_path, header, body):
    path = tmp_path / "fuzzed.csv"
    path.write_bytes(header + body)
    try:
        rows = read_case_descriptions(path)
    except ValueError as error:
        assert "fuzzed.csv" in str(error)
    else:
        assert all({"pathology", CROPPED_COLUMN} <= row.keys() for row in rows)
        assert all(isinstance(value, str) for row in rows for value in row.values())


from PIL import Image  # noqa: E402

from cnn.casestudy.cbis import square_box, to_patch  # noqa: E402


@settings(max_examples=150)
@given(height=st.integers(1, 6), width=st.integers(1, 6), side=st.integers(1, 8),
       top=st.integers(-10, 10), left=st.integers(-10, 10))
def test_crop_square_equals_a_window_of_an_edge_padded_image(height, width, side, top, left):
    # The oracle pads far more than needed: padding less than the window needs is the bug.
    pixels = np.arange(height * width, dtype=float).reshape(height, width)
    far = 20
    padded = np.pad(pixels, far, mode="edge")
    expected = padded[top + far:top + far + side, left + far:left + far + side]
    np.testing.assert_array_equal(crop_square(pixels, top, left, side), expected)


def test_square_box_values():
    # side = ceil(6 * 1.5) = 9, centred on the box's centre (12, 23): top 7.5 and left 18.5,
    # rounded half to even as Python does.
    assert square_box(10, 20, 4, 6, 0.25) == (8, 18, 9)
    assert square_box(0, 0, 30, 20, 0.0) == (0, -5, 30)
    assert square_box(5, 5, 1, 1, 0.2) == (4, 4, 2)  # round(4.5) == 4


def test_cropped_patch_is_the_crop_padded_to_a_square_on_both_sides(tree):
    root, _ = tree
    crop = np.arange(30 * 20, dtype=np.uint16).reshape(30, 20) * 7
    write_dicom(root / case_paths("P_00001")[1], crop)
    patch = load_cbis_ddsm(root, root / "mass_case_description_test_set.csv", size=30).x[0, 0]
    padded = np.pad(crop.astype(float), ((0, 0), (5, 5)), mode="edge")  # 5 columns each side
    np.testing.assert_allclose(patch, (padded - padded.min()) / np.ptp(padded), atol=1e-6)


def test_roi_patch_is_the_square_around_the_mask_box(tree):
    root, rows = tree
    full, _, mask_path = case_paths("P_00001")
    pixels = (np.arange(120 * 90).reshape(120, 90) % 997).astype(np.uint16)
    mask = np.zeros((120, 90), np.uint16)
    mask[41:51, 30:60] = 1  # a 0/1 mask (the official ones are 0/255): 10 x 30
    write_dicom(root / full, pixels)
    write_dicom(root / mask_path, mask)
    write_csv(root / "one.csv", rows[:1])
    patch = load_cbis_ddsm(root, root / "one.csv", size=30, crop="roi", margin=0.0).x[0, 0]
    window = pixels[31:61, 30:60].astype(float)  # side 30 centred on row 45.5 -> 31..60
    np.testing.assert_allclose(patch, (window - window.min()) / np.ptp(window), atol=1e-6)
    # Resized bilinearly (antialiased), as load_image does.
    small = load_cbis_ddsm(root, root / "one.csv", size=12, crop="roi", margin=0.0).x[0, 0]
    scaled = ((window - window.min()) / np.ptp(window)).astype(np.float32)
    expected = np.asarray(Image.fromarray(scaled).resize((12, 12), Image.Resampling.BILINEAR))
    np.testing.assert_allclose(small, np.clip(expected, 0, 1), atol=1e-6)


def test_a_constant_patch_becomes_zeros():
    patch = to_patch(np.full((5, 7), 1234.0), 4)
    np.testing.assert_array_equal(patch, np.zeros((4, 4), np.float32))
    assert patch.dtype == np.float32


def test_a_one_pixel_mask_and_an_empty_mask(tree):
    root, rows = tree
    full, _, mask_path = case_paths("P_00001")
    mask = np.zeros((120, 90), np.uint16)
    mask[60, 45] = 255
    write_dicom(root / mask_path, mask)
    write_csv(root / "one.csv", rows[:1])
    assert load_cbis_ddsm(root, root / "one.csv", size=4, crop="roi").x.shape == (1, 1, 4, 4)
    write_dicom(root / mask_path, np.zeros((120, 90), np.uint16))
    with pytest.raises(ValueError, match=r"row 1 \(patient P_00001\): ROI mask is empty$"):
        load_cbis_ddsm(root, root / "one.csv", crop="roi")


def test_defaults_size_64_margin_0_2_and_margin_0_allowed(tree):
    root, _ = tree
    csv_path = root / "mass_case_description_test_set.csv"
    assert load_cbis_ddsm(root, csv_path).x.shape == (4, 1, 64, 64)
    np.testing.assert_array_equal(load_cbis_ddsm(root, csv_path, size=16, crop="roi").x,
                                  load_cbis_ddsm(root, csv_path, size=16, crop="roi",
                                                 margin=0.2).x)
    assert load_cbis_ddsm(root, csv_path, size=8, crop="roi", margin=0.0).x.shape[0] == 4


def test_each_crop_needs_only_its_own_columns(tmp_path, tree):
    root, rows = tree
    full, crop, mask = case_paths("P_00001")
    (root / "roi.csv").write_text(f"pathology,{IMAGE_COLUMN},{MASK_COLUMN}\nBENIGN,{full},{mask}\n")
    assert load_cbis_ddsm(root, root / "roi.csv", size=8, crop="roi").y.tolist() == [0]
    (root / "no_mask.csv").write_text(f"pathology,{IMAGE_COLUMN},{CROPPED_COLUMN}\n"
                                      f"BENIGN,{full},{crop}\n")
    with pytest.raises(ValueError, match=r"^no_mask\.csv has no column 'ROI mask file path'; "):
        load_cbis_ddsm(root, root / "no_mask.csv", crop="roi")
    (root / "bare.csv").write_text("pathology\nBENIGN\n")
    with pytest.raises(ValueError, match=r"^bare\.csv has no column 'image file path', "
                                         r"'ROI mask file path'; its columns are \['pathology'\]$"):
        load_cbis_ddsm(root, root / "bare.csv", crop="roi")


def test_a_parse_error_in_the_first_data_row_is_row_1(tmp_path):
    path = tmp_path / "first.csv"
    path.write_text("pathology,cropped image file path\nBENIGN,"
                    + "x" * (csv.field_size_limit() + 1) + "\n")
    with pytest.raises(ValueError, match=r"first\.csv: row 1 \(line 2\) is not valid CSV"):
        read_case_descriptions(path)


def test_exact_messages(tmp_path, monkeypatch):
    path = tmp_path / "twice.csv"
    path.write_text("pathology,a,b,a,b\n")
    with pytest.raises(ValueError, match=r"^twice\.csv has the column 'a', 'b' more than once, "
                                         r"so a row's value would be ambiguous$"):
        read_case_descriptions(path, columns=())
    with pytest.raises(ValueError, match=r"^file path '\.\./x\.dcm' leaves the data folder "
                                         r"root=r: CSV paths must be relative to it, without "
                                         r"'\.\.'$"):
        resolve_dicom("r", "../x.dcm")
    (tmp_path / "bad.dcm").write_bytes(b"not a DICOM file")
    with pytest.raises(ValueError, match=r"^cannot read DICOM .*bad\.dcm: [A-Za-z]+Error: "):
        read_dicom(tmp_path / "bad.dcm")
    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(ImportError, match=r"^reading CBIS-DDSM DICOM files needs pydicom: install "
                                          r"the 'dicom' extra, e\.g\. pip install "
                                          r"'cnn-from-scratch\[dicom\]', or pip install pydicom$"):
        load_cbis_ddsm(tmp_path, [])


def test_a_multi_frame_dicom_is_refused(tmp_path, monkeypatch):
    class Frames:  # a header without NumberOfFrames, pixel data of three axes
        pixel_array = np.zeros((2, 3, 3))

        def get(self, key, default=None):
            return default

    monkeypatch.setattr(pydicom, "dcmread", lambda path, **options: Frames())
    with pytest.raises(ValueError, match=r"^DICOM x\.dcm has pixel array of shape \(2, 3, 3\), "
                                         r"expected one grayscale frame \(H, W\)$"):
        read_dicom("x.dcm")
