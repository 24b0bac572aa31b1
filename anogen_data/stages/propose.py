"""Stage ``propose``: read ``index.jsonl``, write ``layouts.jsonl`` (+ ``config.json``).

A layout fixes, before any pixel is made, the good image, defect type, box and mask shape of one
synthetic sample (see ``anogen_data.layout.propose``; boxes feed AnoGen, Gui et al., ECCV 2024).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from anogen_data.config import ProposeConfig, write_config
from anogen_data.files import atomic_output_dir, check_output_dir
from anogen_data.layout.propose import propose_layouts
from anogen_data.records import IndexEntry, Layout, write_layouts
from anogen_data.stages.export import index_category
from anogen_data.stages.index import load_index_entries

LAYOUTS = "layouts.jsonl"


def make_layouts(
    config: ProposeConfig, entries: list[IndexEntry], category: str, on_progress: Callable[[int], None] | None = None
) -> list[Layout]:
    """All ``config.n`` layouts of a run, in order (reports each one to ``on_progress``)."""
    layouts = []
    for layout in propose_layouts(
        entries, config.n, category=category, seed=config.seed, defect=config.defect,
        foreground=config.foreground, shape=config.shape, placement=config.placement,
    ):
        layouts.append(layout)
        if on_progress:
            on_progress(1)
    return layouts


def run_propose(
    config: ProposeConfig, index_file: Path, out: Path, *, force: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> Path:
    """Write ``out/layouts.jsonl`` and ``out/config.json`` atomically; returns the layouts path.

    Raises:
        AnogenError: missing/empty index, ``n`` < 1, an unknown defect type, or an existing ``out``.
    """
    check_output_dir(Path(out), force=force)
    entries = load_index_entries(Path(index_file))
    category = index_category(entries, Path(index_file))
    with atomic_output_dir(Path(out), force=force) as tmp:
        layouts = make_layouts(config, entries, category, on_progress)
        write_layouts(tmp / LAYOUTS, layouts)
        write_config(config, tmp)
    return Path(out) / LAYOUTS
