"""Path containment: every name read from the command line or from a file, checked once where it is read.

Two rules, used by the CLI options and by the schemas of ``anogen_data.schemas``:

* a **plain name** (category, defect type, dataset name, sample id, a file name in a concepts folder) is
  one path component: not empty, no ``/`` or ``\\``, no ``..``, not absolute, no NUL or other control
  character. Such a name can be joined to any folder without leaving it.
* a **file path** read from a file must resolve inside the folder it belongs to (``inside``): a record's
  ``image_path`` inside the records folder, a COCO ``file_name`` inside the version, an index row's image
  inside ``<root>/<category>/<split>/<defect_type>/`` (``index_image_parts``).

The released AnoGen / DualAnoDiff scripts read trusted local folders only; we read files a user may
have edited or downloaded, so every name is treated as untrusted.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from anogen_data.errors import AnogenError


def plain_name_problem(value: object) -> str | None:
    """Why ``value`` is not a plain name (one path component), or None when it is one."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not value:
        return "must not be empty"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "must not contain NUL or control characters"
    if ".." in value:
        return "must not contain '..'"
    if "/" in value or "\\" in value:
        return "must be a plain name without '/' or '\\'"
    if value == "." or PureWindowsPath(value).drive:
        return "must be a plain name, not a path"
    return None


def check_plain_name(value: str, what: str) -> str:
    """Return ``value`` when it is a plain name, else raise naming ``what`` (e.g. "--name", "index.jsonl:3: category").

    Raises:
        AnogenError: ``value`` is empty, holds a separator, ``..``, NUL, or is absolute.
    """
    problem = plain_name_problem(value)
    if problem is not None:
        raise AnogenError(f"{what}: {problem} (got {value!r})")  # repr: a name with a newline stays one line
    return value


def relative_problem(value: str) -> str | None:
    """Why ``value`` is not a safe relative posix path (no absolute path, no ``..`` part), or None."""
    if not isinstance(value, str) or not value:
        return "must be a non-empty relative path"
    if any(ord(ch) < 32 for ch in value) or "\\" in value:
        return "must not contain NUL, control characters or '\\'"
    pure = PurePosixPath(value)
    if pure.is_absolute() or PureWindowsPath(value).drive:
        return "must be relative, not absolute"
    if ".." in pure.parts:
        return "must not contain '..'"
    return None


def inside(root: Path, relative: str, what: str) -> Path:
    """``root / relative``, resolved, when it stays inside ``root`` (symlinks followed); else raise.

    Raises:
        AnogenError: ``relative`` is absolute, holds ``..`` or resolves outside ``root``.
    """
    problem = relative_problem(relative)
    if problem is not None:
        raise AnogenError(f"{what}: {problem} (got {relative!r})")
    base = Path(root).resolve()
    path = (base / relative).resolve()
    if path != base and base not in path.parents:
        raise AnogenError(f"{what}: resolves to {path}, outside {base} (got {relative!r})")
    return path


def index_image_parts(path: str) -> tuple[Path, str, str, str]:
    """(category root, category, split folder, defect folder) of an index image path.

    Index images live at ``<root>/<category>/<split>/<defect>/<file>`` and masks at
    ``<root>/<category>/ground_truth/<defect>/<file>`` (MVTec AD); the path is normalised lexically
    (``..`` removed) before its parts are read, so ``root/demo/train/good/../../../../etc/x`` has the
    parts of ``/etc/x``.
    """
    norm = Path(os.path.normpath(path))
    parts = norm.parts
    if len(parts) < 5:
        return Path(norm.anchor), "", "", ""
    return norm.parents[2], parts[-4], parts[-3], parts[-2]
