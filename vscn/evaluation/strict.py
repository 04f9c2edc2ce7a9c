"""The `strict` protocol: every gallery image ranked, no image ever contextualised with another query.

Stage one scores every query set against every image with S1 (the regions r depend on the image
alone, so S1 is leak-free) and keeps, per query set and turn, the K best images. Stage two rescores
those K with the full pairwise score: one cross-modal pass per (query set, candidate, turn) in which
the image sees only that query set's first t queries (`VSCN.pair_turn_scores`), many pairs per pass.

Final order of the gallery for a query set and turn: the K candidates by rescored score (ties keep
their S1 order), then every other image in S1 order. A target is rescored when its S1 rank is at
most K; otherwise its rank is its S1 rank (> K). Ties count against the target at both stages: its
S1 rank counts every image with S1 >= its own, its stage-two rank every candidate scoring >= its own.
With K = N every target is rescored and the ranks are those of the exact pairwise fused scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm import tqdm

from vscn.model.vscn import VSCN

DEFAULT_TOP_K = 100
DEFAULT_PAIR_BATCH = 1024  # (query set, image) pairs per cross-modal pass
# Elements of one stage-one similarity block (query sets x turns x images x regions); with a few
# float32 temporaries per element this bounds stage one's working memory to about 0.5 GiB.
DEFAULT_SCORE_BUDGET = 1 << 24
RESCORED_KEYS = ("fused", "G")  # pairwise scores stage two keeps: the full score and the G ablation


def stage_one_scores(model: VSCN, q: Tensor, r: Tensor, turns: Sequence[int],
                     score_budget: int = DEFAULT_SCORE_BUDGET) -> Tensor:
    """S1 of every query set against every image: q ``(Q, T, d)``, r ``(N, R, d)`` ->
    ``(Q, N, len(turns))``, computed over chunks of images so that no similarity block holds more
    than about ``score_budget`` elements (the caller chunks Q)."""
    turn = torch.as_tensor(list(turns), dtype=torch.long, device=q.device)  # (K,)
    q = q[:, :int(turn.max())]  # turn t needs only the first t queries
    per_image = q.shape[0] * q.shape[1] * r.shape[1]
    image_chunk = max(1, score_budget // per_image)
    parts = [model.local_scores(q, r[start:start + image_chunk])[..., turn - 1]  # (Q, chunk, K)
             for start in range(0, r.shape[0], image_chunk)]
    return torch.cat(parts, dim=1)  # (Q, N, K)


def check_finite_scores(scores: Tensor, what: str) -> None:
    """Non-finite scores would compare False with everything and put targets at rank 0."""
    if not torch.isfinite(scores).all():
        raise ValueError(f"{what} contain NaN or infinite values (diverged model or bad features?)")


def query_chunk_size(num_images: int, num_turns: int, max_turns: int, num_regions: int,
                     score_budget: int) -> int:
    """Query sets per stage-one block: their S1 rows ``(Bq, N, turns)`` and the similarity block
    of one image stay within ``score_budget`` elements."""
    return max(1, min(score_budget // (num_images * num_turns), score_budget // (max_turns * num_regions)))


@dataclass(frozen=True)
class StageOne:
    """The K best images of each query set and turn by S1, and each target's S1 rank."""

    top_index: Tensor  # (turns, Q, K) gallery rows, S1-descending
    target_rank: Tensor  # (turns, Q) 1-based S1 rank of the target, ties against it


@torch.no_grad()
def stage_one(model: VSCN, r: Tensor, q: Tensor, targets: Tensor, turns: Sequence[int], top_k: int,
              score_budget: int = DEFAULT_SCORE_BUDGET) -> StageOne:
    """Stage one over all query sets q ``(Q, T, d)`` against the gallery r ``(N, R, d)``; targets
    ``(Q,)`` the gallery row each query set describes; ``top_k`` at most N."""
    num_images = r.shape[0]
    chunk = query_chunk_size(num_images, len(turns), q.shape[1], r.shape[1], score_budget)
    top, ranks = [], []
    for start in tqdm(range(0, q.shape[0], chunk), desc="stage one (S1)", disable=None):
        s1 = stage_one_scores(model, q[start:start + chunk], r, turns, score_budget)  # (Bq, N, K)
        check_finite_scores(s1, "S1 scores")
        s1 = s1.permute(2, 0, 1)  # (turns, Bq, N)
        target = targets[start:start + chunk].expand(len(turns), -1).unsqueeze(-1)  # (turns, Bq, 1)
        ranks.append((s1 >= s1.gather(2, target)).sum(dim=2))  # (turns, Bq)
        top.append(s1.topk(top_k, dim=2).indices)  # (turns, Bq, top_k)
    return StageOne(torch.cat(top, dim=1), torch.cat(ranks, dim=1))


