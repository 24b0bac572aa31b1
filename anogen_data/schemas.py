"""Declared schemas (pydantic v2) of every file the tool reads, and one-line errors naming file, line, field.

Files: ``index.jsonl`` (``IndexRow``), ``layouts.jsonl`` (``LayoutRow``), ``records.jsonl`` (``RecordRow``),
``scores.jsonl`` (``ScoreRow``), ``manifest.json`` (``Manifest``), ``concept.json`` (``ConceptMeta``),
the detector's ``model.json`` (``DetectorMeta``), COCO ``instances_*.json`` (``CocoFile``) and the params.yaml
sections (``config_schema``: built from the
stage dataclass of ``anogen_data.config`` narrowed by the ranges of ``PARAM_BOUNDS``).

Rows are validated in pydantic's strict JSON mode: ``"5"`` is not an int, ``"false"`` is not a bool.
Names are plain names and file paths stay inside their folder (``anogen_data.paths``). Checks that need
two files (a record's source must be a train/learn image of the index, a score id must be a record) live
in ``records.py`` and the stages, where both files are read. The on-disk formats are unchanged.

Masks in layouts are COCO RLE (Lin et al., ECCV 2014); pycocotools decodes a malformed ``counts`` string
into garbage instead of raising, so ``rle_runs`` parses it and checks that the runs cover the image.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError,
                      model_validator)

from anogen_data.errors import AnogenError
from anogen_data.paths import index_image_parts, plain_name_problem, relative_problem

MAX_SIDE = 16384  # longest image side we accept (MVTec AD's largest images are 1024 px a side)
MAX_PIXELS = MAX_SIDE * MAX_SIDE // 4  # 67 MP (8192^2, a 200 MB RGB decode): larger headers are refused undecoded


def _plain(value: str) -> str:
    problem = plain_name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _plain_names(value: str | list[str]) -> str | list[str]:
    for name in [value] if isinstance(value, str) else value:
        _plain(name)
    return value


def _relative(value: str) -> str:
    problem = relative_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _absolute(value: str) -> str:
    if not value or any(ord(ch) < 32 for ch in value) or not os.path.isabs(value):
        raise ValueError("must be an absolute path without control characters")
    return value


PlainName = Annotated[str, AfterValidator(_plain)]
RelPath = Annotated[str, AfterValidator(_relative)]
AbsPath = Annotated[str, AfterValidator(_absolute)]
Side = Annotated[int, Field(ge=1, le=MAX_SIDE)]
Seed = Annotated[int, Field(ge=0, le=2**63 - 1)]
Coord = Annotated[int, Field(ge=0, le=MAX_SIDE)]
BoxXYXY = tuple[Coord, Coord, Coord, Coord]


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_box(box: tuple[int, int, int, int], width: int | None = None, height: int | None = None) -> None:
    x0, y0, x1, y1 = box
    if x0 >= x1 or y0 >= y1:
        raise ValueError(f"bbox_xyxy {list(box)} is empty or reversed (x0 < x1 and y0 < y1 required)")
    if width is not None and (x1 > width or y1 > height):
        raise ValueError(f"bbox_xyxy {list(box)} lies outside the {width}x{height} image")


def _not_good(defect_type: str) -> None:
    if defect_type == "good":
        raise ValueError("defect_type 'good' is the folder of good images, not a defect type")


class IndexRow(_Row):
    """One line of ``index.jsonl``: ``<root>/<category>/<split>/<defect_type>/<file>`` with its role."""

    path: AbsPath
    split: Literal["train", "test"]
    label: Literal["good", "anomaly"]
    defect_type: PlainName
    mask_path: AbsPath | None
    width: Side
    height: Side
    role: Literal["train", "learn", "eval"]
    category: PlainName
    sha256: Annotated[str, StringConstraints(pattern=r"^([0-9a-f]{64})?$")] = ""  # "" in indexes older than the hash

    @model_validator(mode="after")
    def _consistent(self) -> IndexRow:
        if (self.label == "good") != (self.defect_type == "good"):
            raise ValueError(f"label '{self.label}' does not match defect_type '{self.defect_type}'")
        if (self.mask_path is None) != (self.label == "good"):
            raise ValueError("mask_path must be null for good images and a path for anomalies")
        if self.role == "train" and self.label != "good":
            raise ValueError("role 'train' is for good images; anomalies are 'learn' or 'eval'")
        folder, category, split, defect = index_image_parts(self.path)
        if (category, split, defect) != (self.category, self.split, self.defect_type):
            raise ValueError(f"path {self.path} is not inside <data>/{self.category}/{self.split}/{self.defect_type}/")
        if self.mask_path is not None:
            mfolder, mcategory, gt, mdefect = index_image_parts(self.mask_path)
            if (mfolder, mcategory, gt, mdefect) != (folder, category, "ground_truth", self.defect_type):
                raise ValueError(f"mask_path {self.mask_path} is not inside {folder}/ground_truth/{self.defect_type}/")
        return self


class Rle(_Row):
    """COCO RLE of a full-image mask: ``size`` [H, W], compressed ``counts`` string."""

    size: tuple[Side, Side]
    counts: str

    @model_validator(mode="after")
    def _decodable(self) -> Rle:
        rle_runs(self.counts, self.size[0] * self.size[1])
        return self


class LayoutRow(_Row):
    """One line of ``layouts.jsonl`` (see ``records.Layout``)."""

    id: PlainName
    category: PlainName
    defect_type: PlainName
    source_path: AbsPath
    bbox_xyxy: BoxXYXY
    mask_rle: Rle
    seed: Seed
    shape_source: Literal["real", "perlin", "stroke"]
    shot_mask: AbsPath | None = None  # the learn-shot mask of a real shape
    placement: Literal["free", "polar"] | None = None  # how a real shape was placed

    @model_validator(mode="after")
    def _box_inside(self) -> LayoutRow:
        _not_good(self.defect_type)
        height, width = self.mask_rle.size
        _check_box(self.bbox_xyxy, width, height)
        return self


class RecordRow(_Row):
    """One line of ``records.jsonl`` (see ``records.SynthRecord``); image/mask paths relative to its folder."""

    id: PlainName
    category: PlainName
    defect_type: PlainName
    backend: PlainName
    seed: Seed
    source_path: AbsPath
    image_path: RelPath
    mask_path: RelPath
    mask_quality: Literal["pixel", "box"]
    bbox_xyxy: BoxXYXY
    recipe: dict[str, Any] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _box(self) -> RecordRow:
        _not_good(self.defect_type)
        _check_box(self.bbox_xyxy)
        return self


class ScoreRow(_Row):
    """One line of ``scores.jsonl`` written by ``filter``."""

    id: PlainName
    keep: bool
    reasons: list[str]
    scores: dict[str, float | None] = Field(default_factory=dict)


class ManifestFile(_Row):
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    size: Annotated[int, Field(ge=0)]


class Manifest(BaseModel):
    """``manifest.json`` of a version. Unknown keys are kept (newer writers may add lineage facts)."""

    model_config = ConfigDict(extra="allow")

    format: str
    name: PlainName
    category: PlainName
    version: Annotated[int, Field(ge=1)]
    lineage: dict[str, Any]
    files: dict[RelPath, ManifestFile]


Share = Annotated[float, Field(ge=0, le=1)]


class Placement(_Row):
    """``placement.json``, the sidecar of ``layouts.jsonl`` (``layout.propose.LayoutProposer.placement_stats``)."""

    kind: Literal["object", "texture", "full"]
    placement: Literal["object", "uniform", "image-density"]
    cue: str | None = None
    separability: float | None = None
    foreground_fraction: Share
    agreement: Share | None = None
    support: Share | None = None
    extent: Share | None = None
    note: Annotated[str, Field(max_length=1000)] | None = None


class ConceptMeta(BaseModel):
    """``<concepts>/<defect_type>/concept.json``: ``weights`` are file names inside that folder."""

    model_config = ConfigDict(extra="allow")

    method: Literal["anogen", "dualanodiff"]
    defect_type: PlainName
    base_model: str | None = None
    text_encoder_hash: str | None = None
    weights: Annotated[str | list[str], AfterValidator(_plain_names)]


class DetectorMeta(BaseModel):
    """``model.json`` written by ``train``: what ``benchmark`` needs to rebuild the detector."""

    model_config = ConfigDict(extra="allow")

    format: str
    model: Literal["unet", "draem", "destseg"]
    base_width: Annotated[int, Field(ge=1, le=1024)]
    canvas: tuple[Annotated[int, Field(ge=32, le=MAX_SIDE)], Annotated[int, Field(ge=32, le=MAX_SIDE)]]
    category: PlainName | None = None


class CocoImage(BaseModel):
    """An ``images`` entry of a COCO file: ``file_name`` relative to the version folder."""

    model_config = ConfigDict(extra="allow")

    id: Annotated[int, Field(ge=0)]
    file_name: RelPath
    width: Side
    height: Side


class CocoAnnotation(BaseModel):
    """An ``annotations`` entry: the fields the detector reads (``mask_quality`` "box" = AnoGen weak label)."""

    model_config = ConfigDict(extra="allow")

    image_id: Annotated[int, Field(ge=0)]
    mask_quality: Literal["pixel", "box"] | None = None


class CocoFile(BaseModel):
    model_config = ConfigDict(extra="allow")

    images: list[CocoImage]
    annotations: list[CocoAnnotation]


def read_concept(path: Path) -> dict[str, Any]:
    """``concept.json`` validated by ``ConceptMeta`` (its ``weights`` are plain file names in its folder)."""
    return read_json_model(Path(path), ConceptMeta).model_dump()


def check_concepts(folder: Path) -> None:
    """Validate every ``<folder>/<defect_type>/concept.json`` before any work starts (nothing is written)."""
    for meta in sorted(Path(folder).glob("*/concept.json")):
        read_concept(meta)


def rle_runs(counts: str, total: int) -> list[int]:
    """Run lengths of a compressed COCO RLE string (pycocotools' ``rleFrString``), checked to cover ``total`` pixels.

    Raises:
        ValueError: a character outside the alphabet, a truncated number, a negative run, or runs that
            do not add up to ``total`` (H * W).
    """
    runs: list[int] = []
    pos = 0
    while pos < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(counts):
                raise ValueError("mask_rle counts ends in the middle of a number")
            code = ord(counts[pos]) - 48
            if not 0 <= code < 64:
                raise ValueError(f"mask_rle counts has the character {counts[pos]!r}, not COCO RLE")
            value |= (code & 0x1F) << (5 * shift)
            more = bool(code & 0x20)
            pos += 1
            shift += 1
            if not more and code & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        if value < 0:
            raise ValueError("mask_rle counts decodes to a negative run")
        runs.append(value)
    if sum(runs) != total:
        raise ValueError(f"mask_rle counts covers {sum(runs)} pixels, not size H*W = {total}")
    return runs


def describe(exc: ValidationError, where: str) -> str:
    """One line for the first error of ``exc``: ``where: field: message (got value)``."""
    err = exc.errors(include_url=False)[0]
    field = field_name(err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "json_invalid":
        return f"{where}: not valid JSON ({msg.removeprefix('Invalid JSON: ')})"
    if err["type"] in ("model_type", "model_attributes_type", "dict_type") and not field:
        return f"{where}: must be a JSON object, got {_short(err['input'])}"
    got = "" if err["type"] == "missing" or isinstance(err.get("input"), dict) else f" (got {_short(err.get('input'))})"
    more = len(exc.errors()) - 1
    tail = f"; and {more} more problem(s)" if more else ""
    return f"{where}: {field + ': ' if field else ''}{msg}{got}{tail}"


def field_name(loc: tuple) -> str:
    """A pydantic error location as a field path: ``images[0].file_name``, ``files['a/b.png'].size``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part == "[key]":
            text += " (key)"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(part)):
            text += f".{part}" if text else str(part)
        else:
            text += f"[{str(part)!r}]"
    return text


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def iter_rows(path: Path, model: type[BaseModel],
              upgrade: typing.Callable[[dict], dict] | None = None) -> Iterator[tuple[int, BaseModel]]:
    """(line number, validated row) for each non-blank line of a JSON-lines file; ``upgrade`` turns a row
    of an older form into the current one before validation.

    Raises:
        AnogenError: the file is missing, or a line is not JSON / not a ``model`` (file, line, field named).
    """
    path = Path(path)
    if not path.is_file():
        raise AnogenError(f"{path} does not exist")
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            if upgrade is not None:
                line = _upgraded(line, upgrade)
            try:
                yield lineno, model.model_validate_json(line, strict=True)
            except ValidationError as exc:
                raise AnogenError(describe(exc, f"{path}:{lineno}")) from None


