"""Feature encoders, chosen by name.

| kind | name | class | features |
|---|---|---|---|
| image | ``efficientnet-lite0`` | :class:`~vscn.data.encoders.image.EfficientNetLiteEncoder` | demo: RoI-pooled ImageNet CNN maps |
| image | ``vg-precomputed`` | :class:`~vscn.data.encoders.precomputed.PrecomputedImageEncoder` | Drill-down regions + authors' CLIP image |
| image | ``open-clip`` | :class:`~vscn.data.encoders.clip.OpenClipImageEncoder` | optional: CLIP on raw images |
| text | ``all-minilm-l6-v2`` | :class:`~vscn.data.encoders.text.MiniLMTextEncoder` | demo: sentence embeddings |
| text | ``vg-precomputed`` | :class:`~vscn.data.encoders.precomputed.PrecomputedCaptionEncoder` | authors' CLIP captions |
| text | ``open-clip`` | :class:`~vscn.data.encoders.clip.OpenClipTextEncoder` | optional: CLIP on captions |

Modules are imported only when an encoder is built, so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from vscn.data.encoders.base import (
    EncoderUnavailableError,
    ImageEncoder,
    ImageFeatures,
    SentenceEncoder,
    TextEncoder,
)

IMAGE_ENCODERS: dict[str, str] = {
    "efficientnet-lite0": "vscn.data.encoders.image:EfficientNetLiteEncoder",
    "vg-precomputed": "vscn.data.encoders.precomputed:PrecomputedImageEncoder",
    "open-clip": "vscn.data.encoders.clip:OpenClipImageEncoder",
}
TEXT_ENCODERS: dict[str, str] = {
    "all-minilm-l6-v2": "vscn.data.encoders.text:MiniLMTextEncoder",
    "vg-precomputed": "vscn.data.encoders.precomputed:PrecomputedCaptionEncoder",
    "open-clip": "vscn.data.encoders.clip:OpenClipTextEncoder",
}


def _build(kind: str, registry: dict[str, str], name: str, args: dict[str, Any]) -> Any:
    if name not in registry:
        raise ValueError(f"unknown {kind} encoder {name!r}; known: {', '.join(sorted(registry))}")
    module_name, class_name = registry[name].split(":")
    encoder_class = getattr(importlib.import_module(module_name), class_name)
    signature = inspect.signature(encoder_class)
    try:
        signature.bind(**args)
    except TypeError as error:
        accepted = ", ".join(signature.parameters)
        raise ValueError(f"{kind} encoder {name!r}: {error}; it accepts: {accepted}") from None
    return encoder_class(**args)


def build_image_encoder(name: str, **args: Any) -> ImageEncoder:
    """The image encoder registered as ``name``, constructed with keyword ``args``."""
    return _build("image", IMAGE_ENCODERS, name, args)


def build_text_encoder(name: str, **args: Any) -> TextEncoder:
    """The text encoder registered as ``name``, constructed with keyword ``args``."""
    return _build("text", TEXT_ENCODERS, name, args)


__all__ = [
    "IMAGE_ENCODERS", "TEXT_ENCODERS", "EncoderUnavailableError", "ImageEncoder", "ImageFeatures",
    "SentenceEncoder", "TextEncoder", "build_image_encoder", "build_text_encoder",
]
