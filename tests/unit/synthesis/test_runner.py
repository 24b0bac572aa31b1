"""The synthesis runner: identical bytes for any worker count, resume after a crash, streaming records."""

from __future__ import annotations

import filecmp
import os
from pathlib import Path

import pytest

from anogen_data.layout.propose import propose_layouts
from anogen_data.records import read_index, read_records
from anogen_data.synthesis import SynthesisContext
from anogen_data.synthesis.perlin import PerlinBackend
from anogen_data.synthesis.runner import RECORDS, completed_rows, run_synthesis, synthesise_batch


@pytest.fixture(scope="module")
def setup(demo_index):
    entries = read_index(demo_index)
    context = SynthesisContext(
        learn_shots=tuple(e for e in entries if e.role == "learn"),
        good_paths=tuple(e.path for e in entries if e.role == "train"),
    )
    return context, list(propose_layouts(entries, 10, category="demo", seed=2))


def _same_tree(a: Path, b: Path) -> None:
    names = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    match, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    assert not mismatch and not errors


@pytest.fixture(scope="module")
def reference(setup, tmp_path_factory):
    context, layouts = setup
    out = tmp_path_factory.mktemp("ref")
    run_synthesis("paste", context, layouts, out, workers=1)
    return out


def test_records_describe_the_written_files(reference, setup):
    _, layouts = setup
    records = read_records(reference / RECORDS)
    assert [r.id for r in records] == [x.id for x in layouts]
    for record, layout in zip(records, layouts):
        assert (reference / record.image_path).is_file() and (reference / record.mask_path).is_file()
        assert record.backend == "paste" and record.seed == layout.seed and record.recipe["shot"]
        x0, y0, x1, y1 = record.bbox_xyxy
        lx0, ly0, lx1, ly1 = layout.bbox_xyxy
        assert lx0 <= x0 < x1 <= lx1 and ly0 <= y0 < y1 <= ly1


def test_two_workers_give_identical_bytes(reference, setup, tmp_path):
    context, layouts = setup
    run_synthesis("paste", context, layouts, tmp_path / "w2", workers=2)
    _same_tree(reference, tmp_path / "w2")


def test_two_workers_with_several_samples_per_task_give_identical_bytes(reference, setup, tmp_path, monkeypatch):
    import anogen_data.synthesis.runner as runner

    monkeypatch.setattr(runner, "TASKS_PER_WORKER", 1)  # 10 samples, 2 workers -> 2 tasks of 5
    assert runner.chunk_batches(10, 1, 2) == 5
    context, layouts = setup
    run_synthesis("paste", context, layouts, tmp_path / "w2", workers=2)
    _same_tree(reference, tmp_path / "w2")


def test_chunk_batches_bounds_task_size_and_keeps_tasks_per_worker():
    from anogen_data.synthesis.runner import TASK_SAMPLES, TASKS_PER_WORKER, chunk_batches

    assert chunk_batches(10_000, 1, 2) == TASK_SAMPLES  # big runs: capped samples per task
    assert chunk_batches(10_000, 4, 2) == TASK_SAMPLES // 4  # batches of 4 samples
    assert chunk_batches(40, 1, 2) == 40 // (TASKS_PER_WORKER * 2)  # small runs: every worker gets several tasks
    assert chunk_batches(3, 1, 2) == 1 and chunk_batches(100, 64, 2) == 1


def _thread_counts() -> tuple[int, int]:
    import cv2
    import torch

    return cv2.getNumThreads(), torch.get_num_threads()


def test_workers_run_one_opencv_and_one_torch_thread(setup, tmp_path):
    import cv2
    import torch

    from anogen_data.synthesis.runner import _init_worker, worker_pool

    context, _ = setup
    threads, torch_threads = cv2.getNumThreads(), torch.get_num_threads()
    torch.set_num_threads(2)  # the forked child inherits 2; only the worker initialiser can make it 1
    try:
        with worker_pool(1, _init_worker, ("perlin", context, str(tmp_path), os.getpid())) as pool:
            assert cv2.getNumThreads() == 1  # the parent's OpenCV pool is shut down before any fork
            assert pool.submit(_thread_counts).result(timeout=120) == (1, 1)
        assert cv2.getNumThreads() == threads  # and restored afterwards
    finally:
        torch.set_num_threads(torch_threads)


def _no_setup() -> None:
    pass


@pytest.mark.timeout(60)  # without the termination the block would wait an hour
def test_a_failing_block_terminates_stuck_workers_instead_of_waiting():
    import multiprocessing
    import time

    from anogen_data.synthesis.runner import worker_pool

    start = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            with worker_pool(2, _no_setup, ()) as pool:
                stuck = pool.submit(time.sleep, 3600)
                stuck.result(timeout=1)  # the caller gives up: the pool must not wait for the worker
        assert time.monotonic() - start < 30
        assert not multiprocessing.active_children()
    finally:  # should the pool regress, leave no sleeping child behind to hang the session's exit
        for child in multiprocessing.active_children():
            child.kill()


def test_resume_after_a_crash_gives_the_same_output(reference, setup, tmp_path, monkeypatch):
    context, layouts = setup
    out = tmp_path / "crashed"
    calls = {"n": 0}
    original = PerlinBackend.apply

    def crash_after_four(self, image, layout, recipe):
        calls["n"] += 1
        if calls["n"] > 4:
            raise KeyboardInterrupt
        return original(self, image, layout, recipe)

    monkeypatch.setattr(PerlinBackend, "apply", crash_after_four)
    with pytest.raises(KeyboardInterrupt):
        run_synthesis("perlin", context, layouts, out, workers=1)
    monkeypatch.setattr(PerlinBackend, "apply", original)
    with open(out / RECORDS, "a", encoding="utf-8") as fh:
        fh.write('{"id": "syn_0000')  # a line cut by the crash
    assert len(completed_rows(out)) == 4
    seen = []
    run_synthesis("perlin", context, layouts, out, workers=1, resume=True, on_progress=seen.append)
    assert seen[0] == 4 and sum(seen) == len(layouts)
    fresh = tmp_path / "fresh"
    run_synthesis("perlin", context, layouts, fresh, workers=1)
    _same_tree(fresh, out)


class _PerlinWithFacts(PerlinBackend):
    """Perlin that reports a backend fact (and tries to override the runner's own key) via recipe["extra"]."""

    def make_recipe(self, image, layout, rng):
        return {**super().make_recipe(image, layout, rng), "extra": {"origin": layout.source_path, "shape_source": "x"}}


def test_backend_extra_is_merged_into_the_record(setup, tmp_path):
    context, layouts = setup
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    rows = synthesise_batch(_PerlinWithFacts(context), layouts[:2], tmp_path)
    assert all(x.shot_mask for x in layouts[:2])  # real shapes: the learn shot and placement are recorded too
    for row, layout in zip(rows, layouts[:2]):
        facts = {"shape_source": layout.shape_source}
        if layout.shot_mask is not None:
            facts.update(shot_mask=layout.shot_mask, placement=layout.placement)
        assert row["extra"] == {"origin": layout.source_path, **facts}
