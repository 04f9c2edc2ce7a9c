"""One HDF5 feature file per split: writing it, reading it, and serving training/evaluation batches.

Layout (N scenes in image-id order, M captions, R regions per image)::

    image_id       (N,)        int64, strictly increasing
    regions        (N, R, Dv)  float32 or float16, one chunk per scene
    boxes          (N, R, 4)   float32 pixel corners (x1, y1, x2, y2) of the regions
    global         (N, Dg)     float32
    query_offsets  (N + 1,)    int64: scene i owns caption rows query_offsets[i]:query_offsets[i+1]
    queries        (M, Dq)     float32, every caption of every scene in region-id order
    captions       (M,)        UTF-8 strings
    region_ids     (M,)        int64

Attributes: ``schema_version``, encoder names and settings (JSON), the sizes, and ``source_checksums``
(JSON: file name -> sha256 of the inputs the features came from). Numeric datasets carry Fletcher-32
checksums, so a damaged chunk raises on reading instead of returning garbage. A file is written under a
temporary name beside its target and renamed when complete; on any error the temporary file is removed.

Batches are read without opening anything per sample: a batch sampler yields a whole batch request
(scene rows and a caption seed), and the dataset reads each requested block with one low-level HDF5
read per run of consecutive rows, or takes it from memory when the split was loaded whole. (h5py
fancy indexing over a list of rows, or one read of a union of row blocks, is about ten times slower.)
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import h5py
from h5py import h5s
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from vscn.data.encoders.base import ImageEncoder, ImageFeatures, TextEncoder
from vscn.data.records import BOX_COORDS, Scene
from vscn.io import FILE_MODE

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
ROW_CHUNK = 64  # rows per chunk of the per-row datasets: whole-batch reads touch few chunks
DEFAULT_MEMORY_LIMIT = 2 << 30  # bytes; below this a split is loaded whole when in_memory is None
MAX_IDS_SHOWN = 5  # image ids named in an error message
SEED_BOUND = 2**63 - 1  # caption seeds are drawn from [0, SEED_BOUND)
FEATURE_DATASETS = ("regions", "boxes", "global", "queries")
INDEX_DATASETS = ("image_id", "query_offsets", "region_ids")
DATASETS = (*INDEX_DATASETS, *FEATURE_DATASETS, "captions")
SIZE_ATTRIBUTES = ("num_regions", "region_dim", "global_dim", "query_dim")


class FeatureFileError(ValueError):
    """A feature file (or the features meant for one) that cannot be used; the message names it."""


# ------------------------------------------------------------------------------------------ writing

def _check_scenes(scenes: Sequence[Scene]) -> None:
    if not scenes:
        raise ValueError("no scenes to pack")
    ids = np.asarray([scene.image_id for scene in scenes])
    if np.any(np.diff(ids) <= 0):
        raise ValueError("scenes must be in strictly increasing image-id order (the split order features are indexed by)")
    for scene in scenes:
        region_ids = [region.region_id for region in scene.regions]
        if not region_ids:
            raise ValueError(f"scene {scene.image_id} has no captions")
        if region_ids != sorted(set(region_ids)):
            raise ValueError(f"scene {scene.image_id}: regions must be in strictly increasing region-id order")


def _check_finite(values: np.ndarray, what: str, scenes: Sequence[Scene], out_path: Path) -> None:
    """Raise naming the first scene of ``scenes`` whose rows of ``values`` (B, ...) are not all finite."""
    finite = np.isfinite(values.reshape(len(scenes), -1)).all(axis=1)  # (B,)
    if not finite.all():
        scene = scenes[int(np.argmin(finite))]
        raise FeatureFileError(
            f"{out_path}: {what} of image {scene.image_id} ({scene.image_path or 'no image file'}) contain NaN "
            "or infinite values (after conversion to the stored dtype); nothing was written"
        )


def _create(file: h5py.File, name: str, shape: tuple[int, ...], dtype: Any, chunk_rows: int) -> h5py.Dataset:
    chunks = (min(chunk_rows, shape[0]), *shape[1:])
    return file.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, fletcher32=True)


class _SplitWriter:
    """Fills an open HDF5 file batch by batch; feature datasets are created when their size is known."""

    def __init__(self, file: h5py.File, scenes: Sequence[Scene], num_regions: int, float16: bool, out_path: Path):
        self.file, self.scenes, self.num_regions, self.out_path = file, scenes, num_regions, out_path
        self.region_dtype = np.float16 if float16 else np.float32
        counts = [len(scene.regions) for scene in scenes]
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)  # (N+1,)
        n, m = len(scenes), int(self.offsets[-1])
        _create(file, "image_id", (n,), np.int64, ROW_CHUNK)[:] = [scene.image_id for scene in scenes]
        _create(file, "query_offsets", (n + 1,), np.int64, ROW_CHUNK)[:] = self.offsets
        region_ids = [region.region_id for scene in scenes for region in scene.regions]
        captions = [region.caption for scene in scenes for region in scene.regions]
        _create(file, "region_ids", (m,), np.int64, ROW_CHUNK)[:] = region_ids
        # Variable-length strings admit no filters, hence no checksum here.
        file.create_dataset("captions", data=captions, dtype=h5py.string_dtype("utf-8"))
        self.image_rows = self.text_rows = 0

    def write_image_batch(self, start: int, scenes: Sequence[Scene], features: ImageFeatures) -> None:
        batch, regions_per_image = len(scenes), self.num_regions
        with np.errstate(over="ignore"):  # overflow in the stored dtype becomes inf, which is reported below
            regions = features.regions.astype(self.region_dtype)  # (B, R, Dv)
            boxes = features.boxes.astype(np.float32)  # (B, R, 4)
            global_features = features.global_features.astype(np.float32)  # (B, Dg)
        if regions.ndim != 3 or regions.shape[:2] != (batch, regions_per_image):
            self._shape_error("image", "regions", regions.shape, f"({batch}, {regions_per_image}, Dv)")
        if boxes.shape != (batch, regions_per_image, BOX_COORDS):
            self._shape_error("image", "boxes", boxes.shape, f"({batch}, {regions_per_image}, {BOX_COORDS})")
        if global_features.ndim != 2 or len(global_features) != batch:
            self._shape_error("image", "global features", global_features.shape, f"({batch}, Dg)")
        _check_finite(regions, "region features", scenes, self.out_path)
        _check_finite(boxes, "region boxes", scenes, self.out_path)
        _check_finite(global_features, "global features", scenes, self.out_path)
        if start == 0:
            n = len(self.scenes)
            _create(self.file, "regions", (n, regions_per_image, regions.shape[-1]), self.region_dtype, 1)
            _create(self.file, "boxes", (n, regions_per_image, BOX_COORDS), np.float32, ROW_CHUNK)
            _create(self.file, "global", (n, global_features.shape[-1]), np.float32, ROW_CHUNK)
        stop = start + batch
        self._put("regions", start, stop, regions)
        self._put("boxes", start, stop, boxes)
        self._put("global", start, stop, global_features)
        self.image_rows = stop

    def write_text_batch(self, start: int, scenes: Sequence[Scene], features: list[np.ndarray]) -> None:
        if len(features) != len(scenes):
            self._shape_error("text", "per-scene arrays", (len(features),), f"({len(scenes)},)")
        with np.errstate(over="ignore"):
            features = [array.astype(np.float32) for array in features]
        for scene, array in zip(scenes, features):
            if array.ndim != 2 or len(array) != len(scene.regions):
                self._shape_error("text", f"caption features of image {scene.image_id}", array.shape,
                                  f"({len(scene.regions)}, Dq)")
            _check_finite(array[None], "caption features", [scene], self.out_path)
        queries = np.concatenate(features)  # (captions of the batch, Dq)
        if start == 0:
            _create(self.file, "queries", (int(self.offsets[-1]), queries.shape[-1]), np.float32, ROW_CHUNK)
        self._put("queries", int(self.offsets[start]), int(self.offsets[start + len(scenes)]), queries)
        self.text_rows = start + len(scenes)

    def check_complete(self) -> None:
        n = len(self.scenes)
        if self.image_rows != n or self.text_rows != n:
            raise FeatureFileError(f"{self.out_path}: the encoders covered {self.image_rows} (image) and "
                                   f"{self.text_rows} (text) of {n} scenes")

    def _shape_error(self, kind: str, what: str, shape: tuple[int, ...], expected: str) -> None:
        raise FeatureFileError(f"{self.out_path}: the {kind} encoder gave {what} of shape {shape}, expected {expected}")

    def _put(self, name: str, start: int, stop: int, values: np.ndarray) -> None:
        dataset = self.file[name]
        if values.shape[1:] != dataset.shape[1:] or len(values) != stop - start:
            raise FeatureFileError(f"{self.out_path}: {name} batch of shape {values.shape} does not fit rows "
                                   f"{start}:{stop} of a dataset of shape {dataset.shape}")
        dataset[start:stop] = values


def pack_split(
    scenes: Sequence[Scene],
    image_encoder: ImageEncoder,
    text_encoder: TextEncoder,
    out_path: Path | str,
    num_regions: int,
    float16: bool = False,
    batch_size: int = 32,
    source_checksums: dict[str, str] | None = None,
) -> Path:
    """Encode ``scenes`` (one split, image-id order) and write them as one feature file at ``out_path``.

    Nothing is left at ``out_path`` or beside it when encoding or writing fails; an existing file
    there is replaced only by a complete new one. Returns ``out_path``.
    """
    out_path = Path(out_path)
    if num_regions < 1 or batch_size < 1:
        raise ValueError(f"num_regions and batch_size must be at least 1, got {num_regions} and {batch_size}")
    _check_scenes(scenes)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary_name = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp")
    os.close(descriptor)
    temporary = Path(temporary_name)
    try:
        with h5py.File(temporary, "w") as file:
            writer = _SplitWriter(file, scenes, num_regions, float16, out_path)
            starts = range(0, len(scenes), batch_size)
            for start, features in zip(starts, image_encoder.encode(scenes, num_regions, batch_size)):
                writer.write_image_batch(start, scenes[start : start + batch_size], features)
            for start, captions in zip(starts, text_encoder.encode(scenes, batch_size)):
                writer.write_text_batch(start, scenes[start : start + batch_size], captions)
            writer.check_complete()
            file.attrs.update({
                "schema_version": SCHEMA_VERSION,
                "image_encoder": image_encoder.name,
                "image_encoder_settings": json.dumps(image_encoder.settings, sort_keys=True),
                "text_encoder": text_encoder.name,
                "text_encoder_settings": json.dumps(text_encoder.settings, sort_keys=True),
                "num_regions": num_regions,
                "region_dim": file["regions"].shape[-1],
                "global_dim": file["global"].shape[-1],
                "query_dim": file["queries"].shape[-1],
                "source_checksums": json.dumps(source_checksums or {}, sort_keys=True),
            })
        os.chmod(temporary, FILE_MODE)  # mkstemp files are private; a feature file is for every reader
        os.replace(temporary, out_path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    logger.info("wrote %s: %d scenes, %d captions", out_path, len(scenes), int(writer.offsets[-1]))
    return out_path


# ------------------------------------------------------------------------------------------ reading

@dataclass(frozen=True)
class FeatureSizes:
    num_scenes: int  # N
    num_regions: int  # R
    region_dim: int  # Dv
    global_dim: int  # Dg
    query_dim: int  # Dq
    num_queries: int  # M


def _merged_runs(starts: np.ndarray, stops: np.ndarray) -> Iterator[tuple[int, int, int]]:
    """``(source start, source stop, output start)`` runs reading ranges in file order, merging ranges
    that are adjacent both in the file and in the output (the output holds the ranges in request order)."""
    lengths = stops - starts
    out_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    run: list[int] | None = None
    for k in np.argsort(starts, kind="stable"):
        if lengths[k] == 0:
            continue
        if run is not None and starts[k] == run[1] and out_starts[k] == run[2] + run[1] - run[0]:
            run[1] = int(stops[k])
            continue
        if run is not None:
            yield run[0], run[1], run[2]
        run = [int(starts[k]), int(stops[k]), int(out_starts[k])]
    if run is not None:
        yield run[0], run[1], run[2]


class FeatureFile:
    """A validated feature file; reads blocks of rows from disk or, when loaded whole, from memory.

    ``in_memory``: True loads every feature dataset at open, False reads per call, None loads when the
    features take at most ``memory_limit`` bytes. The object can be sent to DataLoader workers: each
    process opens its own HDF5 handle.
    """

    def __init__(self, path: Path | str, in_memory: bool | None = None, memory_limit: int = DEFAULT_MEMORY_LIMIT):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: feature file not found")
        self._pid: int | None = None
        self._file: h5py.File | None = None
        try:
            file = self._handle()
            self.attrs = self._validated_attrs(file)
            self.sizes = self._validated_sizes(file)
            self.image_ids = self._read_all("image_id")
            self.query_offsets = self._read_all("query_offsets")
            self._check_index(self.image_ids, self.query_offsets)
            feature_bytes = sum(file[name].size * file[name].dtype.itemsize for name in FEATURE_DATASETS)
            self.in_memory = feature_bytes <= memory_limit if in_memory is None else in_memory
            self._arrays = {name: self._read_all(name) for name in FEATURE_DATASETS} if self.in_memory else {}
        except BaseException:
            self.close()
            raise
        if self.in_memory:
            self.close()  # everything is in memory; workers need no handle

    # -- opening and validation
    def _handle(self) -> h5py.File:
        """This process's HDF5 handle (a forked worker must not use its parent's)."""
        if self._file is None or self._pid != os.getpid():
            try:
                self._file = h5py.File(self.path, "r")
            except OSError as error:
                raise FeatureFileError(f"{self.path}: not a readable HDF5 file (truncated or corrupt?): {error}") from error
            self._pid = os.getpid()
        return self._file

    def _validated_attrs(self, file: h5py.File) -> dict[str, Any]:
        attrs = dict(file.attrs)
        if "schema_version" not in attrs:
            raise FeatureFileError(f"{self.path}: no schema_version attribute; not a vscn feature file")
        if int(attrs["schema_version"]) != SCHEMA_VERSION:
            raise FeatureFileError(f"{self.path}: schema version {attrs['schema_version']}, this vscn reads "
                                   f"version {SCHEMA_VERSION}; re-run the features step")
        missing = [name for name in DATASETS if name not in file]
        if missing:
            raise FeatureFileError(f"{self.path}: missing datasets {', '.join(missing)}")
        missing = [name for name in SIZE_ATTRIBUTES if name not in attrs]
        if missing:
            raise FeatureFileError(f"{self.path}: missing attributes {', '.join(missing)}")
        return attrs

    def _validated_sizes(self, file: h5py.File) -> FeatureSizes:
        n, m = file["image_id"].shape[0], file["queries"].shape[0]
        r, dv, dg, dq = (int(self.attrs[name]) for name in SIZE_ATTRIBUTES)
        expected = {
            "image_id": (n,), "regions": (n, r, dv), "boxes": (n, r, BOX_COORDS), "global": (n, dg),
            "query_offsets": (n + 1,), "queries": (m, dq), "captions": (m,), "region_ids": (m,),
        }
        for name, shape in expected.items():
            if file[name].shape != shape:
                raise FeatureFileError(f"{self.path}: dataset {name} has shape {file[name].shape}, expected {shape} "
                                       f"(from N={n}, M={m} and the attributes R={r}, Dv={dv}, Dg={dg}, Dq={dq})")
        return FeatureSizes(n, r, dv, dg, dq, m)

    def _check_index(self, image_ids: np.ndarray, offsets: np.ndarray) -> None:
        if np.any(np.diff(image_ids) <= 0):
            raise FeatureFileError(f"{self.path}: image_id is not strictly increasing")
        if offsets[0] != 0 or offsets[-1] != self.sizes.num_queries or np.any(np.diff(offsets) < 0):
            raise FeatureFileError(f"{self.path}: query_offsets must rise from 0 to {self.sizes.num_queries}")

    def _read_all(self, name: str) -> np.ndarray:
        try:
            return self._handle()[name][()]
        except OSError as error:
            raise FeatureFileError(f"{self.path}: cannot read dataset {name} (corrupt file?): {error}") from error

    # -- reading
    def read_ranges(self, name: str, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
        """Rows ``starts[k]:stops[k]`` of feature dataset ``name``, concatenated in request order, float32."""
        starts, stops = np.asarray(starts, np.int64), np.asarray(stops, np.int64)
        if name in self._arrays:
            source = self._arrays[name]
            return np.concatenate([source[a:b] for a, b in zip(starts, stops)]).astype(np.float32, copy=False)
        dataset = self._handle()[name]
        row_shape = dataset.shape[1:]
        out = np.empty((int((stops - starts).sum()), *row_shape), dtype=np.float32)
        # The low-level calls cost a fraction of h5py's per-call selection handling in read_direct.
        file_space, row_origin = dataset.id.get_space(), (0,) * len(row_shape)
        try:
            for start, stop, out_start in _merged_runs(starts, stops):
                block = (stop - start, *row_shape)
                file_space.select_hyperslab((start, *row_origin), block)
                dataset.id.read(h5s.create_simple(block), file_space, out[out_start : out_start + stop - start])
        except OSError as error:
            raise FeatureFileError(f"{self.path}: cannot read {name} (corrupt file?): {error}") from error
        return out

    def read_rows(self, name: str, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Rows of a per-scene feature dataset (``regions``, ``boxes``, ``global``), in the order given."""
        rows = np.asarray(rows, np.int64)
        return self.read_ranges(name, rows, rows + 1)

    def captions(self, row: int) -> list[str]:
        """The captions of scene ``row`` in region-id order."""
        start, stop = self.query_offsets[row], self.query_offsets[row + 1]
        return list(self._handle()["captions"].asstr()[start:stop])

    def region_ids(self, row: int) -> np.ndarray:
        start, stop = self.query_offsets[row], self.query_offsets[row + 1]
        return self._handle()["region_ids"][start:stop]

    @property
    def source_checksums(self) -> dict[str, str]:
        return json.loads(self.attrs.get("source_checksums", "{}"))

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file, self._pid = None, None

    def __enter__(self) -> FeatureFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_file"], state["_pid"] = None, None  # HDF5 handles do not cross processes
        return state


