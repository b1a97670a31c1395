"""Tuned kernels and the tools that measure them (chapter "Making it fast").

``cnn.fast.conv``, ``cnn.fast.pool`` and ``cnn.fast.conv_transpose`` compute exactly
what ``cnn.conv``, ``cnn.pool`` and ``cnn.conv_transpose`` compute, with the same
signatures and caches, in less time and memory; the layer classes run them.
``cnn.fast.profiling`` holds the timers, FLOP counts and memory probes shared by the
chapter and ``benchmarks/bench.py`` (the chapter's notebook, which Colab and Binder run
with only the package installed, needs them importable from the package);
``cnn.fast.threads`` limits the BLAS threads, for the chapters that train and for
``cnn train``, which import no probe.
"""
