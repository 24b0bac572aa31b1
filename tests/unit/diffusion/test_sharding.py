"""Sharding layouts over `accelerate launch` processes and merging the records back."""

from __future__ import annotations

import filecmp

import pytest

from anogen_data.diffusion.sharding import merge_shard_outputs, merge_shards, shard, shard_dir, shard_indices
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


def _fake_shard(out_dir, p, ids):
    """What process p's run_synthesis leaves: records.jsonl + images/ + masks/ for its layouts."""
    import json

    from anogen_data.diffusion.sharding import shard_dir

    folder = shard_dir(out_dir, p)
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    with open(folder / "records.jsonl", "w") as fh:
        for i in ids:
            (folder / "images" / f"{i}.png").write_bytes(f"image {i}".encode())
            (folder / "masks" / f"{i}.png").write_bytes(f"mask {i}".encode())
            fh.write(json.dumps({"id": i, "image_path": f"images/{i}.png", "mask_path": f"masks/{i}.png"}) + "\n")


def test_merged_folder_looks_like_a_single_process_run(tmp_path):
    import json

    from anogen_data.diffusion.sharding import merge_shard_outputs

    ids = [f"syn_{i:06d}" for i in range(7)]
    for p in range(3):
        _fake_shard(tmp_path, p, shard(ids, p, 3))
    assert merge_shard_outputs(tmp_path, ids, 3) == 7
    rows = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ids
    assert all((tmp_path / r["image_path"]).read_bytes() == f"image {r['id']}".encode() for r in rows)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "masks", "records.jsonl"]


def test_a_failed_process_leaves_everything_in_place(tmp_path):
    from anogen_data.diffusion.sharding import merge_shard_outputs

    ids = [f"syn_{i:06d}" for i in range(6)]
    _fake_shard(tmp_path, 0, shard(ids, 0, 2))
    _fake_shard(tmp_path, 1, shard(ids, 1, 2)[:-1])
    with pytest.raises(AnogenError, match="holds 2 of its 3 samples"):
        merge_shard_outputs(tmp_path, ids, 2)
    assert not (tmp_path / "records.jsonl").exists() and not (tmp_path / "images").exists()


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_two_simulated_processes_merge_to_the_single_process_bytes(demo_index, tmp_path):
    """The generate stage's shard path, run as process 0 then 1 of 2 and merged, equals one process."""
    from anogen_data.layout.propose import propose_layouts
    from anogen_data.records import read_index
    from anogen_data.stages.generate import synthesise_shard
    from anogen_data.synthesis import SynthesisContext

    entries = read_index(demo_index)
    context = SynthesisContext(good_paths=tuple(e.path for e in entries if e.role == "train"))
    layouts = list(propose_layouts(entries, 5, category="demo", seed=4))
    single = synthesise_shard("perlin", context, layouts, tmp_path / "one")
    assert single == tmp_path / "one"
    work = tmp_path / "two"
    for process_index in (0, 1):
        assert synthesise_shard("perlin", context, layouts, work, process_index, 2) == shard_dir(work, process_index)
    assert len(_files(shard_dir(work, 0))) == 1 + 2 * 3  # records.jsonl + images/ and masks/ of layouts 0, 2, 4
    assert merge_shard_outputs(work, [x.id for x in layouts], 2) == 5
    names = _files(single)
    assert names == _files(work)  # shard folders removed, nothing else left over
    _, mismatch, errors = filecmp.cmpfiles(single, work, names, shallow=False)
    assert not mismatch and not errors


def test_one_process_is_not_sharded():
    from anogen_data.stages.generate import _process_state

    assert _process_state("anogen") is None  # no `accelerate launch`: one process, nothing changes
    assert _process_state("perlin") is None
