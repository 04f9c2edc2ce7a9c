"""From a layout to a scene record: objects, geometric relations and region captions.

Every object gets ``per_object`` captions in distinct phrasings (object templates), and the scene gets
``relations`` captions about distinct relations (relation templates); a phrase that repeats an earlier
caption of the scene is skipped. Which phrasings and relations are chosen, and in what order the regions
come, follows random scores drawn from the layout's caption seed and indexed by shape slot, so two
layouts that differ in one shape get the same choices wherever that shape is not involved.

Region order interleaves the two kinds: within each kind the captions are shuffled, and the k-th of n
captions of a kind gets the sort key (k + u) / n with u uniform in [0, 1), so both kinds are spread
evenly over the region-id order and the first ``query_turns`` captions always hold both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from vscn.data.demo.layout import Shape, SceneSpec
from vscn.data.demo.relations import spatial_predicates
from vscn.data.demo.world import PREDICATES, DemoWorld
from vscn.data.records import Box, Region, Relation, Scene, SceneObject

# Object, relation and region ids are image_id * ID_STRIDE + k with 1 <= k < ID_STRIDE: unique across
# the dataset, and the image an id belongs to is id // ID_STRIDE.
ID_STRIDE = 1000

OBJECT_TEMPLATES = (
    "a {colour} {shape}",
    "a {size} {colour} {shape}",
    "a {size} {fill} {colour} {shape}",
    "a {fill} {shape}",
    "a {size} {shape}",
    "the {shape} is {colour}",
    "the {colour} {shape} is {fill}",
)
RELATION_TEMPLATES = (
    "a {s_colour} {s_shape} {predicate} a {o_colour} {o_shape}",
    "a {s_shape} {predicate} a {o_shape}",
    "a {s_size} {s_colour} {s_shape} {predicate} a {o_shape}",
    "the {s_shape} is {predicate} the {o_colour} {o_shape}",
    "a {s_fill} {s_shape} {predicate} a {o_colour} {o_shape}",
)

# "a" becomes "an" before a vowel sound; every word of the vocabulary that starts with a vowel letter
# also starts with a vowel sound ("an orange star").
_ARTICLE_BEFORE_VOWEL = re.compile(r"\ba (?=[aeiou])")


@dataclass(frozen=True)
class _Candidate:
    """One possible region caption with the scores that decide whether and where it is used."""

    caption: str
    box: Box
    object_slots: tuple[int, ...]
    relation_index: int | None  # index into the scene's relations, for relation captions
    pick_score: float  # higher is chosen first
    order_score: float  # place among the chosen captions of its kind


@dataclass(frozen=True)
class _CaptionScores:
    """Random scores of one caption seed, indexed by shape slot so they survive a one-shape change."""

    object_pick: np.ndarray  # (max_objects, n_object_templates)
    object_order: np.ndarray  # (max_objects, n_object_templates)
    relation_pick: np.ndarray  # (max_objects, max_objects, n_predicates, n_relation_templates)
    relation_order: np.ndarray  # (max_objects, max_objects, n_predicates, n_relation_templates)

    @classmethod
    def draw(cls, seed: int, world: DemoWorld) -> _CaptionScores:
        rng = np.random.default_rng(seed)
        object_shape = (world.max_objects, len(OBJECT_TEMPLATES))
        relation_shape = (world.max_objects, world.max_objects, len(PREDICATES), len(RELATION_TEMPLATES))
        return cls(rng.random(object_shape), rng.random(object_shape), rng.random(relation_shape), rng.random(relation_shape))


def with_articles(text: str) -> str:
    """The caption with "a" turned into "an" before a vowel."""
    return _ARTICLE_BEFORE_VOWEL.sub("an ", text)


def union_box(a: Box, b: Box) -> Box:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _words(shape: Shape, prefix: str = "") -> dict[str, str]:
    return {
        f"{prefix}shape": shape.kind,
        f"{prefix}colour": shape.colour,
        f"{prefix}size": shape.size,
        f"{prefix}fill": shape.fill,
    }


def _float_box(box: tuple[int, int, int, int]) -> Box:
    return (float(box[0]), float(box[1]), float(box[2]), float(box[3]))


def _relations(image_id: int, shapes: tuple[Shape, ...], world: DemoWorld) -> list[tuple[int, int, Relation]]:
    """Every relation that holds between two shapes, as (subject slot, object slot, relation)."""
    found = []
    for s, subject in enumerate(shapes):
        for o, obj in enumerate(shapes):
            if s == o:
                continue
            for predicate in spatial_predicates(subject.box, obj.box, world.relation_rules):
                relation_id = image_id * ID_STRIDE + len(found) + 1
                found.append((s, o, Relation(relation_id, _object_id(image_id, s), _object_id(image_id, o), predicate)))
    return found


def _object_id(image_id: int, slot: int) -> int:
    return image_id * ID_STRIDE + slot + 1


def _object_candidates(shapes: tuple[Shape, ...], scores: _CaptionScores) -> list[list[_Candidate]]:
    """For each shape, its object captions in pick order."""
    per_shape = []
    for slot, shape in enumerate(shapes):
        words = _words(shape)
        candidates = [
            _Candidate(
                caption=with_articles(template.format(**words)),
                box=_float_box(shape.box),
                object_slots=(slot,),
                relation_index=None,
                pick_score=float(scores.object_pick[slot, t]),
                order_score=float(scores.object_order[slot, t]),
            )
            for t, template in enumerate(OBJECT_TEMPLATES)
        ]
        per_shape.append(sorted(candidates, key=lambda c: -c.pick_score))
    return per_shape


def _relation_candidates(
    shapes: tuple[Shape, ...], relations: list[tuple[int, int, Relation]], scores: _CaptionScores
) -> list[_Candidate]:
    """Every relation caption of the scene, in pick order."""
    candidates = []
    for index, (s, o, relation) in enumerate(relations):
        words = {**_words(shapes[s], "s_"), **_words(shapes[o], "o_"), "predicate": relation.predicate}
        p = PREDICATES.index(relation.predicate)
        for t, template in enumerate(RELATION_TEMPLATES):
            candidates.append(
                _Candidate(
                    caption=with_articles(template.format(**words)),
                    box=union_box(_float_box(shapes[s].box), _float_box(shapes[o].box)),
                    object_slots=(s, o),
                    relation_index=index,
                    pick_score=float(scores.relation_pick[s, o, p, t]),
                    order_score=float(scores.relation_order[s, o, p, t]),
                )
            )
    return sorted(candidates, key=lambda c: -c.pick_score)


def _choose(
    objects: list[list[_Candidate]], relations: list[_Candidate], world: DemoWorld
) -> tuple[list[_Candidate], list[_Candidate]]:
    """The object and relation captions of the scene, each caption text used once."""
    budget = world.captions
    used: set[str] = set()
    chosen_objects: list[_Candidate] = []
    for shape_candidates in objects:
        fresh = [c for c in shape_candidates if c.caption not in used][: budget.per_object]
        used.update(c.caption for c in fresh)
        chosen_objects.extend(fresh)
    chosen_relations: list[_Candidate] = []
    captioned_relations: set[int] = set()
    for candidate in relations:
        if len(chosen_relations) == budget.relations:
            break
        if candidate.caption not in used and candidate.relation_index not in captioned_relations:
            used.add(candidate.caption)
            captioned_relations.add(candidate.relation_index)
            chosen_relations.append(candidate)
    return chosen_objects, chosen_relations


def _interleaved(kinds: list[list[_Candidate]]) -> list[_Candidate]:
    """All candidates, each kind spread evenly over the order (see the module docstring)."""
    keyed = []
    for candidates in kinds:
        shuffled = sorted(candidates, key=lambda c: c.order_score)
        keyed.extend(((k + c.order_score) / len(shuffled), c) for k, c in enumerate(shuffled))
    return [c for _, c in sorted(keyed, key=lambda pair: pair[0])]


def build_scene(image_id: int, spec: SceneSpec, world: DemoWorld) -> Scene | None:
    """The scene record of a layout, or None when it yields fewer than ``min_unique`` captions."""
    shapes = spec.shapes
    scores = _CaptionScores.draw(spec.caption_seed, world)
    relations = _relations(image_id, shapes, world)
    chosen_objects, chosen_relations = _choose(
        _object_candidates(shapes, scores), _relation_candidates(shapes, relations, scores), world
    )
    ordered = _interleaved([chosen_objects, chosen_relations])
    if len(ordered) < world.captions.min_unique:
        return None
    if max(len(shapes), len(relations), len(ordered)) >= ID_STRIDE:
        raise ValueError(f"scene {image_id}: more than {ID_STRIDE - 1} objects, relations or regions")
    regions = tuple(
        Region(
            region_id=image_id * ID_STRIDE + k + 1,
            box=c.box,
            caption=c.caption,
            object_ids=tuple(_object_id(image_id, slot) for slot in c.object_slots),
            relation_ids=() if c.relation_index is None else (relations[c.relation_index][2].relation_id,),
        )
        for k, c in enumerate(ordered)
    )
    objects = tuple(
        SceneObject(_object_id(image_id, slot), shape.kind, _float_box(shape.box), shape.attributes)
        for slot, shape in enumerate(shapes)
    )
    return Scene(image_id, world.width, world.height, objects, tuple(r for _, _, r in relations), regions)
