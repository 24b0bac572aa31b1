"""The dataset card ``hf/README.md``: Hub YAML front matter plus a body saying how the version was made.

Front matter keys follow the Hub dataset card spec (``pretty_name``, ``configs`` with per-split
``data_files``, ``license``, ``task_categories``, ``tags``, ``size_categories``, ``dataset_info``). The
body gives the usage snippets (``datasets`` and anomalib), counts, the layout rule, the lineage, the
contact sheet and citations of the methods that made the data. The usage block sits between
``USAGE_BEGIN``/``USAGE_END`` markers: ``push`` replaces it with the repo id and tag
(``with_hub_usage``) in the copy it uploads; the version's own card keeps the local form.
"""

from __future__ import annotations

import re

CITATIONS = {
    "mvtec": 'Bergmann et al., "MVTec AD: A Comprehensive Real-World Dataset for Unsupervised Anomaly Detection", CVPR 2019.',
    "anogen": 'Gui et al., "Few-Shot Anomaly-Driven Generation for Anomaly Classification and Segmentation", ECCV 2024.',
    "dualanodiff": 'Jin et al., "Dual-Interrelated Diffusion Model for Few-Shot Anomaly Image Generation", CVPR 2025.',
    "perlin": 'Zavrtanik et al., "DRAEM: A Discriminatively Trained Reconstruction Embedding for Surface Anomaly Detection", ICCV 2021.',
    "cutpaste": 'Li et al., "CutPaste: Self-Supervised Learning for Anomaly Detection and Localization", CVPR 2021.',
    "paste": "Real-defect transplant: learn-shot defects cut by their masks and pasted onto good images (no paper).",
}

LEARN_WRITTEN = """\
  - `real_NNN.png`: the few real anomalies the generator learned from (index role `learn`), written as
    training evidence (export option `include_learn: true`).
"""
LEARN_LEFT_OUT = """\
  - The few real anomalies the generator learned from (index role `learn`) are left out of this version
    (export option `include_learn: false`).
"""
USAGE_BEGIN, USAGE_END = "<!-- usage -->", "<!-- /usage -->"

LAYOUT_RULE = """\
- `mvtec/{category}/` is strictly MVTec AD: `train/good` (real good images, index role `train`),
  `test/good` and `test/<defect>` (real held-out images only, index role `eval`) and one
  `ground_truth/<defect>/NNN_mask.png` per test anomaly. It never holds synthetic or learn-shot images.
- `synthetic/{category}/images/<defect>/` holds the training anomalies, each with its mask under the same
  name in `synthetic/{category}/masks/<defect>/`:
{learn_rule}  - `syn_NNNNNN.png`: synthetic anomalies. Records with `mask_quality: box` (AnoGen weak labels) have
    the filled box as mask and COCO annotations marked `"mask_quality": "box"`.
"""


def size_category(n: int) -> str:
    """The Hub ``size_categories`` bucket of ``n`` rows."""
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"


def pretty_name(name: str, version: int, category: str) -> str:
    """The card's ``pretty_name``: "<name> v<N> (<category> anomalies)"."""
    return f"{name} v{version} ({category} anomalies)"