# ------------------------------------------------------------------------------------------ batches

class BatchRequest(NamedTuple):
    """What a batch sampler asks the dataset for."""

    rows: tuple[int, ...]  # scene rows of the feature file
    caption_seed: int | None  # None: the first T captions in region-id order; else T random ones, shuffled


class FeatureBatch(NamedTuple):
    regions: torch.Tensor  # (B, R, Dv) float32
    queries: torch.Tensor  # (B, T, Dq) float32
    global_features: torch.Tensor  # (B, Dg) float32
    index: torch.Tensor  # (B,) int64 scene rows

    def to(self, device: torch.device | str, non_blocking: bool = False) -> FeatureBatch:
        return FeatureBatch(*(tensor.to(device, non_blocking=non_blocking) for tensor in self))


class FeatureDataset(Dataset):
    """Batches of one feature file; ``dataset[BatchRequest(...)]`` is a whole :class:`FeatureBatch`.

    Every scene must have at least ``max_turns`` captions (checked at construction).
    """

    def __init__(self, path: Path | str, max_turns: int, in_memory: bool | None = None,
                 memory_limit: int = DEFAULT_MEMORY_LIMIT) -> None:
        if max_turns < 1:
            raise ValueError(f"max_turns must be at least 1, got {max_turns}")
        self.features = FeatureFile(path, in_memory=in_memory, memory_limit=memory_limit)
        self.max_turns = max_turns
        self.caption_counts = np.diff(self.features.query_offsets)  # (N,)
        short = np.flatnonzero(self.caption_counts < max_turns)
        if len(short):
            shown = ", ".join(str(i) for i in self.features.image_ids[short[:MAX_IDS_SHOWN]])
            raise FeatureFileError(f"{self.features.path}: {len(short)} scenes have fewer than {max_turns} captions "
                                   f"(image ids {shown}{', ...' if len(short) > MAX_IDS_SHOWN else ''})")

    def __len__(self) -> int:
        return self.features.sizes.num_scenes

    def caption_positions(self, rows: np.ndarray, caption_seed: int | None) -> np.ndarray:
        """(B, T) positions within each scene's captions: the first T, or the first T of a random permutation."""
        if caption_seed is None:
            return np.broadcast_to(np.arange(self.max_turns), (len(rows), self.max_turns))
        generator = np.random.default_rng(caption_seed)
        return np.stack([generator.permutation(self.caption_counts[row])[: self.max_turns] for row in rows])

    def __getitem__(self, request: BatchRequest) -> FeatureBatch:
        rows = np.asarray(request.rows, np.int64)  # (B,)
        positions = self.caption_positions(rows, request.caption_seed)  # (B, T)
        spans = positions.max(axis=1) + 1  # (B,) caption rows to read per scene
        starts = self.features.query_offsets[rows]  # (B,)
        blocks = self.features.read_ranges("queries", starts, starts + spans)  # (sum spans, Dq)
        block_starts = np.concatenate([[0], np.cumsum(spans)[:-1]])  # (B,)
        queries = blocks[block_starts[:, None] + positions]  # (B, T, Dq)
        return FeatureBatch(
            regions=torch.from_numpy(self.features.read_rows("regions", rows)),
            queries=torch.from_numpy(queries),
            global_features=torch.from_numpy(self.features.read_rows("global", rows)),
            index=torch.from_numpy(rows),
        )


