"""HDF5 feature files: packing round trip, atomic writes, validation, batches and samplers."""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from vscn.data.encoders import build_image_encoder, build_text_encoder
from vscn.data.encoders.base import ImageEncoder, ImageFeatures, SentenceEncoder
from vscn.data.encoders.roi import scene_region_boxes
from vscn.data.features import (
    SCHEMA_VERSION,
    BatchRequest,
    EvaluationBatchSampler,
    FeatureDataset,
    FeatureFile,
    FeatureFileError,
    TrainingBatchSampler,
    batch_loader,
    pack_split,
)
from vscn.data.records import Region, Scene, SceneObject
from vscn.io import sha256_file

R, DV, DG, DQ, T = 5, 6, 4, 3, 10


class FakeImageEncoder(ImageEncoder):
    """Features that are a function of the image id alone; optionally fails on one image."""

    name = "fake-image"

    def __init__(self, fail_on: int | None = None, nan_on: int | None = None) -> None:
        super().__init__({"dims": [DV, DG]})
        self.fail_on, self.nan_on = fail_on, nan_on

    def one(self, scene: Scene, num_regions: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        generator = np.random.default_rng(scene.image_id)
        regions = generator.standard_normal((num_regions, DV)).astype(np.float32)
        if scene.image_id == self.nan_on:
            regions[1, 2] = np.nan
        return regions, scene_region_boxes(scene, num_regions), generator.standard_normal(DG).astype(np.float32)

    def encode_batch(self, scenes: Sequence[Scene], first_index: int, num_regions: int) -> ImageFeatures:
        if self.fail_on in {scene.image_id for scene in scenes}:
            raise RuntimeError(f"encoder broke on image {self.fail_on}")
        parts = [self.one(scene, num_regions) for scene in scenes]
        return ImageFeatures(*(np.stack(column) for column in zip(*parts)))


class FakeTextEncoder(SentenceEncoder):
    """A caption's feature is a function of its text."""

    name = "fake-text"

    def __init__(self) -> None:
        super().__init__({"dim": DQ})

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        rows = [np.random.default_rng(zlib.crc32(text.encode())).standard_normal(DQ) for text in texts]
        return np.asarray(rows, np.float32).reshape(len(texts), DQ)


def make_scenes(counts: Sequence[int], first_id: int = 10) -> list[Scene]:
    scenes = []
    for k, count in enumerate(counts):
        image_id = first_id + 7 * k
        regions = tuple(Region(1000 * image_id + 3 * j, (j, j, j + 20.0, j + 10.0), f"caption {j} of {image_id} é")
                        for j in range(count))
        objects = (SceneObject(1, "circle", (5.0, 5.0, 30.0, 30.0)),)
        scenes.append(Scene(image_id, 64, 48, objects, (), regions, image_path=f"/images/{image_id}.png"))
    return scenes


COUNTS = (12, 10, 15, 11, 10, 13, 20)


@pytest.fixture
def packed(tmp_path: Path) -> tuple[Path, list[Scene]]:
    scenes = make_scenes(COUNTS)
    path = pack_split(scenes, FakeImageEncoder(), FakeTextEncoder(), tmp_path / "test.h5", num_regions=R,
                      batch_size=3, source_checksums={"scenes.parquet": "ab" * 32})
    return path, scenes


# ------------------------------------------------------------------------------------------ writing

@pytest.mark.parametrize("float16", [False, True])
def test_round_trip_reads_back_what_was_encoded(tmp_path: Path, float16: bool) -> None:
    scenes = make_scenes(COUNTS)
    path = pack_split(scenes, FakeImageEncoder(), FakeTextEncoder(), tmp_path / "s.h5", num_regions=R,
                      float16=float16, batch_size=3, source_checksums={"scenes.parquet": "00ff"})
    assert os.listdir(tmp_path) == ["s.h5"]
    expected = [FakeImageEncoder().one(scene, R) for scene in scenes]
    with FeatureFile(path, in_memory=False) as features:
        assert features.sizes.num_scenes == len(scenes) and features.sizes.num_queries == sum(COUNTS)
        assert (features.sizes.num_regions, features.sizes.region_dim) == (R, DV)
        assert (features.sizes.global_dim, features.sizes.query_dim) == (DG, DQ)
        np.testing.assert_array_equal(features.image_ids, [scene.image_id for scene in scenes])
        np.testing.assert_array_equal(features.query_offsets, np.concatenate([[0], np.cumsum(COUNTS)]))
        rows = np.arange(len(scenes))
        regions = np.stack([e[0] for e in expected])
        np.testing.assert_array_equal(features.read_rows("regions", rows),
                                      regions.astype(np.float16).astype(np.float32) if float16 else regions)
        np.testing.assert_array_equal(features.read_rows("boxes", rows), np.stack([e[1] for e in expected]))
        any_order = [3, 2, 4, 4, 5, 0, 1]  # adjacent in the file but not in the output, repeats
        np.testing.assert_array_equal(features.read_rows("global", any_order), np.stack([expected[i][2] for i in any_order]))
        np.testing.assert_array_equal(features.read_rows("global", rows), np.stack([e[2] for e in expected]))
        all_captions = [region.caption for scene in scenes for region in scene.regions]
        queries = features.read_ranges("queries", [0], [sum(COUNTS)])
        np.testing.assert_array_equal(queries, FakeTextEncoder().encode_texts(all_captions))
        assert features.captions(2) == [region.caption for region in scenes[2].regions]
        np.testing.assert_array_equal(features.region_ids(6), [region.region_id for region in scenes[6].regions])
        assert features.attrs["image_encoder"] == "fake-image" and features.attrs["text_encoder"] == "fake-text"
        assert json.loads(features.attrs["image_encoder_settings"]) == {"dims": [DV, DG]}
        assert features.source_checksums == {"scenes.parquet": "00ff"}
        assert features.attrs["schema_version"] == SCHEMA_VERSION
    with h5py.File(path) as file:
        assert file["regions"].dtype == (np.float16 if float16 else np.float32)
        assert file["regions"].chunks == (1, R, DV) and file["queries"].fletcher32


def test_a_failing_encoder_leaves_no_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    scenes = make_scenes(COUNTS)
    with pytest.raises(RuntimeError, match="encoder broke on image 38"):
        pack_split(scenes, FakeImageEncoder(fail_on=scenes[4].image_id), FakeTextEncoder(), tmp_path / "s.h5", R,
                   batch_size=2)
    assert os.listdir(tmp_path) == []
    (tmp_path / "s.h5").write_bytes(b"previous features")
    with pytest.raises(RuntimeError, match="encoder broke"):
        pack_split(scenes, FakeImageEncoder(fail_on=scenes[0].image_id), FakeTextEncoder(), tmp_path / "s.h5", R)
    assert os.listdir(tmp_path) == ["s.h5"] and (tmp_path / "s.h5").read_bytes() == b"previous features"


def test_non_finite_features_are_rejected_naming_the_image(tmp_path: Path) -> None:
    scenes = make_scenes(COUNTS)
    with pytest.raises(FeatureFileError, match=r"s\.h5: region features of image 31 \(/images/31\.png\) contain NaN"):
        pack_split(scenes, FakeImageEncoder(nan_on=31), FakeTextEncoder(), tmp_path / "s.h5", R, batch_size=2)
    assert os.listdir(tmp_path) == []


class HugeImageEncoder(FakeImageEncoder):
    def one(self, scene: Scene, num_regions: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        regions, boxes, global_feature = super().one(scene, num_regions)
        return regions * 1e6, boxes, global_feature  # finite in float32, infinite in float16


def test_float16_overflow_counts_as_non_finite(tmp_path: Path) -> None:
    scenes = make_scenes(COUNTS[:2])
    with pytest.raises(FeatureFileError, match="image 10 .*after conversion to the stored dtype"):
        pack_split(scenes, HugeImageEncoder(), FakeTextEncoder(), tmp_path / "s.h5", R, float16=True)
    path = pack_split(scenes, HugeImageEncoder(), FakeTextEncoder(), tmp_path / "s.h5", R, float16=False)
    with FeatureFile(path) as features:  # the same values fit in float32
        assert np.isfinite(features.read_rows("regions", [0, 1])).all()


def test_scene_order_is_checked(tmp_path: Path) -> None:
    scenes = make_scenes(COUNTS[:3])
    with pytest.raises(ValueError, match="increasing image-id order"):
        pack_split(scenes[::-1], FakeImageEncoder(), FakeTextEncoder(), tmp_path / "s.h5", R)
    swapped = Scene(1, 64, 48, regions=scenes[0].regions[::-1])
    with pytest.raises(ValueError, match="scene 1: regions must be in strictly increasing region-id order"):
        pack_split([swapped], FakeImageEncoder(), FakeTextEncoder(), tmp_path / "s.h5", R)
    with pytest.raises(ValueError, match="scene 2 has no captions"):
        pack_split([Scene(2, 64, 48)], FakeImageEncoder(), FakeTextEncoder(), tmp_path / "s.h5", R)
    assert os.listdir(tmp_path) == []


def test_sha256_file(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"abc")
    assert sha256_file(tmp_path / "a.txt") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# ------------------------------------------------------------------------------------------ validation

def test_truncated_and_foreign_files_give_clear_errors(packed, tmp_path: Path) -> None:
    path, _ = packed
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(FeatureFileError, match=r"truncated\.h5: not a readable HDF5 file \(truncated or corrupt\?\)"):
        FeatureFile(truncated)
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(FeatureFileError, match=r"text\.h5: not a readable HDF5 file"):
        FeatureFile(text)
    with pytest.raises(FileNotFoundError, match=r"absent\.h5: feature file not found"):
        FeatureFile(tmp_path / "absent.h5")


def test_corrupt_chunks_are_detected_on_reading(packed) -> None:
    path, _ = packed
    with h5py.File(path) as file:
        offset = file["regions"].id.get_chunk_info(3).byte_offset  # the chunk of scene 3
    with path.open("r+b") as stream:
        stream.seek(offset + 10)
        stream.write(b"\xff\x00\xff\x00")
    with FeatureFile(path, in_memory=False) as features:
        features.read_rows("regions", [2])  # other chunks are intact
        with pytest.raises(FeatureFileError, match=r"test\.h5: cannot read regions \(corrupt file\?\)"):
            features.read_rows("regions", [1, 3])
    with pytest.raises(FeatureFileError, match=r"test\.h5: cannot read dataset regions \(corrupt file\?\)"):
        FeatureFile(path, in_memory=True)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: f.attrs.__delitem__("schema_version"), "no schema_version attribute"),
        (lambda f: f.attrs.__setitem__("schema_version", 99), "schema version 99, this vscn reads version 1"),
        (lambda f: f.__delitem__("boxes"), "missing datasets boxes"),
        (lambda f: f.attrs.__delitem__("query_dim"), "missing attributes query_dim"),
        (lambda f: f.attrs.__setitem__("region_dim", 7), r"dataset regions has shape \(7, 5, 6\), expected \(7, 5, 7\)"),
        (lambda f: (f.__delitem__("captions"), f.create_dataset("captions", data=["x"])), r"captions has shape \(1,\)"),
        (lambda f: f["query_offsets"].__setitem__(3, 5), "query_offsets must rise from 0 to 91"),
        (lambda f: f["image_id"].__setitem__(1, 1), "image_id is not strictly increasing"),
    ],
)
def test_inconsistent_files_give_clear_errors(packed, damage, message: str) -> None:
    path, _ = packed
    with h5py.File(path, "r+") as file:
        damage(file)
    with pytest.raises(FeatureFileError, match=message):
        FeatureFile(path)


# ------------------------------------------------------------------------------------------ batches

def _direct(path: Path, rows: Sequence[int], positions: np.ndarray) -> dict[str, np.ndarray]:
    """The batch read straight from the file with h5py, one scene at a time."""
    with h5py.File(path) as file:
        offsets = file["query_offsets"][()]
        return {
            "regions": np.stack([file["regions"][row] for row in rows]).astype(np.float32),
            "global": np.stack([file["global"][row] for row in rows]),
            "queries": np.stack([[file["queries"][offsets[row] + p] for p in positions[k]] for k, row in enumerate(rows)]),
        }


@pytest.mark.parametrize("in_memory", [False, True])
def test_batches_equal_direct_indexing(packed, in_memory: bool) -> None:
    path, scenes = packed
    dataset = FeatureDataset(path, max_turns=T, in_memory=in_memory)
    assert dataset.features.in_memory is in_memory and len(dataset) == len(scenes)
    for request in (BatchRequest((5, 0, 3), None), BatchRequest((6, 2, 1, 4), 1234)):
        batch = dataset[request]
        positions = dataset.caption_positions(np.asarray(request.rows), request.caption_seed)
        direct = _direct(path, request.rows, positions)
        assert batch.regions.dtype == torch.float32 and batch.regions.shape == (len(request.rows), R, DV)
        assert batch.queries.shape == (len(request.rows), T, DQ) and batch.global_features.shape == (len(request.rows), DG)
        np.testing.assert_array_equal(batch.regions.numpy(), direct["regions"])
        np.testing.assert_array_equal(batch.global_features.numpy(), direct["global"])
        np.testing.assert_array_equal(batch.queries.numpy(), direct["queries"])
        np.testing.assert_array_equal(batch.index.numpy(), request.rows)


