"""Writing files and folders so that a reader never sees a partial one."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

FILE_MODE = 0o644  # temporary files are created private; published files are readable by all
DIR_MODE = 0o755  # likewise for published folders
HASH_CHUNK_BYTES = 1 << 20  # read this much at a time when hashing a file


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to a temporary file next to ``path`` and rename it, so ``path`` is never partial."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False)
    temporary = Path(handle.name)
    try:
        with handle:
            handle.write(data)
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path | str, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def publish_folder(built: Path | str, target: Path | str) -> None:
    """Put the finished folder ``built`` at ``target``, readable by all; an older ``target`` is
    removed only after the new one is in place, so ``target`` is never partial or missing."""
    built, target = Path(built), Path(target)
    os.chmod(built, DIR_MODE)  # mkdtemp folders are private
    if not target.exists():
        os.replace(built, target)
        return
    old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
    os.replace(target, old / target.name)
    os.replace(built, target)
    shutil.rmtree(old)


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file's contents, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
