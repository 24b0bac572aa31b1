"""push: one exact commit per version (adds + deletes), tagged; the network replaced by an autospec of
``HfApi`` (a changed Hub signature fails these tests); offline / no token / refused -> one clear error."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace
from unittest.mock import create_autospec

import huggingface_hub
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

from anogen_data.errors import AnogenError
from anogen_data.writers.push import push_version

TOKEN = "hf_secretTOKEN123"


@pytest.fixture
def hub(monkeypatch):
    """The ``HfApi`` instance push uses: an autospec whose branch holds ``hub.list_repo_files.return_value``."""
    api = create_autospec(HfApi, instance=True)
    api.list_repo_files.return_value = [".gitattributes"]
    api.create_commit.return_value = SimpleNamespace(oid="c0ffee")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: TOKEN)
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda *args, **kwargs: api)
    return api


def _local_files(folder, under=""):
    base = folder / under if under else folder
    return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())


def _operations(hub):
    (repo_id,), kwargs = hub.create_commit.call_args
    operations = kwargs["operations"]
    assert repo_id == "org/widget" and kwargs["repo_type"] == "dataset"
    adds = {op.path_in_repo: op for op in operations if isinstance(op, CommitOperationAdd)}
    deletes = [op.path_in_repo for op in operations if isinstance(op, CommitOperationDelete)]
    assert len(adds) + len(deletes) == len(operations)
    return adds, deletes, kwargs


def test_first_push_adds_every_hf_file_in_one_commit_and_tags_it(written, hub):
    assert push_version(written.folder, "org/widget", private=True) == "v1"
    hub.create_repo.assert_called_once_with("org/widget", repo_type="dataset", private=True, exist_ok=True)
    hub.create_branch.assert_not_called()
    hub.list_repo_files.assert_called_once_with("org/widget", repo_type="dataset", revision="main")
    adds, deletes, kwargs = _operations(hub)
    assert kwargs["revision"] == "main" and deletes == []  # .gitattributes is the Hub's, never deleted
    assert sorted(adds) == _local_files(written.folder, "hf")
    parquet = next(p for p in adds if p.endswith(".parquet"))
    assert adds[parquet].path_or_fileobj == str(written.folder / "hf" / parquet)
    card = adds["README.md"].path_or_fileobj.decode()
    assert 'load_dataset("org/widget", revision="v1")' in card and "datasets/widget/v1/hf" not in card
    assert (written.folder / "hf" / "README.md").read_text() != card  # the version itself is never changed
    hub.create_tag.assert_called_once_with("org/widget", tag="v1", tag_message=kwargs["commit_message"],
                                           revision="c0ffee", repo_type="dataset")


def test_pushing_over_a_previous_version_deletes_its_files(written, hub):
    ours = _local_files(written.folder, "hf")
    stale = ["data/train-00000-of-00001-0123456789abcdef.parquet", "mvtec/widget/train/scratch/syn_000000.png"]
    hub.list_repo_files.return_value = [".gitattributes", "README.md", *stale, *[p for p in ours if "data/" in p]]
    push_version(written.folder, "org/widget")
    adds, deletes, _ = _operations(hub)
    assert sorted(adds) == ours and deletes == sorted(stale)


def test_trees_branch_and_tag_options(written, hub):
    hub.list_repo_files.return_value = [".gitattributes", "old.txt"]
    assert push_version(written.folder, "org/widget", revision="dev", tag="release-1", include_trees=True) == "release-1"
    hub.create_branch.assert_called_once_with("org/widget", branch="dev", repo_type="dataset", exist_ok=True)
    hub.list_repo_files.assert_called_once_with("org/widget", repo_type="dataset", revision="dev")
    adds, deletes, kwargs = _operations(hub)
    version_files = [p for p in _local_files(written.folder) if not p.startswith("hf/")]
    assert sorted(adds) == sorted(set(_local_files(written.folder, "hf")) | set(version_files))
    assert {"manifest.json", "stats.json", "records.jsonl", "coco/instances_train.json"} <= set(adds)
    assert any(p.startswith("synthetic/widget/images/") for p in adds) and not any(p.startswith("hf/") for p in adds)
    assert adds["contact_sheet.png"].path_or_fileobj == str(written.folder / "hf" / "contact_sheet.png")
    assert deletes == ["old.txt"] and kwargs["revision"] == "dev"
    card = adds["README.md"].path_or_fileobj.decode()
    assert 'snapshot_download("org/widget", repo_type="dataset", revision="release-1")' in card
    assert hub.create_tag.call_args.kwargs["tag"] == "release-1"


def test_a_card_written_before_the_usage_block_gets_its_placeholder_filled(written, hub, tmp_path):
    from anogen_data.writers.manifest import MANIFEST, build_manifest

    old = tmp_path / "v1"
    shutil.copytree(written.folder, old)
    card = old / "hf" / "README.md"
    text = card.read_text()
    start, end = text.index("<!-- usage -->"), text.index("<!-- /usage -->") + len("<!-- /usage -->")
    card.write_text(text[:start] + '```python\nds = load_dataset("path/or/repo-id")\n```' + text[end:])
    manifest = json.loads((old / MANIFEST).read_text())
    (old / MANIFEST).unlink()
    (old / MANIFEST).write_text(json.dumps(build_manifest(old, name=manifest["name"], category=manifest["category"],
                                                           version=manifest["version"], lineage={})))
    push_version(old, "org/widget")
    adds, _, _ = _operations(hub)
    assert 'ds = load_dataset("org/widget", revision="v1")' in adds["README.md"].path_or_fileobj.decode()


def test_offline_and_logged_out_fail_before_any_call(written, hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AnogenError, match="HF_HUB_OFFLINE"):
        push_version(written.folder, "org/widget")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(AnogenError, match="not logged in"):
        push_version(written.folder, "org/widget")
    assert hub.mock_calls == []


def test_hub_errors_become_one_line_without_the_token(written, hub):
    hub.create_commit.side_effect = OSError(f"401 Unauthorized for token {TOKEN}\nsee logs")
    with pytest.raises(AnogenError) as info:
        push_version(written.folder, "org/widget")
    message = str(info.value)
    assert "push to org/widget failed" in message and TOKEN not in message and "\n" not in message
    hub.create_tag.assert_not_called()


def test_bad_repo_id_and_changed_version_are_refused(written, hub, tmp_path):
    with pytest.raises(AnogenError, match="ORG/NAME"):
        push_version(written.folder, "no-slash")
    with pytest.raises(AnogenError, match="--revision .* and the tag are both 'v1'"):
        push_version(written.folder, "org/widget", revision="v1")  # the old meaning of --revision
    copy = tmp_path / "v1"
    shutil.copytree(written.folder, copy)
    (copy / "stats.json").write_text("{}")
    with pytest.raises(AnogenError, match="no longer matches its manifest"):
        push_version(copy, "org/widget")
    assert hub.mock_calls == []
