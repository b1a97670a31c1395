"""Command line of the case study: ``cnn train`` and ``cnn predict``::

    cnn train --data synthetic --epochs 8 --out model.npz cnn predict images/*.png
    --model model.npz cnn train --data cbis --cbis-root CBIS-DDSM --cbis-train
    mass_case_description_train_set.csv \
        --cbis-test mass_case_description_test_set.csv --out real.npz

``predict`` prints one tab-separated line per image: its path, the probability of each
class and the most probable class. An image that cannot be read is reported on stderr
and skipped; the exit status is then 1, after every other image has been classified. The
model is the case-study CNN of ``cnn.casestudy.networks``, on 32 x 32 patches
(``--arch small``, the default) or at the original network's full size on 50 x 50
patches (``--arch original``), so a saved file only holds its weights; ``predict`` takes
the same ``--arch``. Training shows a progress bar per epoch when standard output is a
terminal, and prints one line per epoch.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

import numpy as np

from cnn.casestudy.cbis import CROPS, load_cbis_ddsm
from cnn.casestudy.networks import (
    INPUT_SIZE,
    ORIGINAL_SIZE,
    build_cnn,
    build_original,
    classify,
    train,
)
from cnn.casestudy.synthetic import CLASS_NAMES, load_synthetic
from cnn.data import load_image
from cnn.fast.profiling import blas_threads

DEFAULT_EPOCHS = 8
DEFAULT_N_PER_CLASS = 2000
DISCLAIMER = "note: a model trained on synthetic patches; not a medical device"
ARCHITECTURES = {
    "small": (build_cnn, INPUT_SIZE, 1e-3),
    "original": (build_original, ORIGINAL_SIZE, 1e-4),
}
"""The network of each ``--arch``, the side of its patches and Adam's step size.

Adam moves every weight by about its step size at each step, whatever the gradient; a
hidden unit of the original network sums 73,728 inputs, so its step is ten times
smaller than the small network's.
"""


def _int_at_least(minimum):
    """An argparse type: an int of at least ``minimum``."""
    def parse(text):
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


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
    train_parser.add_argument("--epochs", type=_int_at_least(1), default=DEFAULT_EPOCHS)
    train_parser.add_argument(
        "--n-per-class",
        type=_int_at_least(2),
        default=DEFAULT_N_PER_CLASS,
        help="synthetic patches per class, 3/4 for training, 1/4 for testing",
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
        type=int,
        default=0,
        help="seeds the data, the initial weights and the batch order",
    )
    train_parser.add_argument(
        "--out", required=True, help="where to save the weights (.npz)"
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
        "default model is trained first (seed 0, about 5 s)",
    )
    return parser


def train_model(
    epochs=DEFAULT_EPOCHS,
    n_per_class=DEFAULT_N_PER_CLASS,
    seed=0,
    verbose=False,
    data=None,
    arch="small",
):
    """Train the case-study CNN: the model and its final test accuracy.

    ``data`` is ``(x_train, y_train, x_test, y_test)``; by default, seeded synthetic
    patches of the size ``arch`` takes. ``verbose`` also shows a progress bar.
    """
    build, size, lr = ARCHITECTURES[arch]
    if data is None:
        data = load_synthetic(n_per_class=n_per_class, size=size, seed=seed)
        if verbose:
            print(
                f"synthetic data: {len(data[1])} training and {len(data[3])} test "
                f"patches of {size} x {size} (seed {seed})"
            )
    model = build(rng=np.random.default_rng(seed))
    # The small network's products are too small to gain from a second BLAS thread (as
    # in the chapter; same numbers); the full-size network's dense layer is not.
    with blas_threads(1) if arch == "small" else contextlib.nullcontext():
        history = train(model, data, epochs=epochs, lr=lr, seed=seed, verbose=verbose,
                        progress=verbose)
    return model, history["val_acc"][-1]


def _cbis_data(args):
    """CBIS-DDSM training and test patches, with their class counts printed."""
    splits = []
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
    return tuple(splits)


def _train(args):
    start = time.perf_counter()
    data = None
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
        try:
            data = _cbis_data(args)
        except (OSError, ValueError, ImportError) as error:
            print(f"cnn train: error: {error}", file=sys.stderr)
            return 1
    model, accuracy = train_model(
        args.epochs,
        args.n_per_class,
        args.seed,
        verbose=True,
        data=data,
        arch=args.arch,
    )
    out = args.out if args.out.endswith(".npz") else args.out + ".npz"
    try:
        model.save(out)
    except OSError as error:
        print(
            f"cnn train: error: cannot save the model to {out}: {error}",
            file=sys.stderr,
        )
        return 1
    print(
        f"test accuracy {accuracy:.4f}; "
        f"trained in {time.perf_counter() - start:.1f} s; saved to {out}"
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
            print(
                f"cnn predict: error: cannot load model {args.model}: {error}",
                file=sys.stderr,
            )
            return 1
    print(DISCLAIMER, file=sys.stderr)
    print("\t".join(["image", *CLASS_NAMES, "prediction"]))
    failures = 0
    for path in args.images:
        try:
            image = load_image(path, size)
        except ValueError as error:
            print(f"cnn predict: error: {error}", file=sys.stderr)
            failures += 1
            continue
        proba = classify(model, image)[0]
        cells = [f"{p:.3f}" for p in proba]
        print("\t".join([path, *cells, CLASS_NAMES[int(proba.argmax())]]), flush=True)
    return 1 if failures else 0


def main(argv=None):
    """Run the command line; return the exit status (0 success, 1 failure, 2 usage)."""
    args = build_parser().parse_args(argv)
    return _train(args) if args.command == "train" else _predict(args)
