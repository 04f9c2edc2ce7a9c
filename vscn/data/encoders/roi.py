"""Region boxes of a scene and RoI average pooling of a CNN feature map over them.

Boxes are pixel corners ``(x1, y1, x2, y2)`` with inclusive ends, as Drill-down and the scene records
store them: the box covers pixels ``x1..x2`` and ``y1..y2``. A feature map of stride ``s`` has cell
``(i, j)`` standing for input pixels ``[j*s, (j+1)*s) x [i*s, (i+1)*s)``; a box pools every cell that
holds at least one of its pixels, so even a box smaller than a cell gets one cell.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from vscn.data.records import BOX_COORDS, Box, Scene

FIRST_GRID = 2  # the coarsest filler grid after the whole image is 2 x 2


def _union(a: Box, b: Box) -> Box:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _grid_boxes(width: int, height: int) -> Iterator[Box]:
    """The whole image, then the cells of ever finer g x g grids (g = 2, 3, ...), row by row."""
    yield (0.0, 0.0, float(width - 1), float(height - 1))
    cells = FIRST_GRID
    while True:
        for row in range(cells):
            for col in range(cells):
                yield (
                    col * width / cells,
                    row * height / cells,
                    (col + 1) * width / cells - 1,
                    (row + 1) * height / cells - 1,
                )
        cells += 1


def scene_region_boxes(scene: Scene, num_regions: int) -> np.ndarray:
    """``num_regions`` boxes for one scene, float32 ``(num_regions, 4)``.

    Order: object boxes (annotation order), union boxes of relations (annotation order), then the
    whole image and coarse grid cells until ``num_regions`` boxes are there. A box equal to an
    earlier one is skipped; when objects and relations alone exceed ``num_regions`` the list is cut.
    """
    if num_regions < 1:
        raise ValueError(f"num_regions must be at least 1, got {num_regions}")
    object_boxes = {obj.object_id: obj.box for obj in scene.objects}
    relation_boxes = (
        _union(object_boxes[rel.subject_id], object_boxes[rel.object_id])
        for rel in scene.relations
        if rel.subject_id in object_boxes and rel.object_id in object_boxes
    )
    chosen: dict[Box, None] = {}  # insertion-ordered set
    for source in (object_boxes.values(), relation_boxes, _grid_boxes(scene.width, scene.height)):
        for box in source:
            if len(chosen) == num_regions:
                break
            chosen.setdefault(tuple(float(v) for v in box), None)
    return np.asarray(list(chosen), dtype=np.float32).reshape(num_regions, BOX_COORDS)


def box_cells(boxes: torch.Tensor, stride: float, map_height: int, map_width: int) -> torch.Tensor:
    """Feature-map cell ranges ``(col0, row0, col1, row1)`` (ends exclusive, long) of pixel ``boxes``.

    ``boxes`` (..., 4) are in the pixels of the network input. Every range holds at least one cell
    and lies inside the map, so boxes reaching past the input's edge pool the border cells.
    """
    first = torch.floor(boxes[..., :2] / stride).long()  # (..., 2) col0, row0
    last = torch.floor(boxes[..., 2:] / stride).long() + 1  # (..., 2) col1, row1
    limits = torch.tensor([map_width, map_height], device=boxes.device)
    first = torch.minimum(first.clamp(min=0), limits - 1)
    last = torch.minimum(torch.maximum(last, first + 1), limits)
    return torch.cat([first, last], dim=-1)  # (..., 4)


def roi_average_pool(feature_map: torch.Tensor, boxes: torch.Tensor, stride: float) -> torch.Tensor:
    """Mean of ``feature_map`` over the cells each box covers, for all boxes of all images at once.

    ``feature_map`` (B, C, H, W); ``boxes`` (B, K, 4) input pixels with inclusive corners; returns
    (B, K, C). Uses an integral image, so the cost does not grow with the box area.
    """
    batch, channels, height, width = feature_map.shape
    cells = box_cells(boxes, stride, height, width)  # (B, K, 4)
    col0, row0, col1, row1 = cells.unbind(-1)  # each (B, K)
    integral = F.pad(feature_map.cumsum(-1).cumsum(-2), (1, 0, 1, 0))  # (B, C, H+1, W+1), zero first row/col
    flat = integral.flatten(2)  # (B, C, (H+1)(W+1))

    def corner(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        index = (rows * (width + 1) + cols).unsqueeze(1).expand(batch, channels, -1)  # (B, C, K)
        return flat.gather(2, index)  # (B, C, K)

    sums = corner(row1, col1) - corner(row0, col1) - corner(row1, col0) + corner(row0, col0)  # (B, C, K)
    areas = ((row1 - row0) * (col1 - col0)).unsqueeze(1).to(feature_map.dtype)  # (B, 1, K)
    return (sums / areas).transpose(1, 2)  # (B, K, C)

