"""Data augmentation: random shifts with padding and horizontal flips, seeded, never in place."""

import numpy as np
import pytest

from cnn.augment import random_flip, random_shift


def images(seed=0, shape=(6, 2, 5, 7)):
    return np.random.default_rng(seed).uniform(1, 2, size=shape)  # no zeros: fill is visible


def test_zero_shift_is_the_identity():
    x = images()
    np.testing.assert_array_equal(random_shift(x, 0, np.random.default_rng(0)), x)


def test_each_image_is_its_own_shifted_copy_with_a_filled_border():
    x = images()
    out = random_shift(x, 2, np.random.default_rng(3), fill=-5.0)
    assert out.shape == x.shape and out.dtype == x.dtype
    shifts = set()
    for n in range(len(x)):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if np.array_equal(out[n], shifted(x[n], dy, dx, -5.0))]
        assert len(found) == 1, f"image {n} is not a shift of its input"
        shifts.add(found[0])
    assert len(shifts) > 1, "images are shifted independently"


def shifted(image, dy, dx, fill):
    """The image moved down by dy and right by dx, uncovered pixels set to fill."""
    C, H, W = image.shape
    out = np.full_like(image, fill)
    out[:, max(dy, 0):H + min(dy, 0), max(dx, 0):W + min(dx, 0)] = \
        image[:, max(-dy, 0):H - max(dy, 0), max(-dx, 0):W - max(dx, 0)]
    return out


def test_shift_and_flip_are_seeded_and_leave_the_input_alone():
    x = images()
    x_copy = x.copy()
    for augment in (lambda r: random_shift(x, 3, r), lambda r: random_flip(x, r)):
        np.testing.assert_array_equal(augment(np.random.default_rng(9)), augment(np.random.default_rng(9)))
    np.testing.assert_array_equal(x, x_copy)


def test_flip_mirrors_left_to_right():
    x = images().astype(np.float32)
    np.testing.assert_array_equal(random_flip(x, np.random.default_rng(0), p=0.0), x)
    flipped = random_flip(x, np.random.default_rng(0), p=1.0)
    np.testing.assert_array_equal(flipped, x[:, :, :, ::-1])
    assert flipped.dtype == np.float32
    some = random_flip(images(shape=(200, 1, 2, 3)), np.random.default_rng(1))
    mirrored = np.mean([np.array_equal(a, b[:, :, ::-1]) for a, b in zip(some, images(shape=(200, 1, 2, 3)))])
    assert 0.35 < mirrored < 0.65


@pytest.mark.parametrize("call, error, pattern", [
    (lambda: random_shift(np.zeros((2, 3, 4)), 1, np.random.default_rng()), ValueError, r"\(N, C, H, W\)"),
    (lambda: random_shift(np.zeros((1, 1, 4, 4)), -1, np.random.default_rng()), ValueError, "max_shift"),
    (lambda: random_shift(np.zeros((1, 1, 4, 4)), 1, 0), TypeError, "rng"),
    (lambda: random_flip(np.zeros((1, 1, 4, 4)), np.random.default_rng(), p=1.5), ValueError, "p must"),
])
def test_bad_inputs_raise(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()
