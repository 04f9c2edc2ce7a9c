"""Writing the demo dataset to disk in Drill-down's per-image layout.

Layout under ``root``::

    images/<image_id>.png                     the rendered scene
    sg_xmls/<image_id>.xml, rg_jsons/<image_id>.json   annotations (see vscn.data.vg)
    vocab/objects.txt, attributes.txt, relations.txt  one class per line, aliases comma-separated
    splits/train.txt, val.txt, test.txt, raw_test.txt  image ids, one per line, sorted
    world.json                                  generation parameters, for provenance

Everything is written into a temporary folder beside ``root`` and renamed to ``root`` when complete,
so ``root`` either holds a whole dataset or is left as it was.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from vscn.data.demo.dataset import SPLITS, DemoScene, demo_scenes, split_ids
from vscn.data.demo.render import png_bytes, render
from vscn.data.demo.world import DemoWorld, Term
from vscn.data.vg import write_scene
from vscn.io import publish_folder

logger = logging.getLogger(__name__)

IMAGE_DIR = "images"
VOCAB_DIR = "vocab"
SPLIT_DIR = "splits"
WORLD_FILE = "world.json"
VOCAB_FILES = {"objects": "objects.txt", "attributes": "attributes.txt", "relations": "relations.txt"}
RAW_TEST_FILE = "raw_test.txt"  # Drill-down's list of candidate test ids; here exactly the test split
FORMAT_VERSION = 1  # bumped whenever the written layout or the generator's output changes


def image_path(root: Path, image_id: int) -> Path:
    return Path(root) / IMAGE_DIR / f"{image_id}.png"


def _write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _write_vocab(folder: Path, world: DemoWorld) -> None:
    terms: dict[str, tuple[Term, ...]] = {
        "objects": world.shapes,
        "attributes": world.attribute_terms,
        "relations": world.predicates,
    }
    for kind, file_name in VOCAB_FILES.items():
        _write_lines(folder / VOCAB_DIR / file_name, [term.vocab_line() for term in terms[kind]])


def _write_splits(folder: Path, ids: dict[str, list[int]]) -> None:
    for split in SPLITS:
        _write_lines(folder / SPLIT_DIR / f"{split}.txt", [str(i) for i in sorted(ids[split])])
    _write_lines(folder / SPLIT_DIR / RAW_TEST_FILE, [str(i) for i in sorted(ids["test"])])


def _world_document(
    seed: int, counts: dict[str, int], world: DemoWorld, near_duplicates: list[DemoScene]
) -> dict[str, object]:
    return {
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "counts": counts,
        "world": world.to_json(),
        "near_duplicates": [
            {"image_id": d.scene.image_id, "source_id": d.source_id, "change": d.change} for d in near_duplicates
        ],
    }


def generate_demo(
    root: Path,
    n_train: int = 1200,
    n_val: int = 200,
    n_test: int = 300,
    seed: int = 0,
    world: DemoWorld = DemoWorld(),
    overwrite: bool = False,
) -> None:
    """Generate, render and write the demo dataset under ``root`` (see the module docstring).

    The same arguments always give byte-identical files. An existing ``root`` is an error unless
    ``overwrite``, in which case it is replaced once the new dataset is complete.
    """
    root = Path(root)
    if root.exists() and not overwrite:
        raise FileExistsError(f"{root}: already exists; pass overwrite=True to replace it")
    ids = split_ids(n_train, n_val, n_test)
    counts = {split: len(members) for split, members in ids.items()}
    root.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.tmp-"))
    try:
        (building / IMAGE_DIR).mkdir()
        near_duplicates = []
        total = sum(counts.values())
        for item in tqdm(demo_scenes(n_train, n_val, n_test, seed, world), total=total, desc="demo scenes", disable=None):
            scene = replace(item.scene, image_path=str(image_path(root, item.scene.image_id)))
            image_path(building, scene.image_id).write_bytes(png_bytes(render(item.spec, world)))
            write_scene(scene, building)
            if item.source_id is not None:
                near_duplicates.append(item)
        _write_vocab(building, world)
        _write_splits(building, ids)
        document = _world_document(seed, counts, world, near_duplicates)
        (building / WORLD_FILE).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        publish_folder(building, root)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    logger.info("wrote %d demo scenes %s to %s, %d of them near-duplicates", total, counts, root, len(near_duplicates))
