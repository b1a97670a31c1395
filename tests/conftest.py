"""Shared test configuration: a hypothesis profile and a seeded generator."""

import numpy as np
import pytest
from hypothesis import settings

settings.register_profile("cnn", deadline=None, max_examples=50, derandomize=True)
settings.load_profile("cnn")


@pytest.fixture
def rng():
    """A fresh, seeded generator for each test."""
    return np.random.default_rng(0)


def pytest_report_header():
    from cnn.diagnostics import environment

    return f"BLAS of this run: {environment()}"
