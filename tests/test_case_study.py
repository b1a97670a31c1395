"""The mammography case study: preprocessing, networks, metrics, saliency, and the trained CNN.

The accuracies stated in book/mammography.md are checked here, with the chapter's own settings:
the defaults of ``load_synthetic`` and ``cnn.casestudy.networks.train``.
"""

from pathlib import Path

import numpy as np
import pytest

from cnn.casestudy.networks import INPUT_SIZE, build_cnn, build_dense, classify, standardize, train
from cnn.data import load_image
from cnn.gradcheck import numerical_gradient, relative_error
from cnn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from cnn.metrics import confusion_matrix, precision_recall
from cnn.model import Sequential
from cnn.fast.profiling import blas_threads
from cnn.saliency import saliency
from cnn.casestudy.synthetic import CLASS_NAMES, load_synthetic, make_mammogram_patches

ROOT = Path(__file__).resolve().parent.parent
CNN_ACCURACY = 0.85  # the CNN's held-out accuracy is at least this ...
MARGIN = 0.10  # ... and beats the dense-only network by at least this much
FRESH_ACCURACY = 0.82  # on a fresh test set that played no part in choosing the settings


@pytest.fixture(scope="module")
def trained():
    """The chapter's experiment: both networks, trained on the same seeded split."""
    data = load_synthetic(seed=0)
    cnn_model = build_cnn(rng=np.random.default_rng(0))
    dense_model = build_dense(rng=np.random.default_rng(0))
    with blas_threads(1):  # as in the chapter: same numbers, and steady on a shared machine
        cnn_history = train(cnn_model, data, seed=0)
        dense_history = train(dense_model, data, seed=0)
    return data, cnn_model, cnn_history, dense_model, dense_history


def test_cnn_reaches_the_stated_accuracy_and_beats_the_dense_network(trained):
    data, cnn_model, cnn_history, dense_model, dense_history = trained
    _, _, x_test, y_test = data
    cnn_accuracy = np.mean(classify(cnn_model, x_test).argmax(axis=1) == y_test)
    dense_accuracy = np.mean(classify(dense_model, x_test).argmax(axis=1) == y_test)
    assert cnn_accuracy == pytest.approx(cnn_history["val_acc"][-1])
    assert dense_accuracy == pytest.approx(dense_history["val_acc"][-1])
    assert cnn_accuracy >= CNN_ACCURACY
    assert cnn_accuracy - dense_accuracy >= MARGIN


def test_cnn_keeps_its_lead_on_a_fresh_test_set(trained):
    # The chapter's settings were chosen by looking at the seed-0 split; this set played no part.
    _, cnn_model, _, dense_model, _ = trained
    x, y = make_mammogram_patches(500, INPUT_SIZE, rng=np.random.default_rng(1))
    cnn_accuracy = np.mean(classify(cnn_model, x).argmax(axis=1) == y)
    dense_accuracy = np.mean(classify(dense_model, x).argmax(axis=1) == y)
    assert cnn_accuracy >= FRESH_ACCURACY
    assert cnn_accuracy - dense_accuracy >= MARGIN


def test_cnn_classifies_the_three_sample_images(trained):
    cnn_model = trained[1]
    for label, name in enumerate(CLASS_NAMES):
        image = load_image(ROOT / "images" / f"{name}.png", INPUT_SIZE)
        assert classify(cnn_model, image)[0].argmax() == label, name


def test_cnn_saliency_points_at_the_lesion(trained):
    # The patches' lesions sit near the centre; the gradient of the true class's score should be
    # larger there than in the outer ring of tissue, on average over the test set.
    _, _, x_test, y_test = trained[0]
    grad = np.abs(saliency(trained[1], standardize(x_test[:300]), y_test[:300]))[:, 0]
    centre = grad[:, 10:22, 10:22].mean()
    ring = np.concatenate([grad[:, :5].ravel(), grad[:, -5:].ravel()]).mean()
    assert centre > 1.5 * ring


