"""Every kind of version we write reads in anomalib as we mean it: ``MVTecAD`` on ``mvtec/`` (the real
benchmark) and ``Folder`` on the synthetic part, checked with the rules in ``anomalib_rules.py``.

What we mean comes from the version's HF rows (``file_name``, ``label``, embedded mask PNG): each image
anomalib reads must be one of our rows, with our label and, for an anomaly, the mask file we wrote for it
whose pixels equal the row's mask.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from anomalib_rules import (
    ABNORMAL,
    NORMAL,
    AnomalibRuleError,
    Expected,
    compare,
    folder_samples,
    mvtec_ad_samples,
)

from anogen_data.writers.mvtec import mask_of

KINDS = ["demo", "real-only", "filtered-box", "anogen-tiny", "hazelnut", "grid", "kolektorsdd"]


def _cli(*args) -> None:
    from anogen_data.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        assert exc.code in (0, None), f"anogen-data {' '.join(map(str, args))} exited {exc.code}"


def _filtered_box_version(demo_index: Path, work: Path) -> Path:
    """Perlin records, one in three turned into an AnoGen box label, two dropped by scores, learn shots left
    out (``include_learn: false``), dropped sheet drawn."""
    _cli("generate", "--category", "demo", "--n", 6, "--index", demo_index, "--no-export", "--out", work / "synth",
         "--backend", "perlin")
    records = work / "synth" / "records.jsonl"
    rows = [json.loads(line) for line in records.read_text().splitlines()]
    for n, row in enumerate(rows):
        if n % 3 == 2:
            row["mask_quality"] = "box"
    records.write_text("".join(json.dumps(r) + "\n" for r in rows))
    scores = work / "scores.jsonl"
    scores.write_text("".join(json.dumps({"id": r["id"], "keep": n not in (1, 4), "reasons": [] if n not in (1, 4)
                                          else ["mask_area: 0.9 > 0.5"], "scores": {}}) + "\n"
                              for n, r in enumerate(rows)))
    params = work / "params.yaml"
    params.write_text("export:\n  include_learn: false\n")
    _cli("export", "--index", demo_index, "--records", records, "--scores", scores, "--out", work / "ds",
         "--show-dropped", "--params", params)
    return work / "ds" / "demo" / "v1"


def _anogen_version(demo_index: Path, work: Path) -> Path:
    """AnoGen with tiny random components (2 learning steps, 4 denoising steps): box-labelled records."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _cli("concepts", "learn", "--method", "anogen", "--index", demo_index, "--out", work / "concepts",
             "--model", "tiny", "--steps", 2, "--device", "cpu")
        params = work / "params.yaml"
        params.write_text("generate:\n  options:\n    anogen:\n      steps: 4\n")
        _cli("generate", "--category", "demo", "--n", 3, "--backend", "anogen", "--index", demo_index,
             "--concepts", work / "concepts", "--model", "tiny", "--device", "cpu", "--out", work / "ds",
             "--params", params)
    finally:
        torch.set_num_threads(threads)
    return work / "ds" / "demo" / "v1"


@pytest.fixture(scope="module")
def make_version(tmp_path_factory, request):
    """``make_version(kind) -> (version folder, category)``, each kind written once per module."""
    made: dict[str, tuple[Path, str]] = {}

    def _make(kind: str) -> tuple[Path, str]:
        if kind in made:
            return made[kind]
        work = tmp_path_factory.mktemp(kind)
        real = {"hazelnut": ("hazelnut_toy", "hazelnut"), "grid": ("mvtec_grid", "grid"),
                "kolektorsdd": ("kolektorsdd", "kolektorsdd")}
        if kind == "demo":
            root = request.getfixturevalue("demo_data_root")
            _cli("generate", "--data", root, "--category", "demo", "--n", 6, "--out", work / "ds")
            made[kind] = (work / "ds" / "demo" / "v1", "demo")
        elif kind == "real-only":
            _cli("export", "--index", request.getfixturevalue("demo_index"), "--out", work / "ds")
            made[kind] = (work / "ds" / "demo" / "v1", "demo")
        elif kind == "filtered-box":
            made[kind] = (_filtered_box_version(request.getfixturevalue("demo_index"), work), "demo")
        elif kind == "anogen-tiny":
            made[kind] = (_anogen_version(request.getfixturevalue("demo_index"), work), "demo")
        else:
            folder, category = real[kind]
            data = request.getfixturevalue("shared_data") / folder
            _cli("generate", "--data", data, "--category", category, "--n", 3, "--backend", "cutpaste",
                 "--out", work / "ds")
            made[kind] = (work / "ds" / category / "v1", category)
        return made[kind]

    return _make


