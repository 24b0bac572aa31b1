"""Shared fixtures: the real-data folder (skipped when absent), a CLI runner, demo data, tiny SD components."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("ANOGEN_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real datasets beside the checkout (../shared/data); skip when absent."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip(f"real data not found at {SHARED_DATA} (set ANOGEN_SHARED_DATA); fresh clones skip this test")
    return SHARED_DATA


@pytest.fixture
def run_cli(capsys):
    """Run ``anogen-data ARGS...`` in-process; returns (exit_code, stdout, stderr)."""
    from anogen_data.cli import main

    def _run(*args: str) -> tuple[int, str, str]:
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return _run


@pytest.fixture(scope="session")
def demo_data_root(tmp_path_factory) -> Path:
    """A small demo category rendered once per session: ROOT/demo in MVTec layout, 64 px, 12 train/good,
    4 test/good, defect types scratch and spot with 4 anomalies each (exact masks, 255 = defect)."""
    from anogen_data.data.demo import render_demo

    root = tmp_path_factory.mktemp("demo_data")
    render_demo(root, size=64, n_good=12, n_test_good=4, defects=("scratch", "spot"), n_per_defect=4)
    return root


@pytest.fixture(scope="session")
def demo_index(demo_data_root, tmp_path_factory) -> Path:
    """index.jsonl of ``demo_data_root`` (first-third: 2 learn + 2 eval anomalies per defect type)."""
    from anogen_data.config import IndexConfig
    from anogen_data.stages.index import run_index

    out = tmp_path_factory.mktemp("demo_index") / "index"
    return run_index(IndexConfig(data=str(demo_data_root), category="demo"), out)


@pytest.fixture
def make_mvtec(tmp_path):
    """Factory writing a tiny MVTec-layout category; returns the data root.

    ``make_mvtec(category="widget", good=3, test_good=1, defects={"scratch": 3}, size=(32, 24))`` writes
    train/good/NNN.png, test/good/NNN.png, test/<defect>/NNN.png and ground_truth/<defect>/NNN_mask.png
    (a filled square, 255 = defect) with random uint8 content from a fixed seed.
    """
    import numpy as np

    from anogen_data.data.image_io import write_png

    def _make(category="widget", good=3, test_good=1, defects=None, size=(32, 24), root=None):
        root = Path(root) if root is not None else tmp_path / "data"
        width, height = size
        rng = np.random.default_rng(0)
        folders = [("train/good", good, False), ("test/good", test_good, False)]
        folders += [(f"test/{d}", n, True) for d, n in (defects if defects is not None else {"scratch": 3}).items()]
        for rel, count, masked in folders:
            (root / category / rel).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                write_png(root / category / rel / f"{i:03d}.png", rng.integers(0, 256, (height, width, 3), np.uint8))
                if masked:
                    gt = root / category / "ground_truth" / rel.split("/")[1]
                    gt.mkdir(parents=True, exist_ok=True)
                    mask = np.zeros((height, width), np.uint8)
                    mask[2:8, 3:9] = 255
                    write_png(gt / f"{i:03d}_mask.png", mask)
        return root

    return _make


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for a test module (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``).

    Tiny models gain nothing from more threads, and on a busy 2-core box OpenMP threads spin-waiting
    on each other make every call many times slower. The previous count is restored afterwards.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_sd():
    """Factory of tiny random SD components (fp32, CPU, seed 0): ``parts = tiny_sd()``.

    Built once per session; every call returns a fresh deep copy, so a test may add tokens or LoRA
    adapters, or train, without affecting any other test.
    """
    import copy

    from anogen_data.diffusion.loading import load_components

    base = load_components("tiny", device="cpu", dtype="fp32")
    return lambda: copy.deepcopy(base)


@pytest.fixture
def tiny(tiny_sd):
    """One fresh copy of the tiny SD components (see ``tiny_sd``)."""
    return tiny_sd()

