"""Few-shot concept learning: textual inversion (AnoGen, ECCV 2024), dual-branch LoRA (DualAnoDiff, CVPR 2025)."""