def front_matter(splits: dict[str, dict], license_name: str, backends: list[str], *, title: str = "",
                 defect_types: list[str] = ()) -> str:
    """The YAML front matter (without the ``---`` fences), built with ``huggingface_hub.DatasetCardData``.

    Args:
        splits: {split: {"rows": n, "bytes": parquet bytes, "files": shard names under data/}} in the
            order the card lists them (``HfWriter.close``).
        title: the ``pretty_name`` (left out when empty).
        defect_types: names of the ``defect_type`` ClassLabel (``hf.defect_names``).

    ``datasets`` keys a local folder's cache on the card alone (a hash of ``configs`` and ``dataset_info``;
    the files' mtimes only count when no ``configs`` block exists). So ``configs`` lists each split's exact
    shard names, which carry their sha256: versions with equal split sizes but different images get
    different cache entries, and a Hub repo's stale shards from an earlier push are never read.
    """
    from datasets import DatasetInfo, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCardData

    from anogen_data.writers.hf import hf_features

    tags = ["anomaly-detection", "industrial-inspection", "mvtec", *(["synthetic", *backends] if backends else [])]
    card = DatasetCardData(
        pretty_name=title or None,
        license=license_name,
        task_categories=["image-segmentation", "image-classification"],
        tags=tags,
        size_categories=[size_category(sum(s["rows"] for s in splits.values()))],
        configs=[{"config_name": "default", "data_files": [
            {"split": s, "path": [f"data/{f}" for f in meta["files"]]} for s, meta in splits.items()]}],
    )
    split_dict = SplitDict()
    for name, meta in splits.items():
        split_dict.add(SplitInfo(name=name, num_bytes=meta["bytes"], num_examples=meta["rows"]))
    info = DatasetInfo(features=hf_features(defect_types), splits=split_dict, config_name="default",
                       dataset_size=sum(s["bytes"] for s in splits.values()))
    DatasetInfosDict({"default": info}).to_dataset_card_data(card)
    return card.to_yaml()


def _counts_table(counts: dict) -> str:
    lines = ["| split | defect type | real | synthetic |", "|---|---|---|---|"]
    for split, defects in counts.items():
        for defect, sources in defects.items():
            lines.append(f"| {split} | {defect} | {sources.get('real', 0)} | {sources.get('synthetic', 0)} |")
    return "\n".join(lines)


def usage(*, name: str, version: int, category: str, splits: list[str], repo_id: str | None = None,
          tag: str | None = None, trees: bool = True) -> str:
    """The usage block: ``datasets`` and anomalib calls for this version, locally or, with ``repo_id``,
    from the Hub (``tag`` pins the version; anomalib's calls need the trees, ``push --include-trees``)."""
    rev = f', revision="{tag}"' if tag else ""
    if repo_id:
        source = f'"{repo_id}"{rev}'
        fetch = (f'from huggingface_hub import snapshot_download\n'
                 f'root = snapshot_download("{repo_id}", repo_type="dataset"{rev})  # the version\'s files\n')
    else:
        source = f'"datasets/{name}/v{version}/hf"'
        fetch = f'root = "datasets/{name}/v{version}"  # the version folder\n'
    lines = [USAGE_BEGIN, "```python", "from datasets import load_dataset",
             f"ds = load_dataset({source})  # splits: {', '.join(splits)}",
             'names = ds["train"].features["defect_type"].names  # defect_type is a ClassLabel', "```", ""]
    if trees:
        lines += [
            "With anomalib, the real benchmark (`MVTecAD`) and the training anomalies (`Folder`, which",
            "labels `abnormal_dir` images abnormal with the mask of the same name and puts them in its test split):",
            "", "```python", "from anomalib.data import Folder, MVTecAD", fetch.rstrip("\n"),
            f'real = MVTecAD(root=f"{{root}}/mvtec", category="{category}")',
            f'synthetic = Folder(name="{name}-v{version}", root=root, normal_dir="mvtec/{category}/train/good",',
            f'                   abnormal_dir="synthetic/{category}/images", mask_dir="synthetic/{category}/masks",',
            f'                   normal_test_dir="mvtec/{category}/test/good")',
            "```", ""]
    else:
        lines += ["This repo holds the parquet files only (pushed without `--include-trees`): anomalib's",
                  "`MVTecAD` and `Folder` need the version's `mvtec/` and `synthetic/` trees.", ""]
    return "\n".join(lines + [USAGE_END])


