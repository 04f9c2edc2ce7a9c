"""Drawing a layout with Pillow: flat shapes with solid, striped, dotted or hollow fills.

Every shape is a polygon given in the unit square and stretched over the shape's box, so the box is
the shape's tight bounding box. Drawing uses no fonts, antialiasing or randomness, and PNG files carry
no timestamps, so the same layout always gives the same bytes.
"""

from __future__ import annotations

import io
import math
from functools import cache

from PIL import Image, ImageChops, ImageDraw

from vscn.data.demo.layout import SceneSpec, Shape
from vscn.data.demo.world import DemoWorld, RenderStyle

Point = tuple[float, float]

_CURVE_POINTS = 48  # polygon corners for the round shapes (circle, heart)
_STAR_TIPS = 5
_STAR_INNER_RADIUS = 0.4  # relative to the outer radius
_CROSS_ARM = 1 / 3  # arm width as a fraction of the box side


def _fit_unit(points: list[Point]) -> tuple[Point, ...]:
    """The points scaled and shifted so their bounding box is exactly the unit square."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, y0 = min(xs), min(ys)
    w, h = max(xs) - x0, max(ys) - y0
    return tuple(((x - x0) / w, (y - y0) / h) for x, y in points)


def _regular(corners: int, start_angle: float) -> list[Point]:
    step = 2 * math.pi / corners
    return [(math.cos(start_angle + i * step), math.sin(start_angle + i * step)) for i in range(corners)]


def _star() -> list[Point]:
    step = math.pi / _STAR_TIPS
    radii = [1.0 if i % 2 == 0 else _STAR_INNER_RADIUS for i in range(2 * _STAR_TIPS)]
    return [(r * math.cos(-math.pi / 2 + i * step), r * math.sin(-math.pi / 2 + i * step)) for i, r in enumerate(radii)]


def _cross() -> list[Point]:
    a, b = _CROSS_ARM, 1 - _CROSS_ARM
    return [(a, 0), (b, 0), (b, a), (1, a), (1, b), (b, b), (b, 1), (a, 1), (a, b), (0, b), (0, a), (a, a)]


def _heart() -> list[Point]:
    # The classic heart curve; y is negated because image y grows downward.
    ts = [2 * math.pi * i / _CURVE_POINTS for i in range(_CURVE_POINTS)]
    return [
        (16 * math.sin(t) ** 3, -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)))
        for t in ts
    ]


@cache
def unit_outline(kind: str) -> tuple[Point, ...]:
    """The outline of a shape kind as a polygon whose bounding box is the unit square."""
    outlines = {
        "circle": lambda: _regular(_CURVE_POINTS, 0.0),
        "square": lambda: [(0, 0), (1, 0), (1, 1), (0, 1)],
        "triangle": lambda: [(0.5, 0), (1, 1), (0, 1)],
        "star": _star,
        "hexagon": lambda: _regular(6, 0.0),
        "diamond": lambda: [(0.5, 0), (1, 0.5), (0.5, 1), (0, 0.5)],
        "cross": _cross,
        "heart": _heart,
    }
    if kind not in outlines:
        raise ValueError(f"no outline for shape kind {kind!r}")
    return _fit_unit(outlines[kind]())


def _polygon(shape: Shape, origin: Point = (0.0, 0.0)) -> list[Point]:
    """The shape's outline in pixels, relative to ``origin``."""
    x1, y1, x2, y2 = shape.box
    return [(x1 - origin[0] + u * (x2 - x1), y1 - origin[1] + v * (y2 - y1)) for u, v in unit_outline(shape.kind)]


def _pattern_mask(fill: str, size: tuple[int, int], style: RenderStyle) -> Image.Image:
    """A mask of the fill's pattern (255 where paint goes) over a box of ``size`` (w, h)."""
    w, h = size
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    if fill == "striped":
        # Diagonal stripes: lines from the left/top edge going down-right.
        for offset in range(-h, w, style.stripe_period):
            draw.line([(offset, 0), (offset + h, h)], fill=255, width=style.stripe_width)
    elif fill == "dotted":
        r = style.dot_radius
        for cy in range(style.dot_period // 2, h, style.dot_period):
            for cx in range(style.dot_period // 2, w, style.dot_period):
                draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    else:
        raise ValueError(f"no pattern for fill {fill!r}")
    return mask


def draw_shape(image: Image.Image, shape: Shape, world: DemoWorld) -> None:
    """Paints one shape onto ``image`` in place."""
    style = world.style
    colour = world.colour_rgb[shape.colour]
    draw = ImageDraw.Draw(image)
    if shape.fill == "solid":
        draw.polygon(_polygon(shape), fill=colour)
        return
    if shape.fill != "hollow":
        x1, y1, x2, y2 = shape.box
        size = (x2 - x1 + 1, y2 - y1 + 1)  # inclusive corners
        inside = Image.new("L", size, 0)
        ImageDraw.Draw(inside).polygon(_polygon(shape, origin=(x1, y1)), fill=255)
        image.paste(colour, (x1, y1), ImageChops.multiply(inside, _pattern_mask(shape.fill, size, style)))
    draw.polygon(_polygon(shape), outline=colour, width=style.outline_width)


def render(spec: SceneSpec, world: DemoWorld) -> Image.Image:
    """The scene as an RGB image of the world's canvas size, shapes drawn in slot order."""
    image = Image.new("RGB", (world.width, world.height), world.style.background)
    for shape in spec.shapes:
        draw_shape(image, shape, world)
    return image


def png_bytes(image: Image.Image) -> bytes:
    """The image as PNG bytes: no metadata, so equal pixels give equal bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
