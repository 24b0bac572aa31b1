"""Upload a dataset version to the Hugging Face Hub as one exact commit, and tag it.

The ``hf/`` folder becomes the root of a dataset repo (its ``README.md`` is the dataset card and its
``configs`` point ``load_dataset`` at ``data/<split>-*``); with ``include_trees`` the version's MVTec
and synthetic trees, COCO files, stats, records, manifest and sheets join it at the root. One
``HfApi.create_commit`` adds every file of the version and deletes every file of the branch that is
not in it (listed with ``list_repo_files``; only the Hub's own ``.gitattributes`` is kept), so the
commit holds exactly this version: ``hf download`` or a glob over ``data/`` never mixes in a previous
version's shards. ``upload_folder`` would only add. The tag (default ``v<N>``) names that commit.

Options follow ``hf upload``: ``revision`` is the branch to commit to (created when missing, default
``main``); the version tag is a separate ``tag``. The uploaded card's usage block names the repo and
the tag (``card.with_hub_usage``); the version folder itself is never changed.
Offline, unauthenticated or refused uploads become one ``AnogenError`` line; the token is never
printed or written (it is redacted from any error message).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from anogen_data.errors import AnogenError
from anogen_data.writers.card import with_hub_usage
from anogen_data.writers.manifest import MANIFEST, read_manifest, verify_version

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
HF = "hf/"
CARD = "README.md"
KEEP = {".gitattributes"}  # written by the Hub when it creates a repo: its LFS rules, not a dataset file
DEFAULT_BRANCH = "main"


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
    if not (version_dir / "hf" / CARD).is_file():
        raise AnogenError(f"{version_dir / 'hf'} has no {CARD}; this is not a complete dataset version")
    return manifest


def repo_files(version_dir: Path, manifest: dict, include_trees: bool) -> dict[str, Path]:
    """{path in the repo: local file} of a version: ``hf/*`` at the root, plus (``include_trees``)
    every other file of the version at its own path (``hf/contact_sheet.png`` equals the version's
    ``contact_sheet.png``; the ``hf/`` copy is the one kept)."""
    files = {rel[len(HF):]: version_dir / rel for rel in manifest["files"] if rel.startswith(HF)}
    if include_trees:
        for rel in [*manifest["files"], MANIFEST]:
            if not rel.startswith(HF):
                files.setdefault(rel, version_dir / rel)
    return dict(sorted(files.items()))


def commit_operations(files: dict[str, Path], card: bytes, existing: list[str]) -> list:
    """``CommitOperationAdd`` for every file (the card from ``card`` bytes), then ``CommitOperationDelete``
    for every file of ``existing`` (the branch now) that is neither in ``files`` nor kept (``KEEP``)."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    ops: list = [
        CommitOperationAdd(path_in_repo=path, path_or_fileobj=card if path == CARD else str(local))
        for path, local in files.items()
    ]
    ops += [CommitOperationDelete(path_in_repo=path) for path in sorted(set(existing) - set(files) - KEEP)]
    return ops


def _hub_card(text: str, manifest: dict, files: dict[str, Path], repo_id: str, tag: str, trees: bool) -> bytes:
    """The card to upload: its usage block names ``repo_id`` at ``tag``. Cards written before the usage
    block get their ``"path/or/repo-id"`` placeholder filled instead."""
    splits = sorted({Path(p).name.split("-")[0] for p in files if p.startswith("data/")}, key=lambda s: (s != "train", s))
    try:
        text = with_hub_usage(text, repo_id=repo_id, tag=tag, trees=trees, name=manifest["name"],
                              version=manifest["version"], category=manifest["category"], splits=splits)
    except ValueError:
        text = text.replace('load_dataset("path/or/repo-id")', f'load_dataset("{repo_id}", revision="{tag}")')
    return text.encode("utf-8")


def push_version(version_dir: Path, repo_id: str, *, private: bool = False, revision: str | None = None,
                 tag: str | None = None, include_trees: bool = False) -> str:
    """Create (or reuse) the dataset repo, commit exactly this version to ``revision`` and tag it.

    Args:
        version_dir: a version folder written by ``write_version`` (it is verified first).
        repo_id: "ORG/NAME" of the dataset repo.
        private: create the repo private (an existing repo keeps its visibility).
        revision: branch to commit to (as in ``hf upload``); created from ``main`` when missing;
            ``main`` when None.
        tag: tag naming the commit; ``v<N>`` of the manifest when None. An existing tag is refused by
            the Hub (tags are never moved).
        include_trees: also upload ``mvtec/``, ``synthetic/``, ``coco/``, stats, manifest, records and sheets.

    Returns:
        The tag written.

    Raises:
        AnogenError: offline, not logged in, a bad repo id, a changed version, a tag named like the
            branch, or the Hub refused.
    """
    version_dir = Path(version_dir)
    manifest = _check(version_dir, repo_id)
    tag = tag or f"v{manifest['version']}"
    branch = revision or DEFAULT_BRANCH
    if tag == branch:
        raise AnogenError(f"--revision (the branch) and the tag are both '{tag}'; a ref name must be one or the "
                          "other: pass another --tag or --revision")
    if _offline():
        raise AnogenError("cannot push: HF_HUB_OFFLINE is set; unset it and make sure the Hub is reachable")
    import huggingface_hub

    token = huggingface_hub.get_token()
    if not token:
        raise AnogenError("cannot push: not logged in to the Hugging Face Hub; run `hf auth login` or set HF_TOKEN")
    files = repo_files(version_dir, manifest, include_trees)
    card = _hub_card(files[CARD].read_text(encoding="utf-8"), manifest, files, repo_id, tag, include_trees)
    message = f"{manifest['name']} {tag} ({manifest['category']}) from anogen-data"
    api = huggingface_hub.HfApi()
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if branch != DEFAULT_BRANCH:
            api.create_branch(repo_id, branch=branch, repo_type="dataset", exist_ok=True)
        existing = api.list_repo_files(repo_id, repo_type="dataset", revision=branch)
        commit = api.create_commit(repo_id, operations=commit_operations(files, card, existing),
                                   commit_message=message, repo_type="dataset", revision=branch)
        api.create_tag(repo_id, tag=tag, tag_message=message, revision=commit.oid, repo_type="dataset")
    except Exception as exc:  # network, auth and Hub errors all become one line
        raise AnogenError(f"push to {repo_id} failed: {type(exc).__name__}: {_redact(exc, token)}") from None
    return tag