def _upgraded(line: bytes, upgrade: typing.Callable[[dict], dict]) -> bytes:
    """``line`` with ``upgrade`` applied to its JSON object (unchanged when it is not one: validation says why)."""
    import json

    try:
        row = json.loads(line)
    except ValueError:
        return line
    return json.dumps(upgrade(row)).encode("utf-8") if isinstance(row, dict) else line


def read_json_model(path: Path, model: type[BaseModel]) -> BaseModel:
    """A JSON file validated as ``model`` (strict), with one-line errors naming the file and field."""
    path = Path(path)
    if not path.is_file():
        raise AnogenError(f"{path} does not exist")
    try:
        return model.model_validate_json(path.read_bytes(), strict=True)
    except ValidationError as exc:
        raise AnogenError(describe(exc, str(path))) from None


# --- params.yaml sections -------------------------------------------------------------------------------

def _device(value: str) -> str:
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        raise ValueError("must be auto, cpu, mps, cuda or cuda:N")
    return value


UNIT = Field(ge=0.0, le=1.0)
PARAM_BOUNDS: dict[str, Any] = {  # field -> range, for every stage config that has the field
    "n": Field(ge=1), "workers": Field(ge=1), "seed": Field(ge=0), "batch_size": Field(ge=1),
    "epochs": Field(ge=1), "samples_per_epoch": Field(ge=0), "image_size": Field(ge=32, le=MAX_SIDE),
    "base_width": Field(ge=0), "lr": Field(gt=0), "p_cutoff": UNIT, "cutoff_warmup_steps": Field(ge=0),
    "device": AfterValidator(_device), "category": AfterValidator(_plain), "name": AfterValidator(_plain),
    "defect": AfterValidator(_plain), "backend": AfterValidator(_plain),
    # filter / quality thresholds: shares are in [0, 1], distances in the cosine range
    "min_area": UNIT, "max_area": UNIT, "max_components": Field(ge=1), "min_foreground": UNIT,
    "change_threshold": Field(ge=0, le=255), "min_change_iou": UNIT, "leak_radius": UNIT,
    "max_leakage": Field(ge=0), "crop_size": Field(ge=8, le=4096), "crop_pad": Field(ge=0, le=10),
    "crop_min_side": Field(ge=1), "max_defect_distance": Field(ge=0, le=2), "min_good_distance": Field(ge=0, le=2),
    "max_duplicate": Field(ge=-1, le=1), "kid_subsets": Field(ge=1), "kid_subset_size": Field(ge=2),
    "fpr_limit": Field(gt=0, le=1), "score_pool": Field(ge=0), "figures": Field(ge=0),
    # export
    "png_compression": Field(ge=0, le=9), "max_shard_mb": Field(ge=1), "batch_rows": Field(ge=1),
    "contact_sheet_per_group": Field(ge=0), "contact_sheet_cells": Field(ge=0),
}
CLASS_BOUNDS: dict[tuple[str, str], Any] = {  # (config class, field) -> range where the field differs
    ("IndexConfig", "shots"): Field(ge=1), ("LearnConfig", "shots"): Field(ge=0),
    ("TrainConfig", "epochs"): Field(ge=0),  # 0 = the recipe's reduced CPU default
}


