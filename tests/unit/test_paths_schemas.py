"""Unit tests of the containment rules (``anogen_data.paths``) and the file schemas (``anogen_data.schemas``)."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from anogen_data import config as cfg
from anogen_data.errors import AnogenError
from anogen_data.paths import check_plain_name, index_image_parts, inside, plain_name_problem
from anogen_data.schemas import check_config_values, config_schema, field_name, rle_runs, yaml_line


@pytest.mark.parametrize("name", ["demo", "bottle", "broken_large", "metal-nut.v2", "a b"])
def test_plain_names_pass(name):
    assert plain_name_problem(name) is None and check_plain_name(name, "--name") == name


@pytest.mark.parametrize("name, problem", [
    ("", "empty"), ("..", "'..'"), ("a..b", "'..'"), ("../x", "'..'"), ("a/b", "'/'"), ("/etc", "'/'"),
    ("a\\b", "'/'"), ("a\x00b", "NUL"), ("a\nb", "control"), (".", "not a path"), ("C:", "not a path"),
    (5, "string"),
])
def test_plain_names_refused(name, problem):
    assert problem in plain_name_problem(name)
    with pytest.raises(AnogenError, match=r"^--category: .* \(got .*\)$"):
        check_plain_name(name, "--category")


def test_inside_resolves_and_refuses_escapes_and_symlinks(tmp_path):
    root = tmp_path / "records"
    (root / "images").mkdir(parents=True)
    assert inside(root, "images/a.png", "image_path") == (root / "images" / "a.png").resolve()
    for bad in ("../x.png", "/etc/passwd", "images/../../x.png", ""):
        with pytest.raises(AnogenError, match="image_path"):
            inside(root, bad, "image_path")
    os.symlink(tmp_path, root / "link")  # a link inside the folder that points out of it
    with pytest.raises(AnogenError, match="outside"):
        inside(root, "link/x.png", "image_path")


def test_index_image_parts_reads_the_mvtec_folders_lexically():
    assert index_image_parts("/d/demo/train/good/000.png")[1:] == ("demo", "train", "good")
    folder, category, split, defect = index_image_parts("/d/demo/train/good/../../../../etc/a/b/c.png")
    assert (str(folder), category, split, defect) == ("/etc", "etc", "a", "b")


@pytest.mark.parametrize("seed", range(5))
def test_rle_runs_rebuild_the_mask_pycocotools_encoded(seed):
    from anogen_data.layout.rle import encode_rle

    rng = np.random.default_rng(seed)
    mask = (rng.random((23, 31)) > 0.7).astype(np.uint8) * 255
    rle = encode_rle(mask)
    runs = rle_runs(rle["counts"], 23 * 31)
    flat = np.concatenate([np.full(n, i % 2, np.uint8) for i, n in enumerate(runs)])
    assert np.array_equal(flat.reshape(31, 23).T * 255, mask)  # COCO RLE runs are column-major


@pytest.mark.parametrize("counts, match", [("!!", "character"), ("0", "covers 0 pixels"), ("\x7f", "character"),
                                           ("o", "middle of a number")])
def test_rle_runs_refuse_malformed_counts(counts, match):
    with pytest.raises(ValueError, match=match):
        rle_runs(counts, 64)


def test_every_default_config_satisfies_its_schema():
    for cls in (cfg.IndexConfig, cfg.ExportConfig, cfg.LearnConfig, cfg.ProposeConfig, cfg.GenerateConfig,
                cfg.TrainConfig, cfg.BenchmarkConfig, cfg.FilterConfig, cfg.QualityConfig):
        check_config_values(cls, dataclasses.asdict(cls()), lambda key: key)
        assert set(config_schema(cls)) == {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("cls, key, value, match", [
    (cfg.GenerateConfig, "n", "abc", "valid integer"), (cfg.GenerateConfig, "n", 2.5, "valid integer"),
    (cfg.GenerateConfig, "n", True, "valid integer"), (cfg.GenerateConfig, "workers", 0, "greater than or equal to 1"),
    (cfg.FilterConfig, "min_area", -0.1, "greater than or equal to 0"), (cfg.FilterConfig, "min_area", "tiny", "number"),
    (cfg.ExportConfig, "show_dropped", "false", "boolean"), (cfg.TrainConfig, "device", "tpu", "cuda:N"),
    (cfg.IndexConfig, "shots", 0, "greater than or equal to 1"), (cfg.LearnConfig, "shots", -1, "greater than or equal to 0"),
    (cfg.LearnConfig, "dtype", "fp64", "'auto', 'fp32', 'fp16', 'bf16'"), (cfg.ProposeConfig, "defect", "../x", "'..'"),
])
def test_config_values_out_of_type_or_range_are_refused(cls, key, value, match):
    with pytest.raises(AnogenError, match=match):
        check_config_values(cls, {key: value}, lambda k: k)


def test_config_values_in_range_pass():
    check_config_values(cfg.FilterConfig, {"min_area": 1, "max_duplicate": -0.5}, lambda k: k)  # YAML int as float
    check_config_values(cfg.TrainConfig, {"device": "cuda:1", "p_cutoff": None}, lambda k: k)


def test_resolve_config_names_the_flag_or_the_params_line(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("index:\n  seed: 1\ngenerate:\n  # comment\n  n: abc\n")
    assert yaml_line(params, "generate", "n") == 5 and yaml_line(params, "index", "seed") == 2
    with pytest.raises(AnogenError, match=r"params.yaml:5: generate.n: Input should be a valid integer \(got 'abc'\)"):
        cfg.resolve_config(cfg.GenerateConfig, params, "generate", {})
    with pytest.raises(AnogenError, match=r"^--seed: Input should be greater than or equal to 0 \(got -1\)"):
        cfg.resolve_config(cfg.GenerateConfig, None, "generate", {"seed": -1})


def test_field_names_read_like_paths():
    assert field_name(("images", 0, "file_name")) == "images[0].file_name"
    assert field_name(("files", "a/b.png", "size")) == "files['a/b.png'].size"
    assert field_name(("files", "../x", "[key]")) == "files['../x'] (key)"


def test_header_size_reads_the_header_only(tmp_path):
    from anogen_data.data.image_io import header_size, write_png

    write_png(tmp_path / "a.png", np.zeros((7, 11, 3), np.uint8))
    assert header_size(tmp_path / "a.png") == (11, 7)
    (tmp_path / "b.png").write_bytes(b"not an image")
    assert header_size(tmp_path / "b.png") is None


def test_every_shipped_params_file_satisfies_the_schemas():
    from pathlib import Path

    import yaml

    repo = Path(__file__).resolve().parents[2]
    sections = {"index": cfg.IndexConfig, "export": cfg.ExportConfig, "learn": cfg.LearnConfig,
                "propose": cfg.ProposeConfig, "generate": cfg.GenerateConfig, "train": cfg.TrainConfig,
                "benchmark": cfg.BenchmarkConfig, "filter": cfg.FilterConfig, "quality": cfg.QualityConfig}
    files = [repo / "params.yaml", *sorted((repo / "pipelines").glob("*/params.yaml"))]
    assert len(files) >= 2
    for path in files:
        params = yaml.safe_load(path.read_text())
        for section, cls in sections.items():
            if section in params:
                cfg.resolve_config(cls, path, section, {})


def test_spelled_out_choices_equal_the_proposer_ones():
    from anogen_data import schemas
    from anogen_data.layout import propose

    assert schemas.SHAPES == propose.SHAPES and schemas.PLACEMENTS == propose.PLACEMENTS


def test_resume_prefix_stops_at_a_row_that_is_not_a_record(tmp_path):
    import json

    from anogen_data.synthesis.runner import completed_rows

    (tmp_path / "images").mkdir()
    rows = []
    for i, image in enumerate(["images/a.png", "../../etc/passwd", "images/a.png"]):
        (tmp_path / "images" / "a.png").write_bytes(b"x")
        rows.append({"id": f"syn_{i}", "category": "demo", "defect_type": "scratch", "backend": "paste", "seed": i,
                     "source_path": "/data/demo/train/good/000.png", "image_path": image, "mask_path": "images/a.png",
                     "mask_quality": "pixel", "bbox_xyxy": [0, 0, 4, 4], "recipe": {}, "extra": {}})
    first = json.dumps(rows[0]) + "\n"
    (tmp_path / "records.jsonl").write_text(first + "".join(json.dumps(r) + "\n" for r in rows[1:]))
    assert [r["id"] for r in completed_rows(tmp_path)] == ["syn_0"]
    assert (tmp_path / "records.jsonl").read_text() == first
