"""The diffusion tests run torch on one thread (tiny models; see ``one_torch_thread`` in tests/conftest.py).

Tiny SD components: the ``tiny`` / ``tiny_sd`` fixtures of tests/conftest.py.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test in this folder runs with torch on one thread."""
