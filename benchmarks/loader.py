"""Training-batch throughput: our HDF5 feature file against per-sample files read the official way.

Both loaders serve the same random data, written once in the official per-image layout
(``region_36_final/<id>.npy`` pickled dicts, ``visual_embedding_clip_vit_base16/<id>.npy``,
``caption_embedding_clip_vit_base16/train/<scene index>.npy``) and once packed into one HDF5 file by
``pack_split`` with the precomputed-VG encoders (so packing reads exactly those files).

- ``per-sample``: a map-style dataset opening one region pickle, one global ``.npy`` and one caption
  ``.npy`` per sample, drawing T captions in random order, and a collate function that copies items
  into zero tensors one sample and one caption at a time, as the official ``data.py`` does. Region
  pickles go through our restricted unpickler (the same I/O per sample as ``pickle.load``).
- ``hdf5 (disk)`` / ``hdf5 (memory)``: ``FeatureDataset`` with ``TrainingBatchSampler``, one dataset
  call per batch, reading from the file or from the split loaded whole.

Every loader runs with each worker count given. The first epoch of each warms the page cache and
starts the workers; the following ones are timed.

    .venv/bin/python benchmarks/loader.py                    # 2,000 scenes, R 36, Dv 2048, Dq = Dg = 512
    .venv/bin/python benchmarks/loader.py --scenes 500 --workers 0 4 --json loader.json
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vscn.data.datadir import CLIP_CAPTION_DIR, CLIP_IMAGE_DIR, REGION_FEATURE_DIR  # noqa: E402
from vscn.data.encoders.precomputed import PrecomputedCaptionEncoder, PrecomputedImageEncoder, image_file  # noqa: E402
from vscn.data.features import FeatureDataset, TrainingBatchSampler, batch_loader, pack_split  # noqa: E402
from vscn.data.records import BOX_COORDS, Region, Scene  # noqa: E402
from vscn.data.safe_pickle import REGION_BOXES, REGION_FEATS, load_region_pickle  # noqa: E402
from vscn.io import atomic_write_text  # noqa: E402

REGION_DIR, GLOBAL_DIR, CAPTION_DIR = REGION_FEATURE_DIR, CLIP_IMAGE_DIR, CLIP_CAPTION_DIR
SPLIT = "train"
PY2_PROTOCOL = 2  # Drill-down's region files were pickled by Python 2
IMAGE_SIDE = 500.0  # synthetic image size in pixels, for the boxes
SPEEDUP_TARGET = 10.0
PER_SAMPLE, HDF5_DISK, HDF5_MEMORY = "per-sample files", "hdf5 (disk)", "hdf5 (memory)"
LOADERS = (PER_SAMPLE, HDF5_DISK, HDF5_MEMORY)


def make_data(root: Path, args: argparse.Namespace) -> list[Scene]:
    """Random features in the official per-image layout; returns the scenes they belong to."""
    generator = np.random.default_rng(args.seed)
    for folder in (REGION_DIR, GLOBAL_DIR, f"{CAPTION_DIR}/{SPLIT}"):
        (root / folder).mkdir(parents=True)
    scenes = []
    for index in range(args.scenes):
        image_id = index + 1
        count = int(generator.integers(args.min_captions, args.max_captions + 1))
        corners = np.sort(generator.uniform(0, IMAGE_SIDE, (args.regions, 2, 2)), axis=1)  # (R, 2, 2)
        region = {
            REGION_BOXES: corners.transpose(0, 2, 1).reshape(args.regions, BOX_COORDS).astype(np.float32),
            REGION_FEATS: generator.standard_normal((args.regions, args.region_dim), dtype=np.float32),
        }
        with image_file(root / REGION_DIR, image_id).open("wb") as stream:
            pickle.dump(region, stream, protocol=PY2_PROTOCOL)
        np.save(image_file(root / GLOBAL_DIR, image_id), generator.standard_normal(args.global_dim, dtype=np.float32))
        np.save(root / CAPTION_DIR / SPLIT / f"{index}.npy", generator.standard_normal((count, args.query_dim), dtype=np.float32))
        regions = tuple(Region(j, (0.0, 0.0, 1.0, 1.0), f"caption {j} of image {image_id}") for j in range(count))
        scenes.append(Scene(image_id, int(IMAGE_SIDE), int(IMAGE_SIDE), regions=regions))
    return scenes


class PerSampleFiles(Dataset):
    """One scene per item, read from its three files the way the official ``region_loader`` does."""

    def __init__(self, root: Path, scenes: list[Scene], max_turns: int, seed: int) -> None:
        self.root, self.scenes, self.max_turns, self.seed = root, scenes, max_turns, seed

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, int]:
        image_id = self.scenes[index].image_id
        region = load_region_pickle(image_file(self.root / REGION_DIR, image_id))
        regions = torch.from_numpy(region[REGION_FEATS]).float()
        global_feature = torch.from_numpy(np.load(image_file(self.root / GLOBAL_DIR, image_id))).float()
        captions = torch.from_numpy(np.load(self.root / CAPTION_DIR / SPLIT / f"{index}.npy")).float()
        order = np.random.default_rng((self.seed, index)).permutation(len(captions))[: self.max_turns]
        return regions, [captions[k] for k in order], global_feature, index


def copy_collate(items: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[int, ...]]:
    """Zero tensors filled one sample (and one caption) at a time, as the official collate does."""
    regions, captions, global_features, indices = zip(*items)
    batch_regions = torch.zeros(len(items), *regions[0].shape)
    batch_captions = torch.zeros(len(items), len(captions[0]), captions[0][0].shape[-1])
    batch_global = torch.zeros(len(items), global_features[0].shape[-1])
    for i in range(len(items)):
        batch_regions[i, : len(regions[i])] = regions[i]
        batch_global[i] = global_features[i]
        for j, caption in enumerate(captions[i]):
            batch_captions[i, j] = caption
    return batch_regions, batch_captions, batch_global, indices


def throughput(loader: DataLoader, epochs: int) -> float:
    """Samples per second over ``epochs`` timed epochs, after one untimed warm-up epoch."""
    for _ in loader:
        pass
    samples, start = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            samples += len(batch[0])
    return samples / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=2000)
    parser.add_argument("--regions", type=int, default=36)
    parser.add_argument("--region-dim", type=int, default=2048)
    parser.add_argument("--global-dim", type=int, default=512)
    parser.add_argument("--query-dim", type=int, default=512)
    parser.add_argument("--min-captions", type=int, default=12)
    parser.add_argument("--max-captions", type=int, default=50)
    parser.add_argument("--max-turns", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader worker counts to try")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per loader")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vscn-loader-") as directory:
        root = Path(directory)
        started = time.perf_counter()
        scenes = make_data(root, args)
        written = time.perf_counter()
        path = pack_split(
            scenes, PrecomputedImageEncoder(root / REGION_DIR, root / GLOBAL_DIR),
            PrecomputedCaptionEncoder(root / CAPTION_DIR / SPLIT), root / f"{SPLIT}.h5", args.regions,
            batch_size=args.batch_size,
        )
        packed = time.perf_counter()
        print(f"wrote {args.scenes} scenes in the official layout in {written - started:.1f} s, "
              f"packed them into {path.stat().st_size / 2**20:.0f} MiB of HDF5 in {packed - written:.1f} s")

        results: dict[str, dict[int, float]] = {label: {} for label in LOADERS}
        for workers in args.workers:
            official = DataLoader(
                PerSampleFiles(root, scenes, args.max_turns, args.seed), batch_size=args.batch_size, shuffle=True,
                num_workers=workers, collate_fn=copy_collate, generator=torch.Generator().manual_seed(args.seed),
                persistent_workers=workers > 0,
            )
            results[PER_SAMPLE][workers] = throughput(official, args.epochs)
            for label, in_memory in ((HDF5_DISK, False), (HDF5_MEMORY, True)):
                dataset = FeatureDataset(path, args.max_turns, in_memory=in_memory)
                sampler = TrainingBatchSampler(len(dataset), args.batch_size, seed=args.seed)
                results[label][workers] = throughput(batch_loader(dataset, sampler, num_workers=workers), args.epochs)
    report(results, args)


def report(results: dict[str, dict[int, float]], args: argparse.Namespace) -> None:
    print(f"\nsamples/s (speed-up over per-sample files with the same workers), batch {args.batch_size}")
    print(f"{'loader':<18}" + "".join(f"{f'{w} workers':>22}" for w in args.workers))
    for label, rates in results.items():
        cells = [f"{rates[w]:>12.0f} ({rates[w] / results[PER_SAMPLE][w]:>5.1f}x)" for w in args.workers]
        print(f"{label:<18}" + "".join(f"{cell:>22}" for cell in cells))
    best_baseline = max(results[PER_SAMPLE].values())
    for label in (HDF5_DISK, HDF5_MEMORY):
        best = max(results[label].values()) / best_baseline
        print(f"best {label} over best per-sample: {best:.1f}x (target {SPEEDUP_TARGET:.0f}x)")
    if args.json:
        content = {"args": {k: str(v) for k, v in vars(args).items()}, "samples_per_s": results}
        atomic_write_text(args.json, json.dumps(content, indent=2))


if __name__ == "__main__":
    main()
