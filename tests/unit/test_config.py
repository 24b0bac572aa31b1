"""Config precedence: dataclass defaults < params.yaml section < CLI flags; unknown keys; config.json."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml

import anogen_data.config as config_module
from anogen_data.config import IndexConfig, resolve_config, write_config
from anogen_data.errors import AnogenError

REPO = Path(__file__).resolve().parents[2]


def _params(tmp_path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_when_nothing_given():
    assert resolve_config(IndexConfig, None, "index", {}) == IndexConfig()


def test_params_override_defaults_and_flags_override_params(tmp_path):
    params = _params(tmp_path, "index:\n  seed: 5\n  protocol: random-k\n  shots: 2\n")
    from_file = resolve_config(IndexConfig, params, "index", {"seed": None, "shots": None})
    assert (from_file.seed, from_file.protocol, from_file.shots, from_file.category) == (5, "random-k", 2, "demo")
    flags = resolve_config(IndexConfig, params, "index", {"seed": 7, "shots": None, "category": "bottle"})
    assert (flags.seed, flags.protocol, flags.shots, flags.category) == (7, "random-k", 2, "bottle")


def test_other_sections_and_empty_section_are_ignored(tmp_path):
    params = _params(tmp_path, "index:\nother:\n  seed: 9\n")
    assert resolve_config(IndexConfig, params, "index", {}) == IndexConfig()


@pytest.mark.parametrize(
    "text, needle",
    [
        ("index:\n  sead: 1\n", "unknown key 'index.sead'"),
        ("index: [1, 2]\n", "section 'index' must be a mapping"),
        ("index:\n  seed: [unclosed\n", "is not valid YAML"),
    ],
)
def test_bad_params_file_raises_naming_file_and_key(tmp_path, text, needle):
    params = _params(tmp_path, text)
    with pytest.raises(AnogenError, match=re.escape(needle)) as info:
        resolve_config(IndexConfig, params, "index", {})
    assert str(params) in str(info.value)


def test_unknown_override_and_missing_file_raise(tmp_path):
    with pytest.raises(AnogenError, match="unknown option 'sead'"):
        resolve_config(IndexConfig, None, "index", {"sead": 1})
    with pytest.raises(AnogenError, match="does not exist"):
        resolve_config(IndexConfig, tmp_path / "nope.yaml", "index", {})


def test_configs_are_frozen_and_written_as_json(tmp_path):
    config = IndexConfig(seed=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 4  # type: ignore[misc]
    path = write_config(config, tmp_path)
    assert json.loads(path.read_text()) == dataclasses.asdict(config)


def _config_class(section: str):
    name = "".join(part.capitalize() for part in section.split("_")) + "Config"
    return getattr(config_module, name, None)


def test_repo_params_yaml_resolves_for_every_stage_with_a_config():
    params = REPO / "params.yaml"
    sections = yaml.safe_load(params.read_text(encoding="utf-8"))
    checked = 0
    for section, values in sections.items():
        cls = _config_class(section)
        if cls is not None and isinstance(values, dict):
            resolve_config(cls, params, section, {})
            checked += 1
    assert checked >= 1  # at least index


def test_every_params_yaml_key_carries_a_comment():
    missing = []
    for lineno, line in enumerate((REPO / "params.yaml").read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith("- "):
            continue
        if re.match(r"^\s*[A-Za-z_][\w-]*:\s*\S", line) and "#" not in line and not stripped.endswith("{}"):
            missing.append(f"params.yaml:{lineno}: {stripped}")
    assert not missing, "keys without a one-line reason:\n" + "\n".join(missing)


def test_generate_config_nests_the_sections_it_runs(tmp_path):
    from anogen_data.config import GenerateConfig, resolve_generate_config

    params = _params(tmp_path, "index:\n  protocol: random-k\n  seed: 4\npropose:\n  n: 40\n  shape: perlin\n  seed: 2\n"
                               "generate:\n  n: 10\n  seed: 1\nexport:\n  png_compression: 7\n")
    config = resolve_generate_config(params, {})
    assert (config.n, config.seed, config.index.protocol, config.index.seed) == (10, 1, "random-k", 4)
    assert (config.propose.n, config.propose.shape, config.propose.seed) == (40, "perlin", 2)  # staged: takes 10 of 40
    assert config.export.png_compression == 7 and config.category == "demo"
    flags = resolve_generate_config(params, {"n": 50, "seed": 9, "defect": "spot"}, index={"category": "bottle"},
                                    propose={"shape": "stroke"})
    assert (flags.propose.n, flags.propose.seed, flags.index.seed, flags.seed) == (50, 9, 9, 9)  # n >= generate n
    assert (flags.propose.defect, flags.propose.shape, flags.category) == ("spot", "stroke", "bottle")
    unset = resolve_generate_config(_params(tmp_path, "generate:\n  n: 3\n  defect: crack\n"), {})
    assert (unset.propose.n, unset.propose.defect) == (3, "crack")  # no propose.n: propose exactly n
    assert resolve_generate_config(None, {}) == GenerateConfig()


@pytest.mark.parametrize("text, needle", [
    ("generate:\n  shape: perlin\n", "unknown key 'generate.shape'; it moved to propose.shape"),
    ("generate:\n  category: bottle\n", "it moved to the --category flag"),
    ("generate:\n  propose:\n    n: 3\n", "'generate.propose' is not a key; propose settings live in the top-level"),
    ("generate:\n  n: 3\npropose:\n  sead: 1\n", "unknown key 'propose.sead'"),
])
def test_generate_config_names_moved_and_nested_keys(tmp_path, text, needle):
    from anogen_data.config import resolve_generate_config

    with pytest.raises(AnogenError, match=re.escape(needle)):
        resolve_generate_config(_params(tmp_path, text), {})


def test_top_level_data_sets_the_root_once_and_a_section_data_wins(tmp_path):
    from anogen_data.config import IndexConfig, LearnConfig, resolve_config, resolve_generate_config

    params = tmp_path / "params.yaml"
    params.write_text("data: /mnt/mvtec\nindex:\n  seed: 2\ngenerate:\n  n: 3\n")
    assert resolve_config(IndexConfig, params, "index", {}).data == "/mnt/mvtec"
    assert resolve_generate_config(params, {}).index.data == "/mnt/mvtec"  # generate runs the index section
    params.write_text("data: /mnt/mvtec\nindex:\n  data: /elsewhere\n")
    assert resolve_config(IndexConfig, params, "index", {}).data == "/elsewhere"
    assert resolve_config(IndexConfig, params, "index", {"data": "/cli"}).data == "/cli"
    resolve_config(LearnConfig, params, "learn", {})  # sections without a data field ignore it


def test_anogen_data_is_the_root_when_none_is_given(tmp_path, monkeypatch, make_mvtec):
    from anogen_data.config import IndexConfig
    from anogen_data.errors import AnogenError
    from anogen_data.stages.index import resolve_data_root

    root = make_mvtec(defects={"spot": 3})  # ROOT/widget
    monkeypatch.setenv("ANOGEN_DATA", str(root))
    assert resolve_data_root(IndexConfig(category="widget")) == root
    with pytest.raises(AnogenError, match="anogen-data download mvtec --category screw"):
        resolve_data_root(IndexConfig(category="screw"))
    monkeypatch.delenv("ANOGEN_DATA")
    monkeypatch.setenv("ANOGEN_CACHE", str(tmp_path / "cache"))
    with pytest.raises(AnogenError, match=f"not under the data root {tmp_path / 'cache' / 'data'}"):
        resolve_data_root(IndexConfig(category="widget"))


def test_filter_and_quality_share_one_declaration_of_the_defect_crop():
    import dataclasses

    from anogen_data.config import DefectCropConfig, FilterConfig, QualityConfig

    shared = {f.name: f.default for f in dataclasses.fields(DefectCropConfig)}
    assert set(shared) == {"crop_size", "crop_pad", "crop_min_side", "change_threshold", "leak_radius"}
    for cls in (FilterConfig, QualityConfig):
        assert issubclass(cls, DefectCropConfig)
        assert {f.name: f.default for f in dataclasses.fields(cls) if f.name in shared} == shared
        assert not any(name in cls.__dict__.get("__annotations__", {}) for name in shared)  # not re-declared
