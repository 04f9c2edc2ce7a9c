"""The scene database: Drill-down's filtering and splits, stored as Parquet tables.

:func:`build_scene_db` consumes :class:`~vscn.data.records.Scene` records from either annotation
reader (or the demo world), applies Drill-down's scene rules and writes, into one directory::

    scenes.parquet     image_id, split, width, height, image_path         one row per kept scene
    regions.parquet    image_id, region_id, x1, y1, x2, y2, caption, object_ids, relation_ids
    objects.parquet    image_id, object_id, name, x1, y1, x2, y2, attributes
    relations.parquet  image_id, relation_id, subject_id, object_id, predicate
    summary.json       counts kept and dropped, by reason

Regions are the unique captions of each scene in region-id order (val/test queries are the first
``max_turns`` of them). The directory is written under a temporary name and renamed when complete.
:func:`load_scenes` reads one split back as records.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from vscn.data.errors import AnnotationError, DropCounts, first_of_each_id
from vscn.data.records import Region, Relation, Scene, SceneObject
from vscn.io import publish_folder

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
DEFAULT_VAL_SIZE = 5000  # Drill-down's validation size when splits are derived
IMAGE_EXTENSIONS = (".jpg", ".png")  # looked up in this order in each image directory
SCENES_FILE = "scenes.parquet"
REGIONS_FILE = "regions.parquet"
OBJECTS_FILE = "objects.parquet"
RELATIONS_FILE = "relations.parquet"
SUMMARY_FILE = "summary.json"
SCHEMA_VERSION = 1
ROWS_PER_BATCH = 1 << 16  # region rows buffered before the tables are appended to (bounds memory)
SHOWN_IDS = 10  # ids quoted in an error message

_BOX_FIELDS = [pa.field(name, pa.float64()) for name in ("x1", "y1", "x2", "y2")]
SCENES_SCHEMA = pa.schema([
    pa.field("image_id", pa.int64()), pa.field("split", pa.string()), pa.field("width", pa.int32()),
    pa.field("height", pa.int32()), pa.field("image_path", pa.string()),
])
REGIONS_SCHEMA = pa.schema([
    pa.field("image_id", pa.int64()), pa.field("region_id", pa.int64()), *_BOX_FIELDS,
    pa.field("caption", pa.string()), pa.field("object_ids", pa.list_(pa.int64())),
    pa.field("relation_ids", pa.list_(pa.int64())),
])
OBJECTS_SCHEMA = pa.schema([
    pa.field("image_id", pa.int64()), pa.field("object_id", pa.int64()), pa.field("name", pa.string()),
    *_BOX_FIELDS, pa.field("attributes", pa.list_(pa.string())),
])
RELATIONS_SCHEMA = pa.schema([
    pa.field("image_id", pa.int64()), pa.field("relation_id", pa.int64()),
    pa.field("subject_id", pa.int64()), pa.field("object_id", pa.int64()),
    pa.field("predicate", pa.string()),
])


# ------------------------------------------------------------------------------------------ splits

@dataclass(frozen=True)
class SplitLists:
    """Given split lists (Drill-down's ``vg_{train,val,test}.txt``)."""

    train: Sequence[int]
    val: Sequence[int]
    test: Sequence[int]


@dataclass(frozen=True)
class DerivedSplits:
    """Splits made from the surviving scenes: test = those in ``raw_test``, val = a seeded random
    ``val_size`` of the rest, train = the remainder."""

    raw_test: Sequence[int]
    val_size: int = DEFAULT_VAL_SIZE


SplitSpec = SplitLists | DerivedSplits


def split_spec(splits: SplitSpec | Mapping[str, Any]) -> SplitSpec:
    """Accept a spec or a plain mapping: ``{"train", "val", "test"}`` lists, or ``{"raw_test",
    "val_size"?}`` for derived splits."""
    if isinstance(splits, SplitLists | DerivedSplits):
        return splits
    if set(splits) == set(SPLITS):
        return SplitLists(**{name: list(splits[name]) for name in SPLITS})
    if "raw_test" in splits and set(splits) <= {"raw_test", "val_size"}:
        return DerivedSplits(list(splits["raw_test"]), int(splits.get("val_size", DEFAULT_VAL_SIZE)))
    raise ValueError(f"splits must have keys {SPLITS} or 'raw_test' (+ 'val_size'), not {sorted(splits)}")


def load_split_ids(path: Path) -> list[int]:
    """Image ids of a split list (one per line; blank lines ignored), in file order.

    A line that is not an integer id, or an id listed twice, is an :class:`AnnotationError`.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise AnnotationError(f"{path}: cannot read split list: {error}") from error
    ids: list[int] = []
    seen: set[int] = set()
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        if not text.isdigit():
            raise AnnotationError(f"{path}: line {number} is not an image id: {line!r}")
        image_id = int(text)
        if image_id in seen:
            raise AnnotationError(f"{path}: image id {image_id} is listed twice (line {number})")
        seen.add(image_id)
        ids.append(image_id)
    return ids


def _shown(ids: Iterable[int]) -> str:
    ordered = sorted(ids)
    more = f" and {len(ordered) - SHOWN_IDS} more" if len(ordered) > SHOWN_IDS else ""
    return ", ".join(map(str, ordered[:SHOWN_IDS])) + more


def _split_of_listed(spec: SplitLists) -> dict[int, str]:
    """Image id -> split name; an id in two lists is an error."""
    split_of: dict[int, str] = {}
    for name in SPLITS:
        for image_id in getattr(spec, name):
            if split_of.get(image_id, name) != name:
                raise AnnotationError(f"image id {image_id} is in both the {split_of[image_id]} and "
                                      f"the {name} split lists")
            split_of[image_id] = name
    return split_of


def derive_splits(kept_ids: Iterable[int], spec: DerivedSplits, seed: int) -> dict[str, list[int]]:
    """Drill-down's split derivation over the surviving scene ids, each split sorted."""
    kept = sorted(set(kept_ids))
    raw_test = set(spec.raw_test)
    rest = [image_id for image_id in kept if image_id not in raw_test]
    if spec.val_size > len(rest):
        raise ValueError(f"val_size {spec.val_size} exceeds the {len(rest)} kept scenes outside raw_test")
    order = np.random.default_rng(seed).permutation(len(rest))
    val = {rest[index] for index in order[:spec.val_size]}
    return {
        "train": [image_id for image_id in rest if image_id not in val],
        "val": sorted(val),
        "test": [image_id for image_id in kept if image_id in raw_test],
    }


# ----------------------------------------------------------------------------------------- summary

@dataclass(frozen=True)
class Summary:
    """What :func:`build_scene_db` kept and dropped (also written as ``summary.json``)."""

    max_turns: int
    split_source: str  # "lists" or "derived"
    seed: int | None  # the seed of derived splits (None for given lists)
    scenes_read: int
    split_sizes: dict[str, int]
    kept: dict[str, int]  # scenes, regions, objects, relations in the database
    dropped: dict[str, dict[str, int]]  # kind -> reason -> count, parsing included
    images_not_found: int  # kept scenes without a .jpg/.png in the image directories
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Summary:
        return cls(**data)


def load_summary(db_dir: Path) -> Summary:
    path = Path(db_dir) / SUMMARY_FILE
    try:
        return Summary.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, TypeError) as error:
        raise AnnotationError(f"{path}: cannot read the scene database summary: {error}") from error


