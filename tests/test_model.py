"""Sequential: gradient check of a whole network, training, inference, summary, save and load."""

import numpy as np
import pytest

from cnn.data import load_digits
from cnn.gradcheck import check_model, numerical_gradient, relative_error
from cnn.layers import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU
from cnn.losses import softmax_cross_entropy
from cnn.model import Sequential
from cnn.optim import SGD, Adam


def small_net(seed=0, dtype=np.float64, channels=3):
    rng = np.random.default_rng(seed)
    return Sequential([
        Conv2D(2, channels, 3, padding=1, rng=rng, dtype=dtype), ReLU(), MaxPool2D(2), Flatten(),
        Dense(channels * 9, 4, rng=rng, dtype=dtype),
    ])


def small_batch(seed=0, N=5):
    """Random images labelled by the signs of their two channel means: a learnable task."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, 2, 6, 6))
    means = x.mean(axis=(2, 3))
    return x, (means[:, 0] > 0) + 2 * (means[:, 1] > 0)


def randomise_biases(model, seed):
    """Non-zero biases, so that bias gradients are exercised and no unit sits exactly at a kink."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if "b" in layer.params:
            layer.params["b"][:] = rng.standard_normal(layer.params["b"].shape)


def kink_margin(model, x):
    """Distance of the small net from its kinks: ReLU inputs from 0, pooled maxima from runners-up.

    Finite differences straddling a kink are wrong by design, so a check is only meaningful when
    this margin is much larger than the step h times the input scale.
    """
    z = model.layers[0].forward(x)
    windows = np.maximum(z, 0).reshape(*z.shape[:2], 3, 2, 3, 2).transpose(0, 1, 2, 4, 3, 5)
    top2 = np.sort(windows.reshape(*windows.shape[:4], 4), axis=-1)[..., -2:]
    gaps = (top2[..., 1] - top2[..., 0])[top2[..., 1] > 0]
    return min(np.abs(z).min(), gaps.min())


@pytest.mark.parametrize("seed", [0, 2, 3, 5])
def test_whole_network_gradient_check(seed):
    model = small_net(seed)
    randomise_biases(model, seed)
    x, y = small_batch(seed)
    assert kink_margin(model, x) > 1e-4  # premise of the check (seed 1 has a max-pool near-tie)
    errors = check_model(model, x, y)
    assert errors.keys() == {"0.w", "0.b", "4.w", "4.b"}
    assert max(errors.values()) < 1e-7


def test_gradient_check_flags_a_max_pool_near_tie():
    # Seed 1 puts two window entries 3e-5 apart: within a step of h = 1e-5 times the input, the
    # argmax flips and the centred difference averages two slopes. This is the false alarm the
    # margin above guards against, not a bug in the backward pass.
    model = small_net(1)
    randomise_biases(model, 1)
    x, y = small_batch(1)
    assert kink_margin(model, x) < 1e-4
    assert check_model(model, x, y)["0.w"] > 1e-7
    assert check_model(model, x, y, h=1e-7)["0.w"] < 1e-6


def test_deeper_network_gradient_check_and_input_gradient():
    rng = np.random.default_rng(3)
    model = Sequential([
        Conv2D(2, 3, (3, 2), stride=(1, 2), padding=(1, 0), rng=rng, dtype=np.float64), ReLU(),
        AvgPool2D(2, 1), Conv2D(3, 2, 2, rng=rng, dtype=np.float64), ReLU(), Flatten(),
        Dense(8, 5, rng=rng, dtype=np.float64), ReLU(), Dense(5, 3, rng=rng, dtype=np.float64),
    ])
    randomise_biases(model, 3)
    x, y = rng.standard_normal((4, 2, 6, 7)), rng.integers(0, 3, 4)
    assert max(check_model(model, x, y).values()) < 1e-7
    # backward also returns the gradient with respect to the input (used for saliency maps).
    _, dlogits = softmax_cross_entropy(model.forward(x), y)
    dx = model.backward(dlogits)
    numerical = numerical_gradient(lambda z: softmax_cross_entropy(model.forward(z), y)[0], x.copy())
    assert relative_error(dx, numerical) < 1e-7


def test_parameters_are_the_layer_arrays():
    model = small_net()
    params = model.parameters()
    assert list(params) == ["0.w", "0.b", "4.w", "4.b"]
    assert params["4.w"] is model.layers[4].params["w"]
    x, y = small_batch()
    model.backward(softmax_cross_entropy(model.forward(x), y)[1])
    assert model.gradients().keys() == params.keys()
    assert model.gradients()["0.w"] is model.layers[0].grads["w"]


