"""Per-sample quality filters: each scores a sample, thresholds from ``params.yaml`` ``filter:`` decide.

Modules: ``mask_sanity`` (area, pieces, on the object), ``change`` (mask-image agreement, leakage),
``embed`` (defect crops and EfficientNet-Lite0 embeddings), ``realism`` (distance to real learn shots
and to good surface), ``duplicates`` (near-duplicate scan), ``runner`` (all of them + keep/drop).
Dataset-level metrics live in ``anogen_data.quality``.
"""
