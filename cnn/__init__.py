"""cnn: a small, exact NumPy library for convolutional networks, written to be read.

Functional core (``cnn.conv``, ``cnn.pool``, ``cnn.dense``, ``cnn.activations``,
``cnn.losses``): pure ``*_forward(...) -> (out, cache)`` and ``*_backward(dout, cache)``
functions, each with a naive loop version beside the fast one. Thin layer classes
(``cnn.layers``), a ``Sequential`` model (``cnn.model``), optimisers (``cnn.optim``),
gradient checking (``cnn.gradcheck``) and data loaders (``cnn.data``) are built on them.
Arrays are NCHW.
"""

# The one place the version is written. pyproject.toml, the site, the PDF and the
# notebooks' install cell read it; CITATION.cff and the introduction repeat it
# (tests/test_release.py checks that they agree).
__version__ = "0.2.0"
