"""cnn: a small, exact NumPy library for convolutional networks, written to be read.

Functional core (``cnn.conv``, ``cnn.pool``, ``cnn.dense``, ``cnn.activations``,
``cnn.losses``): pure ``*_forward(...) -> (out, cache)`` and ``*_backward(dout, cache)``
functions, each with a naive loop version beside the fast one. Thin layer classes
(``cnn.layers``), a ``Sequential`` model (``cnn.model``), optimisers (``cnn.optim``),
gradient checking (``cnn.gradcheck``) and data loaders (``cnn.data``) are built on them.
Arrays are NCHW.

Chapter -> module, in the book's order (the API page documents every module):

==  ==============  ===============================================================
 #  Chapter         Modules
==  ==============  ===============================================================
 1  notation        ``cnn.gradcheck`` (finite differences)
 2  dense           ``cnn.dense``, ``cnn.layers``
 3  activations     ``cnn.activations``, ``cnn.losses``
 4  conv_forward    ``cnn.conv``
 5  conv_backward   ``cnn.conv``, ``cnn.layers``
 6  pooling         ``cnn.pool``, ``cnn.layers``
 7  gradcheck       ``cnn.gradcheck``
 8  cnn             ``cnn.model``, ``cnn.optim``, ``cnn.data``, ``cnn.digits``,
                    ``cnn.metrics``
 9  performance     ``cnn.fast`` (``conv``, ``pool``, ``conv_transpose``,
                    ``dense``, ``activations``, ``norm``, ``layers``,
                    ``optim``, ``profiling``, ``threads``)
10  initialisation  ``cnn.init``
11  batchnorm       ``cnn.norm``
12  regularisation  ``cnn.regularization``, ``cnn.augment``
13  deeper_cnn      ``cnn.conv_transpose``, ``cnn.diagnostics``, ``cnn.digits``
                    (``build_deeper_cnn``)
14  mammography     ``cnn.casestudy`` (``synthetic``, ``cbis``, ``networks``,
                    ``training``), ``cnn.saliency``, ``cnn.cli``
15  residual        ``cnn.layers`` (``Residual``)
16  conv_variants   ``cnn.conv`` (``dilation=``, ``groups=``)
17  normalisation   ``cnn.norm`` (``LayerNorm``, ``GroupNorm``)
18  resnet          ``cnn.digits`` (``build_digits_resnet``)
19  bugzoo          ``cnn.bugzoo``, ``cnn.exercises``
--  teachers        ``cnn.exercises`` (the checker of the student notebooks)
--  (no chapter)    ``cnn.checks`` (argument checking), ``cnn.modelfile`` (model
                    files of ``Sequential.save`` and ``load``)
==  ==============  ===============================================================

A chapter is ``book/<chapter>.md``.
"""

# The one place the version is written. pyproject.toml, the site, the PDF and the
# notebooks' install cell read it; CITATION.cff and the introduction repeat it
# (tests/test_release.py checks that they agree).
__version__ = "0.3.0"
