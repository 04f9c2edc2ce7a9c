"""Zero-shot baselines from the feature file alone: cosine of the global image feature with the queries.

- ``cosine_mean``: cosine of the global feature with the mean of the first t query features (raw,
  so a query with a longer feature vector weighs more);
- ``cosine_sum``: the sum of the cosines of the global feature with each of the first t queries
  (every query weighs the same).
The two rank identically when all query features have the same norm (for example L2-normalised ones).

Both mean something only when queries and global features live in one embedding space (CLIP text and
image embeddings, as the ``vg-precomputed`` and ``open-clip`` encoders give). When the dimensions
differ the baseline is skipped and the reason recorded; when they agree but the encoders do not share
a space (the demo's sentence encoder and CNN, say) it is computed and labelled "not a shared space".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from vscn.evaluation.result import TIE_RULE, EvaluationResult, per_turn_metrics
from vscn.evaluation.split import (DEFAULT_BATCH_SIZE, FeatureSource, check_turns, iter_feature_batches,
                                   split_info)
from vscn.metrics import TurnMetrics, target_ranks
from vscn.model.config import VSCNConfig

BASELINES = ("cosine_mean", "cosine_sum")
DEFAULT_MAX_TURNS = VSCNConfig.max_turns
# Encoders whose text and image features share one embedding space when both sides use them
SHARED_SPACE_ENCODERS = ("vg-precomputed", "open-clip")
QUERY_CHUNK = 512  # query sets scored against the whole gallery at a time
_DESCRIPTIONS = {"cosine_mean": "cosine of the global image feature with the mean query feature",
                 "cosine_sum": "sum of the cosines of the global image feature with each query feature"}


def shared_space(attrs: dict[str, Any]) -> tuple[bool, str]:
    """Whether a feature file's query and global features come from one embedding space, and why."""
    image, text = attrs.get("image_encoder"), attrs.get("text_encoder")
    if image != text or image not in SHARED_SPACE_ENCODERS:
        return False, f"image encoder {image!r} and text encoder {text!r} do not embed into one space"
    models = [json.loads(attrs.get(f"{side}_encoder_settings", "{}")).get("model_name")
              for side in ("image", "text")]
    if models[0] != models[1]:
        return False, f"{image} image model {models[0]!r} and text model {models[1]!r} differ"
    return True, f"image and text features both from {image}"


def cosine_scores(queries: Tensor, global_features: Tensor, turns: Sequence[int], name: str) -> Tensor:
    """Baseline ``name`` scores: queries ``(Q, T, Dq)``, global features ``(N, Dq)`` ->
    ``(Q, N, len(turns))`` [query set, image]."""
    turn_index = torch.as_tensor(list(turns), dtype=torch.long, device=queries.device) - 1
    images = F.normalize(global_features, dim=-1)  # (N, D)
    if name == "cosine_mean":
        counts = torch.arange(1, queries.shape[1] + 1, device=queries.device, dtype=queries.dtype)
        means = queries.cumsum(dim=1) / counts[:, None]  # (Q, T, D): mean of the first t queries
        scores = F.normalize(means, dim=-1) @ images.T  # (Q, T, N)
    elif name == "cosine_sum":
        scores = (F.normalize(queries, dim=-1) @ images.T).cumsum(dim=1)  # (Q, T, N)
    else:
        raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
    return scores[:, turn_index].transpose(1, 2)  # (Q, N, turns)


def baseline_metrics(queries: Tensor, global_features: Tensor, turns: Sequence[int], name: str,
                     query_chunk: int = QUERY_CHUNK) -> tuple[TurnMetrics, ...]:
    """Metrics of baseline ``name``, query set i targeting image i, over chunks of query sets."""
    ranks = []
    for start in range(0, queries.shape[0], query_chunk):
        scores = cosine_scores(queries[start:start + query_chunk], global_features, turns, name)  # (Bq, N, K)
        targets = torch.arange(start, start + scores.shape[0], device=queries.device)
        ranks.append(torch.stack([target_ranks(scores[..., k], targets) for k in range(len(turns))]))
    return per_turn_metrics(torch.cat(ranks, dim=1), turns)  # ranks (turns, Q)


def evaluate_baseline(source: FeatureSource, name: str, max_turns: int = DEFAULT_MAX_TURNS,
                      turns: Sequence[int] | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                      device: torch.device | str = "cpu") -> EvaluationResult:
    """Baseline ``name`` (`BASELINES`) on a split's first ``max_turns`` queries, turns default 1..T."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
    turns = check_turns(range(1, max_turns + 1) if turns is None else turns, max_turns)
    path, image_ids, attrs = split_info(source)
    n = len(image_ids)
    shared, why = shared_space(attrs)
    query_dim, global_dim = int(attrs.get("query_dim", -1)), int(attrs.get("global_dim", -1))
    extra = {"kind": "baseline", "shared_space": shared, "shared_space_reason": why,
             "tie_rule": TIE_RULE}
    label = f"zero-shot baseline: {_DESCRIPTIONS[name]}" + ("" if shared else " (not a shared space)")
    if query_dim != global_dim:
        reason = (f"{Path(path).name}: query features are {query_dim}-d and global image features "
                  f"{global_dim}-d, so no cosine between them exists")
        return EvaluationResult(name, label, n, n, (), extra, skipped=reason)
    queries, global_features = [], []
    for batch in iter_feature_batches(source, max_turns, batch_size):
        queries.append(batch.queries.to(device))
        global_features.append(batch.global_features.to(device))
    metrics = baseline_metrics(torch.cat(queries), torch.cat(global_features), turns, name)
    return EvaluationResult(name, label, n, n, metrics, extra)