@pytest.mark.trains
def test_fit_is_reproducible_and_learns():
    x, y = small_batch(N=40)
    histories, weights = [], []
    for _ in range(2):
        model = small_net(dtype=np.float32)
        histories.append(model.fit(x.astype(np.float32), y, epochs=8, batch_size=8,
                                   optimizer=Adam(1e-2), seed=3))
        weights.append(model.parameters())
    assert histories[0] == histories[1]
    for key in weights[0]:
        np.testing.assert_array_equal(weights[0][key], weights[1][key])
    history = histories[0]
    assert len(history["train_loss"]) == len(history["train_acc"]) == 8
    assert history["val_loss"] == [] and history["val_acc"] == []
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
    other = small_net(dtype=np.float32).fit(x.astype(np.float32), y, epochs=8, batch_size=8,
                                            optimizer=Adam(1e-2), seed=4)
    assert other["train_loss"] != history["train_loss"]


@pytest.mark.trains
def test_fit_history_with_validation_matches_evaluate(capsys):
    x, y = small_batch(N=30)
    model = small_net()
    history = model.fit(x[:20], y[:20], epochs=3, batch_size=7, optimizer=SGD(0.1, momentum=0.9),
                        validation_data=(x[20:], y[20:]), verbose=True)
    assert len(history["val_loss"]) == len(history["val_acc"]) == 3
    assert (history["val_loss"][-1], history["val_acc"][-1]) == model.evaluate(x[20:], y[20:])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("epoch 1/3") and "validation" in lines[0]


