"""The filter stage end to end on planted failures: each is dropped by the right filter, a clean one passes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from anogen_data.config import FilterConfig
from anogen_data.errors import AnogenError
from anogen_data.stages.filter import run_filter


def _rows(folder):
    return {row["id"]: row for row in map(json.loads, (folder / "scores.jsonl").read_text().splitlines())}


def _reason_names(row):
    return [r.split(":")[0] for r in row["reasons"]]


@pytest.fixture(scope="module")
def planted(module_scene):
    scene = module_scene
    blob_mask, paint = scene.blob_mask, scene.paint
    source = scene.source_image
    clean_mask = blob_mask(30, 34)
    scene.add("clean", paint(source, clean_mask), clean_mask)
    scene.add("empty_mask", source.copy(), np.zeros_like(clean_mask))
    off_object = blob_mask(5, 5, r=4)  # a corner of the dark background
    scene.add("on_background", paint(source, off_object, colour=(120, 120, 120)), off_object)
    # the defect is made at (30, 34) but the mask says (40, 22)
    scene.add("outside_mask", paint(source, clean_mask), blob_mask(42, 22))
    scene.add("duplicate", paint(source, clean_mask), clean_mask)
    out = scene.root / "filter"
    stats = run_filter(FilterConfig(), scene.records_file, scene.index, out, progress=False)
    return out, stats


def test_clean_sample_passes_every_filter(planted):
    row = _rows(planted[0])["clean"]
    assert row["keep"] and row["reasons"] == []
    assert row["scores"]["change_iou"] > 0.9 and row["scores"]["leakage"] == 0.0


def test_empty_mask_is_dropped_by_mask_area(planted):
    row = _rows(planted[0])["empty_mask"]
    assert not row["keep"]
    assert _reason_names(row)[0] == "mask_area" and row["scores"]["mask_area"] == 0.0


def test_mask_on_background_is_dropped_by_mask_foreground(planted):
    row = _rows(planted[0])["on_background"]
    assert not row["keep"] and "mask_foreground" in _reason_names(row)
    assert row["scores"]["mask_foreground"] < 0.1
    assert "change_iou" not in _reason_names(row) and "leakage" not in _reason_names(row)


def test_defect_outside_its_mask_is_dropped_by_leakage_and_agreement(planted):
    row = _rows(planted[0])["outside_mask"]
    assert not row["keep"]
    assert {"leakage", "change_iou"} <= set(_reason_names(row))
    assert row["scores"]["leakage"] > 0.9 and row["scores"]["change_iou"] == 0.0


def test_exact_duplicate_keeps_the_first(planted):
    rows = _rows(planted[0])
    assert rows["duplicate"]["reasons"] == [rows["duplicate"]["reasons"][0]]
    assert rows["duplicate"]["reasons"][0].startswith("duplicate:") and "(of clean)" in rows["duplicate"]["reasons"][0]
    assert rows["duplicate"]["scores"]["duplicate"] == pytest.approx(1.0, abs=1e-5)
    assert "duplicate" not in _reason_names(rows["clean"])


def test_stats_count_pass_rates_per_filter(planted):
    folder, stats = planted
    assert stats == json.loads((folder / "filter_stats.json").read_text())
    assert stats["scored"] == 5 and stats["kept"] == 1 and stats["pass_rate"] == 0.2
    assert stats["per_filter"]["duplicate"] == 0.8 and stats["per_filter"]["mask_foreground"] == 0.8
    assert json.loads((folder / "config.json").read_text())["max_duplicate"] == FilterConfig().max_duplicate


def test_writers_count_the_scores_exactly_as_filter_stats(planted):
    from anogen_data.stages.export import read_scores
    from anogen_data.writers.stats import StatsAccumulator

    scores = read_scores(planted[0] / "scores.jsonl")
    assert StatsAccumulator().result(scores)["filters"] == planted[1]  # stats.json's "filters" == filter_stats.json


def test_same_inputs_same_bytes(scene, tmp_path):
    blob_mask, paint = scene.blob_mask, scene.paint
    mask = blob_mask(30, 34)
    scene.add("a", paint(scene.source_image, mask), mask)
    scene.add("b", paint(scene.source_image, blob_mask(36, 28), colour=(90, 20, 20)), blob_mask(36, 28))
    for name in ("one", "two"):
        run_filter(FilterConfig(), scene.records_file, scene.index, tmp_path / name, progress=False)
    assert (tmp_path / "one/scores.jsonl").read_bytes() == (tmp_path / "two/scores.jsonl").read_bytes()


def test_thresholds_come_from_the_config(scene, tmp_path):
    blob_mask, paint = scene.blob_mask, scene.paint
    mask = blob_mask(30, 34)
    scene.add("a", paint(scene.source_image, mask), mask)
    run_filter(FilterConfig(max_area=0.001), scene.records_file, scene.index, tmp_path / "f", progress=False)
    assert _reason_names(_rows(tmp_path / "f")["a"]) == ["mask_area"]


def test_bad_inputs_name_the_file_and_write_nothing(scene, tmp_path):
    out = tmp_path / "f"
    with pytest.raises(AnogenError, match="records.jsonl does not exist"):
        run_filter(FilterConfig(), tmp_path / "records.jsonl", scene.index, out, progress=False)
    scene.add("small", np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32), np.uint8))
    with pytest.raises(AnogenError, match="differ in size"):
        run_filter(FilterConfig(), scene.records_file, scene.index, out, progress=False)
    assert not out.exists()