def with_hub_usage(card: str, *, repo_id: str, tag: str, trees: bool, name: str, version: int, category: str,
                   splits: list[str]) -> str:
    """``card`` with its usage block rewritten for the Hub repo ``repo_id`` at ``tag``.

    Raises:
        ValueError: the card has no usage block (not written by ``render_card``).
    """
    pattern = re.compile(re.escape(USAGE_BEGIN) + ".*?" + re.escape(USAGE_END), re.DOTALL)
    if not pattern.search(card):
        raise ValueError("the dataset card has no usage block")
    block = usage(name=name, version=version, category=category, splits=splits, repo_id=repo_id, tag=tag, trees=trees)
    return pattern.sub(lambda _: block, card, count=1)


def _placement_section(placement) -> str:
    """"Where defects were placed" from propose's ``placement.json`` (via the lineage); "" without one."""
    if not isinstance(placement, dict) or not isinstance(placement.get("kind"), str):
        return ""
    def share(key: str) -> str:
        value = placement.get(key)
        return f"{value:.0%}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "n/a"
    note = placement.get("note")
    lines = [
        "## Where defects were placed", "",
        f"- Category read as: {placement['kind']} (cue: {placement.get('cue') or 'none'}); placement: "
        f"{placement.get('placement', 'n/a')}.",
        f"- Estimated foreground: {share('foreground_fraction')} of the frame; learn-shot defect pixels on it: "
        f"{share('agreement')}.",
    ]
    if isinstance(note, str) and note:
        lines.append(f"- Note: {note}")
    return "\n".join(lines) + "\n\n"


def render_card(*, name: str, category: str, version: int, stats: dict, lineage: dict, splits: dict[str, dict],
                license_name: str, backends: list[str], include_learn: bool = True,
                defect_types: list[str] = ()) -> str:
    """The full ``README.md`` text of the ``hf/`` folder."""
    meta = front_matter(splits, license_name, backends, title=pretty_name(name, version, category),
                        defect_types=defect_types)
    filters = stats.get("filters")
    filter_line = (
        f"Filters scored {filters['scored']} synthetic images and kept {filters['kept']} "
        f"(pass rate {filters['pass_rate']}); per filter: {filters['per_filter']}."
        if filters else "No quality filter ran on this version."
    )
    cites = [CITATIONS["mvtec"]] + [CITATIONS[b] for b in backends if b in CITATIONS]
    totals = stats["totals"]
    body = f"""# {pretty_name(name, version, category)}

Anomaly-detection dataset for the `{category}` category written by `anogen-data` {lineage.get('package_version', '')}:
{totals['images']} images ({totals['real']} real, {totals['synthetic']} synthetic; {totals['anomalies']} anomalies
with {totals['instances']} connected defect instances).

{usage(name=name, version=version, category=category, splits=list(splits))}

## Counts

{_counts_table(stats['counts'])}

## How it was made

- Synthesis backends: {", ".join(backends) if backends else "none (real images only)"}.
- {filter_line}
- Source index sha256: `{lineage.get('index_sha256')}`; git commit: `{lineage.get('git_commit')}`;
  seeds: `{lineage.get('seeds')}`. The version's `manifest.json` lists every file's sha256 and the
  resolved stage configs; `records.jsonl` holds each synthetic image's replayable recipe.

{_placement_section(lineage.get("placement"))}## Layout rule (the version's image trees)

{LAYOUT_RULE.format(category=category, learn_rule=LEARN_WRITTEN if include_learn else LEARN_LEFT_OUT)}
Columns: `image`, `mask` (255 = defect; None for good images), `label` (good/anomaly), `defect_type`
(ClassLabel: {", ".join(f"`{d}`" for d in defect_types) or "`good`"}), `category`, `bboxes` (XYWH per
connected instance), `source` (real/synthetic), `backend`, `seed`, `mask_quality` (pixel/box),
`file_name` (path in the version's trees).

## Contact sheet

![contact sheet: samples with the mask outline in red](contact_sheet.png)

## Citations

""" + "\n".join(f"- {c}" for c in cites) + "\n"
    return f"---\n{meta}\n---\n\n{body}"
