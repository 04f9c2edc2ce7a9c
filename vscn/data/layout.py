"""Where a dataset keeps its files, and the scene-database step that reads them.

The demo world and Visual Genome share one per-image layout; only the names of the vocabulary files,
split lists and image folders differ, so a :class:`DataLayout` (from the config) names them relative
to the data root.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vscn.data.errors import DropCounts
from vscn.data.scenes import SPLITS, DerivedSplits, SplitLists, Summary, build_scene_db, load_split_ids
from vscn.data.vg import iter_scenes, iter_vg_release, load_vocabulary


@dataclass(frozen=True)
class DataLayout:
    """Paths relative to the data root."""

    objects_vocab: str = "vocab/objects.txt"
    attributes_vocab: str = "vocab/attributes.txt"
    relations_vocab: str = "vocab/relations.txt"
    # Split lists by split name; empty to derive the splits from raw_test as Drill-down does.
    split_lists: dict[str, str] = field(
        default_factory=lambda: {name: f"splits/{name}.txt" for name in SPLITS}
    )
    raw_test: str = "splits/raw_test.txt"
    image_dirs: tuple[str, ...] = ("images",)
    # "per_image": Drill-down's sg_xmls/ and rg_jsons/; "release": the VG v1.2 JSON files in release_dir.
    annotations: Literal["per_image", "release"] = "per_image"
    release_dir: str = "."

    def __post_init__(self) -> None:
        if self.split_lists and set(self.split_lists) != set(SPLITS):
            raise ValueError(f"split_lists must name exactly {SPLITS}, not {sorted(self.split_lists)}")
        object.__setattr__(self, "image_dirs", tuple(self.image_dirs))


def build_scenes(
    data_root: Path, layout: DataLayout, out_dir: Path, max_turns: int, val_size: int, strict: bool, seed: int
) -> Summary:
    """Parse every annotated image under ``data_root``, filter, split and write the scene database."""
    data_root = Path(data_root)
    vocab = load_vocabulary(
        data_root / layout.objects_vocab, data_root / layout.attributes_vocab, data_root / layout.relations_vocab
    )
    if layout.split_lists:
        splits = SplitLists(**{name: load_split_ids(data_root / path) for name, path in layout.split_lists.items()})
    else:
        splits = DerivedSplits(load_split_ids(data_root / layout.raw_test), val_size)
    drops = DropCounts()
    if layout.annotations == "release":
        scenes = iter_vg_release(data_root / layout.release_dir, vocab, strict=strict, drops=drops)
    else:
        scenes = iter_scenes(data_root, vocab, strict=strict, drops=drops)
    return build_scene_db(
        scenes,
        out_dir,
        max_turns,
        splits,
        image_dirs=[data_root / folder for folder in layout.image_dirs],
        strict=strict,
        seed=seed,
        drops=drops,
    )
