"""Stage ``index``: read a real category and write its few-shot split (``index.jsonl`` + ``config.json``).

The split follows the protocols of AnomalyDiffusion/DualAnoDiff (``first-third``) and AnoGen
(``random-k``, Gui et al., ECCV 2024); see ``anogen_data.data.split``.
"""

from __future__ import annotations

from pathlib import Path

from anogen_data.config import IndexConfig, write_config
from anogen_data.data.mvtec import check_category_name, load_category
from anogen_data.data.split import build_index
from anogen_data.errors import AnogenError
from anogen_data.files import atomic_output_dir, check_output_dir
from anogen_data.records import IndexEntry, read_index, write_index

DEMO = "demo"


def resolve_data_root(config: IndexConfig) -> Path:
    """The data root for ``config``.

    ``data`` "demo" (the default) means: the rendered demo root for ``--category demo`` (or one of its
    variants ``demo-dark``, ``demo-light``, ``demo-texture``), else the data root set once
    (``$ANOGEN_DATA``, or ``<cache>/data`` where ``anogen-data download`` writes). A missing category says
    how to get it; nothing is ever downloaded here.
    """
    from anogen_data.data.download import default_data_root, download_hint

    if str(config.data) == DEMO:
        from anogen_data.data.demo_variants import VARIANTS

        if config.category == DEMO or config.category in VARIANTS:
            from anogen_data.data.demo import demo_root

            return demo_root(category=config.category)
        root = default_data_root()
        if not (root / config.category).is_dir():
            raise AnogenError(
                f"category '{config.category}' is not under the data root {root} (set ANOGEN_DATA or data: in "
                f"params.yaml, or pass --data); {download_hint(config.category, root)}"
            )
        return root
    return Path(config.data).expanduser()


def index_entries(config: IndexConfig) -> list[IndexEntry]:
    """Read and validate the category of ``config`` and split it; writes nothing."""
    check_category_name(config.category)
    samples = load_category(resolve_data_root(config), config.category)
    return build_index(
        samples, category=config.category, protocol=config.protocol, shots=config.shots, seed=config.seed
    )


def _check_out(out: Path, force: bool) -> bool:
    """Refuse an output folder that already holds an index unless ``force``; returns the force to use."""
    if (out / "index.jsonl").exists() and not force:
        raise AnogenError(f"{out / 'index.jsonl'} already exists; pass --force to replace it or choose another --out")
    if out.exists() and not out.is_dir():
        raise AnogenError(f"{out} is a file, not a folder; choose another --out")
    empty = out.is_dir() and not any(out.iterdir())
    if out.is_dir() and not empty and not force:
        raise AnogenError(f"{out} already exists and is not empty; pass --force to replace it or choose another --out")
    return force or empty


def run_index(config: IndexConfig, out: Path, force: bool = False) -> Path:
    """Validate the category, split it and write ``out/index.jsonl`` and ``out/config.json`` atomically.

    Nothing is written when the input is bad (the AnogenError names the file and what to do).

    Returns:
        The path of ``index.jsonl``.
    """
    out = Path(out)
    force = _check_out(out, force)
    check_output_dir(out, force=force)
    entries = index_entries(config)
    with atomic_output_dir(out, force=force) as tmp:
        write_index(tmp / "index.jsonl", entries)
        write_config(config, tmp)
    return out / "index.jsonl"


def load_index_entries(path: Path) -> list[IndexEntry]:
    """Read an ``index.jsonl`` written by ``run_index``, with a hint when it is missing or empty."""
    path = Path(path)
    if not path.is_file():
        raise AnogenError(f"{path} does not exist; write it with `anogen-data index --out {path.parent}`")
    entries = read_index(path)
    if not entries:
        raise AnogenError(f"{path} holds no entries; re-run `anogen-data index` for this category")
    return entries
