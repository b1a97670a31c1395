"""The saved-model file: atomic saves, and loads that refuse every bad file before reading it.

The contract: ``Sequential.save`` never leaves a half-written file where a good one was, and
``Sequential.load`` either loads exactly what ``save`` wrote or raises one ``ValueError`` that
names the file, leaving the model untouched. Hypothesis generates the damaged files.
"""

import io
import os
import stat
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnn.modelfile
from cnn.layers import Conv2D, Dense, Flatten, ReLU
from cnn.model import Sequential
from cnn.modelfile import MEMBER_OVERHEAD

ROOT = Path(__file__).resolve().parent.parent
# Hypothesis reuses a test's tmp_path across examples; every example writes its own file.
EXAMPLES = settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])


def tiny_net(seed=0, dtype=np.float32):
    """Keys "0.w" (2, 1, 3, 3), "0.b" (2,), "3.w" (8, 3), "3.b" (3,); input (N, 1, 4, 4)."""
    rng = np.random.default_rng(seed)
    model = Sequential([Conv2D(1, 2, 3, rng=rng, dtype=dtype), ReLU(), Flatten(),
                        Dense(8, 3, rng=rng, dtype=dtype)])
    for layer in model.layers:  # non-zero biases, so that a swapped or zeroed bias shows
        if "b" in layer.params:
            layer.params["b"][:] = rng.standard_normal(layer.params["b"].shape)
    return model


def snapshot(model):
    return {key: value.copy() for key, value in model.parameters().items()}


def assert_params_equal(model, expected):
    params = model.parameters()
    assert params.keys() == expected.keys()
    for key, value in expected.items():
        assert params[key].dtype == value.dtype
        np.testing.assert_array_equal(params[key], value)


def npy_bytes(array=None, header=None, version=(1, 0)):
    """One .npy member: an array as NumPy writes it, or a hand-made header and no data."""
    buffer = io.BytesIO()
    if header is None:
        np.lib.format.write_array(buffer, array, version=version, allow_pickle=False)
    else:
        np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def write_zip(path, members, compression=zipfile.ZIP_STORED):
    """A zip file with the given name -> bytes members, in that order."""
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def good_members(model):
    return {f"{key}.npy": npy_bytes(value) for key, value in model.parameters().items()}


def load_fails(model, path, pattern):
    """Load must raise one ValueError naming the file and matching ``pattern``; nothing changes."""
    before = snapshot(model)
    with pytest.raises(ValueError, match=pattern) as error:
        model.load(path)
    assert str(error.value).startswith(f"cannot read saved model {path}: ")
    assert_params_equal(model, before)
    return error.value


# --- save -----------------------------------------------------------------------------------

def test_save_writes_npz_without_pickle_and_returns_the_path(tmp_path):
    model = tiny_net()
    written = model.save(tmp_path / "m")  # .npz appended, as numpy does
    assert written == tmp_path / "m.npz" and written.is_file()
    with np.load(written, allow_pickle=False) as archive:
        assert sorted(archive.files) == sorted(model.parameters())
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]  # no temporary file left


def test_save_keeps_the_file_mode_and_gives_new_files_the_umask_mode(tmp_path):
    path = tmp_path / "m.npz"
    tiny_net().save(path)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    path.chmod(0o640)
    tiny_net(1).save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_save_refuses_non_finite_weights_and_writes_nothing(tmp_path):
    model = tiny_net()
    model.parameters()["3.b"][1] = np.inf
    with pytest.raises(ValueError, match=r"cannot save the model to .*m.npz: parameter '3.b' "
                                         r"contains NaN or infinity"):
        model.save(tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("path", ["", "folder/"])
def test_save_refuses_a_path_that_names_no_file(path):
    with pytest.raises(ValueError, match="path must name a file"):
        tiny_net().save(path)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fraction=st.floats(0, 1), error=st.sampled_from([OSError(28, "No space left on device"),
                                                         KeyboardInterrupt()]))
def test_a_save_that_fails_halfway_leaves_the_old_file_intact(tmp_path, fraction, error):
    folder = tmp_path / f"run{len(os.listdir(tmp_path))}"
    folder.mkdir()
    path = folder / "m.npz"
    tiny_net(0).save(path)
    old = path.read_bytes()
    real_savez = np.savez

    def failing_savez(handle, **arrays):  # writes part of the file, then the disk is full
        buffer = io.BytesIO()
        real_savez(buffer, **arrays)
        handle.write(buffer.getvalue()[: int(fraction * len(buffer.getvalue()))])
        raise error

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cnn.modelfile.np, "savez", failing_savez)
        with pytest.raises(type(error)):
            tiny_net(1).save(path)
    assert path.read_bytes() == old
    assert os.listdir(folder) == ["m.npz"]  # the temporary file is gone too
    model = tiny_net(2)
    model.load(path)
    assert_params_equal(model, snapshot(tiny_net(0)))


