"""anogen-data: few-shot synthetic defect datasets for industrial visual inspection.

Implements AnoGen (Gui et al., "Few-Shot Anomaly-Driven Generation for Anomaly Classification and
Segmentation", ECCV 2024) and DualAnoDiff (Jin et al., "Dual-Interrelated Diffusion Model for
Few-Shot Anomaly Image Generation", CVPR 2025) as a versioned dataset tool.

Mask convention everywhere: uint8 (H, W), 255 = defect, 0 = good.
"""

__version__ = "0.1.0"
