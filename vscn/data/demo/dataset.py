"""The demo dataset in memory: scenes per split, some of them near-duplicates of others.

Image ids run from 1: first the train scenes, then val, then test. Each scene draws from its own
generator, seeded by (seed, image_id), so a scene does not depend on how many scenes come before it.
Within a split, a ``near_duplicate_fraction`` of the scenes (never the first) copy an earlier original
scene of the same split and change one thing (one shape's colour, or one shape's place); they keep the
source's caption seed, so they share most of its captions and differ in at least one, and telling them
apart takes the queries that mention the change.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from vscn.data.demo.captions import build_scene
from vscn.data.demo.layout import SceneSpec, move_one, recolour_one, sample_layout
from vscn.data.demo.world import DemoWorld
from vscn.data.records import Scene

SPLITS = ("train", "val", "test")
CHANGES = ("recolour", "move")  # the one-thing changes that make a near-duplicate
# Tries at a change whose captions differ from the source's before the scene is made fresh instead.
_DERIVE_ATTEMPTS = 50


@dataclass(frozen=True)
class DemoScene:
    """A generated scene with its split, its layout and, for a near-duplicate, where it came from."""

    split: str
    scene: Scene
    spec: SceneSpec
    source_id: int | None = None  # image id of the scene this one was derived from
    change: str | None = None  # which of CHANGES made it


def scene_rng(seed: int, image_id: int) -> np.random.Generator:
    """The generator of one scene: independent of every other scene's."""
    return np.random.default_rng([seed, image_id])


def make_scene(image_id: int, rng: np.random.Generator, world: DemoWorld = DemoWorld()) -> tuple[Scene, SceneSpec]:
    """A fresh scene and its layout (the render spec); layouts with too few captions are drawn again."""
    while True:
        spec = sample_layout(rng, world)
        scene = build_scene(image_id, spec, world)
        if scene is not None:
            return scene, spec


def derive_near_duplicate(
    image_id: int, source: Scene, source_spec: SceneSpec, rng: np.random.Generator, world: DemoWorld = DemoWorld()
) -> tuple[Scene, SceneSpec, str] | None:
    """A copy of ``source`` with one shape recoloured or moved, its change, or None when no try worked.

    A try counts only when the copy's caption set differs from the source's, so that the two scenes can
    always be told apart by some query.
    """
    source_captions = {r.caption for r in source.regions}
    for _ in range(_DERIVE_ATTEMPTS):
        change = CHANGES[int(rng.integers(len(CHANGES)))]
        spec = recolour_one(source_spec, rng, world) if change == "recolour" else move_one(source_spec, rng, world)
        if spec is None:
            continue
        scene = build_scene(image_id, spec, world)
        if scene is not None and {r.caption for r in scene.regions} != source_captions:
            return scene, spec, change
    return None


def split_ids(n_train: int, n_val: int, n_test: int) -> dict[str, list[int]]:
    """Image ids of each split: consecutive from 1, in the order train, val, test."""
    counts = {"train": n_train, "val": n_val, "test": n_test}
    for split, count in counts.items():
        if count < 0:
            raise ValueError(f"n_{split} must be >= 0, got {count}")
    ids, start = {}, 1
    for split in SPLITS:
        ids[split] = list(range(start, start + counts[split]))
        start += counts[split]
    return ids


def _split_scenes(split: str, split_index: int, ids: list[int], seed: int, world: DemoWorld) -> Iterator[DemoScene]:
    # Near-duplicate choices draw from a generator of their own so that they do not shift any scene's.
    choices = np.random.default_rng([seed, 0, split_index])
    originals: list[DemoScene] = []
    for image_id in ids:
        rng = scene_rng(seed, image_id)
        wants_copy = choices.random() < world.near_duplicate_fraction
        source = originals[int(choices.integers(len(originals)))] if originals else None
        if wants_copy and source is not None:
            derived = derive_near_duplicate(image_id, source.scene, source.spec, rng, world)
            if derived is not None:
                scene, spec, change = derived
                yield DemoScene(split, scene, spec, source.scene.image_id, change)
                continue
        scene, spec = make_scene(image_id, rng, world)
        original = DemoScene(split, scene, spec)
        originals.append(original)
        yield original


def demo_scenes(
    n_train: int = 1200, n_val: int = 200, n_test: int = 300, seed: int = 0, world: DemoWorld = DemoWorld()
) -> Iterator[DemoScene]:
    """Every scene of the demo dataset, split by split, in image-id order."""
    for split_index, (split, ids) in enumerate(split_ids(n_train, n_val, n_test).items()):
        yield from _split_scenes(split, split_index, ids, seed, world)