def test_train_out_over_a_model_on_a_full_disk_keeps_the_old_model(tmp_path):
    # The measured failure: with a file-size limit, `cnn train --out` cut the old model to
    # 100 kB. A real limit (RLIMIT_FSIZE) in a child process, set after the imports.
    out = tmp_path / "model.npz"
    script = textwrap.dedent(f"""
        import resource, signal, sys
        from cnn.cli import main
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
        sys.exit(main(["train", "--epochs", "1", "--n-per-class", "6", "--seed", "1",
                       "--out", {str(out)!r}]))
    """)
    run = [sys.executable, "-c"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.run(run + [script.replace("100_000, 100_000", "-1, -1")], env=env,
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    old = out.read_bytes()
    assert len(old) > 100_000
    second = subprocess.run(run + [script], env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 1
    assert "cnn train: error: cannot save the model to" in second.stderr
    assert "Traceback" not in second.stderr
    assert out.read_bytes() == old
    assert os.listdir(tmp_path) == ["model.npz"]


# --- load: hand-made bad files --------------------------------------------------------------

def test_round_trip_is_exact_and_in_place(tmp_path):
    saved = tiny_net(0)
    saved.save(tmp_path / "m.npz")
    model = tiny_net(1)
    arrays = model.parameters()
    model.load(tmp_path / "m.npz")
    assert_params_equal(model, snapshot(saved))
    assert all(model.parameters()[key] is arrays[key] for key in arrays)


def test_load_assigns_by_key_not_by_order(tmp_path):
    # Members in reverse order, and two arrays of the same shape and dtype ("0.b" and a bias
    # of another layer would fit each other's place only if loading went by position).
    saved = tiny_net(0)
    members = dict(reversed(list(good_members(saved).items())))
    write_zip(tmp_path / "m.npz", members)
    model = tiny_net(1)
    model.load(tmp_path / "m.npz")
    assert_params_equal(model, snapshot(saved))


def test_load_reads_fortran_order_and_compressed_members(tmp_path):
    saved = tiny_net(0)
    members = {f"{key}.npy": npy_bytes(np.asfortranarray(value))
               for key, value in saved.parameters().items()}
    write_zip(tmp_path / "m.npz", members, compression=zipfile.ZIP_DEFLATED)
    model = tiny_net(1)
    model.load(tmp_path / "m.npz")
    assert_params_equal(model, snapshot(saved))
    np.savez_compressed(tmp_path / "c.npz", **saved.parameters())
    model = tiny_net(1)
    model.load(tmp_path / "c.npz")
    assert_params_equal(model, snapshot(saved))


def test_load_reads_npy_format_2(tmp_path):
    saved = tiny_net(0)
    members = {f"{key}.npy": npy_bytes(value, version=(2, 0))
               for key, value in saved.parameters().items()}
    write_zip(tmp_path / "m.npz", members)
    model = tiny_net(1)
    model.load(tmp_path / "m.npz")
    assert_params_equal(model, snapshot(saved))


def replace_member(key, data):
    def make(path, model):
        members = good_members(model)
        members[f"{key}.npy"] = data
        write_zip(path, members)
    return make


def huge_header(path, model):
    members = good_members(model)
    members["0.w.npy"] = npy_bytes(header={"descr": "<f4", "fortran_order": False,
                                           "shape": (10**6, 10**6)})
    write_zip(path, members)


BAD_FILES = [
    ("npy instead of npz", lambda p, m: np.save(p.open("wb"), m.parameters()["0.w"]),
     r": it is a \.npy file \(one array\), not an \.npz archive of named arrays$"),
    ("text", lambda p, m: p.write_text("weights: 1, 2, 3"), r"File is not a zip file"),
    ("empty", lambda p, m: p.write_bytes(b""), r"cannot read saved model"),
    ("member not npy", lambda p, m: write_zip(p, {**good_members(m), "notes.txt": b"hi"}),
     r": member 'notes.txt' is not a \.npy array \(a saved model holds only \.npy arrays\)$"),
    ("member twice", lambda p, m: write_zip(p, good_members(m)) or zipfile.ZipFile(p, "a")
     .writestr("0.b.npy", npy_bytes(m.parameters()["0.b"])),
     r"member '0.b.npy' appears twice"),
    ("missing key", lambda p, m: write_zip(p, {k: v for k, v in good_members(m).items()
                                               if k != "3.b.npy"}),
     r"missing keys \['3.b'\], unexpected keys \[\]"),
    ("unexpected key", lambda p, m: write_zip(p, {**good_members(m),
                                                  "4.w.npy": npy_bytes(np.zeros(2))}),
     r"missing keys \[\], unexpected keys \['4.w'\]"),
    ("renamed key", lambda p, m: write_zip(p, {k.replace("3.", "4."): v
                                               for k, v in good_members(m).items()}),
     r"missing keys \['3.b', '3.w'\], unexpected keys \['4.b', '4.w'\]"),
    ("wrong shape", replace_member("3.w", npy_bytes(np.zeros((3, 8), np.float32))),
     r"'3.w' has shape \(3, 8\) and dtype float32, the model expects shape \(8, 3\) and dtype "
     r"float32"),
    ("wrong dtype", replace_member("3.b", npy_bytes(np.zeros(3))),
     r"'3.b' has shape \(3,\) and dtype float64, the model expects shape \(3,\) and dtype "
     r"float32"),
    ("object dtype", replace_member("3.b", npy_bytes(header={"descr": "|O", "fortran_order":
                                                             False, "shape": (3,)})),
     r"'3.b' has shape \(3,\) and dtype object"),
    ("enormous header", huge_header, r"'0.w' has shape \(1000000, 1000000\)"),
    ("nan", replace_member("0.b", npy_bytes(np.array([0.0, np.nan], np.float32))),
     r"'0.b' contains NaN or infinity"),
    ("inf", replace_member("3.w", npy_bytes(np.full((8, 3), -np.inf, np.float32))),
     r"'3.w' contains NaN or infinity"),
    ("truncated data", replace_member("3.w", npy_bytes(np.zeros((8, 3), np.float32))[:-4]),
     r"'3.w' has 92 bytes of data, its header declares 96 bytes"),
    ("extra data", replace_member("3.w", npy_bytes(np.zeros((8, 3), np.float32)) + b"\0"),
     r"'3.w' has more of data, its header declares 96 bytes"),
    ("bad magic", replace_member("0.b", b"\x93NUMPX" + npy_bytes(np.zeros(2, np.float32))[6:]),
     r"the magic string is not correct"),
    ("npy version 3", replace_member("0.b", b"\x93NUMPY\x03\x00"
                                     + npy_bytes(np.zeros(2, np.float32))[8:]),
     r"'0.b' has \.npy format version \(3, 0\), not 1\.0 or 2\.0"),
    ("garbage header", replace_member("0.b", b"\x93NUMPY\x01\x00\x10\x00{'descr': <<<<<<}\n"),
     r": '0.b' has an unreadable \.npy header: (SyntaxError|TokenError|ValueError): "),
]


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("name, make, pattern", BAD_FILES, ids=[case[0] for case in BAD_FILES])
def test_load_refuses_a_bad_file_naming_it(tmp_path, name, make, pattern):
    path = tmp_path / "bad.npz"
    make(path, tiny_net(5))
    load_fails(tiny_net(0), path, pattern)


def test_load_refuses_a_corrupt_compressed_member(tmp_path):
    path = tmp_path / "m.npz"
    np.savez_compressed(path, **tiny_net(5).parameters())
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("3.w.npy")
    local = info.header_offset  # the local header's name and extra lengths are at 26 and 28
    start = local + 30 + int.from_bytes(data[local + 26:local + 28], "little") + int.from_bytes(
        data[local + 28:local + 30], "little")
    assert info.compress_size > 40
    for offset in range(start + 20, start + 30):  # inside the deflate stream
        data[offset] ^= 0x5A
    path.write_bytes(bytes(data))
    load_fails(tiny_net(0), path, r"cannot read saved model .*: (Error|Bad CRC|'3.w')")


def test_load_refuses_a_folder_and_a_missing_file(tmp_path):
    load_fails(tiny_net(0), tmp_path, r": not a regular file$")
    with pytest.raises(FileNotFoundError) as error:
        tiny_net(0).load(tmp_path / "nowhere.npz")
    assert (error.value.errno, error.value.strerror, error.value.filename) == (
        2, "no such saved model", str(tmp_path / "nowhere.npz"))


def test_load_refuses_a_file_larger_than_the_model_can_need_before_opening_it(tmp_path):
    model = tiny_net(0)
    data = sum(value.nbytes for value in model.parameters().values())
    limit = data + MEMBER_OVERHEAD * (len(model.parameters()) + 1)
    path = tmp_path / "big.npz"
    model.save(path)
    with path.open("ab") as handle:  # a zip may carry bytes after it: still readable
        handle.write(b"\0" * (limit - path.stat().st_size))
    assert path.stat().st_size == limit
    tiny_net(1).load(path)  # exactly at the limit: accepted
    with path.open("ab") as handle:
        handle.write(b"\0")
    load_fails(tiny_net(1), path, rf"the file has {limit + 1:,} bytes, more than the "
                                  rf"{limit:,} that a model of this architecture can need")


def test_an_unexpected_key_is_refused_before_any_data_is_read(tmp_path):
    # A 64 MB array of zeros compresses to 64 kB: the old loader decompressed all of it
    # (1.6 GiB measured with a larger member) before finding the key unexpected.
    path = tmp_path / "bomb.npz"
    members = good_members(tiny_net(5))
    members["x.npy"] = npy_bytes(np.zeros(8 * 2**20))
    write_zip(path, members, compression=zipfile.ZIP_DEFLATED)
    model = tiny_net(0)
    limit = sum(v.nbytes for v in model.parameters().values()) + MEMBER_OVERHEAD * 5
    with pytest.MonkeyPatch.context() as patch:  # the size check alone would refuse it
        patch.setattr(cnn.modelfile, "MEMBER_OVERHEAD", 10**9)
        tracemalloc.start()
        try:
            load_fails(model, path, r"unexpected keys \['x'\]")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 2**20  # not the 64 MB of the member
    assert path.stat().st_size > limit
    load_fails(model, path, r"more than the")


# --- load: generated bad files --------------------------------------------------------------

@pytest.fixture(scope="module")
def saved_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "m.npz"
    tiny_net(5).save(path)
    return path.read_bytes()


def edits(size):
    """Ways to damage a file of ``size`` bytes: cut it, flip bytes, insert or overwrite."""
    position = st.integers(0, size - 1)
    return st.one_of(
        st.tuples(st.just("cut"), position, st.just(b"")),
        st.tuples(st.just("flip"), position, st.binary(min_size=1, max_size=8)),
        st.tuples(st.just("insert"), position, st.binary(min_size=1, max_size=64)),
        st.tuples(st.just("overwrite"), position, st.binary(min_size=1, max_size=64)),
    )


def damage(data, edit):
    kind, at, payload = edit
    if kind == "cut":
        return data[:at]
    if kind == "flip":
        changed = bytes(b ^ (p or 1) for b, p in zip(data[at:at + len(payload)], payload))
        return data[:at] + changed + data[at + len(changed):]
    if kind == "insert":
        return data[:at] + payload + data[at:]
    return data[:at] + payload + data[at + len(payload):]


@EXAMPLES
@given(data=st.data())
def test_a_damaged_file_loads_exactly_or_is_refused(tmp_path, saved_bytes, data):
    damaged = saved_bytes
    for edit in data.draw(st.lists(edits(len(saved_bytes)), min_size=1, max_size=3)):
        if damaged:
            damaged = damage(damaged, edit)
    path = tmp_path / "damaged.npz"
    path.write_bytes(damaged)
    model = tiny_net(0)
    before = snapshot(model)
    try:
        model.load(path)
    except ValueError as error:
        assert str(path) in str(error)
        assert_params_equal(model, before)
    else:  # only harmless bytes were hit (a timestamp, say): then every value is right
        assert_params_equal(model, snapshot(tiny_net(5)))


EXPECTED = {key: (value.shape, value.dtype) for key, value in tiny_net().parameters().items()}
SHAPES = st.sampled_from([shape for shape, _ in EXPECTED.values()] + [(3, 8), (2,), (), (0,)])
DTYPES = st.sampled_from([np.float32, np.float64, np.float16, np.int32, np.complex64])


@st.composite
def archives(draw):
    """Key -> array: mostly this model's keys and shapes, sometimes not, sometimes NaN."""
    keys = draw(st.sets(st.sampled_from([*EXPECTED, "4.w", "w", "0.w/x"]), max_size=6))
    arrays = {}
    for key in keys:
        right = key in EXPECTED and draw(st.booleans())
        shape, dtype = EXPECTED[key] if right else (draw(SHAPES), draw(DTYPES))
        array = np.ones(shape, dtype)
        if array.size and array.dtype.kind in "fc" and draw(st.integers(0, 4)) == 0:
            array.flat[draw(st.integers(0, array.size - 1))] = draw(
                st.sampled_from([np.nan, np.inf, -np.inf]))
        arrays[key] = array
    return arrays


@EXAMPLES
@given(arrays=archives(), compressed=st.booleans())
def test_a_generated_archive_loads_if_and_only_if_it_matches(tmp_path, arrays, compressed):
    path = tmp_path / "generated.npz"
    with path.open("wb") as handle:
        (np.savez_compressed if compressed else np.savez)(handle, **arrays)
    matches = arrays.keys() == EXPECTED.keys() and all(
        (value.shape, value.dtype) == EXPECTED[key] and np.isfinite(value).all()
        for key, value in arrays.items())
    model = tiny_net(0)
    before = snapshot(model)
    if matches:
        model.load(path)
        assert_params_equal(model, arrays)
    else:
        with pytest.raises(ValueError) as error:
            model.load(path)
        assert str(path) in str(error.value)
        assert_params_equal(model, before)


def test_float64_model_round_trip(tmp_path):
    saved = tiny_net(3, dtype=np.float64)
    saved.save(tmp_path / "m.npz")
    model = tiny_net(4, dtype=np.float64)
    model.load(tmp_path / "m.npz")
    assert_params_equal(model, snapshot(saved))
    load_fails(tiny_net(0), tmp_path / "m.npz", r"dtype float64, the model expects .* float32")


def test_dense_only_model_keys(tmp_path):
    model = Sequential([Flatten(), Dense(4, 2, rng=np.random.default_rng(0))])
    model.save(tmp_path / "d.npz")
    other = Sequential([Flatten(), Dense(4, 2, rng=np.random.default_rng(1))])
    other.load(tmp_path / "d.npz")
    assert_params_equal(other, snapshot(model))


def test_the_temporary_file_is_hidden_beside_the_target(tmp_path, monkeypatch):
    # Same folder, so that os.replace is a rename on one file system (atomic); a dot name
    # ending in .tmp, so that a crash leaves nothing that looks like a model.
    renames = []
    real_replace = os.replace
    monkeypatch.setattr(cnn.modelfile.os, "replace",
                        lambda src, dst: renames.append((Path(src), Path(dst))) or
                        real_replace(src, dst))
    tiny_net().save(tmp_path / "m.npz")
    [(source, target)] = renames
    assert target == tmp_path / "m.npz" and source.parent == tmp_path
    assert source.name.startswith(".m.npz.") and source.name.endswith(".tmp")


def test_trailing_data_in_a_member_is_refused_without_reading_it(tmp_path):
    # A member whose header is right but which carries 8 MB of (compressed) zeros after its
    # data: only the declared bytes and one more are decompressed.
    members = good_members(tiny_net(5))
    members["3.w.npy"] += bytes(8 * 2**20)
    path = tmp_path / "trailing.npz"
    write_zip(path, members, compression=zipfile.ZIP_DEFLATED)
    tracemalloc.start()
    try:
        load_fails(tiny_net(0), path, r": '3.w' has more of data, its header declares 96 bytes$")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def test_a_failed_cleanup_does_not_hide_the_error_that_caused_it(tmp_path, monkeypatch):
    def full_disk(handle, **arrays):
        raise OSError(28, "No space left on device")

    def unlink_fails(path):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(cnn.modelfile.np, "savez", full_disk)
    monkeypatch.setattr(cnn.modelfile.os, "unlink", unlink_fails)
    with pytest.raises(OSError, match="No space left on device"):
        tiny_net().save(tmp_path / "m.npz")


def test_a_folder_that_cannot_be_synced_still_gets_its_file(tmp_path, monkeypatch):
    # Windows cannot open a folder to fsync it; the rename has happened all the same.
    real_open = os.open

    def no_folders(path, flags, *args):
        if Path(path).is_dir():
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(cnn.modelfile.os, "open", no_folders)
    model = tiny_net()
    model.save(tmp_path / "m.npz")
    loaded = tiny_net(1)
    loaded.load(tmp_path / "m.npz")
    assert_params_equal(loaded, snapshot(model))


def test_the_old_import_path_of_member_overhead_warns_and_still_works():
    import cnn.model

    with pytest.warns(DeprecationWarning, match="cnn.modelfile.MEMBER_OVERHEAD"):
        assert cnn.model.MEMBER_OVERHEAD == MEMBER_OVERHEAD
    with pytest.raises(AttributeError, match="no_such_name"):
        cnn.model.no_such_name  # noqa: B018
