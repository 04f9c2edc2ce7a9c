"""The scene record: one annotated image, as every stage after annotation parsing sees it.

Both annotation sources (Drill-down's per-image XML/JSON and the official Visual Genome JSON release)
and the demo world produce these records, so the later stages never know where a scene came from.
Boxes are pixel corners ``(x1, y1, x2, y2)`` clipped to the image, as Drill-down stores them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Box = tuple[float, float, float, float]  # (x1, y1, x2, y2) in pixels
BOX_COORDS = 4  # numbers in a Box


@dataclass(frozen=True)
class SceneObject:
    object_id: int
    name: str  # lower-case, in the object vocabulary
    box: Box
    attributes: tuple[str, ...] = ()  # lower-case, in the attribute vocabulary


@dataclass(frozen=True)
class Relation:
    relation_id: int
    subject_id: int  # object_id of the subject
    object_id: int  # object_id of the object
    predicate: str  # lower-case, in the predicate vocabulary


@dataclass(frozen=True)
class Region:
    region_id: int
    box: Box
    caption: str  # lower-case region description: one query
    object_ids: tuple[int, ...] = ()  # linked objects that survived vocabulary filtering
    relation_ids: tuple[int, ...] = ()  # linked relations that survived vocabulary filtering


@dataclass(frozen=True)
class Scene:
    image_id: int
    width: int
    height: int
    objects: tuple[SceneObject, ...] = ()
    relations: tuple[Relation, ...] = ()
    regions: tuple[Region, ...] = ()  # in annotation-file order (duplicates are dropped in that order)
    image_path: str = field(default="", compare=False)  # where the pixels are, when known
