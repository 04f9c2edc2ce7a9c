"""Spatial relations read off the geometry of two boxes.

With (dx, dy) the offset from the subject's box centre to the object's (image y grows downward):

- "to the left of": dx >= margin and |dx| > |dy| (the horizontal offset dominates);
- "to the right of": -dx >= margin and |dx| > |dy|;
- "above": dy >= margin and |dy| > |dx|;
- "below": -dy >= margin and |dy| > |dx|;
- "next to": the horizontal gap between the boxes is at most ``next_to_max_gap`` and |dy| is at most
  ``next_to_max_vertical_offset`` times the smaller box height (close horizontally, aligned vertically).

So every ordered pair whose centres differ enough along one axis gets exactly one directional predicate,
its reverse pair gets the opposite one, and "next to" holds in both directions or neither.
"""

from __future__ import annotations

from vscn.data.demo.world import RelationRules
from vscn.data.records import Box


def _centre(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def spatial_predicates(subject: Box, obj: Box, rules: RelationRules) -> tuple[str, ...]:
    """Every predicate that holds for ``subject <predicate> obj``, in vocabulary order."""
    (sx, sy), (ox, oy) = _centre(subject), _centre(obj)
    dx, dy = ox - sx, oy - sy
    horizontal, vertical = abs(dx) > abs(dy), abs(dy) > abs(dx)
    found = []
    if horizontal and dx >= rules.direction_margin:
        found.append("to the left of")
    if horizontal and -dx >= rules.direction_margin:
        found.append("to the right of")
    if vertical and dy >= rules.direction_margin:
        found.append("above")
    if vertical and -dy >= rules.direction_margin:
        found.append("below")
    gap = max(obj[0] - subject[2], subject[0] - obj[2])
    smaller_height = min(subject[3] - subject[1], obj[3] - obj[1])
    if gap <= rules.next_to_max_gap and abs(dy) <= rules.next_to_max_vertical_offset * smaller_height:
        found.append("next to")
    return tuple(found)
