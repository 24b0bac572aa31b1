"""Dataset-level generation quality: KID on EfficientNet-Lite0 features, diversity, mask agreement."""
