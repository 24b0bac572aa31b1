"""Fetch MVTec AD (Bergmann et al., CVPR 2019 / IJCV 2021) on first use, and the data root it goes to.

The archive and its SHA-256 are the ones anomalib downloads (``DOWNLOAD_INFO`` in anomalib's
``src/anomalib/data/datamodules/image/mvtecad.py``). Where we differ from anomalib:

- anomalib knows only the whole-dataset archive (all 15 categories, ~4.9 GB) and extracts all of it;
  we extract only the asked-for category and keep the verified archive in the cache
  (``<cache>/downloads``), so a second category costs no second download. MVTec publishes per-category
  archives too, but no checksum of them in a source we can verify, and an unverified archive is never
  extracted here.
- The transfer goes to ``<archive>.part`` and resumes with an HTTP ``Range`` request after an
  interrupt (a server that ignores ``Range`` restarts it from byte 0); the file is renamed to its
  final name only after its checksum matches. A bad checksum deletes the part file.
- Extraction refuses the whole archive when any member would land outside the target folder
  (absolute paths, ``..``, links out: ``tarfile``'s ``"data"`` filter checks every member, not only the
  category's), deletes such an archive, and writes ``ROOT/<category>`` through a hidden sibling folder
  renamed into place only at the end, so an error or Ctrl-C leaves no half category.

Only HTTPS URLs are fetched, except plain HTTP to 127.0.0.1/localhost (the tests' local server).
The source table can be replaced for tests with ``ANOGEN_MVTEC_URL`` / ``ANOGEN_MVTEC_SHA256``.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from anogen_data.data.demo import default_cache
from anogen_data.errors import AnogenError

log = logging.getLogger(__name__)

LICENSE_LINE = (
    "MVTec AD is licensed CC BY-NC-SA 4.0 (https://creativecommons.org/licenses/by-nc-sa/4.0/): "
    "non-commercial use only, attribution required, derivatives share alike."
)

# The 15 categories of MVTec AD (folder names inside the archive).
MVTEC_CATEGORIES = (
    "bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut", "pill", "screw",
    "tile", "toothbrush", "transistor", "wood", "zipper",
)

CHUNK = 1 << 20  # bytes per read: progress updates often enough, hashing stays cheap
TIMEOUT_S = 60  # per socket operation; a stalled server becomes an interrupt that the next run resumes


class UnsafeArchive(AnogenError):
    """An archive member would land outside the target folder."""


@dataclass(frozen=True)
class DownloadInfo:
    """One archive: where it is, its SHA-256 (hex), and its file name in the download cache."""

    url: str
    sha256: str
    filename: str


# anomalib's DOWNLOAD_INFO for MVTec AD (name "mvtecad"): the official archive and its sha256.
MVTEC_AD = DownloadInfo(
    url="https://www.mydrive.ch/shares/38536/3830184030e49fe74747669442f0f283/"
    "download/420938113-1629960298/mvtec_anomaly_detection.tar.xz",
    sha256="cf4313b13603bec67abb49ca959488f7eedce2a9f7795ec54446c649ac98cd3d",
    filename="mvtec_anomaly_detection.tar.xz",
)


def default_data_root() -> Path:
    """The data root when none is given: ``$ANOGEN_DATA``, else ``<cache>/data`` (where ``download`` writes)."""
    return Path(os.environ.get("ANOGEN_DATA") or default_cache() / "data").expanduser()


def mvtec_source() -> DownloadInfo:
    """anomalib's MVTec AD archive, or the one named by ``ANOGEN_MVTEC_URL`` + ``ANOGEN_MVTEC_SHA256`` (tests)."""
    url = os.environ.get("ANOGEN_MVTEC_URL")
    if not url:
        return MVTEC_AD
    sha = os.environ.get("ANOGEN_MVTEC_SHA256", "")
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha.lower()):
        raise AnogenError("ANOGEN_MVTEC_URL is set, so ANOGEN_MVTEC_SHA256 must be the archive's 64-hex-digit sha256")
    name = Path(urllib.parse.urlparse(url).path).name or "mvtec.tar"
    return DownloadInfo(url=url, sha256=sha.lower(), filename=name)


def download_hint(category: str, root: Path) -> str:
    """The sentence that tells how to get ``category`` under ``root`` (never downloads anything)."""
    if category in MVTEC_CATEGORIES:
        return f"download it with `anogen-data download mvtec --category {category} --data {root}`"
    return f"put it there in MVTec AD layout ({category}/train/good, test/<defect>, ground_truth/<defect>)"


def _check_url(url: str) -> None:
    parsed = urllib.parse.urlparse(url)
    local = parsed.hostname in ("127.0.0.1", "localhost", "::1")
    if parsed.scheme != "https" and not (parsed.scheme == "http" and local):
        raise AnogenError(f"refusing to download {url}: only https:// URLs are fetched")


Progress = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)


