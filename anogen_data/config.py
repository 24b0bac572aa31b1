"""Stage configuration: one frozen dataclass per stage.

Precedence: dataclass defaults < the stage's section of ``params.yaml`` (``--params``) < CLI flags.
Unknown keys raise naming the key. Each stage writes its resolved config as ``config.json`` beside
its output, so every artefact says how it was made.

Configs nest instead of copying fields: a field whose type is another stage's config (``GenerateConfig``
holds ``index``, ``propose`` and ``export``) is resolved from that stage's own section, so the one-shot
``generate`` reads the very settings the staged DVC run (index -> propose -> generate -> export) reads.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from anogen_data.errors import AnogenError
from anogen_data.files import write_json

C = TypeVar("C")


@dataclass(frozen=True)
class IndexConfig:
    """``index``: which real images the few-shot protocol may learn from."""

    data: str = "demo"  # data root in MVTec layout; "demo" renders the built-in demo category
    category: str = "demo"
    protocol: str = "first-third"  # first-third (AnomalyDiffusion/DualAnoDiff tables) | random-k (AnoGen)
    shots: int = 3  # K for random-k: AnoGen learns each defect type from 3 real anomalies
    seed: int = 0


@dataclass(frozen=True)
class ExportConfig:
    """``export``: how a dataset version is written (``anogen_data.writers``)."""

    include_learn: bool = True  # learn shots go to synthetic/<c>/images/<defect>/real_NNN: training evidence, never test
    license: str = "cc-by-nc-sa-4.0"  # MVTec AD's licence; derived images inherit it (share-alike)
    copy_png: bool = True  # 8-bit RGB PNG sources are copied byte for byte: no re-encode, original pixels and bytes
    png_compression: int = 3  # OpenCV PNG level when re-encoding: 9 is ~20x slower for ~14% smaller files (MVTec bottle)
    workers: int = 2  # threads decoding/encoding images (OpenCV releases the GIL); 2 = cores of a CI box
    max_shard_mb: int = 500  # parquet shard size: the Hub's recommended upper bound for fast streaming
    batch_rows: int = 16  # rows buffered per parquet write: bounds memory at ~16 images
    contact_sheet_per_group: int = 4  # thumbnails per (split, source, defect type) on the contact sheet
    contact_sheet_cells: int = 48  # at most 6 rows of 8: readable at a glance
    show_dropped: bool = False  # also draw the filter's dropped records (first reason as caption) on dropped_sheet.png


@dataclass(frozen=True)
class LearnConfig:
    """``learn`` (``concepts learn``): few-shot concept learning, one concept per defect type.

    Shared keys come first; method-specific keys carry the method's prefix (``anogen_*``,
    ``dualanodiff_*``), so one flat ``learn:`` section serves both methods. ``--steps`` sets the
    chosen method's ``<method>_steps``.
    """

    method: str = "anogen"  # anogen (textual inversion, ECCV 2024) | dualanodiff (dual LoRA, CVPR 2025)
    model: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # hub id, local diffusers folder, or tiny
    defect: str | None = None  # one defect type, or None for every type with learn shots
    shots: int = 0  # 0: all of the index's learn shots; k > 0: k random of them (AnoGen used k = 3)
    device: str = "auto"  # auto: cuda when available
    dtype: str = "auto"  # auto: bf16/fp16 on CUDA, fp32 on CPU
    seed: int = 0
    anogen_steps: int = 6100  # AnoGen's released textual-inversion settings
    anogen_batch_size: int = 2  # the release's SD-1.5 config (v1-finetune.yaml); its 256 px LDM config uses 4
    anogen_lr: float = 5e-3  # base lr per sample (v1-finetune.yaml base_learning_rate): x batch 2 = 0.01
    anogen_scale_lr: bool = True  # lr = base lr x batch size, as AnoGen / textual inversion do
    anogen_init_word: str = "defect"  # the new token starts from this word's embedding (AnoGen)
    dualanodiff_steps: int = 5000  # DualAnoDiff's released step count
    dualanodiff_batch_size: int = 4  # pairs per step, as released (a pair = whole + part image)
    dualanodiff_lr: float = 2e-5  # released constant learning rate
    dualanodiff_rank: int = 32  # released LoRA rank, per branch
    dualanodiff_train_text_encoder: bool = True  # the release also trains one text-encoder LoRA, shared by both branches
    dualanodiff_whole_prompt: str = "a vfx with sks"  # released nested prompt of the whole-image branch
    dualanodiff_part_prompt: str = "sks"  # released prompt of the anomaly-part branch
    dualanodiff_resolution: int = 0  # 0: the model's native side (512 for SD-1.5)
    dualanodiff_gradient_checkpointing: bool = False  # saves activation memory (24 GB GPUs) at ~30% speed
    dualanodiff_8bit_adam: bool = False  # bitsandbytes AdamW8bit when installed (24 GB GPUs)


@dataclass(frozen=True)
class ProposeConfig:
    """``propose``: where and what shape each synthetic defect will be."""

    n: int = 100  # layouts to propose; generate.n must not exceed it
    defect: str | None = None  # one defect type, or None to split n over types by their learn shots
    foreground: str = "auto"  # auto: estimated from the good images (object) or whole image (texture) | full
    shape: str = "auto"  # auto: real learn-shot masks when the type has them, else perlin/stroke | real | perlin | stroke | mixed
    placement: str = "auto"  # real shapes: auto (polar on objects, free on textures) | polar (learn shot's radius, new angle) | free
    seed: int = 0


@dataclass(frozen=True)
class GenerateConfig:
    """``generate``: synthesise anomalies on good images (index -> propose -> synthesise -> export).

    The one-shot run's index, layouts and version follow the nested ``index``, ``propose`` and
    ``export`` configs, resolved from their own params.yaml sections (``resolve_generate_config`` links
    the shared keys), so it makes the same bytes as the staged run on the same params.yaml.
    """

    n: int = 100  # synthetic samples
    backend: str = "auto"  # auto: paste when the category has real learn shots, else perlin
    defect: str | None = None  # only this defect type (layouts of other types are skipped)
    seed: int = 0
    workers: int = 1  # processes; per-sample seeds make the bytes identical for any count
    out: str = "datasets"
    name: str | None = None  # dataset name; None = the category
    model: str | None = None  # diffusion backends: hub id, local folder or "tiny"
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 1
    options: dict[str, Any] | None = None  # backend-specific parameters, e.g. {"paste": {"feather": 0.15}}
    index: IndexConfig = field(default_factory=IndexConfig)  # the real data and split (when no --index)
    propose: ProposeConfig = field(default_factory=ProposeConfig)  # the layouts (when no --layouts)
    export: ExportConfig = field(default_factory=ExportConfig)  # the dataset version (unless --no-export)

    MOVED: ClassVar[dict[str, str]] = {  # keys that used to be copies in the generate section
        "category": "the --category flag (or index.category)", "data": "index.data",
        "foreground": "propose.foreground", "shape": "propose.shape", "placement": "propose.placement",
    }

    @property
    def category(self) -> str:
        return self.index.category

    @property
    def data(self) -> str:
        return self.index.data


@dataclass(frozen=True)
class TrainConfig:
    """``train``: the bundled detector (DRAEM / DeSTSeg) trained on a dataset version."""

    model: str = "destseg"  # unet | draem | destseg (DeSTSeg trains in minutes on CPU)
    recipe: str | None = None  # draem | destseg | unet (detector/recipes.py); None = the recipe named after model
    epochs: int = 0  # passes of samples_per_epoch samples; 0 = the recipe's reduced CPU default (20)
    samples_per_epoch: int = 0  # 0 = twice the number of train/good images
    batch_size: int = 8
    image_size: int = 256  # long side of the letterbox canvas (multiple of 32)
    base_width: int = 0  # 0 = paper width on GPU (64), the recipe's CPU width (16) otherwise
    lr: float = 0.001
    synthesis: str = "perlin"  # on-the-fly anomalies for the recipe's Perlin share (and its baseline): perlin | cutpaste
    real_shots: bool = False  # also train on the version's real learn shots (synthetic/<c>/images/<defect>/real_*)
    augment: bool = False  # random flips of the training anomalies
    box_labels: bool = False  # train every anomaly on its mask's box with AnoGen's weak loss (mask_quality: box)
    p_cutoff: float | None = None  # AnoGen weak-loss cutoff; None = the recipe's (0.1 unet/draem, 0.0 destseg)
    cutoff_warmup_steps: int | None = None  # linear ramp of p_cutoff from 0; None = a quarter of the head's steps
    device: str = "auto"
    seed: int = 0


@dataclass(frozen=True)
class BenchmarkConfig:
    """``benchmark``: a trained detector on the index's eval split (real test/good + held-out anomalies)."""

    batch_size: int = 8
    fpr_limit: float = 0.3  # AUPRO integration limit (MVTec AD)
    score_pool: int = 0  # image score = max of the map mean-pooled with this kernel; 0 = canvas/16
    figures: int = 6  # real test images shown in score_maps.png
    device: str = "auto"