def test_evaluation_takes_the_first_captions_and_training_a_shuffled_subset(packed) -> None:
    path, scenes = packed
    dataset = FeatureDataset(path, max_turns=T)
    np.testing.assert_array_equal(dataset.caption_positions(np.array([2, 6]), None), [np.arange(T)] * 2)
    positions = dataset.caption_positions(np.array([2, 6]), caption_seed=7)
    for row, chosen in zip((2, 6), positions):
        assert len(set(chosen.tolist())) == T and chosen.max() < COUNTS[row]  # distinct captions of that scene
    assert not np.array_equal(positions[1], np.arange(T))  # shuffled, not the first ten in order
    np.testing.assert_array_equal(positions, dataset.caption_positions(np.array([2, 6]), caption_seed=7))
    assert not np.array_equal(positions, dataset.caption_positions(np.array([2, 6]), caption_seed=8))
    query = dataset[BatchRequest((2,), 7)].queries[0, 0].numpy()
    caption = scenes[2].regions[positions[0, 0]].caption
    np.testing.assert_array_equal(query, FakeTextEncoder().encode_texts([caption])[0])


def test_scenes_with_too_few_captions_are_refused_at_open(packed) -> None:
    path, _ = packed
    with pytest.raises(FeatureFileError, match=r"test\.h5: 3 scenes have fewer than 12 captions \(image ids 17, 31, 38\)"):
        FeatureDataset(path, max_turns=12)


