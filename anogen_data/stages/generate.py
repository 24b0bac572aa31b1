"""Stage ``generate``: index -> propose -> synthesise -> export, or only synthesise (``--no-export``).

Reads (or builds) the index and the layouts, runs a synthesis backend over them (see
``anogen_data.synthesis.runner``: per-sample seeds, worker processes, resume) and either writes a
dataset version with ``writers.version.write_version`` or leaves ``records.jsonl`` + ``images/`` +
``masks/`` for the DVC ``filter`` and ``export`` stages. Backends: real-defect paste, DRAEM Perlin
(Zavrtanik et al., ICCV 2021), CutPaste (Li et al., CVPR 2021), AnoGen (Gui et al., ECCV 2024) and
DualAnoDiff (Jin et al., CVPR 2025).

With ``--workers W`` (CPU backends) both the layout proposal and the synthesis run in W forked
processes; each sample is seeded on its own, so the layouts and the bytes do not depend on W.

Work happens in a ``*.partial`` folder beside the output; it becomes the output only when complete,
and ``--resume`` continues it after an interruption.

Under ``accelerate launch`` (several processes, e.g. one per GPU) the diffusion backends shard the
layouts (``anogen_data.diffusion.sharding``): process p makes every k-th sample into
``shard_dir(work, p)``; after a barrier the main process merges the shards in layout order and exports
one version (same bytes as one process), the others return None. One process: nothing changes.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path

from anogen_data.config import GenerateConfig, ProposeConfig, config_to_dict
from anogen_data.errors import AnogenError
from anogen_data.files import check_writable, sha256_file, write_marker
from anogen_data.records import IndexEntry, Layout, read_layouts, read_records
from anogen_data.schemas import check_concepts
from anogen_data.stages.index import index_entries, load_index_entries
from anogen_data.layout.propose import LayoutProposer, interleave
from anogen_data.stages.export import index_category
from anogen_data.stages.propose import PLACEMENT, propose_all, read_placement
from anogen_data.diffusion.sharding import merge_shard_outputs, shard, shard_dir
from anogen_data.synthesis import BACKENDS, CPU_BACKENDS, get_backend
from anogen_data.synthesis.base import SynthesisContext
from anogen_data.synthesis.runner import RECORDS, chunk_batches, die_with_parent, one_thread, run_synthesis, worker_pool

RUN_CONFIG = "config.json"
NOT_COMPARED = ("workers",)  # settings that never change the bytes, so a resume may change them

Progress = Callable[[str, int], Callable[[int], None]]  # (description, total) -> advance(k)

_PROPOSER: dict = {}


def choose_backend(config: GenerateConfig, entries: list[IndexEntry]) -> str:
    """The backend name: ``config.backend``, or for "auto" paste when there are learn shots, else perlin.

    Raises:
        AnogenError: unknown backend, or paste for a category without real anomalies.
    """
    has_shots = any(e.role == "learn" and e.mask_path for e in entries)
    name = config.backend if config.backend != "auto" else ("paste" if has_shots else "perlin")
    if name not in BACKENDS:
        raise AnogenError(f"unknown backend '{name}'; valid backends: {', '.join(BACKENDS)}")
    if name == "paste" and not has_shots:
        raise AnogenError(
            f"backend 'paste' transplants real defects, but category '{config.category}' has no real anomalies "
            "(no role 'learn' rows in the index); use --backend perlin (or cutpaste)"
        )
    return name


def index_file_category(index_file: Path) -> str:
    """The category an ``index.jsonl`` holds (``generate --index F`` without ``--category`` takes it)."""
    return index_category(load_index_entries(Path(index_file)), Path(index_file))


def load_entries(config: GenerateConfig, index_file: Path | None) -> list[IndexEntry]:
    """The index from ``index_file``, or built now from ``config.index`` (as the ``index`` stage would).

    Raises:
        AnogenError: ``index_file`` holds another category than ``config.category``.
    """
    if index_file is None:
        return index_entries(config.index)
    entries = load_index_entries(Path(index_file))
    held = index_category(entries, Path(index_file))
    if held != config.category:
        raise AnogenError(f"--category is '{config.category}' but {index_file} indexes category '{held}'; "
                          "drop --category (it comes from --index) or pass the index of that category")
    return entries


def select_layouts(layouts: list[Layout], config: GenerateConfig, source: str) -> list[Layout]:
    """The first ``config.n`` layouts (of ``config.defect`` when set), as the staged ``generate`` takes them."""
    if config.defect is not None:
        layouts = [x for x in layouts if x.defect_type == config.defect]
    if len(layouts) < config.n:
        what = f" of defect type '{config.defect}'" if config.defect else ""
        raise AnogenError(f"{source} holds {len(layouts)} layouts{what} but --n is {config.n}; propose more (--n)")
    return layouts[: config.n]


def count_layouts(layouts_file: Path, defect: str | None = None) -> int:
    """How many layouts of ``layouts_file`` ``generate`` would use (those of ``defect`` when given)."""
    return sum(1 for x in read_layouts(Path(layouts_file)) if defect is None or x.defect_type == defect)


def load_layouts(config: GenerateConfig, backend: str, entries: list[IndexEntry], layouts_file: Path | None,
                 progress: Progress | None) -> tuple[list[Layout], dict | None]:
    """The first ``config.n`` layouts of ``layouts_file``, or of ``config.propose`` proposed now, and the
    placement stats (the layouts' ``placement.json`` sidecar; None when a layouts file has none).

    Proposing here makes ``config.propose.n`` layouts and takes the first n, exactly as the staged run
    (``propose`` then ``generate --layouts``) does. One exception: the perlin backend with
    ``propose.shape: auto`` proposes Perlin shapes (DRAEM's masks) where the propose stage alone would
    use the real learn-shot shapes.
    """
    if config.n < 1:
        raise AnogenError(f"--n must be at least 1 (got {config.n})")
    if layouts_file is not None:
        layouts = select_layouts(read_layouts(Path(layouts_file), index=entries), config, str(layouts_file))
        return layouts, read_placement(Path(layouts_file).parent)
    propose = config.propose
    if propose.shape == "auto" and backend == "perlin":
        propose = dataclasses.replace(propose, shape="perlin")
    advance = progress("propose", propose.n) if progress else None
    category = entries[0].category or config.category
    if config.workers > 1 and backend in CPU_BACKENDS and "fork" in multiprocessing.get_all_start_methods():
        stats: dict = {}
        layouts = propose_in_workers(propose, entries, category, config.workers, advance, stats=stats)
    else:
        layouts, proposer = propose_all(propose, entries, category, advance)
        stats = proposer.placement_stats()
    return select_layouts(layouts, config, "the proposal (propose.n)"), stats


def _init_proposer(proposer: LayoutProposer, parent_pid: int) -> None:
    die_with_parent(parent_pid)
    one_thread()
    _PROPOSER["proposer"] = proposer


def _propose_task(jobs: list[tuple[int, str]], seed: int, category: str) -> list[Layout]:
    return [_PROPOSER["proposer"].propose(number, defect, seed, category) for number, defect in jobs]


def propose_in_workers(config: ProposeConfig, entries: list[IndexEntry], category: str, workers: int,
                       on_progress: Callable[[int], None] | None = None, stats: dict | None = None) -> list[Layout]:
    """``make_layouts``'s very layouts, proposed by ``workers`` forked processes (each with its own image
    caches); ``stats``, when given, is filled with the proposer's ``placement_stats()``.

    Every layout depends only on (seed, number, defect type), so splitting the numbers between
    processes changes nothing; the parent only collects the results in order.
    """
    proposer = LayoutProposer(entries, foreground=config.foreground, shape=config.shape, placement=config.placement)
    jobs = list(enumerate(interleave(proposer.defect_counts(config.n, config.defect))))
    per_task = chunk_batches(len(jobs), 1, workers)
    tasks = [jobs[start:start + per_task] for start in range(0, len(jobs), per_task)]
    layouts: list[Layout] = []
    proposer.prepare()  # fit the background model and weigh the evidence once, pre-fork (no torch in children)
    # forked: the proposer (entries, box statistics, the fitted model) is inherited, not pickled
    with worker_pool(workers, _init_proposer, (proposer, os.getpid())) as pool:
        for done in pool.map(partial(_propose_task, seed=config.seed, category=category), tasks):
            layouts.extend(done)
            if on_progress:
                on_progress(len(done))
    if stats is not None:
        stats.update(proposer.placement_stats())
    return layouts


def make_context(config: GenerateConfig, backend: str, entries: list[IndexEntry], concepts: Path | None) -> SynthesisContext:
    """What the backend may see: learn shots, good train images, concepts, model and device settings."""
    options = (config.options or {}).get(backend, {})
    return SynthesisContext(
        learn_shots=tuple(e for e in entries if e.role == "learn" and e.mask_path),
        good_paths=tuple(e.path for e in entries if e.role == "train" and e.label == "good"),
        concepts_dir=None if concepts is None else str(concepts), model=config.model, device=config.device,
        dtype=config.dtype, batch_size=config.batch_size, options=dict(options),
    )


def used_config(config: GenerateConfig, index_file: Path | None, layouts_file: Path | None, no_export: bool) -> dict:
    """``config`` as a dict without the nested sections this run does not use (given files replace them)."""
    unused = {"index": index_file is not None, "propose": layouts_file is not None, "export": no_export}
    return {k: v for k, v in config_to_dict(config).items() if not unused.get(k, False)}


def _prepare_work(work: Path, run_config: dict, resume: bool) -> None:
    """Create ``work`` (or check that a resumed one was made with the same settings)."""
    saved = work / RUN_CONFIG
    if work.exists() and not resume:
        raise AnogenError(f"{work} holds an interrupted run; pass --resume to continue it or delete the folder")
    if work.exists() and saved.is_file():
        before = json.loads(saved.read_text(encoding="utf-8"))
        changed = sorted(k for k in set(before) | set(run_config) if k not in NOT_COMPARED and before.get(k) != run_config.get(k))
        if changed:
            raise AnogenError(f"{work} was started with different settings ({', '.join(changed)}); resume with the same ones")
    work.mkdir(parents=True, exist_ok=True)
    write_marker(work)  # --no-export turns work into the output folder: --force of other stages may replace it
    saved.write_text(json.dumps(run_config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def synthesise_shard(
    backend: str, context: SynthesisContext, layouts: list[Layout], work: Path, process_index: int = 0,
    num_processes: int = 1, *, workers: int = 1, resume: bool = False, on_progress: Callable[[int], None] | None = None,
) -> Path:
    """Process ``process_index`` of ``num_processes`` makes its every-k-th layouts; returns the folder it filled.

    One process fills ``work`` itself; with several, process p fills ``shard_dir(work, p)`` and the main
    process later merges them with ``merge_shard_outputs(work, layout_ids, num_processes)``.
    """
    folder = Path(work) if num_processes == 1 else shard_dir(work, process_index)
    mine = layouts if num_processes == 1 else shard(layouts, process_index, num_processes)
    run_synthesis(backend, context, mine, folder, workers=workers, resume=resume, on_progress=on_progress)
    return folder


def _process_state(backend: str):
    """accelerate's ``PartialState`` for diffusion backends run by ``accelerate launch``; None otherwise."""
    if backend in CPU_BACKENDS:
        return None
    from accelerate import PartialState

    state = PartialState()
    return state if state.num_processes > 1 else None


def run_generate(
    config: GenerateConfig, *, index_file: Path | None = None, layouts_file: Path | None = None,
    concepts: Path | None = None, no_export: bool = False, resume: bool = False, progress: Progress | None = None,
) -> Path | None:
    """Run the stage; returns the dataset version folder, or the synthesis folder with ``no_export``.

    Under ``accelerate launch`` with several processes only the main process returns the folder; the
    others return None once their shard is written.

    Raises:
        AnogenError: bad input (unknown backend or defect type, n < 1, paste without real anomalies,
            an existing output, a resumed run with other settings). Nothing final is written then.
    """
    out = Path(config.out)
    name = config.name or config.category
    if no_export and out.exists():
        raise AnogenError(f"{out} already exists; choose another --out (generate never overwrites)")
    check_writable(out)  # before index, layouts and synthesis, not after
    entries = load_entries(config, index_file)
    backend = choose_backend(config, entries)
    get_backend(backend)  # import errors surface before any work
    if concepts is not None:
        check_concepts(Path(concepts))  # a bad concept.json fails now, not after the work folder exists
    state = _process_state(backend)
    rank, world = (state.process_index, state.num_processes) if state else (0, 1)
    work = out.with_name(out.name + ".partial") if no_export else out / name / ".generate.partial"
    if rank == 0 and work.exists() and not resume:  # a killed run's folder: say so before proposing layouts
        raise AnogenError(f"{work} holds an interrupted run; pass --resume to continue it or delete the folder")
    layouts, placement = load_layouts(config, backend, entries, layouts_file, progress if rank == 0 else None)
    run_config = {**used_config(config, index_file, layouts_file, no_export), "backend": backend,
                  "index_file": None if index_file is None else str(index_file),
                  "layouts_file": None if layouts_file is None else str(layouts_file)}
    if rank == 0:
        _prepare_work(work, run_config, resume)
        if placement:  # how placement was decided travels beside records.jsonl into the dataset card
            (work / PLACEMENT).write_text(json.dumps(placement, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if state:
        state.wait_for_everyone()  # the work folder exists (and was checked) before any shard is written
    advance = progress(f"{backend}", len(shard(layouts, rank, world))) if progress and rank == 0 else None
    context = make_context(config, backend, entries, concepts)
    synthesise_shard(backend, context, layouts, work, rank, world, workers=config.workers, resume=resume, on_progress=advance)
    if state:
        state.wait_for_everyone()
        if rank != 0:
            return None
        merge_shard_outputs(work, [layout.id for layout in layouts], world)
    if no_export:
        work.rename(out)
        return out
    return _export(config, name, entries, work, index_file, concepts, run_config)


def _export(config: GenerateConfig, name: str, entries: list[IndexEntry], work: Path, index_file: Path | None,
            concepts: Path | None, run_config: dict) -> Path:
    from anogen_data.writers.version import write_version

    lineage = {"generate_backend": run_config["backend"], "concepts_dir": None if concepts is None else str(concepts)}
    if (placement := read_placement(work)) is not None:
        lineage["placement"] = placement
    if index_file is not None:
        lineage.update(index_file=str(index_file), index_sha256=sha256_file(index_file))
    nested = ("index", "propose", "export")
    configs = {k: run_config[k] for k in nested[:2] if k in run_config}
    configs["generate"] = {k: v for k, v in run_config.items() if k not in NOT_COMPARED + nested}
    version = write_version(
        Path(config.out), name, category=entries[0].category or config.category, index=entries,
        records=read_records(work / RECORDS, index=entries), records_dir=work, lineage=lineage, configs=configs,
        config=config.export,
    )
    shutil.rmtree(work, ignore_errors=True)
    return version
