"""Split synthesis work across processes (``accelerate launch``) and merge the results into one version.

Each of ``num_processes`` processes takes every k-th layout (``layouts[process_index::num_processes]``),
so a user with 8 GPUs runs one command; the per-process record lists are merged back into the original
layout order, so the merged ``records.jsonl`` is the same whatever the number of processes (each sample
has its own seed, so the bytes do not depend on which process made it either). Used by the AnoGen
(ECCV 2024) and DualAnoDiff (CVPR 2025) backends.
"""

from __future__ import annotations

from collections.abc import Sequence
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
