"""Errors and drop counts shared by the annotation readers and the scene database.

Rule-based filtering (a name outside the vocabulary, a repeated caption, too few captions) is never an
error: it is what Drill-down does to every image and is only counted. Bad input (a box outside the
image, a repeated id, a split id without annotations) is skipped and counted by default; with
``strict=True`` it raises :class:`AnnotationError` instead. Unreadable files always raise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

Part = TypeVar("Part")


class AnnotationError(ValueError):
    """An annotation file, record or split list that cannot be used; the message names file and id."""


class DropCounts:
    """How many annotation parts were left out, by kind (``objects``, ``regions``...) and reason.

    One instance can be handed to a reader and then to :func:`vscn.data.scenes.build_scene_db`, so the
    database summary also reports what was dropped while parsing.
    """

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, kind: str, reason: str, count: int = 1) -> None:
        self._counts[(kind, reason)] += count

    def skip(self, kind: str, reason: str, message: str, strict: bool) -> None:
        """Count one skipped part of bad input, or raise with ``message`` when ``strict``."""
        if strict:
            raise AnnotationError(message)
        self.add(kind, reason)

    def merge(self, other: DropCounts) -> None:
        self._counts.update(other._counts)

    def get(self, kind: str, reason: str) -> int:
        return self._counts[(kind, reason)]

    def as_dict(self) -> dict[str, dict[str, int]]:
        """``{kind: {reason: count}}`` with kinds and reasons sorted, for JSON summaries."""
        nested: dict[str, dict[str, int]] = {}
        for (kind, reason), count in sorted(self._counts.items()):
            nested.setdefault(kind, {})[reason] = count
        return nested


def first_of_each_id(
    parts: Iterable[Part], id_of: Callable[[Part], int], noun: str, where: str, drops: DropCounts,
    strict: bool,
) -> Iterator[Part]:
    """``parts`` in order, each id's first occurrence only.

    A repeat is bad input: it is counted as ``(f"{noun}s", f"duplicate_{noun}_id")`` in ``drops``, or
    raises when ``strict`` with a message that starts with ``where`` (the file or image).
    """
    seen: set[int] = set()
    for part in parts:
        part_id = id_of(part)
        if part_id in seen:
            drops.skip(f"{noun}s", f"duplicate_{noun}_id", f"{where}: {noun} id {part_id} appears twice", strict)
            continue
        seen.add(part_id)
        yield part
