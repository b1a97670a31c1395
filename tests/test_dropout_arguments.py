"""Dropout's ``p``: 0 keeps every unit whatever the generator draws, the default drops
half of them, and a bad ``p`` is named in the message.

Issue 27 (mutation testing of ``cnn.regularization``)."""

import numpy as np
import pytest

from cnn.regularization import Dropout, dropout_forward

#: A generator whose 244th float32 draw is exactly 0.0 (a 1 in 2**24 event per draw).
ZERO_DRAW_SEED, ZERO_DRAW_SHAPE = 195867, (4, 64)


def test_p_zero_keeps_every_unit_even_on_a_draw_of_exactly_zero():
    draws = np.random.default_rng(ZERO_DRAW_SEED).random(ZERO_DRAW_SHAPE, dtype=np.float32)
    assert (draws == 0).any()  # the premise: a unit kept with probability 1 - p = 1
    x = np.arange(1.0, 257.0).reshape(ZERO_DRAW_SHAPE)
    out, cache = dropout_forward(x, 0.0, np.random.default_rng(ZERO_DRAW_SEED))
    np.testing.assert_array_equal(out, x)
    assert cache.mask.all()


def test_the_default_drops_about_half_of_the_units():
    layer = Dropout(rng=np.random.default_rng(1))
    assert layer.p == 0.5
    out = layer.forward(np.ones((100, 100)))
    assert 0.47 < (out == 0).mean() < 0.53
    np.testing.assert_array_equal(np.unique(out), [0.0, 2.0])


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5])
def test_a_bad_p_is_named_in_the_message(p):
    pattern = (r"^p, the probability of dropping a unit, must be in \[0.0, 1.0\), got "
               f"{p}$")
    with pytest.raises(ValueError, match=pattern):
        dropout_forward(np.ones(3), p, np.random.default_rng(0))
    with pytest.raises(ValueError, match=pattern):
        Dropout(p)