def test_predict_and_evaluate(rng):
    x, y = small_batch(N=11)
    model = small_net()
    proba = model.predict_proba(x)
    assert proba.shape == (11, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(model.predict(x), proba.argmax(axis=1))
    # Batching is an implementation detail: any batch size gives the same numbers.
    np.testing.assert_allclose(model.predict_proba(x, batch_size=3), proba, rtol=1e-12)
    loss, accuracy = model.evaluate(x, y, batch_size=4)
    np.testing.assert_allclose(loss, -np.mean(np.log(proba[np.arange(11), y])), rtol=1e-10)
    assert accuracy == np.mean(proba.argmax(axis=1) == y)


def test_summary_table():
    model = small_net(channels=3)
    x, y = small_batch()
    model.forward(x)
    caches = [layer.cache for layer in model.layers]
    table = model.summary()
    assert "Conv2D(2, 3, kernel_size=(3, 3)" in table and "Dense(27, 4)" in table
    for shape in ["(2, 6, 6)", "(3, 6, 6)", "(3, 3, 3)", "(27,)", "(4,)"]:
        assert shape in table
    total = sum(p.size for p in model.parameters().values())
    assert f"Total parameters: {total:,}" in table
    assert table == model.summary((2, 6, 6))
    assert all(layer.cache is cache for layer, cache in zip(model.layers, caches))
    with pytest.raises(ValueError, match="input_shape"):
        small_net().summary()


@pytest.mark.trains
def test_save_load_round_trip_is_exact(tmp_path):
    model = small_net(seed=0, dtype=np.float32)
    x, y = small_batch()
    x = x.astype(np.float32)
    model.fit(x, y, epochs=1, batch_size=5, optimizer=Adam(1e-2))
    path = tmp_path / "model.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == sorted(model.parameters())
    other = small_net(seed=1, dtype=np.float32)
    arrays_before = other.parameters()
    other.load(path)
    for key, value in model.parameters().items():
        np.testing.assert_array_equal(other.parameters()[key], value)
        assert other.parameters()[key] is arrays_before[key]  # loaded in place
    np.testing.assert_array_equal(other.predict_proba(x), model.predict_proba(x))


def _snapshot(model):
    return {key: value.copy() for key, value in model.parameters().items()}


def _assert_unchanged(model, snapshot):
    for key, value in model.parameters().items():
        np.testing.assert_array_equal(value, snapshot[key])


@pytest.mark.parametrize("make_file, pattern", [
    (lambda p, m: small_net(channels=4).save(p), r"'0.w' has shape \(4, 2, 3, 3\).*expects shape \(3, 2, 3, 3\)"),
    (lambda p, m: np.savez(p, **{k: v for k, v in m.parameters().items() if k != "4.b"}), r"missing keys \['4.b'\]"),
    (lambda p, m: np.savez(p, **m.parameters(), extra=np.zeros(1)), r"unexpected keys \['extra'\]"),
    (lambda p, m: np.savez(p, **{k: v.astype(np.float32) for k, v in m.parameters().items()}), r"dtype float32.*dtype float64"),
    (lambda p, m: np.savez(p, **{k: np.full_like(v, np.nan) for k, v in m.parameters().items()}), r"contains NaN"),
    (lambda p, m: np.savez(p, **{k: np.empty(v.shape, dtype=object) for k, v in m.parameters().items()}), r"cannot read saved model"),
    (lambda p, m: p.write_bytes(b"not a zip file"), r"cannot read saved model"),
])
def test_load_rejects_a_mismatched_file_and_leaves_the_model_untouched(tmp_path, make_file, pattern):
    model = small_net(seed=0)
    path = tmp_path / "bad.npz"
    make_file(path, small_net(seed=2))
    snapshot = _snapshot(model)
    with pytest.raises(ValueError, match=pattern):
        model.load(path)
    _assert_unchanged(model, snapshot)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        small_net().load(tmp_path / "nowhere.npz")


@pytest.mark.trains
@pytest.mark.parametrize("seed", range(5))  # a claim about the network, not about one run
def test_digits_accuracy(seed):
    x_train, y_train, x_test, y_test = load_digits()
    rng = np.random.default_rng(seed)
    model = Sequential([Conv2D(1, 32, 3, padding=1, rng=rng), ReLU(), MaxPool2D(2), Flatten(),
                        Dense(32 * 4 * 4, 10, rng=rng)])
    model.fit(x_train, y_train, epochs=15, batch_size=32, optimizer=Adam(3e-3), seed=seed)
    _, accuracy = model.evaluate(x_test, y_test)
    assert accuracy >= 0.97


def wide_net(rng):
    """Three 64-channel convolutions: their im2col matrices are far larger than the logits."""
    return Sequential([Conv2D(1, 64, 3, padding=1, rng=rng), ReLU(),
                       Conv2D(64, 64, 3, padding=1, rng=rng), ReLU(),
                       Conv2D(64, 64, 3, padding=1, rng=rng), ReLU(), MaxPool2D(2), Flatten(),
                       Dense(64 * 4 * 4, 3, rng=rng)])


@pytest.mark.parametrize("method", ["predict", "predict_proba", "evaluate"])
def test_inference_keeps_no_caches(method, rng):
    import tracemalloc

    model = wide_net(rng)
    x = rng.standard_normal((64, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    args = (x, y) if method == "evaluate" else (x,)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        result = getattr(model, method)(*args, batch_size=32)
        after, _ = tracemalloc.get_traced_memory()
        # What training keeps between forward and backward, for comparison: several MB.
        model.forward(x[:32])
        with_caches, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert with_caches - after > 4_000_000
    assert after - before < 100_000, f"{method} left {after - before} bytes behind"
    assert result is not None


def test_inference_between_forward_and_backward_changes_nothing(rng):
    model = small_net()
    x, y = small_batch()
    _, dlogits = softmax_cross_entropy(model.forward(x), y)
    expected = model.backward(dlogits)
    grads = {k: v.copy() for k, v in model.gradients().items()}
    model.forward(x)
    model.predict(rng.standard_normal((5,) + x.shape[1:]))
    model.evaluate(x[:2], y[:2])
    np.testing.assert_array_equal(model.backward(dlogits), expected)
    for key, value in model.gradients().items():
        np.testing.assert_array_equal(value, grads[key])



def test_no_progress_bar_when_standard_output_is_not_a_terminal(capsys):
    x, y = small_batch(N=20)
    small_net().fit(x, y, epochs=2, batch_size=5, optimizer=SGD(0.1), verbose=True,
                    progress=True)
    printed = capsys.readouterr().out
    assert "\r" not in printed and "sample/s" not in printed
    assert [line[:9] for line in printed.splitlines()] == ["epoch 1/2", "epoch 2/2"]


class CountingSGD(SGD):
    """SGD that counts its steps, to show that nothing was trained."""

    def __init__(self, lr=0.1):
        super().__init__(lr)
        self.steps = 0

    def step(self, params, grads):
        self.steps += 1
        super().step(params, grads)


def fit_args(N=12):
    x, y = small_batch(N=N)
    return x, y


@pytest.mark.parametrize("change, error, pattern", [
    # A label out of range in the LAST batch: it used to raise after the first steps.
    (lambda x, y, v: (x, np.r_[y[:-1], 4], v), ValueError, r"y must hold labels in 0..3, got values in 0..4"),
    (lambda x, y, v: (x, np.r_[y[:-1], -1], v), ValueError, r"y must hold labels in 0..3"),
    (lambda x, y, v: (x, y, (v[0], np.r_[v[1][:-1], 7])), ValueError, r"y_val must hold labels in 0..3, got values in 0..7"),
    (lambda x, y, v: (x, y, (v[0][:, :1], v[1])), ValueError, r"x_val must have samples of shape \(2, 6, 6\) like x, got shape \(4, 1, 6, 6\)"),
    (lambda x, y, v: (x, y, (v[0], v[1][:3])), ValueError, r"y_val must have shape \(N=4,\), got shape \(3,\)"),
    (lambda x, y, v: (x, y, (v[0][:0], v[1][:0])), ValueError, r"x_val must have shape \(N, ...\) with N >= 1"),
    (lambda x, y, v: (x, y, (v[0],)), TypeError, r"validation_data must be a pair \(x_val, y_val\), got tuple"),
    (lambda x, y, v: (x, y, v[0]), TypeError, r"validation_data must be a pair \(x_val, y_val\), got ndarray"),
    (lambda x, y, v: (x, y, (np.where(v[0] > 1, np.nan, v[0]), v[1])), ValueError, r"x_val contains NaN"),
    (lambda x, y, v: (x[:, :1], y, v), ValueError, r"w must have shape \(F, C=1, KH, KW\)"),
    (lambda x, y, v: (x[:0], y[:0], v), ValueError, r"x must have shape \(N, ...\) with N >= 1"),
])
def test_fit_checks_everything_before_the_first_step(change, error, pattern):
    x, y = fit_args(16)
    x, y, validation = change(x[:12], y[:12], (x[12:], y[12:]))
    model = small_net()
    before = _snapshot(model)
    optimizer = CountingSGD()
    with pytest.raises(error, match=pattern):
        model.fit(x, y, epochs=2, batch_size=4, optimizer=optimizer, validation_data=validation)
    assert optimizer.steps == 0
    _assert_unchanged(model, before)


@pytest.mark.parametrize("optimizer", [None, "adam", Adam])
def test_fit_without_an_optimizer_instance_is_a_type_error(optimizer):
    x, y = fit_args()
    with pytest.raises(TypeError, match=r"optimizer must have a step\(params, grads\) method, e\.g\. "
                                        r"cnn\.optim\.Adam\(\), got (NoneType|str|type)"):
        small_net().fit(x, y, epochs=1, batch_size=4, optimizer=optimizer)


def test_fit_leaves_the_caches_of_its_up_front_check_alone():
    # The check runs one sample through the network; backward after fit must still see the
    # last training batch, not that sample.
    x, y = fit_args(8)
    model = small_net()
    model.fit(x, y, epochs=1, batch_size=8, optimizer=SGD(1e-9), seed=0)
    assert model.layers[0].cache.x_padded.shape[0] == 8


@pytest.mark.trains
def test_fit_reports_the_sample_weighted_mean_loss_of_each_epoch():
    # Batches of 5, 5 and 2 samples: the epoch's loss is the mean over samples (batch losses
    # weighted by their sizes), computed with the weights each batch saw.
    x, y = fit_args(12)
    model, reference = small_net(), small_net()
    lr = 0.05
    history = model.fit(x, y, epochs=2, batch_size=5, optimizer=SGD(lr), seed=7)
    rng = np.random.default_rng(7)
    optimizer = SGD(lr)
    for epoch in range(2):
        order = rng.permutation(12)
        total, correct = 0.0, 0
        for start in range(0, 12, 5):
            batch = order[start:start + 5]
            logits = reference.forward(x[batch])
            loss, dlogits = softmax_cross_entropy(logits, y[batch])
            total += loss * len(batch)
            correct += int((logits.argmax(axis=1) == y[batch]).sum())
            reference.backward(dlogits)
            optimizer.step(reference.parameters(), reference.gradients())
        assert history["train_loss"][epoch] == pytest.approx(total / 12, rel=1e-12)
        assert history["train_acc"][epoch] == correct / 12
    for key, value in reference.parameters().items():
        np.testing.assert_allclose(model.parameters()[key], value, rtol=1e-12)


def test_forward_refuses_an_empty_batch_in_any_network():
    for model in (small_net(), Sequential([Flatten(), Dense(4, 2)])):
        with pytest.raises(ValueError, match=r"x must have shape \(N, ...\) with N >= 1"):
            model.forward(np.zeros((0, 2, 6, 6)) if len(model.layers) > 2
                          else np.zeros((0, 1, 2, 2), np.float32))


def test_summary_table_exactly():
    rng = np.random.default_rng(0)
    model = Sequential([Conv2D(1, 2, 3, rng=rng), ReLU(), Flatten(), Dense(8, 3, rng=rng)])
    conv = "Conv2D(1, 2, kernel_size=(3, 3), stride=(1, 1), padding=(0, 0))"
    pad = " " * (len(conv) - len("Layer"))
    rule = "-" * (len(conv) + 2 + len("Output shape") + 2 + len("Params"))
    expected = [
        f"Layer{pad}  Output shape  Params",
        rule,
        f"{'Input':<{len(conv)}}  (1, 4, 4)          0",
        f"{conv}  (2, 2, 2)         20",
        f"{'ReLU()':<{len(conv)}}  (2, 2, 2)          0",
        f"{'Flatten()':<{len(conv)}}  (8,)               0",
        f"{'Dense(8, 3)':<{len(conv)}}  (3,)              27",
        rule,
        "Total parameters: 47",
    ]
    assert model.summary((1, 4, 4)) == "\n".join(expected)


def test_summary_of_a_model_without_parameters_and_with_an_explicit_shape():
    model = Sequential([Flatten(), ReLU()])
    assert model.summary((2, 3)).splitlines()[-1] == "Total parameters: 0"
    net = Sequential([Conv2D(2, 3, 3, padding=1), ReLU()])
    assert "(3, 6, 6)" in net.summary((2, 6, 6))  # a fresh model with a shape given
    net.forward(np.zeros((1, 2, 6, 6), np.float32))
    assert "(3, 8, 8)" in net.summary((2, 8, 8))  # the given shape wins over the last seen
    with pytest.raises(ValueError, match=r"^input_shape is needed until the model has seen "
                                         r"data, e\.g\. \(1, 8, 8\)$"):
        small_net().summary()


def test_a_failed_fit_check_leaves_the_caches_of_the_last_forward():
    model = small_net()
    x, y = fit_args(6)
    model.forward(x[:3])
    caches = [layer.cache for layer in model.layers]
    with pytest.raises(ValueError):
        model.fit(x, np.full(6, 9), epochs=1, batch_size=2, optimizer=SGD(0.1))
    assert all(layer.cache is cache for layer, cache in zip(model.layers, caches))


def test_fit_needs_logits_from_the_last_layer():
    model = Sequential([Conv2D(2, 3, 3, rng=np.random.default_rng(0), dtype=np.float64)])
    x, y = fit_args(4)
    with pytest.raises(ValueError, match=r"^the last layer must return logits of shape \(N, K\), "
                                         r"got shape \(1, 3, 4, 4\)$"):
        model.fit(x, y, epochs=1, batch_size=2, optimizer=SGD(0.1))


@pytest.mark.parametrize("optimizer, name", [(None, "NoneType"), ("adam", "str"), (Adam, "type")])
def test_fit_names_what_it_got_instead_of_an_optimizer(optimizer, name):
    x, y = fit_args()
    with pytest.raises(TypeError, match=rf", got {name}$"):
        small_net().fit(x, y, epochs=1, batch_size=4, optimizer=optimizer)


@pytest.mark.trains
def test_fit_defaults_seed_0_and_silence(capsys):
    x, y = fit_args(10)
    first = small_net().fit(x, y, epochs=2, batch_size=3, optimizer=SGD(0.1))
    again = small_net().fit(x, y, epochs=2, batch_size=3, optimizer=SGD(0.1), seed=0)
    assert first == again
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("method", ["predict", "predict_proba", "evaluate"])
def test_inference_batch_size_is_checked(method):
    x, y = fit_args(3)
    args = (x, y) if method == "evaluate" else (x,)
    with pytest.raises(ValueError, match=r"^batch_size must be >= 1, got 0$"):
        getattr(small_net(), method)(*args, batch_size=0)