def _decode(png: bytes) -> np.ndarray:
    mask = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    return np.where(mask > 127, 255, 0).astype(np.uint8)


def expected_samples(version: Path) -> dict[str, Expected]:
    """What we mean, from the HF rows: absolute image path -> label and mask (path we wrote + pixels)."""
    out = {}
    for shard in sorted((version / "hf" / "data").glob("*.parquet")):
        for row in pq.read_table(shard, columns=["file_name", "label", "mask"]).to_pylist():
            path = str(version / row["file_name"])
            if row["label"] == NORMAL:
                out[path] = Expected(NORMAL)
            else:
                out[path] = Expected(ABNORMAL, str(version / mask_of(row["file_name"])), _decode(row["mask"]["bytes"]))
    return out


def folder_call(version: Path, category: str) -> dict:
    """The ``Folder(...)`` arguments the README and the dataset card give for a version's synthetic part."""
    return {"root": version, "normal_dir": f"mvtec/{category}/train/good",
            "abnormal_dir": f"synthetic/{category}/images", "mask_dir": f"synthetic/{category}/masks",
            "normal_test_dir": f"mvtec/{category}/test/good"}


@pytest.mark.parametrize("kind", KINDS)
def test_every_version_kind_reads_in_anomalib_as_we_mean_it(make_version, kind):
    version, category = make_version(kind)
    version = version.resolve()
    expected = expected_samples(version)
    mvtec = mvtec_ad_samples(version / "mvtec", category)
    mvtec_expected = {p: e for p, e in expected.items() if p.startswith(f"{version}/mvtec/")}
    assert compare(mvtec, mvtec_expected) == []
    assert {s.split for s in mvtec if s.label_index == ABNORMAL} <= {"test"}
    assert sum(s.label_index == ABNORMAL for s in mvtec) == sum(e.label_index for e in mvtec_expected.values()) > 0
    folder = folder_samples(**folder_call(version, category))
    folder_expected = {p: e for p, e in expected.items()
                       if p.startswith((f"{version}/mvtec/{category}/train/good/", f"{version}/mvtec/{category}/test/good/",
                                        f"{version}/synthetic/"))}
    assert compare(folder, folder_expected) == []
    assert {s.split for s in folder if s.label_index == NORMAL and "/train/good/" in s.image_path} == {"train"}
    records = [json.loads(line) for line in (version / "records.jsonl").read_text().splitlines()]
    trained = sorted(Path(s.image_path).name for s in folder if s.label_index == ABNORMAL)
    assert sum(n.startswith("syn_") for n in trained) == len(records)
    assert (len(records) == 0) == (kind == "real-only")
    assert len(trained) > 0  # learn shots (real_NNN) and/or synthetic anomalies


def test_the_cards_anomalib_snippet_is_the_call_checked_here(make_version):
    """Run the dataset card's anomalib block with recording stand-ins for ``MVTecAD`` and ``Folder``: its
    arguments are the ones the contract test reads the version with."""
    version, category = make_version("demo")
    card = (version / "hf" / "README.md").read_text()
    block = next(b for b in card.split("```python\n")[1:] if b.startswith("from anomalib.data import"))
    calls = {}

    def recorder(name):
        return lambda **kwargs: calls.setdefault(name, kwargs)

    code = block.split("```")[0].replace("from anomalib.data import Folder, MVTecAD\n", "")
    exec(code, {"MVTecAD": recorder("MVTecAD"), "Folder": recorder("Folder")})  # noqa: S102 - our own card
    root = calls["Folder"].pop("root")
    assert root == "datasets/demo/v1" and calls["Folder"].pop("name") == "demo-v1"
    assert calls["Folder"] == {k: v for k, v in folder_call(version, category).items() if k != "root"}
    assert calls["MVTecAD"] == {"root": f"{root}/mvtec", "category": category}


def test_filtered_version_holds_kept_records_only_and_no_learn_shots(make_version):
    version, category = make_version("filtered-box")
    names = sorted(p.name for p in (version / "synthetic" / category / "images").rglob("*.png"))
    assert len(names) == 4 and all(n.startswith("syn_") for n in names)
    assert (version / "dropped_sheet.png").is_file()


