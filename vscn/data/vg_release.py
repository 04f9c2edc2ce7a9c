"""Scenes from the official Visual Genome v1.2 JSON release, read in one streaming pass.

The five release files are each one JSON array with one item per image, all in the same image order:
``image_data.json`` (size), ``objects.json``, ``attributes.json`` (attributes per object),
``relationships.json`` and ``region_descriptions.json``. They are read in lockstep, one image at a
time, so memory holds one image's annotations whatever the size of the release.

Names are cleaned as the bottom-up-attention preprocessing did when it wrote the XML files that
Drill-down reads (see :func:`clean_object_name`), then the shared rules of
:mod:`vscn.data.annotations` apply, so a scene read here equals the scene read from per-image files.

The release has no region-to-object links (those come from ``region_graphs.json``, which Drill-down's
``rg_jsons`` were cut from). Regions are linked by :class:`RegionLinker`: an object is linked when a name
of its class appears in the caption and its box overlaps the region's box; a relation is linked when
both of its objects are.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from itertools import zip_longest
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vscn.data.annotations import RawObject, RawRegion, RawRelation, assemble_scene
from vscn.data.errors import AnnotationError, DropCounts
from vscn.data.jsonstream import iter_json_array
from vscn.data.records import Box, Region, Scene
from vscn.data.vocab import Vocabulary


IMAGE_DATA = "image_data.json"
OBJECTS = "objects.json"
ATTRIBUTES = "attributes.json"
RELATIONSHIPS = "relationships.json"
REGIONS = "region_descriptions.json"
RELEASE_FILES = (IMAGE_DATA, OBJECTS, ATTRIBUTES, RELATIONSHIPS, REGIONS)

# Adjectives that bottom-up-attention moves from an object name to its attributes ("white car" ->
# object "car" with attribute "white"), as its setup_vg.py does when writing the XML files.
NAME_PREFIX_ATTRIBUTES = frozenset({
    "white", "black", "blue", "green", "red", "brown", "yellow", "small", "large", "silver",
    "wooden", "orange", "gray", "grey", "metal", "pink", "tall", "long", "dark",
})
UNSPLIT_ATTRIBUTE = "black and white"  # the one attribute that is not split at " and "
PLURAL_SUFFIXES = ("", "s", "es")  # "car" also matches "cars", "bus" also "buses"


def clean_text(text: str) -> str:
    """Lower-case, strip, and drop one trailing full stop."""
    text = text.lower().strip()
    return text[:-1].strip() if text.endswith(".") else text


def clean_object_name(name: str) -> tuple[str, tuple[str, ...]]:
    """Object name and the attributes taken from it (``"white car"`` -> ``("car", ("white",))``)."""
    name = clean_text(name)
    words = name.split()
    if len(words) > 1 and all(word in NAME_PREFIX_ATTRIBUTES for word in words[:-1]):
        return words[-1], tuple(words[:-1])
    return name, ()


def clean_attribute(attribute: str) -> list[str]:
    """One annotated attribute as a list (``"red and white"`` -> ``["red", "white"]``)."""
    attribute = clean_text(attribute)
    if attribute == UNSPLIT_ATTRIBUTE:
        return [attribute]
    return [part.strip() for part in attribute.split(" and ")]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _overlap(a: Box, b: Box) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


class RegionLinker:
    """Links regions to objects and relations by caption and box (the JSON release has no region
    graphs): an object is linked when a name of its class (any alias, singular or with a plural
    ``s``/``es``) appears in the caption as whole words and its box overlaps the region's box; a
    relation is linked when both of its objects are."""

    def __init__(self, vocab: Vocabulary) -> None:
        by_class: dict[int, list[str]] = {}
        for alias, class_index in vocab.objects.items():
            by_class.setdefault(class_index, []).append(" ".join(_words(alias)))
        # alias -> every word sequence that names its class in a caption
        self._patterns = {
            alias: frozenset(name + suffix for name in by_class[class_index] for suffix in PLURAL_SUFFIXES)
            for alias, class_index in vocab.objects.items()
        }
        self._longest = max((len(p.split()) for ps in self._patterns.values() for p in ps), default=0)

    def _phrases(self, caption: str) -> set[str]:
        """Every run of up to the longest name's number of words in ``caption``."""
        words = _words(caption)
        return {" ".join(words[start:start + length])
                for length in range(1, self._longest + 1) for start in range(len(words) - length + 1)}

    def link(self, scene: Scene) -> Scene:
        named_by: dict[str, list[int]] = {}  # word sequence -> indices of the objects it names
        for index, obj in enumerate(scene.objects):
            for pattern in self._patterns[obj.name]:
                named_by.setdefault(pattern, []).append(index)
        regions = []
        for region in scene.regions:
            named = {index for phrase in self._phrases(region.caption) for index in named_by.get(phrase, ())}
            object_ids = tuple(scene.objects[index].object_id for index in sorted(named)
                               if _overlap(scene.objects[index].box, region.box))
            linked = set(object_ids)
            relation_ids = tuple(
                relation.relation_id for relation in scene.relations
                if relation.subject_id in linked and relation.object_id in linked
            )
            regions.append(Region(region.region_id, region.box, region.caption, object_ids, relation_ids))
        return Scene(scene.image_id, scene.width, scene.height, scene.objects, scene.relations,
                     tuple(regions), scene.image_path)


