"""Scene layouts: which shapes a scene holds and where, sampled with little overlap.

A ``SceneSpec`` is everything needed to render a scene and to write its annotations: the shapes in
drawing order and the seed of the caption choices. Shapes keep their slot (index) when a near-duplicate
is derived from a scene, and caption choices are keyed by slot, so a near-duplicate shares every
caption its change does not touch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from vscn.data.demo.world import DemoWorld
from vscn.data.records import Box

# Caption seeds are drawn from [0, 2**31) so they fit any JSON reader's integers.
CAPTION_SEED_BOUND = 2**31


@dataclass(frozen=True)
class Shape:
    """One drawn object: its kind, attributes and square pixel box (x1, y1, x2, y2), inclusive corners."""

    kind: str
    colour: str
    size: str
    fill: str
    box: tuple[int, int, int, int]

    @property
    def attributes(self) -> tuple[str, ...]:
        return (self.colour, self.size, self.fill)


@dataclass(frozen=True)
class SceneSpec:
    shapes: tuple[Shape, ...]
    caption_seed: int


def overlap_fraction(a: Box, b: Box) -> float:
    """Intersection area of two boxes over the smaller box's area (0 when they are apart)."""
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / smaller


def _fits(box: Box, others: list[Box], world: DemoWorld) -> bool:
    return all(overlap_fraction(box, other) <= world.max_overlap for other in others)


def _place(side: int, others: list[Box], rng: np.random.Generator, world: DemoWorld) -> tuple[int, int, int, int] | None:
    """A box of the given side that overlaps ``others`` little enough, or None when none was found."""
    # The box spans side + 1 pixels including both corners; it stays `border` px inside the canvas.
    max_x1 = world.width - 1 - world.border - side
    max_y1 = world.height - 1 - world.border - side
    for _ in range(world.placement_attempts):
        x1 = int(rng.integers(world.border, max_x1 + 1))
        y1 = int(rng.integers(world.border, max_y1 + 1))
        box = (x1, y1, x1 + side, y1 + side)
        if _fits(box, others, world):
            return box
    return None


def _random_side(size: str, rng: np.random.Generator, world: DemoWorld) -> int:
    size_class = next(s for s in world.sizes if s.name == size)
    return int(rng.integers(size_class.min_side, size_class.max_side + 1))


def sample_layout(rng: np.random.Generator, world: DemoWorld) -> SceneSpec:
    """A fresh scene: min_objects..max_objects shapes with random attributes and little overlap.

    When a shape finds no place the layout starts again from the same generator, so the result stays
    a deterministic function of the generator's state.
    """
    while True:
        n_shapes = int(rng.integers(world.min_objects, world.max_objects + 1))
        shapes: list[Shape] = []
        for _ in range(n_shapes):
            size = world.sizes[int(rng.integers(len(world.sizes)))].name
            box = _place(_random_side(size, rng, world), [s.box for s in shapes], rng, world)
            if box is None:
                break
            shapes.append(
                Shape(
                    kind=world.shapes[int(rng.integers(len(world.shapes)))].name,
                    colour=world.colours[int(rng.integers(len(world.colours)))].name,
                    size=size,
                    fill=world.fills[int(rng.integers(len(world.fills)))].name,
                    box=box,
                )
            )
        if len(shapes) == n_shapes:
            return SceneSpec(tuple(shapes), caption_seed=int(rng.integers(CAPTION_SEED_BOUND)))


def recolour_one(spec: SceneSpec, rng: np.random.Generator, world: DemoWorld) -> SceneSpec:
    """The same scene with one shape given a different colour."""
    slot = int(rng.integers(len(spec.shapes)))
    old = spec.shapes[slot]
    choices = [c.name for c in world.colours if c.name != old.colour]
    new = replace(old, colour=choices[int(rng.integers(len(choices)))])
    return replace(spec, shapes=spec.shapes[:slot] + (new,) + spec.shapes[slot + 1 :])


def move_one(spec: SceneSpec, rng: np.random.Generator, world: DemoWorld) -> SceneSpec | None:
    """The same scene with one shape moved to a new free place, or None when it found none."""
    slot = int(rng.integers(len(spec.shapes)))
    old = spec.shapes[slot]
    others = [s.box for i, s in enumerate(spec.shapes) if i != slot]
    box = _place(old.box[2] - old.box[0], others, rng, world)
    if box is None or box == old.box:
        return None
    return replace(spec, shapes=spec.shapes[:slot] + (replace(old, box=box),) + spec.shapes[slot + 1 :])
