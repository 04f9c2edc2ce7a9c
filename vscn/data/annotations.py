"""Drill-down's rules for turning one image's raw annotations into a :class:`Scene`.

Both annotation readers (Drill-down's per-image files in :mod:`vscn.data.vg` and the official JSON
release in :mod:`vscn.data.vg_release`) collect raw parts and hand them to :func:`assemble_scene`, so
the two sources cannot drift apart. The rules (``lib/datasets/vg.py`` of Drill-down):

- names, attributes and predicates are lower-cased and stripped; captions are lower-cased only;
- an object is kept iff its name is in the object vocabulary and its box, clipped to
  ``[0, width-1] x [0, height-1]``, is not empty (``x1 <= x2`` and ``y1 <= y2``);
- an object's attributes are those in the attribute vocabulary (first occurrence order, no repeats);
- a relation is kept iff its predicate is in the predicate vocabulary and both ends were kept;
- region boxes are clipped the same way; a region links only to kept objects and relations.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from vscn.data.errors import AnnotationError, DropCounts, first_of_each_id
from vscn.data.records import Box, Region, Relation, Scene, SceneObject
from vscn.data.vocab import Vocabulary


@dataclass(frozen=True)
class RawObject:
    object_id: int
    name: str
    corners: Box  # (xmin, ymin, xmax, ymax) as annotated, before clipping
    attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RawRelation:
    relation_id: int
    subject_id: int
    object_id: int
    predicate: str


@dataclass(frozen=True)
class RawRegion:
    region_id: int
    corners: Box  # (x, y, x + width, y + height) as annotated, before clipping
    phrase: str
    object_ids: tuple[int, ...] = ()
    relation_ids: tuple[int, ...] = ()


def clip_box(corners: Box, width: int, height: int) -> Box | None:
    """Clip ``corners`` to the image; ``None`` when nothing valid is left (empty or not finite)."""
    if not all(map(math.isfinite, corners)):
        return None
    x1, y1, x2, y2 = map(float, corners)
    x1, y1, x2, y2 = max(0.0, x1), max(0.0, y1), min(width - 1.0, x2), min(height - 1.0, y2)
    if x1 > x2 or y1 > y2:
        return None
    return (x1, y1, x2, y2)


Value = TypeVar("Value", bound=Hashable)


def _unique(values: Iterable[Value]) -> tuple[Value, ...]:
    """``values`` without repeats, in first-occurrence order."""
    return tuple(dict.fromkeys(values))


def _clip_or_skip(
    corners: Box, scene: Scene, noun: str, part_id: int, where: str, drops: DropCounts, strict: bool,
) -> Box | None:
    """``corners`` of ``{noun} {part_id}`` clipped to the scene's image; ``None`` after counting an
    invalid box as ``(f"{noun}s", "invalid_box")`` (an error when ``strict``)."""
    box = clip_box(corners, scene.width, scene.height)
    if box is None:
        drops.skip(f"{noun}s", "invalid_box",
                   f"{where}: {noun} {part_id} has box {corners}: negative size, not a number, or outside "
                   f"the {scene.width}x{scene.height} image", strict)
    return box


def _keep_objects(
    raw_objects: Sequence[RawObject], scene: Scene, vocab: Vocabulary, where: str,
    drops: DropCounts, strict: bool,
) -> dict[int, SceneObject]:
    kept: dict[int, SceneObject] = {}
    for raw in first_of_each_id(raw_objects, lambda part: part.object_id, "object", where, drops, strict):
        name = raw.name.lower().strip()
        if name not in vocab.objects:
            drops.add("objects", "not_in_vocabulary")
            continue
        box = _clip_or_skip(raw.corners, scene, "object", raw.object_id, where, drops, strict)
        if box is None:
            continue
        attributes = [attribute.lower().strip() for attribute in raw.attributes]
        kept_attributes = _unique(a for a in attributes if a in vocab.attributes)
        drops.add("attributes", "not_in_vocabulary", len(set(attributes)) - len(kept_attributes))
        kept[raw.object_id] = SceneObject(raw.object_id, name, box, kept_attributes)
    return kept


def _keep_relations(
    raw_relations: Sequence[RawRelation], objects: dict[int, SceneObject], known_objects: set[int],
    vocab: Vocabulary, where: str, drops: DropCounts, strict: bool,
) -> dict[int, Relation]:
    """Kept relations by id; ``known_objects`` holds every annotated object id, kept or filtered out
    (a relation to an id outside it is bad input, one to a filtered-out object is only counted)."""
    kept: dict[int, Relation] = {}
    for raw in first_of_each_id(raw_relations, lambda part: part.relation_id, "relation", where, drops, strict):
        unknown = {raw.subject_id, raw.object_id} - known_objects
        if unknown:
            drops.skip("relations", "unknown_object_id",
                       f"{where}: relation {raw.relation_id} refers to missing object(s) "
                       f"{sorted(unknown)}", strict)
            continue
        predicate = raw.predicate.lower().strip()
        if predicate not in vocab.predicates:
            drops.add("relations", "not_in_vocabulary")
        elif raw.subject_id not in objects or raw.object_id not in objects:
            drops.add("relations", "object_dropped")
        else:
            kept[raw.relation_id] = Relation(raw.relation_id, raw.subject_id, raw.object_id, predicate)
    return kept


def _keep_regions(
    raw_regions: Sequence[RawRegion], scene: Scene, objects: dict[int, SceneObject],
    relations: dict[int, Relation], where: str, drops: DropCounts, strict: bool,
) -> tuple[Region, ...]:
    kept: list[Region] = []
    for raw in raw_regions:
        box = _clip_or_skip(raw.corners, scene, "region", raw.region_id, where, drops, strict)
        if box is None:
            continue
        kept.append(Region(
            region_id=raw.region_id,
            box=box,
            caption=raw.phrase.lower(),
            object_ids=_unique(i for i in raw.object_ids if i in objects),
            relation_ids=_unique(i for i in raw.relation_ids if i in relations),
        ))
    return tuple(kept)


def assemble_scene(
    image_id: int, width: int, height: int, raw_objects: Sequence[RawObject],
    raw_relations: Sequence[RawRelation], raw_regions: Sequence[RawRegion], vocab: Vocabulary,
    where: str, drops: DropCounts | None = None, strict: bool = False,
) -> Scene:
    """Apply Drill-down's rules to one image's raw annotations.

    ``where`` names the source file(s) in error messages. Regions stay in annotation order, repeated
    captions included (the scene database drops them). Bad parts are counted in ``drops`` (or raise
    :class:`AnnotationError` when ``strict``); vocabulary filtering is only counted.
    """
    if width <= 0 or height <= 0:
        raise AnnotationError(f"{where}: image {image_id} has size {width}x{height}")
    drops = drops if drops is not None else DropCounts()
    scene = Scene(image_id=image_id, width=width, height=height)
    objects = _keep_objects(raw_objects, scene, vocab, where, drops, strict)
    known_objects = {raw.object_id for raw in raw_objects}
    relations = _keep_relations(raw_relations, objects, known_objects, vocab, where, drops, strict)
    regions = _keep_regions(raw_regions, scene, objects, relations, where, drops, strict)
    return Scene(
        image_id=image_id, width=width, height=height, objects=tuple(objects.values()),
        relations=tuple(relations.values()), regions=regions,
    )
