"""Fetch the `vg` data sources: resumable, verified HTTP downloads, a recorded manifest of what was
fetched, and the public Google Drive folder holding the authors' CLIP features.

A download goes to ``<name>.part`` beside its destination, resumes from there with an HTTP Range
request after an interruption, is checked against its sha256 and only then renamed into place, so
the destination is either absent or complete and verified. When the digest is not known in advance,
the first download records name, url, size and sha256 in a JSON manifest and later runs verify
against it. What to fetch is described in ``vg_sources.yaml`` (see :func:`load_sources`).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import shutil
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Literal

import yaml
from tqdm import tqdm

from vscn.data.archives import extract_archive, is_archive
from vscn.io import atomic_write_text, sha256_file

try:
    import fcntl
except ImportError:  # Windows has no fcntl: there, manifest updates from parallel jobs are not serialised
    fcntl = None

log = logging.getLogger(__name__)

SOURCES_FILE = Path(__file__).with_name("vg_sources.yaml")
SOURCES_VERSION = 1
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_S = 2.0  # the wait before retry k is DEFAULT_BACKOFF_S * 2**k
DEFAULT_TIMEOUT_S = 60.0  # per socket operation, not per download
CHUNK_BYTES = 1 << 20
USER_AGENT = "vscn-data-download"
PART_SUFFIX = ".part"
MANIFEST_FORMAT, MANIFEST_VERSION = "vscn-download-manifest", 1
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
UNSATISFIED_RANGE = re.compile(r"bytes \*/(\d+)")
# statuses worth another try; every other HTTP error (404, 403, ...) fails at once
RETRYABLE_STATUSES = {
    HTTPStatus.REQUEST_TIMEOUT,
    HTTPStatus.TOO_MANY_REQUESTS,
    HTTPStatus.INTERNAL_SERVER_ERROR,
    HTTPStatus.BAD_GATEWAY,
    HTTPStatus.SERVICE_UNAVAILABLE,
    HTTPStatus.GATEWAY_TIMEOUT,
}


class DownloadError(RuntimeError):
    """A download that could not be completed."""


class ChecksumError(DownloadError):
    """Downloaded (or already present) bytes whose sha256 differs from the expected digest."""

    def __init__(self, url: str, path: Path, expected: str, actual: str, note: str) -> None:
        super().__init__(f"{path}: sha256 mismatch for {url}: expected {expected}, got {actual}; {note}")
        self.url, self.path, self.expected, self.actual = url, path, expected, actual


class _TransientError(Exception):
    """A failed attempt that a retry may fix (the .part file, if any, is kept for resuming)."""


# network failures: URLError wraps those of connecting, the others arise while reading the body
_RETRYABLE_ERRORS = (
    _TransientError,
    urllib.error.URLError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
    ssl.SSLError,
)


# ----------------------------------------------------------------------------- digests and manifest


@dataclass(frozen=True)
class ManifestEntry:
    """What one downloaded file was: where it came from, its size in bytes and its sha256."""

    name: str  # the file's key: its name, or "<folder>/<path>" for a file of a downloaded folder
    url: str
    size: int
    sha256: str


def load_manifest(path: Path | str) -> dict[str, ManifestEntry]:
    """Entries of a download manifest by name; an absent file is an empty manifest."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        if content.get("format") != MANIFEST_FORMAT or content.get("version") != MANIFEST_VERSION:
            raise ValueError(f"not a {MANIFEST_FORMAT} version {MANIFEST_VERSION} file")
        entries = {name: ManifestEntry(name=name, **fields) for name, fields in content["files"].items()}
        for entry in entries.values():
            if not isinstance(entry.sha256, str) or not SHA256_PATTERN.fullmatch(entry.sha256):
                raise ValueError(f"entry {entry.name!r} has a malformed sha256 {entry.sha256!r}")
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: unreadable download manifest ({error})") from error
    return entries


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` so parallel jobs do not lose each other's manifest updates."""
    if fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def record_in_manifest(path: Path | str, entry: ManifestEntry) -> None:
    """Add or replace one entry of the manifest at ``path`` (created if absent), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.parent):
        entries = load_manifest(path)
        entries[entry.name] = entry
        files = {name: {k: v for k, v in asdict(e).items() if k != "name"} for name, e in sorted(entries.items())}
        content = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "files": files}
        atomic_write_text(path, json.dumps(content, indent=2) + "\n")


def _expected_digest(name: str, sha256: str | None, manifest: Path | None) -> str | None:
    """The digest a file must have: the one passed in and/or the one recorded (they must agree)."""
    if sha256 is not None and not SHA256_PATTERN.fullmatch(sha256):
        raise ValueError(f"{name}: malformed sha256 {sha256!r} (expected 64 lower-case hex digits)")
    recorded = load_manifest(manifest).get(name) if manifest is not None else None
    if recorded is not None and sha256 is not None and recorded.sha256 != sha256:
        raise ValueError(f"{name}: {manifest} records sha256 {recorded.sha256}, but {sha256} was expected")
    return sha256 if sha256 is not None else recorded.sha256 if recorded is not None else None


def _verify_or_record(url: str, path: Path, key: str, expected: str | None, manifest: Path | None, note: str) -> None:
    """Check ``path`` against ``expected``, or record its digest under ``key`` when none is expected."""
    if expected is None and manifest is None:
        return  # nothing to check against and nowhere to record: spare reading the file
    actual = sha256_file(path)
    if expected is not None and actual != expected:
        raise ChecksumError(url, path, expected, actual, note)
    if expected is None and manifest is not None:
        record_in_manifest(manifest, ManifestEntry(key, url, path.stat().st_size, actual))
        log.info("recorded %s (sha256 %s) in %s", key, actual, manifest)


# ----------------------------------------------------------------------------- HTTP download


def _open(url: str, offset: int, timeout_s: float) -> http.client.HTTPResponse:
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s)


def _fetch_once(url: str, part: Path, timeout_s: float, progress: tqdm) -> None:
    """One attempt: continue ``part`` from its current size (or start it) and read to the end."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, offset, timeout_s)
    except urllib.error.HTTPError as error:
        if error.code == HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE and offset:
            unsatisfied = UNSATISFIED_RANGE.fullmatch(error.headers.get("Content-Range", ""))
            if unsatisfied and int(unsatisfied.group(1)) == offset:
                return  # an earlier run received every byte but stopped before verifying
            part.unlink()  # not a prefix of the remote file (e.g. longer than it)
            raise _TransientError(f"the server cannot continue {part}; starting again") from error
        if error.code in RETRYABLE_STATUSES:
            raise _TransientError(f"HTTP {error.code} {error.reason}") from error
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from error
    with response:
        total = None
        if offset and response.status == HTTPStatus.PARTIAL_CONTENT:
            content_range = CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
            if content_range is None or int(content_range.group(1)) != offset:
                part.unlink()
                raise _TransientError(f"unexpected Content-Range {response.headers.get('Content-Range')!r}")
            total = None if content_range.group(3) == "*" else int(content_range.group(3))
        else:  # 200: the whole file (the server ignored the Range header, or there was no partial file)
            offset = 0
        length = response.headers.get("Content-Length")
        remaining = int(length) if length is not None else None
        if total is None and remaining is not None:
            total = offset + remaining
        progress.reset(total=total)
        progress.update(offset)
        received = 0
        with part.open("ab" if offset else "wb") as out:
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                received += len(chunk)
                progress.update(len(chunk))
    if remaining is not None and received < remaining:
        raise _TransientError(f"connection closed after {received} of {remaining} bytes")


def _wait_before_retry(url: str, attempt: int, error: BaseException, backoff_s: float) -> None:
    wait_s = backoff_s * 2**attempt
    log.warning("%s: attempt %d failed (%s); retrying in %.1f s", url, attempt + 1, error, wait_s)
    time.sleep(wait_s)


def download(
    url: str,
    dest: Path | str,
    sha256: str | None = None,
    retries: int = DEFAULT_RETRIES,
    manifest: Path | str | None = None,
    *,
    backoff_s: float = DEFAULT_BACKOFF_S,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``; nothing but a complete, verified file is
    ever at ``dest``.

    Bytes go to ``<dest>.part``; a ``.part`` left by an interrupted run is continued with an HTTP
    Range request (a server that ignores Range sends the whole file again). Network failures and
    HTTP 408/429/5xx are retried ``retries`` times, waiting ``backoff_s * 2**k`` before retry k;
    other HTTP errors fail at once. The expected digest is ``sha256`` and/or the one recorded for
    ``dest.name`` in ``manifest``; on a mismatch the ``.part`` is deleted and :class:`ChecksumError`
    names the url, the file and both digests. With no expected digest and a ``manifest`` given, the
    file's url, size and sha256 are recorded there. An existing ``dest`` is verified, not
    downloaded again (and left in place if it fails).
    """
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    dest = Path(dest)
    manifest = Path(manifest) if manifest is not None else None
    expected = _expected_digest(dest.name, sha256, manifest)
    if dest.exists():
        note = "the existing file was left in place; delete it to download again"
        _verify_or_record(url, dest, dest.name, expected, manifest, note)
        return dest

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + PART_SUFFIX)
    with tqdm(desc=dest.name, unit="B", unit_scale=True, unit_divisor=1024, disable=None) as progress:
        for attempt in range(retries + 1):
            try:
                _fetch_once(url, part, timeout_s, progress)
                break
            except _RETRYABLE_ERRORS as error:
                if attempt == retries:
                    kept = f"; the partial download {part} is kept for a later run to continue" if part.exists() else ""
                    raise DownloadError(f"{url}: failed after {retries + 1} attempts ({error}){kept}") from error
                _wait_before_retry(url, attempt, error, backoff_s)
    try:
        _verify_or_record(url, part, dest.name, expected, manifest, f"deleted the download {part}")
    except ChecksumError:
        part.unlink()
        raise
    os.replace(part, dest)
    log.info("downloaded %s to %s", url, dest)
    return dest


# ----------------------------------------------------------------------------- Google Drive folder


def _files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


def download_gdrive_folder(
    url: str,
    dest: Path | str,
    manifest: Path | str | None = None,
    retries: int = DEFAULT_RETRIES,
    *,
    backoff_s: float = DEFAULT_BACKOFF_S,
) -> list[Path]:
    """Download a public Google Drive folder to the folder ``dest``; return its files.

    Uses ``gdown`` (imported only here). Files arrive in ``<dest>.part/``, which is kept between
    attempts and runs so that gdown resumes partial files and skips finished ones; failures are
    retried like :func:`download` does. The folder is renamed to ``dest`` once every file is there
    and verified. Each file is keyed ``"<dest name>/<path in folder>"`` in ``manifest``: verified
    against a recorded digest, else recorded. An existing ``dest`` is verified, not downloaded again.
    """
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    dest = Path(dest)
    manifest = Path(manifest) if manifest is not None else None
    recorded = load_manifest(manifest) if manifest is not None else {}
    folder = dest if dest.exists() else dest.with_name(dest.name + PART_SUFFIX)
    if not dest.exists():
        import gdown  # only this source needs it

        folder.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(retries + 1):
            try:
                gdown.download_folder(url=url, output=str(folder), quiet=not sys.stderr.isatty(), resume=True)
                break
            except Exception as error:  # gdown raises its own and requests' errors; all mean the same here
                if attempt == retries:
                    raise DownloadError(
                        f"{url}: Google Drive folder download into {folder} failed after {retries + 1} "
                        f"attempts ({error}); a later run resumes it"
                    ) from error
                _wait_before_retry(url, attempt, error, backoff_s)
    files = _files_under(folder)
    if not files:
        raise DownloadError(f"{url}: the Google Drive folder gave no files in {folder}")
    for path in files:
        key = f"{dest.name}/{path.relative_to(folder).as_posix()}"
        expected = recorded[key].sha256 if key in recorded else None
        _verify_or_record(url, path, key, expected, manifest, f"delete {folder} to download again")
    if folder != dest:
        os.replace(folder, dest)
    return [dest / path.relative_to(folder) for path in files]


# ----------------------------------------------------------------------------- the source list


@dataclass(frozen=True)
class Source:
    """One thing to fetch for the `vg` data (an entry of ``vg_sources.yaml``)."""

    name: str  # file name of the download (folder name for a Drive folder)
    group: str  # which part of the data it belongs to; a rule fetches one group
    kind: Literal["http", "gdrive_folder"]
    url: str
    sha256: str | None  # None: not known in advance, recorded by the first download
    unpack: bool  # True: an archive (or folder of archives) to extract into the data directory
    provides: tuple[str, ...]  # data-directory paths it supplies ('/'-terminated for folders)
    optional: bool  # not needed by the paper setting
    description: str


def load_sources(path: Path | str = SOURCES_FILE) -> list[Source]:
    """Read and check a source list (default: the packaged ``vg_sources.yaml``).

    A source that is not unpacked must provide exactly one path: where the downloaded file goes,
    relative to the data directory.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        if raw.get("version") != SOURCES_VERSION:
            raise ValueError(f"expected version {SOURCES_VERSION}, found {raw.get('version')!r}")
        sources = [Source(**{**item, "provides": tuple(item["provides"])}) for item in raw["sources"]]
    except (yaml.YAMLError, AttributeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: unreadable source list ({error})") from error
    names = [source.name for source in sources]
    for source in sources:
        if names.count(source.name) > 1:
            raise ValueError(f"{path}: source name {source.name!r} appears more than once")
        if source.kind not in ("http", "gdrive_folder"):
            raise ValueError(f"{path}: source {source.name!r} has unknown kind {source.kind!r}")
        if source.sha256 is not None and not SHA256_PATTERN.fullmatch(source.sha256):
            raise ValueError(f"{path}: source {source.name!r} has a malformed sha256 {source.sha256!r}")
        if not source.unpack and len(source.provides) != 1:
            raise ValueError(f"{path}: source {source.name!r} is not unpacked, so it must provide exactly one path")
    return sources


# ----------------------------------------------------------------------------- fetching a group


def fetch_group(
    group: str, data_dir: Path | str, downloads: Path | str, manifest: Path | str, retries: int = DEFAULT_RETRIES,
    include_optional: bool = False, sources: Sequence[Source] | None = None,
) -> list[Path]:
    """Fetch every source of ``group`` into ``data_dir``; return the paths they provide.

    Downloads land in ``downloads`` (kept, so an interrupted run resumes and a finished one is only
    verified), are checked against ``manifest``, and archives are extracted with
    :func:`vscn.data.archives.extract_archive`. A provided path already present is left alone.
    """
    data_dir, downloads = Path(data_dir), Path(downloads)
    chosen = [s for s in (sources or load_sources()) if s.group == group and (include_optional or not s.optional)]
    if not chosen:
        raise ValueError(f"no sources in group {group!r}")
    provided: list[Path] = []
    for source in chosen:
        targets = [data_dir / path.rstrip("/") for path in source.provides]
        provided.extend(targets)
        if all(target.exists() for target in targets):
            continue
        if source.kind == "gdrive_folder":
            files = download_gdrive_folder(source.url, downloads / source.name, manifest, retries)
        else:
            files = [download(source.url, downloads / source.name, source.sha256, retries, manifest)]
        if not source.unpack:
            targets[0].parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(files[0], targets[0])
            continue
        for archive in files:
            if is_archive(archive):
                extract_archive(archive, data_dir)
    missing = [str(target) for target in provided if not target.exists()]
    if missing:
        raise DownloadError(f"group {group!r} was fetched but these are still missing: {', '.join(missing)}")
    return provided
