"""Stage ``filter``: score every synthetic record and write keep/drop with reasons.

Reads ``records.jsonl`` (``generate``; image/mask paths relative to its folder) and ``index.jsonl``
(the real learn shots, and the good images for the foreground estimate); writes ``scores.jsonl`` (one
row per record: ``{"id", "keep", "reasons", "scores"}``), ``filter_stats.json`` (pass rates per filter)
and ``config.json``. Filters: ``anogen_data.filters`` (quality control of AnoGen, Gui et al., ECCV 2024,
DualAnoDiff, Jin et al., CVPR 2025, and CPU backend output).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from anogen_data.config import FilterConfig, write_config
from anogen_data.data.image_io import read_image
from anogen_data.errors import AnogenError
from anogen_data.files import atomic_output_dir, check_output_dir, write_json, write_jsonl
from anogen_data.filters.rates import pass_rates
from anogen_data.filters.runner import FilterStack, decide, load_sample, resolve
from anogen_data.records import IndexEntry, SynthRecord, read_records
from anogen_data.stages.index import load_index_entries

FIT_IMAGES = 16  # good images the background model is fitted on (plenty for a median border colour)


def foreground_lookup(source_paths: Sequence[str], base: Path, mode: str) -> Callable[[str], np.ndarray | None]:
    """source path -> foreground mask uint8 (H, W) (255 = object), cached; None for mode "full" or textures."""
    from anogen_data.layout.foreground import fit_background, foreground_mask

    if mode == "full":
        return lambda path: None
    unique = sorted(set(source_paths))
    model = fit_background(read_image(resolve(p, base)) for p in unique[:FIT_IMAGES])
    if model.texture:
        return lambda path: None
    cache: dict[str, np.ndarray] = {}

    def lookup(path: str) -> np.ndarray:
        if path not in cache:
            cache[path] = foreground_mask(read_image(resolve(path, base)), model, mode)
        return cache[path]

    return lookup


def _batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def score_records(records: Sequence[SynthRecord], records_dir: Path, entries: Sequence[IndexEntry],
                  config: FilterConfig, *, progress: bool = True) -> list[dict]:
    """scores.jsonl rows of ``records`` in their order (see ``filters.runner.decide``)."""
    from rich.progress import Progress

    learn = [e for e in entries if e.role == "learn"]
    foreground = foreground_lookup([r.source_path for r in records], records_dir, config.foreground)
    stack = FilterStack(config, learn, foreground)
    scores: list[dict[str, float]] = []
    embeddings = []
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("filter", total=len(records))
        for batch in _batches(records, config.batch_size):
            rows, emb = stack.score_batch([load_sample(r, records_dir) for r in batch])
            scores += rows
            embeddings.append(emb)
            bar.advance(task, len(batch))
    return decide([r.id for r in records], scores, np.concatenate(embeddings), config)


def run_filter(config: FilterConfig, records_file: Path, index_file: Path, out: Path, *,
               force: bool = False, progress: bool = True) -> dict:
    """Score ``records_file`` and write ``out/{scores.jsonl,filter_stats.json,config.json}`` atomically.

    Returns:
        the filter_stats.json content.

    Raises:
        AnogenError: missing/empty inputs, ids repeated, an image that does not match its source.
    """
    records_file, out = Path(records_file), Path(out)
    check_output_dir(out, force=force)  # before minutes of scoring, not after
    entries = load_index_entries(Path(index_file))
    records = read_records(records_file, index=entries)
    if not records:
        raise AnogenError(f"{records_file} holds no records; run `anogen-data generate --no-export` first")
    rows = score_records(records, records_file.parent, entries, config, progress=progress)
    stats = pass_rates(rows)
    with atomic_output_dir(out, force=force) as tmp:
        write_jsonl(tmp / "scores.jsonl", rows)
        write_json(tmp / "filter_stats.json", stats)
        write_config(config, tmp)
    return stats
