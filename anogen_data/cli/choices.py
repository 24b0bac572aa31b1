"""The closed sets of values CLI options take, as enums so ``--help`` and shell completion list them.

One spelling per value everywhere (dtype: ``auto|fp32|fp16|bf16``; the long torch names are accepted
as aliases). ``--device`` lists ``auto|cpu|cuda`` and also takes ``cuda:N`` (a parser, since an enum could not). A test checks each enum
against the registry it mirrors (``synthesis.BACKENDS``, ``stages.learn.LEARNERS``, ...).
"""

from __future__ import annotations

import re
from enum import StrEnum

import click


class Backend(StrEnum):
    """``generate --backend``: keys of ``anogen_data.synthesis.BACKENDS`` plus ``auto``."""

    auto = "auto"
    paste = "paste"
    perlin = "perlin"
    cutpaste = "cutpaste"
    paste_aligned = "paste-aligned"
    anogen = "anogen"
    dualanodiff = "dualanodiff"


class Method(StrEnum):
    """``concepts learn --method``: keys of ``anogen_data.stages.learn.LEARNERS``."""

    anogen = "anogen"
    dualanodiff = "dualanodiff"


class DetectorModel(StrEnum):
    """``train --model``: the bundled detector kinds."""

    unet = "unet"
    draem = "draem"
    destseg = "destseg"


class Recipe(StrEnum):
    """``train --recipe``: keys of ``anogen_data.detector.recipes.RECIPES`` (the papers' training recipes)."""

    draem = "draem"
    destseg = "destseg"
    unet = "unet"


class Synthesis(StrEnum):
    """``train --synthesis``: on-the-fly anomalies of the DRAEM baseline."""

    perlin = "perlin"
    cutpaste = "cutpaste"


class Protocol(StrEnum):
    """``index --protocol``: the few-shot split."""

    first_third = "first-third"
    random_k = "random-k"


class Device(StrEnum):
    """``--device``: listed choices; ``cuda:N`` is accepted too."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Dtype(StrEnum):
    """``--dtype``: one spelling everywhere."""

    auto = "auto"
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


DTYPE_ALIASES = {"float32": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16"}


def _parser(enum: type[StrEnum], aliases: dict[str, str] | None = None, pattern: str | None = None):
    """A typer ``parser`` over an enum's values that also maps aliases and accepts a pattern; yields plain str."""
    allowed = [member.value for member in enum]
    extra = re.compile(pattern) if pattern else None

    def parse(text: str) -> str:
        text = (aliases or {}).get(str(text), str(text))
        if text in allowed or (extra is not None and extra.fullmatch(text)):
            return text
        also = f" or {pattern.replace(chr(92) + 'd+', 'N')}" if pattern else ""
        raise ValueError(f"'{text}' is not one of {', '.join(allowed)}{also}")

    return parse


def _completion(enum: type[StrEnum]):
    def complete(incomplete: str) -> list[str]:
        return [member.value for member in enum if member.value.startswith(incomplete)]

    return complete


DEVICE_OPTION = {
    "parser": _parser(Device, pattern=r"cuda:\d+"), "autocompletion": _completion(Device), "metavar": "<auto|cpu|cuda|cuda:N>",
}
DTYPE_OPTION = {
    "parser": _parser(Dtype, aliases=DTYPE_ALIASES), "autocompletion": _completion(Dtype), "metavar": "<auto|fp32|fp16|bf16>",
}


def value(choice) -> str | None:
    """An enum member (or None) as the plain string the configs hold."""
    return None if choice is None else str(getattr(choice, "value", choice))
