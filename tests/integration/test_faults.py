"""Faults: worker processes die with a SIGKILLed parent; Ctrl-C prints one line naming the rerun."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _children(pid: int) -> set[int]:
    """Live (non-zombie) processes whose parent is ``pid``."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait(condition, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _generate(demo_data_root: Path, out: Path, n: int) -> subprocess.Popen:
    args = [sys.executable, "-m", "anogen_data.cli", "generate", "--data", str(demo_data_root), "--category", "demo",
            "--n", str(n), "--workers", "2", "--backend", "cutpaste", "--no-export", "--out", str(out)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


@pytest.mark.slow  # a CLI process proposing 3000 layouts before its synthesis workers start (~20 s on 2 cores)
def test_workers_die_with_a_sigkilled_parent(run_cli, demo_data_root, tmp_path):
    proc = _generate(demo_data_root, tmp_path / "synth", 3000)
    workers: set[int] = set()
    try:
        records = tmp_path / "synth.partial" / "records.jsonl"  # synthesis (not only the proposal) under way
        assert _wait(lambda: (records.is_file() and len(_children(proc.pid)) >= 2) or proc.poll() is not None, 120)
        assert proc.poll() is None, proc.communicate()[1].decode()
        workers = _children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert _wait(lambda: not any(_alive(w) for w in workers), 10), "orphan workers outlived their parent"
        code, _, err = run_cli("generate", "--data", demo_data_root, "--category", "demo", "--n", 3000, "--workers", 2,
                               "--backend", "cutpaste", "--no-export", "--out", tmp_path / "synth")
        assert code == 1 and "synth.partial holds an interrupted run; pass --resume" in err  # the next run says so
    finally:
        for pid in [proc.pid, *workers]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.communicate(timeout=30)


@pytest.mark.slow  # two CLI processes (~25 s on 2 cores)
def test_ctrl_c_prints_one_line_naming_the_rerun_and_resume_finishes(demo_data_root, tmp_path):
    out = tmp_path / "synth"
    proc = _generate(demo_data_root, out, 400)
    workers: set[int] = set()
    records = tmp_path / "synth.partial" / "records.jsonl"
    try:
        started = lambda: (records.is_file() and records.read_text().count("\n") >= 1) or proc.poll() is not None  # noqa: E731
        assert _wait(started, 120) and proc.poll() is None, "the run ended before it could be interrupted"
        workers = _children(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=30)
    err = err.decode()
    assert proc.returncode == 130
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("interrupted;") and "anogen-data generate" in lines[0] and lines[0].endswith("--resume")
    assert _wait(lambda: not any(_alive(w) for w in workers), 10)
    assert not out.exists() and records.is_file()
    rerun = subprocess.run([sys.executable, "-m", "anogen_data.cli", *shlex.split(lines[0].split("anogen-data ", 1)[1])],
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert (out / "records.jsonl").read_text().count("\n") == 400


def test_interrupted_line_for_other_commands():
    from anogen_data.cli.app import interrupted_line

    assert interrupted_line(["index", "--out", "a b"]) == "interrupted; no output was written; rerun: anogen-data index --out 'a b'"
    assert interrupted_line(["generate", "--n", "5", "--resume"]).endswith("anogen-data generate --n 5 --resume")


WRITERS = {  # command -> args before --out; inputs need not exist: --out is checked before anything is read
    "filter": lambda i: ["filter", "--records", i / "records.jsonl", "--index", i / "index.jsonl"],
    "train": lambda i: ["train", i / "v1"],
    "generate": lambda i: ["generate", "--n", "2"],
    "generate --no-export": lambda i: ["generate", "--n", "2", "--no-export"],
    "quality": lambda i: ["quality", i / "v1", "--index", i / "index.jsonl"],
}


def _unwritable_targets(tmp_path: Path) -> list[tuple[Path, str]]:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    targets = [(blocker / "out", "is a file")]
    if Path("/sys").is_dir():  # not writable even by root (CI runs as root, so chmod 0555 proves nothing)
        try:
            os.rmdir(__import__("tempfile").mkdtemp(dir="/sys"))
        except OSError:
            targets.append((Path("/sys/anogen-out"), "cannot write"))
    return targets


@pytest.mark.parametrize("command", sorted(WRITERS))
def test_unwritable_out_is_refused_before_the_work(run_cli, monkeypatch, tmp_path, command):
    import anogen_data.stages.generate as generate_stage

    def no_work(*args, **kwargs):
        raise AssertionError("the work started before --out was checked")

    monkeypatch.setattr(generate_stage, "load_entries", no_work)
    for out, needle in _unwritable_targets(tmp_path):
        target = out / "quality.json" if command == "quality" else out
        code, _, err = run_cli(*WRITERS[command](tmp_path), "--out", target)
        assert code == 1 and needle in err and len(err.strip().splitlines()) == 1, (out, err)
        assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def _bad_modes(root: Path, mask: int) -> list[str]:
    """Every folder/file under ``root`` whose mode is not what mkdir/open give under ``mask``."""
    bad = []
    for path in [root, *root.rglob("*")]:
        expected = (0o777 if path.is_dir() else 0o666) & ~mask
        if (path.stat().st_mode & 0o777) != expected:
            bad.append(f"{path.relative_to(root)} {oct(path.stat().st_mode & 0o777)}")
    return bad


@pytest.mark.parametrize("mask", [0o022, 0o007])
def test_every_output_follows_the_umask(run_cli, demo_data_root, tmp_path, mask):
    saved = os.umask(mask)
    try:
        out = tmp_path / "out"
        steps = [("index", "--data", demo_data_root, "--category", "demo", "--out", out / "index"),
                 ("generate", "--index", out / "index/index.jsonl", "--n", 3, "--backend", "cutpaste",
                  "--no-export", "--out", out / "synth"),
                 ("export", "--index", out / "index/index.jsonl", "--records", out / "synth/records.jsonl",
                  "--out", out / "datasets"),
                 ("generate", "--index", out / "index/index.jsonl", "--n", 2, "--backend", "cutpaste",
                  "--out", out / "datasets", "--name", "oneshot")]
        for args in steps:
            code, _, err = run_cli(*args)
            assert code == 0, (args[0], err)
    finally:
        os.umask(saved)
    assert (out / "datasets/demo/v1/hf").is_dir() and (out / "datasets/oneshot/v1").is_dir()
    assert _bad_modes(out, mask) == []  # 0700/0600 (mkdtemp/mkstemp) anywhere fails


def test_verify_cli_catches_a_hand_edit_of_the_manifest(run_cli, demo_index, tmp_path):
    import json

    code, _, err = run_cli("export", "--index", demo_index, "--out", tmp_path / "datasets", "--name", "d")
    assert code == 0, err
    version = tmp_path / "datasets/d/v1"
    assert run_cli("verify", version)[0] == 0
    manifest = json.loads((version / "manifest.json").read_text())
    manifest["lineage"]["index_file"] = "somewhere/else/index.jsonl"  # files untouched, the record rewritten
    (version / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    code, out, err = run_cli("verify", version)
    assert code == 1 and "manifest.json" in out + err
