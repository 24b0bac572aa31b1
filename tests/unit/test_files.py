"""``anogen_data.files``: helpers shared by the stages."""

from __future__ import annotations

from anogen_data.files import split_metrics


def test_split_metrics_keeps_numbers_and_moves_the_rest_with_the_same_nesting():
    report = {
        "aupro": 0.5, "n_eval": 25, "image_ap": None, "model": "unet", "index_sha256": "ab" * 32,
        "canvas": [64, 64], "ok": True,
        "config": {"device": "auto", "fpr_limit": 0.3},  # settings, not results: info, whole
        "per_defect": {"spot": {"kid": {"mean": 0.1, "backbone": "x"}}, "empty": {}},
    }
    numbers, info = split_metrics(report)
    assert numbers == {"aupro": 0.5, "n_eval": 25, "image_ap": None, "per_defect": {"spot": {"kid": {"mean": 0.1}}}}
    assert info == {"model": "unet", "index_sha256": "ab" * 32, "canvas": [64, 64], "ok": True,
                    "config": {"device": "auto", "fpr_limit": 0.3}, "per_defect": {"spot": {"kid": {"backbone": "x"}}}}
