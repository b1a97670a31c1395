r"""Command line of the case study: ``cnn train`` and ``cnn predict``::

    cnn train --data synthetic --epochs 8 --out model.npz
    cnn predict images/*.png --model model.npz
    cnn train --data cbis --cbis-root CBIS-DDSM \
        --cbis-train mass_case_description_train_set.csv \
        --cbis-test mass_case_description_test_set.csv --out real.npz

(or ``python -m cnn ...``).

``predict`` prints one tab-separated line per image: its path, the probability of each
class and the most probable class. In paths, tabs, newlines, other control characters,
backslashes and bytes that are not UTF-8 are written as backslash escapes (``\\t``,
``\\n``, ``\\\\``, ``\\xff``), so that every image stays one line of five fields. An
image that cannot be read is reported on stderr and skipped; the exit status is then 1,
after every other image has been classified. The model is the case-study CNN of
``cnn.casestudy.networks``, on 32 x 32 patches (``--arch small``, the default) or at
the original network's full size on 50 x 50 patches (``--arch original``), so a saved
file only holds its weights; ``predict`` takes the same ``--arch``. Training shows a
progress bar per epoch when standard output is a terminal, and prints one line per
epoch.

Exit status: 0 success, 1 failure (an unreadable file, a model that cannot be saved),
2 usage error (every argument is checked before any work starts), 130 after Ctrl-C, 141
when the reader of the output goes away (``cnn predict ... | head -1``). A user's
mistake or a signal never prints a traceback: any error of the file system or of the
data ends in one line ``cnn <command>: error: ...`` on stderr.

Standard output never decides the fate of a trained model: a write to it that fails (a
closed pipe, a full device, a closed descriptor) is remembered, not raised, so
``train`` goes on, saves the model and then exits with 141 (the reader went away) or 1
(the message on stderr says the model was saved); ``predict`` stops classifying.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import stat
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from cnn.casestudy.cbis import CROPS, load_cbis_ddsm
from cnn.casestudy.networks import classify
from cnn.casestudy.synthetic import CLASS_NAMES
from cnn.casestudy.training import (
    ARCHITECTURES,
    DEFAULT_EPOCHS,
    DEFAULT_N_PER_CLASS,
    train_model,
)
from cnn.data import ImageWarning, load_image

DISCLAIMER = "note: a model trained on synthetic patches; not a medical device"
#: Largest ``--epochs`` and ``--n-per-class`` (then about 250 MB of patches); beyond
#: them, a typo rather than a plan.
MAX_EPOCHS = 1000
MAX_N_PER_CLASS = 20_000
#: Smallest ``--n-per-class``: 3 leaves each class one test patch and two training
#: patches, one of which is held out for validation.
MIN_N_PER_CLASS = 3
#: 128 + the signal number, as a shell reports a process ended by that signal.
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM
EXIT_BROKEN_PIPE = 128 + 13

_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _int_at_least(minimum, maximum=None):
    """An argparse type: an int of at least ``minimum`` (and at most ``maximum``)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum}, got {value}")
        return value
    return parse


def _output_file(text):
    """An argparse type: where ``train`` saves, ``.npz`` appended as NumPy does.

    Refused: a folder, an existing file that is write-protected (it is not replaced
    silently), and a path the system cannot look up (too long, no permission, a loop
    of symbolic links).
    """
    if not text.strip() or text.endswith(("/", os.sep)) or os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"must name a file, got {text!r}")
    out = text if text.endswith(".npz") else text + ".npz"
    try:
        mode = os.stat(out).st_mode
    except (FileNotFoundError, NotADirectoryError):  # the folder is checked later
        return out
    except OSError as error:
        raise argparse.ArgumentTypeError(
            f"{escape(out)}: {error.strerror}") from None
    if stat.S_ISDIR(mode):
        raise argparse.ArgumentTypeError(f"{escape(out)} is a folder, not a file")
    if not mode & 0o222:
        raise argparse.ArgumentTypeError(
            f"{escape(out)} exists and is write-protected: it is not replaced; "
            "choose another file or remove the protection")
    return out


