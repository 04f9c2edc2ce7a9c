"""What every feature encoder offers the feature packer.

An image encoder turns a batch of scenes into region features, their boxes and one global feature per
image; a text encoder turns a batch of scenes into one feature per caption (region-id order). Both
work on scenes rather than bare pixels or strings because some sources are precomputed per image or
per scene index (the authors' CLIP caption files are named by the scene's position in its split).
``encode`` walks a split in batches under a tqdm bar; subclasses implement ``encode_batch``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from tqdm import tqdm

from vscn.data.records import Scene


class EncoderUnavailableError(RuntimeError):
    """An encoder's optional dependency cannot be imported; the message says what to install."""


@dataclass(frozen=True)
class ImageFeatures:
    """Features of a batch of B scenes (float32 numpy arrays)."""

    regions: np.ndarray  # (B, R, Dv)
    boxes: np.ndarray  # (B, R, 4) pixel corners in the scene's own image coordinates
    global_features: np.ndarray  # (B, Dg)


def _batches(scenes: Sequence[Scene], batch_size: int, description: str) -> Iterator[tuple[int, Sequence[Scene]]]:
    """``(index of the first scene, scenes)`` per batch, advancing a progress bar by scenes."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    with tqdm(total=len(scenes), desc=description, unit="scene", disable=None) as progress:
        for start in range(0, len(scenes), batch_size):
            batch = scenes[start : start + batch_size]
            yield start, batch
            progress.update(len(batch))


class ImageEncoder(ABC):
    """Region and global image features for scenes."""

    name: ClassVar[str]  # the registry name, recorded in feature files

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings  # JSON-serialisable constructor arguments, recorded for provenance

    @abstractmethod
    def encode_batch(self, scenes: Sequence[Scene], first_index: int, num_regions: int) -> ImageFeatures:
        """Features of ``scenes``; ``first_index`` is the split position of ``scenes[0]``."""

    def encode(self, scenes: Sequence[Scene], num_regions: int, batch_size: int) -> Iterator[ImageFeatures]:
        """``encode_batch`` over consecutive batches of ``scenes``, in order."""
        for start, batch in _batches(scenes, batch_size, f"image features ({self.name})"):
            yield self.encode_batch(batch, start, num_regions)


class TextEncoder(ABC):
    """One feature per caption of each scene."""

    name: ClassVar[str]

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings

    @abstractmethod
    def encode_batch(self, scenes: Sequence[Scene], first_index: int) -> list[np.ndarray]:
        """Per scene a float32 ``(len(scene.regions), Dq)`` array, rows in the order of ``scene.regions``."""

    def encode(self, scenes: Sequence[Scene], batch_size: int) -> Iterator[list[np.ndarray]]:
        for start, batch in _batches(scenes, batch_size, f"caption features ({self.name})"):
            yield self.encode_batch(batch, start)


class SentenceEncoder(TextEncoder):
    """A text encoder that embeds free text, so it also serves queries typed by a user."""

    @abstractmethod
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Float32 ``(len(texts), Dq)`` features."""

    def encode_batch(self, scenes: Sequence[Scene], first_index: int) -> list[np.ndarray]:
        captions = [region.caption for scene in scenes for region in scene.regions]
        features = self.encode_texts(captions)  # (M, Dq) for the whole batch
        ends = np.cumsum([len(scene.regions) for scene in scenes])
        return np.split(features, ends[:-1])