# ----------------------------------------------------------------------------------------- building

def unique_regions(scene: Scene, drops: DropCounts, strict: bool) -> tuple[Region, ...]:
    """The scene's regions without repeated region ids or repeated (lower-case) captions, first
    occurrence in annotation order kept, then sorted by region id."""
    seen_captions: set[str] = set()
    kept = []
    regions = first_of_each_id(scene.regions, lambda part: part.region_id, "region",
                               f"image {scene.image_id}", drops, strict)
    for region in regions:
        caption = region.caption.lower()
        if caption in seen_captions:
            drops.add("regions", "duplicate_caption")
            continue
        seen_captions.add(caption)
        kept.append(Region(region.region_id, region.box, caption, region.object_ids, region.relation_ids))
    return tuple(sorted(kept, key=lambda region: region.region_id))


def find_images(image_dirs: Sequence[Path]) -> dict[int, str]:
    """Image id -> path of ``<id>.jpg`` or ``<id>.png``; the first directory (and extension) wins."""
    paths: dict[int, str] = {}
    for directory in image_dirs:
        for extension in IMAGE_EXTENSIONS:
            for path in sorted(Path(directory).glob(f"*{extension}")):
                if path.stem.isdigit():
                    paths.setdefault(int(path.stem), str(path))
    return paths


class _TableWriter:
    """Rows of one Parquet table, appended in batches to a file opened on first use."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self._path = path
        self._schema = schema
        self._columns: dict[str, list] = {name: [] for name in schema.names}
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0  # rows appended in all
        self.pending = 0  # rows not yet written

    def append(self, **row: Any) -> None:
        for name, value in row.items():
            self._columns[name].append(value)
        self.rows += 1
        self.pending += 1

    def flush(self) -> None:
        if self._writer is not None and not self.pending:
            return  # nothing new: no empty row groups
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._path, self._schema)
        self._writer.write_table(pa.table(self._columns, schema=self._schema))
        self._columns = {name: [] for name in self._schema.names}
        self.pending = 0

    def close(self) -> None:
        self.flush()
        self._writer.close()


def _box_columns(box: tuple[float, float, float, float]) -> dict[str, float]:
    return dict(zip(("x1", "y1", "x2", "y2"), box, strict=True))


class _SceneTables:
    """The region, object and relation tables of the database being written."""

    def __init__(self, directory: Path) -> None:
        self.regions = _TableWriter(directory / REGIONS_FILE, REGIONS_SCHEMA)
        self.objects = _TableWriter(directory / OBJECTS_FILE, OBJECTS_SCHEMA)
        self.relations = _TableWriter(directory / RELATIONS_FILE, RELATIONS_SCHEMA)

    def add(self, scene: Scene, regions: Sequence[Region]) -> None:
        image_id = scene.image_id
        for region in regions:
            self.regions.append(image_id=image_id, region_id=region.region_id, **_box_columns(region.box),
                                caption=region.caption, object_ids=list(region.object_ids),
                                relation_ids=list(region.relation_ids))
        for obj in scene.objects:
            self.objects.append(image_id=image_id, object_id=obj.object_id, name=obj.name,
                                **_box_columns(obj.box), attributes=list(obj.attributes))
        for relation in scene.relations:
            self.relations.append(image_id=image_id, relation_id=relation.relation_id,
                                  subject_id=relation.subject_id, object_id=relation.object_id,
                                  predicate=relation.predicate)
        if self.regions.pending >= ROWS_PER_BATCH:
            for table in (self.regions, self.objects, self.relations):
                table.flush()

    def close(self) -> dict[str, int]:
        for table in (self.regions, self.objects, self.relations):
            table.close()
        return {"regions": self.regions.rows, "objects": self.objects.rows,
                "relations": self.relations.rows}


@dataclass
class _KeptScene:
    image_id: int
    width: int
    height: int
    split: str = ""


@dataclass
class _Filter:
    """Drill-down's per-scene rules, with the split lists (when given) deciding membership."""

    max_turns: int
    split_of: dict[int, str] | None
    drops: DropCounts
    strict: bool
    seen: set[int] = field(default_factory=set)
    filtered_out: set[int] = field(default_factory=set)

    def regions_to_keep(self, scene: Scene) -> tuple[Region, ...] | None:
        """The scene's unique regions, or None when the scene is dropped."""
        if scene.image_id in self.seen:
            self.drops.skip("scenes", "duplicate_image_id",
                            f"image {scene.image_id} is annotated twice", self.strict)
            return None
        self.seen.add(scene.image_id)
        regions = unique_regions(scene, self.drops, self.strict)
        if len(regions) < self.max_turns:
            reason = "too_few_captions"  # the dataset's definition, not bad input: never an error
        elif not scene.objects:
            self.drops.skip("scenes", "no_vocabulary_objects",
                            f"image {scene.image_id}: none of its objects is in the object vocabulary", self.strict)
            self.filtered_out.add(scene.image_id)
            return None
        elif self.split_of is not None and scene.image_id not in self.split_of:
            reason = "not_in_split"
        else:
            return regions
        self.drops.add("scenes", reason)
        self.filtered_out.add(scene.image_id)
        return None


def _check_listed_ids(split_of: dict[int, str], filtering: _Filter, strict: bool) -> None:
    """Count split ids without annotations and split ids whose scene was filtered out; when strict,
    either is an error (the lists promise those scenes)."""
    missing = {image_id for image_id in split_of if image_id not in filtering.seen}
    filtered = {image_id for image_id in split_of if image_id in filtering.filtered_out}
    for ids, reason, problem in ((missing, "missing_annotation", "have no annotations"),
                                 (filtered, "filtered_out", "lost their scene to filtering")):
        if not ids:
            continue
        message = f"{len(ids)} split id(s) {problem}: {_shown(ids)}"
        if strict:
            raise AnnotationError(message)
        logger.warning(message)
        filtering.drops.add("split_ids", reason, len(ids))


def _write_scenes_table(path: Path, kept: Sequence[_KeptScene], image_paths: Mapping[int, str]) -> None:
    rows = sorted(kept, key=lambda scene: scene.image_id)
    table = pa.table({
        "image_id": [scene.image_id for scene in rows],
        "split": [scene.split for scene in rows],
        "width": [scene.width for scene in rows],
        "height": [scene.height for scene in rows],
        "image_path": [image_paths.get(scene.image_id, "") for scene in rows],
    }, schema=SCENES_SCHEMA)
    pq.write_table(table, path)