def escape(text):
    """``text`` as one printable line: control characters, backslashes and
    undecodable bytes (which Python passes on as surrogates) become escapes."""
    out = []
    for char in str(text):
        code = ord(char)
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif 0xDC80 <= code <= 0xDCFF:  # a byte of a file name that is not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif char.isprintable():
            out.append(char)
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


def _error(command, message):
    """Print ``cnn <command>: error: <message>`` on stderr, escaped."""
    print(f"cnn {command}: error: {escape(message)}", file=sys.stderr)


def build_parser():
    """The argument parser, with the subcommands ``train`` and ``predict``."""
    parser = argparse.ArgumentParser(
        prog="cnn",
        description="Classify mammogram patches as benign, benign without callback "
        "or malignant with the case-study CNN of 'CNN from Scratch with NumPy'.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train_parser = commands.add_parser(
        "train", help="train the case-study CNN and save it"
    )
    train_parser.add_argument(
        "--data",
        choices=["synthetic", "cbis"],
        default="synthetic",
        help="the seeded synthetic patches, or CBIS-DDSM downloaded by you",
    )
    train_parser.add_argument(
        "--arch",
        choices=list(ARCHITECTURES),
        default="small",
        help="the case-study CNN on 32 x 32 patches (small, trains in seconds), or the "
        "original network at full size on 50 x 50 patches (38 million parameters)",
    )
    train_parser.add_argument(
        "--epochs",
        type=_int_at_least(1, MAX_EPOCHS),
        default=DEFAULT_EPOCHS,
        help="passes over the training patches; the model keeps the weights of the "
        "epoch best on the validation patches",
    )
    train_parser.add_argument(
        "--n-per-class",
        type=_int_at_least(MIN_N_PER_CLASS, MAX_N_PER_CLASS),
        default=DEFAULT_N_PER_CLASS,
        help="synthetic patches per class: 3/4 for training (a fifth of them held "
        "out for validation), 1/4 for testing",
    )
    train_parser.add_argument(
        "--class-weights",
        choices=["none", "balanced"],
        default="none",
        help="weight the loss of each class by N / (3 N_k), for imbalanced data "
        "such as CBIS-DDSM (default: none)",
    )
    train_parser.add_argument(
        "--cbis-root", help="with --data cbis: the download folder"
    )
    train_parser.add_argument(
        "--cbis-train",
        nargs="+",
        metavar="CSV",
        help="with --data cbis: case-description CSV files to train on",
    )
    train_parser.add_argument(
        "--cbis-test",
        nargs="+",
        metavar="CSV",
        help="with --data cbis: case-description CSV files to test on",
    )
    train_parser.add_argument(
        "--crop",
        choices=CROPS,
        default="cropped",
        help="with --data cbis: the data set's ROI crops, or squares cut "
        "around the ROI masks",
    )
    train_parser.add_argument(
        "--seed",
        type=_int_at_least(0),
        default=0,
        help="seeds the data, the initial weights and the batch order",
    )
    train_parser.add_argument(
        "--out",
        required=True,
        type=_output_file,
        help="where to save the weights (.npz); checked before training, and an "
        "existing file is only replaced once the new one is complete",
    )

    predict_parser = commands.add_parser(
        "predict", help="print class probabilities of images"
    )
    predict_parser.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="image files Pillow can read; resized to the network's input size, grey",
    )
    predict_parser.add_argument(
        "--arch",
        choices=list(ARCHITECTURES),
        default="small",
        help="the architecture the model was trained with (see 'cnn train --help')",
    )
    predict_parser.add_argument(
        "--model",
        help="weights saved by 'cnn train'; without it, --arch small trains a "
        "default model first (seed 0, about 10 s); --arch original needs --model "
        "(training it takes about 50 min: 'cnn train --arch original')",
    )
    return parser


