"""The Hugging Face ``datasets`` folder of a version: embedded parquet shards, built offline.

``hf/data/<split>-NNNNN-of-MMMMM-<sha256[:16]>.parquet`` holds one row per image with the PNG bytes
embedded (``datasets.Image``), so ``datasets.load_dataset("<version>/hf")`` works with the sources deleted.
The content hash in each shard's name is the version's identity for ``datasets``: the card lists the
exact file names, and ``datasets`` keys its cache on the card's ``configs`` and ``dataset_info``, so two
versions with equal split sizes but different images never share a cache entry (``card.py``).
Rows are written with ``datasets.arrow_writer.ParquetWriter`` (the library's own streaming writer) in
small batches, and a shard is closed once it passes ``max_shard_bytes``: memory does not grow with the
number of images.

Features: ``image`` (Image, RGB PNG), ``mask`` (Image, uint8 {0, 255}, 255 = defect; None for good
images), ``label`` (ClassLabel good/anomaly), ``defect_type`` (ClassLabel of the version's defect types
and "good", names sorted: ``ds.features["defect_type"].int2str(row["defect_type"])`` gives the name),
``category``, ``bboxes`` (list of XYWH
per connected instance), ``source`` (real/synthetic), ``backend`` and ``seed`` (None for real images),
``mask_quality`` (pixel/box; None for good images), ``file_name`` (path in the MVTec tree).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from anogen_data.files import sha256_file

LABELS = ["good", "anomaly"]
HASH_CHARS = 16  # hex digits of a shard's sha256 in its name: 64 bits, no accidental collision


def defect_names(defect_types: Iterable[str]) -> list[str]:
    """The ``defect_type`` ClassLabel names: the given types and "good", sorted, each once."""
    return sorted(set(defect_types) | {"good"})


def hf_features(defect_types: Iterable[str] = ()):
    """The ``datasets.Features`` of every split; ``defect_types`` name the ``defect_type`` classes
    (``defect_names``), so every version's features say which defect types it can hold."""
    from datasets import ClassLabel, Features, Image, List, Value

    return Features({
        "image": Image(),
        "mask": Image(),
        "label": ClassLabel(names=LABELS),
        "defect_type": ClassLabel(names=defect_names(defect_types)),
        "category": Value("string"),
        "bboxes": List(List(Value("int32"))),
        "source": Value("string"),
        "backend": Value("string"),
        "seed": Value("int64"),
        "mask_quality": Value("string"),
        "file_name": Value("string"),
    })


class _Shards:
    """The open shard of one split and the names of the closed ones."""

    def __init__(self) -> None:
        self.writer = None
        self.bytes = 0
        self.paths: list[Path] = []
        self.rows = 0


class HfWriter:
    """Streams rows into per-split parquet shards under ``folder`` (the ``hf/data`` folder)."""

    def __init__(self, folder: Path, *, max_shard_bytes: int = 500 << 20, batch_rows: int = 16,
                 defect_types: Iterable[str] = ()):
        self.folder = Path(folder)
        self.max_shard_bytes = max_shard_bytes
        self.batch_rows = batch_rows
        self.features = hf_features(defect_types)
        self.splits: dict[str, _Shards] = {}

    def _open(self, split: str, shards: _Shards) -> None:
        from datasets.arrow_writer import ParquetWriter

        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f".{split}-{len(shards.paths):05d}.parquet.part"
        shards.paths.append(path)
        shards.writer = ParquetWriter(path=str(path), features=self.features, writer_batch_size=self.batch_rows)
        shards.bytes = 0

    def add(self, split: str, row: dict[str, Any], nbytes: int) -> None:
        """Add one row (see the module docstring for the keys; ``defect_type`` as its name, one of the
        writer's ``defect_types`` or "good"); ``nbytes`` is its encoded image size."""
        shards = self.splits.setdefault(split, _Shards())
        if shards.writer is None:
            self._open(split, shards)
        shards.writer.write(self.features.encode_example(row))
        shards.bytes += nbytes
        shards.rows += 1
        if shards.bytes >= self.max_shard_bytes:
            shards.writer.finalize()
            shards.writer = None

    def close(self) -> dict[str, dict[str, Any]]:
        """Finish every shard and give it its final name.

        Returns:
            {split: {"rows", "shards", "bytes", "files"}}; ``files`` are the shard names in order,
            ``<split>-NNNNN-of-MMMMM-<sha256[:16]>.parquet``.
        """
        out = {}
        for split, shards in self.splits.items():
            if shards.writer is not None:
                shards.writer.finalize()
                shards.writer = None
            total, size, files = len(shards.paths), 0, []
            for number, part in enumerate(shards.paths):
                size += part.stat().st_size
                name = f"{split}-{number:05d}-of-{total:05d}-{sha256_file(part)[:HASH_CHARS]}.parquet"
                part.rename(self.folder / name)
                files.append(name)
            out[split] = {"rows": shards.rows, "shards": total, "bytes": size, "files": files}
        return out

    def abort(self) -> None:
        for shards in self.splits.values():
            if shards.writer is not None:
                shards.writer.close()
                shards.writer = None
