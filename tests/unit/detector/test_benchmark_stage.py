"""Benchmark stage contract: only the eval split is read and no learn shot can reach it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from anogen_data.errors import AnogenError
from anogen_data.records import read_index, write_index
from anogen_data.stages.benchmark import eval_entries, load_eval_images, score_images


def test_eval_set_is_the_eval_role_and_disjoint_from_learn_shots(demo_index):
    entries = read_index(demo_index)
    evaluation = eval_entries(demo_index)
    assert {e.path for e in evaluation} == {e.path for e in entries if e.role == "eval"}
    learn = {e.path for e in entries if e.role == "learn"}
    train = {e.path for e in entries if e.role == "train"}
    assert learn and not learn & {e.path for e in evaluation}
    assert not train & {e.path for e in evaluation}


def test_a_learn_shot_in_the_eval_rows_is_refused(demo_index, tmp_path):
    entries = read_index(demo_index)
    shot = next(e for e in entries if e.role == "learn")
    leaked = tmp_path / "index.jsonl"
    write_index(leaked, entries + [dataclasses.replace(shot, role="eval")])
    with pytest.raises(AnogenError, match="both a learn shot and an eval image"):
        eval_entries(leaked)


def test_eval_images_are_letterboxed_and_cropped_back(demo_index):
    evaluation = eval_entries(demo_index)[:3]
    images, masks, contents, labels = load_eval_images(evaluation, (64, 32))
    assert images.shape == (3, 3, 64, 32)
    assert all(m.shape == c == (32, 32) for m, c in zip(masks, contents))  # square demo in a tall canvas
    import torch

    maps = torch.zeros(3, 1, 64, 32)
    maps[:, :, 40:, :] = 1.0  # padding region: must not count
    cropped, scores = score_images(maps, contents, pool=3)
    assert all(m.shape == (32, 32) for m in cropped) and scores == [0.0, 0.0, 0.0]
    assert Path(evaluation[0].path).is_file() and isinstance(labels[0], int)
    assert np.all(np.isin(masks[-1], (0, 255)))


def test_an_eval_image_with_a_learn_shots_bytes_is_refused(demo_index, tmp_path):
    import shutil

    entries = read_index(demo_index)
    root = Path(entries[0].path).parents[3]  # <root>/<category>/<split>/<defect>/<file>
    shutil.copytree(root / entries[0].category, tmp_path / "data" / entries[0].category)  # paths stay in one data root

    def moved(path):
        return None if path is None else str(tmp_path / "data" / Path(path).relative_to(root))

    entries = [dataclasses.replace(e, path=moved(e.path), mask_path=moved(e.mask_path)) for e in entries]
    shot = next(e for e in entries if e.role == "learn")
    copy = Path(shot.path).with_name("renamed_copy.png")
    shutil.copyfile(shot.path, copy)  # another path, same bytes: a path comparison misses it
    leaked = tmp_path / "index.jsonl"
    write_index(leaked, entries + [dataclasses.replace(shot, path=str(copy), role="eval", sha256="")])
    with pytest.raises(AnogenError, match="same bytes as learn shot") as info:
        eval_entries(leaked)
    assert str(copy) in str(info.value) and shot.path in str(info.value)