def test_networks_have_the_documented_layers_and_shapes():
    cnn_model = build_cnn(rng=np.random.default_rng(0))
    kinds = [type(layer) for layer in cnn_model.layers]
    assert kinds == [Conv2D, ReLU, MaxPool2D, Flatten, Dense, ReLU, Dense]
    assert [type(layer) for layer in build_dense(rng=np.random.default_rng(0)).layers] == [
        Flatten, Dense, ReLU, Dense]
    x = np.zeros((2, 1, INPUT_SIZE, INPUT_SIZE), np.float32)
    assert cnn_model.forward(x).shape == (2, 3)
    smaller = build_cnn(rng=np.random.default_rng(0), size=20)
    assert smaller.forward(x[..., :20, :20]).shape == (2, 3)


def test_standardize_per_image():
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(4, 1, 6, 5)) * np.arange(1, 5)[:, None, None, None]).astype(np.float32)
    x[3] = 0.25
    before = x.copy()
    out = standardize(x)
    np.testing.assert_array_equal(x, before)  # the input is not modified
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[:3].mean(axis=(1, 2, 3)), 0.0, atol=1e-6)
    np.testing.assert_allclose(out[:3].std(axis=(1, 2, 3)), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(out[3], 0.0)  # constant image: zeros, no NaN
    with pytest.raises(ValueError, match=r"x must have shape \(N, C, H, W\)"):
        standardize(x[0])


def test_confusion_matrix_and_precision_recall_against_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 3, size=200), rng.integers(0, 3, size=200)
    confusion = confusion_matrix(y_true, y_pred, 3)
    np.testing.assert_array_equal(confusion, metrics.confusion_matrix(y_true, y_pred))
    precision, recall = precision_recall(confusion)
    np.testing.assert_allclose(precision, metrics.precision_score(y_true, y_pred, average=None))
    np.testing.assert_allclose(recall, metrics.recall_score(y_true, y_pred, average=None))


def test_precision_of_a_class_never_predicted_is_nan():
    confusion = confusion_matrix(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 1]), 3)
    np.testing.assert_array_equal(confusion, [[1, 0, 0], [0, 1, 0], [0, 2, 0]])
    precision, recall = precision_recall(confusion)
    np.testing.assert_allclose(precision[:2], [1.0, 1 / 3])
    assert np.isnan(precision[2])
    np.testing.assert_allclose(recall, [1.0, 1.0, 0.0])


@pytest.mark.parametrize("call, error, message", [
    (lambda: confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3), ValueError, "y_true"),
    (lambda: confusion_matrix(np.array([0, 1]), np.array([0]), 3), ValueError, "y_pred"),
    (lambda: confusion_matrix(np.array([0.0]), np.array([0]), 3), TypeError, "y_true"),
    (lambda: precision_recall(np.zeros((2, 3), np.int64)), ValueError, r"\(K, K\)"),
    (lambda: precision_recall(np.zeros((2, 2))), TypeError, "integer"),
])
def test_metrics_reject_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


def small_float64_cnn():
    rng = np.random.default_rng(0)
    return Sequential([Conv2D(1, 2, 3, rng=rng, dtype=np.float64), ReLU(), MaxPool2D(2), Flatten(),
                       Dense(2 * 3 * 3, 4, rng=rng, dtype=np.float64), ReLU(),
                       Dense(4, 3, rng=rng, dtype=np.float64)])


def test_saliency_is_the_gradient_of_the_class_score():
    model = small_float64_cnn()
    x = np.random.default_rng(1).standard_normal((2, 1, 8, 8))
    for cls in range(3):
        expected = np.stack([
            numerical_gradient(lambda xn: model.forward(xn[None])[0, cls], x[n].copy())
            for n in range(2)])
        dx = saliency(model, x, cls)
        assert dx.shape == x.shape and dx.dtype == x.dtype
        assert relative_error(dx, expected) < 1e-7


def test_saliency_takes_one_class_per_sample():
    model = small_float64_cnn()
    x = np.random.default_rng(2).standard_normal((2, 1, 8, 8))
    both = saliency(model, x, np.array([2, 0]))
    np.testing.assert_allclose(both[0], saliency(model, x[:1], 2)[0])
    np.testing.assert_allclose(both[1], saliency(model, x[1:], 0)[0])


@pytest.mark.parametrize("cls", [3, -1, np.array([0, 1, 2]), 1.0])
def test_saliency_rejects_bad_classes(cls):
    x = np.zeros((2, 1, 8, 8))
    with pytest.raises(ValueError, match="cls must be"):
        saliency(small_float64_cnn(), x, cls)
