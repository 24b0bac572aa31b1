"""Version folders: numbering, immutability, atomicity on failure, determinism, our reader re-reads them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from anogen_data.config import ExportConfig
from anogen_data.data import mvtec
from anogen_data.errors import AnogenError
from anogen_data.writers.manifest import file_table
from anogen_data.writers.mvtec import mask_of
from anogen_data.writers.version import existing_versions, next_version, ordered_map, write_version


def _write(inputs, out, **kwargs):
    return write_version(out, "widget", category="widget", index=inputs.index, records=inputs.records,
                         records_dir=inputs.records_dir, **kwargs)


def test_versions_count_up_and_are_never_overwritten(inputs, tmp_path):
    out = tmp_path / "out"
    assert next_version(out / "widget") == 1
    first = _write(inputs, out)
    second = _write(inputs, out)
    assert (first.name, second.name) == ("v1", "v2")
    assert _write(inputs, out, version=7).name == "v7"
    assert existing_versions(out / "widget") == [1, 2, 7] and next_version(out / "widget") == 8
    before = file_table(first)
    with pytest.raises(AnogenError, match="v1 already exists.*never overwritten.*v8"):
        _write(inputs, out, version=1)
    assert file_table(first) == before


def test_interrupted_export_leaves_no_partial_version(inputs, tmp_path):
    out = tmp_path / "out"
    previous = _write(inputs, out)
    before = file_table(previous)

    def records_then_crash():
        yield inputs.records[0]
        raise KeyboardInterrupt  # Ctrl-C in the middle of the stream

    with pytest.raises(KeyboardInterrupt):
        write_version(out, "widget", category="widget", index=inputs.index, records=records_then_crash(),
                      records_dir=inputs.records_dir)
    assert sorted(p.name for p in (out / "widget").iterdir()) == ["v1"]  # no v2, no temporary folder
    assert file_table(previous) == before


def test_bad_mask_mid_stream_raises_and_writes_nothing(inputs, tmp_path):
    bad = inputs.records_dir / inputs.records[1].mask_path
    bad.write_bytes(b"not a png")
    records = [r for r in inputs.records if r.mask_quality == "pixel"]
    with pytest.raises(AnogenError, match="not a readable image"):
        write_version(tmp_path / "out", "widget", category="widget", index=inputs.index, records=records,
                      records_dir=inputs.records_dir)
    assert not (tmp_path / "out").exists()  # no v1, no temporary folder, no empty out/widget/


def test_unwritable_output_is_a_clear_error(inputs, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(AnogenError, match="cannot write"):
        _write(inputs, blocker / "out")


def test_a_folder_the_file_system_refuses_is_a_clear_error(inputs, tmp_path):
    """A real OS refusal at creation, as any user: a folder name longer than the file system allows (root,
    as in CI, ignores folder permissions, so the read-only case below applies to other users only)."""
    too_long, before = tmp_path / ("x" * 300), sorted(tmp_path.iterdir())
    with pytest.raises(AnogenError, match="x{300}/widget: File name too long; choose another --out"):
        _write(inputs, too_long)
    assert sorted(tmp_path.iterdir()) == before
    if os.geteuid() != 0:  # a read-only folder refuses everyone but root
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            with pytest.raises(AnogenError, match="cannot write.*Permission denied"):
                _write(inputs, locked)
        finally:
            locked.chmod(0o700)


def test_same_inputs_give_the_same_bytes(inputs, tmp_path):
    one = file_table(_write(inputs, tmp_path / "a", config=ExportConfig(workers=1)))
    two = file_table(_write(inputs, tmp_path / "b", config=ExportConfig(workers=3)))
    assert one == two  # thread count and run do not change a byte (manifest.json holds the time)


def test_bad_names_and_empty_exports(inputs, tmp_path):
    with pytest.raises(AnogenError, match="plain folder name"):
        write_version(tmp_path, "../up", category="widget", index=inputs.index)
    with pytest.raises(AnogenError, match="nothing to export"):
        write_version(tmp_path, "widget", category="widget", index=[])
    assert not (tmp_path / "widget" / "v1").exists()


def test_stats_and_records_of_a_version(written):
    stats = json.loads((written.folder / "stats.json").read_text())
    inputs = written.inputs
    n_learn = sum(e.role == "learn" for e in inputs.index)
    assert stats["totals"]["images"] == len(inputs.index) + len(inputs.records)
    assert stats["totals"]["synthetic"] == len(inputs.records)
    assert stats["counts"]["test"]["good"] == {"real": 2}
    assert stats["counts"]["train"]["scratch"] == {"real": n_learn // 2, "synthetic": 2}
    anomalies = stats["totals"]["anomalies"]
    assert sum(stats["mask_area_fraction"]["counts"]) == anomalies
    assert sum(stats["box_size_fraction"]["counts"]) == stats["totals"]["instances"]
    box = sum(r.mask_quality == "box" for r in inputs.records)
    assert stats["defects_per_image"] == {"1": box, "2": anomalies - box}  # two blobs, one filled box
    assert stats["filters"] == {"scored": 3, "kept": 3, "pass_rate": 1.0, "per_filter": {"sharpness": 1.0}, "dropped_by": {}}
    rows = [json.loads(line) for line in (written.folder / "records.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [r.id for r in inputs.records]
    assert all((written.folder / r["image_path"]).is_file() and (written.folder / r["mask_path"]).is_file() for r in rows)


def test_mvtec_tree_is_strict_and_masks_are_binary_and_image_sized(written):
    import cv2

    from anogen_data.data.image_io import read_image, read_mask

    tree = written.folder / "mvtec" / "widget"
    assert sorted(p.name for p in tree.iterdir()) == ["ground_truth", "test", "train"]
    assert [p.name for p in (tree / "train").iterdir()] == ["good"]  # training anomalies live in synthetic/
    masks = sorted((tree / "ground_truth").rglob("*")) + sorted((written.folder / "synthetic").rglob("masks/*/*"))
    images = [p for p in (tree / "test").rglob("*.png") if p.parent.name != "good"]
    images += list((written.folder / "synthetic" / "widget" / "images").rglob("*.png"))
    assert len([m for m in masks if m.is_file()]) == len(images) == 4 + 2 + 3  # eval + learn + synthetic
    for image_file in images:
        mask_file = written.folder / mask_of(image_file.relative_to(written.folder).as_posix())
        raw = cv2.imread(str(mask_file), cv2.IMREAD_UNCHANGED)
        assert raw.ndim == 2 and set(np.unique(raw)) <= {0, 255}
        assert raw.shape == read_image(image_file).shape[:2] == read_mask(mask_file).shape


def test_our_reader_rereads_both_trees_with_identical_counts(written):
    from anogen_data.data.mvtec import load_category

    samples = load_category(written.folder, "widget")
    stats = json.loads((written.folder / "stats.json").read_text())
    counts: dict = {}
    for s in samples:
        key = (s.split, s.defect_type)
        counts[key] = counts.get(key, 0) + 1
    expected = {(split, defect): sum(sources.values())
                for split, defects in stats["counts"].items() for defect, sources in defects.items()}
    assert counts == expected
    assert all(s.mask_path for s in samples if s.label == "anomaly")
    assert all(Path(s.mask_path).name.startswith(Path(s.path).stem) for s in samples if s.label == "anomaly")
    real_only = load_category(written.folder / "mvtec", "widget")  # the MVTec tree alone: the real benchmark
    assert {(s.split, s.label) for s in real_only if s.label == "anomaly"} == {("test", "anomaly")}


def test_ordered_map_keeps_order_and_bounds_the_window():
    in_flight = []
    pulled = []

    def source():
        for i in range(20):
            pulled.append(i)
            yield i

    results = []
    for value in ordered_map(lambda x: x * x, source(), workers=3, window=4):
        in_flight.append(len(pulled) - len(results))
        results.append(value)
    assert results == [i * i for i in range(20)]
    assert max(in_flight) <= 4


def test_copied_and_reencoded_pngs_hold_the_same_pixels(inputs, tmp_path):
    from anogen_data.data.image_io import read_image, read_mask
    from anogen_data.writers.render import png_kind

    copied = _write(inputs, tmp_path / "a", config=ExportConfig(copy_png=True))
    encoded = _write(inputs, tmp_path / "b", config=ExportConfig(copy_png=False, png_compression=9))
    source = inputs.index[0].path
    first = copied / "mvtec/widget/train/good/000.png"
    assert first.read_bytes() == open(source, "rb").read()  # byte-for-byte copy of an 8-bit RGB PNG
    assert png_kind(first.read_bytes()) == (8, 2) and png_kind(b"GIF89a" + bytes(30)) is None
    for path in sorted((copied / "mvtec").rglob("*.png")):
        other = encoded / path.relative_to(copied)
        reader = read_mask if path.name.endswith("_mask.png") else read_image
        np.testing.assert_array_equal(reader(path), reader(other))


def test_a_version_created_by_a_concurrent_run_is_not_replaced(inputs, tmp_path, monkeypatch):
    from anogen_data.writers import version as version_module

    out = tmp_path / "out"
    render = version_module.render_item
    calls = []

    def render_while_another_run_finishes(item, cfg, sheet):
        calls.append(item)
        if len(calls) == 2:  # the other run renames its v1 into place now
            (out / "widget" / "v1").mkdir()
            (out / "widget" / "v1" / "theirs.txt").write_text("theirs")
        return render(item, cfg, sheet)

    monkeypatch.setattr(version_module, "render_item", render_while_another_run_finishes)
    with pytest.raises(AnogenError, match="created by another run"):
        write_version(out, "widget", category="widget", index=inputs.index,
                      records=inputs.records[:2], records_dir=inputs.records_dir, config=ExportConfig(workers=1))
    assert [p.name for p in (out / "widget" / "v1").iterdir()] == ["theirs.txt"]
    assert sorted(p.name for p in (out / "widget").iterdir()) == ["v1"]
