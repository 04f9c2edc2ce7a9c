"""Visual Genome annotation parsing: vocabularies, per-image files, the JSON release, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vscn.data import jsonstream
from vscn.data.records import Region, Relation, Scene, SceneObject
from vscn.data.vg import (
    AnnotationError, DropCounts, Vocabulary, iter_scenes, iter_vg_release, load_vocabulary,
    read_scene, region_graph_path, scene_graph_path, write_scene,
)
from vscn.data.vg_release import RELEASE_FILES, RegionLinker, clean_attribute, clean_object_name

SHARED = Path(__file__).resolve().parents[2] / "shared"
CACHES = SHARED / "data" / "drilldown-caches"
RELEASE = SHARED / "data" / "visual-genome-sample"


def require_shared() -> None:
    if not (CACHES.is_dir() and RELEASE.is_dir()):
        pytest.skip(f"reference data not found at {SHARED / 'data'} (checkout without ../shared)")


@pytest.fixture(scope="module")
def vg_vocab() -> Vocabulary:
    require_shared()
    return load_vocabulary(CACHES / "vg_objects_vocab_1600.txt", CACHES / "vg_attributes_vocab_1000.txt",
                           CACHES / "vg_relations_vocab_500.txt")


@pytest.fixture(scope="module")
def sample_scenes(vg_vocab: Vocabulary) -> dict[int, Scene]:
    return {scene.image_id: scene for scene in iter_vg_release(RELEASE, vg_vocab)}


@pytest.fixture
def vocab() -> Vocabulary:
    return Vocabulary.from_classes(["man,person", "dog", "car", "hair"], ["red", "black", "tall"],
                                   ["on", "near"])


# A scene graph in the layout of the bottom-up-attention XML files that Drill-down reads.
DRILLDOWN_XML = """<annotation><folder>VG_100K</folder><filename>7.jpg</filename>
<source><database>Visual Genome Version 1.2</database><image_id>7</image_id><coco_id>None</coco_id>
<flickr_id>None</flickr_id></source><size><width>100</width><height>80</height><depth>3</depth></size>
<segmented>0</segmented>
<object><name>Man</name><object_id>11</object_id><difficult>0</difficult>
<bndbox><xmin>-5</xmin><ymin>10</ymin><xmax>50</xmax><ymax>90</ymax></bndbox>
<attribute>tall</attribute><attribute>happy</attribute><attribute>Red </attribute></object>
<object><name>dog</name><object_id>12</object_id><difficult>0</difficult>
<bndbox><xmin>60</xmin><ymin>40</ymin><xmax>70</xmax><ymax>50</ymax></bndbox></object>
<object><name>tree</name><object_id>13</object_id><difficult>0</difficult>
<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>
<relation><relationship_id>21</relationship_id><subject_id>11</subject_id><object_id>12</object_id>
<predicate>near</predicate></relation>
<relation><relationship_id>22</relationship_id><subject_id>11</subject_id><object_id>12</object_id>
<predicate>walking</predicate></relation>
<relation><relationship_id>23</relationship_id><subject_id>12</subject_id><object_id>13</object_id>
<predicate>on</predicate></relation>
</annotation>"""

# A region graph as cut from VG's region_graphs.json (extra fields are ignored).
DRILLDOWN_REGIONS = {"image_id": 7, "regions": [
    {"region_id": 31, "image_id": 7, "x": 60, "y": 40, "width": 50, "height": 10,
     "phrase": "A Dog near a man", "synsets": [],
     "objects": [{"object_id": 12, "name": "dog", "x": 60, "y": 40, "w": 10, "h": 10},
                 {"object_id": 13, "name": "tree", "x": 1, "y": 1, "w": 8, "h": 8},
                 {"object_id": 11, "name": "man", "x": -5, "y": 10, "w": 55, "h": 80}],
     "relationships": [{"relationship_id": 21, "predicate": "near", "subject_id": 11, "object_id": 12},
                       {"relationship_id": 23, "predicate": "on", "subject_id": 12, "object_id": 13}]},
    {"region_id": 30, "image_id": 7, "x": 0, "y": 0, "width": 10, "height": 10,
     "phrase": "a dog near a man", "objects": [], "relationships": []},
]}


def write_drilldown_files(root: Path, xml: str = DRILLDOWN_XML, regions: object = DRILLDOWN_REGIONS) -> None:
    (root / "sg_xmls").mkdir(parents=True, exist_ok=True)
    (root / "rg_jsons").mkdir(parents=True, exist_ok=True)
    (root / "sg_xmls" / "7.xml").write_text(xml, encoding="utf-8")
    text = regions if isinstance(regions, str) else json.dumps(regions)
    (root / "rg_jsons" / "7.json").write_text(text, encoding="utf-8")


# ------------------------------------------------------------------------------------- vocabulary

def test_vocabulary_aliases_share_one_class(vg_vocab: Vocabulary) -> None:
    assert len(set(vg_vocab.objects.values())) == 1600
    assert len(set(vg_vocab.attributes.values())) == 1000
    assert len(set(vg_vocab.predicates.values())) == 500
    assert min(vg_vocab.objects.values()) == 1  # 0 stays Drill-down's background class
    line = next(line for line in (CACHES / "vg_objects_vocab_1600.txt").read_text().splitlines() if "," in line)
    aliases = [alias.strip().lower() for alias in line.split(",")]
    assert len({vg_vocab.objects[alias] for alias in aliases}) == 1


def test_vocabulary_rejects_blank_and_ambiguous_lines(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="line 2 has an empty class"):
        Vocabulary.from_classes(["man", "", "dog"], [], [])
    path = tmp_path / "objects.txt"
    path.write_text("man,person\nPerson\n")
    with pytest.raises(AnnotationError, match=r"objects\.txt: alias 'person' on line 2"):
        load_vocabulary(path, path.with_name("none.txt"), path)


# ------------------------------------------------------------------------------- per-image files

def test_read_drilldown_layout_applies_official_rules(tmp_path: Path, vocab: Vocabulary) -> None:
    write_drilldown_files(tmp_path)
    drops = DropCounts()
    scene = read_scene(tmp_path, 7, vocab, drops=drops)
    assert (scene.image_id, scene.width, scene.height) == (7, 100, 80)
    assert scene.objects == (
        SceneObject(11, "man", (0.0, 10.0, 50.0, 79.0), ("tall", "red")),  # clipped; "happy" unknown
        SceneObject(12, "dog", (60.0, 40.0, 70.0, 50.0)),
    )
    assert scene.relations == (Relation(21, 11, 12, "near"),)  # "walking" unknown; 13 not kept
    assert scene.regions == (
        Region(31, (60.0, 40.0, 99.0, 50.0), "a dog near a man", (12, 11), (21,)),
        Region(30, (0.0, 0.0, 10.0, 10.0), "a dog near a man"),  # repeated caption kept here
    )
    assert drops.as_dict() == {
        "attributes": {"not_in_vocabulary": 1}, "objects": {"not_in_vocabulary": 1},
        "relations": {"not_in_vocabulary": 1, "object_dropped": 1},
    }


def test_write_then_read_is_identity(tmp_path: Path, vocab: Vocabulary) -> None:
    scene = Scene(5, 64, 48, (SceneObject(1, "person", (0.0, 1.5, 63.0, 47.0), ("black", "tall")),
                              SceneObject(2, "car", (3.0, 4.0, 5.0, 6.0))),
                  (Relation(9, 2, 1, "on"),),
                  (Region(4, (0.0, 0.0, 63.0, 47.0), "a person on a car ", (1, 2), (9,)),
                   Region(3, (2.0, 2.0, 2.0, 2.0), "a point", (2,))), image_path="img/5.png")
    write_scene(scene, tmp_path)
    assert read_scene(tmp_path, 5, vocab) == scene
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["5.json", "5.xml", "rg_jsons", "sg_xmls"]
    assert list(iter_scenes(tmp_path, vocab)) == [scene]


def test_write_replaces_previous_files(tmp_path: Path, vocab: Vocabulary) -> None:
    write_scene(Scene(5, 64, 48, (SceneObject(1, "dog", (1.0, 1.0, 2.0, 2.0)),)), tmp_path)
    newer = Scene(5, 64, 48, (SceneObject(2, "car", (1.0, 1.0, 2.0, 2.0)),), (),
                  (Region(1, (0.0, 0.0, 1.0, 1.0), "a car"),))
    write_scene(newer, tmp_path)
    assert read_scene(tmp_path, 5, vocab) == newer


# ------------------------------------------------------------------------------ the JSON release

def test_release_sample_facts(sample_scenes: dict[int, Scene]) -> None:
    assert sorted(sample_scenes) == [1, 2, 3, 4, 5]
    assert [(s.width, s.height) for s in sample_scenes.values()] == [
        (800, 600), (800, 600), (640, 480), (640, 480), (800, 600)]  # image_data.json
    # all regions of region_descriptions.json are kept here, in file order (1,278 in all)
    assert [len(s.regions) for s in sample_scenes.values()] == [262, 256, 255, 257, 248]
    one = sample_scenes[1]
    assert one.regions[0].region_id == 1382 and one.regions[0].caption == "the clock is green in colour"
    assert one.regions[1].caption == "shade is along the street "  # lower-cased, not stripped
    clock = next(o for o in one.objects if o.object_id == 1058498)
    assert clock == SceneObject(1058498, "clock", (421.0, 91.0, 500.0, 430.0), ("green", "tall"))
    assert Relation(15927, 5045, 5046, "on") in one.relations  # predicate "ON"
    road = next(o for o in sample_scenes[2].objects if o.object_id == 1023841)
    assert road.box == (3.0, 321.0, 375.0, 599.0)  # y + h = 600 clipped to height - 1
    hair = next(o for o in sample_scenes[3].objects if o.object_id == 1060277)
    assert (hair.name, hair.attributes) == ("hair", ("black",))  # names[0] "black hair"


def test_release_objects_follow_vocabulary(sample_scenes: dict[int, Scene], vg_vocab: Vocabulary) -> None:
    raw = {item["image_id"]: item["objects"] for item in json.loads((RELEASE / "objects.json").read_text())}
    for image_id, scene in sample_scenes.items():
        expected = [o["object_id"] for o in raw[image_id]
                    if clean_object_name(o["names"][0])[0] in vg_vocab.objects]
        assert [o.object_id for o in scene.objects] == expected
        kept = {o.object_id for o in scene.objects}
        assert all(r.subject_id in kept and r.object_id in kept for r in scene.relations)
        assert all(a in vg_vocab.attributes for o in scene.objects for a in o.attributes)
        assert all(set(r.object_ids) <= kept for r in scene.regions)


def test_release_region_links(sample_scenes: dict[int, Scene]) -> None:
    region = sample_scenes[1].regions[2]
    assert region.caption == "man is wearing sneakers"
    linked = {o.object_id: o.name for o in sample_scenes[1].objects if o.object_id in region.object_ids}
    assert {"man", "sneakers"} <= set(linked.values())
    assert 15928 in region.relation_ids  # man wears sneakers
    clock = sample_scenes[1].regions[0]  # "the clock is green in colour"
    assert clock.object_ids == (1058498,)


def test_region_linking_rule(vocab: Vocabulary) -> None:
    objects = (SceneObject(1, "man", (0.0, 0.0, 10.0, 10.0)), SceneObject(2, "dog", (20.0, 20.0, 30.0, 30.0)),
               SceneObject(3, "car", (50.0, 50.0, 60.0, 60.0)))
    regions = (Region(1, (0.0, 0.0, 25.0, 25.0), "two persons and a dog"),  # alias + plural
               Region(2, (0.0, 0.0, 5.0, 5.0), "a car"),  # named but elsewhere
               Region(3, (0.0, 0.0, 99.0, 99.0), "a mandolin, dogged"))  # not whole words
    linked = RegionLinker(vocab).link(Scene(1, 100, 100, objects, (Relation(7, 1, 2, "near"),), regions))
    assert [(r.object_ids, r.relation_ids) for r in linked.regions] == [((1, 2), (7,)), ((), ()), ((), ())]


def test_release_round_trip_through_drilldown_layout(
    sample_scenes: dict[int, Scene], vg_vocab: Vocabulary, tmp_path: Path
) -> None:
    for scene in sample_scenes.values():
        write_scene(scene, tmp_path)
    assert list(iter_scenes(tmp_path, vg_vocab, strict=True)) == list(sample_scenes.values())
    assert list(iter_vg_release(RELEASE, vg_vocab, strict=True)) == list(sample_scenes.values())


def test_cleaning_follows_bottom_up_attention() -> None:
    assert clean_object_name(" White Car. ") == ("car", ("white",))
    assert clean_object_name("tree trunk") == ("tree trunk", ())
    assert clean_attribute("Red and White") == ["red", "white"]
    assert clean_attribute("black and white") == ["black and white"]


# -------------------------------------------------------------------------------- streaming JSON

@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 20])
def test_json_array_stream_matches_json_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(jsonstream, "READ_CHUNK_CHARS", chunk)
    items = [123456, {"a": [1, 2.5, "x, ]"]}, "ünïcode", [], None, 7e-3, {"nested": {"b": True}}]
    path = tmp_path / "items.json"
    path.write_text(" [ " + " ,\n".join(json.dumps(item) for item in items) + " ]\n", encoding="utf-8")
    assert list(jsonstream.iter_json_array(path)) == items
    path.write_text("[]")
    assert list(jsonstream.iter_json_array(path)) == []


def test_json_array_stream_reads_release_file(monkeypatch: pytest.MonkeyPatch) -> None:
    require_shared()
    monkeypatch.setattr(jsonstream, "READ_CHUNK_CHARS", 1000)  # items span many chunks
    path = RELEASE / "region_descriptions.json"
    assert list(jsonstream.iter_json_array(path)) == json.loads(path.read_text())


@pytest.mark.parametrize("text", ['{"a": 1}', "[1, 2", "[1 2]", "[1, {]", "[1] x"])
def test_json_array_stream_rejects_malformed(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(AnnotationError, match="bad.json: malformed JSON"):
        list(jsonstream.iter_json_array(path))


# ------------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("strict", [False, True])
def test_malformed_xml_names_file(tmp_path: Path, vocab: Vocabulary, strict: bool) -> None:
    write_drilldown_files(tmp_path, xml=DRILLDOWN_XML[:-20])
    with pytest.raises(AnnotationError, match=r"sg_xmls/7\.xml: malformed scene graph XML for image 7"):
        read_scene(tmp_path, 7, vocab, strict=strict)


@pytest.mark.parametrize("strict", [False, True])
def test_malformed_region_json_names_file(tmp_path: Path, vocab: Vocabulary, strict: bool) -> None:
    write_drilldown_files(tmp_path, regions='{"regions": [')
    with pytest.raises(AnnotationError, match=r"rg_jsons/7\.json: malformed region graph JSON for image 7"):
        read_scene(tmp_path, 7, vocab, strict=strict)


def test_missing_or_mismatched_files(tmp_path: Path, vocab: Vocabulary) -> None:
    with pytest.raises(AnnotationError, match=r"sg_xmls: no scene graph folder"):
        list(iter_scenes(tmp_path, vocab))
    with pytest.raises(AnnotationError, match=r"sg_xmls/7\.xml: no scene graph for image 7"):
        read_scene(tmp_path, 7, vocab)
    write_drilldown_files(tmp_path)
    scene_graph_path(tmp_path, 8).write_text(DRILLDOWN_XML)
    with pytest.raises(AnnotationError, match=r"8\.xml \(image 8\): the file says image_id 7"):
        read_scene(tmp_path, 8, vocab)
    region_graph_path(tmp_path, 7).unlink()
    with pytest.raises(AnnotationError, match=r"rg_jsons/7\.json: no region graph for image 7"):
        read_scene(tmp_path, 7, vocab)


BAD_BOXES = {
    "outside": "<xmin>120</xmin><ymin>10</ymin><xmax>150</xmax><ymax>20</ymax>",
    "negative": "<xmin>40</xmin><ymin>10</ymin><xmax>30</xmax><ymax>20</ymax>",
    "not_a_number": "<xmin>nan</xmin><ymin>10</ymin><xmax>30</xmax><ymax>20</ymax>",
}


@pytest.mark.parametrize("case", sorted(BAD_BOXES))
def test_object_with_bad_box(tmp_path: Path, vocab: Vocabulary, case: str) -> None:
    xml = DRILLDOWN_XML.replace("<xmin>60</xmin><ymin>40</ymin><xmax>70</xmax><ymax>50</ymax>", BAD_BOXES[case])
    write_drilldown_files(tmp_path, xml=xml)
    drops = DropCounts()
    scene = read_scene(tmp_path, 7, vocab, drops=drops)
    assert [o.object_id for o in scene.objects] == [11]
    assert scene.relations == () and scene.regions[0].object_ids == (11,)
    assert drops.get("objects", "invalid_box") == 1
    message = r"7\.xml.*object 12 has box .*: negative size, not a number, or outside the 100x80 image"
    with pytest.raises(AnnotationError, match=message):
        read_scene(tmp_path, 7, vocab, strict=True)


def test_malformed_region_links(tmp_path: Path, vocab: Vocabulary) -> None:
    regions = json.loads(json.dumps(DRILLDOWN_REGIONS))
    regions["regions"][0]["objects"] = [12, 13]
    write_drilldown_files(tmp_path, regions=regions)
    with pytest.raises(AnnotationError, match=r"7\.json \(image 7\), region 31: expected a list of \{'object_id'"):
        read_scene(tmp_path, 7, vocab)


def test_region_with_bad_box(tmp_path: Path, vocab: Vocabulary) -> None:
    regions = json.loads(json.dumps(DRILLDOWN_REGIONS))
    regions["regions"][1]["width"] = -20
    write_drilldown_files(tmp_path, regions=regions)
    drops = DropCounts()
    assert [r.region_id for r in read_scene(tmp_path, 7, vocab, drops=drops).regions] == [31]
    assert drops.get("regions", "invalid_box") == 1
    with pytest.raises(AnnotationError, match="region 30 has box"):
        read_scene(tmp_path, 7, vocab, strict=True)


def test_repeated_object_id_and_dangling_relation(tmp_path: Path, vocab: Vocabulary) -> None:
    xml = DRILLDOWN_XML.replace("<object_id>12</object_id><difficult>", "<object_id>11</object_id><difficult>")
    write_drilldown_files(tmp_path, xml=xml)
    drops = DropCounts()
    scene = read_scene(tmp_path, 7, vocab, drops=drops)
    assert [o.name for o in scene.objects] == ["man"]
    assert drops.get("objects", "duplicate_object_id") == 1
    assert drops.get("relations", "unknown_object_id") == 3  # every relation with object 12
    with pytest.raises(AnnotationError, match="object id 11 appears twice"):
        read_scene(tmp_path, 7, vocab, strict=True)


def test_repeated_relation_id_keeps_the_first(tmp_path: Path, vocab: Vocabulary) -> None:
    xml = DRILLDOWN_XML.replace("<relationship_id>22</relationship_id>", "<relationship_id>21</relationship_id>")
    write_drilldown_files(tmp_path, xml=xml)
    drops = DropCounts()
    scene = read_scene(tmp_path, 7, vocab, drops=drops)
    assert scene.relations == (Relation(21, 11, 12, "near"),)  # not the repeat's "walking"
    assert drops.get("relations", "duplicate_relation_id") == 1
    assert drops.get("relations", "not_in_vocabulary") == 0  # the repeat is skipped before filtering
    with pytest.raises(AnnotationError, match=r"7\.xml.*relation id 21 appears twice"):
        read_scene(tmp_path, 7, vocab, strict=True)


def copy_release(tmp_path: Path) -> Path:
    require_shared()
    target = tmp_path / "release"
    target.mkdir()
    for name in RELEASE_FILES:
        shutil.copyfile(RELEASE / name, target / name)
    return target


@pytest.mark.parametrize("strict", [False, True])
def test_release_truncated_file(tmp_path: Path, vg_vocab: Vocabulary, strict: bool) -> None:
    release = copy_release(tmp_path)
    text = (release / "objects.json").read_text()
    (release / "objects.json").write_text(text[: len(text) // 2])
    with pytest.raises(AnnotationError, match=r"objects\.json: malformed JSON"):
        list(iter_vg_release(release, vg_vocab, strict=strict))


def test_release_files_must_share_image_order(tmp_path: Path, vg_vocab: Vocabulary) -> None:
    release = copy_release(tmp_path)
    relationships = json.loads((release / "relationships.json").read_text())
    swapped = [relationships[1], relationships[0], *relationships[2:]]
    (release / "relationships.json").write_text(json.dumps(swapped))
    with pytest.raises(AnnotationError, match=r"relationships\.json: item 0 is image 2 but image_data"):
        list(iter_vg_release(release, vg_vocab))
    (release / "relationships.json").write_text(json.dumps(relationships[:4]))
    with pytest.raises(AnnotationError, match=r"relationships\.json: ends after 4 images"):
        list(iter_vg_release(release, vg_vocab))
    (release / "attributes.json").unlink()
    with pytest.raises(AnnotationError, match=r"missing Visual Genome release file.*attributes\.json"):
        list(iter_vg_release(release, vg_vocab))


def test_release_object_outside_image(tmp_path: Path, vg_vocab: Vocabulary) -> None:
    release = copy_release(tmp_path)
    objects = json.loads((release / "objects.json").read_text())
    objects[0]["objects"][0]["x"] = 900  # the clock of image 1, right of the 800-pixel image
    (release / "objects.json").write_text(json.dumps(objects))
    drops = DropCounts()
    first = next(iter_vg_release(release, vg_vocab, drops=drops))
    assert 1058498 not in {o.object_id for o in first.objects}
    assert drops.get("objects", "invalid_box") == 1
    with pytest.raises(AnnotationError, match=r"image 1\).*object 1058498 has box \(900\.0"):
        next(iter_vg_release(release, vg_vocab, strict=True))
