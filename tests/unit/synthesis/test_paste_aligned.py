"""paste-aligned: the shot is turned and scaled so its surroundings continue the target's periodic texture."""

from __future__ import annotations

import cv2
import numpy as np

from anogen_data.synthesis.paste_aligned import match_pose, pose_matrix

PERIOD = 32


def _grid(size: int, angle_deg: float = 0.0) -> np.ndarray:
    """A mesh-like periodic texture, uint8 RGB (size, size, 3), wires at ``angle_deg``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - size / 2
    t = np.deg2rad(angle_deg)
    u, v = xx * np.cos(t) + yy * np.sin(t), -xx * np.sin(t) + yy * np.cos(t)
    wires = np.maximum(np.cos(2 * np.pi * u / PERIOD), np.cos(2 * np.pi * v / PERIOD)) > 0.8
    grey = np.where(wires, 60, 190).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def test_match_pose_undoes_the_shots_turn_and_the_paste_keeps_everything_else():
    target = _grid(384)
    shot = _grid(160, angle_deg=12.0)  # the shot's wires are turned by 12 deg against the target's
    mask = np.zeros((160, 160), np.uint8)
    cv2.circle(mask, (80, 80), 10, 255, -1)
    shot[mask > 0] = 10  # the defect: a dark blob on the wires
    pose = match_pose(shot, mask, target, centre=(192, 192))
    assert abs(abs(pose["angle"]) - 12) <= 3 and abs(pose["scale"] - 1.0) <= 0.1 and pose["score"] > 0.9, pose
    m, (h, w) = pose_matrix(mask.shape, pose["angle"], pose["scale"])
    context = cv2.warpAffine(shot, m, (w, h))
    valid = cv2.warpAffine(np.full(mask.shape, 255, np.uint8), m, (w, h), flags=cv2.INTER_NEAREST) > 0
    ring = valid & (cv2.warpAffine(cv2.dilate(mask, np.ones((19, 19), np.uint8)), m, (w, h)) == 0)
    placed = target[pose["y"] : pose["y"] + h, pose["x"] : pose["x"] + w]
    # the turned shot's wires now lie on the target's wires (differences only at anti-aliased edges)
    assert (np.abs(context.astype(int) - placed.astype(int))[ring].max(axis=-1) < 40).mean() > 0.9
    unturned = cv2.warpAffine(shot, pose_matrix(mask.shape, 0.0, 1.0)[0], (160, 160))
    same_place = target[pose["y"] : pose["y"] + 160, pose["x"] : pose["x"] + 160]
    plain = (np.abs(unturned.astype(int) - same_place.astype(int)).max(axis=-1) < 40)[mask == 0].mean()
    assert plain < 0.85  # pasted without the turn, the wires would not continue


def test_generate_with_paste_aligned_changes_only_the_mask_and_its_feather(run_cli, demo_data_root, demo_index, tmp_path):
    import json
    from pathlib import Path

    from anogen_data.data.image_io import read_image, read_mask

    code, _, err = run_cli("generate", "--data", demo_data_root, "--category", "demo", "--index", demo_index, "--n", "4",
                           "--backend", "paste-aligned", "--out", tmp_path, "--name", "aligned")
    assert code == 0, err
    version = tmp_path / "aligned" / "v1"
    rows = [json.loads(line) for line in (version / "records.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["backend"] == "paste-aligned" and "pose" in r["recipe"] for r in rows)
    for row in rows:
        image = read_image(version / row["image_path"]).astype(int)
        mask = read_mask(version / row["mask_path"])
        source = read_image(Path(row["source_path"])).astype(int)
        assert mask.any()
        near = cv2.dilate(mask, np.ones((9, 9), np.uint8)) > 0
        assert np.array_equal(image[~near], source[~near])  # nothing changes away from the defect
        x0, y0, x1, y1 = row["bbox_xyxy"]
        ys, xs = np.nonzero(mask)
        assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