SHAPES = ("auto", "real", "perlin", "stroke", "mixed")  # = layout.propose.SHAPES
PLACEMENTS = ("auto", "polar", "free")  # = layout.propose.PLACEMENTS


def choice_bounds() -> dict[tuple[str, str] | str, Any]:
    """The allowed values of the choice fields, taken from the modules that act on them (imported lazily:
    they import ``records``, which imports this module). Shapes and placements are spelled out because
    ``layout.propose`` imports torch (seconds); a unit test keeps them equal to its ``SHAPES``/``PLACEMENTS``."""
    from anogen_data.data.split import PROTOCOLS
    from anogen_data.diffusion.loading import DTYPE_ALIASES, DTYPES
    from anogen_data.layout.foreground import MODES
    from anogen_data.stages.train import MODELS, SYNTHESES

    return {
        "foreground": Literal[MODES], "shape": Literal[SHAPES], "placement": Literal[PLACEMENTS],  # see above
        "protocol": Literal[PROTOCOLS], "synthesis": Literal[SYNTHESES],
        "dtype": Literal[("auto", *DTYPES, *DTYPE_ALIASES)], ("TrainConfig", "model"): Literal[MODELS],
    }


@functools.cache
def config_schema(cls: type) -> dict[str, TypeAdapter]:
    """{field: TypeAdapter} of the stage dataclass ``cls``: its annotated type narrowed by ``PARAM_BOUNDS``."""
    hints = typing.get_type_hints(cls)
    choices = choice_bounds()
    adapters = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):  # a nested stage config: validated from its own section
            adapters[f.name] = TypeAdapter(dict[str, Any])
            continue
        keys = ((cls.__name__, f.name), f.name)  # the class-specific bound wins
        bound = next((t[k] for t in (CLASS_BOUNDS, choices, PARAM_BOUNDS) for k in keys if k in t), None)
        if bound is None and f.name.endswith(("_steps", "_batch_size", "_rank")):  # learn's per-method keys
            bound = Field(ge=1)
        adapters[f.name] = TypeAdapter(hint if bound is None else _with_bound(hint, bound))
    return adapters


