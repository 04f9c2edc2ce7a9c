"""Safe, all-or-nothing extraction of zip and tar archives (plain, .gz, .bz2, .xz).

Downloaded archives are untrusted: a member named ``../x`` or ``/etc/x``, a link that points outside
the extraction directory, or a device file is refused before anything is written. Members are
extracted into a staging directory beside the target and moved into place only when every member
has been written and every link checked, so a failure leaves the target as it was.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tarfile
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO, Literal

from tqdm import tqdm

log = logging.getLogger(__name__)

ZIP_MADE_ON_UNIX = 3  # ZipInfo.create_system value whose external_attr high bits hold a Unix mode
ZIP_MODE_SHIFT = 16  # the Unix mode sits in the upper 16 bits of ZipInfo.external_attr
COPY_CHUNK_BYTES = 1 << 20


class ArchiveError(ValueError):
    """An archive that cannot be extracted (unknown format, corrupt, or unsafe)."""


class UnsafeArchiveError(ArchiveError):
    """A member that would write outside the target or create something other than files, folders
    and links that stay inside the target."""

    def __init__(self, archive: Path, member: str, reason: str) -> None:
        super().__init__(f"{archive}: refusing to extract member {member!r}: {reason}; nothing was extracted")
        self.archive = archive
        self.member = member
        self.reason = reason


@dataclass(frozen=True)
class _Member:
    """One archive member reduced to what extraction needs."""

    name: str  # path inside the archive, '/'-separated
    kind: Literal["file", "dir", "symlink", "hardlink"]
    link: str = ""  # link target: relative to the member's folder (symlink) or the archive root (hardlink)


def _path_problem(name: str) -> str | None:
    """Why a member path may not be written under the target, or None when it may."""
    if not name:
        return "empty name"
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).drive:
        return "absolute path"
    if ".." in PurePosixPath(name).parts:
        return "'..' path component"
    return None


def _symlink_problem(name: str, link: str) -> str | None:
    """Why a symbolic link may not be created, judged on its text (the final tree is checked again)."""
    if PurePosixPath(link).is_absolute() or PureWindowsPath(link).drive:
        return f"symbolic link to the absolute path {link!r}"
    resolved = os.path.normpath(os.path.join(os.path.dirname(name), link))
    if resolved == ".." or resolved.startswith("../"):
        return f"symbolic link {link!r} points outside the target"
    return None


def _check_all(archive: Path, members: list[_Member]) -> None:
    """Refuse the archive if any member is unsafe; duplicates are refused too, since a later member
    with the same name could replace a checked file by a link."""
    seen: set[str] = set()
    for member in members:
        _check(archive, member)
        key = os.path.normpath(member.name)
        if member.kind != "dir" and key in seen:
            raise UnsafeArchiveError(archive, member.name, "appears more than once")
        seen.add(key)


def _check(archive: Path, member: _Member) -> None:
    problem = _path_problem(member.name)
    if problem is None and member.kind == "symlink":
        problem = _symlink_problem(member.name, member.link)
    if problem is None and member.kind == "hardlink":
        link_problem = _path_problem(member.link)
        problem = f"hard link to {member.link!r}: {link_problem}" if link_problem else None
    if problem is not None:
        raise UnsafeArchiveError(archive, member.name, problem)


def _tar_members(archive: Path, tar: tarfile.TarFile) -> list[_Member]:
    members = []
    for info in tar.getmembers():
        if info.isfile():
            members.append(_Member(info.name, "file"))
        elif info.isdir():
            members.append(_Member(info.name, "dir"))
        elif info.issym():
            members.append(_Member(info.name, "symlink", info.linkname))
        elif info.islnk():
            members.append(_Member(info.name, "hardlink", info.linkname))
        else:  # character/block devices, FIFOs and anything newer
            raise UnsafeArchiveError(archive, info.name, "device file, FIFO or other special file")
    return members


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> list[_Member]:
    members = []
    for info in zf.infolist():
        mode = info.external_attr >> ZIP_MODE_SHIFT if info.create_system == ZIP_MADE_ON_UNIX else 0
        if stat.S_ISLNK(mode):
            try:
                link = zf.read(info).decode("utf-8")  # a zip stores a link's target as its contents
            except UnicodeDecodeError as error:
                raise UnsafeArchiveError(archive, info.filename, "symbolic link target is not UTF-8 text") from error
            members.append(_Member(info.filename, "symlink", link))
        elif stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeArchiveError(archive, info.filename, "device file, FIFO or other special file")
        elif info.is_dir():
            members.append(_Member(info.filename, "dir"))
        else:
            members.append(_Member(info.filename, "file"))
    return members


def _inside(root: Path, path: str | os.PathLike[str]) -> bool:
    """Whether ``path``, with every link resolved, lies in ``root`` (itself already resolved)."""
    real = os.path.realpath(path)
    return real == str(root) or real.startswith(str(root) + os.sep)


def _writable_parent(archive: Path, root: Path, member: _Member) -> Path:
    """The member's destination, after checking that its folder (links resolved) is inside root."""
    dest = root / member.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not _inside(root, dest.parent):
        raise UnsafeArchiveError(archive, member.name, "its folder is reached through a link leaving the target")
    return dest


