"""``anogen-data download mvtec`` against a local HTTP server on 127.0.0.1 serving archives the tests build.

No request leaves 127.0.0.1: the source table is overridden (ANOGEN_MVTEC_URL / ANOGEN_MVTEC_SHA256) and
every socket connection to another host fails the test.
"""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.state["body"]``; honours ``Range: bytes=N-`` unless told not to; can cut the transfer."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        state = self.server.state
        body, start = state["body"], 0
        state["ranges"].append(self.headers.get("Range"))
        if self.headers.get("Range") and state["honor_range"]:
            start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        if state["cut"] is not None:  # an interrupted transfer: fewer bytes than announced, then close
            payload = payload[: state["cut"]]
        self.wfile.write(payload)
        self.wfile.flush()

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = {"body": b"", "ranges": [], "honor_range": True, "cut": None}
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Any connection to a host other than 127.0.0.1 fails the test."""
    connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        assert host in ("127.0.0.1", "::1"), f"a test tried to reach {address}"
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture
def env(monkeypatch, tmp_path, server):
    """Cache and data root under tmp_path, the source table pointed at the local server; returns a setter."""
    monkeypatch.delenv("ANOGEN_DATA", raising=False)
    monkeypatch.setenv("ANOGEN_CACHE", str(tmp_path / "cache"))

    def serve(body: bytes, sha256: str | None = None) -> None:
        server.state["body"] = body
        monkeypatch.setenv("ANOGEN_MVTEC_URL", f"http://127.0.0.1:{server.server_port}/mvtec_anomaly_detection.tar.xz")
        monkeypatch.setenv("ANOGEN_MVTEC_SHA256", sha256 or hashlib.sha256(body).hexdigest())

    return serve


def _archive(tmp_path: Path, extra: list[tuple[tarfile.TarInfo, bytes | None]] = ()) -> bytes:
    """A tar.xz shaped like MVTec AD's: screw/ (a valid tiny category), bottle/, license.txt."""
    from anogen_data.data.demo import render_demo

    stage = tmp_path / "stage"
    render_demo(stage, size=32, n_good=4, n_test_good=2, defects=("scratch",), n_per_defect=3, category="screw")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as tar:
        tar.add(stage / "screw", arcname="screw")
        for name, data in (("bottle/train/good/000.png", b"png"), ("license.txt", b"CC BY-NC-SA 4.0")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _leftovers(tmp_path: Path) -> list[str]:
    """Files a failed run must not leave: any category folder, staging folder, or part file."""
    data = tmp_path / "cache" / "data"
    return sorted(p.name for p in data.iterdir()) if data.is_dir() else []


def test_good_archive_extracts_one_category_and_index_finds_it(run_cli, env, tmp_path, server):
    env(_archive(tmp_path))
    code, _, err = run_cli("index", "--category", "screw", "--out", tmp_path / "idx0")
    assert code == 1 and "anogen-data download mvtec --category screw" in err  # says how; never downloads
    assert server.state["ranges"] == []
    code, out, err = run_cli("download", "mvtec", "--category", "screw")
    assert code == 0, err
    assert "CC BY-NC-SA 4.0" in err and "ready:" in out
    screw = tmp_path / "cache" / "data" / "screw"
    assert sorted(p.name for p in (screw / "train" / "good").iterdir()) == ["000.png", "001.png", "002.png", "003.png"]
    assert _leftovers(tmp_path) == ["screw"]  # not bottle/, no staging folder
    downloads = tmp_path / "cache" / "downloads"
    assert [p.name for p in downloads.iterdir()] == ["mvtec_anomaly_detection.tar.xz"]  # verified, no .part
    # the data root set once: `index --category screw` works as typed
    code, _, err = run_cli("index", "--category", "screw", "--out", tmp_path / "idx", "-q")
    assert code == 0, err
    # a second category reuses the verified archive: no second request
    code, _, err = run_cli("download", "mvtec", "--category", "bottle", "-q")
    assert code == 0, err
    assert len(server.state["ranges"]) == 1 and (tmp_path / "cache" / "data" / "bottle" / "train" / "good").is_dir()


def test_bad_checksum_deletes_the_download_and_extracts_nothing(run_cli, env, tmp_path):
    env(_archive(tmp_path), sha256="0" * 64)
    code, _, err = run_cli("download", "mvtec", "--category", "screw")
    assert code == 1 and "sha256" in err and "differs" in err and err.count("\n") == 2  # licence + one error line
    assert list((tmp_path / "cache" / "downloads").iterdir()) == []
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("name, kind", [("../x", tarfile.REGTYPE), ("/tmp/abs-x", tarfile.REGTYPE),
                                        ("screw/link", tarfile.SYMTYPE)])
def test_member_escaping_the_target_refuses_the_archive(run_cli, env, tmp_path, name, kind):
    info = tarfile.TarInfo(name)
    info.type = kind
    data = b"pwned"
    if kind == tarfile.SYMTYPE:
        info.linkname, data = "../../../outside", None
    else:
        info.size = len(data)
    env(_archive(tmp_path, [(info, data)]))
    code, _, err = run_cli("download", "mvtec", "--category", "screw")
    assert code == 1 and "unsafe" in err and name in err
    assert _leftovers(tmp_path) == []  # not even the safe screw/ members
    assert not (tmp_path / "cache" / "x").exists() and not (tmp_path / "x").exists()
    assert list((tmp_path / "cache" / "downloads").iterdir()) == []  # never reused


def test_interrupted_transfer_keeps_the_part_and_resumes_with_range(run_cli, env, tmp_path, server):
    body = _archive(tmp_path)
    env(body)
    server.state["cut"] = len(body) // 2
    code, _, err = run_cli("download", "mvtec", "--category", "screw")
    assert code == 1 and "broke off" in err and "run the same command again" in err
    part = tmp_path / "cache" / "downloads" / "mvtec_anomaly_detection.tar.xz.part"
    assert part.stat().st_size == len(body) // 2 and _leftovers(tmp_path) == []
    server.state["cut"] = None
    code, _, err = run_cli("download", "mvtec", "--category", "screw", "-v")
    assert code == 0, err
    assert server.state["ranges"] == [None, f"bytes={len(body) // 2}-"]
    assert f"resuming at byte {len(body) // 2}" in err and "sha256 verified" in err  # -v: our info logs
    assert not part.exists() and (tmp_path / "cache" / "data" / "screw" / "train" / "good" / "000.png").is_file()


def test_server_ignoring_range_restarts_cleanly(run_cli, env, tmp_path, server):
    body = _archive(tmp_path)
    env(body)
    server.state["cut"] = len(body) // 3
    assert run_cli("download", "mvtec", "--category", "screw")[0] == 1
    server.state.update(cut=None, honor_range=False)  # answers 200 with the whole body
    code, _, err = run_cli("download", "mvtec", "--category", "screw")
    assert code == 0, err
    archive = tmp_path / "cache" / "downloads" / "mvtec_anomaly_detection.tar.xz"
    assert archive.read_bytes() == body  # not the first third twice


def test_only_https_leaves_the_machine(run_cli, monkeypatch, tmp_path):
    monkeypatch.setenv("ANOGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ANOGEN_MVTEC_URL", "http://example.com/mvtec.tar.xz")
    monkeypatch.setenv("ANOGEN_MVTEC_SHA256", "0" * 64)
    code, _, err = run_cli("download", "mvtec", "--category", "screw", "--data", tmp_path / "data")
    assert code == 1 and "only https://" in err
    code, _, err = run_cli("download", "mvtec", "--category", "widget", "--data", tmp_path / "data")
    assert code == 1 and "not an MVTec AD category" in err


def test_default_source_is_anomalibs_mvtec_archive(monkeypatch):
    from anogen_data.data.download import MVTEC_AD, mvtec_source

    monkeypatch.delenv("ANOGEN_MVTEC_URL", raising=False)
    assert mvtec_source() is MVTEC_AD and MVTEC_AD.url.startswith("https://www.mydrive.ch/")
    assert MVTEC_AD.sha256 == "cf4313b13603bec67abb49ca959488f7eedce2a9f7795ec54446c649ac98cd3d"


def test_a_bad_category_is_one_line_before_anything_else(run_cli, monkeypatch, tmp_path):
    monkeypatch.setenv("ANOGEN_CACHE", str(tmp_path / "cache"))
    code, _, err = run_cli("download", "mvtec", "--category", "../x", "--data", tmp_path / "data")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "'../x' is not an MVTec AD category" in err
    assert not any(tmp_path.iterdir())  # no cache, no data folder, no licence line before the error
