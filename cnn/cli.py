r"""Command line of the case study: ``cnn train`` and ``cnn predict``::

    cnn train --data synthetic --epochs 8 --out model.npz
    cnn predict images/*.png --model model.npz
    cnn train --data cbis --cbis-root CBIS-DDSM \
        --cbis-train mass_case_description_train_set.csv \
        --cbis-test mass_case_description_test_set.csv --out real.npz

(or ``python -m cnn ...``).

``predict`` prints one tab-separated line per image: its path, the probability of each
class and the most probable class. An image that cannot be read is reported on stderr
and skipped; the exit status is then 1, after every other image has been classified. The
model is always the case-study CNN of ``cnn.casestudy.networks`` on 32 x 32 patches, so
a saved file only holds its weights.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from cnn.casestudy.cbis import CROPS, load_cbis_ddsm
from cnn.casestudy.networks import INPUT_SIZE, build_cnn, classify, train
from cnn.casestudy.synthetic import CLASS_NAMES, load_synthetic
from cnn.data import load_image, train_validation_split
from cnn.fast.profiling import blas_threads
from cnn.losses import balanced_class_weights

DEFAULT_EPOCHS = 12
VALIDATION_SIZE = 0.2  # of the training patches, held out to choose the epoch
DEFAULT_N_PER_CLASS = 2000
DISCLAIMER = "note: a model trained on synthetic patches; not a medical device"


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
    train_parser.add_argument("--epochs", type=_int_at_least(1), default=DEFAULT_EPOCHS)
    train_parser.add_argument(
        "--n-per-class",
        type=_int_at_least(2),
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
        help="image files Pillow can read; resized to 32 x 32 grey",
    )
    predict_parser.add_argument(
        "--model",
        help="weights saved by 'cnn train'; without it a "
        "default model is trained first (seed 0, about 10 s)",
    )
    return parser


def train_model(
    epochs=DEFAULT_EPOCHS,
    n_per_class=DEFAULT_N_PER_CLASS,
    seed=0,
    verbose=False,
    data=None,
    groups=None,
    class_weights="none",
):
    """Train the case-study CNN: the model and its test accuracy, measured once.

    ``data`` is ``(x_train, y_train, x_test, y_test)``; by default, seeded synthetic
    patches. A stratified fifth of the training patches (whole ``groups``, such as
    patients, when given) is held out to choose the epoch; the test patches are used
    only for the final accuracy. ``class_weights`` is ``"none"`` or ``"balanced"``.
    """
    if data is None:
        data = load_synthetic(n_per_class=n_per_class, size=INPUT_SIZE, seed=seed)
        if verbose:
            print(
                f"synthetic data: {len(data[1])} training and {len(data[3])} test "
                f"patches of {INPUT_SIZE} x {INPUT_SIZE} (seed {seed})"
            )
    x_train, y_train, x_test, y_test = data
    split = train_validation_split(
        x_train, y_train, VALIDATION_SIZE, seed=seed, groups=groups
    )
    if verbose:
        print(f"{len(split[3])} of the {len(y_train)} training patches held out for "
              f"validation; the {len(y_test)} test patches are used once, at the end")
    weights = None
    if class_weights == "balanced":
        weights = balanced_class_weights(split[1], len(CLASS_NAMES))
    model = build_cnn(rng=np.random.default_rng(seed))
    with blas_threads(
        1
    ):  # as in the chapter: faster for these small products, same numbers
        train(model, split, epochs=epochs, seed=seed, class_weights=weights,
              verbose=verbose)
    accuracy = float(np.mean(classify(model, x_test).argmax(axis=1) == y_test))
    return model, accuracy


def _cbis_data(args):
    """CBIS-DDSM training and test patches, and the training patches' patients."""
    splits, patients = [], None
    for name, csv_files in [("training", args.cbis_train), ("test", args.cbis_test)]:
        found = load_cbis_ddsm(
            args.cbis_root, csv_files, size=INPUT_SIZE, crop=args.crop
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
        try:
            data, patients = _cbis_data(args)
        except (OSError, ValueError, ImportError) as error:
            print(f"cnn train: error: {error}", file=sys.stderr)
            return 1
    model, accuracy = train_model(
        args.epochs, args.n_per_class, args.seed, verbose=True, data=data,
        groups=patients, class_weights=args.class_weights,
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
    model = build_cnn(rng=np.random.default_rng(0))
    if args.model is None:
        print("cnn predict: no --model given; training the default model (seed 0, "
              f"{DEFAULT_EPOCHS} epochs); save one with 'cnn train --out model.npz'",
              file=sys.stderr)
        model, _ = train_model()
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
            image = load_image(path, INPUT_SIZE)
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
