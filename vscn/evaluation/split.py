"""A feature split as evaluation sees it: scene i's first T captions describe image i.

Features are read in batches (`EvaluationBatchSampler`: the first T captions in region-id order) and
checked for NaN/inf before use, so a damaged file fails with its name and the image instead of
producing meaningless ranks. A split can be read once into memory (`load_split`, for a validation
pass every epoch) or streamed from its file and encoded batch by batch (`encode_split`), which keeps
only the model's embeddings, not the raw region features, in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vscn.data.features import (EvaluationBatchSampler, FeatureBatch, FeatureDataset, FeatureFileError,
                                batch_loader)
from vscn.model.vscn import VSCN

DEFAULT_BATCH_SIZE = 256  # scenes read and encoded at a time


@dataclass(frozen=True)
class RawSplit:
    """The evaluation features of N scenes, in file order; scene i's queries describe image i."""

    path: Path
    image_ids: np.ndarray  # (N,) int64
    regions: Tensor  # (N, R, Dv) float32
    queries: Tensor  # (N, T, Dq) float32, the first T captions in region-id order
    global_features: Tensor  # (N, Dg) float32
    attrs: dict[str, Any]  # the feature file's attributes (encoder names and settings, sizes)


@dataclass(frozen=True)
class EncodedSplit:
    """A split through the model's encoders: everything the scoring functions need."""

    image_ids: np.ndarray  # (N,) int64
    r: Tensor  # (N, R, d) contextual regions
    c: Tensor  # (N, d) summary tokens
    q: Tensor  # (N, T, d) query embeddings

    @property
    def size(self) -> int:
        return int(self.r.shape[0])


FeatureSource = Path | str | RawSplit


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode inside the block, the caller's mode restored after (training calls validation)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def check_turns(turns: Iterable[int], max_turns: int) -> tuple[int, ...]:
    """The turns to report, validated: distinct values within 1..max_turns."""
    turns = tuple(int(t) for t in turns)
    if not turns or min(turns) < 1 or max(turns) > max_turns or len(set(turns)) != len(turns):
        raise ValueError(f"turns must be distinct values within 1..{max_turns}, got {list(turns)}")
    return turns


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _check_finite(batch: FeatureBatch, image_ids: np.ndarray, path: Path) -> None:
    """Raise naming the file and the first image whose features in ``batch`` are not all finite."""
    parts = (("region features", batch.regions), ("query features", batch.queries),
             ("global features", batch.global_features))
    for what, values in parts:
        finite = torch.isfinite(values.flatten(1)).all(dim=1)  # (B,)
        if not finite.all():
            row = int(batch.index[~finite][0])
            raise FeatureFileError(f"{path}: {what} of image {int(image_ids[row])} (row {row}) contain NaN "
                                   "or infinite values; re-run the features step")


def iter_feature_batches(source: FeatureSource, max_turns: int,
                         batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[FeatureBatch]:
    """Consecutive batches of a split (file or `RawSplit`), each checked to be finite."""
    if isinstance(source, RawSplit):
        if source.queries.shape[1] < max_turns:
            raise ValueError(f"{source.path}: the loaded split has {source.queries.shape[1]} query slots, "
                             f"{max_turns} are needed")
        for start in range(0, len(source.image_ids), batch_size):
            rows = slice(start, start + batch_size)
            index = torch.arange(start, min(start + batch_size, len(source.image_ids)))
            batch = FeatureBatch(source.regions[rows], source.queries[rows, :max_turns],
                                 source.global_features[rows], index)
            _check_finite(batch, source.image_ids, source.path)
            yield batch
        return
    dataset = FeatureDataset(source, max_turns)
    try:
        sampler = EvaluationBatchSampler(len(dataset), batch_size)
        for batch in batch_loader(dataset, sampler):
            _check_finite(batch, dataset.features.image_ids, dataset.features.path)
            yield batch
    finally:
        dataset.features.close()


def split_info(source: FeatureSource) -> tuple[Path, np.ndarray, dict[str, Any]]:
    """``(path, image ids (N,), attributes)`` of a split without reading its features."""
    if isinstance(source, RawSplit):
        return source.path, source.image_ids, source.attrs
    dataset = FeatureDataset(source, max_turns=1, in_memory=False)
    try:
        return dataset.features.path, dataset.features.image_ids.copy(), dict(dataset.features.attrs)
    finally:
        dataset.features.close()


def load_split(feature_path: Path | str, max_turns: int, batch_size: int = DEFAULT_BATCH_SIZE) -> RawSplit:
    """Read a whole split into memory (CPU tensors), checked to be finite."""
    path, image_ids, attrs = split_info(feature_path)
    batches = list(iter_feature_batches(path, max_turns, batch_size))
    return RawSplit(path, image_ids, torch.cat([b.regions for b in batches]),
                    torch.cat([b.queries for b in batches]),
                    torch.cat([b.global_features for b in batches]), attrs)


def _check_sizes(model: VSCN, attrs: dict[str, Any], path: Path) -> None:
    config = model.config
    expected = {"num_regions": config.num_regions, "region_dim": config.region_dim,
                "query_dim": config.query_dim}
    wrong = [f"{name} {int(attrs[name])} (model: {size})" for name, size in expected.items()
             if name in attrs and int(attrs[name]) != size]
    if wrong:
        raise FeatureFileError(f"{path}: features do not fit the model: {', '.join(wrong)}")


@torch.no_grad()
def encode_split(model: VSCN, source: FeatureSource, batch_size: int = DEFAULT_BATCH_SIZE,
                 device: torch.device | str | None = None) -> EncodedSplit:
    """Every image and query set of a split through the model's encoders, on ``device`` (default: the
    model's). Images are encoded independently of each other, so batching changes nothing."""
    device = model_device(model) if device is None else torch.device(device)
    path, image_ids, attrs = split_info(source)
    _check_sizes(model, attrs, path)
    r_parts, c_parts, q_parts = [], [], []
    with eval_mode(model):
        for batch in iter_feature_batches(source, model.config.max_turns, batch_size):
            r, c = model.encode_images(batch.regions.to(device))  # (B, R, d), (B, d)
            r_parts.append(r)
            c_parts.append(c)
            q_parts.append(model.encode_queries(batch.queries.to(device)))  # (B, T, d)
    return EncodedSplit(image_ids, torch.cat(r_parts), torch.cat(c_parts), torch.cat(q_parts))
