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
mistake or a signal never prints a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
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
from cnn.data import load_image

DISCLAIMER = "note: a model trained on synthetic patches; not a medical device"
#: Largest ``--epochs`` and ``--n-per-class`` (then about 250 MB of patches); beyond
#: them, a typo rather than a plan.
MAX_EPOCHS = 1000
MAX_N_PER_CLASS = 20_000
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
    """An argparse type: where ``train`` saves, ``.npz`` appended as NumPy does."""
    if not text.strip() or text.endswith(("/", os.sep)) or Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"must name a file, got {text!r}")
    return text if text.endswith(".npz") else text + ".npz"


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
        "--epochs", type=_int_at_least(1, MAX_EPOCHS), default=DEFAULT_EPOCHS
    )
    train_parser.add_argument(
        "--n-per-class",
        type=_int_at_least(2, MAX_N_PER_CLASS),
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
        help="weights saved by 'cnn train'; without it a "
        "default model is trained first (seed 0, about 10 s)",
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
    return 0


def _predict(args):
    build, size, _ = ARCHITECTURES[args.arch]
    model = build(rng=np.random.default_rng(0))
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
            image = load_image(path, size)
        except ValueError as error:
            _error("predict", str(error))
            failures += 1
            continue
        proba = classify(model, image)[0]
        cells = [f"{p:.3f}" for p in proba]
        row = [escape(path), *cells, CLASS_NAMES[int(proba.argmax())]]
        print("\t".join(row), flush=True)
    return 1 if failures else 0


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
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
