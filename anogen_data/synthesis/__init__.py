"""Synthesis backends, one per file, one call signature; ``BACKENDS`` maps names to them.

``BACKENDS`` is a plain dict from backend name to ``"module:Class"``; ``get_backend`` imports the
class only when asked, so the diffusion backends (torch, diffusers) cost nothing for CPU runs.
"""

from __future__ import annotations

import importlib

from anogen_data.errors import AnogenError
from anogen_data.synthesis.base import Backend, SynthesisContext

BACKENDS: dict[str, str] = {
    "paste": "anogen_data.synthesis.paste:PasteBackend",
    "perlin": "anogen_data.synthesis.perlin:PerlinBackend",
    "cutpaste": "anogen_data.synthesis.cutpaste:CutPasteBackend",
    "paste-aligned": "anogen_data.synthesis.paste_aligned:AlignedPasteBackend",  # periodic textures (grid)
    "anogen": "anogen_data.synthesis.anogen:AnoGenBackend",
    "dualanodiff": "anogen_data.synthesis.dualanodiff:DualAnoDiffBackend",
}

CPU_BACKENDS = ("paste", "perlin", "cutpaste", "paste-aligned")
# Backends that render the whole image anew (DualAnoDiff draws the whole object): every pixel differs
# from the layout's source, so mask/pixel agreement against the source measures nothing for them.
WHOLE_IMAGE_BACKENDS = ("dualanodiff",)


def get_backend(name: str) -> type[Backend]:
    """The backend class registered as ``name``.

    Raises:
        AnogenError: unknown name (the message lists the valid ones).
    """
    if name not in BACKENDS:
        raise AnogenError(f"unknown backend '{name}'; valid backends: {', '.join(BACKENDS)}")
    module_name, class_name = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


__all__ = ["BACKENDS", "CPU_BACKENDS", "WHOLE_IMAGE_BACKENDS", "Backend", "SynthesisContext", "get_backend"]
