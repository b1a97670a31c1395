"""Tuned kernels and the tools that measure them (chapter "Making it fast").

The engineering tier, beside the teaching tier that the chapters quote:
``cnn.fast.conv``, ``cnn.fast.pool``, ``cnn.fast.conv_transpose``, ``cnn.fast.dense``
and ``cnn.fast.activations`` compute what ``cnn.conv``, ``cnn.pool``,
``cnn.conv_transpose``, ``cnn.dense`` and ``cnn.activations`` compute, with the same
signatures and caches, in less time and memory; ``cnn.fast.layers`` has the layers of
``cnn.layers`` running them and reusing their arrays between steps, and
``cnn.fast.optim`` the optimisers of ``cnn.optim`` updating in place, block by block.
``cnn.fast.norm`` has the group normalisation of ``cnn.norm`` with fewer passes over
memory, and its layer.
The case study, ``cnn train`` and the benchmarks train with them; the tests check that
both tiers give the same numbers.
``cnn.fast.profiling`` holds the timers, FLOP counts and memory probes shared by the
chapter and ``benchmarks/bench.py`` (the chapter's notebook, which Colab and Binder run
with only the package installed, needs them importable from the package);
``cnn.fast.threads`` limits the BLAS threads, for the chapters that train and for
``cnn train``, which import no probe.
"""
