"""Fixtures for the diffusion tests: tiny random SD components on one CPU thread.

One thread: the tiny models are too small to gain from more, and on a busy 2-core box OpenMP
threads fighting each other make every call many times slower.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny():
    """Fresh tiny components (fp32, CPU); each test may add tokens without affecting others."""
    from anogen_data.diffusion.loading import load_components

    return load_components("tiny", device="cpu", dtype="fp32")
