"""Downstream benchmark: which training data makes the bundled detector best on held-out REAL anomalies?

For each dataset under ``--data`` (default ``../shared/data``) and each data source, with the same
detector, budget and seed: index (first-third protocol) -> generate a version -> ``train`` ->
``benchmark`` on the eval split (real test/good + real anomalies no source ever saw). Sources:

- ``perlin``: DRAEM's own synthesis (Zavrtanik et al., ICCV 2021), no real anomalies;
- ``cutpaste``: CutPaste (Li et al., CVPR 2021), no real anomalies;
- ``paste``: real learn-shot defects transplanted onto good images (few-shot, like AnoGen's setting);
- ``real-shots``: only the learn shots themselves, flip-augmented;
- ``anogen`` / ``dualanodiff``: diffusion backends, only with ``--concepts``/``--model`` (GPU);
- ``no-synthetic``: a PatchCore-style detector (Roth et al., CVPR 2022) on the same pretrained
  EfficientNet-Lite0 features, trained on good images only: what a user would do without our data.

Aims (AnoGen, Gui et al., ECCV 2024: +5.8 pixel AP over DRAEM; U-Net protocol tables of AnomalyDiffusion
and DualAnoDiff: 54.1 pixel AP with DRAEM-style data vs. 81-85 with diffusion data): ``paste`` beats
``perlin`` by >= 5 pixel-AP points on bottle and kolektorsdd, and the best source beats ``no-synthetic`` on
pixel AP and AUPRO. Prints one table and appends it to ``benchmarks/RESULTS.md``. Nothing is tuned on
the eval split: every setting below is fixed before the run.

Resolution: long side 256 px (KolektorSDD 500x1250 -> 128x256 letterboxed, never squashed): the
teacher's stride-16 map is then 16x16 on square images, enough for bottle's defects, and one run of
the four datasets x five sources fits the 45-minute CPU budget at 8 epochs.

With ``--seeds 0,1,2`` every dataset is run once per seed (the seed changes the synthetic data and the
detector's initialisation, never the eval split); the table then shows each seed's rows and their
means, and the aims are checked on the means (at 6 CPU epochs one seed moved bottle's perlin row by 8
pixel-AP points, see RESULTS.md).

Usage:
    python benchmarks/downstream.py                        # the full 4-dataset run
    python benchmarks/downstream.py --datasets mvtec_bottle,kolektorsdd --epochs 4 --image-size 192
    python benchmarks/downstream.py --datasets mvtec_bottle --sources perlin,paste --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from anogen_data.config import BenchmarkConfig, TrainConfig
from anogen_data.stages.benchmark import eval_entries, load_eval_images, run_benchmark, score_images
from anogen_data.stages.train import run_train

COLUMNS = ("image_auroc", "pixel_auroc", "pixel_ap", "pixel_f1_max", "aupro")
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def cli(*args) -> None:
    """Run ``anogen-data ARGS`` in-process; raise on a non-zero exit."""
    from anogen_data.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise RuntimeError(f"anogen-data {' '.join(map(str, args))} exited {exc.code}") from None


def category_of(dataset: Path) -> str:
    """The one category folder of a shared dataset (``mvtec_bottle/bottle``)."""
    found = [p.name for p in dataset.iterdir() if p.is_dir() and (p / "train").is_dir()]
    if len(found) != 1:
        raise SystemExit(f"{dataset}: expected one category folder, found {found}")
    return found[0]


def make_version(source: str, root: Path, category: str, index: Path, work: Path, n: int, seed: int) -> Path:
    """A dataset version for ``source``: generate (+ export) for backends, export of learn shots for real-shots."""
    if source == "real-shots":
        cli("export", "--index", index, "--out", work / "datasets", "--name", source)
    else:
        cli("generate", "--data", root, "--category", category, "--index", index, "--n", n, "--backend", source,
            "--seed", seed, "--out", work / "datasets", "--name", source)
    return work / "datasets" / source / "v1"


def patchcore_row(index: Path, image_size: int, seed: int) -> dict:
    """The no-synthetic row: PatchCore on train/good, scored like every other detector."""
    from anogen_data.data.image_io import image_size as size_of
    from anogen_data.detector.data import canvas_for
    from anogen_data.detector.metrics import evaluate
    from anogen_data.detector.patchcore import PatchCore
    from anogen_data.features.efficientnet_lite import load_efficientnet_lite0
    from anogen_data.records import read_index

    good = [e for e in read_index(index) if e.role == "train" and e.label == "good"]
    canvas = canvas_for(*size_of(Path(good[0].path)), image_size)
    start = time.perf_counter()
    train_images, *_ = load_eval_images(good, canvas)
    model = PatchCore(load_efficientnet_lite0(), coreset_ratio=0.1, seed=seed).fit(train_images)
    seconds = time.perf_counter() - start
    entries = eval_entries(index)
    images, masks, contents, labels = load_eval_images(entries, canvas)
    maps = model.predict(images)
    maps = maps / maps.max().clamp_min(1e-12)
    cropped, scores = score_images(maps, contents, max(3, min(canvas) // 16))
    return {**evaluate(scores, labels, cropped, masks), "train_s": seconds}


def run_dataset(dataset: Path, args, work: Path) -> list[dict]:
    category = category_of(dataset)
    work.mkdir(parents=True, exist_ok=True)
    index = work / "index" / "index.jsonl"
    if not index.is_file():
        cli("index", "--data", dataset, "--category", category, "--out", work / "index", "--seed", args.seed)
    rows = []
    for source in args.sources:
        print(f"== {dataset.name} / {source}", flush=True)
        version = make_version(source, dataset, category, index, work / source, args.n, args.seed)
        config = TrainConfig(
            model=args.model, epochs=args.epochs, image_size=args.image_size, seed=args.seed,
            real_shots=source == "real-shots", augment=source == "real-shots",
        )
        start = time.perf_counter()
        run_train(work / source / "model", config, version=version, force=True, progress=False)
        seconds = time.perf_counter() - start
        metrics = run_benchmark(work / source / "model", index, work / source / "bench", BenchmarkConfig(), force=True)
        rows.append({"dataset": dataset.name, "source": source, **{k: metrics[k] for k in COLUMNS}, "train_s": seconds})
    print(f"== {dataset.name} / no-synthetic", flush=True)
    row = patchcore_row(index, args.image_size, args.seed)
    rows.append({"dataset": dataset.name, "source": "no-synthetic (PatchCore)", **{k: row[k] for k in COLUMNS}, "train_s": row["train_s"]})
    return rows


def mean_rows(rows: list[dict]) -> list[dict]:
    """One row per (dataset, source): the mean of its seeds' metrics and train times."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["source"]), []).append(r)
    return [
        {"dataset": d, "source": f"{s} (mean of {len(rs)})",
         **{k: float(np.mean([r[k] for r in rs])) for k in (*COLUMNS, "train_s")}}
        for (d, s), rs in groups.items()
    ]


