"""Sharding layouts over `accelerate launch` processes and merging the records back."""

from __future__ import annotations

import pytest

from anogen_data.diffusion.sharding import merge_shards, shard, shard_indices
from anogen_data.errors import AnogenError


@pytest.mark.parametrize("n_items", [0, 1, 7, 8, 23])
@pytest.mark.parametrize("k", [1, 2, 3, 8])
def test_shards_partition_the_layouts_and_merge_back_in_order(n_items, k):
    items = [f"syn_{i:06d}" for i in range(n_items)]
    parts = [shard(items, p, k) for p in range(k)]
    assert sorted(x for part in parts for x in part) == sorted(items)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1  # balanced
    assert merge_shards(parts) == items == merge_shards(parts, total=n_items)


def test_every_kth_layout():
    assert shard_indices(10, 1, 4) == [1, 5, 9]
    assert shard(list("abcdefg"), 2, 3) == ["c", "f"]


def test_a_lost_shard_is_detected():
    parts = [shard(list(range(10)), p, 3) for p in range(3)]
    parts[1] = parts[1][:-1]
    with pytest.raises(AnogenError, match="process 1 returned 2 results, expected 3"):
        merge_shards(parts, total=10)


def test_invalid_process_index():
    with pytest.raises(AnogenError):
        shard_indices(5, 2, 2)


def test_single_process_outside_accelerate():
    from anogen_data.diffusion.sharding import current_shard

    assert current_shard() == (0, 1)
