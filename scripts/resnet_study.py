"""The chapter "A residual network, end to end" over seeds and BLAS kernels::

    python scripts/resnet_study.py             # seeds 0-4, this machine's BLAS kernel
    OPENBLAS_CORETYPE=Haswell python scripts/resnet_study.py --seeds 0 1

The chapter trains the small residual network and the deeper CNN of the chapter before
it on the digits, with one recipe, and compares them. One seeded float32 run is
reproducible only on one BLAS kernel, so the chapter states a comparison only when it
holds in every run recorded here, for several seeds (initial weights, dropout masks and
the order of the mini-batches; the data and split are the chapter's) and several
kernels. Each run is stored under its seed and kernel in ``cnn/resnet_study.json``
(runs of the same seed and kernel are replaced), which the chapter prints and the tests
check against its prose, as ``scripts/seed_study.py`` does for the case study.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import seed_study  # scripts/, beside this file: the same main, record and file format

from cnn.data import load_digits
from cnn.digits import (
    BATCH_SIZE,
    LEARNING_RATES,
    RESNET_EPOCHS,
    RESNET_LR,
    VALIDATION_SIZE,
    build_deeper_cnn,
    build_digits_resnet,
)
from cnn.losses import softmax_cross_entropy
from cnn.optim import Adam

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "cnn" / "resnet_study.json"
NETWORKS = {"resnet": build_digits_resnet, "deeper": build_deeper_cnn}


def one_run(seed):
    """What the chapter measures of its two networks, for one seed.

    Each network is trained with every step size of ``LEARNING_RATES`` and validated
    after every epoch; only the one trained with the chosen step size, ``RESNET_LR``,
    is tested.
    """
    x_train_full, y_train_full, x_test, y_test = load_digits(test_size=0.25, seed=0)
    x_train, y_train = x_train_full[:-VALIDATION_SIZE], y_train_full[:-VALIDATION_SIZE]
    x_val, y_val = x_train_full[-VALIDATION_SIZE:], y_train_full[-VALIDATION_SIZE:]
    run = {"seed": seed}
    for name, build in NETWORKS.items():
        model = build(rng=np.random.default_rng(seed))
        initial_loss = softmax_cross_entropy(model.forward(x_train), y_train)[0]
        run[name] = {"initial_loss": float(initial_loss), "val_acc": {}}
        for lr in LEARNING_RATES:
            model = build(rng=np.random.default_rng(seed))
            history = model.fit(x_train, y_train, epochs=RESNET_EPOCHS,
                                batch_size=BATCH_SIZE, optimizer=Adam(lr=lr),
                                validation_data=(x_val, y_val), seed=seed)
            run[name]["val_acc"][str(lr)] = history["val_acc"]
            if lr == RESNET_LR:
                run[name]["test_acc"] = float(model.evaluate(x_test, y_test)[1])
    tiny = build_digits_resnet(rng=np.random.default_rng(seed)).fit(
        x_train[:20], y_train[:20], epochs=60, batch_size=20, optimizer=Adam(lr=1e-2),
        seed=seed)
    run["resnet"]["tiny_loss"] = tiny["train_loss"][-1]
    return run


if __name__ == "__main__":
    seed_study.main(one_run=one_run, out=OUT, doc=__doc__)
