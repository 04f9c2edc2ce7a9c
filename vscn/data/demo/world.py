"""The demo world's vocabulary and every number that shapes it.

A ``DemoWorld`` says what may appear in a scene (shape kinds, colours, sizes, fill patterns, spatial
predicates), how large the canvas is, how scenes are laid out, how relations are read off the geometry
and how many captions each scene gets. Every other demo module takes a ``DemoWorld`` instead of holding
numbers of its own, and ``world.json`` stores it beside the generated data for provenance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

RGB = tuple[int, int, int]

# The shapes and fills the renderer knows how to draw; a world may use any subset of them.
DRAWABLE_SHAPES = ("circle", "square", "triangle", "star", "hexagon", "diamond", "cross", "heart")
DRAWABLE_FILLS = ("solid", "striped", "dotted", "hollow")

# The spatial predicates the relation rules define, in vocabulary order.
PREDICATES = ("to the left of", "to the right of", "above", "below", "next to")


@dataclass(frozen=True)
class Term:
    """One vocabulary class: its canonical name (used in the records) and optional aliases."""

    name: str
    aliases: tuple[str, ...] = ()

    def vocab_line(self) -> str:
        """The class as one line of a Drill-down vocabulary file: comma-separated names."""
        return ",".join((self.name, *self.aliases))


@dataclass(frozen=True)
class Colour:
    name: str
    rgb: RGB


@dataclass(frozen=True)
class SizeClass:
    """A size attribute: shapes of this size get a square box with a side in [min_side, max_side] px."""

    name: str
    min_side: int
    max_side: int


@dataclass(frozen=True)
class RelationRules:
    """Thresholds of the geometric relation rules (see ``vscn.data.demo.relations``), in pixels."""

    # Directional predicates need the centres this far apart along the dominant axis.
    direction_margin: float = 12.0
    # "next to": at most this horizontal gap between the two boxes ...
    next_to_max_gap: float = 24.0
    # ... and centres vertically within this fraction of the smaller box height.
    next_to_max_vertical_offset: float = 0.5


@dataclass(frozen=True)
class CaptionBudget:
    """How many region captions a scene gets."""

    per_object: int = 2  # object captions (distinct phrasings) for every object
    relations: int = 10  # relation captions per scene, on top of the object captions
    min_unique: int = 12  # a scene with fewer unique captions is laid out again
    query_turns: int = 10  # the first this-many captions in region-id order mix both kinds


@dataclass(frozen=True)
class RenderStyle:
    background: RGB = (236, 236, 232)
    outline_width: int = 3  # hollow shapes and the rim of patterned ones
    stripe_period: int = 8  # distance between diagonal stripes
    stripe_width: int = 2
    dot_period: int = 8  # grid spacing of the dots
    dot_radius: int = 2


@dataclass(frozen=True)
class DemoWorld:
    """Vocabulary, canvas and generation parameters of the demo world."""

    shapes: tuple[Term, ...] = (
        Term("circle"),
        Term("square", ("box",)),
        Term("triangle"),
        Term("star"),
        Term("hexagon"),
        Term("diamond", ("rhombus",)),
        Term("cross", ("plus",)),
        Term("heart"),
    )
    colours: tuple[Colour, ...] = (
        Colour("red", (214, 39, 40)),
        Colour("orange", (245, 130, 20)),
        Colour("yellow", (232, 200, 20)),
        Colour("green", (44, 160, 44)),
        Colour("blue", (31, 90, 210)),
        Colour("purple", (136, 64, 180)),
        Colour("pink", (240, 120, 180)),
        Colour("brown", (130, 82, 40)),
    )
    sizes: tuple[SizeClass, ...] = (SizeClass("small", 24, 32), SizeClass("large", 44, 56))
    fills: tuple[Term, ...] = (
        Term("solid", ("filled",)),
        Term("striped"),
        Term("dotted", ("spotted",)),
        Term("hollow", ("outlined",)),
    )
    predicates: tuple[Term, ...] = (
        Term("to the left of", ("left of",)),
        Term("to the right of", ("right of",)),
        Term("above", ("over",)),
        Term("below", ("under",)),
        Term("next to", ("beside",)),
    )
    width: int = 320
    height: int = 240
    border: int = 4  # shapes keep this far from the canvas edge
    min_objects: int = 4
    max_objects: int = 9
    # Two boxes may share at most this fraction of the smaller one's area.
    max_overlap: float = 0.05
    placement_attempts: int = 200  # tries per shape before the whole layout starts again
    # Fraction of scenes in each split copied from an earlier scene of that split with one change.
    near_duplicate_fraction: float = 0.15
    relation_rules: RelationRules = field(default_factory=RelationRules)
    captions: CaptionBudget = field(default_factory=CaptionBudget)
    style: RenderStyle = field(default_factory=RenderStyle)

    def __post_init__(self) -> None:
        unknown_shapes = {s.name for s in self.shapes} - set(DRAWABLE_SHAPES)
        if unknown_shapes:
            raise ValueError(f"DemoWorld: cannot draw shapes {sorted(unknown_shapes)}; known: {DRAWABLE_SHAPES}")
        unknown_fills = {f.name for f in self.fills} - set(DRAWABLE_FILLS)
        if unknown_fills:
            raise ValueError(f"DemoWorld: cannot draw fills {sorted(unknown_fills)}; known: {DRAWABLE_FILLS}")
        if tuple(p.name for p in self.predicates) != PREDICATES:
            raise ValueError(f"DemoWorld: predicates must be {PREDICATES} in this order")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(f"DemoWorld: need 1 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}")
        largest = max(s.max_side for s in self.sizes)
        if largest + 2 * self.border > min(self.width, self.height):
            raise ValueError(f"DemoWorld: a {largest}px shape does not fit a {self.width}x{self.height} canvas")
        if not 0.0 <= self.near_duplicate_fraction < 1.0:
            raise ValueError(f"DemoWorld: near_duplicate_fraction must be in [0, 1), got {self.near_duplicate_fraction}")

    @property
    def colour_rgb(self) -> dict[str, RGB]:
        return {c.name: c.rgb for c in self.colours}

    @property
    def attribute_terms(self) -> tuple[Term, ...]:
        """Every attribute class (colours, sizes, fills) in vocabulary-file order."""
        colours = tuple(Term(c.name) for c in self.colours)
        sizes = tuple(Term(s.name) for s in self.sizes)
        return colours + sizes + self.fills

    def to_json(self) -> dict[str, Any]:
        """The world as plain JSON values (tuples become lists)."""
        return asdict(self)
