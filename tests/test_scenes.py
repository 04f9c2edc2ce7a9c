"""The scene database: Drill-down's filtering, splits, Parquet storage and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from vscn.data.errors import AnnotationError, DropCounts
from vscn.data.records import Region, Scene, SceneObject
from vscn.data.scenes import (
    DerivedSplits, SplitLists, build_scene_db, derive_splits, load_scenes, load_split_ids, load_summary,
)
from vscn.data.vg import iter_vg_release, load_vocabulary

SHARED = Path(__file__).resolve().parents[2] / "shared"
CACHES = SHARED / "data" / "drilldown-caches"
RELEASE = SHARED / "data" / "visual-genome-sample"
MAX_TURNS = 3


def require_shared() -> None:
    if not (CACHES.is_dir() and RELEASE.is_dir()):
        pytest.skip(f"reference data not found at {SHARED / 'data'} (checkout without ../shared)")


@pytest.fixture(scope="module")
def split_lists() -> dict[str, list[int]]:
    require_shared()
    lists = {name: load_split_ids(CACHES / f"vg_{name}.txt") for name in ("train", "val", "test")}
    return {**lists, "raw": load_split_ids(CACHES / "raw_test.txt")}


def region(region_id: int, caption: str) -> Region:
    return Region(region_id, (0.0, 0.0, 9.0, 9.0), caption)


def scene(image_id: int, captions: list[str], region_ids: list[int] | None = None, objects: int = 1) -> Scene:
    ids = region_ids if region_ids is not None else list(range(1, len(captions) + 1))
    return Scene(image_id, 20, 10,
                 tuple(SceneObject(i, "dog", (1.0, 1.0, 5.0, 5.0)) for i in range(objects)),
                 (), tuple(region(i, c) for i, c in zip(ids, captions, strict=True)))


ENOUGH = ["a", "b", "c"]  # MAX_TURNS unique captions


# ----------------------------------------------------------------------------------- filtering

def test_filtering_follows_drilldown(tmp_path: Path) -> None:
    scenes = [
        scene(1, ["a dog ", "A Cat", "a dog ", "a bird", "a cat"], region_ids=[9, 4, 2, 7, 1]),
        scene(2, ["x", "X", "y"]),  # two unique captions
        scene(3, ENOUGH, objects=0),  # no object from the vocabulary
        scene(4, ["p", "q", "r", "s"]),
    ]
    summary = build_scene_db(scenes, tmp_path / "db", MAX_TURNS, DerivedSplits([1], val_size=1), seed=0)
    assert summary.kept == {"scenes": 2, "regions": 7, "objects": 2, "relations": 0}
    assert summary.dropped == {
        "regions": {"duplicate_caption": 3},
        "scenes": {"no_vocabulary_objects": 1, "too_few_captions": 1},
    }
    assert summary.split_sizes == {"train": 0, "val": 1, "test": 1}
    [first] = load_scenes(tmp_path / "db", "test")
    # first occurrence in annotation order survives; stored in region-id order
    assert [(r.region_id, r.caption) for r in first.regions] == [(4, "a cat"), (7, "a bird"), (9, "a dog ")]
    assert first.objects == scenes[0].objects
    assert [s.image_id for s in load_scenes(tmp_path / "db", "val")] == [4]
    assert load_summary(tmp_path / "db") == summary


def test_tables_are_documented_columns(tmp_path: Path) -> None:
    build_scene_db([scene(1, ENOUGH)], tmp_path / "db", MAX_TURNS, DerivedSplits([], val_size=0))
    columns = {name: pq.read_schema(tmp_path / "db" / f"{name}.parquet").names
               for name in ("scenes", "regions", "objects", "relations")}
    assert columns == {
        "scenes": ["image_id", "split", "width", "height", "image_path"],
        "regions": ["image_id", "region_id", "x1", "y1", "x2", "y2", "caption", "object_ids", "relation_ids"],
        "objects": ["image_id", "object_id", "name", "x1", "y1", "x2", "y2", "attributes"],
        "relations": ["image_id", "relation_id", "subject_id", "object_id", "predicate"],
    }
    assert json.loads((tmp_path / "db" / "summary.json").read_text())["split_sizes"]["train"] == 1


def test_image_paths_are_resolved(tmp_path: Path) -> None:
    first, second = tmp_path / "VG_100K", tmp_path / "VG_100K_2"
    for path in (first / "1.jpg", second / "1.jpg", second / "2.png"):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"")
    scenes = [scene(i, ENOUGH) for i in (1, 2, 3)]
    summary = build_scene_db(scenes, tmp_path / "db", MAX_TURNS, DerivedSplits([], val_size=0),
                             image_dirs=[first, second])
    paths = {s.image_id: s.image_path for s in load_scenes(tmp_path / "db", "train")}
    assert paths == {1: str(first / "1.jpg"), 2: str(second / "2.png"), 3: ""}
    assert summary.images_not_found == 1


# -------------------------------------------------------------------------- the real VG sample

def test_sample_release_database(tmp_path: Path, split_lists: dict[str, list[int]]) -> None:
    vocab = load_vocabulary(CACHES / "vg_objects_vocab_1600.txt", CACHES / "vg_attributes_vocab_1000.txt",
                            CACHES / "vg_relations_vocab_500.txt")
    drops = DropCounts()
    lists = SplitLists(split_lists["train"], split_lists["val"], split_lists["test"])
    summary = build_scene_db(iter_vg_release(RELEASE, vocab, drops=drops), tmp_path / "db", 10, lists,
                             drops=drops)
    # images 1, 2, 4, 5 are in vg_train.txt and 3 in vg_val.txt
    assert summary.split_sizes == {"train": 4, "val": 1, "test": 0}
    # 1,278 regions; unique lower-cased captions per image: 251, 243, 242, 242, 230
    assert summary.kept["regions"] == 1208
    assert summary.dropped["regions"] == {"duplicate_caption": 70}
    assert summary.dropped["split_ids"] == {"missing_annotation": 107001 - 5}
    assert summary.dropped["objects"]["not_in_vocabulary"] > 0  # parsing drops are reported too
    [three] = load_scenes(tmp_path / "db", "val")
    phrases = json.loads((RELEASE / "region_descriptions.json").read_text())[2]["regions"]
    assert {r.caption for r in three.regions} == {p["phrase"].lower() for p in phrases}
    ids = [r.region_id for r in three.regions]
    assert len(ids) == 242 and ids == sorted(ids)
    assert (three.width, three.height) == (640, 480)


# --------------------------------------------------------------------------------------- splits

def test_drilldown_split_lists(split_lists: dict[str, list[int]]) -> None:
    sizes = {name: len(ids) for name, ids in split_lists.items()}
    assert sizes == {"train": 92105, "val": 5000, "test": 9896, "raw": 10000}
    train, val, test = (set(split_lists[name]) for name in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    assert test <= set(split_lists["raw"])
    assert all(ids == sorted(ids) for name, ids in split_lists.items() if name != "raw")


def test_derived_splits_reproduce_drilldown_test(split_lists: dict[str, list[int]]) -> None:
    surviving = split_lists["train"] + split_lists["val"] + split_lists["test"]
    spec = DerivedSplits(split_lists["raw"], val_size=5000)
    derived = derive_splits(surviving, spec, seed=7)
    assert derived["test"] == split_lists["test"]  # raw_test ids that survived filtering
    assert len(derived["val"]) == 5000 and len(derived["train"]) == 92105
    assert sorted(derived["train"] + derived["val"] + derived["test"]) == sorted(surviving)
    assert not set(derived["train"]) & set(derived["val"])
    assert all(ids == sorted(ids) for ids in derived.values())
    assert derive_splits(reversed(surviving), spec, seed=7) == derived
    assert derive_splits(surviving, spec, seed=8)["val"] != derived["val"]


def test_val_size_larger_than_available(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="val_size 5 exceeds the 2 kept scenes outside raw_test"):
        build_scene_db([scene(1, ENOUGH), scene(2, ENOUGH)], tmp_path / "db", MAX_TURNS,
                       {"raw_test": [], "val_size": 5})
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_listed_scene_outside_splits_is_dropped(tmp_path: Path) -> None:
    summary = build_scene_db([scene(1, ENOUGH), scene(2, ENOUGH)], tmp_path / "db", MAX_TURNS,
                             {"train": [1], "val": [], "test": []})
    assert summary.dropped["scenes"] == {"not_in_split": 1}
    assert [s.image_id for s in load_scenes(tmp_path / "db", "train")] == [1]


# ------------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("strict", [False, True])
def test_id_in_two_splits(tmp_path: Path, strict: bool) -> None:
    with pytest.raises(AnnotationError, match="image id 2 is in both the train and the test split lists"):
        build_scene_db([scene(2, ENOUGH)], tmp_path / "db", MAX_TURNS,
                       SplitLists([1, 2], [], [2]), strict=strict)


def test_split_id_without_annotations(tmp_path: Path) -> None:
    lists = SplitLists([1, 99], [], [5])
    scenes = [scene(1, ENOUGH), scene(5, ["a"])]  # 5 has too few captions
    summary = build_scene_db(scenes, tmp_path / "db", MAX_TURNS, lists)
    assert summary.dropped["split_ids"] == {"missing_annotation": 1, "filtered_out": 1}
    assert summary.split_sizes == {"train": 1, "val": 0, "test": 0}
    with pytest.raises(AnnotationError, match=r"1 split id\(s\) have no annotations: 99"):
        build_scene_db(scenes, tmp_path / "db2", MAX_TURNS, lists, strict=True)
    with pytest.raises(AnnotationError, match=r"1 split id\(s\) lost their scene to filtering: 5"):
        build_scene_db(scenes, tmp_path / "db2", MAX_TURNS, SplitLists([1], [], [5]), strict=True)


def test_duplicate_region_id(tmp_path: Path) -> None:
    repeated = scene(1, ["a", "b", "c", "d"], region_ids=[1, 2, 2, 3])
    summary = build_scene_db([repeated], tmp_path / "db", MAX_TURNS, DerivedSplits([], val_size=0))
    assert summary.dropped["regions"] == {"duplicate_region_id": 1}
    assert [r.caption for r in load_scenes(tmp_path / "db", "train")[0].regions] == ["a", "b", "d"]
    with pytest.raises(AnnotationError, match="image 1: region id 2 appears twice"):
        build_scene_db([repeated], tmp_path / "db", MAX_TURNS, DerivedSplits([], val_size=0), strict=True)


def test_duplicate_scene(tmp_path: Path) -> None:
    twice = [scene(1, ENOUGH), scene(1, ["d", "e", "f"])]
    summary = build_scene_db(twice, tmp_path / "db", MAX_TURNS, DerivedSplits([], val_size=0))
    assert summary.dropped["scenes"] == {"duplicate_image_id": 1}
    assert [r.caption for r in load_scenes(tmp_path / "db", "train")[0].regions] == ENOUGH
    with pytest.raises(AnnotationError, match="image 1 is annotated twice"):
        build_scene_db(twice, tmp_path / "db", MAX_TURNS, DerivedSplits([], val_size=0), strict=True)


def test_no_vocabulary_objects_is_counted_or_an_error_when_strict(tmp_path: Path) -> None:
    scenes = [scene(1, ENOUGH, objects=0), scene(2, ENOUGH)]
    summary = build_scene_db(scenes, tmp_path / "db", MAX_TURNS, DerivedSplits([], val_size=0))
    assert summary.dropped["scenes"] == {"no_vocabulary_objects": 1}
    assert summary.kept["scenes"] == 1
    with pytest.raises(AnnotationError, match="image 1: none of its objects is in the object vocabulary"):
        build_scene_db(scenes, tmp_path / "db2", MAX_TURNS, DerivedSplits([], val_size=0), strict=True)


def test_failed_build_keeps_previous_database(tmp_path: Path) -> None:
    out = tmp_path / "db"
    first = build_scene_db([scene(1, ENOUGH)], out, MAX_TURNS, DerivedSplits([], val_size=0))
    with pytest.raises(AnnotationError):
        build_scene_db([scene(2, ENOUGH), scene(2, ENOUGH)], out, MAX_TURNS, DerivedSplits([], val_size=0),
                       strict=True)
    assert load_summary(out) == first
    assert [s.image_id for s in load_scenes(out, "train")] == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["db"]  # no temporary directories left
    second = build_scene_db([scene(2, ENOUGH)], out, MAX_TURNS, DerivedSplits([], val_size=0))
    assert [s.image_id for s in load_scenes(out, "train")] == [2] and second.kept["scenes"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["db"]


def test_bad_split_list(tmp_path: Path) -> None:
    path = tmp_path / "vg_train.txt"
    path.write_text("1\n2\nthree\n")
    with pytest.raises(AnnotationError, match=r"vg_train\.txt: line 3 is not an image id"):
        load_split_ids(path)
    path.write_text("1\n2\n1\n")
    with pytest.raises(AnnotationError, match=r"vg_train\.txt: image id 1 is listed twice \(line 3\)"):
        load_split_ids(path)


def test_load_scenes_without_database(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match=r"scenes\.parquet: cannot read"):
        load_scenes(tmp_path, "train")
    with pytest.raises(ValueError, match="split must be one of"):
        load_scenes(tmp_path, "dev")