def _cbis_data(args):
    """CBIS-DDSM training and test patches, and the training patches' patients."""
    splits, patients = [], None
    for name, csv_files in [("training", args.cbis_train), ("test", args.cbis_test)]:
        found = load_cbis_ddsm(
            args.cbis_root, csv_files, size=ARCHITECTURES[args.arch][1], crop=args.crop
        )
        if len(found.y) == 0:
            raise ValueError(f"the {name} CSV files {csv_files} list no abnormalities")
        counts = ", ".join(
            f"{key} {value}" for key, value in found.class_counts.items()
        )
        print(f"CBIS-DDSM {name} patches: {len(found.y)} ({counts})")
        splits += [found.x, found.y]
        patients = found.patients if patients is None else patients
    return tuple(splits), patients


def _check_writable(out):
    """Exit status 1 with a message unless a file can be created beside ``out``.

    This is what ``Sequential.save`` will do at the end, checked before training.
    """
    try:
        with tempfile.NamedTemporaryFile(dir=Path(out).parent, suffix=".tmp",
                                         prefix=f".{Path(out).name}."):
            pass
    except OSError as error:
        folder = Path(out).parent
        _error("train", f"cannot save the model to {out}: folder {folder}: "
               f"{error.strerror or error}")
        return 1
    return 0


def _inputs_overwritten(args):
    """Exit status 2 with a message if ``--out`` is one of the input files."""
    inputs = [("--cbis-train", name) for name in args.cbis_train or []]
    inputs += [("--cbis-test", name) for name in args.cbis_test or []]
    for flag, name in inputs:
        with contextlib.suppress(OSError):
            if os.path.samefile(name, args.out):
                _error("train", f"--out {args.out} is the {flag} file {name}: it would "
                       "be overwritten")
                return 2
    return 0


def _same_csv_files(args):
    """Warn when a CSV file is both in ``--cbis-train`` and ``--cbis-test``."""
    train_files = {Path(name).resolve() for name in args.cbis_train}
    for name in args.cbis_test:
        if Path(name).resolve() in train_files:
            print(f"cnn train: warning: {escape(name)} is used for training and for "
                  "testing; the test accuracy will be optimistic", file=sys.stderr)


def _train(args):
    start = time.perf_counter()
    data = patients = None
    if args.data == "cbis":
        missing = [
            flag
            for flag, value in [
                ("--cbis-root", args.cbis_root),
                ("--cbis-train", args.cbis_train),
                ("--cbis-test", args.cbis_test),
            ]
            if not value
        ]
        if missing:
            print(
                f"cnn train: error: --data cbis needs {', '.join(missing)}",
                file=sys.stderr,
            )
            return 2
        if not Path(args.cbis_root).is_dir():
            _error("train", f"--cbis-root {args.cbis_root} is not a folder")
            return 2
    if _inputs_overwritten(args):
        return 2
    if _check_writable(args.out):
        return 1
    if args.data == "cbis":
        _same_csv_files(args)
        try:
            data, patients = _cbis_data(args)
        except (OSError, ValueError, ImportError) as error:
            _error("train", str(error))
            return 1
    model, accuracy = train_model(
        args.epochs, args.n_per_class, args.seed, verbose=True, data=data,
        groups=patients, class_weights=args.class_weights, arch=args.arch,
    )
    out = args.out
    try:
        model.save(out)
    except ValueError as error:  # non-finite weights: the message names the file
        _error("train", str(error))
        return 1
    except OSError as error:
        _error("train", f"cannot save the model to {out}: {error}")
        return 1
    print(
        f"test accuracy {accuracy:.4f}; "
        f"trained in {time.perf_counter() - start:.1f} s; saved to {escape(out)}"
    )
    return _output_status("train", f"the model was saved to {out}")


