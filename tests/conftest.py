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
