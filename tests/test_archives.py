"""Safe extraction: good zip and tar archives extract exactly; unsafe ones are refused with nothing
written, neither in the target nor beside it."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from vscn.data.archives import (
    ZIP_MADE_ON_UNIX,
    ZIP_MODE_SHIFT,
    ArchiveError,
    UnsafeArchiveError,
    extract_archive,
)

FILES = {
    "sg_xmls/1.xml": b"<annotation>1</annotation>",
    "sg_xmls/2.xml": b"<annotation>2</annotation>",
    "sg_xmls/nested/deep/3.xml": b"<annotation>3</annotation>",
    "README.txt": b"top-level file",
}


def make_zip(path: Path, entries: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = ZIP_MADE_ON_UNIX  # so the mode in external_attr counts
            info.external_attr = (stat.S_IFLNK | 0o777) << ZIP_MODE_SHIFT
            zf.writestr(info, target)
    return path


def tar_member(
    name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = ""
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def tree(root: Path) -> dict[str, bytes]:
    files = (p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in files}


def assert_refused(archive: Path, match: str) -> UnsafeArchiveError:
    """Extracting ``archive`` into ``data`` beside it is refused with a message matching ``match``, and
    neither the target nor a staging folder nor anything else appeared there; returns the error."""
    workdir, target = archive.parent, archive.parent / "data"
    before = {p.name for p in workdir.iterdir()}
    with pytest.raises(UnsafeArchiveError, match=match) as caught:
        extract_archive(archive, target)
    assert not target.exists()
    assert {p.name for p in workdir.iterdir()} == before
    return caught.value


def test_good_zip_extracts_exactly(tmp_path):
    archive = make_zip(tmp_path / "a.zip", FILES)
    target = tmp_path / "data"
    placed = extract_archive(archive, target)
    assert tree(target) == FILES
    assert placed == [target / "README.txt", target / "sg_xmls"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip", "data"]


def test_good_tar_gz_extracts_exactly_with_inside_links(tmp_path):
    members = [tar_member(name, data=data) for name, data in FILES.items()]
    members += [
        tar_member("sg_xmls/latest.xml", tarfile.SYMTYPE, link="2.xml"),
        tar_member("copy.xml", tarfile.LNKTYPE, link="sg_xmls/1.xml"),
    ]
    archive = make_tar(tmp_path / "a.tar.gz", members)
    target = tmp_path / "data"
    extract_archive(archive, target)
    assert tree(target) == {**FILES, "copy.xml": FILES["sg_xmls/1.xml"]}
    link = target / "sg_xmls" / "latest.xml"
    assert link.is_symlink() and link.read_bytes() == FILES["sg_xmls/2.xml"]


def test_extracting_into_an_existing_folder_keeps_its_content(tmp_path):
    target = tmp_path / "data"
    (target / "rg_jsons").mkdir(parents=True)
    (target / "rg_jsons" / "1.json").write_text("{}")
    extract_archive(make_zip(tmp_path / "a.zip", FILES), target)
    assert tree(target) == {**FILES, "rg_jsons/1.json": b"{}"}

    with pytest.raises(ArchiveError, match="already holds README.txt, sg_xmls"):
        extract_archive(make_zip(tmp_path / "b.zip", FILES), target)
    assert tree(target) == {**FILES, "rg_jsons/1.json": b"{}"}
    assert not list(tmp_path.glob(".*extracting"))


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        ("../evil.txt", "'..' path component"),
        ("sg_xmls/../../evil.txt", "'..' path component"),
        ("/abs/evil.txt", "absolute path"),
        ("C:/evil.txt", "absolute path"),
    ],
)
def test_zip_paths_leaving_the_target_are_refused(tmp_path, member, reason):
    archive = make_zip(tmp_path / "bad.zip", {**FILES, member: b"pwned"})
    before = {p.name for p in tmp_path.iterdir()}
    with pytest.raises(UnsafeArchiveError, match=reason) as caught:
        extract_archive(archive, tmp_path / "work" / "data")
    assert caught.value.member == member and str(archive) in str(caught.value)
    assert {p.name for p in tmp_path.iterdir()} == before | {"work"}
    assert list((tmp_path / "work").iterdir()) == []


def test_zip_symlink_leaving_the_target_is_refused(tmp_path):
    archive = make_zip(tmp_path / "bad.zip", FILES, symlinks={"sg_xmls/escape": "../../outside"})
    assert_refused(archive, "'sg_xmls/escape'.*points outside the target")


@pytest.mark.parametrize(
    ("members", "bad_member", "reason"),
    [
        ([tar_member("../evil.txt", data=b"x")], "../evil.txt", "'..' path component"),
        ([tar_member("/etc/evil.txt", data=b"x")], "/etc/evil.txt", "absolute path"),
        (
            [tar_member("link", tarfile.SYMTYPE, link="../outside"), tar_member("link/pwned", data=b"x")],
            "link",
            "points outside",
        ),
        ([tar_member("link", tarfile.SYMTYPE, link="/etc")], "link", "absolute path"),
        ([tar_member("hard", tarfile.LNKTYPE, link="../../etc/passwd")], "hard", "hard link"),
        ([tar_member("dev", tarfile.CHRTYPE)], "dev", "device file"),
        ([tar_member("fifo", tarfile.FIFOTYPE)], "fifo", "FIFO"),
        ([tar_member("a.txt", data=b"1"), tar_member("a.txt", tarfile.SYMTYPE, link="b")], "a.txt", "more than once"),
    ],
)
def test_unsafe_tar_members_are_refused(tmp_path, members, bad_member, reason):
    archive = make_tar(tmp_path / "bad.tar.gz", [tar_member("ok.txt", data=b"fine"), *members])
    error = assert_refused(archive, reason)
    assert error.member == bad_member and error.archive == archive


def test_chained_links_that_escape_together_are_refused(tmp_path):
    # each link looks harmless on its own: "x" is the target itself, "y" is "x/.."; together "y"
    # resolves to the target's parent
    members = [tar_member("y", tarfile.SYMTYPE, link="x/.."), tar_member("x", tarfile.SYMTYPE, link=".")]
    assert_refused(make_tar(tmp_path / "bad.tar.gz", members), "resolves outside the target")


def test_writing_through_a_link_out_of_the_target_is_refused(tmp_path):
    # "x" -> "." passes; "y" -> "x/.." is the target's parent once "x" exists; a file under "y/"
    # would land beside the target
    members = [
        tar_member("x", tarfile.SYMTYPE, link="."),
        tar_member("y", tarfile.SYMTYPE, link="x/.."),
        tar_member("y/pwned.txt", data=b"x"),
    ]
    assert_refused(make_tar(tmp_path / "bad.tar.gz", members), "'y/pwned.txt'.*link leaving the target")


def test_corrupt_and_unknown_archives_are_reported(tmp_path):
    good = make_zip(tmp_path / "good.zip", FILES).read_bytes()
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(ArchiveError, match="truncated.zip"):
        extract_archive(truncated, tmp_path / "data")
    other = tmp_path / "notes.txt"
    other.write_text("plain text")
    with pytest.raises(ArchiveError, match="notes.txt: not a zip or tar archive"):
        extract_archive(other, tmp_path / "data")
    assert not (tmp_path / "data").exists()
    assert not list(tmp_path.glob(".*extracting"))


def test_damaged_member_data_is_reported_with_nothing_left(tmp_path):
    archive = tmp_path / "damaged.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("ok.txt", b"fine")
        zf.writestr("big.bin", b"A" * 1000)
    data = archive.read_bytes()
    archive.write_bytes(data.replace(b"A" * 10, b"B" * 10, 1))  # the stored CRC no longer matches
    with pytest.raises(ArchiveError, match="cannot extract member 'big.bin'"):
        extract_archive(archive, tmp_path / "data")
    assert not (tmp_path / "data").exists()
    assert not list(tmp_path.glob(".*extracting"))
