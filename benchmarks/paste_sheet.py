"""Contact sheet of generated anomalies next to the learn shots they came from, to judge the data by eye.

One row per defect type: the learn shot (whole image, then zoomed on its mask), then the first three
generated records of that type (whole, zoomed); a last row of DRAEM Perlin samples (in-category textures,
as the detector's baseline makes them) for comparison. Mask contours in red; tiles 224 px. Also prints,
per record, the mask area and how much of the mask visibly changed against the record's source image
(max channel difference > 12 grey levels), and the area quantiles of learn, eval, generated and Perlin
masks: the evidence used for the grid note in RESULTS.md (issue 15).

Usage:
    python benchmarks/paste_sheet.py runs/downstream/mvtec_grid/paste/datasets/paste/v1 \\
        runs/downstream/mvtec_grid/index/index.jsonl runs/grid_sheet.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from anogen_data.data.image_io import read_image, read_mask, write_png
from anogen_data.detector import augment

TILE = 224


def tile(image: np.ndarray, mask: np.ndarray, crop=None, label: str = "") -> np.ndarray:
    """A TILE x TILE RGB tile of ``image`` (uint8) with ``mask``'s outer contours drawn in red."""
    if crop is not None:
        x0, y0, x1, y1 = crop
        image, mask = image[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    image = cv2.resize(image, (TILE, TILE), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(mask, (TILE, TILE), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours((mask > 127).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    image = image.copy()
    cv2.drawContours(image, contours, -1, (255, 0, 0), 1)
    cv2.putText(image, label, (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1)
    return image


def zoom_box(mask: np.ndarray, pad: float = 0.5) -> tuple[int, int, int, int] | None:
    """A square (x0, y0, x1, y1) around the mask's pixels with ``pad`` x its side + 64 px of context."""
    ys, xs = np.nonzero(mask > 127)
    if not ys.size:
        return None
    h, w = mask.shape
    side = int(min(max(np.ptp(ys), np.ptp(xs)) * (1 + pad) + 64, h, w))
    x0 = int(np.clip((xs.min() + xs.max()) / 2 - side / 2, 0, w - side))
    y0 = int(np.clip((ys.min() + ys.max()) / 2 - side / 2, 0, h - side))
    return x0, y0, x0 + side, y0 + side


def quantiles(name: str, areas: list[float]) -> str:
    q = np.percentile(100 * np.asarray(areas), [0, 50, 100])
    return f"{name}: {len(areas)} masks, area % of the image min {q[0]:.2f} median {q[1]:.2f} max {q[2]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version", type=Path)
    parser.add_argument("index", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    entries = [json.loads(line) for line in args.index.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in (args.version / "records.jsonl").read_text().splitlines() if line.strip()]
    rows = []
    for shot in [e for e in entries if e["role"] == "learn"]:
        image, mask = read_image(Path(shot["path"])), read_mask(Path(shot["mask_path"]))
        row = [tile(image, mask, None, "learn " + shot["defect_type"]), tile(image, mask, zoom_box(mask), "zoom")]
        for rec in [r for r in records if r["defect_type"] == shot["defect_type"]][:3]:
            syn, syn_mask = read_image(args.version / rec["image_path"]), read_mask(args.version / rec["mask_path"])
            row += [tile(syn, syn_mask, None, rec["id"]), tile(syn, syn_mask, zoom_box(syn_mask), "zoom")]
        row += [np.zeros((TILE, TILE, 3), np.uint8)] * (8 - len(row))
        rows.append(np.concatenate(row[:8], 1))
    good = sorted(p for p in (args.version / "mvtec").glob("*/train/good/*.png"))
    rng = np.random.default_rng(0)
    row, perlin_areas = [], []
    for k in range(50):
        clean = cv2.resize(read_image(good[k % len(good)]), (256, 256)).astype(np.float32) / 255
        texture = cv2.resize(read_image(good[(k + 5) % len(good)]), (256, 256)).astype(np.float32) / 255
        out, mask = augment.perlin_anomaly(clean, texture, rng)
        perlin_areas.append(float(mask.mean()))
        if k < 4:
            out8, mask8 = (out * 255).astype(np.uint8), (mask * 255).astype(np.uint8)
            row += [tile(out8, mask8, None, "perlin"), tile(out8, mask8, zoom_box(mask8), "zoom")]
    rows.append(np.concatenate(row, 1))
    write_png(args.out, np.concatenate(rows, 0))
    for rec in records:
        syn = read_image(args.version / rec["image_path"]).astype(int)
        mask = read_mask(args.version / rec["mask_path"]) > 127
        diff = np.abs(syn - read_image(Path(rec["source_path"])).astype(int)).max(2)
        print(f"{rec['id']} {rec['defect_type']:<20} mask {100 * mask.mean():.2f} %  changed inside "
              f"{(diff[mask] > 12).mean():.2f}  mean |diff| inside {diff[mask].mean():.1f}")
    for role in ("learn", "eval"):
        print(quantiles(role, [float((read_mask(Path(e["mask_path"])) > 127).mean()) for e in entries
                               if e["role"] == role and e["label"] == "anomaly"]))
    print(quantiles("generated", [float((read_mask(args.version / r["mask_path"]) > 127).mean()) for r in records]))
    print(quantiles("perlin (256 px)", perlin_areas))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
