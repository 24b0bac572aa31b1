"""Acceptance table of issue 13: bad inputs through the real CLI each exit 1 with ONE line on stderr that
names the file/field, print no traceback, and leave the whole temporary tree as it was (nothing written
anywhere: not under --out, not beside it, not where a hostile name points).

One module-scoped workspace (a small demo category, its index, 3 synthetic records, 3 layouts, one
version) is built once; each case writes its bad input next to it, snapshots the tree, runs the CLI
in-process and compares. Escaping names point back into the workspace (``ESCAPE``), so a write through
them would show up in the snapshot.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from anogen_data.cli import main


@dataclass
class Env:
    root: Path  # everything the cases read or could write lies under it
    data: Path  # demo data root (MVTec layout)
    index: Path
    records: Path  # records.jsonl of `generate --no-export`
    layouts: Path
    version: Path
    other_index: Path  # an index of another data folder (same category name)

    def rows(self, path: Path) -> list[dict]:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def by_role(self, role: str, label: str | None = None) -> dict:
        return next(r for r in self.rows(self.index) if r["role"] == role and (label is None or r["label"] == label))

    @property
    def escape(self) -> str:
        """A name that climbs to / and back down to ROOT/escaped (a write through it lands in the tree)."""
        return "../" * 40 + str(self.root / "escaped").lstrip("/")


def run(argv: list[str]) -> tuple[int, str, str]:
    """Run ``anogen-data ARGV`` in-process; any exception other than SystemExit is a test failure."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code, out.getvalue(), err.getvalue()


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` (folders too, hidden ones included) with size and mtime of files."""
    table = {}
    for path in root.rglob("*"):
        stat = path.lstat()
        table[str(path.relative_to(root))] = (path.is_dir(), 0 if path.is_dir() else stat.st_size,
                                              0 if path.is_dir() else stat.st_mtime_ns)
    return table


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Env:
    from anogen_data.data.demo import render_demo

    root = tmp_path_factory.mktemp("bad_inputs")
    data, other = root / "data", root / "other"
    for folder in (data, other):
        render_demo(folder, size=64, n_good=6, n_test_good=2, defects=("scratch",), n_per_defect=3)
    work = root / "work"
    steps = [
        ["index", "--data", data, "--category", "demo", "--out", work / "index"],
        ["index", "--data", other, "--category", "demo", "--out", work / "other_index"],
        ["generate", "--category", "demo", "--index", work / "index/index.jsonl", "--n", "3", "--backend", "paste",
         "--no-export", "--out", work / "synth"],
        ["propose", "--index", work / "index/index.jsonl", "--n", "3", "--out", work / "layouts"],
        ["export", "--index", work / "index/index.jsonl", "--records", work / "synth/records.jsonl",
         "--out", work / "datasets", "--name", "demo"],
    ]
    for argv in steps:
        code, _, err = run(argv)
        assert code == 0, (argv, err)
    return Env(root, data, work / "index/index.jsonl", work / "synth/records.jsonl", work / "layouts/layouts.jsonl",
               work / "datasets/demo/v1", work / "other_index/index.jsonl")


def write_rows(path: Path, rows: list) -> Path:
    """JSON lines; a str row is written as is (raw bad lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def changed(rows: list[dict], line: int = 0, drop: tuple[str, ...] = (), **values) -> list[dict]:
    rows = [dict(r) for r in rows]
    rows[line] = {k: v for k, v in {**rows[line], **values}.items() if k not in drop}
    return rows


# --- case builders: (env, case folder) -> argv ------------------------------------------------------------

def export_records(edit: Callable[[Env], list]) -> Callable[[Env, Path], list]:
    """export with a records file beside the real one (so its relative image paths still resolve)."""
    def build(env: Env, case: Path) -> list:
        bad = write_rows(env.records.parent / f"records_{case.name}.jsonl", edit(env))
        return ["export", "--index", env.index, "--records", bad, "--out", case / "datasets", "--name", "bad"]
    return build


def export_index(edit: Callable[[Env], list]) -> Callable[[Env, Path], list]:
    def build(env: Env, case: Path) -> list:
        bad = write_rows(case / "index.jsonl", edit(env))
        return ["export", "--index", bad, "--out", case / "datasets", "--name", "bad"]
    return build


def export_scores(edit: Callable[[Env], list], *extra: str) -> Callable[[Env, Path], list]:
    def build(env: Env, case: Path) -> list:
        bad = write_rows(case / "scores.jsonl", edit(env))
        return ["export", "--index", env.index, "--records", env.records, "--scores", bad,
                "--out", case / "datasets", "--name", "bad", *extra]
    return build


def generate_layouts(edit: Callable[[Env], list]) -> Callable[[Env, Path], list]:
    def build(env: Env, case: Path) -> list:
        bad = write_rows(case / "layouts.jsonl", edit(env))
        return ["generate", "--category", "demo", "--index", env.index, "--layouts", bad, "--n", "2",
                "--backend", "paste", "--no-export", "--out", case / "synth"]
    return build


def with_params(text: str, command: str) -> Callable[[Env, Path], list]:
    def build(env: Env, case: Path) -> list:
        case.mkdir(parents=True, exist_ok=True)
        params = case / "params.yaml"
        params.write_text(text)
        argv = {
            "index": ["index", "--data", env.data, "--category", "demo", "--out", case / "index"],
            "generate": ["generate", "--category", "demo", "--index", env.index, "--out", case / "datasets"],
            "filter": ["filter", "--records", env.records, "--index", env.index, "--out", case / "filter"],
            "export": ["export", "--index", env.index, "--out", case / "datasets"],
            "train": ["train", env.version, "--out", case / "model"],
        }[command]
        return [*argv, "--params", params]
    return build


def cli(*argv) -> Callable[[Env, Path], list]:
    """A command line; callables in it are called with (env, case) (paths known only at run time)."""
    def build(env: Env, case: Path) -> list:
        return [a(env, case) if callable(a) else a for a in argv]
    return build


def with_manifest(edit: Callable[[dict], dict], command: str) -> Callable[[Env, Path], list]:
    """verify/push on a copy of the version whose manifest.json is edited."""
    def build(env: Env, case: Path) -> list:
        copy = case / "v1"
        shutil.copytree(env.version, copy)
        manifest = json.loads((copy / "manifest.json").read_text())
        (copy / "manifest.json").write_text(json.dumps(edit(manifest)))
        return ["verify", copy] if command == "verify" else ["push", copy, "--repo-id", "org/name"]
    return build


def with_concept(edit: Callable[[dict], dict]) -> Callable[[Env, Path], list]:
    """generate --backend anogen with a concepts folder whose concept.json is edited."""
    def build(env: Env, case: Path) -> list:
        folder = case / "concepts" / "scratch"
        folder.mkdir(parents=True)
        meta = {"method": "anogen", "defect_type": "scratch", "base_model": "tiny", "token": "<scratch>",
                "weights": "learned_embeds.safetensors", "text_encoder_hash": None}
        (folder / "concept.json").write_text(json.dumps(edit(meta)))
        return ["generate", "--category", "demo", "--index", env.index, "--layouts", env.layouts, "--n", "1",
                "--backend", "anogen", "--model", "tiny", "--concepts", case / "concepts", "--no-export",
                "--out", case / "synth"]
    return build


def with_model_json(meta: dict) -> Callable[[Env, Path], list]:
    """benchmark on a model folder whose model.json is ``meta`` (the weights file is never reached)."""
    def build(env: Env, case: Path) -> list:
        (case / "model").mkdir(parents=True)
        (case / "model" / "model.json").write_text(json.dumps(meta))
        (case / "model" / "model.safetensors").write_bytes(b"")
        return ["benchmark", case / "model", "--index", env.index, "--out", case / "bench"]
    return build


def huge_png(env: Env, case: Path) -> list:
    """A category whose only good image declares 40000 x 40000 pixels in its PNG header."""
    good = case / "data" / "demo" / "train" / "good"
    good.mkdir(parents=True)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + chunk(b"IEND", b"")
    (good / "000.png").write_bytes(png)
    return ["index", "--data", case / "data", "--category", "demo", "--out", case / "index"]


def coco_escape(env: Env, case: Path) -> list:
    copy = case / "v1"
    shutil.copytree(env.version, copy)
    coco = json.loads((copy / "coco" / "instances_train.json").read_text())
    coco["images"][0]["file_name"] = "mvtec/../../../../outside.png"
    (copy / "coco" / "instances_train.json").write_text(json.dumps(coco))
    return ["train", copy, "--out", case / "model", "--epochs", "1"]


def records_other_index(env: Env, case: Path) -> list:
    return ["filter", "--records", env.records, "--index", env.other_index, "--out", case / "filter"]


def quality_other_index(env: Env, case: Path) -> list:
    return ["quality", env.version, "--index", env.other_index, "--out", case / "quality.json"]


def small_rle() -> dict:
    """A valid RLE of a 32 x 32 mask (the demo images are 64 x 64)."""
    import numpy as np

    from anogen_data.layout.rle import encode_rle

    mask = np.zeros((32, 32), np.uint8)
    mask[4:8, 4:8] = 255
    return encode_rle(mask)


R = lambda env: env.rows(env.records)  # noqa: E731
IDX = lambda env: env.rows(env.index)  # noqa: E731
L = lambda env: env.rows(env.layouts)  # noqa: E731
SCORES = lambda env, **kw: [{"id": r["id"], "keep": True, "reasons": [], "scores": {}, **kw} for r in env.rows(env.records)]  # noqa: E731
ANOMALY = lambda env: next(i for i, r in enumerate(IDX(env)) if r["label"] == "anomaly")  # noqa: E731

CASES: dict[str, tuple[Callable[[Env, Path], list], str]] = {
    # records.jsonl (export --records): types, names, containment, eval leaks
    "records-line-int": (export_records(lambda e: ["5", *R(e)]), r"records_.*\.jsonl:1: must be a JSON object"),
    "records-line-null": (export_records(lambda e: [*R(e), "null"]), r"records_.*\.jsonl:4: must be a JSON object"),
    "records-not-json": (export_records(lambda e: ["{oops", *R(e)]), r"records_.*\.jsonl:1: not valid JSON"),
    "records-defect-escape": (export_records(lambda e: changed(R(e), defect_type=e.escape)), r":1: defect_type: must not"),
    "records-defect-slash": (export_records(lambda e: changed(R(e), defect_type="a/b")), r":1: defect_type: .*'/'"),
    "records-defect-empty": (export_records(lambda e: changed(R(e), defect_type="")), r":1: defect_type: must not be empty"),
    "records-defect-nul": (export_records(lambda e: changed(R(e), defect_type="a\x00b")), r":1: defect_type: .*NUL"),
    "records-defect-good": (export_records(lambda e: changed(R(e), defect_type="good")), r":1: defect_type 'good'"),
    "records-id-escape": (export_records(lambda e: changed(R(e), id="../syn")), r":1: id: must not"),
    "records-category-escape": (export_records(lambda e: changed(R(e), category=e.escape)), r":1: category: must not"),
    "records-image-absolute-eval": (export_records(lambda e: changed(R(e), image_path=e.by_role("eval", "anomaly")["path"])), r":1: image_path: must be relative"),
    "records-image-dotdot": (export_records(lambda e: changed(R(e), image_path="../index/x.png")), r":1: image_path: must not contain '\.\.'"),
    "records-mask-absolute": (export_records(lambda e: changed(R(e), mask_path="/etc/passwd")), r":1: mask_path: must be relative"),
    "records-source-eval": (export_records(lambda e: changed(R(e), source_path=e.by_role("eval", "anomaly")["path"])), r":1: source_path .* not a train/learn image"),
    "records-source-foreign": (export_records(lambda e: changed(R(e), source_path=str(e.root / "x.png"))), r":1: source_path .* not a train/learn image"),
    "records-source-relative": (export_records(lambda e: changed(R(e), source_path="x.png")), r":1: source_path: must be an absolute path"),
    "records-bbox-string": (export_records(lambda e: changed(R(e), bbox_xyxy="abc")), r":1: bbox_xyxy: .*valid (tuple|array)"),
    "records-bbox-reversed": (export_records(lambda e: changed(R(e), bbox_xyxy=[30, 30, 10, 10])), r":1: .*bbox_xyxy \[30, 30, 10, 10\] is empty or reversed"),
    "records-bbox-outside": (export_records(lambda e: changed(R(e), bbox_xyxy=[0, 0, 500, 500])), r":1: bbox_xyxy \[0, 0, 500, 500\] lies outside"),
    "records-seed-negative": (export_records(lambda e: changed(R(e), seed=-1)), r":1: seed: .*greater than or equal to 0"),
    "records-seed-string": (export_records(lambda e: changed(R(e), seed="7")), r":1: seed: .*valid integer"),
    "records-mask-quality": (export_records(lambda e: changed(R(e), mask_quality="banana")), r":1: mask_quality: "),
    "records-missing-id": (export_records(lambda e: changed(R(e), drop=("id",))), r":1: id: Field required"),
    "records-unknown-key": (export_records(lambda e: changed(R(e), colour="red")), r":1: colour: Extra inputs"),
    "records-duplicate-id": (export_records(lambda e: changed(R(e), line=1, id=R(e)[0]["id"])), r":2: id .* repeats line 1"),
    # index.jsonl (export --index)
    "index-line-null": (export_index(lambda e: [*IDX(e)[:3], "null"]), r"index.jsonl:4: must be a JSON object"),
    "index-line-int": (export_index(lambda e: ["5"]), r"index.jsonl:1: must be a JSON object"),
    "index-line-list": (export_index(lambda e: ["[1, 2]"]), r"index.jsonl:1: must be a JSON object"),
    "index-category-escape": (export_index(lambda e: [dict(r, category=e.escape) for r in IDX(e)]), r"index.jsonl:1: category: must not"),
    "index-defect-escape": (export_index(lambda e: changed(IDX(e), ANOMALY(e), defect_type=e.escape)), r"index.jsonl:\d+: defect_type: must not"),
    "index-role-banana": (export_index(lambda e: changed(IDX(e), role="banana")), r"index.jsonl:1: role: "),
    "index-width-negative": (export_index(lambda e: changed(IDX(e), width=-5)), r"index.jsonl:1: width: .*greater than or equal to 1"),
    "index-width-string": (export_index(lambda e: changed(IDX(e), width="abc")), r"index.jsonl:1: width: .*valid integer"),
    "index-path-outside": (export_index(lambda e: changed(IDX(e), path="/etc/passwd")), r"index.jsonl:1: path /etc/passwd is not inside"),
    "index-path-dotdot": (export_index(lambda e: changed(IDX(e), path=IDX(e)[0]["path"] + "/../../../../../x/train/good/a.png")), r"index.jsonl:1: path .* is not inside"),
    "index-mask-outside": (export_index(lambda e: changed(IDX(e), ANOMALY(e), mask_path="/etc/passwd")), r"index.jsonl:\d+: mask_path /etc/passwd is not inside"),
    "index-two-folders": (export_index(lambda e: [*IDX(e), *e.rows(e.other_index)]), r"index.jsonl:\d+: path .* outside the category folder"),
    "index-split-val": (export_index(lambda e: changed(IDX(e), split="val")), r"index.jsonl:1: split: "),
    "index-label-mismatch": (export_index(lambda e: changed(IDX(e), defect_type="scratch")), r"index.jsonl:1: label 'good' does not match"),
    # scores.jsonl (export --scores)
    "scores-line-int": (export_scores(lambda e: ["7", *SCORES(e)]), r"scores.jsonl:1: must be a JSON object"),
    "scores-reasons-int": (export_scores(lambda e: changed(SCORES(e), keep=False, reasons=5), "--show-dropped"), r"scores.jsonl:1: reasons: .*valid (list|array)"),
    "scores-keep-string": (export_scores(lambda e: changed(SCORES(e), keep="false")), r"scores.jsonl:1: keep: .*valid boolean"),
    "scores-unknown-id": (export_scores(lambda e: [*SCORES(e), {"id": "syn_999999", "keep": True, "reasons": []}]), r"scores.jsonl:4: id 'syn_999999' is not a record"),
    "scores-missing-keep": (export_scores(lambda e: changed(SCORES(e), drop=("keep",))), r"scores.jsonl:1: keep: Field required"),
    "scores-duplicate-id": (export_scores(lambda e: [*SCORES(e), SCORES(e)[0]]), r"scores.jsonl:4: id .* repeats"),
    # layouts.jsonl (generate --layouts)
    "layouts-id-escape": (generate_layouts(lambda e: changed(L(e), id=e.escape)), r"layouts.jsonl:1: id: must not"),
    "layouts-defect-escape": (generate_layouts(lambda e: changed(L(e), defect_type="../x")), r"layouts.jsonl:1: defect_type: must not contain"),
    "layouts-source-eval": (generate_layouts(lambda e: changed(L(e), source_path=e.by_role("eval", "good")["path"])), r"layouts.jsonl:1: source_path .* not a train/learn image"),
    "layouts-source-learn": (generate_layouts(lambda e: changed(L(e), source_path=e.by_role("learn")["path"])), r"layouts.jsonl:1: source_path .* not a train/learn image"),
    "layouts-bad-rle": (generate_layouts(lambda e: changed(L(e), mask_rle={"size": [64, 64], "counts": "!!!!"})), r"layouts.jsonl:1: mask_rle: mask_rle counts has the character"),
    "layouts-rle-short": (generate_layouts(lambda e: changed(L(e), mask_rle={"size": [64, 64], "counts": "0"})), r"layouts.jsonl:1: mask_rle: .*covers 0 pixels"),
    "layouts-rle-size": (generate_layouts(lambda e: changed(L(e), mask_rle=small_rle(), bbox_xyxy=[4, 4, 8, 8])), r"layouts.jsonl:1: mask_rle.size \[32, 32\] is not the 64x64"),
    "layouts-box-outside": (generate_layouts(lambda e: changed(L(e), bbox_xyxy=[10, 10, 90, 90])), r"layouts.jsonl:1: .*lies outside the 64x64 image"),
    "layouts-duplicate-id": (generate_layouts(lambda e: changed(L(e), line=1, id=L(e)[0]["id"])), r"layouts.jsonl:2: id .* repeats line 1"),
    "layouts-seed-string": (generate_layouts(lambda e: changed(L(e), seed="x")), r"layouts.jsonl:1: seed: .*valid integer"),
    # params.yaml sections
    "params-n-string": (with_params("generate:\n  n: abc\n", "generate"), r"params.yaml:2: generate.n: .*valid integer"),
    "params-n-float": (with_params("generate:\n  n: 2.5\n", "generate"), r"params.yaml:2: generate.n: .*valid integer"),
    "params-n-zero": (with_params("generate:\n  n: 0\n", "generate"), r"params.yaml:2: generate.n: .*greater than or equal to 1"),
    "params-workers-string": (with_params("generate:\n  seed: 1\n  workers: two\n", "generate"), r"params.yaml:3: generate.workers: "),
    "params-name-escape": (with_params("generate:\n  name: ../../evil\n", "generate"), r"params.yaml:2: generate.name: must not"),
    "params-min-area-string": (with_params("filter:\n  min_area: tiny\n", "filter"), r"params.yaml:2: filter.min_area: .*valid number"),
    "params-min-area-negative": (with_params("filter:\n  min_area: -0.5\n", "filter"), r"params.yaml:2: filter.min_area: .*greater than or equal to 0"),
    "params-max-duplicate-range": (with_params("filter:\n  max_duplicate: 3\n", "filter"), r"params.yaml:2: filter.max_duplicate: .*less than or equal to 1"),
    "params-top-level-list": (with_params("- index\n- generate\n", "index"), r"params.yaml must be a mapping of stage sections"),
    "params-section-list": (with_params("index:\n  - seed\n", "index"), r"section 'index' must be a mapping"),
    "params-unknown-key": (with_params("index:\n  seeds: 3\n", "index"), r"unknown key 'index.seeds'"),
    "params-protocol": (with_params("index:\n  protocol: all\n", "index"), r"params.yaml:2: index.protocol: Input should be 'first-third' or 'random-k' \(got 'all'\)"),
    "params-bool-string": (with_params("export:\n  show_dropped: 'false'\n", "export"), r"params.yaml:2: export.show_dropped: .*valid boolean"),
    "params-not-yaml": (with_params("index: [\n", "index"), r"params.yaml is not valid YAML"),
    "params-train-device": (with_params("train:\n  device: tpu\n", "train"), r"params.yaml:2: train.device: must be auto, cpu, mps, cuda or cuda:N \(got 'tpu'\)"),
    # command-line names and values
    "cli-seed-negative": (cli("index", "--category", "demo", "--seed", "-1", "--out", lambda e, c: c / "index"), r"--seed: .*greater than or equal to 0"),
    "cli-category-escape": (cli("index", "--data", lambda e, c: e.data, "--category", "../data/demo", "--out", lambda e, c: c / "index"), r"--category: must not contain '\.\.'"),
    "cli-name-escape": (cli("generate", "--category", "demo", "--index", lambda e, c: e.index, "--n", "1", "--name", "../../evil", "--out", lambda e, c: c / "d"), r"--name: must not"),
    "cli-name-slash": (cli("export", "--index", lambda e, c: e.index, "--name", "a/b", "--out", lambda e, c: c / "d"), r"--name: must be a plain name without '/' .*\(got 'a/b'\)"),
    "cli-defect-escape": (cli("propose", "--index", lambda e, c: e.index, "--defect", "../x", "--out", lambda e, c: c / "l"), r"--defect: must not"),
    "cli-train-category": (cli("train", lambda e, c: e.version, "--category", "../x", "--out", lambda e, c: c / "m"), r"--category: must not contain '\.\.' \(got '\.\./x'\)"),
    # manifest.json, concept.json, COCO, images, cross-file
    "manifest-files-list": (with_manifest(lambda m: {**m, "files": list(m["files"])}, "verify"), r"manifest.json: files: Input should be an object"),
    "manifest-no-version": (with_manifest(lambda m: {k: v for k, v in m.items() if k != "version"}, "push"), r"manifest.json: version: Field required"),
    "manifest-file-escape": (with_manifest(lambda m: {**m, "files": {"../x": {"sha256": "0" * 64, "size": 1}}}, "verify"), r"manifest.json: files\['\.\./x'\] \(key\): must not contain"),
    "manifest-size-negative": (with_manifest(lambda m: {**m, "files": {k: {**v, "size": -1} for k, v in m["files"].items()}}, "verify"), r"manifest.json: files\['coco/instances_test.json'\].size: .*greater than or equal to 0"),
    "concept-weights-escape": (with_concept(lambda m: {**m, "weights": "../../../etc/passwd"}), r"concept.json: weights: "),
    "concept-method-banana": (with_concept(lambda m: {**m, "method": "banana"}), r"concept.json: method: "),
    "coco-file-name-escape": (coco_escape, r"instances_train.json: images\[0\].file_name: must not contain '\.\.'"),
    "model-json-no-model": (with_model_json({"format": "anogen-detector/1", "base_width": 16, "canvas": [64, 64]}), r"model.json: model: Field required"),
    "model-json-canvas": (with_model_json({"format": "anogen-detector/1", "model": "unet", "base_width": 16, "canvas": "abc"}), r"model.json: canvas: .*valid array"),
    "model-json-list": (with_model_json([1, 2]), r"model.json: must be a JSON object"),
    "image-40000px": (huge_png, r"000.png is too large to decode \(Image size \(1600000000 pixels\)"),
    "filter-other-index": (records_other_index, r"records.jsonl:1: source_path .* not a train/learn image"),
    "quality-other-index": (quality_other_index, r"records.jsonl:1: source_path .* not a train/learn image"),
}


def test_table_has_at_least_50_cases():
    assert len(CASES) >= 50


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_1_with_one_line_and_writes_nothing(env, name):
    import re

    build, expected = CASES[name]
    case = env.root / "cases" / name
    argv = build(env, case)
    before = snapshot(env.root)
    code, _, err = run(argv)
    after = snapshot(env.root)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1, (code, err)
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert re.search(expected, lines[0]), lines[0]
    assert set(after) == set(before), sorted(set(after) ^ set(before))
    assert after == before, [k for k in after if after[k] != before.get(k)]


def test_an_unknown_device_is_a_usage_error_that_lists_the_choices(run_cli, tmp_path):
    """--device is a closed set (plus cuda:N): Typer refuses other values as a usage error (exit 2), before any work."""
    code, _, err = run_cli("generate", "--category", "demo", "--n", "1", "--device", "tpu", "--out", tmp_path / "d")
    assert code == 2 and "tpu" in err and "cuda" in err
    assert not (tmp_path / "d").exists()
