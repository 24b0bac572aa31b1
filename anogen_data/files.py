"""File helpers shared by every stage: atomic output folders, JSON lines, hashing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from anogen_data.errors import AnogenError


@contextlib.contextmanager
def atomic_output_dir(final: Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder that is renamed to ``final`` only when the block completes.

    On any exception (Ctrl-C included) the temporary folder is removed and ``final`` is untouched.

    Args:
        final: the folder to create.
        force: replace an existing ``final`` (the old one is removed only after the new one is complete).

    Raises:
        AnogenError: ``final`` exists and ``force`` is False, or its parent cannot be written.
    """
    final = Path(final)
    if final.exists() and not force:
        raise AnogenError(f"{final} already exists; choose another output or pass --force")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    except OSError as exc:
        raise AnogenError(f"cannot write to {final.parent}: {exc.strerror}; choose a writable --out") from exc
    try:
        yield tmp
        if final.exists() and not force:  # appeared while we wrote (a concurrent run): never replace it
            raise AnogenError(f"{final} was created by another run while this one wrote; nothing was replaced")
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    """Write one JSON object per line; returns the number of rows."""
    count = 0
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=True) + "\n")
            count += 1
    return count


def read_jsonl(path: Path) -> list[dict]:
    """Read a JSON-lines file, naming the file and line on a malformed row."""
    path = Path(path)
    if not path.is_file():
        raise AnogenError(f"{path} does not exist")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise AnogenError(f"{path}:{lineno} is not valid JSON ({exc.msg})") from exc
    return rows


def write_json(path: Path, obj) -> None:
    """Write pretty JSON with sorted keys and a trailing newline (stable bytes for DVC)."""
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def split_metrics(report: dict, info_keys: tuple[str, ...] = ("config",)) -> tuple[dict, dict]:
    """Split a nested report into (numbers only, everything else) with the same nesting.

    The first is what DVC shows as metrics (``dvc metrics show/diff``, ``dvc exp show`` columns): ints and
    floats, and null for an undefined number (NaN). The second keeps strings, booleans, lists and hashes,
    and the top-level ``info_keys`` (the stage's config: settings, not results) whole, for an info file
    beside it. Empty branches are dropped from either side.
    """
    numbers, info = {}, {}
    for key, value in report.items():
        if key in info_keys:
            info[key] = value
        elif isinstance(value, dict):
            sub_numbers, sub_info = split_metrics(value, ())
            if sub_numbers:
                numbers[key] = sub_numbers
            if sub_info:
                info[key] = sub_info
        elif value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            numbers[key] = value
        else:
            info[key] = value
    return numbers, info


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
