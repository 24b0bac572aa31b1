"""Split synthesis work across processes (``accelerate launch``) and merge the results into one version.

Each of ``num_processes`` processes takes every k-th layout (``layouts[process_index::num_processes]``),
so a user with 8 GPUs runs one command; the per-process record lists are merged back into the original
layout order, so the merged ``records.jsonl`` is the same whatever the number of processes (each sample
has its own seed, so the bytes do not depend on which process made it either). Used by the AnoGen
(ECCV 2024) and DualAnoDiff (CVPR 2025) backends.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from anogen_data.errors import AnogenError

T = TypeVar("T")


def shard_indices(n_items: int, process_index: int, num_processes: int) -> list[int]:
    """Positions of the items that process ``process_index`` of ``num_processes`` takes (every k-th).

    Raises:
        AnogenError: ``num_processes`` < 1 or ``process_index`` outside [0, num_processes).
    """
    if num_processes < 1 or not 0 <= process_index < num_processes:
        raise AnogenError(f"process {process_index} of {num_processes} is not a valid shard; check `accelerate launch`")
    return list(range(process_index, n_items, num_processes))


def shard(items: Sequence[T], process_index: int, num_processes: int) -> list[T]:
    """The items process ``process_index`` of ``num_processes`` works on: ``items[process_index::k]``."""
    return [items[i] for i in shard_indices(len(items), process_index, num_processes)]


def merge_shards(parts: Sequence[Sequence[T]], total: int | None = None) -> list[T]:
    """Interleave per-process results back into the original order (the inverse of :func:`shard`).

    ``parts[p]`` holds the results of process p, in its shard's order; ``total`` is the number of
    layouts (default: the sum of the part lengths).

    Raises:
        AnogenError: the part lengths cannot come from sharding one list (a process lost results).
    """
    k = len(parts)
    total = sum(len(p) for p in parts) if total is None else total
    for p, part in enumerate(parts):
        if len(part) != len(shard_indices(total, p, k)):
            raise AnogenError(
                f"process {p} returned {len(part)} results, expected {len(shard_indices(total, p, k))} "
                f"of {total}; a process failed, rerun with --resume"
            )
    merged: list[T] = [None] * total  # type: ignore[list-item]
    for p, part in enumerate(parts):
        for i, item in zip(shard_indices(total, p, k), part):
            merged[i] = item
    return merged


def current_shard() -> tuple[int, int]:
    """(process_index, num_processes) of this process under ``accelerate launch`` ((0, 1) otherwise)."""
    from accelerate import PartialState

    state = PartialState()
    return state.process_index, state.num_processes


def shard_dir(out_dir: Path, process_index: int) -> Path:
    """Where process ``process_index`` writes its synthesis output under ``out_dir``."""
    return Path(out_dir) / f".shard-{process_index:03d}"


def merge_shard_outputs(out_dir: Path, layout_ids: Sequence[str], num_processes: int) -> int:
    """Merge per-process synthesis folders into ``out_dir`` (images/, masks/, records.jsonl in layout order).

    Process p wrote ``shard_dir(out_dir, p)/{records.jsonl, images/, masks/}`` for the layouts
    ``layout_ids[p::num_processes]``; run this on the main process after ``wait_for_everyone()``.
    Image/mask paths in the records stay relative (``images/<id>.png``), so the merged folder looks
    exactly like a single-process run.

    Returns:
        The number of merged records.

    Raises:
        AnogenError: a shard is missing records (a process failed): nothing is moved.
    """
    import json

    from anogen_data.files import read_jsonl

    out_dir = Path(out_dir)
    parts = []
    for p in range(num_processes):
        folder = shard_dir(out_dir, p)
        rows = read_jsonl(folder / "records.jsonl") if (folder / "records.jsonl").is_file() else []
        expected = [layout_ids[i] for i in shard_indices(len(layout_ids), p, num_processes)]
        if [r["id"] for r in rows] != expected:
            raise AnogenError(f"{folder}/records.jsonl holds {len(rows)} of its {len(expected)} samples; "
                              "a process failed, rerun the same command with --resume")
        parts.append(rows)
    merged = merge_shards(parts, total=len(layout_ids))
    for sub in ("images", "masks"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    for p in range(num_processes):
        folder = shard_dir(out_dir, p)
        for row in parts[p]:
            for key in ("image_path", "mask_path"):
                (folder / row[key]).replace(out_dir / row[key])
    with open(out_dir / "records.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(row, sort_keys=True) + "\n" for row in merged)
    for p in range(num_processes):
        shutil.rmtree(shard_dir(out_dir, p), ignore_errors=True)
    return len(merged)
