"""Tuned kernels and the tools that measure them (chapter "Making it fast").

``cnn.fast.conv`` and ``cnn.fast.pool`` compute exactly what ``cnn.conv`` and
``cnn.pool`` compute, with the same signatures and caches, in less time and memory; the
layer classes run them. ``cnn.fast.profiling`` holds the timers, FLOP counts and memory
probes shared by the chapter and ``benchmarks/bench.py``.
"""