def _old_layout(version: Path, category: str, out: Path) -> Path:
    """The same version as written before the synthetic/ tree: training anomalies in mvtec/<c>/train/<defect>,
    their masks beside the test masks in ground_truth/<defect>/<stem>_mask.png."""
    old = out / "v1"
    shutil.copytree(version, old)
    images = old / "synthetic" / category / "images"
    for image in sorted(images.rglob("*.png")):
        defect = image.parent.name
        (old / "mvtec" / category / "train" / defect).mkdir(parents=True, exist_ok=True)
        image.rename(old / "mvtec" / category / "train" / defect / image.name)
        mask = old / "synthetic" / category / "masks" / defect / image.name
        mask.rename(old / "mvtec" / category / "ground_truth" / defect / f"{image.stem}_mask.png")
    shutil.rmtree(old / "synthetic")
    return old


def test_the_old_layout_fails_the_checker(make_version, tmp_path):
    from anogen_data.data.mvtec import load_category

    version, category = make_version("demo")
    old = _old_layout(version.resolve(), category, tmp_path)
    with pytest.raises(AnomalibRuleError, match="ValueError: .* masks in ground_truth/ for .* abnormal test images"):
        mvtec_ad_samples(old / "mvtec", category)
    # Folder with normal_dir="train" (the other way the old tree could be read) loads, but calls the
    # training anomalies normal: our reader (stem pairing) says what each sample is.
    ours = {s.path: Expected(ABNORMAL if s.label == "anomaly" else NORMAL, s.mask_path)
            for s in load_category(old, category)}
    tree = old / "mvtec" / category
    samples = folder_samples(tree, normal_dir="train", normal_test_dir="test/good")
    training_anomalies = [str(p) for p in tree.glob("train/*/*.png") if p.parent.name != "good"]
    problems = compare(samples, {p: e for p, e in ours.items() if "/test/" not in p or "/test/good/" in p})
    assert len(training_anomalies) > 0
    assert sorted(problems) == sorted(f"{p}: label 0, we mean 1" for p in training_anomalies)


def test_checker_follows_anomalibs_positional_pairing(tmp_path):
    """Masks pair by sorted position, not by name: one missing mask shifts the rest (MisMatchError in
    MVTecAD); 8 images and 10-padded names in Folder pair wrongly without an error (the stem check is a
    substring test), which ``compare`` catches."""
    def png(path: Path, value: int = 0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.full((4, 4), value, np.uint8))

    cat = tmp_path / "mv" / "c"
    png(cat / "train/good/000.png")
    for stem in ("000", "001"):
        png(cat / "test/crack" / f"{stem}.png")
    png(cat / "ground_truth/crack/001_mask.png", 255)
    png(cat / "ground_truth/crack/002_mask.png", 255)
    with pytest.raises(AnomalibRuleError, match="MisMatchError"):
        mvtec_ad_samples(tmp_path / "mv", "c")
    png(cat / "test/crack/000.jpg")  # MVTecAD reads .png/.PNG only
    (cat / "ground_truth/crack/002_mask.png").rename(cat / "ground_truth/crack/000_mask.png")
    samples = mvtec_ad_samples(tmp_path / "mv", "c")
    assert [(Path(s.image_path).name, s.split, s.label_index, Path(s.mask_path or "-").name) for s in samples] == [
        ("000.png", "test", 1, "000_mask.png"), ("001.png", "test", 1, "001_mask.png"), ("000.png", "train", 0, "-")]

    root = tmp_path / "folder"
    png(root / "good/0.png")
    for stem in ("1", "2", "10"):  # sorted: 1, 10, 2
        png(root / "bad" / f"{stem}.png")
    for stem in ("1", "10_2", "2_10"):  # sorted: 1, 10_2, 2_10 -> "10" in "10_2", "2" in "2_10"
        png(root / "masks" / f"{stem}.png", 255)
    samples = folder_samples(root, "good", abnormal_dir="bad", mask_dir="masks")
    assert [(Path(s.image_path).name, s.split, s.label_index, Path(s.mask_path).name if s.mask_path else "")
            for s in samples] == [("1.png", "test", 1, "1.png"), ("10.png", "test", 1, "10_2.png"),
                                  ("2.png", "test", 1, "2_10.png"), ("0.png", "train", 0, "")]
    want = {s.image_path: Expected(s.label_index, str(root / "masks" / Path(s.image_path).name) if s.label_index else None)
            for s in samples}
    assert compare(samples, want) == [f"{root}/bad/10.png: paired with {root}/masks/10_2.png, we mean {root}/masks/10.png",
                                      f"{root}/bad/2.png: paired with {root}/masks/2_10.png, we mean {root}/masks/2.png"]
    (root / "empty").mkdir()
    with pytest.raises(AnomalibRuleError, match="RuntimeError: Found 0 abnormal"):
        folder_samples(root, "good", abnormal_dir="empty")