def _epoch(sampler: TrainingBatchSampler) -> list[BatchRequest]:
    return list(sampler)


def test_training_sampler_is_seeded_and_changes_every_epoch() -> None:
    first, second = TrainingBatchSampler(23, 5, seed=3), TrainingBatchSampler(23, 5, seed=3)
    epochs = [_epoch(first) for _ in range(3)]
    assert epochs == [_epoch(second) for _ in range(3)]
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2]
    for requests in epochs:
        assert len(requests) == len(first) == 5 and [len(r.rows) for r in requests] == [5, 5, 5, 5, 3]
        assert sorted(row for r in requests for row in r.rows) == list(range(23))
    assert _epoch(TrainingBatchSampler(23, 5, seed=4)) != epochs[0]
    first.set_epoch(1)
    assert _epoch(first) == epochs[1]  # resuming at an epoch replays it exactly
    assert [len(r.rows) for r in TrainingBatchSampler(23, 5, seed=3, drop_last=True)] == [5] * 4


def test_evaluation_sampler_covers_the_split_in_order() -> None:
    requests = list(EvaluationBatchSampler(7, 3))
    assert requests == [BatchRequest((0, 1, 2), None), BatchRequest((3, 4, 5), None), BatchRequest((6,), None)]
    assert len(EvaluationBatchSampler(7, 3)) == 3


