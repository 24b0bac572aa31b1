"""``manifest.json`` of a version: sha256 and size of every file, lineage, creation time; and ``verify``.

Lineage says how the version was made: the sha256 of the source index (of its canonical JSON-lines
bytes, equal to ``sha256_file(index.jsonl)`` for an index written by ``records.write_index``), the
sha256 of every learned concept file, the resolved configs of the stages, the package version, the git
commit (when the package runs from a git checkout) and the seeds.

The manifest also hashes itself: ``self_sha256`` is the sha256 of its canonical JSON (sorted keys, no
whitespace, that key left out), so ``verify`` catches a hand edit of manifest.json too (a changed hash,
lineage or creation time), not only edits of the files it lists. This guards against accidents and
careless edits, not against someone who recomputes the hash (that would need a signature).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
from collections.abc import Iterable
from pathlib import Path

from anogen_data import __version__
from anogen_data.errors import AnogenError
from anogen_data.files import sha256_file
from anogen_data.records import IndexEntry, to_row

MANIFEST = "manifest.json"
FORMAT = "anogen-data/version/1"
SELF_HASH = "self_sha256"


def manifest_self_sha256(manifest: dict) -> str:
    """sha256 of ``manifest``'s canonical JSON (sorted keys, compact, UTF-8) without its ``self_sha256``."""
    body = {k: v for k, v in manifest.items() if k != SELF_HASH}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def index_sha256(index: Iterable[IndexEntry]) -> str:
    """sha256 of the index as ``write_index`` would write it (sorted-key JSON, one row per line)."""
    digest = hashlib.sha256()
    for entry in index:
        digest.update((json.dumps(to_row(entry), sort_keys=True) + "\n").encode("utf-8"))
    return digest.hexdigest()


def concept_hashes(concepts_dir: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under a concepts folder (safetensors, concept.json, ...)."""
    root = Path(concepts_dir)
    if not root.is_dir():
        raise AnogenError(f"concepts folder {root} does not exist; pass the folder written by `concepts learn`")
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def git_commit() -> str | None:
    """The commit of the checkout the package runs from (suffixed "-dirty" with local changes), or None."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def seeds_of(configs: dict | None) -> dict[str, int]:
    """{stage: seed} for every resolved stage config that has a ``seed``."""
    return {stage: cfg["seed"] for stage, cfg in sorted((configs or {}).items())
            if isinstance(cfg, dict) and cfg.get("seed") is not None}


def file_table(folder: Path) -> dict[str, dict]:
    """{relative posix path: {"sha256", "size"}} of every file under ``folder`` except the manifest."""
    folder = Path(folder)
    table = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and rel != MANIFEST:
            table[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return table


def build_manifest(folder: Path, *, name: str, category: str, version: int, lineage: dict) -> dict:
    """The manifest of a finished version folder (every file hashed, then the manifest itself); the package
    version and git commit are the ones ``lineage`` recorded (git runs once per export)."""
    manifest = {
        "format": FORMAT,
        "name": name,
        "category": category,
        "version": version,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "package_version": lineage.get("package_version", __version__),
        "git_commit": lineage.get("git_commit"),
        "lineage": lineage,
        "files": file_table(folder),
    }
    return {**manifest, SELF_HASH: manifest_self_sha256(manifest)}


def read_manifest(folder: Path):
    """The version's ``manifest.json`` validated by ``schemas.Manifest`` (file paths relative, inside the version).

    Raises:
        AnogenError: missing, not JSON, or a field of the wrong type (file and field named).
    """
    from anogen_data.schemas import Manifest, read_json_model

    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise AnogenError(f"{path} does not exist; pass a dataset version folder such as datasets/<name>/v1")
    return read_json_model(path, Manifest)


def verify_version(folder: Path) -> list[str]:
    """Re-hash a version; returns one line per problem (changed, missing or unexpected file, or an edited
    manifest.json), [] when intact.

    Raises:
        AnogenError: ``folder`` is not a version (no readable manifest.json).
    """
    folder = Path(folder)
    recorded = {rel: meta.model_dump() for rel, meta in read_manifest(folder).files.items()}
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))  # validated above; raw for the self-hash
    actual = file_table(folder)
    problems = []
    own = manifest.get(SELF_HASH)
    if own is None:
        problems.append(f"changed: {MANIFEST} (it has no {SELF_HASH}: edited, or written by an older anogen-data)")
    elif own != manifest_self_sha256(manifest):
        problems.append(f"changed: {MANIFEST} (edited after export: its content no longer matches its {SELF_HASH} "
                        f"{str(own)[:12]})")
    for rel, meta in sorted(recorded.items()):
        if rel not in actual:
            problems.append(f"missing: {rel}")
        elif actual[rel] != meta:
            problems.append(f"changed: {rel} (sha256 {actual[rel]['sha256'][:12]}, was {meta['sha256'][:12]})")
    problems += [f"unexpected: {rel}" for rel in sorted(set(actual) - set(recorded))]
    return problems
