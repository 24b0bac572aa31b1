"""`anogen-data export / verify / push` end to end: demo and real data, params, every failure path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from anogen_data.data import mvtec
from anogen_data.data.image_io import read_image
from anogen_data.files import write_jsonl
from anogen_data.records import read_index, write_index
from synthetic_records import write_synthetic_records


def _synthetic(index: Path, folder: Path, n: int = 4) -> tuple[Path, Path]:
    """records.jsonl (+ images/masks) made from the index's train images, and scores.jsonl keeping all but one."""
    mask = np.zeros((256, 256), np.uint8)
    mask[10:20, 12:30] = 255
    records = write_synthetic_records(index, folder, mask, n, "cutpaste", (12, 10, 30, 20))
    scores = [{"id": r.id, "keep": i != 2, "reasons": ["sharpness: 0.1 < 0.5"] if i == 2 else [],
               "scores": {"sharpness": 0.1 if i == 2 else 0.9}} for i, r in enumerate(records)]
    write_jsonl(folder.parent / "scores.jsonl", scores)
    return folder / "records.jsonl", folder.parent / "scores.jsonl"


def test_export_verify_and_immutability(run_cli, demo_index, tmp_path):
    records, scores = _synthetic(demo_index, tmp_path / "synth")
    params = tmp_path / "params.yaml"
    params.write_text("export:\n  contact_sheet_cells: 6\n  workers: 1\n")
    out = tmp_path / "datasets"
    args = ["export", "--index", demo_index, "--records", records, "--scores", scores, "--out", out, "--params", params]
    code, stdout, err = run_cli(*args, "--workers", "2", "--stats-out", tmp_path / "metrics" / "demo" / "stats.json")
    assert code == 0, err
    version = out / "demo" / "v1"
    assert f"wrote {version}" in stdout.replace("\n", "")
    stats = json.loads((version / "stats.json").read_text())
    metric = json.loads((tmp_path / "metrics" / "demo" / "stats.json").read_text())  # the git-tracked DVC metric
    assert metric["counts"] == stats["counts"] and metric["totals"] == stats["totals"]
    assert not any(isinstance(v, (str, list, bool)) for v in metric["filters"].values())  # numbers only
    assert stats["counts"]["train"]["scratch"]["synthetic"] == 3  # one record dropped by the filter
    assert stats["filters"]["pass_rate"] == 0.75 and stats["filters"]["per_filter"] == {"sharpness": 0.75}
    lineage = json.loads((version / "manifest.json").read_text())["lineage"]
    assert lineage["configs"]["export"]["workers"] == 2 and lineage["configs"]["export"]["contact_sheet_cells"] == 6
    assert lineage["configs"]["index"]["category"] == "demo"  # the index stage's config.json, read beside it
    assert lineage["generate_output_sha256"] and lineage["filter_output_sha256"]
    code, stdout, _ = run_cli("verify", version)
    assert code == 0 and "ok" in stdout
    # a second export takes v2; asking for v1 again is refused and v1 is untouched
    assert run_cli("export", "--index", demo_index, "--out", out)[0] == 0 and (out / "demo" / "v2").is_dir()
    code, _, err = run_cli("export", "--index", demo_index, "--out", out, "--version", "1")
    assert code == 1 and "already exists" in err and len(err.strip().splitlines()) == 1
    assert run_cli("verify", version)[0] == 0
    # one flipped byte is caught
    target = version / "hf" / "README.md"
    target.write_bytes(target.read_bytes().replace(b"# demo", b"# Demo", 1))
    code, _, err = run_cli("verify", version)
    assert code == 1 and "changed: hf/README.md" in err