@pytest.mark.parametrize("workers", [0, 2])
def test_data_loader_serves_whole_batches(packed, workers: int) -> None:
    path, scenes = packed
    dataset = FeatureDataset(path, max_turns=T, in_memory=False)
    sampler = TrainingBatchSampler(len(dataset), 3, seed=0)
    loaded = list(batch_loader(dataset, sampler, num_workers=workers))
    sampler.set_epoch(0)
    expected = [dataset[request] for request in sampler]
    assert len(loaded) == len(expected) == 3
    for got, want in zip(loaded, expected):
        for name in got._fields:
            torch.testing.assert_close(getattr(got, name), getattr(want, name), rtol=0, atol=0)


# ------------------------------------------------------------------------------------------ real encoders

def _render(path: Path, shapes: list[tuple[str, tuple[int, int, int], tuple[int, int, int, int]]]) -> None:
    image = Image.new("RGB", (320, 240), (236, 236, 232))
    draw = ImageDraw.Draw(image)
    for kind, colour, box in shapes:
        (draw.ellipse if kind == "circle" else draw.rectangle)(box, fill=colour)
    image.save(path)


def test_round_trip_with_the_real_demo_encoders(tmp_path: Path) -> None:
    layouts = [
        [("circle", (214, 39, 40), (20, 30, 60, 70)), ("square", (31, 90, 210), (200, 100, 250, 150))],
        [("square", (44, 160, 44), (100, 40, 128, 68))],
        [("circle", (232, 200, 20), (150, 150, 200, 200)), ("circle", (136, 64, 180), (30, 30, 58, 58))],
    ]
    scenes = []
    for k, shapes in enumerate(layouts):
        _render(tmp_path / f"{k}.png", shapes)
        objects = tuple(SceneObject(j, kind, tuple(map(float, box))) for j, (kind, _, box) in enumerate(shapes))
        regions = tuple(Region(10 * k + j, tuple(map(float, box)), f"a {kind} number {j}")
                        for j, (kind, _, box) in enumerate(shapes))
        scenes.append(Scene(k + 1, 320, 240, objects, (), regions, image_path=str(tmp_path / f"{k}.png")))
    images, texts = build_image_encoder("efficientnet-lite0"), build_text_encoder("all-minilm-l6-v2")
    path = pack_split(scenes, images, texts, tmp_path / "demo.h5", num_regions=36, batch_size=2)
    expected = images.encode_batch(scenes, 0, 36)
    with FeatureFile(path) as features:
        assert (features.sizes.region_dim, features.sizes.global_dim, features.sizes.query_dim) == (192, 1280, 384)
        rows = np.arange(3)
        np.testing.assert_allclose(features.read_rows("regions", rows), expected.regions, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(features.read_rows("global", rows), expected.global_features, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(features.read_rows("boxes", rows), expected.boxes)
        queries = features.read_ranges("queries", [0], [features.sizes.num_queries])
        captions = [region.caption for scene in scenes for region in scene.regions]
        np.testing.assert_allclose(queries, texts.encode_texts(captions), atol=1e-5)
        assert json.loads(features.attrs["image_encoder_settings"])["region_layers"] == ["block7", "block10"]
