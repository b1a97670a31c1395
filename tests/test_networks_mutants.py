"""The case-study networks' smaller promises, found by mutation testing (MUTATION.md).

The chapter's tests (tests/test_case_study.py) train on the chapter's data; these use a
few small random patches, so that every promise of ``train`` and of the builders is
checked in well under a second: the defaults, the history, the epoch kept, the printed
lines, the progress bar, the seeds, and the layers' shapes and generators.
"""

import io
import re

import numpy as np
import pytest

from cnn.casestudy.networks import (
    HISTORY_KEYS,
    ORIGINAL_SIZE,
    build_cnn,
    build_dense,
    build_original,
    standardize,
    train,
)
from cnn.metrics import balanced_accuracy, confusion_matrix

SIZE = 8  # the patches' side: the smallest networks that still pool


def patches(seed=0, n_train=40, n_val=15):
    """Random patches in [0, 1] and labels: training and validation."""
    rng = np.random.default_rng(seed)
    return (
        rng.random((n_train, 1, SIZE, SIZE), dtype=np.float32),
        rng.integers(0, 3, size=n_train),
        rng.random((n_val, 1, SIZE, SIZE), dtype=np.float32),
        rng.integers(0, 3, size=n_val),
    )


def small_cnn(seed=0):
    return build_cnn(rng=np.random.default_rng(seed), size=SIZE, filters=2, hidden=4)


def assert_same_weights(first, second):
    for key, value in first.parameters().items():
        np.testing.assert_array_equal(value, second.parameters()[key], err_msg=key)


class Terminal(io.StringIO):
    """Standard output that says it is a terminal, so that a progress bar is drawn."""

    def isatty(self):
        return True


def test_train_defaults_are_twelve_quiet_epochs_of_32_with_adam_1e_3_and_seed_0(
    monkeypatch, capsys
):
    terminal = Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    default, explicit = small_cnn(), small_cnn()
    history = train(default, patches())
    assert terminal.getvalue() == ""  # not verbose, no bar even on a terminal
    assert history == train(
        explicit,
        patches(),
        epochs=12,
        batch_size=32,
        lr=1e-3,
        seed=0,
        class_weights=None,
        verbose=False,
        progress=False,
    )
    assert_same_weights(default, explicit)
    assert all(len(history[key]) == 12 for key in HISTORY_KEYS)
    # Each setting matters on these patches: another value gives other weights.
    for change in [dict(batch_size=33), dict(lr=2e-3), dict(seed=1)]:
        other = small_cnn()
        train(other, patches(), **change)
        assert not np.array_equal(
            other.parameters()["0.w"], default.parameters()["0.w"]
        )


