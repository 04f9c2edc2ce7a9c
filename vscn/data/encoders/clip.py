"""Optional CLIP encoders (``open_clip_torch``) for raw Visual Genome images and captions.

``open_clip`` is not a dependency: its package imports torchvision at import time, and torchvision
has no build matching the pinned CPU torch here. The encoders import it when constructed and raise
:class:`EncoderUnavailableError` saying so when that fails. Weights come from a local file
(``weights``), never from the network; ``weights=None`` builds a randomly initialised model.

Images are resized to the model's input size as a whole (no centre crop, so every region box stays
inside) and normalised with CLIP's mean and std. The global feature is the L2-normalised image
embedding; region features RoI-average-pool the patch tokens, projected into the joint space, over the
scene's region boxes (the patch grid is a feature map of stride = patch size).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from vscn.data.encoders.base import EncoderUnavailableError, ImageEncoder, ImageFeatures, SentenceEncoder
from vscn.data.encoders.image import image_path_of, load_image, scale_boxes
from vscn.data.encoders.roi import roi_average_pool, scene_region_boxes
from vscn.data.records import Scene

logger = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_CLIP_MODEL = "ViT-B-16"


def import_open_clip() -> ModuleType:
    try:
        import open_clip
    except ImportError as error:
        raise EncoderUnavailableError(
            f"the CLIP encoders need the optional package open_clip_torch, which could not be imported "
            f"({error}). open_clip imports torchvision, which must match the installed torch; install both "
            "in an environment where they match (pip install open_clip_torch torchvision), or use the "
            "precomputed VG features (encoder 'vg-precomputed')"
        ) from error
    return open_clip


def load_clip_model(model_name: str, weights: Path | None, device: torch.device) -> tuple[ModuleType, Any]:
    """``(open_clip module, model in eval mode)``; ``weights=None`` gives random initialisation."""
    open_clip = import_open_clip()
    if weights is None:
        logger.warning("CLIP model %s is randomly initialised: no weights file was given", model_name)
    elif not weights.is_file():
        raise FileNotFoundError(f"{weights}: CLIP weights file not found")
    model = open_clip.create_model(model_name, pretrained=None if weights is None else str(weights), device=device)
    return open_clip, model.eval()


class _ClipEncoder:
    """What both CLIP encoders share: recorded settings, the device and the loaded model."""

    settings: dict[str, Any]

    def _load(self, weights: Path | str | None, model_name: str, device: str | torch.device) -> ModuleType:
        """Set ``settings``, ``device`` and ``_model``; return the open_clip module."""
        weights = Path(weights) if weights is not None else None
        self.settings = {"model_name": model_name, "weights": None if weights is None else weights.name}
        self.device = torch.device(device)
        open_clip, self._model = load_clip_model(model_name, weights, self.device)
        return open_clip


class OpenClipImageEncoder(_ClipEncoder, ImageEncoder):
    """CLIP image embeddings (global) and RoI-pooled projected patch tokens (regions)."""

    name = "open-clip"

    def __init__(
        self, weights: Path | str | None, model_name: str = DEFAULT_CLIP_MODEL, device: str | torch.device = "cpu"
    ) -> None:
        self._load(weights, model_name, device)
        visual = self._model.visual
        visual.output_tokens = True  # forward returns (pooled embedding, patch tokens)
        height, width = visual.image_size
        self.input_size = (width, height)
        self.stride = visual.patch_size[0]
        self.grid = visual.grid_size  # (rows, cols) of patches

    def encode_batch(self, scenes: Sequence[Scene], first_index: int, num_regions: int) -> ImageFeatures:
        boxes = np.stack([scene_region_boxes(scene, num_regions) for scene in scenes])  # (B, R, 4)
        input_boxes = np.stack([scale_boxes(b, s, self.input_size) for b, s in zip(boxes, scenes)])  # (B, R, 4)
        pixels = np.stack([
            load_image(image_path_of(s), self.input_size, CLIP_MEAN, CLIP_STD, Image.Resampling.BICUBIC) for s in scenes
        ])  # (B, 3, H, W)
        with torch.inference_mode():
            pooled, tokens = self._model.visual(torch.from_numpy(pixels).to(self.device))  # (B, E), (B, HW, width)
            projected = tokens @ self._model.visual.proj  # (B, HW, E)
            grid_map = projected.transpose(1, 2).reshape(len(scenes), -1, *self.grid)  # (B, E, rows, cols)
            regions = roi_average_pool(grid_map, torch.from_numpy(input_boxes).to(self.device), self.stride)  # (B, R, E)
        return ImageFeatures(
            regions=regions.float().cpu().numpy(),
            boxes=boxes,
            global_features=F.normalize(pooled, dim=-1).float().cpu().numpy(),
        )


class OpenClipTextEncoder(_ClipEncoder, SentenceEncoder):
    """L2-normalised CLIP text embeddings."""

    name = "open-clip"

    def __init__(
        self, weights: Path | str | None, model_name: str = DEFAULT_CLIP_MODEL, device: str | torch.device = "cpu"
    ) -> None:
        open_clip = self._load(weights, model_name, device)
        self._tokenizer = open_clip.get_tokenizer(model_name)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        with torch.inference_mode():
            tokens = self._tokenizer(list(texts)).to(self.device)  # (M, context length)
            features = self._model.encode_text(tokens)  # (M, E)
            return F.normalize(features, dim=-1).float().cpu().numpy()
