"""``stats.json`` of a version (a DVC metrics file), accumulated one image at a time.

Counts per split / defect type / source, histograms of the mask area (fraction of the image, one value
per anomalous image) and of the box size (sqrt(box area / image area), one value per connected
instance), defects per image, and filter pass rates when filter scores were given.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from anogen_data.filters.rates import pass_rates
from anogen_data.writers.coco import Instance

FRACTION_BINS = [0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]  # log-ish: MVTec defects span 0.1%-30%


class StatsAccumulator:
    """Add each written image with ``add``; ``result`` gives the JSON-able stats."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self.area_fractions = np.zeros(len(FRACTION_BINS) - 1, dtype=np.int64)
        self.box_fractions = np.zeros(len(FRACTION_BINS) - 1, dtype=np.int64)
        self.defects_per_image: Counter[int] = Counter()
        self.mask_quality: Counter[str] = Counter()
        self.instances = 0
        self.empty_anomalies = 0

    @staticmethod
    def _bin(value: float) -> int:
        return int(np.clip(np.searchsorted(FRACTION_BINS, value, side="right") - 1, 0, len(FRACTION_BINS) - 2))

    def add(self, split: str, defect_type: str, source: str, width: int, height: int,
            instances: list[Instance], mask_quality: str | None) -> None:
        """Count one image; ``instances`` is empty for good images."""
        self.counts[(split, defect_type, source)] += 1
        if defect_type == "good":
            return
        self.mask_quality[mask_quality or "pixel"] += 1
        self.defects_per_image[len(instances)] += 1
        if not instances:
            self.empty_anomalies += 1
            return
        image_area = float(width * height)
        self.instances += len(instances)
        self.area_fractions[self._bin(sum(i.area for i in instances) / image_area)] += 1
        for inst in instances:
            self.box_fractions[self._bin(math.sqrt(inst.bbox_xywh[2] * inst.bbox_xywh[3] / image_area))] += 1

    def _nested_counts(self) -> dict:
        nested: dict = {}
        for (split, defect, source), n in sorted(self.counts.items()):
            nested.setdefault(split, {}).setdefault(defect, {})[source] = n
        return nested

    def totals(self) -> dict[str, int]:
        """Image counts overall, per split, per source, and anomalies."""
        totals: Counter[str] = Counter()
        for (split, defect, source), n in self.counts.items():
            totals["images"] += n
            totals[split] += n
            totals[source] += n
            totals["anomalies" if defect != "good" else "good"] += n
        return {k: totals.get(k, 0) for k in ("images", "train", "test", "real", "synthetic", "good", "anomalies")}

    def result(self, scores: dict[str, dict] | None = None) -> dict:
        """The stats as a JSON-able dict (sorted, stable)."""
        return {
            "totals": {**self.totals(), "instances": self.instances, "anomalies_without_instances": self.empty_anomalies},
            "counts": self._nested_counts(),
            "mask_area_fraction": {"bins": FRACTION_BINS, "counts": self.area_fractions.tolist()},
            "box_size_fraction": {"bins": FRACTION_BINS, "counts": self.box_fractions.tolist()},
            "defects_per_image": {str(k): v for k, v in sorted(self.defects_per_image.items())},
            "mask_quality": dict(sorted(self.mask_quality.items())),
            "filters": pass_rates(list(scores.values())) if scores is not None else None,
        }
