"""Few-shot protocols: which real anomalies concept learning may see ("learn") and which are held out.

- ``first-third``: the first ceil(n/3) anomalies of each defect type by sorted file name learn, the rest
  are eval. This is the protocol of AnomalyDiffusion (Hu et al., AAAI 2024), DualAnoDiff (Jin et al.,
  CVPR 2025) and later papers, so downstream numbers compare with their tables.
- ``random-k``: K anomalies per defect type drawn with the seed learn (AnoGen, Gui et al., ECCV 2024,
  uses K=3). Each defect type has its own generator seeded from (seed, defect name), so adding a defect
  type or good images never changes another type's shots.

``train/good`` is always role "train", ``test/good`` always "eval"; training anomalies of a re-read
dataset version (its ``synthetic/`` tree, or ``train/<defect>`` in the older layout) are "train".
Learn and eval never overlap, not even by content: an eval image whose bytes (sha256) equal a train or
learn image's is dropped from the index with one warning line naming both files (KolektorSDD ships
``test/crack/000.jpg`` = ``025.jpg``; the learn copy is kept, so the detector is never scored on an
image it or the generator has seen). Duplicates inside the eval split are kept (no leak).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import zlib
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from anogen_data.errors import AnogenError
from anogen_data.records import IndexEntry, Sample

PROTOCOLS = ("first-third", "random-k")
log = logging.getLogger(__name__)


def _defect_seed(seed: int, defect: str) -> np.random.Generator:
    """A generator that depends only on (seed, defect name): stable across Python runs and machines."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(defect.encode("utf-8"))]))


def learn_shots(names: Sequence[str], *, protocol: str, shots: int, seed: int, defect: str) -> set[str]:
    """The file names (from ``names``, one defect type's anomalies) that learn under ``protocol``.

    Args:
        names: the anomaly file names of one defect type (any order; they are sorted here).
        protocol: "first-third" or "random-k".
        shots: K for random-k (ignored by first-third).
        seed: random-k seed.
        defect: the defect type (seeds its own generator, names it in errors).

    Returns:
        A non-empty set of names; every other name is eval.
    """
    ordered = sorted(names)
    if not ordered:
        raise AnogenError(f"defect type '{defect}' has no anomalies to split")
    if protocol == "first-third":
        return set(ordered[: math.ceil(len(ordered) / 3)])
    if protocol == "random-k":
        if shots < 1:
            raise AnogenError(f"--shots must be at least 1 (got {shots})")
        if shots > len(ordered):
            raise AnogenError(
                f"--shots {shots} is larger than defect type '{defect}', which has {len(ordered)} anomalies; "
                f"pass --shots {len(ordered)} or fewer"
            )
        picked = _defect_seed(seed, defect).choice(len(ordered), size=shots, replace=False)
        return {ordered[i] for i in sorted(picked)}
    raise AnogenError(f"unknown protocol '{protocol}'; choose one of {', '.join(PROTOCOLS)}")


def _role(sample: Sample, learn: dict[str, set[str]]) -> str:
    if sample.split == "train":
        return "train"
    if sample.label == "good":
        return "eval"
    return "learn" if Path(sample.path).name in learn[sample.defect_type] else "eval"


def build_index(
    samples: Sequence[Sample], *, category: str, protocol: str = "first-third", shots: int = 3, seed: int = 0
) -> list[IndexEntry]:
    """Give every sample its role in the few-shot protocol.

    Args:
        samples: the category's sample table (``mvtec.load_category``).
        category: category name stored in every entry.
        protocol: "first-third" (default) or "random-k".
        shots: K for random-k.
        seed: random-k seed; the split depends only on (protocol, K, seed) and the anomaly file names.

    Returns:
        One IndexEntry per sample, in the order of ``samples``.

    Raises:
        AnogenError: unknown protocol, ``shots`` < 1 or larger than a defect type's anomaly count.
    """
    if protocol not in PROTOCOLS:
        raise AnogenError(f"unknown protocol '{protocol}'; choose one of {', '.join(PROTOCOLS)}")
    real: dict[str, list[str]] = defaultdict(list)
    for sample in samples:
        if sample.split == "test" and sample.label == "anomaly":
            real[sample.defect_type].append(Path(sample.path).name)
    learn = {
        defect: learn_shots(names, protocol=protocol, shots=shots, seed=seed, defect=defect)
        for defect, names in real.items()
    }
    fields = [f.name for f in dataclasses.fields(Sample)]
    entries = [
        IndexEntry(**{name: getattr(sample, name) for name in fields}, role=_role(sample, learn), category=category)
        for sample in samples
    ]
    return drop_eval_duplicates(entries)


def drop_eval_duplicates(entries: Sequence[IndexEntry]) -> list[IndexEntry]:
    """``entries`` without the eval rows whose sha256 equals a train or learn row's (one warning each).

    Rows without a hash ("") are never dropped.
    """
    seen = {e.sha256: (e.path, e.role) for e in entries if e.role != "eval" and e.sha256}
    kept = []
    for entry in entries:
        twin = seen.get(entry.sha256) if entry.role == "eval" and entry.sha256 else None
        if twin is None:
            kept.append(entry)
            continue
        log.warning("dropped eval image %s: byte-identical to %s image %s (kept there)", entry.path, twin[1], twin[0])
    return kept


def role_counts(entries: Sequence[IndexEntry]) -> dict[str, dict[str, int]]:
    """{defect type: {role: count}} with "good" for good images; for the CLI's summary table."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"train": 0, "learn": 0, "eval": 0})
    for entry in entries:
        counts[entry.defect_type][entry.role] += 1
    return {k: counts[k] for k in sorted(counts, key=lambda d: (d != "good", d))}
