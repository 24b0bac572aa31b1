"""push: the Hub calls (patched) get the right arguments; offline / no token / refused -> one clear error."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import huggingface_hub
import pytest

from anogen_data.errors import AnogenError
from anogen_data.writers.push import TREES, push_version

TOKEN = "hf_secretTOKEN123"


class FakeApi:
    """Records every call instead of talking to the Hub."""

    calls: list = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs))
        return SimpleNamespace(oid=f"commit{len(self.calls)}")

    def create_tag(self, repo_id, **kwargs):
        self.calls.append(("create_tag", repo_id, kwargs))


@pytest.fixture
def hub(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: TOKEN)
    FakeApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    return FakeApi


def test_push_uploads_hf_folder_and_tags_the_version(written, hub):
    assert push_version(written.folder, "org/widget", private=True) == "v1"
    (_, repo, repo_kwargs), (_, upload), (_, tag_repo, tag_kwargs) = hub.calls
    assert (repo, repo_kwargs["repo_type"], repo_kwargs["private"], repo_kwargs["exist_ok"]) == \
        ("org/widget", "dataset", True, True)
    assert upload["folder_path"] == str(written.folder / "hf") and upload["repo_id"] == "org/widget"
    assert upload["repo_type"] == "dataset"
    assert (tag_repo, tag_kwargs["tag"], tag_kwargs["revision"], tag_kwargs["repo_type"]) == \
        ("org/widget", "v1", "commit2", "dataset")


def test_push_with_trees_and_a_custom_tag(written, hub):
    assert push_version(written.folder, "org/widget", revision="release-1", include_trees=True) == "release-1"
    uploads = [c[1] for c in hub.calls if c[0] == "upload_folder"]
    assert uploads[1]["folder_path"] == str(written.folder) and uploads[1]["allow_patterns"] == TREES
    assert hub.calls[-1][2]["tag"] == "release-1" and hub.calls[-1][2]["revision"] == "commit3"


def test_offline_and_logged_out_fail_before_any_call(written, hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AnogenError, match="HF_HUB_OFFLINE"):
        push_version(written.folder, "org/widget")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(AnogenError, match="not logged in"):
        push_version(written.folder, "org/widget")
    assert hub.calls == []


def test_hub_errors_become_one_line_without_the_token(written, hub, monkeypatch):
    def refuse(self, repo_id, **kwargs):
        raise OSError(f"401 Unauthorized for token {TOKEN}\nsee logs")

    monkeypatch.setattr(FakeApi, "create_repo", refuse)
    with pytest.raises(AnogenError) as info:
        push_version(written.folder, "org/widget")
    message = str(info.value)
    assert "push to org/widget failed" in message and TOKEN not in message and "\n" not in message


def test_bad_repo_id_and_changed_version_are_refused(written, hub, tmp_path):
    with pytest.raises(AnogenError, match="ORG/NAME"):
        push_version(written.folder, "no-slash")
    copy = tmp_path / "v1"
    shutil.copytree(written.folder, copy)
    (copy / "stats.json").write_text("{}")
    with pytest.raises(AnogenError, match="no longer matches its manifest"):
        push_version(copy, "org/widget")
    assert hub.calls == []