@dataclass(frozen=True)
class DefectCropConfig:
    """How a defect is cut out for the backbone and how "changed" pixels are found: declared once, shared by
    ``filter`` (per-sample scores) and ``quality`` (dataset metrics), each with its own params section."""

    crop_size: int = 128  # defect crops are resized to this before the backbone (4x4 final feature map)
    crop_pad: float = 0.25  # context around the defect box on each side, as a share of its long side
    crop_min_side: int = 32  # smallest crop in source pixels, so tiny defects keep some context
    change_threshold: int = 12  # max channel change (0-255) that counts as "changed": above PNG/VAE noise
    leak_radius: float = 0.02  # mask dilation before measuring leakage, as a share of the long side (feathering)


@dataclass(frozen=True)
class FilterConfig(DefectCropConfig):
    """``filter``: per-sample quality scores and the thresholds that decide keep/drop (``anogen_data.filters``);
    crop and change-map settings from ``DefectCropConfig``."""

    min_area: float = 0.0002  # mask area / image area; below ~0.02 % nothing visible was labelled
    max_area: float = 0.3  # above this the "defect" covers most of the object
    max_components: int = 12  # more pieces than this is confetti, not one defect (cracks split into a few)
    min_foreground: float = 0.6  # share of defect pixels on the object; below, it sits on the background
    foreground: str = "auto"  # auto (estimate the object from the good images) | full (texture: all object)
    min_change_iou: float = 0.2  # IoU(mask, changed pixels) below this: the label does not match the pixels
    max_leakage: float = 0.25  # stray change outside the dilated mask per unit of defect size
    max_defect_distance: float = 0.6  # cosine distance to the nearest real learn crop of the type; above: unlike any
    min_good_distance: float = 0.01  # cosine distance to the source crop; below: looks like good surface
    max_duplicate: float = 0.985  # cosine similarity of defect crops above which a later sample duplicates
    batch_size: int = 16  # crops per backbone pass