def test_export_reads_the_placement_sidecar_beside_the_records(run_cli, demo_index, tmp_path):
    records, _ = _synthetic(demo_index, tmp_path / "synth")
    stats = {"kind": "texture", "cue": "colour", "agreement": 1.0, "foreground_fraction": 1.0, "placement": "image-density",
             "note": "the good images look like a texture, but all 4 learn-shot defects lie in 9% of the frame"}
    (records.parent / "placement.json").write_text(json.dumps(stats))
    code, _, err = run_cli("export", "--index", demo_index, "--records", records, "--out", tmp_path / "ds")
    assert code == 0, err
    version = tmp_path / "ds" / "demo" / "v1"
    assert json.loads((version / "manifest.json").read_text())["lineage"]["placement"] == stats
    card = (version / "hf" / "README.md").read_text()
    assert "Category read as: texture (cue: colour); placement: image-density." in card
    assert "foreground: 100% of the frame" in card and f"Note: {stats['note']}" in card
    (records.parent / "placement.json").write_text("[1, 2]")
    code, _, err = run_cli("export", "--index", demo_index, "--records", records, "--out", tmp_path / "ds2")
    assert code == 1 and "placement.json must hold a JSON object" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "ds2" / "demo").exists()
    (records.parent / "placement.json").write_text(json.dumps({**stats, "kind": 5, "agreement": "high"}))
    code, _, err = run_cli("export", "--index", demo_index, "--records", records, "--out", tmp_path / "ds3")
    assert code == 1 and "placement.json: kind: Input should be 'object', 'texture' or 'full'" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "ds3" / "demo").exists()


def test_show_dropped_draws_dropped_records_and_writes_only_kept(run_cli, demo_index, tmp_path):
    from anogen_data.data.image_io import read_mask
    from anogen_data.writers.contact_sheet import CAPTION_HEIGHT, ContactSheet

    records, scores = _synthetic(demo_index, tmp_path / "synth", n=5)
    dropped = {1: "sharpness: 0.1 < 0.5", 2: "ssim: 0.99 > 0.9", 4: "duplicate: 0.99 > 0.95"}
    write_jsonl(scores, [{"id": f"syn_{i:06d}", "keep": i not in dropped, "reasons": [dropped[i]] if i in dropped else [],
                          "scores": {}} for i in range(5)])
    out = tmp_path / "datasets"
    base = ["export", "--index", demo_index, "--records", records, "--scores", scores, "--out", out]
    assert run_cli(*base, "--version", "1")[0] == 0
    code, _, err = run_cli(*base, "--version", "2", "--show-dropped")
    assert code == 0, err
    plain, shown = out / "demo" / "v1", out / "demo" / "v2"
    assert not (plain / "dropped_sheet.png").exists()
    sheet = read_image(shown / "dropped_sheet.png")
    assert sheet.shape == (128 + 2 * CAPTION_HEIGHT, 3 * 128, 3)  # one row of the 3 dropped, 2 caption lines
    first = tmp_path / "synth"
    tile = ContactSheet().thumbnail(read_image(first / "images" / "syn_000001.png"),
                                    read_mask(first / "masks" / "syn_000001.png"))
    assert np.array_equal(sheet[:128, :128], tile)  # drawn in record order, mask outlined
    # the dataset itself is the same: counts, files (bar the sheet) and kept records
    stats = [json.loads((v / "stats.json").read_text())["counts"] for v in (plain, shown)]
    assert stats[0] == stats[1] and stats[1]["train"]["scratch"]["synthetic"] == 2
    assert sorted(p.relative_to(plain).as_posix() for p in (plain / "mvtec").rglob("*")) == sorted(
        p.relative_to(shown).as_posix() for p in (shown / "mvtec").rglob("*"))
    assert len((shown / "records.jsonl").read_text().splitlines()) == 2
    assert "dropped_sheet.png" in json.loads((shown / "manifest.json").read_text())["files"]
    assert run_cli("verify", shown)[0] == 0
    # the sheet is capped at contact_sheet_cells; --show-dropped without --scores is refused
    params = tmp_path / "params.yaml"
    params.write_text("export:\n  contact_sheet_cells: 2\n  show_dropped: true\n")
    assert run_cli(*base, "--version", "3", "--params", params)[0] == 0
    assert read_image(out / "demo" / "v3" / "dropped_sheet.png").shape == (128 + 2 * CAPTION_HEIGHT, 2 * 128, 3)
    code, _, err = run_cli("export", "--index", demo_index, "--out", out, "--show-dropped")
    assert code == 1 and "--show-dropped needs --scores" in err and len(err.strip().splitlines()) == 1