def fetch(info: DownloadInfo, folder: Path, on_progress: Progress | None = None) -> Path:
    """Download ``info`` into ``folder`` (resuming a ``.part`` file), verify its sha256, return the archive.

    An archive already in ``folder`` under its final name was verified when it was renamed there and is
    reused as is.

    Raises:
        AnogenError: not HTTPS, the server refused, the transfer broke off (the ``.part`` file stays for the
            next run to resume), or the checksum differs (the ``.part`` file is deleted).
    """
    _check_url(info.url)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / info.filename
    if final.is_file():
        log.info("reusing the verified archive %s", final)
        return final
    part = folder / (info.filename + ".part")
    have = part.stat().st_size if part.is_file() else 0
    log.info("fetching %s to %s%s", info.url, part, f" (resuming at byte {have})" if have else "")
    request = urllib.request.Request(info.url, headers={"User-Agent": "anogen-data"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)  # noqa: S310 (scheme checked above)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part file already holds the whole archive
            return _verify_and_rename(part, final, info)
        raise AnogenError(f"{info.url}: the server answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AnogenError(f"cannot reach {info.url}: {reason}") from None
    with response:
        if have and (response.status != 206 or not _range_starts_at(response, have)):
            have = 0  # Range ignored (200) or answered from elsewhere: start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        received = have
        try:
            with open(part, "ab" if have else "wb") as out:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    if on_progress:
                        on_progress(received, total)
        except (OSError, http.client.HTTPException) as exc:  # reset, timeout, IncompleteRead
            raise _interrupted(info, part, received, total, exc) from None
    if total is not None and received < total:
        raise _interrupted(info, part, received, total, None)
    return _verify_and_rename(part, final, info)


def _range_starts_at(response, offset: int) -> bool:
    """True when a 206 answer's ``Content-Range: bytes START-END/TOTAL`` starts at ``offset``."""
    value = response.headers.get("Content-Range", "")
    start = value.removeprefix("bytes ").split("-", 1)[0]
    return start.isdigit() and int(start) == offset


def _interrupted(info: DownloadInfo, part: Path, received: int, total: int | None, exc) -> AnogenError:
    of = f" of {total}" if total else ""
    return AnogenError(
        f"download of {info.url} broke off after {received}{of} bytes ({type(exc).__name__ if exc else 'short'}); "
        f"{part} was kept: run the same command again to resume"
    )


def _verify_and_rename(part: Path, final: Path, info: DownloadInfo) -> Path:
    digest = hashlib.sha256()
    with open(part, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    if digest.hexdigest() != info.sha256:
        part.unlink()
        raise AnogenError(
            f"{info.url}: sha256 {digest.hexdigest()} differs from the expected {info.sha256}; the download was "
            "deleted (run again to fetch it anew)"
        )
    part.replace(final)
    log.info("sha256 verified: %s", final)
    return final


def extract_category(archive: Path, category: str, root: Path) -> Path:
    """Extract the members under ``<category>/`` of ``archive`` into ``root/<category>``, all or nothing.

    Every member of the archive (not only the category's) must pass ``tarfile``'s ``"data"`` filter: one
    member escaping the target (``../x``, an absolute path, a link pointing out) refuses the archive.

    Raises:
        AnogenError: the archive is unreadable, holds an unsafe member, or has no ``<category>/`` folder.
    """
    target = root / category
    staging = root / f".{category}.download-partial"
    if staging.exists():
        shutil.rmtree(staging)  # a previous run's leftovers: never trusted
    staging.mkdir(parents=True)
    prefix = category + "/"
    found = False
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                try:
                    if member.name.startswith(("/", "\\")):  # the data filter would strip it; we refuse it
                        raise tarfile.AbsolutePathError(member)
                    safe = tarfile.data_filter(member, str(staging))
                except tarfile.FilterError as exc:
                    raise UnsafeArchive(f"{archive}: member '{member.name}' is unsafe ({exc}); nothing was extracted") from None
                name = member.name.removeprefix("./")
                if name == category or name.startswith(prefix):
                    tar.extract(safe, staging, filter="data")
                    found = True
        if not found:
            raise AnogenError(f"{archive} holds no '{category}/' folder; is '{category}' an MVTec AD category?")
        staging.joinpath(category).rename(target)
        log.info("extracted %s/ of %s into %s", category, archive, root)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise AnogenError(f"cannot extract {archive}: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def check_category(category: str) -> None:
    """Refuse a name that is not one of MVTec AD's 15 categories (one line listing them)."""
    if category not in MVTEC_CATEGORIES:
        raise AnogenError(f"'{category}' is not an MVTec AD category; choose one of {', '.join(MVTEC_CATEGORIES)}")


def download_mvtec(
    category: str, root: Path, *, cache: Path | None = None, on_progress: Progress | None = None,
    source: DownloadInfo | None = None,
) -> Path:
    """Make ``root/<category>`` hold MVTec AD's ``category``: fetch (or reuse) the verified archive, extract it.

    Returns:
        ``root/<category>``. An existing one is left alone (returned as is).
    """
    check_category(category)
    target = root / category
    if target.exists():
        return target
    info = source or mvtec_source()
    archive = fetch(info, (cache or default_cache()) / "downloads", on_progress)
    root.mkdir(parents=True, exist_ok=True)
    try:
        return extract_category(archive, category, root)
    except UnsafeArchive as exc:
        archive.unlink()  # never reused: the next run fetches anew
        raise AnogenError(f"{exc}; the archive was deleted") from None