class TrainingBatchSampler(Sampler[BatchRequest]):
    """Shuffled batches with a fresh caption seed each; each pass over it is the next epoch.

    Epoch e draws everything from ``numpy.random.default_rng((seed, e))``, so a run is reproducible and
    ``set_epoch`` resumes it exactly; epochs differ from each other.
    """

    def __init__(self, num_scenes: int, batch_size: int, seed: int, drop_last: bool = False) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.num_scenes, self.batch_size, self.seed, self.drop_last = num_scenes, batch_size, seed, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next pass will be."""
        self.epoch = epoch

    def __len__(self) -> int:
        full, rest = divmod(self.num_scenes, self.batch_size)
        return full + int(rest > 0 and not self.drop_last)

    def __iter__(self) -> Iterator[BatchRequest]:
        generator = np.random.default_rng((self.seed, self.epoch))
        self.epoch += 1
        order = generator.permutation(self.num_scenes)
        seeds = generator.integers(0, SEED_BOUND, size=len(self))
        for batch, seed in enumerate(seeds):
            rows = order[batch * self.batch_size : (batch + 1) * self.batch_size]
            yield BatchRequest(tuple(rows.tolist()), int(seed))


class EvaluationBatchSampler(Sampler[BatchRequest]):
    """Consecutive scene rows, first T captions of each in region-id order."""

    def __init__(self, num_scenes: int, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.num_scenes, self.batch_size = num_scenes, batch_size

    def __len__(self) -> int:
        return -(-self.num_scenes // self.batch_size)

    def __iter__(self) -> Iterator[BatchRequest]:
        for start in range(0, self.num_scenes, self.batch_size):
            yield BatchRequest(tuple(range(start, min(start + self.batch_size, self.num_scenes))), None)


def batch_loader(
    dataset: FeatureDataset, sampler: Sampler[BatchRequest], num_workers: int = 0, pin_memory: bool = False
) -> DataLoader:
    """A DataLoader yielding :class:`FeatureBatch` es, one dataset call per batch."""
    return DataLoader(
        dataset, sampler=sampler, batch_size=None, num_workers=num_workers, pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )
