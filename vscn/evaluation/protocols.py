"""Evaluating a trained model: the `strict` and `paper` protocols and the S1-only and G-only ablations.

- ``strict`` (default): leak-free two-stage ranking of all N images (`vscn.evaluation.strict`).
- ``paper``: the official sharded scoring (`vscn.model.paper_protocol`); covers only
  ``floor(N / shard_size) * shard_size`` query sets and images.
- ``s1_only``: all N images ranked by S1 alone, exact and leak-free (stage one of ``strict``).
- ``g_only``: the top K images by S1 rescored by G alone, each pair scored on its own (G needs the
  cross-modal output of the pair, so it is as expensive per pair as the fused score); K = N is exact.

``strict``, ``s1_only`` and ``g_only`` come out of one pass, so asking for several costs one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vscn.evaluation.result import TIE_RULE, EvaluationResult, Rankings, per_turn_metrics
from vscn.evaluation.split import (DEFAULT_BATCH_SIZE, EncodedSplit, FeatureSource, check_turns,
                                   encode_split, eval_mode)
from vscn.evaluation.strict import (DEFAULT_PAIR_BATCH, DEFAULT_SCORE_BUDGET, DEFAULT_TOP_K,
                                    StrictRanking, strict_rankings)
from vscn.metrics import RECALL_CUTOFFS
from vscn.model.paper_protocol import PAPER_SHARD_SIZE, paper_metrics, paper_shard_scores
from vscn.model.vscn import VSCN

PROTOCOLS = ("strict", "paper")
ABLATIONS = ("s1_only", "g_only")
EVALUATIONS = (*PROTOCOLS, *ABLATIONS)
DEFAULT_SHOW = 10  # images per query set and turn kept in the rankings file
VALIDATION_TOP_K = 10  # candidates rescored per query set in the per-epoch validation pass
VALIDATION_TURNS = (1,)  # model selection uses turn 1 (R@1 + R@5 + R@10, as the official code)


def _strict_label(top_k: int, n: int) -> str:
    exact = "exact" if top_k >= n else f"top {top_k} by S1 rescored"
    return (f"strict: all {n} images, fused (S1+S2+G)/3 pairwise, {exact}; "
            "each image sees only the query set it is scored against")


def _strict_results(ranking: StrictRanking, split: EncodedSplit, top_k: int,
                    names: Sequence[str]) -> dict[str, EvaluationResult]:
    n = split.size
    common = {"top_k": top_k, "tie_rule": TIE_RULE}
    results = {
        "strict": EvaluationResult(
            "strict", _strict_label(top_k, n), n, n, per_turn_metrics(ranking.rank["fused"], ranking.turns),
            {**common, "kind": "protocol"},
            Rankings(split.image_ids.astype(np.int64), np.asarray(ranking.turns, np.int64),
                     ranking.top_index["fused"].cpu().numpy().astype(np.int64),
                     ranking.top_scores["fused"].float().cpu().numpy())),
        "s1_only": EvaluationResult(
            "s1_only", f"ablation: S1 only (visual context perception), all {n} images, exact and leak-free",
            n, n, per_turn_metrics(ranking.s1_rank, ranking.turns), {**common, "kind": "ablation"}),
        "g_only": EvaluationResult(
            "g_only", f"ablation: G only (global), top {top_k} by S1 rescored by pairwise G, leak-free",
            n, n, per_turn_metrics(ranking.rank["G"], ranking.turns), {**common, "kind": "ablation"}),
    }
    return {name: results[name] for name in names}


def _paper_result(model: VSCN, split: EncodedSplit, turns: Sequence[int], shard_size: int) -> EvaluationResult:
    n = split.size
    covered = (n // shard_size) * shard_size
    if covered == 0:
        raise ValueError(f"paper protocol: {n} scenes are fewer than one shard of {shard_size}; it would "
                         "score nothing")
    metrics = tuple(paper_metrics(paper_shard_scores(model, split.r, split.c, split.q, turn, shard_size), turn)
                    for turn in turns)
    label = (f"paper: official sharded scoring (shards of {shard_size}, images contextualised with the "
             f"query set at their shard position, mixed orientations), covers {covered} of {n}")
    return EvaluationResult("paper", label, covered, covered, metrics,
                            {"kind": "protocol", "shard_size": shard_size, "n_scenes": n,
                             "n_not_covered": n - covered,
                             "tie_rule": TIE_RULE})


@torch.no_grad()
def evaluate_encoded(model: VSCN, split: EncodedSplit, names: Sequence[str] = ("strict",),
                     turns: Sequence[int] | None = None, top_k: int = DEFAULT_TOP_K,
                     shard_size: int = PAPER_SHARD_SIZE, show: int = DEFAULT_SHOW,
                     pair_batch: int = DEFAULT_PAIR_BATCH,
                     score_budget: int = DEFAULT_SCORE_BUDGET) -> dict[str, EvaluationResult]:
    """The evaluations ``names`` (from `EVALUATIONS`) of an encoded split, keyed by name.

    ``turns`` default 1..T; ``top_k`` (capped at N) is K of strict and g_only; ``show`` images per
    query set and turn go into the strict rankings (at most K).
    """
    unknown = sorted(set(names) - set(EVALUATIONS))
    if unknown or not names:
        raise ValueError(f"unknown evaluation(s) {unknown or 'none given'}; known: {', '.join(EVALUATIONS)}")
    turns = check_turns(range(1, model.config.max_turns + 1) if turns is None else turns,
                         model.config.max_turns)
    if top_k < 1 or shard_size < 1 or show < 1:
        raise ValueError(f"top_k, shard_size and show must be >= 1, got {top_k}, {shard_size}, {show}")
    results: dict[str, EvaluationResult] = {}
    with eval_mode(model):
        pairwise = [name for name in names if name != "paper"]
        if pairwise:
            top_k = min(top_k, split.size)
            ranking = strict_rankings(model, split.r, split.c, split.q, turns, top_k, min(show, top_k),
                                      pair_batch, score_budget)
            results.update(_strict_results(ranking, split, top_k, pairwise))
        if "paper" in names:
            results["paper"] = _paper_result(model, split, turns, shard_size)
    return {name: results[name] for name in names}


def evaluate_model(model: VSCN, source: FeatureSource, names: Sequence[str] = ("strict",),
                   turns: Sequence[int] | None = None, top_k: int = DEFAULT_TOP_K,
                   shard_size: int = PAPER_SHARD_SIZE, batch_size: int = DEFAULT_BATCH_SIZE,
                   device: torch.device | str | None = None, show: int = DEFAULT_SHOW,
                   pair_batch: int = DEFAULT_PAIR_BATCH,
                   score_budget: int = DEFAULT_SCORE_BUDGET) -> dict[str, EvaluationResult]:
    """Encode a split (feature file or loaded `RawSplit`) once and run the evaluations ``names``.

    ``device`` defaults to the model's; ``batch_size`` scenes are read and encoded at a time.
    """
    split = encode_split(model, source, batch_size, device)
    return evaluate_encoded(model, split, names, turns, top_k, shard_size, show, pair_batch, score_budget)


def evaluate_protocol(model: VSCN, feature_path: Path | str, protocol: str = "strict",
                      turns: Sequence[int] | None = None, top_k: int = DEFAULT_TOP_K,
                      shard_size: int = PAPER_SHARD_SIZE, batch_size: int = DEFAULT_BATCH_SIZE,
                      device: torch.device | str | None = None) -> EvaluationResult:
    """One protocol or ablation (`EVALUATIONS`) of a feature file; see `evaluate_model`."""
    return evaluate_model(model, feature_path, (protocol,), turns, top_k, shard_size, batch_size,
                          device)[protocol]


def validation_metrics(model: VSCN, source: FeatureSource, protocol: str = "strict",
                       turns: Sequence[int] = VALIDATION_TURNS, top_k: int = VALIDATION_TOP_K,
                       shard_size: int = PAPER_SHARD_SIZE, batch_size: int = DEFAULT_BATCH_SIZE,
                       device: torch.device | str | None = None) -> dict[str, float]:
    """A cheap per-epoch validation: ``turn{t}_{metric}`` for each turn and metric, and ``rsum``
    (R@1 + R@5 + R@10 of the first turn, the model-selection score). Pass a `RawSplit`
    (`load_split`) to avoid re-reading the file every epoch. The model's train/eval mode is restored.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    result = evaluate_model(model, source, (protocol,), turns, top_k, shard_size, batch_size, device,
                            show=1)[protocol]
    values = {f"turn{m.turn}_{key}": float(value) for m in result.turns
              for key, value in m.as_dict().items() if key != "turn"}
    first = result.turns[0].as_dict()
    values["rsum"] = float(sum(first[f"r{k}"] for k in RECALL_CUTOFFS))
    return values
