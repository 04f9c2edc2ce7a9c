"""Data-directory verification: exactly the missing layout entries and per-image files are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from vscn.data.datadir import (
    VG_LAYOUT,
    VG_SPLIT_FILES,
    VG_SPLIT_LISTS,
    DataDirError,
    missing_items,
    missing_split_files,
    verify_data_dir,
)
from vscn.data.scenes import load_split_ids

SHARED = Path(__file__).resolve().parents[2] / "shared"
SPLIT_IDS = {"train": [10, 4, 7], "val": [12, 15], "test": [30]}
# which image folder each image lives in; both folders must exist
IMAGE_FOLDER = {10: "VG_100K", 4: "VG_100K_2", 7: "VG_100K", 12: "VG_100K_2", 15: "VG_100K", 30: "VG_100K"}


def build_complete(root: Path) -> Path:
    """A small data directory with every layout entry and every per-image file of SPLIT_IDS."""

    def touch(relative: str) -> None:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")

    for split, ids in SPLIT_IDS.items():
        (root / VG_SPLIT_LISTS[split]).parent.mkdir(parents=True, exist_ok=True)
        (root / VG_SPLIT_LISTS[split]).write_text("".join(f"{i}\n" for i in ids))
        for scene_index, image_id in enumerate(sorted(ids)):
            for kind, (pattern, *_) in VG_SPLIT_FILES.items():
                if kind != "image":
                    touch(pattern.format(image_id=image_id, split=split, scene_index=scene_index))
            touch(f"{IMAGE_FOLDER[image_id]}/{image_id}.jpg")
    for item in VG_LAYOUT:
        if not item.endswith("/") and not (root / item).exists():
            touch(item)
    return root


def test_complete_directory_passes(tmp_path):
    root = build_complete(tmp_path / "vg")
    assert missing_items(root) == []
    verify_data_dir(root, split_lists=VG_SPLIT_LISTS)


def test_missing_layout_entries_are_listed_exactly(tmp_path):
    root = build_complete(tmp_path / "vg")
    for path in (root / "rg_jsons").iterdir():
        path.unlink()  # an empty folder counts as missing
    (root / "caches" / "vg_relations_vocab_500.txt").unlink()
    (root / "caption_embedding_clip_vit_base16" / "val" / "0.npy").unlink()
    (root / "caption_embedding_clip_vit_base16" / "val" / "1.npy").unlink()
    assert missing_items(root) == [
        "rg_jsons/",
        "caption_embedding_clip_vit_base16/val/",
        "caches/vg_relations_vocab_500.txt",
    ]
    with pytest.raises(DataDirError) as caught:
        verify_data_dir(root)
    message = str(caught.value)
    assert message.splitlines() == [
        f"{root}: incomplete data directory",
        "  missing folder (absent or empty): rg_jsons/",
        "  missing folder (absent or empty): caption_embedding_clip_vit_base16/val/",
        "  missing file: caches/vg_relations_vocab_500.txt",
    ]


def test_images_lacking_their_files_are_named(tmp_path):
    root = build_complete(tmp_path / "vg")
    (root / "region_36_final" / "000000000007.npy").unlink()
    (root / "VG_100K_2" / "4.jpg").unlink()
    (root / "caption_embedding_clip_vit_base16" / "train" / "2.npy").unlink()  # scene 2 of train is image 10
    (root / "sg_xmls" / "15.xml").unlink()
    assert missing_split_files(root, "train", SPLIT_IDS["train"]) == {
        "region features": [7],
        "CLIP caption embeddings": [10],
        "image": [4],
    }
    with pytest.raises(DataDirError) as caught:
        verify_data_dir(root, split_lists=VG_SPLIT_LISTS)
    assert caught.value.missing == []
    assert caught.value.missing_files == {
        "train": {"region features": [7], "CLIP caption embeddings": [10], "image": [4]},
        "val": {"scene graph": [15]},
    }
    assert "split val: 1 images lack their scene graph: 15" in str(caught.value)


def test_missing_split_list_is_reported_once(tmp_path):
    root = build_complete(tmp_path / "vg")
    (root / "caches" / "vg_test.txt").unlink()
    with pytest.raises(DataDirError) as caught:
        verify_data_dir(root, split_lists=VG_SPLIT_LISTS)
    assert caught.value.missing == ["caches/vg_test.txt"]
    assert caught.value.missing_files == {}


def test_absent_directory_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere: data directory not found"):
        verify_data_dir(tmp_path / "nowhere")


def test_empty_directory_lacks_every_file_of_a_real_split(tmp_path):
    caches = SHARED / "data" / "drilldown-caches"
    if not caches.is_dir():
        pytest.skip(f"{caches} is absent: it holds Drill-down's published split lists")
    ids = sorted(load_split_ids(caches / "vg_val.txt"))
    missing = missing_split_files(tmp_path, "val", ids)
    assert missing == {kind: ids for kind in VG_SPLIT_FILES}
    with pytest.raises(DataDirError, match=r"5000 images lack their image: 3, 15, .* \(4990 more\)"):
        verify_data_dir(tmp_path, layout=(), split_lists={"val": str(caches / "vg_val.txt")})
