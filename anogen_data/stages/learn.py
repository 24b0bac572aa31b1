"""Stage ``learn`` (``anogen-data concepts learn``): one concept per defect type from the index's learn shots.

Reads ``index.jsonl`` (role "learn" anomalies with masks), loads the base model once, and calls the
method's learner for each defect type. Writes, atomically, ``OUT/<defect_type>/`` (the method's weights
in diffusers' formats plus ``concept.json``) and ``OUT/config.json``.

Methods (``LEARNERS``, a plain dict of "module:function"): ``anogen`` = masked textual inversion
(AnoGen, Gui et al., ECCV 2024); ``dualanodiff`` = dual LoRA (DualAnoDiff, Jin et al., CVPR 2025).
"""

from __future__ import annotations

import importlib
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from anogen_data.config import LearnConfig, write_config
from anogen_data.errors import AnogenError
from anogen_data.files import atomic_output_dir, check_output_dir, sha256_file, write_json
from anogen_data.records import IndexEntry

# method -> "module:function"; a learner is (components, shots, defect_type, config, folder, on_step) -> dict
LEARNERS: dict[str, str] = {
    "anogen": "anogen_data.stages.learn:learn_anogen",
    "dualanodiff": "anogen_data.stages.learn:learn_dualanodiff",
}


def get_learner(method: str) -> Callable:
    """The learner function registered for ``method`` (imported on demand)."""
    if method not in LEARNERS:
        raise AnogenError(f"unknown --method '{method}'; valid methods: {', '.join(sorted(LEARNERS))}")
    module_name, func = LEARNERS[method].split(":")
    return getattr(importlib.import_module(module_name), func)


def learn_shots_by_defect(entries: list[IndexEntry], index_path: Path, defect: str | None) -> dict[str, list[IndexEntry]]:
    """Role "learn" anomalies grouped by defect type (only ``defect`` when given), in index order.

    Raises:
        AnogenError: no learn shots (for ``defect``), or a learn shot without a mask.
    """
    groups: dict[str, list[IndexEntry]] = defaultdict(list)
    for entry in entries:
        if entry.role == "learn" and entry.label == "anomaly" and defect in (None, entry.defect_type):
            if not entry.mask_path:
                raise AnogenError(f"{index_path}: learn shot {entry.path} has no mask; AnoGen's loss needs one")
            groups[entry.defect_type].append(entry)
    if not groups:
        which = f"defect type '{defect}'" if defect else "any defect type"
        raise AnogenError(f"{index_path} has no role 'learn' anomalies for {which}; re-run `anogen-data index`")
    return dict(groups)


def pick_shots(entries: list[IndexEntry], k: int, seed: int) -> list[IndexEntry]:
    """All ``entries`` when k == 0 (or k >= len), else k of them drawn with ``seed`` (index order kept)."""
    if k <= 0 or k >= len(entries):
        return list(entries)
    chosen = np.random.default_rng(seed).choice(len(entries), size=k, replace=False)
    return [entries[i] for i in sorted(int(i) for i in chosen)]


def read_shots(entries: list[IndexEntry]):
    """Image/mask arrays and sha256 of each learn shot (``textual_inversion.Shot``)."""
    from anogen_data.concepts.textual_inversion import Shot
    from anogen_data.data.image_io import read_image, read_mask

    shots = []
    for entry in entries:
        image, mask = read_image(Path(entry.path)), read_mask(Path(entry.mask_path))
        if image.shape[:2] != mask.shape:
            raise AnogenError(f"{entry.mask_path} is {mask.shape[::-1]} but its image {entry.path} is {image.shape[1::-1]}")
        shots.append(Shot(image=image, mask=mask, sha256=sha256_file(Path(entry.path))))
    return shots


def learn_anogen(components, shots, defect_type: str, config: LearnConfig, folder: Path, on_step) -> dict:
    """AnoGen stage 1 for one defect type: writes ``learned_embeds.safetensors``; returns concept facts."""
    from anogen_data.concepts.textual_inversion import learn_token, save_embedding

    token = f"<{defect_type}>"
    lr = config.anogen_lr * (config.anogen_batch_size if config.anogen_scale_lr else 1)
    learned = learn_token(
        components, shots, token=token, init_word=config.anogen_init_word, steps=config.anogen_steps,
        batch_size=config.anogen_batch_size, lr=lr, seed=config.seed, on_step=on_step,
    )
    save_embedding(folder / "learned_embeds.safetensors", token, learned.vector)
    return {
        "token": token,
        "init_word": config.anogen_init_word,
        "weights": "learned_embeds.safetensors",
        "steps": config.anogen_steps,
        "batch_size": config.anogen_batch_size,
        "lr": lr,
        "loss_curve": [round(x, 6) for x in learned.losses],
    }


def learn_dualanodiff(components, shots, defect_type: str, config: LearnConfig, folder: Path, on_step) -> dict:
    """DualAnoDiff for one defect type: both branch LoRAs + SAIM/BCM into ``folder``; returns concept facts."""
    from anogen_data.concepts.dual_lora import DualTrainOptions, learn_dual_concept

    options = DualTrainOptions(
        steps=config.dualanodiff_steps, batch_size=config.dualanodiff_batch_size, lr=config.dualanodiff_lr,
        rank=config.dualanodiff_rank, train_text_encoder=config.dualanodiff_train_text_encoder,
        whole_prompt=config.dualanodiff_whole_prompt, part_prompt=config.dualanodiff_part_prompt,
        resolution=config.dualanodiff_resolution or None,
        gradient_checkpointing=config.dualanodiff_gradient_checkpointing,
        use_8bit_adam=config.dualanodiff_8bit_adam, seed=config.seed,
    )
    return learn_dual_concept(components, [s.image for s in shots], [s.mask for s in shots], options, folder, on_step)


def run_learn(config: LearnConfig, index_path: Path, out: Path, *, force: bool = False) -> Path:
    """Learn one concept per defect type of ``index_path`` into ``out`` (atomic; nothing half-written).

    Returns:
        ``out``.
    """
    from rich.progress import Progress

    from anogen_data.diffusion.loading import load_components, text_encoder_fingerprint
    from anogen_data.stages.index import load_index_entries

    learner = get_learner(config.method)
    index_path, out = Path(index_path), Path(out)
    check_output_dir(out, force=force)  # before training, not after
    groups = learn_shots_by_defect(load_index_entries(index_path), index_path, config.defect)
    components = load_components(config.model, device=config.device, dtype=config.dtype, seed=config.seed)
    steps = getattr(config, f"{config.method}_steps", 0)
    with atomic_output_dir(out, force=force) as tmp, Progress() as progress:
        for defect_type, entries in groups.items():
            chosen = pick_shots(entries, config.shots, config.seed)
            task = progress.add_task(f"{config.method} {defect_type} ({len(chosen)} shots)", total=steps or None)
            folder = tmp / defect_type
            folder.mkdir()
            facts = learner(components, read_shots(chosen), defect_type, config, folder,
                            lambda step, loss, task=task: progress.update(task, advance=1, description=f"{config.method} {defect_type} loss {loss:.4f}"))
            write_json(folder / "concept.json", {
                "method": config.method,
                "category": chosen[0].category,
                "defect_type": defect_type,
                "base_model": config.model,
                "text_encoder_hash": text_encoder_fingerprint(components.text_encoder),
                "embedding_width": components.embedding_width,
                "seed": config.seed,
                "learn_shots": [{"path": e.path, "mask_path": e.mask_path, "sha256": sha256_file(Path(e.path))} for e in chosen],
                **facts,
            })
        write_config(config, tmp)
    return out
