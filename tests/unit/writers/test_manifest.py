"""manifest.json: every file hashed, lineage, and `verify_version` catching any change."""

from __future__ import annotations

import json
import shutil

import pytest

from anogen_data.errors import AnogenError
from anogen_data.files import sha256_file
from anogen_data.records import write_index
from anogen_data.writers.manifest import concept_hashes, index_sha256, manifest_self_sha256, verify_version
from anogen_data.writers.version import write_version


def test_manifest_hashes_every_file(written):
    manifest = json.loads((written.folder / "manifest.json").read_text())
    files = sorted(p for p in written.folder.rglob("*") if p.is_file() and p.name != "manifest.json")
    assert sorted(manifest["files"]) == sorted(p.relative_to(written.folder).as_posix() for p in files)
    for path in files:
        meta = manifest["files"][path.relative_to(written.folder).as_posix()]
        assert meta == {"sha256": sha256_file(path), "size": path.stat().st_size}
    assert manifest["version"] == 1 and manifest["name"] == "widget" and manifest["created"]
    assert manifest["lineage"]["configs"]["export"]["png_compression"] == 3


def test_index_hash_equals_the_index_file_hash(inputs, tmp_path):
    path = tmp_path / "index.jsonl"
    write_index(path, inputs.index)
    assert index_sha256(inputs.index) == sha256_file(path)


def test_lineage_hashes_concepts_and_keeps_seeds(inputs, tmp_path):
    concepts = tmp_path / "concepts" / "scratch"
    concepts.mkdir(parents=True)
    (concepts / "learned_embeds.safetensors").write_bytes(b"\x00weights")
    folder = write_version(tmp_path / "out", "widget", category="widget", index=inputs.index,
                           lineage={"concepts_dir": str(tmp_path / "concepts")},
                           configs={"generate": {"seed": 7, "n": 3}, "index": {"seed": 0}})
    lineage = json.loads((folder / "manifest.json").read_text())["lineage"]
    assert lineage["concepts"] == {"scratch/learned_embeds.safetensors": sha256_file(concepts / "learned_embeds.safetensors")}
    assert lineage["seeds"] == {"generate": 7, "index": 0}
    assert lineage["index_sha256"] == index_sha256(inputs.index)
    with pytest.raises(AnogenError, match="concepts folder"):
        concept_hashes(tmp_path / "missing")


def test_git_runs_once_per_export_and_lineage_and_manifest_agree(inputs, tmp_path, monkeypatch):
    from anogen_data.writers import manifest as manifest_module
    from anogen_data.writers import version as version_module

    calls = []

    def counting_git_commit():
        calls.append(1)
        return "0123abcd-dirty"

    for module in (manifest_module, version_module):  # wherever it is looked up from
        monkeypatch.setattr(module, "git_commit", counting_git_commit)
    folder = write_version(tmp_path / "out", "widget", category="widget", index=inputs.index)
    assert len(calls) == 1
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["git_commit"] == manifest["lineage"]["git_commit"] == "0123abcd-dirty"
    assert manifest["package_version"] == manifest["lineage"]["package_version"]


def test_verify_catches_a_changed_byte_a_missing_and_an_extra_file(written, tmp_path):
    copy = tmp_path / "v1"
    shutil.copytree(written.folder, copy)
    assert verify_version(copy) == []
    image = next((copy / "mvtec/widget/test/good").glob("*.png"))
    data = bytearray(image.read_bytes())
    data[-20] ^= 1
    image.write_bytes(bytes(data))
    (copy / "stats.json").unlink()
    (copy / "extra.txt").write_text("x")
    problems = verify_version(copy)
    assert problems[0].startswith(f"changed: {image.relative_to(copy).as_posix()}")
    assert "missing: stats.json" in problems and "unexpected: extra.txt" in problems
    assert len(problems) == 3


def test_verify_needs_a_manifest(tmp_path):
    with pytest.raises(AnogenError, match="manifest.json does not exist"):
        verify_version(tmp_path)
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(AnogenError, match="manifest.json: not valid JSON"):
        verify_version(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "x", "name": "n", "category": "c", "version": 1, '
                                            '"lineage": {}, "files": ["a.png"]}')
    with pytest.raises(AnogenError, match=r"manifest.json: files: Input should be an object"):
        verify_version(tmp_path)


@pytest.mark.parametrize("edit", ["hash", "lineage", "created", "drop_self_hash", "add_key"])
def test_verify_catches_an_edit_of_the_manifest_itself(written, tmp_path, edit):
    copy = tmp_path / "v1"
    shutil.copytree(written.folder, copy)
    path = copy / "manifest.json"
    manifest = json.loads(path.read_text())
    assert manifest["self_sha256"] == manifest_self_sha256(manifest)
    (path.with_name("indented.json")).write_text(json.dumps(manifest, indent=4))  # whitespace is not content
    shutil.move(path.with_name("indented.json"), path)
    assert verify_version(copy) == []
    if edit == "hash":  # a recorded size changed by hand
        manifest["files"]["stats.json"]["size"] += 1
    elif edit == "lineage":
        manifest["lineage"]["seeds"] = {"generate": 99}
    elif edit == "created":
        manifest["created"] = "2020-01-01T00:00:00+00:00"
    elif edit == "drop_self_hash":
        del manifest["self_sha256"]
    else:
        manifest["note"] = "looks fine"
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    problems = verify_version(copy)
    assert problems and problems[0].startswith("changed: manifest.json")
    assert all("manifest.json" in p or "stats.json" in p for p in problems)


def test_verify_refuses_a_manifest_whose_files_are_a_list(written, tmp_path):
    copy = tmp_path / "v1"
    shutil.copytree(written.folder, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"] = list(manifest["files"])
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(AnogenError, match="files: Input should be an object"):
        verify_version(copy)