def _predict(args):
    build, size, _ = ARCHITECTURES[args.arch]
    model = build(rng=np.random.default_rng(0))
    if args.model is None and args.arch != "small":
        _error("predict", f"--arch {args.arch} needs --model: train one first with "
               f"'cnn train --arch {args.arch} --out model.npz' (about 50 min)")
        return 2
    if args.model is None:
        print("cnn predict: no --model given; training the default model (seed 0, "
              f"{DEFAULT_EPOCHS} epochs); save one with 'cnn train --out model.npz'",
              file=sys.stderr)
        model, _ = train_model(arch=args.arch)
    else:
        try:
            model.load(args.model)
        except (OSError, ValueError) as error:
            _error("predict", f"cannot load model {args.model}: {error}")
            return 1
    print(DISCLAIMER, file=sys.stderr)
    print("\t".join(["image", *CLASS_NAMES, "prediction"]))
    failures = 0
    for path in args.images:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ImageWarning)
                image = load_image(path, size)
        except (ValueError, OSError) as error:
            _error("predict", _describe(error))
            failures += 1
            continue
        for warning in caught:
            print(f"cnn predict: warning: {escape(warning.message)}", file=sys.stderr)
        proba = classify(model, image)[0]
        cells = [f"{p:.3f}" for p in proba]
        row = [escape(path), *cells, CLASS_NAMES[int(proba.argmax())]]
        print("\t".join(row), flush=True)
        if sys.stdout.error is not None:
            break  # nobody reads the rest
    return _output_status("predict") or (1 if failures else 0)


class _Output:
    """Standard output for the length of a command: a failed write is kept, not raised.

    After the first failure everything is discarded and ``error`` holds the exception,
    so that no print (of an epoch, of a progress bar) can stop training before the
    model is saved.
    """

    def __init__(self, stream):
        self.stream, self.error = stream, None

    def write(self, text):
        self._call("write", text)
        return len(text)

    def flush(self):
        self._call("flush")

    def isatty(self):
        return self.stream is not None and self._call("isatty") is True

    def _call(self, name, *args):
        if self.error is None and self.stream is not None:
            try:
                return getattr(self.stream, name)(*args)
            except (OSError, ValueError) as error:  # ValueError: a closed file
                self.error = error
        elif self.stream is None and self.error is None:
            self.error = OSError(errno.EBADF, "standard output is closed")
        return None


def _output_status(command, saved=""):
    """0 if standard output took everything; else 141 for a gone reader, 1 otherwise."""
    sys.stdout.flush()
    error = sys.stdout.error if isinstance(sys.stdout, _Output) else None
    if error is None:
        return 0
    if isinstance(error, BrokenPipeError):
        return EXIT_BROKEN_PIPE
    _error(command, f"cannot write to standard output: {_describe(error)}"
           + (f"; {saved}" if saved else ""))
    return 1


def _describe(error):
    """An OSError as ``file: reason``; any other error as its message."""
    if isinstance(error, OSError) and error.strerror:
        where = f"{error.filename}: " if error.filename else ""
        return where + error.strerror
    return str(error)


class _Terminated(Exception):
    """Raised by the SIGTERM handler, so that the program unwinds as after Ctrl-C."""


def _terminate(signum, frame):
    raise _Terminated


def _quiet_stdout():
    """Point stdout at the null device, so that Python's last flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout is no file (tests)
        pass


def main(argv=None):
    """Run the command line; return the exit status (see the module docstring)."""
    # A name or message that the terminal's encoding cannot show is escaped, not fatal.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: SIGTERM keeps its handler
        previous = None
    stdout = sys.stdout
    sys.stdout = _Output(stdout)
    try:
        status = _train(args) if args.command == "train" else _predict(args)
        sys.stdout.flush()
        return status
    except KeyboardInterrupt:
        print(f"cnn {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _Terminated:
        print(f"cnn {args.command}: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except BrokenPipeError:
        # The reader has gone (``| head``): nothing more to say to anyone.
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except (OSError, ValueError, MemoryError) as error:
        # The file system or the data refused something no check above foresaw.
        _error(args.command, _describe(error) or type(error).__name__)
        return 1
    finally:
        failed = sys.stdout.error is not None
        sys.stdout = stdout
        if failed:
            _quiet_stdout()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