def test_bad_inputs_exit_1_with_one_line(run_cli, demo_index, tmp_path):
    out = tmp_path / "datasets"
    cases = [
        (["--index", tmp_path / "missing.jsonl"], "does not exist"),
        (["--index", demo_index, "--scores", tmp_path / "s.jsonl"], "--scores needs --records"),
        (["--index", demo_index, "--name", "../x"], "--name: must not contain '..' (got '../x')"),
    ]
    for extra, message in cases:
        code, _, err = run_cli("export", *extra, "--out", out)
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_cli("export", "--index", demo_index, "--out", blocker / "datasets")
    assert code == 1 and "cannot write" in err
    assert not out.exists() or not any(out.rglob("v*"))


def test_push_offline_exits_1(run_cli, demo_index, tmp_path, monkeypatch):
    assert run_cli("export", "--index", demo_index, "--out", tmp_path / "ds")[0] == 0
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run_cli("push", tmp_path / "ds" / "demo" / "v1", "--repo-id", "org/demo")
    assert code == 1 and "HF_HUB_OFFLINE" in err and len(err.strip().splitlines()) == 1


def _bottle_index(run_cli, shared_data, tmp_path) -> Path:
    code, _, err = run_cli("index", "--data", shared_data / "mvtec_bottle", "--category", "bottle",
                           "--out", tmp_path / "idx")
    assert code == 0, err
    return tmp_path / "idx" / "index.jsonl"


def _check_four_outputs(version: Path, index_rows: int) -> None:
    from datasets import load_dataset
    from pycocotools.coco import COCO

    from anogen_data.writers.mvtec import split_files

    assert sum(len(split_files(version, "bottle", s)) for s in ("train", "test")) == index_rows
    coco = COCO(str(version / "coco" / "instances_test.json"))
    assert {c["name"] for c in coco.loadCats(coco.getCatIds())} <= {"broken_large", "broken_small", "contamination"}
    ds = load_dataset(str(version / "hf"), cache_dir=str(version.parent.parent / "cache"))
    assert sum(len(ds[s]) for s in ds) == index_rows
    assert (version / "contact_sheet.png").stat().st_size > 10_000 and (version / "hf" / "README.md").is_file()
    assert json.loads((version / "stats.json").read_text())["totals"]["images"] == index_rows


def test_real_bottle_subset_exports_all_outputs(run_cli, shared_data, tmp_path):
    index = _bottle_index(run_cli, shared_data, tmp_path)
    rows = read_index(index)
    subset = [e for e in rows if e.label == "good"][:3] + [e for e in rows if e.role == "eval" and e.label == "good"][:2]
    for defect in sorted({e.defect_type for e in rows} - {"good"}):
        subset += [e for e in rows if e.defect_type == defect and e.role == "learn"][:1]
        subset += [e for e in rows if e.defect_type == defect and e.role == "eval"][:1]
    small = tmp_path / "small" / "index.jsonl"
    small.parent.mkdir()
    write_index(small, subset)
    code, _, err = run_cli("export", "--index", small, "--out", tmp_path / "datasets")
    assert code == 0, err
    version = tmp_path / "datasets" / "bottle" / "v1"
    _check_four_outputs(version, len(subset))
    source = next(e for e in subset if e.role == "eval" and e.label == "anomaly")
    copied = version / "mvtec/bottle/test" / source.defect_type / "000.png"
    assert copied.read_bytes() == Path(source.path).read_bytes()  # MVTec PNGs are kept byte for byte
    assert run_cli("verify", version)[0] == 0


@pytest.mark.slow
def test_real_bottle_full_index_exports_all_outputs(run_cli, shared_data, tmp_path):
    index = _bottle_index(run_cli, shared_data, tmp_path)
    code, _, err = run_cli("export", "--index", index, "--out", tmp_path / "datasets")
    assert code == 0, err
    version = tmp_path / "datasets" / "bottle" / "v1"
    _check_four_outputs(version, len(read_index(index)))
    counts = json.loads((version / "stats.json").read_text())["counts"]
    assert len(mvtec.load_category(version, "bottle")) == sum(
        n for defects in counts.values() for sources in defects.values() for n in sources.values())
    shutil.rmtree(version / "mvtec")
    assert run_cli("verify", version)[0] == 1
