"""The hf/ folder: `datasets.load_dataset` reads it back, features intact, with every source deleted."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from anogen_data.data.image_io import read_image, read_mask
from anogen_data.files import sha256_file
from anogen_data.writers.coco import mask_instances
from anogen_data.writers.mvtec import mask_of, split_files
from anogen_data.writers.hf import HfWriter, hf_features


def test_load_dataset_round_trip_without_sources(written, tmp_path):
    from datasets import load_dataset

    # copy only hf/ and delete everything else the rows came from
    hf = tmp_path / "hf"
    shutil.copytree(written.folder / "hf", hf)
    for tree in ("mvtec", "synthetic"):
        shutil.copytree(written.folder / tree, tmp_path / tree)
    ds = load_dataset(str(hf), cache_dir=str(tmp_path / "cache"))
    shutil.rmtree(hf)
    assert set(ds) == {"train", "test"}
    assert ds["train"].features == ds["test"].features == hf_features(["scratch", "dent"])
    assert ds["train"].features["label"].names == ["good", "anomaly"]
    defect_type = ds["train"].features["defect_type"]
    assert defect_type.names == ["dent", "good", "scratch"]  # a ClassLabel: names sorted, "good" included
    n_files = {s: len(split_files(tmp_path, "widget", s)) for s in ("train", "test")}
    assert {s: len(ds[s]) for s in ds} == n_files
    for split in ("train", "test"):
        for row in ds[split]:
            image_file = tmp_path / row["file_name"]
            np.testing.assert_array_equal(np.asarray(row["image"].convert("RGB")), read_image(image_file))
            assert row["label"] == (0 if defect_type.int2str(row["defect_type"]) == "good" else 1)
            assert defect_type.int2str(row["defect_type"]) == Path(row["file_name"]).parent.name
            if row["label"] == 0:
                assert row["mask"] is None and row["bboxes"] == []
                continue
            stem = image_file.stem
            mask = read_mask(tmp_path / mask_of(row["file_name"]))
            np.testing.assert_array_equal(np.asarray(row["mask"]), mask)
            assert row["source"] == ("synthetic" if stem.startswith("syn_") else "real")
            assert (row["backend"] is None) == (row["source"] == "real")
            assert row["bboxes"] == [list(i.bbox_xywh) for i in mask_instances(mask)]


def test_card_front_matter_points_at_the_shards(written):
    text = (written.folder / "hf" / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["license"] == "cc-by-nc-sa-4.0"
    assert meta["size_categories"] == ["n<1K"]
    assert {"anomaly-detection", "synthetic", "perlin"} <= set(meta["tags"])
    files = meta["configs"][0]["data_files"]
    data = written.folder / "hf" / "data"
    shards = {s: sorted(f"data/{p.name}" for p in data.glob(f"{s}-*.parquet")) for s in ("train", "test")}
    assert files == [{"split": "train", "path": shards["train"]}, {"split": "test", "path": shards["test"]}]
    assert all(shards.values())
    assert "![contact sheet" in text and (written.folder / "hf" / "contact_sheet.png").is_file()
    assert "DRAEM" in text  # the perlin backend's paper is cited
    assert meta["pretty_name"] == "widget v1 (widget anomalies)"
    assert meta["dataset_info"]["features"][3]["dtype"]["class_label"]["names"] == {"0": "dent", "1": "good",
                                                                                  "2": "scratch"}
    assert 'ds = load_dataset("datasets/widget/v1/hf")  # splits: train, test' in text
    assert 'real = MVTecAD(root=f"{root}/mvtec", category="widget")' in text
    assert 'abnormal_dir="synthetic/widget/images", mask_dir="synthetic/widget/masks"' in text


def test_hub_usage_names_the_repo_and_tag():
    from anogen_data.writers.card import USAGE_BEGIN, USAGE_END, usage, with_hub_usage

    local = usage(name="widget", version=2, category="widget", splits=["train", "test"])
    card = f"# title\n\n{local}\n\n## Counts\n"
    hub = with_hub_usage(card, repo_id="org/widget", tag="v2", trees=True, name="widget", version=2,
                         category="widget", splits=["train", "test"])
    assert hub.startswith("# title\n\n" + USAGE_BEGIN) and hub.endswith(USAGE_END + "\n\n## Counts\n")
    assert 'load_dataset("org/widget", revision="v2")' in hub and "datasets/widget/v2" not in hub
    assert 'snapshot_download("org/widget", repo_type="dataset", revision="v2")' in hub
    parquet_only = with_hub_usage(card, repo_id="org/widget", tag="v2", trees=False, name="widget", version=2,
                                  category="widget", splits=["train"])
    assert "MVTecAD(" not in parquet_only and "--include-trees" in parquet_only
    with pytest.raises(ValueError, match="no usage block"):
        with_hub_usage("# no block", repo_id="o/w", tag="v1", trees=True, name="w", version=1, category="w",
                       splits=["train"])


def test_shards_rotate_and_are_named_of_total(tmp_path):
    writer = HfWriter(tmp_path / "data", max_shard_bytes=100, batch_rows=2)
    row = {"image": {"bytes": _png(), "path": "a.png"}, "mask": None, "label": 0, "defect_type": "good",
           "category": "c", "bboxes": [], "source": "real", "backend": None, "seed": None, "mask_quality": None,
           "file_name": "a.png"}
    for _ in range(3):
        writer.add("train", row, nbytes=60)
    summary = writer.close()
    names = sorted(p.name for p in (tmp_path / "data").iterdir())
    assert summary == {"train": {"rows": 3, "shards": 2, "files": names,
                                 "bytes": sum((tmp_path / "data" / n).stat().st_size for n in names)}}
    assert [n.rsplit("-", 1)[0] for n in names] == ["train-00000-of-00002", "train-00001-of-00002"]
    assert all(n.endswith(f"-{sha256_file(tmp_path / 'data' / n)[:16]}.parquet") for n in names)


def _png() -> bytes:
    from anogen_data.data.image_io import encode_png

    return encode_png(np.zeros((4, 4, 3), np.uint8))


def test_card_states_where_learn_shots_went(inputs, tmp_path):
    from anogen_data.config import ExportConfig
    from anogen_data.writers.version import write_version

    folder = write_version(tmp_path, "widget", category="widget", index=inputs.index,
                           config=ExportConfig(include_learn=False))
    card = (folder / "hf" / "README.md").read_text()
    assert "are left out of this version" in card and "real_NNN" not in card
    assert not list(folder.rglob("real_*"))


def test_two_versions_do_not_share_a_datasets_cache_entry(written, inputs, tmp_path):
    """Versions of different sizes load their own rows from one ``cache_dir`` (equal sizes: test_hf_cache.py)."""
    from datasets import load_dataset

    from anogen_data.writers.version import write_version

    other = write_version(tmp_path / "out", "widget", category="widget", index=inputs.index[:5])
    cache = str(tmp_path / "cache")
    first = load_dataset(str(written.folder / "hf"), cache_dir=cache)
    second = load_dataset(str(other / "hf"), cache_dir=cache)
    assert sum(len(first[s]) for s in first) == len(written.inputs.index) + len(written.inputs.records)
    assert sum(len(second[s]) for s in second) == 5