@torch.no_grad()
def rescore_pairs(model: VSCN, r: Tensor, c: Tensor, q: Tensor, query_index: Tensor, image_index: Tensor,
                  turn: int, pair_batch: int = DEFAULT_PAIR_BATCH) -> dict[str, Tensor]:
    """Pairwise scores at one turn of the pairs ``(q[query_index[p]], image image_index[p])``,
    ``pair_batch`` pairs per cross-modal pass -> {key: ``(P,)``} for `RESCORED_KEYS`."""
    parts: dict[str, list[Tensor]] = {key: [] for key in RESCORED_KEYS}
    for start in range(0, query_index.numel(), pair_batch):
        pairs = slice(start, start + pair_batch)
        scores = model.pair_turn_scores(r, c, q, [turn], image_index=image_index[pairs],
                                        query_index=query_index[pairs])
        for key in RESCORED_KEYS:
            parts[key].append(scores[key][:, 0])  # (chunk,)
    scores = {key: torch.cat(values) for key, values in parts.items()}
    for key, values in scores.items():
        check_finite_scores(values, f"pairwise {key} scores")
    return scores


@dataclass(frozen=True)
class StrictRanking:
    """Strict-protocol result for Q query sets at each requested turn."""

    turns: tuple[int, ...]
    s1_rank: Tensor  # (turns, Q) the target's rank by S1 alone over the whole gallery
    rank: dict[str, Tensor]  # key of RESCORED_KEYS -> (turns, Q) the target's final rank
    top_index: dict[str, Tensor]  # key -> (turns, Q, keep) gallery rows of the final top ``keep``
    top_scores: dict[str, Tensor]  # key -> (turns, Q, keep) their rescored scores


def reorder_candidates(candidates: Tensor, scores: Tensor) -> tuple[Tensor, Tensor]:
    """Candidates ``(..., K)`` in S1 order and their rescored scores -> both sorted by score, best
    first; the stable sort keeps S1 order among equal scores."""
    order = scores.argsort(dim=-1, descending=True, stable=True)
    return candidates.gather(-1, order), scores.gather(-1, order)


def final_rank(s1_rank: Tensor, candidates: Tensor, scores: Tensor, targets: Tensor) -> Tensor:
    """The target's rank in the final order (see the module docstring).

    s1_rank ``(Q,)``; candidates and their rescored scores ``(Q, K)``; targets ``(Q,)``. A target
    with S1 rank <= K is among the candidates (at most K images score >= it), so its score is there.
    """
    top_k = candidates.shape[1]
    is_target = candidates == targets.unsqueeze(1)  # (Q, K)
    target_score = scores.masked_fill(~is_target, float("-inf")).amax(dim=1, keepdim=True)  # (Q, 1)
    rescored_rank = (scores >= target_score).sum(dim=1)  # (Q,)
    return torch.where(s1_rank <= top_k, rescored_rank, s1_rank)


