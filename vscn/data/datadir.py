"""Check a user-supplied Visual Genome data directory before the pipeline relies on it.

The layout is the one the `vg` sources produce (see ``vg_sources.yaml``): Drill-down's per-image
folders, the authors' CLIP features, the images and, under ``caches/``, the split and vocabulary
lists. :func:`missing_items` names the layout entries that are absent; :func:`missing_split_files`
names, for one split list, the images that lack a per-image (or per-scene) file;
:func:`verify_data_dir` raises one error listing both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from vscn.data.scenes import SPLITS, load_split_ids

REGION_FEATURE_DIR = "region_36_final"
CLIP_IMAGE_DIR = "visual_embedding_clip_vit_base16"
CLIP_CAPTION_DIR = "caption_embedding_clip_vit_base16"

VG_SPLIT_LISTS: dict[str, str] = {split: f"caches/vg_{split}.txt" for split in SPLITS}

# Entries of the data directory; a '/'-terminated entry is a folder that must hold something.
VG_LAYOUT: tuple[str, ...] = (
    "sg_xmls/",
    "rg_jsons/",
    f"{REGION_FEATURE_DIR}/",
    f"{CLIP_IMAGE_DIR}/",
    *(f"{CLIP_CAPTION_DIR}/{split}/" for split in SPLITS),
    "VG_100K/",
    "VG_100K_2/",
    *VG_SPLIT_LISTS.values(),
    "caches/raw_test.txt",
    "caches/vg_objects_vocab_1600.txt",
    "caches/vg_attributes_vocab_1000.txt",
    "caches/vg_relations_vocab_500.txt",
)

# Files each image of a split needs, by kind; a kind is satisfied by any one of its alternatives.
# Patterns may use {image_id}, {split} and {scene_index} (the image's position in the sorted split
# list, which is how the authors name the per-scene caption embeddings).
VG_SPLIT_FILES: dict[str, tuple[str, ...]] = {
    "scene graph": ("sg_xmls/{image_id}.xml",),
    "region graph": ("rg_jsons/{image_id}.json",),
    "region features": (f"{REGION_FEATURE_DIR}/{{image_id:012d}}.npy",),
    "CLIP image embedding": (f"{CLIP_IMAGE_DIR}/{{image_id:012d}}.npy",),
    "CLIP caption embeddings": (f"{CLIP_CAPTION_DIR}/{{split}}/{{scene_index}}.npy",),
    "image": ("VG_100K/{image_id}.jpg", "VG_100K_2/{image_id}.jpg"),
}

MAX_IDS_SHOWN = 10  # per kind in an error message; the exception keeps them all


def _present(data_dir: Path, item: str) -> bool:
    path = data_dir / item
    if item.endswith("/"):
        return path.is_dir() and any(os.scandir(path))
    return path.is_file()


def missing_items(data_dir: Path | str, layout: Sequence[str] = VG_LAYOUT) -> list[str]:
    """The layout entries absent from ``data_dir``, in layout order (an empty folder is absent)."""
    data_dir = Path(data_dir)
    return [item for item in layout if not _present(data_dir, item)]


class _Listing:
    """Names in the folders of a data directory, each folder read once (a split has ~10^5 images)."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._names: dict[str, frozenset[str]] = {}

    def has(self, relative: str) -> bool:
        folder, _, name = relative.rpartition("/")
        if folder not in self._names:
            path = self._root / folder
            self._names[folder] = frozenset(os.listdir(path)) if path.is_dir() else frozenset()
        return name in self._names[folder]


def missing_split_files(
    data_dir: Path | str,
    split: str,
    image_ids: Sequence[int],
    split_files: Mapping[str, Sequence[str]] = VG_SPLIT_FILES,
) -> dict[str, list[int]]:
    """For one split, the sorted ids of the images lacking each kind of file (kinds with none lacking
    are left out). See :data:`VG_SPLIT_FILES` for the patterns."""
    listing = _Listing(Path(data_dir))
    missing: dict[str, list[int]] = {}
    for scene_index, image_id in enumerate(sorted(image_ids)):
        fields = {"image_id": image_id, "split": split, "scene_index": scene_index}
        for kind, alternatives in split_files.items():
            if not any(listing.has(pattern.format(**fields)) for pattern in alternatives):
                missing.setdefault(kind, []).append(image_id)
    return missing


class DataDirError(FileNotFoundError):
    """An incomplete data directory; ``missing`` and ``missing_files`` say exactly what is lacking."""

    def __init__(self, data_dir: Path, missing: list[str], missing_files: dict[str, dict[str, list[int]]]) -> None:
        lines = [f"{data_dir}: incomplete data directory"]
        for item in missing:
            lines.append(f"  missing {'folder (absent or empty)' if item.endswith('/') else 'file'}: {item}")
        for split, by_kind in missing_files.items():
            for kind, ids in by_kind.items():
                shown = ", ".join(str(image_id) for image_id in ids[:MAX_IDS_SHOWN])
                more = f", ... ({len(ids) - MAX_IDS_SHOWN} more)" if len(ids) > MAX_IDS_SHOWN else ""
                lines.append(f"  split {split}: {len(ids)} images lack their {kind}: {shown}{more}")
        super().__init__("\n".join(lines))
        self.data_dir = data_dir
        self.missing = missing
        self.missing_files = missing_files


def verify_data_dir(
    data_dir: Path | str,
    layout: Sequence[str] = VG_LAYOUT,
    split_lists: Mapping[str, str] | None = None,
    split_files: Mapping[str, Sequence[str]] = VG_SPLIT_FILES,
) -> None:
    """Raise :class:`DataDirError` listing everything missing from ``data_dir``.

    ``layout`` entries are checked first. With ``split_lists`` (split name -> list path relative to
    ``data_dir``, or absolute; e.g. :data:`VG_SPLIT_LISTS`), every image of every split list that is
    present is also checked for the files in ``split_files``; an absent list is reported as missing.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: data directory not found")
    missing = missing_items(data_dir, layout)
    missing_files = {}
    for split, relative in (split_lists or {}).items():
        if (data_dir / relative).is_file():
            by_kind = missing_split_files(data_dir, split, load_split_ids(data_dir / relative), split_files)
            if by_kind:
                missing_files[split] = by_kind
        elif relative not in missing:
            missing.append(relative)
    if missing or missing_files:
        raise DataDirError(data_dir, missing, missing_files)
