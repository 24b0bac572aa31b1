"""Run a synthesis backend over layouts: per-sample seeds, streaming, worker processes, resumable.

Each sample's randomness comes from ``np.random.default_rng([layout.seed, 2])`` (stream 1 is the
layout's own, see ``layout.propose``), so neither the batch size nor the number of worker processes
changes a single byte. Results are written as they come (PNG files renamed into place, one
``records.jsonl`` line per sample, in layout order), so memory stays bounded and an interrupted run
resumes from its records: the valid prefix of ``records.jsonl`` is kept, the rest is redone.

With workers the parent only hands out layouts and appends the returned rows: each worker process
reads its own source images, synthesises and writes its own PNGs, a few batches per task (``chunk_batches``)
so task hand-off stays small next to the work, with one OpenCV and one torch thread each so W workers
use W cores without oversubscribing them. Workers die with the parent (``die_with_parent``: no orphan
keeps writing after a SIGKILL) and leave Ctrl-C to it.

Backends: see ``anogen_data.synthesis`` (CutPaste, Li et al. CVPR 2021; DRAEM, Zavrtanik et al. ICCV
2021; real-defect paste; AnoGen, Gui et al. ECCV 2024; DualAnoDiff, Jin et al. CVPR 2025).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import numpy as np

from anogen_data.data.image_io import read_image, write_png
from anogen_data.layout.rle import mask_bbox
from anogen_data.records import Layout, SynthRecord, to_row
from anogen_data.synthesis import CPU_BACKENDS, get_backend
from anogen_data.synthesis.base import RECIPE_EXTRA, Backend, SynthesisContext, check_output

RECORDS = "records.jsonl"
SYNTH_STREAM = 2  # rng stream of a sample's synthesis (1 = its layout)
TASK_SAMPLES = 16  # at most this many samples per worker task: hand-off cost amortised, progress still moves
TASKS_PER_WORKER = 4  # ... and at least this many tasks per worker, so the last ones balance out

_WORKER: dict = {}


def sample_rng(layout: Layout) -> np.random.Generator:
    """The synthesis generator of one sample (independent of batching and workers)."""
    return np.random.default_rng([int(layout.seed), SYNTH_STREAM])


def _write_png_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write_png(tmp, array)
    os.replace(tmp, path)


def layout_facts(layout: Layout) -> dict:
    """What a record keeps of its layout's shape: ``shape_source``, and for real shapes the learn-shot
    ``shot_mask`` and the ``placement``; these win over a backend's own ``extra`` keys."""
    facts = {"shape_source": layout.shape_source}
    if layout.shot_mask is not None:
        facts.update(shot_mask=layout.shot_mask, placement=layout.placement)
    return facts


def synthesise_batch(backend: Backend, layouts: Sequence[Layout], out_dir: Path) -> list[dict]:
    """Make, write and describe one batch of samples; returns their records.jsonl rows.

    Writes ``out_dir/images/<id>.png`` (uint8 RGB) and ``out_dir/masks/<id>.png`` (uint8, 255 = defect).
    """
    images = [read_image(layout.source_path) for layout in layouts]
    recipes = [backend.make_recipe(im, lay, sample_rng(lay)) for im, lay in zip(images, layouts)]
    rows = []
    for image, layout, recipe, (out, mask) in zip(images, layouts, recipes, backend.apply_batch(images, layouts, recipes)):
        check_output(out, image, mask, backend.name)
        _write_png_atomic(out_dir / "images" / f"{layout.id}.png", out)
        _write_png_atomic(out_dir / "masks" / f"{layout.id}.png", mask)
        box = layout.bbox_xyxy if backend.mask_quality == "box" else (mask_bbox(mask) or layout.bbox_xyxy)
        record = SynthRecord(
            id=layout.id, category=layout.category, defect_type=layout.defect_type, backend=backend.name,
            seed=layout.seed, source_path=layout.source_path, image_path=f"images/{layout.id}.png",
            mask_path=f"masks/{layout.id}.png", mask_quality=backend.mask_quality, bbox_xyxy=tuple(box),
            recipe=recipe, extra={**recipe.get(RECIPE_EXTRA, {}), **layout_facts(layout)},
        )
        rows.append(to_row(record))
    return rows


def die_with_parent(parent_pid: int) -> None:
    """Make this worker process die with its parent and ignore Ctrl-C (the parent handles it).

    On Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` has the kernel kill the worker when the parent dies,
    even by SIGKILL (otherwise orphaned workers keep writing into the ``.partial`` folder, then hang);
    a parent that died before the call is caught by comparing ``getppid``. Ctrl-C reaches the whole
    process group: workers ignore it, so the parent prints the one line and stops them.
    """
    import ctypes
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - no libc prctl
            pass
    if os.getppid() != parent_pid:
        os._exit(1)


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """Kill a pool's workers now (on an error or Ctrl-C in the parent), instead of waiting for their tasks."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.kill()
    pool.shutdown(wait=True, cancel_futures=True)


def one_thread() -> None:
    """One OpenCV thread and (when torch is loaded) one torch thread in this process: a worker's share of cores."""
    import cv2

    cv2.setNumThreads(1)
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.set_num_threads(1)


