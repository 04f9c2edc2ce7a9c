"""Qualitative examples: a few test scenes, their queries, and the strict protocol's top images.

Scenes are chosen deterministically (evenly spaced over the test split's rows), so the same
results give the same page. Images are embedded as small base64 thumbnails; a missing or
unreadable image file gives a placeholder instead of an error.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from vscn.report.inputs import RunData

logger = logging.getLogger(__name__)

THUMBNAIL_SIZE = (160, 120)  # pixels, at most; the aspect ratio is kept
EXAMPLE_TURNS = (1, 3, 10)  # a turn beyond the last evaluated one shows the last instead
TOP_SHOWN = 5  # retrieved images shown per turn
JPEG_QUALITY = 80
LOSSLESS_SUFFIXES = (".png", ".gif", ".bmp")  # drawings stay PNG; photographs become JPEG


@dataclass(frozen=True)
class Thumbnail:
    image_id: int
    path: str  # as recorded in the scene table ("" when no file was found)
    data_uri: str | None  # None: no readable image, show a placeholder
    problem: str = ""  # why there is no image, for the placeholder


@dataclass(frozen=True)
class Hit:
    rank: int
    score: float
    thumbnail: Thumbnail
    is_target: bool


@dataclass(frozen=True)
class ExampleTurn:
    turn: int
    hits: tuple[Hit, ...]


@dataclass(frozen=True)
class Example:
    target: Thumbnail
    queries: tuple[str, ...]  # the captions of the last shown turn, in turn order
    turns: tuple[ExampleTurn, ...]


def example_rows(num_scenes: int, count: int) -> np.ndarray:
    """``count`` distinct rows spread evenly over ``num_scenes`` (all of them when fewer)."""
    count = min(count, num_scenes)
    return np.unique(np.linspace(0, num_scenes - 1, count).round().astype(np.int64))


def shown_turns(available: Sequence[int], wanted: Sequence[int] = EXAMPLE_TURNS) -> list[int]:
    """Each wanted turn, or the last available one for a wanted turn beyond it, without repeats."""
    last = max(available)
    chosen = [turn if turn in available else last for turn in wanted if turn in available or turn > last]
    return sorted(set(chosen))


def thumbnail_uri(path: Path) -> str:
    """A ``data:`` URI of a thumbnail of the image at ``path``."""
    with Image.open(path) as image:
        image = image.convert("RGB")
    image.thumbnail(THUMBNAIL_SIZE)
    buffer = io.BytesIO()
    if path.suffix.lower() in LOSSLESS_SUFFIXES:
        image.save(buffer, format="PNG", optimize=True)
        mime = "image/png"
    else:
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
        mime = "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


class ThumbnailCache:
    """Thumbnails by image id, each file read once per report."""

    def __init__(self, image_paths: dict[int, str]) -> None:
        self.image_paths = image_paths
        self._cache: dict[int, Thumbnail] = {}

    def get(self, image_id: int) -> Thumbnail:
        if image_id not in self._cache:
            self._cache[image_id] = self._load(image_id)
        return self._cache[image_id]

    def _load(self, image_id: int) -> Thumbnail:
        path = self.image_paths.get(image_id, "")
        if not path:
            return Thumbnail(image_id, path, None, "no image file recorded")
        if not Path(path).is_file():
            logger.warning("%s: image file missing; the report shows a placeholder", path)
            return Thumbnail(image_id, path, None, "image file missing")
        try:
            return Thumbnail(image_id, path, thumbnail_uri(Path(path)))
        except (OSError, UnidentifiedImageError) as error:
            logger.warning("%s: cannot read the image (%s); the report shows a placeholder", path, error)
            return Thumbnail(image_id, path, None, "image not readable")


def build_examples(run: RunData, count: int) -> list[Example]:
    """``count`` examples from the run's strict rankings; empty when the run has none."""
    rankings = run.rankings
    if rankings is None or count < 1:
        return []
    thumbnails = ThumbnailCache(dict(zip(run.scenes["image_id"].astype(int), run.scenes["image_path"].astype(str))))
    available = [int(t) for t in rankings.turn]
    turns = shown_turns(available)
    captions = run.regions.sort_values(["image_id", "region_id"]).groupby("image_id")["caption"]
    examples = []
    for row in example_rows(len(rankings.image_id), count):
        target_id = int(rankings.image_id[row])
        queries = captions.get_group(target_id).tolist()[:max(turns)] if target_id in captions.groups else []
        example_turns = []
        for turn in turns:
            k = available.index(turn)
            hits = tuple(Hit(rank + 1, float(rankings.scores[k, row, rank]),
                             thumbnails.get(int(rankings.image_id[gallery_row])), int(gallery_row) == int(row))
                         for rank, gallery_row in enumerate(rankings.top[k, row, :TOP_SHOWN]))
            example_turns.append(ExampleTurn(turn, hits))
        examples.append(Example(thumbnails.get(target_id), tuple(queries), tuple(example_turns)))
    return examples
