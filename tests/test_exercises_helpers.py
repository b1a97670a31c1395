"""A wrong helper is found among several: the checker goes on past a helper that passes."""

from __future__ import annotations

from test_sandbox import COL2IM_AND_CONV, notebook

from cnn import exercises

# The reader's own im2col, wrong by a factor of 2, beside a right col2im of theirs.
TWO_HELPERS = COL2IM_AND_CONV.replace("OP", "+=").replace(
    "from cnn.conv import crop, im2col\n", """from cnn.conv import crop
from cnn.conv import im2col as book_im2col

def im2col(x_padded, kernel_size, stride):
    return 2 * book_im2col(x_padded, kernel_size, stride)
""")


def test_the_wrong_helper_is_named_when_a_right_one_is_checked_before_it():
    cells = notebook(TWO_HELPERS)
    assert exercises.run_check("col2im", cells["col2im"]).passed
    assert not exercises.run_check("im2col", cells["im2col"]).passed
    first = exercises.run_check("conv2d_backward", cells["conv2d_backward"]).message
    assert first.split("\n")[0] == (
        "conv2d_backward fails, and it calls your im2col, which fails its own check."
        " With the book's im2col in its place, your conv2d_backward passes every case:"
        " the mistake is in your im2col, not in conv2d_backward. What check('im2col',"
        " im2col) says:")


# A reader's second try at relu_backward beside their first, which it calls by name.
SECOND_TRY = """
import numpy as np

def relu_backward(dout, cache):
    return dout  # the first try: forgets the mask

def relu_backward_v2(dout, cache):
    first = relu_backward(dout, cache)
    return 2 * first * (cache.x > 0)  # a factor too many
"""


def test_a_function_named_like_the_check_is_not_taken_for_a_helper():
    cells = notebook(SECOND_TRY)
    message = exercises.run_check("relu_backward", cells["relu_backward_v2"]).message
    # Not "calls your relu_backward, which fails its own check": that function is
    # the reader's own attempt at this very check, not a helper of it.
    assert message.startswith("relu_backward fails case 1 of ")
    assert "which fails its own check" not in message