@contextlib.contextmanager
def worker_pool(workers: int, initializer: Callable, initargs: tuple, *, fork: bool = True) -> Iterator[ProcessPoolExecutor]:
    """A pool of ``workers`` processes, forked (they inherit the parent's imports and objects: seconds
    saved per worker, nothing pickled) or spawned (torch/CUDA backends); ``initializer(*initargs)`` runs
    in each and should call ``one_thread`` and ``die_with_parent`` (pass the parent's pid in ``initargs``).

    While the pool lives the parent runs one OpenCV thread, which shuts OpenCV's thread pool down: a
    child that inherits a live pool can hang in it. The parent's thread count is restored afterwards.
    When the block raises (an error, Ctrl-C, a test's timeout) the workers are terminated instead of
    awaited, so a stuck worker cannot hang the parent on its way out.
    """
    import cv2

    ctx = multiprocessing.get_context("fork" if fork else "spawn")
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=initializer, initargs=initargs)
    try:
        yield pool
    except BaseException:
        stop_workers(pool)
        raise
    else:
        pool.shutdown(wait=True)
    finally:
        cv2.setNumThreads(threads)


def _init_worker(backend_name: str, context: SynthesisContext, out_dir: str, parent_pid: int) -> None:
    die_with_parent(parent_pid)
    one_thread()
    _WORKER["backend"] = get_backend(backend_name)(context)
    one_thread()  # again: the backend may have imported torch
    _WORKER["out_dir"] = Path(out_dir)


def _worker_task(batches: list[list[Layout]]) -> list[dict]:
    return [row for layouts in batches for row in synthesise_batch(_WORKER["backend"], layouts, _WORKER["out_dir"])]


def chunk_batches(n_batches: int, batch: int, workers: int) -> int:
    """Batches per worker task: up to ``TASK_SAMPLES`` samples, but at least ``TASKS_PER_WORKER`` tasks per worker."""
    return max(1, min(TASK_SAMPLES // batch, n_batches // (TASKS_PER_WORKER * workers)))


def completed_rows(out_dir: Path) -> list[dict]:
    """The valid prefix of ``out_dir/records.jsonl`` whose files exist; truncates the file to it.

    A row that is not a ``schemas.RecordRow`` (a torn last line, or a hand edit) ends the prefix: it and
    everything after it are made again (per-sample seeds give the same bytes).
    """
    from pydantic import ValidationError

    from anogen_data.schemas import RecordRow

    path = Path(out_dir) / RECORDS
    if not path.is_file():
        return []
    rows, keep_bytes = [], 0
    with open(path, "rb") as fh:
        for line in fh:
            try:
                RecordRow.model_validate_json(line, strict=True)
            except ValidationError:
                break
            row = json.loads(line)
            if not line.endswith(b"\n") or not all((Path(out_dir) / row[k]).is_file() for k in ("image_path", "mask_path")):
                break
            rows.append(row)
            keep_bytes += len(line)
    with open(path, "r+b") as fh:
        fh.truncate(keep_bytes)
    return rows


def _batches(layouts: Sequence[Layout], size: int) -> Iterator[list[Layout]]:
    for start in range(0, len(layouts), size):
        yield list(layouts[start : start + size])


def run_synthesis(
    backend_name: str,
    context: SynthesisContext,
    layouts: Sequence[Layout],
    out_dir: Path,
    *,
    workers: int = 1,
    resume: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Synthesise every layout into ``out_dir`` (images/, masks/, records.jsonl); returns the sample count.

    Args:
        backend_name: key of ``BACKENDS``.
        context: what the backend may know (learn shots, good images, concepts, device ...).
        layouts: the samples to make, in output order (ids unique).
        out_dir: the folder to fill; created if missing.
        workers: processes (1 = in this process). Output bytes do not depend on it.
        resume: keep the samples already in ``out_dir/records.jsonl`` and make only the rest.
        on_progress: called with the number of samples finished after each batch.
    """
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "masks").mkdir(parents=True, exist_ok=True)
    done = {row["id"] for row in completed_rows(out_dir)} if resume else set()
    if not resume:
        (out_dir / RECORDS).write_text("", encoding="utf-8")
    todo = [layout for layout in layouts if layout.id not in done]
    if on_progress and done:
        on_progress(len(layouts) - len(todo))
    batch = max(1, int(context.batch_size))
    with open(out_dir / RECORDS, "a", encoding="utf-8") as records:
        for rows in _run_batches(backend_name, context, todo, out_dir, batch, workers):
            records.write("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))
            records.flush()
            if on_progress:
                on_progress(len(rows))
    return len(layouts)


def _run_batches(
    backend_name: str, context: SynthesisContext, todo: list[Layout], out_dir: Path, batch: int, workers: int
) -> Iterator[list[dict]]:
    """Yield rows in layout order (a batch, or a worker task of ``chunk_batches`` batches, at a time);
    with workers > 1 at most 4 x workers tasks are in flight."""
    if workers <= 1 or len(todo) <= batch:
        backend = get_backend(backend_name)(context)
        for layouts in _batches(todo, batch):
            yield synthesise_batch(backend, layouts, out_dir)
        return
    # CPU backends fork (reusing the parent's imports: albumentations pulls in torch, seconds per spawned
    # worker); diffusion backends (torch, CUDA) spawn.
    fork = backend_name in CPU_BACKENDS and "fork" in multiprocessing.get_all_start_methods()
    batches = list(_batches(todo, batch))
    per_task = chunk_batches(len(batches), batch, workers)
    with worker_pool(workers, _init_worker, (backend_name, context, str(out_dir), os.getpid()), fork=fork) as pool:
        pending: deque[Future] = deque()
        for start in range(0, len(batches), per_task):
            pending.append(pool.submit(_worker_task, batches[start:start + per_task]))
            if len(pending) >= 4 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
