"""The demo world: procedurally generated scenes of coloured shapes, in Visual Genome's layout.

Scenes hold 4 to 9 flat shapes (kind, colour, size, fill pattern) on a small canvas, spatial relations
read off their geometry, and region captions about objects, attributes and relations. Some scenes are
near-duplicates of others, so that retrieval needs several queries. ``generate_demo`` writes the whole
dataset; ``make_scene`` and ``demo_scenes`` give the records without touching the disk.
"""

from vscn.data.demo.dataset import DemoScene, demo_scenes, derive_near_duplicate, make_scene, scene_rng, split_ids
from vscn.data.demo.layout import SceneSpec, Shape
from vscn.data.demo.render import png_bytes, render
from vscn.data.demo.world import DemoWorld
from vscn.data.demo.write import generate_demo

__all__ = [
    "DemoScene", "DemoWorld", "SceneSpec", "Shape", "demo_scenes", "derive_near_duplicate", "generate_demo",
    "make_scene", "png_bytes", "render", "scene_rng", "split_ids",
]
