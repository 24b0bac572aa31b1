"""Few-shot protocols: first-third (AnomalyDiffusion/DualAnoDiff) and random-k (AnoGen)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anogen_data.data.image_io import write_png
from anogen_data.data.mvtec import load_category
from anogen_data.data.split import build_index, learn_shots, role_counts
from anogen_data.errors import AnogenError
from anogen_data.records import Sample


def _sample(name, split="test", defect="crack"):
    label = "good" if defect == "good" else "anomaly"
    return Sample(f"/d/{split}/{defect}/{name}", split, label, defect, None if label == "good" else f"/m/{name}", 8, 8)


def _learn(entries):
    return sorted((e.defect_type, Path(e.path).name) for e in entries if e.role == "learn")


def test_first_third_matches_hand_listed_split():
    # 7 cracks -> ceil(7/3) = 3 learn shots, by sorted file name (string order: "10" < "2").
    names = ["2.png", "10.png", "03.png", "01.png", "5.png", "04.png", "6.png"]
    samples = [_sample(n) for n in names] + [_sample("a.png", defect="dent"), _sample("b.png", defect="dent")]
    entries = build_index(samples, category="c", protocol="first-third")
    assert _learn(entries) == [("crack", "01.png"), ("crack", "03.png"), ("crack", "04.png"), ("dent", "a.png")]


def test_roles_are_disjoint_and_good_images_fixed(make_mvtec):
    root = make_mvtec(good=4, test_good=3, defects={"spot": 5, "crack": 1})
    samples = load_category(root, "widget")
    for protocol in ("first-third", "random-k"):
        entries = build_index(samples, category="widget", protocol=protocol, shots=1, seed=3)
        assert len(entries) == len(samples) and len({e.path for e in entries}) == len(entries)
        assert all(e.role == "train" for e in entries if e.split == "train")
        assert all(e.role == "eval" for e in entries if e.split == "test" and e.label == "good")
        counts = role_counts(entries)
        assert counts["good"] == {"train": 4, "learn": 0, "eval": 3}
        assert counts["crack"]["learn"] == 1 and counts["crack"]["eval"] == 0  # at least one shot
        assert counts["spot"]["learn"] + counts["spot"]["eval"] == 5 and counts["spot"]["learn"] >= 1
        assert all(e.category == "widget" for e in entries)


def test_random_k_is_seeded_and_per_defect_independent():
    names = [f"{i:03d}.png" for i in range(12)]
    draws = {s: learn_shots(names, protocol="random-k", shots=3, seed=s, defect="crack") for s in range(6)}
    assert all(len(d) == 3 and d <= set(names) for d in draws.values())
    assert draws[0] == learn_shots(list(reversed(names)), protocol="random-k", shots=3, seed=0, defect="crack")
    assert len({frozenset(d) for d in draws.values()}) > 1  # the seed matters
    only_crack = build_index([_sample(n) for n in names], category="c", protocol="random-k", shots=3, seed=4)
    with_dent = build_index(
        [_sample(n) for n in names] + [_sample(n, defect="dent") for n in names], category="c", protocol="random-k",
        shots=3, seed=4,
    )
    assert _learn(only_crack) == [x for x in _learn(with_dent) if x[0] == "crack"]


def test_split_unchanged_when_train_good_grows(make_mvtec):
    root = make_mvtec(good=3, test_good=1, defects={"spot": 6})
    before = build_index(load_category(root, "widget"), category="widget", protocol="random-k", shots=2, seed=9)
    for i in range(3, 8):
        write_png(root / "widget/train/good" / f"{i:03d}.png", np.zeros((24, 32, 3), np.uint8))
    after = build_index(load_category(root, "widget"), category="widget", protocol="random-k", shots=2, seed=9)
    assert _learn(before) == _learn(after)
    assert [(e.path, e.role) for e in before if e.split == "test"] == [(e.path, e.role) for e in after if e.split == "test"]


@pytest.mark.parametrize("shots, needle", [(7, "--shots 7 is larger than defect type 'crack'"), (0, "at least 1")])
def test_bad_shots_raise(shots, needle):
    samples = [_sample(f"{i}.png") for i in range(6)]
    with pytest.raises(AnogenError, match=needle):
        build_index(samples, category="c", protocol="random-k", shots=shots)


def test_unknown_protocol_raises():
    with pytest.raises(AnogenError, match="unknown protocol 'half'"):
        build_index([_sample("1.png")], category="c", protocol="half")


def test_synthetic_train_anomalies_get_role_train():
    samples = [_sample("0.png"), _sample("syn_000001.png", split="train")]
    roles = {Path(e.path).name: e.role for e in build_index(samples, category="c")}
    assert roles == {"0.png": "learn", "syn_000001.png": "train"}


def test_rebuilding_from_index_entries_gives_the_same_index():
    samples = [_sample(f"{i}.png") for i in range(5)] + [_sample("g.png", split="train", defect="good")]
    first = build_index(samples, category="c", protocol="random-k", shots=2, seed=1)
    assert build_index(first, category="c", protocol="random-k", shots=2, seed=1) == first


def test_index_hashes_images_and_drops_eval_twins_of_learn_and_train(make_mvtec, caplog):
    import shutil

    from anogen_data.data.mvtec import load_category
    from anogen_data.files import sha256_file

    root = make_mvtec(defects={"spot": 6}, good=3, test_good=2)
    cat = root / "widget"
    shutil.copyfile(cat / "test/spot/000.png", cat / "test/spot/005.png")  # 000 learns (first third), 005 is eval
    shutil.copyfile(cat / "train/good/001.png", cat / "test/good/001.png")  # a test/good twin of train/good
    entries = build_index(load_category(root, "widget"), category="widget")
    assert all(e.sha256 == sha256_file(e.path) for e in entries)
    names = {(e.role, Path(e.path).parent.name, Path(e.path).name) for e in entries}
    assert ("learn", "spot", "000.png") in names and not any(n[2] == "005.png" and n[1] == "spot" for n in names)
    assert ("eval", "good", "001.png") not in names and ("eval", "good", "000.png") in names
    assert len(entries) == 3 + 2 + 6 - 2
    messages = [r.getMessage() for r in caplog.records if "dropped eval image" in r.getMessage()]
    assert len(messages) == 2 and any("005.png" in m and "learn image" in m and "000.png" in m for m in messages)


def test_kolektorsdd_duplicates_stay_out_of_eval(shared_data, caplog):
    from anogen_data.data.mvtec import load_category

    root = shared_data / "kolektorsdd"
    if not (root / "kolektorsdd" / "test" / "crack" / "025.jpg").is_file():
        pytest.skip("KolektorSDD not in ../shared/data")
    entries = build_index(load_category(root, "kolektorsdd"), category="kolektorsdd")
    crack = {Path(e.path).name: e.role for e in entries if e.defect_type == "crack"}
    assert crack["000.jpg"] == "learn" and "025.jpg" not in crack  # 025 = 000 (a learn shot): dropped from eval
    assert crack["026.jpg"] == crack["033.jpg"] == "eval"  # 026 = 033, both eval: no leak, both kept
    learn = {e.sha256 for e in entries if e.role in ("learn", "train")}
    assert not learn & {e.sha256 for e in entries if e.role == "eval"}
    assert any("025.jpg" in r.getMessage() and "000.jpg" in r.getMessage() for r in caplog.records)
