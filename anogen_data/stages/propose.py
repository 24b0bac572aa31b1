"""Stage ``propose``: read ``index.jsonl``, write ``layouts.jsonl`` (+ ``config.json``, the placement
sidecar ``placement.json`` and ``layouts_preview.png``).

A layout fixes, before any pixel is made, the good image, defect type, box and mask shape of one
synthetic sample (see ``anogen_data.layout.propose``; boxes feed AnoGen, Gui et al., ECCV 2024).
``placement.json`` records how placement was decided (object or texture, the cue, foreground share,
share of learn-shot defect pixels on the foreground, the contradiction line if any); ``generate``
copies it beside ``records.jsonl`` and the dataset card shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import json

from anogen_data.config import ProposeConfig, write_config
from anogen_data.data.image_io import write_png
from anogen_data.errors import AnogenError
from anogen_data.files import atomic_output_dir, check_output_dir
from anogen_data.layout.preview import render_preview
from anogen_data.layout.propose import LayoutProposer, interleave
from anogen_data.records import IndexEntry, Layout, write_layouts
from anogen_data.stages.export import index_category
from anogen_data.stages.index import load_index_entries

LAYOUTS = "layouts.jsonl"
PLACEMENT = "placement.json"  # the sidecar of layouts.jsonl: how placement was decided
PREVIEW = "layouts_preview.png"


def propose_all(
    config: ProposeConfig, entries: list[IndexEntry], category: str, on_progress: Callable[[int], None] | None = None
) -> tuple[list[Layout], LayoutProposer]:
    """All ``config.n`` layouts of a run, in order (reports each one to ``on_progress``), and the proposer
    that made them (its evidence, densities and foreground caches feed the sidecar and the preview)."""
    proposer = LayoutProposer(entries, foreground=config.foreground, shape=config.shape, placement=config.placement)
    layouts = []
    for number, defect in enumerate(interleave(proposer.defect_counts(config.n, config.defect))):
        layouts.append(proposer.propose(number, defect, config.seed, category))
        if on_progress:
            on_progress(1)
    return layouts, proposer


def make_layouts(
    config: ProposeConfig, entries: list[IndexEntry], category: str, on_progress: Callable[[int], None] | None = None
) -> list[Layout]:
    """All ``config.n`` layouts of a run, in order (reports each one to ``on_progress``)."""
    return propose_all(config, entries, category, on_progress)[0]


def read_placement(folder: Path) -> dict | None:
    """The ``placement.json`` sidecar in ``folder`` (schema ``schemas.Placement``), or None when there is none.

    Raises:
        AnogenError: not JSON, or a field of the wrong type or range (file and field named).
    """
    from anogen_data.schemas import Placement, read_json_model

    path = Path(folder) / PLACEMENT
    if not path.is_file():
        return None
    try:
        stats = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnogenError(f"{path} is not valid JSON ({exc}); re-run `anogen-data propose`") from exc
    if not isinstance(stats, dict):
        raise AnogenError(f"{path} must hold a JSON object; re-run `anogen-data propose`")
    return read_json_model(path, Placement).model_dump(exclude_unset=True)  # as written: the lineage keeps it


def write_placement(folder: Path, layouts: list[Layout], proposer: LayoutProposer) -> dict:
    """Write ``placement.json`` and ``layouts_preview.png`` into ``folder``; returns the stats."""
    stats = proposer.placement_stats()
    (folder / PLACEMENT).write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    preview = render_preview(layouts, stats, proposer.loader, proposer.object_mask, proposer.placement_density)
    write_png(folder / PREVIEW, preview)
    return stats


def run_propose(
    config: ProposeConfig, index_file: Path, out: Path, *, force: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> Path:
    """Write ``out/layouts.jsonl``, ``config.json``, ``placement.json`` and ``layouts_preview.png``
    atomically; returns the layouts path.

    Raises:
        AnogenError: missing/empty index, ``n`` < 1, an unknown defect type, or an existing ``out``.
    """
    check_output_dir(Path(out), force=force)
    entries = load_index_entries(Path(index_file))
    category = index_category(entries, Path(index_file))
    with atomic_output_dir(Path(out), force=force) as tmp:
        layouts, proposer = propose_all(config, entries, category, on_progress)
        write_layouts(tmp / LAYOUTS, layouts)
        write_config(config, tmp)
        write_placement(tmp, layouts, proposer)
    return Path(out) / LAYOUTS
