"""File helpers shared by every stage: atomic output folders, JSON lines, hashing.

Data safety (issue 13): every output folder carries a ``.anogen-data`` marker and ``--force``
replaces only such folders; outputs follow the umask (``mkdtemp`` alone would make them 0700);
temporary folders name their host and pid, so a later run removes what a killed one left; a failed
run leaves no empty parent folder behind; ``check_writable`` finds an unwritable ``--out`` before work.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from anogen_data.errors import AnogenError


MARKER = ".anogen-data"  # written into every output folder the tool makes; --force replaces only such folders
log = logging.getLogger(__name__)
_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"
_TMP = re.compile(r"^\..+\.tmp-(?P<host>.+)-(?P<pid>\d+)-[a-z0-9_]{8}$")  # ours: host and pid in the name
_OLD = re.compile(r"^\.(?P<final>.+)\.old-(?P<host>.+)-(?P<pid>\d+)$")
_UNTAGGED_TMP = re.compile(r"^\..+\.tmp-[a-z0-9_]{8}$")  # written by versions before the pid tag


def current_umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: Path) -> None:
    """Give a folder made by ``mkdtemp`` (0700) or a file made by ``mkstemp`` (0600) the mode that
    ``mkdir`` / ``open`` would have given it (0777 / 0666 less the umask), so a team can read the output."""
    path = Path(path)
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~current_umask())


_COMMAND = {"name": "anogen-data"}


def set_command_name(name: str) -> None:
    """Record the running command (the CLI's root callback does, e.g. "anogen-data index")."""
    _COMMAND["name"] = name


def command_name() -> str:
    """The running command ("anogen-data index"), or "anogen-data" outside the CLI."""
    return _COMMAND["name"]


def write_marker(folder: Path) -> None:
    """Write the ``.anogen-data`` marker (the command that made ``folder``) into ``folder``."""
    write_json(Path(folder) / MARKER, {"made_by": command_name()})


def check_replaceable(folder: Path) -> None:
    """Raise unless ``--force`` may remove ``folder``: an empty folder, or one holding our marker,
    and never the current directory or a folder above it.

    Raises:
        AnogenError: ``folder`` holds the current directory, is a file, or was not written by anogen-data.
    """
    folder = Path(folder)
    resolved, here = folder.resolve(), Path.cwd().resolve()
    if resolved == here or resolved in here.parents:
        raise AnogenError(f"refusing to replace {folder}: it holds the current directory; choose another --out")
    if not folder.is_dir():
        raise AnogenError(f"{folder} is a file, not a folder written by anogen-data; remove it or choose another --out")
    if any(folder.iterdir()) and not (folder / MARKER).is_file():
        raise AnogenError(
            f"refusing to replace {folder}: it was not written by anogen-data (no {MARKER} marker); "
            "--force replaces only folders this tool made; move it away or choose another --out"
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(parent: Path) -> list[Path]:
    """Remove the temporary folders that dead runs on this host left in ``parent``; returns them.

    ``.<name>.tmp-<host>-<pid>-*`` (an output being written) and ``.<name>.old-<host>-<pid>`` (an output
    being replaced, removed only when ``<name>`` exists again) are removed when ``pid`` is not running;
    folders of live runs and of other hosts are left alone. Untagged ones (older versions of the tool)
    and an ``.old`` whose output is missing are reported in one warning line each.
    """
    parent = Path(parent)
    removed: list[Path] = []
    try:
        entries = [p for p in parent.iterdir() if p.name.startswith(".") and p.is_dir()]
    except OSError:
        return removed
    for entry in sorted(entries):
        tagged = _TMP.match(entry.name) or _OLD.match(entry.name)
        if tagged is None:
            if _UNTAGGED_TMP.match(entry.name):
                log.warning("%s is a temporary folder left by an interrupted run; delete it", entry)
            continue
        if tagged["host"] != _HOST or _alive(int(tagged["pid"])):
            continue
        if "final" in tagged.groupdict() and not (parent / tagged["final"]).exists():
            log.warning("%s holds the previous %s of an interrupted run; rename it back or delete it",
                        entry, tagged["final"])
            continue
        shutil.rmtree(entry, ignore_errors=True)
        log.warning("removed %s, left by an interrupted run", entry)
        removed.append(entry)
    return removed


def _missing_parents(folder: Path) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    for path in (folder, *folder.parents):
        if path.exists():
            break
        missing.append(path)
    return missing


def check_writable(target: Path) -> None:
    """Raise before any work when ``target`` (a folder or file to be written) cannot be created.

    Creates and removes a probe folder in the nearest existing ancestor, so it answers for the real
    user (root included) and file system (read-only mounts), and leaves nothing behind.

    Raises:
        AnogenError: an ancestor is a file, or the nearest existing folder cannot be written.
    """
    target = Path(target)
    existing = next((p for p in (target, *target.parents) if p.exists()), Path("."))
    if existing.exists() and not existing.is_dir():
        if existing == target:
            return  # an existing output file: the stage itself says whether it may be replaced
        raise AnogenError(f"cannot write {target}: {existing} is a file, not a folder; choose another --out")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".anogen-write-check-", dir=existing))
    except OSError as exc:
        raise AnogenError(f"cannot write to {existing}: {exc.strerror}; choose a writable --out") from exc


def check_output_dir(final: Path, *, force: bool = False) -> None:
    """Before any work: what ``atomic_output_dir(final, force=force)`` would refuse at the end, now.

    Raises:
        AnogenError: ``final`` exists without ``force``, is not ours to replace, or cannot be written.
    """
    final = Path(final)
    if final.exists() and not force:
        raise AnogenError(f"{final} already exists; choose another --out or pass --force")
    if final.exists():
        check_replaceable(final)
    check_writable(final.parent if final.exists() else final)  # the temporary sibling goes beside final


@contextlib.contextmanager
def atomic_output_dir(final: Path, *, force: bool = False, marker: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling folder that is renamed to ``final`` only when the block completes.

    On any exception (Ctrl-C included) the temporary folder is removed, ``final`` is untouched and no
    parent folder made for it is left behind. The temporary name carries host and pid, so the next run
    in the same parent removes what a killed run left (``clean_stale``). The output follows the umask.

    Args:
        final: the folder to create.
        force: replace an existing ``final`` (the old one is removed only after the new one is complete),
            only when it is empty or holds the ``.anogen-data`` marker (``check_replaceable``).
        marker: write the marker into the new folder (dataset versions, never replaced, go without).

    Raises:
        AnogenError: ``final`` exists and ``force`` is False, ``final`` is not ours to replace, or its
            parent cannot be written.
    """
    final = Path(final)
    if final.exists() and not force:
        raise AnogenError(f"{final} already exists; choose another output or pass --force")
    if final.exists():
        check_replaceable(final)
    created = _missing_parents(final.parent)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(final.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{_HOST}-{os.getpid()}-", dir=final.parent))
        follow_umask(tmp)
    except OSError as exc:
        _remove_empty(created)
        raise AnogenError(f"cannot write to {final.parent}: {exc.strerror}; choose a writable --out") from exc
    try:
        if marker:
            write_marker(tmp)
        yield tmp
        if final.exists() and not force:  # appeared while we wrote (a concurrent run): never replace it
            raise AnogenError(f"{final} was created by another run while this one wrote; nothing was replaced")
        if final.exists():
            old = final.with_name(f".{final.name}.old-{_HOST}-{os.getpid()}")
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        raise


def _remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) while they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


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