def test_the_progress_bar_shows_each_epoch_on_a_terminal(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    train(small_cnn(), patches(), epochs=2, progress=True)
    shown = terminal.getvalue()
    assert "epoch 1/2" in shown and "epoch 2/2" in shown and "sample" in shown


def test_the_history_has_one_value_per_epoch_and_the_best_epoch_from_1():
    data = patches()
    history = train(small_cnn(), data, epochs=5, lr=0.05)
    assert set(history) == {*HISTORY_KEYS, "best_epoch"}
    for key in HISTORY_KEYS:
        assert len(history[key]) == 5 and all(np.isfinite(history[key])), key
    scores = history["val_balanced_acc"]
    assert all(0 <= score <= 1 for score in scores)
    assert history["best_epoch"] == int(np.argmax(scores)) + 1


def test_the_model_keeps_the_best_epochs_weights_and_its_score():
    _, _, x_val, y_val = data = patches(seed=3)
    model = small_cnn()
    history = train(model, data, epochs=6, batch_size=8, lr=0.05)
    best = history["best_epoch"]
    replay = small_cnn()
    train(replay, data, epochs=best, batch_size=8, lr=0.05)
    assert_same_weights(model, replay)
    predicted = model.predict(standardize(x_val))
    kept = balanced_accuracy(confusion_matrix(y_val, predicted, 3))
    assert kept == max(history["val_balanced_acc"])


def test_of_equal_epochs_the_earliest_is_kept():
    # A step too small to change any prediction: every epoch scores the same.
    history = train(small_cnn(), patches(), epochs=4, lr=1e-12)
    assert len(set(history["val_balanced_acc"])) == 1
    assert history["best_epoch"] == 1


def test_verbose_prints_each_epochs_numbers_and_the_epoch_kept(capsys):
    history = train(small_cnn(), patches(), epochs=3, lr=0.05, verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    number = r"(\d+\.\d{4})"
    for epoch, line in enumerate(lines[:3], start=1):
        match = re.fullmatch(
            rf"epoch {epoch}/3: loss {number}, accuracy {number}; validation loss "
            rf"{number}, accuracy {number}, balanced accuracy {number}",
            line,
        )
        assert match, line
        keys = ["train_loss", "train_acc", "val_loss", "val_acc", "val_balanced_acc"]
        for key, printed in zip(keys, match.groups()):
            assert float(printed) == pytest.approx(history[key][epoch - 1], abs=5e-5), (
                key
            )
    best = history["best_epoch"]
    assert lines[3] == (
        f"keeping the weights of epoch {best} (best validation balanced "
        f"accuracy, {history['val_balanced_acc'][best - 1]:.4f})"
    )


def test_every_epoch_is_one_pass_with_its_own_seeded_batch_order():
    model, calls = small_cnn(), []
    fit = model.fit

    def recording_fit(*args, **kwargs):
        calls.append((args[2], kwargs["seed"]))
        return fit(*args, **kwargs)

    model.fit = recording_fit
    train(model, patches(), epochs=40, lr=1e-12)
    assert [epochs for epochs, _ in calls] == [1] * 40
    seeds = [seed for _, seed in calls]
    assert len(set(seeds)) == 40
    again = small_cnn()
    first = train(again, patches(), epochs=3, seed=7)
    assert first == train(small_cnn(), patches(), epochs=3, seed=7)


def test_class_weights_reach_the_loss():
    plain, weighted = small_cnn(), small_cnn()
    train(plain, patches(), epochs=2)
    history = train(
        weighted, patches(), epochs=2, class_weights=np.array([5.0, 1.0, 1.0])
    )
    assert not np.array_equal(plain.parameters()["0.w"], weighted.parameters()["0.w"])
    assert len(history["train_loss"]) == 2


def test_train_names_a_bad_epoch_count():
    with pytest.raises(ValueError, match=r"^epochs must be >= 1, got 0$"):
        train(small_cnn(), patches(), epochs=0)


# --- the builders -------------------------------------------------------------------


def shapes(model):
    return {key: value.shape for key, value in model.parameters().items()}


def test_the_cnns_layers_have_the_documented_sizes():
    model = build_cnn(rng=np.random.default_rng(0))
    assert shapes(model) == {
        "0.w": (8, 1, 3, 3),
        "0.b": (8,),
        "4.w": (8 * 15 * 15, 32),
        "4.b": (32,),
        "6.w": (32, 3),
        "6.b": (3,),
    }
    assert model.forward(np.zeros((2, 1, 32, 32), np.float32)).shape == (2, 3)
    smallest = build_cnn(rng=np.random.default_rng(0), size=4, filters=3, hidden=5)
    assert shapes(smallest)["4.w"] == (3 * 1 * 1, 5)
    assert smallest.forward(np.zeros((2, 1, 4, 4), np.float32)).shape == (2, 3)
    assert shapes(build_cnn(rng=np.random.default_rng(0), size=9))["4.w"] == (
        8 * 3 * 3,
        32,
    )
    with pytest.raises(ValueError, match=r"^size must be >= 4, got 3$"):
        build_cnn(rng=np.random.default_rng(0), size=3)


def test_the_dense_networks_layers_have_the_documented_sizes():
    model = build_dense(rng=np.random.default_rng(0))
    assert shapes(model) == {
        "1.w": (32 * 32, 64),
        "1.b": (64,),
        "3.w": (64, 3),
        "3.b": (3,),
    }
    assert shapes(build_dense(rng=np.random.default_rng(0), size=5, hidden=7))[
        "1.w"
    ] == (25, 7)
    with pytest.raises(ValueError, match=r"^size must be >= 1, got 0$"):
        build_dense(rng=np.random.default_rng(0), size=0)


@pytest.mark.parametrize("build", [build_cnn, build_dense])
def test_every_layer_is_drawn_from_the_given_generator(build):
    first, again, other = (build(rng=np.random.default_rng(seed)) for seed in (0, 0, 1))
    for key, value in first.parameters().items():
        np.testing.assert_array_equal(value, again.parameters()[key])
        if key.endswith(".w"):
            assert not np.array_equal(value, other.parameters()[key]), key


def test_the_original_network_at_full_size():
    model = build_original(rng=np.random.default_rng(1))
    assert shapes(model) == {
        "0.w": (128, 1, 3, 3),
        "0.b": (128,),
        "4.w": (128 * 24 * 24, 512),
        "4.b": (512,),
        "6.w": (512, 3),
        "6.b": (3,),
    }
    sizes = {key: value.size for key, value in model.parameters().items()}
    total = sum(sizes.values())
    # The docstring: 37.75 million, all but 2,819 of them in the first dense layer.
    assert (
        round(total / 1e6, 2) == 37.75 and total - sizes["4.w"] - sizes["4.b"] == 2819
    )
    first_conv = build_cnn(
        rng=np.random.default_rng(1), size=ORIGINAL_SIZE, filters=128, hidden=1
    ).parameters()["0.w"]
    np.testing.assert_array_equal(model.parameters()["0.w"], first_conv)
