"""Visual Genome annotations in Drill-down's per-image layout, and the official JSON release.

Layout under a root folder (written by :func:`write_scene`, read by :func:`read_scene`)::

    sg_xmls/<image_id>.xml    scene graph: size, objects (name, box, attributes), relations
    rg_jsons/<image_id>.json  region graph: regions (box, phrase) linked to objects and relations

The XML follows the Pascal-VOC-like files of the bottom-up-attention preprocessing that Drill-down
reads (``annotation/source/image_id``, ``annotation/size/{width,height}``, ``annotation/object`` with
``name``, ``object_id``, ``bndbox/{xmin,ymin,xmax,ymax}``, ``attribute``*, and ``annotation/relation``
with ``relationship_id``, ``subject_id``, ``object_id``, ``predicate``). The rules that turn these
files into a :class:`~vscn.data.records.Scene` are in :mod:`vscn.data.annotations`.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from pathlib import Path

from vscn.data.annotations import RawObject, RawRegion, RawRelation, assemble_scene
from vscn.data.errors import AnnotationError, DropCounts
from vscn.data.records import Scene
from vscn.data.vg_release import iter_vg_release
from vscn.data.vocab import Vocabulary, load_vocabulary
from vscn.io import atomic_write_bytes

__all__ = [
    "AnnotationError", "DropCounts", "Vocabulary", "annotated_image_ids", "iter_scenes", "iter_vg_release",
    "load_vocabulary", "read_scene", "region_graph_path", "scene_graph_path", "write_scene",
]


SCENE_GRAPH_DIR = "sg_xmls"
REGION_GRAPH_DIR = "rg_jsons"
IMAGE_DEPTH = "3"  # colour channels, as in the bottom-up-attention XML files


def scene_graph_path(root: Path, image_id: int) -> Path:
    return Path(root) / SCENE_GRAPH_DIR / f"{image_id}.xml"


def region_graph_path(root: Path, image_id: int) -> Path:
    return Path(root) / REGION_GRAPH_DIR / f"{image_id}.json"


# ---------------------------------------------------------------------------------------- reading

def _text(element: ET.Element, tag: str, where: str) -> str:
    """Text of the first ``tag`` below ``element``; an error naming ``where`` when absent."""
    child = element.find(tag)
    if child is None or child.text is None:
        raise AnnotationError(f"{where}: <{element.tag}> has no <{tag}>")
    return child.text.strip()


def _int(text: str | None, where: str, what: str) -> int:
    try:
        return int(text or "")
    except ValueError as error:
        raise AnnotationError(f"{where}: {what} is not an integer: {text!r}") from error


def _float(text: str, where: str, what: str) -> float:
    try:
        return float(text)
    except ValueError as error:
        raise AnnotationError(f"{where}: {what} is not a number: {text!r}") from error


def _read_scene_graph(
    path: Path, image_id: int
) -> tuple[int, int, list[RawObject], list[RawRelation]]:
    """Image size, objects and relations of one ``sg_xmls`` file."""
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError as error:
        raise AnnotationError(f"{path}: no scene graph for image {image_id}") from error
    except (ET.ParseError, OSError) as error:
        raise AnnotationError(f"{path}: malformed scene graph XML for image {image_id}: {error}") from error
    where = f"{path} (image {image_id})"
    id_element = next(root.iter("image_id"), None)
    if id_element is not None and _int(id_element.text, where, "image_id") != image_id:
        raise AnnotationError(f"{where}: the file says image_id {id_element.text.strip()}")
    size = root.find("size")
    if size is None:
        raise AnnotationError(f"{where}: no <size>")
    width = _int(_text(size, "width", where), where, "width")
    height = _int(_text(size, "height", where), where, "height")

    objects = []
    for element in root.findall("object"):
        object_id = _int(_text(element, "object_id", where), where, "object_id")
        at = f"{where}, object {object_id}"
        bndbox = element.find("bndbox")
        if bndbox is None:
            raise AnnotationError(f"{at}: no <bndbox>")
        corners = tuple(_float(_text(bndbox, tag, at), at, tag) for tag in ("xmin", "ymin", "xmax", "ymax"))
        attributes = tuple(a.text or "" for a in element.findall("attribute"))
        objects.append(RawObject(object_id, _text(element, "name", at), corners, attributes))

    relations = []
    for element in root.findall("relation"):
        ids = [_int(_text(element, tag, where), where, tag)
               for tag in ("relationship_id", "subject_id", "object_id")]
        predicate_element = element.find("predicate")
        predicate = (predicate_element.text or "") if predicate_element is not None else ""
        relations.append(RawRelation(ids[0], ids[1], ids[2], predicate))
    return width, height, objects, relations


def _linked_ids(entries: object, key: str, where: str) -> tuple[int, ...]:
    """The ``key`` of each ``{key: id, ...}`` entry of a region's ``objects`` / ``relationships``."""
    try:
        return tuple(int(entry[key]) for entry in entries)
    except (KeyError, TypeError, ValueError) as error:
        raise AnnotationError(f"{where}: expected a list of {{{key!r}: id}} entries") from error


