"""Issue #4: two versions whose card metadata is otherwise identical (same split sizes in rows AND bytes)
must not share a `datasets` cache entry: loading the second with the first's `cache_dir` returns the
second's images. Before the shard names carried their sha256 (listed exactly in the card's `configs`),
`datasets` hashed only the card, found the first version's Arrow cache and returned its rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from anogen_data.data.image_io import read_image, write_png
from anogen_data.writers.version import write_version


def _version(inputs, out: Path, seed: int) -> Path:
    """A real-images-only version of ``inputs`` after every source image is redrawn as noise from ``seed``
    (uniform noise does not compress, so PNG and parquet sizes do not depend on the seed)."""
    rng = np.random.default_rng(seed)
    for entry in inputs.index:
        write_png(Path(entry.path), rng.integers(0, 256, (entry.height, entry.width, 3), np.uint8))
    return write_version(out, "widget", category="widget", index=inputs.index)


def _meta(version: Path) -> dict:
    return yaml.safe_load((version / "hf" / "README.md").read_text().split("---\n")[1])


def test_versions_with_equal_split_sizes_load_their_own_rows_from_one_cache(inputs, tmp_path):
    from datasets import load_dataset

    first, second = _version(inputs, tmp_path / "a", seed=5), _version(inputs, tmp_path / "b", seed=6)
    # the collision case: everything dataset_info says is equal, only the pixels differ
    assert _meta(first)["dataset_info"] == _meta(second)["dataset_info"]
    cache = str(tmp_path / "cache")
    loaded = {v: load_dataset(str(v / "hf"), cache_dir=cache) for v in (first, second)}
    for version, other in ((first, second), (second, first)):
        for split in ("train", "test"):
            rows = loaded[version][split]
            assert len(rows) > 0
            for row in rows:
                pixels = np.asarray(row["image"].convert("RGB"))
                np.testing.assert_array_equal(pixels, read_image(version / row["file_name"]))
                assert not np.array_equal(pixels, read_image(other / row["file_name"]))


def test_card_lists_each_shard_by_its_content_hash(inputs, tmp_path):
    from anogen_data.files import sha256_file

    version = _version(inputs, tmp_path / "out", seed=5)
    files = {f["split"]: f["path"] for f in _meta(version)["configs"][0]["data_files"]}
    on_disk = sorted(p.name for p in (version / "hf" / "data").iterdir())
    assert sorted(Path(p).name for paths in files.values() for p in paths) == on_disk
    for split, paths in files.items():
        for path in paths:
            name = Path(path).name
            assert name.startswith(f"{split}-00000-of-00001-")
            assert name.removesuffix(".parquet").rsplit("-", 1)[1] == sha256_file(version / "hf" / path)[:16]
