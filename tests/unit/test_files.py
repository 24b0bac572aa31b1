"""``anogen_data.files``: data safety of output folders (the --force marker, the umask, stale temporary folders,
no empty parents) and the metrics/info split."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from anogen_data.errors import AnogenError
from anogen_data.files import MARKER, atomic_output_dir, check_writable, clean_stale, current_umask, split_metrics


@pytest.fixture
def umask():
    """Set a umask for one test (restored after it)."""
    saved = os.umask(0o022)
    os.umask(saved)

    def _set(mask: int) -> None:
        os.umask(mask)

    yield _set
    os.umask(saved)


def _modes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder.parent).as_posix(): stat.S_IMODE(p.stat().st_mode)
            for p in [folder, *folder.rglob("*")]}


def test_output_has_marker_and_force_replaces_it(tmp_path):
    out = tmp_path / "out"
    with atomic_output_dir(out) as tmp:
        (tmp / "a.txt").write_text("1")
    assert json.loads((out / MARKER).read_text())["made_by"].startswith("anogen-data")
    with atomic_output_dir(out, force=True) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "b.txt"]


def test_force_refuses_a_folder_the_tool_did_not_write(tmp_path):
    out = tmp_path / "important"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(AnogenError, match="not written by anogen-data"):
        with atomic_output_dir(out, force=True) as tmp:
            (tmp / "x").write_text("x")
    assert (out / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["important"]  # no temporary folder left


def test_force_never_replaces_the_current_directory(tmp_path, monkeypatch):
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / MARKER).write_text("{}")  # even a folder of ours holding the working directory
    monkeypatch.chdir(work / "sub")
    for target in (Path("."), Path("..")):
        with pytest.raises(AnogenError, match="current directory"):
            with atomic_output_dir(target, force=True):
                pass
    assert (work / "sub").is_dir() and (work / MARKER).is_file()


def test_force_replaces_an_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with atomic_output_dir(tmp_path / "empty", force=True) as tmp:
        (tmp / "x").write_text("x")
    assert (tmp_path / "empty" / "x").is_file()


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_output_follows_the_umask(tmp_path, umask, mask):
    umask(mask)
    assert current_umask() == mask
    with atomic_output_dir(tmp_path / "deep" / "out") as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "f.txt").write_text("x")
    modes = _modes(tmp_path / "deep" / "out")
    for rel, mode in modes.items():
        expected = (0o777 if (tmp_path / "deep" / rel).is_dir() else 0o666) & ~mask
        assert mode == expected, (rel, oct(mode))


def test_failure_leaves_no_temporary_and_no_empty_parent(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_output_dir(tmp_path / "datasets" / "name" / "v1") as tmp:
            (tmp / "half").write_text("x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []  # neither datasets/name/ nor a .v1.tmp-* folder
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "keep.txt").write_text("x")
    with pytest.raises(RuntimeError):
        with atomic_output_dir(tmp_path / "datasets" / "name" / "v1"):
            raise RuntimeError("boom")
    assert sorted(p.name for p in (tmp_path / "datasets").iterdir()) == ["keep.txt"]  # existing parent kept


def _killed_run(parent: Path) -> Path:
    """Start a real process that opens an atomic output in ``parent``, SIGKILL it, return its temp folder."""
    code = ("import os, signal, sys\nfrom anogen_data.files import atomic_output_dir\n"
            "with atomic_output_dir(sys.argv[1]) as tmp:\n"
            "    (tmp / 'big.bin').write_bytes(b'0' * 1000)\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(parent / "v1")], env={**os.environ}, timeout=60)
    assert proc.returncode == -9
    left = [p for p in parent.iterdir() if p.name.startswith(".v1.tmp-")]
    assert len(left) == 1
    return left[0]


def test_next_run_removes_what_a_killed_run_left(tmp_path, caplog):
    stale = _killed_run(tmp_path)
    live = tmp_path / f".v9.tmp-{stale.name.split('.tmp-')[1].rsplit('-', 2)[0]}-{os.getpid()}-abcdefgh"
    live.mkdir()  # a live run (this process) in the same parent is left alone
    foreign = tmp_path / ".v8.tmp-otherhost-1-abcdefgh"
    foreign.mkdir()
    with atomic_output_dir(tmp_path / "v2") as tmp:
        (tmp / "x").write_text("x")
    assert not stale.exists() and live.exists() and foreign.exists()
    assert any("left by an interrupted run" in r.getMessage() and stale.name in r.getMessage() for r in caplog.records)


def test_untagged_temporary_folders_are_reported(tmp_path, caplog):
    old = tmp_path / ".v1.tmp-ab12cd34"
    old.mkdir()
    assert clean_stale(tmp_path) == []
    assert old.exists() and any(old.name in r.getMessage() for r in caplog.records)


def test_check_writable(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(AnogenError, match="is a file"):
        check_writable(tmp_path / "file" / "out")
    check_writable(tmp_path / "new" / "deeper")  # creatable: nothing raised, nothing left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    if os.geteuid() != 0:  # root writes into a 0555 folder; the file case above covers it
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        with pytest.raises(AnogenError, match="cannot write"):
            check_writable(ro / "out")

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