def _with_bound(hint: Any, bound: Any) -> Any:
    """``hint`` narrowed by ``bound``: a ``Literal`` of choices replaces str, other bounds annotate it."""
    args = typing.get_args(hint)
    optional = type(None) in args
    inner = next(a for a in args if a is not type(None)) if optional else hint
    narrowed = bound if typing.get_origin(bound) is Literal else Annotated[inner, bound]
    return narrowed | None if optional else narrowed


def check_config_values(cls: type, values: dict[str, Any], where: typing.Callable[[str], str]) -> None:
    """Validate ``values`` (a params section merged with CLI flags) against ``config_schema(cls)``.

    Each key is checked strictly (YAML's 1 is a valid float, but "abc", 2.5 and true are not ints,
    "false" is not a bool); ``where(key)`` names the source of a bad key ("params.yaml:12 generate.n"
    or "--n"). Unknown keys are left to ``config.resolve_config``, which lists the valid ones.

    Raises:
        AnogenError: one line naming the source and the field.
    """
    adapters = config_schema(cls)
    for key, value in values.items():
        if key not in adapters:
            continue
        try:
            adapters[key].validate_python(value, strict=True)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            msg = str(err["msg"]).removeprefix("Value error, ")
            raise AnogenError(f"{where(key)}: {msg} (got {_short(value)})") from None


def yaml_line(path: Path, section: str, key: str) -> int | None:
    """1-based line of ``section.key`` in a YAML file (None when not found)."""
    import yaml

    try:
        root = yaml.compose(Path(path).read_text(encoding="utf-8"))
    except (yaml.YAMLError, OSError):
        return None
    if not isinstance(root, yaml.MappingNode):
        return None
    for name, body in root.value:
        if name.value == section and isinstance(body, yaml.MappingNode):
            for field, value in body.value:
                if field.value == key:
                    return value.start_mark.line + 1
    return None