@dataclass(frozen=True)
class QualityConfig(DefectCropConfig):
    """``quality``: dataset-level metrics of a version (``anogen_data.quality``); crops and the change map
    as in ``filter`` (``DefectCropConfig``)."""

    image_size: int = 224  # whole images are resized to the backbone's ImageNet training size
    kid_subsets: int = 50  # random subsets averaged for KID (Binkowski et al. 2018 use 100 at n=1000)
    kid_subset_size: int = 100  # capped at the smaller set's size (few-shot eval sets are small)
    batch_size: int = 16  # images per backbone pass
    seed: int = 0  # KID subset draws


FLAG_NAMES = {"base_width": "--width", "anogen_steps": "--steps", "dualanodiff_steps": "--steps"}  # flag != --key


def load_params_section(params_file: Path | None, section: str) -> dict[str, Any]:
    """The ``section`` mapping of a params.yaml file ({} when no file is given)."""
    if params_file is None:
        return {}
    path = Path(params_file)
    if not path.is_file():
        raise AnogenError(f"{path} does not exist; pass an existing params.yaml to --params")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise AnogenError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(params, dict):
        raise AnogenError(f"{path} must be a mapping of stage sections (index:, generate:, ...), not a {type(params).__name__}")
    section_values = params.get(section, {}) or {}
    if not isinstance(section_values, dict):
        raise AnogenError(f"{path}: section '{section}' must be a mapping of keys to values")
    return section_values


