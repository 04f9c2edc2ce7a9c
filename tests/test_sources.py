"""Downloads against a local HTTP server on 127.0.0.1: resume, retries, checksums, the recorded
manifest, the Google Drive folder wrapper (with a stand-in for gdown) and the packaged source list."""

from __future__ import annotations

import hashlib
import io
import json
import re
import sys
import threading
import types
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from vscn.data.datadir import VG_LAYOUT
from vscn.data.demo import generate_demo
from vscn.data.layout import DataLayout, build_scenes
from vscn.data.scenes import load_scenes
from vscn.data.sources import (
    ChecksumError,
    DownloadError,
    Source,
    download,
    download_gdrive_folder,
    fetch_group,
    load_manifest,
    load_sources,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
PAYLOAD_BYTES = 200_000
RANGE_HEADER = re.compile(r"bytes=(\d+)-")


class FileServer(ThreadingHTTPServer):
    """Serves ``files`` (path -> bytes) with Range support and scripted failures, and records every
    request and how many body bytes it sent."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), RangeHandler)
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.bytes_sent: list[int] = []  # body bytes sent, per request
        self.fail_next = 0  # this many upcoming requests get HTTP 503
        self.truncate_next = 0  # this many upcoming responses stop half-way and close the connection
        self.ignore_range = False
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_port}{path}"


class RangeHandler(BaseHTTPRequestHandler):
    server: FileServer

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        server = self.server
        with server.lock:
            server.requests.append((self.path, self.headers.get("Range")))
            fail, truncate = server.fail_next > 0, server.truncate_next > 0
            server.fail_next -= fail
            server.truncate_next -= truncate
        body = server.files.get(self.path)
        if fail or body is None:
            server.bytes_sent.append(0)
            self.send_error(503 if fail else 404)
            return
        start = 0
        requested = RANGE_HEADER.fullmatch(self.headers.get("Range") or "")
        if requested and not server.ignore_range:
            start = int(requested.group(1))
            if start >= len(body):
                server.bytes_sent.append(0)
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if truncate:
            payload = payload[: len(payload) // 2]  # then the handler returns and the connection closes
        server.bytes_sent.append(len(payload))  # before writing: the client may finish reading first
        self.wfile.write(payload)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")  # never route loopback requests through a proxy
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    httpd = FileServer()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def payload() -> bytes:
    return np.random.default_rng(0).bytes(PAYLOAD_BYTES)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_download_verifies_and_leaves_only_the_file(server, payload, tmp_path):
    server.files["/a.bin"] = payload
    dest = download(server.url("/a.bin"), tmp_path / "a.bin", sha256=sha(payload), backoff_s=0)
    assert dest.read_bytes() == payload
    assert leftovers(tmp_path) == ["a.bin"]
    assert server.requests == [("/a.bin", None)]


def test_interrupted_download_resumes_with_only_the_remaining_bytes(server, payload, tmp_path):
    server.files["/a.bin"] = payload
    server.truncate_next = 1
    dest = download(server.url("/a.bin"), tmp_path / "a.bin", sha256=sha(payload), retries=1, backoff_s=0)
    assert dest.read_bytes() == payload
    first = server.bytes_sent[0]
    assert 0 < first < len(payload)
    assert server.requests == [("/a.bin", None), ("/a.bin", f"bytes={first}-")]
    assert server.bytes_sent[1] == len(payload) - first
    assert leftovers(tmp_path) == ["a.bin"]


def test_existing_part_file_is_continued(server, payload, tmp_path):
    server.files["/a.bin"] = payload
    done = 12_345
    (tmp_path / "a.bin.part").write_bytes(payload[:done])
    download(server.url("/a.bin"), tmp_path / "a.bin", sha256=sha(payload), backoff_s=0)
    assert (tmp_path / "a.bin").read_bytes() == payload
    assert server.requests == [("/a.bin", f"bytes={done}-")]
    assert server.bytes_sent == [len(payload) - done]


def test_complete_part_file_is_verified_without_new_bytes(server, payload, tmp_path):
    server.files["/a.bin"] = payload
    (tmp_path / "a.bin.part").write_bytes(payload)
    download(server.url("/a.bin"), tmp_path / "a.bin", sha256=sha(payload), backoff_s=0)
    assert (tmp_path / "a.bin").read_bytes() == payload
    assert server.bytes_sent == [0]  # answered 416 "range not satisfiable"


def test_server_ignoring_range_gets_the_whole_file_rewritten(server, payload, tmp_path):
    server.files["/a.bin"] = payload
    server.ignore_range = True
    (tmp_path / "a.bin.part").write_bytes(b"stale bytes that are not a prefix")
    download(server.url("/a.bin"), tmp_path / "a.bin", sha256=sha(payload), backoff_s=0)
    assert (tmp_path / "a.bin").read_bytes() == payload


def test_transient_failures_are_retried(server, payload, tmp_path):
    server.files["/a.bin"] = payload
    server.fail_next = 2
    download(server.url("/a.bin"), tmp_path / "a.bin", retries=2, backoff_s=0)
    assert len(server.requests) == 3
    assert (tmp_path / "a.bin").read_bytes() == payload


def test_retries_run_out_with_a_clear_error(server, payload, tmp_path):
    server.files["/a.bin"] = payload
    server.fail_next = 10
    with pytest.raises(DownloadError, match=r"/a\.bin: failed after 3 attempts .*503"):
        download(server.url("/a.bin"), tmp_path / "a.bin", retries=2, backoff_s=0)
    assert len(server.requests) == 3
    assert leftovers(tmp_path) == []


def test_missing_file_is_not_retried(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(server.url("/absent.bin"), tmp_path / "absent.bin", retries=3, backoff_s=0)
    assert len(server.requests) == 1


def test_wrong_checksum_is_rejected_and_nothing_is_left(server, payload, tmp_path):
    server.files["/a.bin"] = payload
    wrong = sha(b"something else")
    with pytest.raises(ChecksumError) as caught:
        download(server.url("/a.bin"), tmp_path / "a.bin", sha256=wrong, backoff_s=0)
    message = str(caught.value)
    for part in (server.url("/a.bin"), "a.bin.part", wrong, sha(payload)):
        assert part in message
    assert leftovers(tmp_path) == []


def test_manifest_is_recorded_then_used_for_verification(server, payload, tmp_path):
    server.files["/a.bin"] = payload
    manifest = tmp_path / "manifest.json"
    dest = tmp_path / "out" / "a.bin"
    download(server.url("/a.bin"), dest, manifest=manifest, backoff_s=0)
    entry = load_manifest(manifest)["a.bin"]
    assert (entry.url, entry.size, entry.sha256) == (server.url("/a.bin"), len(payload), sha(payload))
    assert json.loads(manifest.read_text())["files"]["a.bin"]["sha256"] == sha(payload)

    download(server.url("/a.bin"), dest, manifest=manifest)  # present and matching: no request
    assert len(server.requests) == 1

    dest.unlink()
    server.files["/a.bin"] = payload[::-1]  # the source changed since the digest was recorded
    with pytest.raises(ChecksumError, match=sha(payload)):
        download(server.url("/a.bin"), dest, manifest=manifest, backoff_s=0)
    assert leftovers(dest.parent) == []


def test_existing_file_failing_verification_is_kept(tmp_path):
    dest = tmp_path / "a.bin"
    dest.write_bytes(b"local copy")
    with pytest.raises(ChecksumError, match="left in place"):
        download("http://127.0.0.1:9/a.bin", dest, sha256=sha(b"other"))  # no request is made
    assert dest.read_bytes() == b"local copy"


def test_conflicting_digests_are_refused(server, payload, tmp_path):
    server.files["/a.bin"] = payload
    manifest = tmp_path / "manifest.json"
    download(server.url("/a.bin"), tmp_path / "a.bin", manifest=manifest, backoff_s=0)
    with pytest.raises(ValueError, match="records sha256"):
        download(server.url("/a.bin"), tmp_path / "a.bin", sha256=sha(b"x"), manifest=manifest)


def test_unreadable_manifest_names_the_file(tmp_path):
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"files": []}')
    with pytest.raises(ValueError, match="manifest.json: unreadable download manifest"):
        load_manifest(manifest)


def fake_gdown(files: dict[str, bytes], calls: list[str], failures: int = 0) -> types.ModuleType:
    """A stand-in for gdown whose download_folder fails ``failures`` times, then writes ``files``
    under ``output``."""

    def download_folder(url: str, output: str, **options: object) -> list[str]:
        calls.append(url)
        if len(calls) <= failures:
            raise OSError("no route to host")
        written = []
        for relative, data in files.items():
            path = Path(output, relative)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            written.append(str(path))
        return written

    module = types.ModuleType("gdown")
    module.download_folder = download_folder
    return module


DRIVE_URL = "https://example.invalid/folder"  # never contacted: gdown is replaced
DRIVE_FILES = {"visual.zip": b"v" * 100, "captions/train.zip": b"c" * 50}


def test_gdrive_folder_is_placed_whole_and_recorded(monkeypatch, tmp_path):
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "gdown", fake_gdown(DRIVE_FILES, calls, failures=1))
    manifest, dest = tmp_path / "manifest.json", tmp_path / "clip"
    paths = download_gdrive_folder(DRIVE_URL, dest, manifest=manifest, retries=1, backoff_s=0)
    assert sorted(path.relative_to(dest).as_posix() for path in paths) == sorted(DRIVE_FILES)
    assert leftovers(tmp_path) == ["clip", "manifest.json"]
    recorded = load_manifest(manifest)
    expected = {f"clip/{name}": sha(data) for name, data in DRIVE_FILES.items()}
    assert {name: entry.sha256 for name, entry in recorded.items()} == expected

    (dest / "visual.zip").write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match="visual.zip"):
        download_gdrive_folder(DRIVE_URL, dest, manifest=manifest)
    assert len(calls) == 2  # one failure, one success; the last call only verified


def test_gdrive_failure_is_reported_and_leaves_no_folder(monkeypatch, tmp_path):
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "gdown", fake_gdown(DRIVE_FILES, calls, failures=10))
    with pytest.raises(DownloadError, match="failed after 3 attempts .*no route to host"):
        download_gdrive_folder(DRIVE_URL, tmp_path / "clip", retries=2, backoff_s=0)
    assert len(calls) == 3
    assert not (tmp_path / "clip").exists()


def test_packaged_sources_cover_the_layout():
    sources = load_sources()
    required = [source for source in sources if not source.optional]
    for item in VG_LAYOUT:
        assert any(item.startswith(provided) for source in required for provided in source.provides), item
    for source in sources:
        assert source.url.startswith("https://"), source.name


def test_packaged_split_and_vocab_digests_match_the_published_files():
    caches = SHARED / "data" / "drilldown-caches"
    if not caches.is_dir():
        pytest.skip(f"{caches} is absent: it holds Drill-down's published split and vocabulary lists")
    listed = {source.name: source for source in load_sources() if source.group == "splits_vocab"}
    assert sorted(listed) == sorted(path.name for path in caches.glob("*.txt"))
    for name, source in listed.items():
        assert source.sha256 == sha((caches / name).read_bytes()), name


def test_source_list_errors_name_the_file(tmp_path):
    bad = tmp_path / "sources.yaml"
    bad.write_text("version: 1\nsources:\n  - name: x\n    kind: ftp\n")
    with pytest.raises(ValueError, match="sources.yaml: unreadable source list"):
        load_sources(bad)


def zip_folder(folder: Path, names_under: str) -> bytes:
    """A zip of ``folder`` whose members sit under ``names_under/``, as Drill-down's archives do."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, f"{names_under}/{path.relative_to(folder).as_posix()}")
    return buffer.getvalue()


def test_fetched_demo_archives_build_the_same_scene_database(server, tmp_path):
    demo = tmp_path / "demo"
    generate_demo(demo, n_train=6, n_val=2, n_test=2, seed=3)
    server.files = {
        "/sg_xmls.zip": zip_folder(demo / "sg_xmls", "sg_xmls"),
        "/rg_jsons.zip": zip_folder(demo / "rg_jsons", "rg_jsons"),
        "/test.txt": (demo / "splits" / "test.txt").read_bytes(),
    }
    sources = [
        Source(name, "annotations", "http", server.url(f"/{name}"), None, True, (name.removesuffix(".zip") + "/",),
               False, "per-image files")
        for name in ("sg_xmls.zip", "rg_jsons.zip")
    ] + [Source("test.txt", "annotations", "http", server.url("/test.txt"), sha((demo / "splits" / "test.txt").read_bytes()),
                False, ("splits/test.txt",), False, "test list")]
    fetched = tmp_path / "fetched"
    manifest = tmp_path / "downloads" / "manifest.json"
    provided = fetch_group("annotations", fetched, tmp_path / "downloads", manifest, retries=0, sources=sources)

    assert sorted(p.relative_to(fetched).as_posix() for p in provided) == ["rg_jsons", "sg_xmls", "splits/test.txt"]
    assert set(load_manifest(manifest)) == {"sg_xmls.zip", "rg_jsons.zip"}  # the test list had a known digest
    for folder in ("vocab", "images"):
        (fetched / folder).symlink_to(demo / folder)
    for split in ("train", "val"):
        (fetched / "splits" / f"{split}.txt").write_bytes((demo / "splits" / f"{split}.txt").read_bytes())
    for root, out in ((demo, tmp_path / "db_local"), (fetched, tmp_path / "db_fetched")):
        build_scenes(root, DataLayout(), out, max_turns=10, val_size=1, strict=True, seed=0)
    assert load_scenes(tmp_path / "db_local", "train") == load_scenes(tmp_path / "db_fetched", "train")

    requests_before = len(server.requests)
    fetch_group("annotations", fetched, tmp_path / "downloads", manifest, retries=0, sources=sources)
    assert len(server.requests) == requests_before  # everything present: nothing fetched again


def test_fetching_an_unknown_group_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no sources in group 'nope'"):
        fetch_group("nope", tmp_path, tmp_path / "downloads", tmp_path / "manifest.json")
