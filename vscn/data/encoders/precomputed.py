"""Visual Genome features computed by others, read instead of encoded.

- Drill-down's bottom-up region features: ``region_36_final/<12-digit image id>.npy``, pickled dicts
  ``region_boxes (36, 4)``, ``region_feats (36, 2048)``, read with the restricted unpickler.
- The VSCN authors' CLIP ViT-B/16 image embeddings: ``visual_embedding_clip_vit_base16/<12-digit image
  id>.npy``, one ``(512,)`` array per image.
- The VSCN authors' CLIP ViT-B/16 caption embeddings:
  ``caption_embedding_clip_vit_base16/<split>/<scene index>.npy``, ``(n_captions, 512)`` per scene,
  rows in region-id order. The scene index is the scene's position in its split sorted by image id
  (the authors' ``data.py`` names the file by the dataset index of a list built that way), so these
  files only line up with a split passed in image-id order.
The ``.npy`` files are real NumPy arrays and are loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vscn.data.encoders.base import ImageEncoder, ImageFeatures, TextEncoder
from vscn.data.records import Scene
from vscn.data.safe_pickle import REGION_BOXES, REGION_FEATS, load_region_pickle

IMAGE_ID_DIGITS = 12  # Drill-down and the authors name per-image files by the zero-padded image id


def image_file(directory: Path, image_id: int) -> Path:
    return directory / f"{image_id:0{IMAGE_ID_DIGITS}d}.npy"


def load_array(path: Path, ndim: int) -> np.ndarray:
    """A float32 array of ``ndim`` dimensions from a ``.npy`` file; errors name the file."""
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: feature file not found") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable NumPy array file: {error}") from error
    if array.ndim != ndim or not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{path}: array of shape {array.shape} and dtype {array.dtype}; expected {ndim}-d floating point")
    return array.astype(np.float32, copy=False)


class PrecomputedImageEncoder(ImageEncoder):
    """Drill-down region features and boxes with the authors' CLIP image embedding as global feature."""

    name = "vg-precomputed"

    def __init__(self, region_dir: Path | str, global_dir: Path | str) -> None:
        self.region_dir, self.global_dir = Path(region_dir), Path(global_dir)
        super().__init__({"region_dir": self.region_dir.name, "global_dir": self.global_dir.name})
        for directory in (self.region_dir, self.global_dir):
            if not directory.is_dir():
                raise FileNotFoundError(f"{directory}: feature directory not found")

    def encode_batch(self, scenes: Sequence[Scene], first_index: int, num_regions: int) -> ImageFeatures:
        regions, boxes, global_features = [], [], []
        for scene in scenes:
            content = load_region_pickle(image_file(self.region_dir, scene.image_id), num_regions=num_regions)
            regions.append(content[REGION_FEATS].astype(np.float32, copy=False))  # (R, Dv)
            boxes.append(content[REGION_BOXES].astype(np.float32, copy=False))  # (R, 4)
            global_features.append(load_array(image_file(self.global_dir, scene.image_id), ndim=1))  # (Dg,)
        return ImageFeatures(np.stack(regions), np.stack(boxes), np.stack(global_features))


class PrecomputedCaptionEncoder(TextEncoder):
    """The authors' CLIP caption embeddings of one split (``caption_dir`` = ``.../<split>``)."""

    name = "vg-precomputed"

    def __init__(self, caption_dir: Path | str) -> None:
        self.caption_dir = Path(caption_dir)
        super().__init__({"caption_dir": f"{self.caption_dir.parent.name}/{self.caption_dir.name}"})
        if not self.caption_dir.is_dir():
            raise FileNotFoundError(f"{self.caption_dir}: caption feature directory not found")

    def encode_batch(self, scenes: Sequence[Scene], first_index: int) -> list[np.ndarray]:
        features = []
        for offset, scene in enumerate(scenes):
            path = self.caption_dir / f"{first_index + offset}.npy"
            array = load_array(path, ndim=2)  # (n_captions, Dq)
            if len(array) != len(scene.regions):
                raise ValueError(
                    f"{path}: {len(array)} caption features but image {scene.image_id} (scene index "
                    f"{first_index + offset}) has {len(scene.regions)} captions; the scene list and the "
                    "authors' files disagree"
                )
            features.append(array)
        return features
