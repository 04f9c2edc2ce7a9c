"""Object, attribute and predicate vocabularies in Drill-down's text format.

Each line of a vocabulary file is one class; a class may have several comma-separated aliases
(``bicycle,bike``). Aliases are lower-cased and stripped. Class indices start at 1 because Drill-down
reserves 0 for background / no attribute / no relation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from vscn.data.errors import AnnotationError

FIRST_CLASS_INDEX = 1  # 0 is Drill-down's background / no-attribute / no-relation class


def alias_index(lines: Iterable[str], source: str) -> dict[str, int]:
    """Map every alias in ``lines`` (one class per line) to its class index.

    ``source`` names the file in error messages. A blank line or an alias shared by two classes is an
    error: either would silently shift or merge classes.
    """
    index: dict[str, int] = {}
    for class_index, line in enumerate(lines, start=FIRST_CLASS_INDEX):
        aliases = [alias.lower().strip() for alias in line.split(",")]
        if not all(aliases):
            raise AnnotationError(f"{source}: line {class_index} has an empty class name: {line!r}")
        for alias in aliases:
            if index.get(alias, class_index) != class_index:
                raise AnnotationError(
                    f"{source}: alias {alias!r} on line {class_index} already names class {index[alias]}"
                )
            index[alias] = class_index
    return index


def _read_alias_file(path: Path) -> dict[str, int]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise AnnotationError(f"{path}: cannot read vocabulary: {error}") from error
    return alias_index(lines, str(path))


@dataclass(frozen=True)
class Vocabulary:
    """Alias -> class index maps for objects, attributes and relation predicates."""

    objects: Mapping[str, int]
    attributes: Mapping[str, int]
    predicates: Mapping[str, int]

    @classmethod
    def from_classes(
        cls, objects: Iterable[str], attributes: Iterable[str], predicates: Iterable[str]
    ) -> Vocabulary:
        """Build from in-memory class lines (each may hold comma-separated aliases)."""
        return cls(
            objects=alias_index(objects, "object classes"),
            attributes=alias_index(attributes, "attribute classes"),
            predicates=alias_index(predicates, "predicate classes"),
        )


def load_vocabulary(objects: Path, attributes: Path, predicates: Path) -> Vocabulary:
    """Read Drill-down's three vocabulary files (e.g. ``vg_objects_vocab_1600.txt``)."""
    return Vocabulary(
        objects=_read_alias_file(Path(objects)),
        attributes=_read_alias_file(Path(attributes)),
        predicates=_read_alias_file(Path(predicates)),
    )
