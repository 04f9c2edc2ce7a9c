"""Publishing files and folders whole."""

import stat
import tempfile
from pathlib import Path

from vscn.io import DIR_MODE, FILE_MODE, atomic_write_text, publish_folder


def test_atomic_write_leaves_only_a_readable_file(tmp_path):
    atomic_write_text(tmp_path / "out" / "a.txt", "hello")
    assert (tmp_path / "out" / "a.txt").read_text() == "hello"
    assert stat.S_IMODE((tmp_path / "out" / "a.txt").stat().st_mode) == FILE_MODE
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.txt"]


def test_published_folder_replaces_the_old_one_and_is_readable(tmp_path):
    target = tmp_path / "db"
    for content in ("old", "new"):
        built = Path(tempfile.mkdtemp(dir=tmp_path))  # private, as the writers create it
        (built / "data.txt").write_text(content)
        publish_folder(built, target)
        assert (target / "data.txt").read_text() == content
    assert stat.S_IMODE(target.stat().st_mode) == DIR_MODE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db"]  # no staging or old folder left