@torch.no_grad()
def strict_rankings(model: VSCN, r: Tensor, c: Tensor, q: Tensor, turns: Sequence[int], top_k: int,
                    keep: int, pair_batch: int = DEFAULT_PAIR_BATCH,
                    score_budget: int = DEFAULT_SCORE_BUDGET) -> StrictRanking:
    """Strict protocol on an encoded split: query set i (q ``(N, T, d)``) describes image i (r
    ``(N, R, d)``, c ``(N, d)``). ``top_k`` is capped at N; the first ``keep`` (at most K) images of
    each final order are kept. The model must be in eval mode."""
    if model.training:
        raise ValueError("strict_rankings needs the model in eval mode (call model.eval())")
    num_queries, num_images = q.shape[0], r.shape[0]
    top_k = min(top_k, num_images)
    targets = torch.arange(num_queries, device=q.device)
    first = stage_one(model, r, q, targets, turns, top_k, score_budget)
    query_index = targets.repeat_interleave(top_k)  # (Q * K,) pair p -> its query set
    rank = {key: [] for key in RESCORED_KEYS}
    top_index = {key: [] for key in RESCORED_KEYS}
    top_scores = {key: [] for key in RESCORED_KEYS}
    for k, turn in enumerate(tqdm(turns, desc="stage two (pairwise rescoring)", disable=None)):
        candidates = first.top_index[k]  # (Q, K)
        scores = rescore_pairs(model, r, c, q, query_index, candidates.flatten(), turn, pair_batch)
        for key in RESCORED_KEYS:
            key_scores = scores[key].view(num_queries, top_k)  # (Q, K)
            rank[key].append(final_rank(first.target_rank[k], candidates, key_scores, targets))
            ordered, ordered_scores = reorder_candidates(candidates, key_scores)
            top_index[key].append(ordered[:, :keep])
            top_scores[key].append(ordered_scores[:, :keep])
    return StrictRanking(tuple(turns), first.target_rank, {k: torch.stack(v) for k, v in rank.items()},
                         {k: torch.stack(v) for k, v in top_index.items()},
                         {k: torch.stack(v) for k, v in top_scores.items()})


# ------------------------------------------------------------------------------------ search

@dataclass(frozen=True)
class GalleryRanking:
    """The whole gallery ordered for one query set."""

    order: Tensor  # (N,) gallery rows, best first
    scores: Tensor  # (N,) the score behind each position: fused for the first num_rescored, then S1
    num_rescored: int  # K


def pad_query_slots(query_features: Tensor, max_turns: int) -> tuple[Tensor, int]:
    """One query set ``(n, Dq)`` with 1 <= n <= T -> ``(1, T, Dq)`` zero-padded, and the turn n.

    The padding slots never reach a score: S1 and GPO of turn n read only the first n slots and the
    cross-modal transformer masks the rest.
    """
    count = query_features.shape[0]
    if query_features.dim() != 2 or not 1 <= count <= max_turns:
        raise ValueError(f"expected one query set of shape (n, Dq) with 1 <= n <= {max_turns}, "
                         f"got {tuple(query_features.shape)}")
    padding = query_features.new_zeros(max_turns - count, query_features.shape[1])
    return torch.cat([query_features, padding]).unsqueeze(0), count  # (1, T, Dq)


@torch.no_grad()
def rank_gallery(model: VSCN, r: Tensor, c: Tensor, query_features: Tensor, top_k: int = DEFAULT_TOP_K,
                 pair_batch: int = DEFAULT_PAIR_BATCH,
                 score_budget: int = DEFAULT_SCORE_BUDGET) -> GalleryRanking:
    """Strict-protocol ranking of a gallery (r ``(N, R, d)``, c ``(N, d)`` from `VSCN.encode_images`,
    e.g. computed once and cached) for one query set's features ``(n, Dq)``, using all n queries.

    The model must be in eval mode.
    """
    if model.training:
        raise ValueError("rank_gallery needs the model in eval mode (call model.eval())")
    padded, turn = pad_query_slots(query_features.to(r.device), model.config.max_turns)
    q = model.encode_queries(padded)  # (1, T, d)
    s1 = stage_one_scores(model, q, r, [turn], score_budget)[0, :, 0]  # (N,)
    check_finite_scores(s1, "S1 scores")
    s1_scores, s1_order = s1.sort(descending=True, stable=True)  # (N,), (N,)
    top_k = min(top_k, r.shape[0])
    candidates = s1_order[:top_k]  # (K,)
    fused = rescore_pairs(model, r, c, q, torch.zeros_like(candidates), candidates, turn,
                          pair_batch)["fused"]  # (K,)
    ordered, ordered_scores = reorder_candidates(candidates, fused)
    return GalleryRanking(torch.cat([ordered, s1_order[top_k:]]),
                          torch.cat([ordered_scores, s1_scores[top_k:]]), top_k)