def _item_image_id(item: Any, path: Path, position: int) -> int:
    image_id = item.get("image_id", item.get("id")) if isinstance(item, dict) else None
    if not isinstance(image_id, int):
        raise AnnotationError(f"{path}: item {position} has no integer 'image_id' (or 'id')")
    return image_id


def _entries(item: dict, key: str, path: Path, image_id: int) -> list[dict]:
    entries = item.get(key)
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise AnnotationError(f"{path}: image {image_id} has no list of objects under {key!r}")
    return entries


def _field(entry: Mapping, key: str, kind: type, where: str) -> Any:
    try:
        return kind(entry[key])
    except (KeyError, TypeError, ValueError) as error:
        raise AnnotationError(f"{where}: missing or invalid {key!r} in {dict(entry)!r:.200}") from error


def _corners(entry: Mapping, width_key: str, height_key: str, at: str) -> Box:
    """``(x, y, x + width, y + height)`` of an entry with its size under ``width_key``/``height_key``."""
    x, y = _field(entry, "x", float, at), _field(entry, "y", float, at)
    return (x, y, x + _field(entry, width_key, float, at), y + _field(entry, height_key, float, at))


def _raw_objects(objects: list[dict], attributes: list[dict], where: str) -> list[RawObject]:
    annotated: dict[int, list[str]] = {}
    for entry in attributes:
        for attribute in entry.get("attributes") or ():
            annotated.setdefault(_field(entry, "object_id", int, where), []).extend(
                clean_attribute(str(attribute)))
    raw = []
    for entry in objects:
        object_id = _field(entry, "object_id", int, where)
        at = f"{where}, object {object_id}"
        names = entry.get("names") or [entry.get("name")]
        if not isinstance(names[0], str):
            raise AnnotationError(f"{at}: no 'names' or 'name'")
        name, name_attributes = clean_object_name(names[0])
        raw.append(RawObject(object_id, name, _corners(entry, "w", "h", at),
                             name_attributes + tuple(annotated.get(object_id, ()))))
    return raw


def _raw_relations(relationships: list[dict], where: str) -> list[RawRelation]:
    raw = []
    for entry in relationships:
        relation_id = _field(entry, "relationship_id", int, where)
        at = f"{where}, relationship {relation_id}"
        subject, obj = entry.get("subject"), entry.get("object")
        if not (isinstance(subject, dict) and isinstance(obj, dict)):
            raise AnnotationError(f"{at}: 'subject' and 'object' must be objects with an 'object_id'")
        predicate = clean_text(str(entry.get("predicate") or ""))
        raw.append(RawRelation(relation_id, _field(subject, "object_id", int, at),
                               _field(obj, "object_id", int, at), predicate))
    return raw


def _raw_regions(regions: list[dict], where: str) -> list[RawRegion]:
    raw = []
    for entry in regions:
        region_id = _field(entry, "region_id", int, where)
        at = f"{where}, region {region_id}"
        corners = _corners(entry, "width", "height", at)
        phrase = entry.get("phrase")
        if not isinstance(phrase, str):
            raise AnnotationError(f"{at}: phrase is not a string")
        raw.append(RawRegion(region_id, corners, phrase))
    return raw


def iter_vg_release(
    release_dir: Path, vocab: Vocabulary, strict: bool = False, drops: DropCounts | None = None,
) -> Iterator[Scene]:
    """Scenes of the VG v1.2 JSON release in ``release_dir``, in the release's image order.

    Regions are in file order, repeated captions included (the scene database drops them). Raises
    :class:`AnnotationError` naming the file when one is missing or malformed, or when the files do
    not list the same images in the same order.
    """
    paths = [Path(release_dir) / name for name in RELEASE_FILES]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise AnnotationError(f"missing Visual Genome release file(s): {', '.join(missing)}")
    streams = [iter_json_array(path) for path in paths]
    linker = RegionLinker(vocab)
    sentinel = object()
    rows = tqdm(zip_longest(*streams, fillvalue=sentinel), desc="VG release", unit="image", disable=None)
    for position, items in enumerate(rows):
        ids = []
        for path, item in zip(paths, items, strict=True):
            if item is sentinel:
                raise AnnotationError(f"{path}: ends after {position} images while other release files go on")
            ids.append(_item_image_id(item, path, position))
        for path, other in zip(paths[1:], ids[1:], strict=True):
            if other != ids[0]:
                raise AnnotationError(f"{path}: item {position} is image {other} but {IMAGE_DATA} item "
                                      f"{position} is image {ids[0]}; the files must share one order")
        scene = _assemble(ids[0], items, paths, vocab, drops, strict)
        yield linker.link(scene)


def _assemble(
    image_id: int, items: Sequence[dict], paths: Sequence[Path], vocab: Vocabulary,
    drops: DropCounts | None, strict: bool,
) -> Scene:
    """One image's scene from its items of the release files (in ``RELEASE_FILES`` order)."""
    image_data, objects, attributes, relationships, regions = items
    where = [f"{path} (image {image_id})" for path in paths]
    return assemble_scene(
        image_id,
        _field(image_data, "width", int, where[0]),
        _field(image_data, "height", int, where[0]),
        _raw_objects(_entries(objects, "objects", paths[1], image_id),
                     _entries(attributes, "attributes", paths[2], image_id), where[1]),
        _raw_relations(_entries(relationships, "relationships", paths[3], image_id), where[3]),
        _raw_regions(_entries(regions, "regions", paths[4], image_id), where[4]),
        vocab, where=f"{paths[0].parent} (image {image_id})", drops=drops, strict=strict,
    )