def _read_region_graph(path: Path, image_id: int) -> list[RawRegion]:
    """Regions of one ``rg_jsons`` file, in file order."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise AnnotationError(f"{path}: no region graph for image {image_id}") from error
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as error:
        raise AnnotationError(f"{path}: malformed region graph JSON for image {image_id}: {error}") from error
    if not isinstance(data, dict) or not isinstance(data.get("regions"), list):
        raise AnnotationError(f"{path}: expected an object with a 'regions' list (image {image_id})")
    regions = []
    for entry in data["regions"]:
        try:
            region_id = int(entry["region_id"])
            where = f"{path} (image {image_id}), region {region_id}"
            x, y = float(entry["x"]), float(entry["y"])
            corners = (x, y, x + float(entry["width"]), y + float(entry["height"]))
            phrase = entry["phrase"]
        except (KeyError, TypeError, ValueError) as error:
            raise AnnotationError(f"{path} (image {image_id}): malformed region {entry!r:.200}") from error
        if not isinstance(phrase, str):
            raise AnnotationError(f"{where}: phrase is not a string")
        regions.append(RawRegion(
            region_id, corners, phrase,
            _linked_ids(entry.get("objects", []), "object_id", where),
            _linked_ids(entry.get("relationships", []), "relationship_id", where),
        ))
    return regions


def read_scene(
    root: Path, image_id: int, vocab: Vocabulary, strict: bool = False,
    drops: DropCounts | None = None,
) -> Scene:
    """Read ``sg_xmls/<image_id>.xml`` and ``rg_jsons/<image_id>.json`` under ``root``.

    Raises :class:`AnnotationError` naming the file when either is missing or malformed. Parts with
    bad boxes or repeated ids are skipped and counted in ``drops`` (errors when ``strict``).
    """
    xml_path = scene_graph_path(root, image_id)
    json_path = region_graph_path(root, image_id)
    width, height, objects, relations = _read_scene_graph(xml_path, image_id)
    regions = _read_region_graph(json_path, image_id)
    return assemble_scene(
        image_id, width, height, objects, relations, regions, vocab,
        where=f"{xml_path} / {json_path.name} (image {image_id})", drops=drops, strict=strict,
    )


def annotated_image_ids(root: Path) -> list[int]:
    """Ids of every ``sg_xmls/<id>.xml`` under ``root``, sorted; other file names are an error."""
    folder = Path(root) / SCENE_GRAPH_DIR
    if not folder.is_dir():
        raise AnnotationError(f"{folder}: no scene graph folder")
    ids = []
    for path in folder.glob("*.xml"):
        if not path.stem.isdigit():
            raise AnnotationError(f"{path}: scene graph file name is not an image id")
        ids.append(int(path.stem))
    return sorted(ids)


def iter_scenes(
    root: Path, vocab: Vocabulary, image_ids: Iterable[int] | None = None, strict: bool = False,
    drops: DropCounts | None = None,
) -> Iterator[Scene]:
    """Scenes for ``image_ids`` (default: every scene graph under ``root``, in id order)."""
    ids = annotated_image_ids(root) if image_ids is None else image_ids
    for image_id in ids:
        yield read_scene(root, image_id, vocab, strict=strict, drops=drops)


# ---------------------------------------------------------------------------------------- writing

def _number_text(value: float) -> str:
    """Integers without a fractional part (as VG writes them), other values exactly (``repr``)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _json_number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def _scene_graph_xml(scene: Scene) -> bytes:
    annotation = ET.Element("annotation")
    if scene.image_path:
        ET.SubElement(annotation, "filename").text = Path(scene.image_path).name
    source = ET.SubElement(annotation, "source")
    ET.SubElement(source, "image_id").text = str(scene.image_id)
    size = ET.SubElement(annotation, "size")
    ET.SubElement(size, "width").text = str(scene.width)
    ET.SubElement(size, "height").text = str(scene.height)
    ET.SubElement(size, "depth").text = IMAGE_DEPTH
    for obj in scene.objects:
        element = ET.SubElement(annotation, "object")
        ET.SubElement(element, "name").text = obj.name
        ET.SubElement(element, "object_id").text = str(obj.object_id)
        bndbox = ET.SubElement(element, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), obj.box, strict=True):
            ET.SubElement(bndbox, tag).text = _number_text(value)
        for attribute in obj.attributes:
            ET.SubElement(element, "attribute").text = attribute
    for relation in scene.relations:
        element = ET.SubElement(annotation, "relation")
        ET.SubElement(element, "relationship_id").text = str(relation.relation_id)
        ET.SubElement(element, "subject_id").text = str(relation.subject_id)
        ET.SubElement(element, "object_id").text = str(relation.object_id)
        ET.SubElement(element, "predicate").text = relation.predicate
    ET.indent(annotation)
    return ET.tostring(annotation, encoding="utf-8", xml_declaration=True)


def _region_graph_json(scene: Scene) -> bytes:
    regions = []
    for region in scene.regions:
        x1, y1, x2, y2 = region.box
        regions.append({
            "region_id": region.region_id,
            "image_id": scene.image_id,
            "x": _json_number(x1),
            "y": _json_number(y1),
            "width": _json_number(x2 - x1),
            "height": _json_number(y2 - y1),
            "phrase": region.caption,
            "objects": [{"object_id": i} for i in region.object_ids],
            "relationships": [{"relationship_id": i} for i in region.relation_ids],
        })
    document = {"image_id": scene.image_id, "regions": regions}
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def write_scene(scene: Scene, root: Path) -> None:
    """Write ``scene`` as ``root/sg_xmls/<id>.xml`` and ``root/rg_jsons/<id>.json`` (atomically).

    :func:`read_scene` gives the same record back when every name is in the vocabulary and every box
    lies inside the image. Integer coordinates come back exactly; region boxes are stored as
    ``x, y, width, height`` (Drill-down's layout), so fractional ones may differ in the last bit.
    """
    atomic_write_bytes(scene_graph_path(root, scene.image_id), _scene_graph_xml(scene))
    atomic_write_bytes(region_graph_path(root, scene.image_id), _region_graph_json(scene))