def _nested_fields(cls) -> dict[str, type]:
    """{field name: config class} of the fields of ``cls`` that are configs themselves."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints[f.name])}


def params_data_root(params_file: Path | None) -> str | None:
    """The top-level ``data:`` of a params.yaml: the data root set once for every stage that reads real data."""
    if params_file is None:
        return None
    try:
        value = (yaml.safe_load(Path(params_file).read_text(encoding="utf-8")) or {}).get("data")
    except (OSError, yaml.YAMLError, AttributeError):
        return None  # load_params_section reports a bad file with its own message
    if value is not None and not isinstance(value, str):
        raise AnogenError(f"{params_file}: top-level 'data' must be a folder path (got {type(value).__name__})")
    return value


def resolve_config(cls: type[C], params_file: Path | None, section: str, overrides: dict[str, Any]) -> C:
    """Build ``cls`` from defaults < ``params_file[section]`` < ``overrides`` (None means "not given").

    A nested config field (e.g. ``GenerateConfig.index``) is resolved the same way from its own
    top-level section (``index:``), with ``overrides[<field>]`` (a dict) as its flags. Every value is
    validated against ``schemas.config_schema(cls)`` (types and ranges) before the dataclass is built;
    an error names the params file, line and key, or the CLI flag.

    Raises:
        AnogenError: a key in the params section or the overrides is not a field of ``cls``, or a value
            has the wrong type or is out of range.
    """
    from anogen_data.schemas import check_config_values, yaml_line

    nested = _nested_fields(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    from_file = load_params_section(params_file, section)
    moved = getattr(cls, "MOVED", {})
    if "data" in names and "data" not in from_file and params_data_root(params_file) is not None:
        values["data"] = params_data_root(params_file)  # top-level data: < the section's own data:
    for key, value in from_file.items():
        if key in nested:
            raise AnogenError(f"{params_file}: '{section}.{key}' is not a key; {key} settings live in the "
                              f"top-level '{key}:' section")
        if key not in names:
            hint = f"; it moved to {moved[key]}" if key in moved else ""
            raise AnogenError(
                f"{params_file}: unknown key '{section}.{key}'{hint}; valid keys: "
                f"{', '.join(sorted(names - set(nested)))}"
            )
        values[key] = value
    for key, value in overrides.items():
        if key not in names:
            raise AnogenError(f"unknown option '{key}' for {section}; valid keys: {', '.join(sorted(names))}")
        if value is not None and key not in nested:
            values[key] = value

    def where(key: str) -> str:
        if overrides.get(key) is not None:
            return FLAG_NAMES.get(key, f"--{key.replace('_', '-')}")
        line = yaml_line(Path(params_file), section, key)
        return f"{params_file}:{line or '?'}: {section}.{key}"

    check_config_values(cls, values, where)
    for key, sub in nested.items():
        values[key] = resolve_config(sub, params_file, key, overrides.get(key) or {})
    return cls(**values)


def resolve_generate_config(params_file: Path | None, overrides: dict[str, Any], *,
                            index: dict[str, Any] | None = None, propose: dict[str, Any] | None = None) -> GenerateConfig:
    """``GenerateConfig`` with its nested sections linked as the staged run links them.

    - ``index`` / ``propose``: flags of those sections (``--category``, ``--data``; ``--foreground``,
      ``--shape``, ``--placement``); ``overrides`` are the generate flags.
    - ``--seed`` (``overrides["seed"]``) seeds every section; without it each section keeps its own.
    - ``--defect`` also restricts the proposal; ``propose.defect`` otherwise defaults to ``generate.defect``.
    - ``propose.n``: as set in the propose section (the staged run proposes that many and generate
      takes the first n), raised to ``n`` when smaller; ``n`` when the section does not set it.
    """
    seed, defect = overrides.get("seed"), overrides.get("defect")
    config = resolve_config(GenerateConfig, params_file, "generate", {
        **overrides, "index": {**(index or {}), "seed": seed}, "propose": {**(propose or {}), "seed": seed, "defect": defect},
    })
    section = load_params_section(params_file, "propose")
    n = max(config.propose.n, config.n) if "n" in section else config.n
    chosen = config.propose.defect if section.get("defect") is not None or defect is not None else config.defect
    return dataclasses.replace(config, propose=dataclasses.replace(config.propose, n=n, defect=chosen))


def config_to_dict(config) -> dict[str, Any]:
    """A config as a JSON-able dict (paths become strings)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(config).items()}


def write_config(config, folder: Path) -> Path:
    """Write ``config.json`` (the resolved config) into ``folder``."""
    path = Path(folder) / "config.json"
    write_json(path, config_to_dict(config))
    return path
