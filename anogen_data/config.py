"""Stage configuration: one frozen dataclass per stage.

Precedence: dataclass defaults < the stage's section of ``params.yaml`` (``--params``) < CLI flags.
Unknown keys raise naming the key. Each stage writes its resolved config as ``config.json`` beside
its output, so every artefact says how it was made.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

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
        raise AnogenError(f"{path} is not valid YAML: {exc}") from exc
    section_values = params.get(section, {}) or {}
    if not isinstance(section_values, dict):
        raise AnogenError(f"{path}: section '{section}' must be a mapping of keys to values")
    return section_values


def resolve_config(cls: type[C], params_file: Path | None, section: str, overrides: dict[str, Any]) -> C:
    """Build ``cls`` from defaults < ``params_file[section]`` < ``overrides`` (None means "not given").

    Raises:
        AnogenError: a key in the params section or the overrides is not a field of ``cls``.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    from_file = load_params_section(params_file, section)
    for key, value in from_file.items():
        if key not in names:
            raise AnogenError(
                f"{params_file}: unknown key '{section}.{key}'; valid keys: {', '.join(sorted(names))}"
            )
        values[key] = value
    for key, value in overrides.items():
        if key not in names:
            raise AnogenError(f"unknown option '{key}' for {section}; valid keys: {', '.join(sorted(names))}")
        if value is not None:
            values[key] = value
    return cls(**values)


def config_to_dict(config) -> dict[str, Any]:
    """A config as a JSON-able dict (paths become strings)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(config).items()}


def write_config(config, folder: Path) -> Path:
    """Write ``config.json`` (the resolved config) into ``folder``."""
    path = Path(folder) / "config.json"
    write_json(path, config_to_dict(config))
    return path
