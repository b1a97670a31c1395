"""Model files: a model's named arrays in an ``.npz`` archive, written and read safely.

``Sequential.save`` and ``Sequential.load`` (``cnn.model``) call ``save_arrays`` and
``load_arrays``. The format is ``numpy.savez``'s, without pickle: one ``.npy`` member
per parameter or buffer, named by its key (``"0.w"``, ``"1.running_mean"``, ...).

Writing is atomic: the data go to a temporary file in the same folder, which is flushed
to disk and then renamed over the target, so a full disk, a crash or Ctrl-C leaves an
existing file as it was. Reading trusts nothing in the file: its size, its member names
and every array's header (shape and dtype) are checked against what the model expects
before any data is read, so that a small hostile file cannot make it allocate much
memory, and the data must be finite.
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from cnn.checks import check_array

#: Bytes that a saved-model file may hold for each array besides its data (the ``.npy``
#: header and the zip entries). ``numpy.savez`` needs about 300; a larger file is
#: refused before it is opened.
MEMBER_OVERHEAD = 4096

# What reading a damaged or hostile .npz file can raise, from zipfile, zlib and numpy.
_READ_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    RuntimeError,
    NotImplementedError,
    struct.error,
    zlib.error,
    zipfile.BadZipFile,
)


def save_arrays(path, arrays):
    """Write ``arrays`` (key -> finite array) to the ``.npz`` file ``path``, atomically.

    ``.npz`` is appended to a path without it, as NumPy does.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        If an array holds NaN or infinity (nothing is written), or ``path`` names no
        file.
    OSError
        If the file cannot be written; ``path`` is then unchanged.
    """
    path = _npz_path(path)
    for key, value in arrays.items():
        check_array(value, f"cannot save the model to {path}: parameter {key!r}")
    _write_atomically(path, lambda handle: np.savez(handle, **arrays))
    return path


def load_arrays(path, expected):
    """The arrays of the ``.npz`` file ``path``, with exactly ``expected``'s keys.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by ``save_arrays``.
    expected : dict
        Key -> ``(shape, dtype)`` of every array the file must hold.

    Returns
    -------
    arrays : dict
        Key -> read-only finite array of the expected shape and dtype.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a readable ``.npz`` archive of ``.npy`` arrays with exactly
        these keys, shapes and dtypes and finite values; the message names the file and
        the problem.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "no such saved model", str(path))
    try:
        return _read_npz(path, expected)
    except _READ_ERRORS as error:
        raise ValueError(f"cannot read saved model {path}: {error}") from error


def _npz_path(path):
    """The file ``save`` writes: ``path`` with ``.npz`` appended when it lacks it."""
    text = os.fspath(path)
    if not isinstance(text, str) or not text or text.endswith(os.sep):
        raise ValueError(f"path must name a file, got {path!r}")
    return Path(text if text.endswith(".npz") else text + ".npz")


def _write_atomically(path, write):
    """Write ``path`` through ``write(handle)`` so that it is never half-written.

    A temporary file in the same folder (so that the rename stays on one file system)
    is written, flushed and fsynced, then ``os.replace`` renames it over ``path``, which
    is atomic: ``path`` holds the old content or the new one. On any error, Ctrl-C
    included, the temporary file is removed and the error re-raised.
    """
    folder = path.parent
    handle = tempfile.NamedTemporaryFile(
        dir=folder, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, _file_mode(path))
        os.replace(handle.name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(handle.name)
        raise
    # The rename itself is durable only once the folder is synced (not on Windows).
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _file_mode(path):
    """Permissions for a rewritten ``path``: its own, or those ``open`` would give."""
    with contextlib.suppress(OSError):
        return path.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _read_npz(path, expected):
    """The arrays of an ``.npz`` file with exactly ``expected`` (key -> shape, dtype).

    Every check that needs no data comes first: the file size, the member names, the
    key set, then the ``.npy`` header (shape, dtype) of every member. Errors are raised
    without the file name; ``load_arrays`` adds it.
    """
    if not path.is_file():
        raise ValueError("not a regular file")
    data = sum(math.prod(shape) * dtype.itemsize for shape, dtype in expected.values())
    limit = data + MEMBER_OVERHEAD * (len(expected) + 1)
    size = path.stat().st_size
    if size > limit:
        raise ValueError(
            f"the file has {size:,} bytes, more than the {limit:,} that a model of "
            "this architecture can need"
        )
    with path.open("rb") as handle:
        if handle.read(6) == b"\x93NUMPY":
            raise ValueError(
                "it is a .npy file (one array), not an .npz archive of named arrays"
            )
    with zipfile.ZipFile(path) as archive:
        members = _members(archive, expected)
        headers = {}
        for key, info in members.items():
            with archive.open(info) as member:
                headers[key] = _read_header(member, key)
            shape, dtype = headers[key][:2]
            if (shape, dtype) != expected[key]:
                raise ValueError(
                    f"{key!r} has shape {shape} and dtype {dtype}, the model expects "
                    f"shape {expected[key][0]} and dtype {expected[key][1]}"
                )
        arrays = {}
        for key, info in members.items():
            shape, dtype, fortran_order = headers[key]
            nbytes = math.prod(shape) * dtype.itemsize
            with archive.open(info) as member:
                _read_header(member, key)
                data = member.read(nbytes + 1)
            if len(data) != nbytes:
                amount = "more" if len(data) > nbytes else f"{len(data)} bytes"
                raise ValueError(
                    f"{key!r} has {amount} of data, its header declares {nbytes} bytes"
                )
            array = np.frombuffer(data, dtype).reshape(
                shape, order="F" if fortran_order else "C"
            )
            arrays[key] = check_array(array, repr(key))
    return arrays


def _members(archive, expected):
    """Key -> zip member, after checking the names against ``expected``'s keys."""
    members = {}
    for info in archive.infolist():
        if not info.filename.endswith(".npy"):
            raise ValueError(
                f"member {info.filename!r} is not a .npy array (a saved model holds "
                "only .npy arrays)"
            )
        key = info.filename[: -len(".npy")]
        if key in members:
            raise ValueError(f"member {info.filename!r} appears twice")
        members[key] = info
    if members.keys() != expected.keys():
        missing = sorted(expected.keys() - members.keys())
        extra = sorted(members.keys() - expected.keys())
        raise ValueError(
            f"it does not match the model: missing keys {missing}, unexpected keys "
            f"{extra}"
        )
    return members


def _read_header(member, key):
    """Shape, dtype and Fortran order from the ``.npy`` header, without the data."""
    version = np.lib.format.read_magic(member)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f"{key!r} has .npy format version {version}, not 1.0 or 2.0")
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else (
        np.lib.format.read_array_header_2_0
    )
    try:
        shape, fortran_order, dtype = read(member)
    except Exception as error:  # NumPy's parser can raise SyntaxError, TokenError, ...
        raise ValueError(
            f"{key!r} has an unreadable .npy header: {type(error).__name__}: {error}"
        ) from error
    return shape, dtype, fortran_order