def fmt(value) -> str:
    return "n/a" if value is None or value != value else f"{100 * value:.1f}"


def table(rows: list[dict]) -> str:
    head = "| dataset | source | image AUROC | pixel AUROC | pixel AP | pixel F1-max | AUPRO | train time (s) |\n"
    head += "|---|---|---|---|---|---|---|---|\n"
    return head + "".join(
        f"| {r['dataset']} | {r['source']} | " + " | ".join(fmt(r[k]) for k in COLUMNS) + f" | {r['train_s']:.0f} |\n"
        for r in rows
    )


def verdicts(rows: list[dict]) -> list[str]:
    """The issue's aims, checked on the table (pixel AP and AUPRO, in points)."""
    out = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        by = {r["source"].split(" (mean")[0]: r for r in rows if r["dataset"] == dataset}
        if "paste" in by and "perlin" in by:
            gain = 100 * (by["paste"]["pixel_ap"] - by["perlin"]["pixel_ap"])
            out.append(f"{dataset}: paste - perlin = {gain:+.1f} pixel-AP points ({'MET' if gain >= 5 else 'MISSED'}, aim >= +5)")
        synthetic = [r for s, r in by.items() if not s.startswith("no-synthetic")]
        base = next((r for s, r in by.items() if s.startswith("no-synthetic")), None)
        if synthetic and base:
            best = max(synthetic, key=lambda r: r["pixel_ap"])
            met = best["pixel_ap"] > base["pixel_ap"] and best["aupro"] > base["aupro"]
            out.append(
                f"{dataset}: best source {best['source']} vs no-synthetic: pixel AP {fmt(best['pixel_ap'])} vs "
                f"{fmt(base['pixel_ap'])}, AUPRO {fmt(best['aupro'])} vs {fmt(base['aupro'])} ({'MET' if met else 'MISSED'})"
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", default="mvtec_bottle,mvtec_grid,hazelnut_toy,kolektorsdd")
    parser.add_argument("--sources", default="perlin,cutpaste,paste,real-shots")
    parser.add_argument("--model", default="destseg", help="detector for every source (the CPU default)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--n", type=int, default=100, help="synthetic anomalies per source")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", default="", help="comma-separated seeds to average over (overrides --seed)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    parser.add_argument("--work", type=Path, default=Path("runs/downstream"))
    parser.add_argument("--note", default="", help="a sentence added under the table (e.g. the reduced budget)")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    args.sources = [s for s in args.sources.split(",") if s]
    if args.threads:
        torch.set_num_threads(args.threads)
    np.random.seed(args.seed)  # nothing should use it; fixed in case a library does
    start = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",") if s] or [args.seed]
    rows = []
    for name in [d for d in args.datasets.split(",") if d]:
        for seed in seeds:
            work = args.work / name if len(seeds) == 1 else args.work / name / f"seed{seed}"
            run = argparse.Namespace(**{**vars(args), "seed": seed})
            rows += [{**r, "seed": seed} for r in run_dataset(args.data / name, run, work)]
            (args.work / "rows.json").write_text(json.dumps(rows, indent=1))
    minutes = (time.perf_counter() - start) / 60
    if len(seeds) == 1:
        text, checks = table(rows), verdicts(rows)
    else:
        per_seed = [{**r, "source": f"{r['source']} @ seed {r['seed']}"} for r in rows]
        text = table(per_seed + mean_rows(rows))
        checks = [f"seed {s}: {c}" for s in seeds for c in verdicts([r for r in rows if r["seed"] == s])]
        checks += [f"mean of seeds {','.join(map(str, seeds))}: {c}" for c in verdicts(mean_rows(rows))]
    print(text + "\n".join(checks) + f"\ntotal {minutes:.1f} min")
    if args.no_append:
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from aupro_speed import machine

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"\n## Downstream detector benchmark ({stamp})\n\n"
        f"Machine: {machine()}. `benchmarks/downstream.py --datasets {args.datasets} --sources {','.join(args.sources)} "
        f"--model {args.model} --epochs {args.epochs} --image-size {args.image_size} --n {args.n} "
        f"{'--seeds ' + args.seeds if len(seeds) > 1 else '--seed ' + str(args.seed)}`; "
        f"total {minutes:.1f} min. Metrics in %, on each dataset's eval split (real test/good + held-out real "
        "anomalies, first-third protocol).\n\n" + text + "\n" + "".join(f"- {c}\n" for c in checks)
        + (f"\n{args.note}\n" if args.note else "")
    )
    with open(Path(__file__).with_name("RESULTS.md"), "a", encoding="utf-8") as fh:
        fh.write(section)


if __name__ == "__main__":
    main()
