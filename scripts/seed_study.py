"""The case study's experiments over seeds and BLAS kernels: what holds in every run::

    python scripts/seed_study.py             # seeds 0-4, this machine's BLAS kernel
    OPENBLAS_CORETYPE=Haswell python scripts/seed_study.py --seeds 0 1

A seeded float32 training run is reproducible bit for bit only on one BLAS kernel: other
kernels round the matrix products differently, and training amplifies the difference. So
the chapter "Case study" states a claim about its networks only when it holds in every
run recorded here, for several seeds (the initial weights and the order of the
mini-batches; the data are the chapter's) and several kernels. Each run is stored under
its seed and kernel in ``cnn/casestudy/seed_study.json`` (runs of the same seed and
kernel are replaced), which the chapter prints and the tests check against its prose.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from cnn.casestudy.networks import (
    INPUT_SIZE,
    build_cnn,
    build_dense,
    classify,
    standardize,
    train,
)
from cnn.casestudy.synthetic import CLASS_NAMES, load_synthetic, make_mammogram_patches
from cnn.data import load_image, train_validation_split
from cnn.diagnostics import environment
from cnn.fast.threads import blas_threads
from cnn.losses import balanced_class_weights
from cnn.metrics import confusion_matrix, precision_recall
from cnn.saliency import saliency

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "cnn" / "casestudy" / "seed_study.json"
CBIS_COUNTS = (291, 57, 297)  # the chapter's class-imbalance section


def accuracy(model, x, y):
    return float(np.mean(classify(model, x).argmax(axis=1) == y))


def recall(model, x, y):
    confusion = confusion_matrix(y, classify(model, x).argmax(axis=1), 3)
    return precision_recall(confusion)[1].round(4).tolist()


def chapter_data(size):
    x_train, y_train, x_test, y_test = load_synthetic(size=size, seed=0)
    return train_validation_split(x_train, y_train, 0.2, seed=0), (x_test, y_test)


def one_run(seed):
    """Every measured quantity the chapter and its solutions speak of, for one seed."""
    split, (x_test, y_test) = chapter_data(INPUT_SIZE)
    fresh_rng = np.random.default_rng(1)
    x_fresh, y_fresh = make_mammogram_patches(500, INPUT_SIZE, rng=fresh_rng)
    samples = np.concatenate([load_image(ROOT / "images" / f"{name}.png", INPUT_SIZE)
                              for name in CLASS_NAMES])
    run = {"seed": seed}
    for name, build in [("cnn", build_cnn), ("dense", build_dense)]:
        model = build(rng=np.random.default_rng(seed))
        history = train(model, split, seed=seed)
        run[name] = {
            "test_acc": accuracy(model, x_test, y_test),
            "fresh_acc": accuracy(model, x_fresh, y_fresh),
            "final_gap": history["train_acc"][-1] - history["val_acc"][-1],
            "best_epoch": history["best_epoch"],
            "test_recall": recall(model, x_test, y_test),
            "shift_acc": [accuracy(model, np.roll(x_test, k, axis=3), y_test)
                          for k in range(9)],
            "samples_right": int(np.sum(classify(model, samples).argmax(axis=1)
                                        == np.arange(3))),
        }
        if name == "cnn":
            grad = saliency(model, standardize(x_test[:300]), y_test[:300])
            grad = np.abs(grad)[:, 0]
            ring = np.concatenate([grad[:, :5].ravel(), grad[:, -5:].ravel()]).mean()
            run[name]["saliency_ratio"] = float(grad[:, 10:22, 10:22].mean() / ring)
    split16, (x16, y16) = chapter_data(16)
    model = build_cnn(rng=np.random.default_rng(seed), size=16)
    train(model, split16, seed=seed)
    run["cnn16_test_recall"] = recall(model, x16, y16)

    rng = np.random.default_rng(2)
    imbalanced = (*make_mammogram_patches(CBIS_COUNTS, INPUT_SIZE, rng=rng),
                  *make_mammogram_patches(CBIS_COUNTS, INPUT_SIZE, rng=rng))
    x_imb, y_imb = make_mammogram_patches(CBIS_COUNTS, INPUT_SIZE, rng=rng)
    for name, weights in [("plain", None),
                          ("weighted", balanced_class_weights(imbalanced[1], 3))]:
        model = build_cnn(rng=np.random.default_rng(seed))
        train(model, imbalanced, seed=seed, class_weights=weights)
        run[f"imbalanced_{name}"] = {"val_recall": recall(model, *imbalanced[2:]),
                                     "test_recall": recall(model, x_imb, y_imb)}
    for key in ("plain", "weighted"):
        scores = run[f"imbalanced_{key}"]
        scores["val_balanced_acc"] = float(np.mean(scores["val_recall"]))
    return run


def main(argv=None, one_run=one_run, out=OUT, doc=__doc__):
    """Run ``one_run(seed)`` for the seeds of ``argv`` and store each run in ``out``.

    Also the main function of ``scripts/resnet_study.py``, with its own ``one_run``,
    file and docstring.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0].rstrip(":"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args(argv)
    study = json.loads(out.read_text()) if out.is_file() else {"runs": []}
    kernel = environment().kernel
    for seed in args.seeds:
        with blas_threads(1):  # as the chapter trains
            run = {"kernel": kernel, **one_run(seed)}
        print(json.dumps(run))
        study["runs"] = [r for r in study["runs"]
                         if (r["kernel"], r["seed"]) != (kernel, seed)] + [run]
        study["runs"].sort(key=lambda r: (r["kernel"], r["seed"]))
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(study, indent=1) + "\n")
        os.replace(tmp, out)  # a run cut short leaves the previous file whole


if __name__ == "__main__":
    main()