def build_scene_db(
    scenes: Iterable[Scene], out_dir: Path, max_turns: int, splits: SplitSpec | Mapping[str, Any],
    image_dirs: Sequence[Path] = (), strict: bool = False, seed: int = 0,
    drops: DropCounts | None = None,
) -> Summary:
    """Filter ``scenes`` with Drill-down's rules, assign splits and write the database to ``out_dir``.

    ``drops`` may be the counter the annotation reader filled while ``scenes`` was consumed; its
    counts join the summary. ``seed`` only matters for derived splits. Raises
    :class:`AnnotationError` for an id in two split lists, and, when ``strict``, for anything that
    would otherwise be skipped and counted (repeated ids, split ids without annotations).
    """
    if max_turns < 1:
        raise ValueError(f"max_turns must be at least 1, not {max_turns}")
    spec = split_spec(splits)
    out_dir = Path(out_dir)
    split_of = _split_of_listed(spec) if isinstance(spec, SplitLists) else None
    build_drops = DropCounts()
    filtering = _Filter(max_turns, split_of, build_drops, strict)
    kept: list[_KeptScene] = []

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp."))
    try:
        tables = _SceneTables(temporary)
        for scene in tqdm(scenes, desc="scene database", unit="scene", disable=None):
            regions = filtering.regions_to_keep(scene)
            if regions is None:
                continue
            tables.add(scene, regions)
            kept.append(_KeptScene(scene.image_id, scene.width, scene.height,
                                   split_of[scene.image_id] if split_of is not None else ""))
        kept_counts = tables.close()

        if split_of is not None:
            _check_listed_ids(split_of, filtering, strict)
        else:
            derived = derive_splits((scene.image_id for scene in kept), spec, seed)
            split_by_id = {image_id: name for name, ids in derived.items() for image_id in ids}
            for scene in kept:
                scene.split = split_by_id[scene.image_id]

        image_paths = find_images(image_dirs)
        _write_scenes_table(temporary / SCENES_FILE, kept, image_paths)
        if drops is not None:
            build_drops.merge(drops)
        summary = Summary(
            max_turns=max_turns,
            split_source="lists" if split_of is not None else "derived",
            seed=None if split_of is not None else seed,
            scenes_read=len(filtering.seen),
            split_sizes={name: sum(scene.split == name for scene in kept) for name in SPLITS},
            kept={"scenes": len(kept), **kept_counts},
            dropped=build_drops.as_dict(),
            images_not_found=sum(scene.image_id not in image_paths for scene in kept),
        )
        (temporary / SUMMARY_FILE).write_text(summary.to_json() + "\n", encoding="utf-8")
        publish_folder(temporary, out_dir)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    logger.info("scene database %s: %s", out_dir, summary.split_sizes)
    return summary


# ------------------------------------------------------------------------------------------ loading

def _read_table(path: Path, image_ids: Sequence[int]) -> dict[str, list]:
    """Columns of the rows of ``path`` whose image is one of ``image_ids``."""
    try:
        table = pq.read_table(path, filters=[("image_id", "in", list(image_ids))])
    except (OSError, pa.ArrowException) as error:
        raise AnnotationError(f"{path}: cannot read the scene database table: {error}") from error
    return table.to_pydict()


def _group_rows(path: Path, image_ids: Sequence[int], make: Any) -> dict[int, list]:
    """``make(values)`` for each row of ``path`` in file order, grouped by image id; ``values`` are
    the row's columns after ``image_id``, in schema order."""
    grouped: dict[int, list] = {image_id: [] for image_id in image_ids}
    columns = _read_table(path, image_ids)
    for image_id, *values in zip(*columns.values(), strict=True):
        grouped[image_id].append(make(values))
    return grouped


def load_scenes(db_dir: Path, split: str) -> list[Scene]:
    """The scenes of ``split`` in image-id order, with image paths (``""`` when no image was found).

    Regions are each scene's unique captions in region-id order (the order they were stored in);
    objects and relations keep annotation order.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    db_dir = Path(db_dir)
    scenes_path = db_dir / SCENES_FILE
    try:
        rows = pq.read_table(scenes_path, filters=[("split", "==", split)]).to_pylist()
    except (OSError, pa.ArrowException) as error:
        raise AnnotationError(f"{scenes_path}: cannot read the scene database: {error}") from error
    ids = [row["image_id"] for row in rows]
    # columns after image_id: region_id, x1, y1, x2, y2, caption, object_ids, relation_ids
    regions = _group_rows(db_dir / REGIONS_FILE, ids, lambda v: Region(
        v[0], tuple(v[1:5]), v[5], tuple(v[6]), tuple(v[7])))
    # object_id, name, x1, y1, x2, y2, attributes
    objects = _group_rows(db_dir / OBJECTS_FILE, ids, lambda v: SceneObject(
        v[0], v[1], tuple(v[2:6]), tuple(v[6])))
    # relation_id, subject_id, object_id, predicate
    relations = _group_rows(db_dir / RELATIONS_FILE, ids, lambda v: Relation(*v))
    return [
        Scene(row["image_id"], row["width"], row["height"], tuple(objects[row["image_id"]]),
              tuple(relations[row["image_id"]]), tuple(regions[row["image_id"]]), row["image_path"])
        for row in sorted(rows, key=lambda row: row["image_id"])
    ]
