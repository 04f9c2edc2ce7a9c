"""The demo world: layouts, relations, captions, near-duplicates, rendering and the written dataset."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vscn.data.demo import DemoScene, DemoWorld, demo_scenes, generate_demo, make_scene, render, scene_rng
from vscn.data.demo.captions import ID_STRIDE
from vscn.data.demo.layout import Shape, SceneSpec, overlap_fraction
from vscn.data.demo.relations import spatial_predicates
from vscn.data.demo.world import PREDICATES, RelationRules, Term
from vscn.data.records import Scene
from vscn.data.vg import read_scene
from vscn.data.vocab import load_vocabulary

WORLD = DemoWorld()
SHAPE_NAMES = {t.name for t in WORLD.shapes}
COLOURS = {c.name for c in WORLD.colours}
SIZES = {s.name for s in WORLD.sizes}
FILLS = {f.name for f in WORLD.fills}
ATTRIBUTE_WORDS = COLOURS | SIZES | FILLS
SMALL_COUNTS = (60, 20, 20)
TURNS = WORLD.captions.query_turns


@pytest.fixture(scope="module")
def items() -> list[DemoScene]:
    return list(demo_scenes(*SMALL_COUNTS, seed=0))


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "data"
    generate_demo(root, n_train=12, n_val=4, n_test=6, seed=3)
    return root


def _objects_by_id(scene: Scene) -> dict:
    return {o.object_id: o for o in scene.objects}


def _centre(box):
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def _mentions(phrase: str) -> tuple[set[str], set[str]]:
    """Shape words and attribute words of a caption fragment."""
    words = set(phrase.split())
    return words & SHAPE_NAMES, words & ATTRIBUTE_WORDS


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------ records

def test_scene_contents_follow_the_world(items):
    for item in items:
        scene = item.scene
        assert WORLD.min_objects <= len(scene.objects) <= WORLD.max_objects
        assert (scene.width, scene.height) == (WORLD.width, WORLD.height)
        captions = [r.caption for r in scene.regions]
        assert len(set(captions)) == len(captions) >= WORLD.captions.min_unique
        for caption in captions:
            assert caption == caption.lower() == caption.strip()
            assert not re.search(r"\ba [aeiou]", caption) and not re.search(r"\ban [^aeiou]", caption)
        for obj in scene.objects:
            assert obj.name in SHAPE_NAMES
            colour, size, fill = obj.attributes
            assert colour in COLOURS and size in SIZES and fill in FILLS
            side = next(s for s in WORLD.sizes if s.name == size)
            assert side.min_side <= obj.box[2] - obj.box[0] == obj.box[3] - obj.box[1] <= side.max_side


def test_the_vocabulary_is_used_broadly(items):
    objects = [o for item in items for o in item.scene.objects]
    assert {o.name for o in objects} == SHAPE_NAMES and len(SHAPE_NAMES) >= 6
    assert {o.attributes[0] for o in objects} == COLOURS and len(COLOURS) == 8
    assert {o.attributes[1] for o in objects} == SIZES == {"small", "large"}
    assert {o.attributes[2] for o in objects} == FILLS
    assert {r.predicate for item in items for r in item.scene.relations} == set(PREDICATES)
    assert {len(item.scene.objects) for item in items} == set(range(WORLD.min_objects, WORLD.max_objects + 1))


def test_shapes_overlap_little_and_stay_on_the_canvas(items):
    for item in items:
        boxes = [o.box for o in item.scene.objects]
        for i, a in enumerate(boxes):
            assert a[0] >= 0 and a[1] >= 0 and a[2] <= WORLD.width - 1 and a[3] <= WORLD.height - 1
            for b in boxes[i + 1 :]:
                assert overlap_fraction(a, b) <= WORLD.max_overlap


def test_overlap_fraction_on_hand_made_boxes():
    assert overlap_fraction((0, 0, 10, 10), (20, 0, 30, 10)) == 0.0
    assert overlap_fraction((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(0.5)
    assert overlap_fraction((0, 0, 10, 10), (2, 2, 4, 4)) == pytest.approx(1.0)  # inside: the smaller is covered


def test_ids_are_unique_across_the_dataset_and_start_at_one(items):
    image_ids = [item.scene.image_id for item in items]
    assert image_ids == list(range(1, sum(SMALL_COUNTS) + 1))
    object_ids = [o.object_id for item in items for o in item.scene.objects]
    relation_ids = [r.relation_id for item in items for r in item.scene.relations]
    region_ids = [r.region_id for item in items for r in item.scene.regions]
    for ids in (object_ids, relation_ids, region_ids):
        assert len(ids) == len(set(ids))
    for item in items:
        region_ids = [r.region_id for r in item.scene.regions]
        assert region_ids == sorted(region_ids)
        assert all(i // ID_STRIDE == item.scene.image_id for i in region_ids)


# ---------------------------------------------------------------------------------------- relations

def test_spatial_rules_on_hand_made_boxes():
    rules = RelationRules()
    square = (100, 100, 120, 120)
    assert spatial_predicates(square, (130, 102, 150, 122), rules) == ("to the left of", "next to")
    assert spatial_predicates((130, 102, 150, 122), square, rules) == ("to the right of", "next to")
    assert spatial_predicates(square, (200, 100, 220, 120), rules) == ("to the left of",)  # too far for next to
    assert spatial_predicates(square, (100, 160, 120, 180), rules) == ("above",)
    assert spatial_predicates((100, 160, 120, 180), square, rules) == ("below",)
    assert spatial_predicates(square, (105, 100, 125, 120), rules) == ("next to",)  # centres too close to say more
    assert spatial_predicates(square, (150, 150, 170, 170), rules) == ()  # diagonal: neither axis dominates


def test_relations_agree_with_geometry(items):
    rules = WORLD.relation_rules
    for item in items:
        scene = item.scene
        objects = _objects_by_id(scene)
        found = {(r.subject_id, r.object_id, r.predicate) for r in scene.relations}
        assert len(found) == len(scene.relations)
        for a in scene.objects:
            for b in scene.objects:
                if a is b:
                    continue
                (ax, ay), (bx, by) = _centre(a.box), _centre(b.box)
                dx, dy = bx - ax, by - ay
                expected = {
                    "to the left of": dx >= rules.direction_margin and abs(dx) > abs(dy),
                    "to the right of": -dx >= rules.direction_margin and abs(dx) > abs(dy),
                    "above": dy >= rules.direction_margin and abs(dy) > abs(dx),
                    "below": -dy >= rules.direction_margin and abs(dy) > abs(dx),
                    "next to": max(b.box[0] - a.box[2], a.box[0] - b.box[2]) <= rules.next_to_max_gap
                    and abs(dy) <= rules.next_to_max_vertical_offset * min(a.box[3] - a.box[1], b.box[3] - b.box[1]),
                }
                for predicate, holds in expected.items():
                    assert ((a.object_id, b.object_id, predicate) in found) == holds, (scene.image_id, predicate)
        # Opposites come in pairs and "next to" is symmetric.
        opposite = {"to the left of": "to the right of", "to the right of": "to the left of",
                    "above": "below", "below": "above", "next to": "next to"}
        for s, o, p in found:
            assert (o, s, opposite[p]) in found
            assert s in objects and o in objects


# ------------------------------------------------------------------------------------------ regions

def test_regions_link_to_the_objects_and_relations_they_describe(items):
    for item in items:
        scene = item.scene
        objects = _objects_by_id(scene)
        relations = {r.relation_id: r for r in scene.relations}
        for region in scene.regions:
            if not region.relation_ids:
                (object_id,) = region.object_ids
                obj = objects[object_id]
                assert region.box == obj.box
                shapes, attributes = _mentions(region.caption)
                assert shapes == {obj.name}
                assert attributes and attributes <= set(obj.attributes)
                continue
            (relation_id,) = region.relation_ids
            relation = relations[relation_id]
            subject, obj = objects[relation.subject_id], objects[relation.object_id]
            assert region.object_ids == (subject.object_id, obj.object_id)
            assert region.box == (
                min(subject.box[0], obj.box[0]), min(subject.box[1], obj.box[1]),
                max(subject.box[2], obj.box[2]), max(subject.box[3], obj.box[3]),
            )
            before, predicate, after = region.caption.partition(f" {relation.predicate} ")
            assert predicate, region.caption
            for phrase, described in ((before, subject), (after, obj)):
                shapes, attributes = _mentions(phrase)
                assert shapes == {described.name} and attributes <= set(described.attributes), region.caption


def test_captions_use_several_phrasings(items):
    captions = [r.caption for item in items for r in item.scene.regions]
    # Phrasings like "the circle is red", "a red circle", "a star above a square", for any words.
    assert any(c.startswith("the ") and c.split()[2] == "is" and c.split()[-1] in COLOURS for c in captions)
    assert any(len(c.split()) == 3 and c.split()[1] in COLOURS for c in captions)
    assert any(len(c.split()) == 5 and c.split()[2] in {"above", "below"} for c in captions)
    assert any(" next to " in c for c in captions) and any(" to the left of " in c for c in captions)


def test_first_query_turns_mix_object_and_relation_captions(items):
    for item in items:
        first = item.scene.regions[:TURNS]
        kinds = Counter(bool(r.relation_ids) for r in first)
        assert kinds[True] >= 1 and kinds[False] >= 1, item.scene.image_id


# ---------------------------------------------------------------------------------- near-duplicates

def test_near_duplicates_change_one_thing_and_share_most_captions(items):
    by_id = {item.scene.image_id: item for item in items}
    copies = [item for item in items if item.source_id is not None]
    assert len(copies) >= 0.05 * len(items)
    assert {c.change for c in copies} == {"recolour", "move"}
    shared_fractions = []
    for copy in copies:
        source = by_id[copy.source_id]
        assert source.split == copy.split and source.source_id is None and source.scene.image_id < copy.scene.image_id
        changed = [(a, b) for a, b in zip(source.spec.shapes, copy.spec.shapes) if a != b]
        assert len(copy.spec.shapes) == len(source.spec.shapes) and len(changed) == 1
        old, new = changed[0]
        if copy.change == "recolour":
            assert old.colour != new.colour and replace(old, colour=new.colour) == new
        else:
            assert old.box != new.box and replace(old, box=new.box) == new
        mine = {r.caption for r in copy.scene.regions}
        theirs = {r.caption for r in source.scene.regions}
        assert mine != theirs  # some query tells them apart
        shared_fractions.append(len(mine & theirs) / len(mine))
    assert min(shared_fractions) >= 0.5 and np.mean(shared_fractions) >= 0.75


def test_one_query_matches_many_scenes_and_several_narrow_it_down(items):
    caption_sets = [{r.caption for r in item.scene.regions} for item in items]
    frequency = Counter(c for captions in caption_sets for c in captions)
    # A single query is ambiguous: the commonest captions occur in many scenes.
    assert frequency.most_common(1)[0][1] >= 0.08 * len(items)
    assert sum(1 for n in frequency.values() if n >= 3) >= 20
    # The first TURNS queries together usually single out their scene.
    singled_out = 0
    for captions in ([r.caption for r in item.scene.regions[:TURNS]] for item in items):
        matches = [s for s in caption_sets if set(captions) <= s]
        singled_out += len(matches) == 1
    assert singled_out >= 0.85 * len(items)


# ------------------------------------------------------------------------------------- determinism

def test_scenes_are_deterministic_by_seed():
    first = make_scene(7, scene_rng(0, 7))
    assert make_scene(7, scene_rng(0, 7)) == first
    assert make_scene(7, scene_rng(1, 7)) != first
    assert [i.scene for i in demo_scenes(5, 2, 2, seed=4)] == [i.scene for i in demo_scenes(5, 2, 2, seed=4)]


def test_a_scene_does_not_depend_on_the_split_sizes():
    small = {i.scene.image_id: i for i in demo_scenes(3, 0, 0, seed=2)}
    large = {i.scene.image_id: i for i in demo_scenes(3, 5, 5, seed=2)}
    assert all(large[k].scene == small[k].scene for k in small)


def test_generated_files_are_byte_identical_for_a_seed(tmp_path, written):
    again = tmp_path / "again"
    generate_demo(again, n_train=12, n_val=4, n_test=6, seed=3)
    assert _tree_digest(again) == _tree_digest(written)
    other = tmp_path / "other"
    generate_demo(other, n_train=12, n_val=4, n_test=6, seed=4)
    digest, other_digest = _tree_digest(written), _tree_digest(other)
    assert digest.keys() == other_digest.keys()
    changed = [k for k in digest if digest[k] != other_digest[k]]
    assert any(k.startswith("images/") for k in changed) and any(k.startswith("rg_jsons/") for k in changed)


# ------------------------------------------------------------------------------------------ drawing

def test_rendering_paints_only_inside_the_boxes(items):
    background = np.array(WORLD.style.background)
    for item in items[:10]:
        pixels = np.asarray(render(item.spec, WORLD))  # (H, W, 3)
        assert pixels.shape == (WORLD.height, WORLD.width, 3)
        outside = np.ones(pixels.shape[:2], dtype=bool)
        for shape in item.spec.shapes:
            x1, y1, x2, y2 = shape.box
            outside[y1 : y2 + 1, x1 : x2 + 1] = False
            assert (pixels[y1 : y2 + 1, x1 : x2 + 1] == WORLD.colour_rgb[shape.colour]).all(axis=-1).any()
        assert (pixels[outside] == background).all()


@pytest.mark.parametrize("fill", sorted(FILLS))
def test_fills_paint_their_pattern(fill):
    shape = Shape("square", "blue", "large", fill, (20, 20, 76, 76))
    pixels = np.asarray(render(SceneSpec((shape,), caption_seed=0), WORLD))
    inside = (pixels[24:73, 24:73] == WORLD.colour_rgb["blue"]).all(axis=-1).mean()  # away from the rim
    expected = {"solid": (1.0, 1.0), "hollow": (0.0, 0.0), "striped": (0.2, 0.7), "dotted": (0.1, 0.4)}[fill]
    assert expected[0] <= inside <= expected[1]


# ------------------------------------------------------------------------------------------- on disk

def test_written_dataset_layout(written):
    splits = {s: (written / "splits" / f"{s}.txt").read_text().split() for s in ("train", "val", "test", "raw_test")}
    assert [len(splits[s]) for s in ("train", "val", "test")] == [12, 4, 6]
    assert splits["raw_test"] == splits["test"]
    all_ids = [int(i) for s in ("train", "val", "test") for i in splits[s]]
    assert all_ids == list(range(1, 23))
    for split in ("train", "val", "test"):
        assert [int(i) for i in splits[split]] == sorted(int(i) for i in splits[split])
    assert (written / "vocab" / "objects.txt").read_text().splitlines()[1] == "square,box"
    world = json.loads((written / "world.json").read_text())
    assert world["seed"] == 3 and world["counts"] == {"train": 12, "val": 4, "test": 6}
    assert [s["name"] for s in world["world"]["shapes"]] == [t.name for t in WORLD.shapes]
    assert not list(written.parent.glob(".data.*"))  # no temporary folder left behind
    with Image.open(written / "images" / "1.png") as image:
        assert image.format == "PNG" and image.size == (WORLD.width, WORLD.height)


def test_written_annotations_read_back_as_the_generated_scenes(written):
    vocab = load_vocabulary(*(written / "vocab" / f for f in ("objects.txt", "attributes.txt", "relations.txt")))
    for item in demo_scenes(12, 4, 6, seed=3):
        scene = read_scene(written, item.scene.image_id, vocab, strict=True)
        assert scene == item.scene
        pixels = np.asarray(Image.open(written / "images" / f"{scene.image_id}.png"))
        assert (pixels == np.asarray(render(item.spec, WORLD))).all()


def test_small_configurations_and_existing_roots(tmp_path):
    root = tmp_path / "tiny"
    generate_demo(root, n_train=3, n_val=0, n_test=1, seed=0)
    assert (root / "splits" / "val.txt").read_text() == ""
    assert len(list((root / "images").iterdir())) == 4
    with pytest.raises(FileExistsError, match="tiny"):
        generate_demo(root, n_train=3, n_val=0, n_test=1)
    generate_demo(root, n_train=2, n_val=1, n_test=1, overwrite=True)
    assert len(list((root / "images").iterdir())) == 4
    assert (root / "splits" / "val.txt").read_text() == "3\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]


def test_bad_input_is_refused(tmp_path):
    with pytest.raises(ValueError, match="n_val"):
        generate_demo(tmp_path / "bad", n_train=2, n_val=-1, n_test=1)
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="pentagon"):
        DemoWorld(shapes=(Term("pentagon"),))
    with pytest.raises(ValueError, match="does not fit"):
        DemoWorld(width=40, height=40)
