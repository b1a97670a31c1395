"""Tuned kernels and the tools that measure them (chapter "Making it fast").

``cnn.fast.conv``, ``cnn.fast.pool`` and ``cnn.fast.conv_transpose`` compute exactly
what ``cnn.conv``, ``cnn.pool`` and ``cnn.conv_transpose`` compute, with the same
signatures and caches, in less time and memory; the layer classes run them.
``cnn.fast.profiling`` holds the timers, FLOP counts and memory probes shared by the
chapter and ``benchmarks/bench.py``.
"""