def _write_member(archive: Path, root: Path, member: _Member, open_member: Callable[[str], BinaryIO]) -> None:
    dest = _writable_parent(archive, root, member)
    if member.kind == "dir":
        dest.mkdir(exist_ok=True)
    elif member.kind == "symlink":
        os.symlink(member.link, dest)
    elif member.kind == "hardlink":
        source = root / member.link
        if not source.is_file() or not _inside(root, source):
            raise UnsafeArchiveError(archive, member.name, f"hard link to {member.link!r}, not an earlier file")
        shutil.copyfile(source, dest)  # a copy, not a link: nothing shares an inode with the staging tree
    else:
        with open_member(member.name) as stream, open(dest, "xb") as out:
            shutil.copyfileobj(stream, out, COPY_CHUNK_BYTES)


def _write_members(archive: Path, root: Path, members: list[_Member], open_member: Callable[[str], BinaryIO]) -> None:
    """Create every member under root (file contents only: permissions and times are not kept)."""
    for member in tqdm(members, desc=f"extract {archive.name}", unit="file", disable=None):
        try:
            _write_member(archive, root, member, open_member)
        except (OSError, zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError) as error:
            message = f"{archive}: cannot extract member {member.name!r}: {error}; nothing was extracted"
            raise ArchiveError(message) from error


def _escaping_links(root: Path) -> Iterator[Path]:
    """Links in the extracted tree that resolve outside it (e.g. a chain of links set up across
    several members, each harmless on its own)."""
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            if path.is_symlink() and not _inside(root, path):
                yield path


def _extract_into(archive: Path, staging: Path) -> None:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            members = _zip_members(archive, zf)
            _check_all(archive, members)
            _write_members(archive, staging, members, zf.open)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive, "r:*") as tar:
            members = _tar_members(archive, tar)
            _check_all(archive, members)
            _write_members(archive, staging, members, tar.extractfile)
    else:
        raise ArchiveError(f"{archive}: not a zip or tar archive")
    escaping = next(_escaping_links(staging), None)
    if escaping is not None:
        member = escaping.relative_to(staging).as_posix()
        raise UnsafeArchiveError(archive, member, "symbolic link resolves outside the target")


def _move_into_place(staging: Path, target: Path, archive: Path) -> list[Path]:
    entries = sorted(staging.iterdir())
    if not target.exists():
        os.replace(staging, target)  # one atomic step for the whole tree
        return [target / entry.name for entry in entries]
    clashes = [entry.name for entry in entries if os.path.lexists(target / entry.name)]
    if clashes:
        raise ArchiveError(f"{archive}: {target} already holds {', '.join(clashes)}; remove them to extract again")
    placed = []
    for entry in entries:
        os.replace(entry, target / entry.name)
        placed.append(target / entry.name)
    return placed


def extract_archive(archive: Path | str, target: Path | str) -> list[Path]:
    """Extract a zip or tar archive into ``target``; return the top-level paths it created there.

    Every member is checked before anything is written: absolute paths, ``..`` components, symbolic
    links that leave the target (or point at an absolute path), hard links to anything but an earlier
    member, and device files or FIFOs raise :class:`UnsafeArchiveError` naming the archive and the
    member. Extraction happens in a staging folder beside ``target``; when ``target`` does not exist
    the staging folder is renamed to it, otherwise each top-level entry is moved in, and an entry
    that already exists there is an error (nothing is overwritten). On any failure nothing is left.
    """
    archive, target = Path(archive), Path(target)
    if not archive.is_file():
        raise FileNotFoundError(f"{archive}: archive not found")
    target.parent.mkdir(parents=True, exist_ok=True)
    # mkdir (not mkdtemp) so the folder gets the usual permissions when it is renamed to the target
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex}.extracting"
    staging.mkdir()
    try:
        _extract_into(archive, staging.resolve())
        placed = _move_into_place(staging, target, archive)
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError) as error:
        raise ArchiveError(f"{archive}: corrupt archive ({error}); nothing was extracted") from error
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    log.info("extracted %s into %s (%d top-level entries)", archive, target, len(placed))
    return placed


def is_archive(path: Path | str) -> bool:
    """Whether ``path`` is a zip or tar archive (by content, not by name)."""
    return zipfile.is_zipfile(path) or tarfile.is_tarfile(path)
