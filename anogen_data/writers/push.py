"""Upload a dataset version to the Hugging Face Hub with ``huggingface_hub`` and tag it.

The ``hf/`` folder becomes the root of a dataset repo (its ``README.md`` is the dataset card and its
``configs`` point ``load_dataset`` at ``data/<split>-*``); with ``include_trees`` the MVTec tree, COCO
files, stats and manifest follow in a second commit. The tag (default ``v<N>``) names the last commit.
Offline, unauthenticated or refused uploads become one ``AnogenError`` line; the token is never
printed or written (it is redacted from any error message).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from anogen_data.errors import AnogenError
from anogen_data.writers.manifest import read_manifest, verify_version

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
TREES = ["mvtec/**", "coco/**", "stats.json", "manifest.json", "records.jsonl", "contact_sheet.png"]


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def _redact(message: str, token: str | None) -> str:
    text = " ".join(str(message).split())
    return text.replace(token, "***") if token else text


def _check(version_dir: Path, repo_id: str) -> dict:
    """Validate the inputs before any network call; returns the manifest."""
    if not _REPO_ID.match(repo_id):
        raise AnogenError(f"--repo-id '{repo_id}' is not ORG/NAME (e.g. my-org/bottle-defects)")
    manifest = read_manifest(version_dir).model_dump()
    problems = verify_version(version_dir)
    if problems:
        raise AnogenError(
            f"{version_dir} no longer matches its manifest ({problems[0]}; {len(problems)} problem(s)); "
            "re-export the version instead of pushing a changed one"
        )
    if not (version_dir / "hf" / "README.md").is_file():
        raise AnogenError(f"{version_dir / 'hf'} has no README.md; this is not a complete dataset version")
    return manifest


def push_version(version_dir: Path, repo_id: str, *, private: bool = False, revision: str | None = None,
                 include_trees: bool = False) -> str:
    """Create (or reuse) the dataset repo, upload the version and tag it.

    Args:
        version_dir: a version folder written by ``write_version`` (it is verified first).
        repo_id: "ORG/NAME" of the dataset repo.
        private: create the repo private (an existing repo keeps its visibility).
        revision: tag name; ``v<N>`` of the manifest when None.
        include_trees: also upload ``mvtec/``, ``coco/``, stats, manifest, records and contact sheet.

    Returns:
        The tag written.

    Raises:
        AnogenError: offline, not logged in, a bad repo id, a changed version, or the Hub refused.
    """
    version_dir = Path(version_dir)
    manifest = _check(version_dir, repo_id)
    tag = revision or f"v{manifest['version']}"
    if _offline():
        raise AnogenError("cannot push: HF_HUB_OFFLINE is set; unset it and make sure the Hub is reachable")
    from huggingface_hub import HfApi, get_token

    token = get_token()
    if not token:
        raise AnogenError("cannot push: not logged in to the Hugging Face Hub; run `hf auth login` or set HF_TOKEN")
    api = HfApi()
    message = f"{manifest['name']} {tag} ({manifest['category']}) from anogen-data"
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, folder_path=str(version_dir / "hf"), repo_type="dataset",
                                   commit_message=message)
        if include_trees:
            commit = api.upload_folder(repo_id=repo_id, folder_path=str(version_dir), repo_type="dataset",
                                       allow_patterns=TREES, commit_message=f"{message}: MVTec and COCO trees")
        api.create_tag(repo_id, tag=tag, repo_type="dataset", revision=getattr(commit, "oid", None),
                       tag_message=message)
    except Exception as exc:  # network, auth and Hub errors all become one line
        raise AnogenError(f"push to {repo_id} failed: {type(exc).__name__}: {_redact(exc, token)}") from None
    return tag
