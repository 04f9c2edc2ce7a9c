"""The `paper` protocol: the official sharded test scoring, reproduced so results sit beside the paper's.

The official evaluation cuts images and query sets into shards of ``shard_size`` (floor division:
the last ``N mod shard_size`` images and query sets are never scored), and for each pair of shards
runs the model on (image shard, query-set shard) with image b contextualised by query set b of the
query shard. The block it stores at ``sims[image shard, query shard]`` adds S1 and S2 as
[query, image] to G as [image, query]. This module keeps all of that on purpose; the `strict`
protocol lives elsewhere and uses `VSCN.pair_turn_scores`.
"""

from __future__ import annotations

import torch
from torch import Tensor
from tqdm import tqdm

from vscn.metrics import TurnMetrics, metrics_from_ranks, target_ranks
from vscn.model.vscn import VSCN

# Shard size of the official evaluation (`shard_attn_scores_test`)
PAPER_SHARD_SIZE = 200


@torch.no_grad()
def paper_shard_scores(model: VSCN, r: Tensor, c: Tensor, q: Tensor, turn: int,
                       shard_size: int = PAPER_SHARD_SIZE) -> Tensor:
    """The official score matrix of one turn, float64 ``(n, n)`` with rows images, columns query sets.

    r ``(N, R, d)`` and c ``(N, d)`` from `VSCN.encode_images`, q ``(N, T, d)`` from
    `VSCN.encode_queries` (scene i's queries describe image i); ``n = (N // shard_size) * shard_size``.
    The model must be in eval mode.
    """
    if model.training:
        raise ValueError("paper_shard_scores needs the model in eval mode (call model.eval())")
    if not 1 <= turn <= q.shape[1]:
        raise ValueError(f"turn must be within 1..{q.shape[1]}, got {turn}")
    num_shards = r.shape[0] // shard_size
    covered = num_shards * shard_size
    slots = torch.arange(turn, device=q.device)
    sims = torch.zeros(covered, covered, dtype=torch.float64, device=q.device)
    shard_pairs = [(i, j) for i in range(num_shards) for j in range(num_shards)]
    for i, j in tqdm(shard_pairs, desc=f"paper scores, turn {turn}", disable=None):
        images = slice(i * shard_size, (i + 1) * shard_size)
        queries = slice(j * shard_size, (j + 1) * shard_size)
        scores = model.batch_scores(r[images], c[images], q[queries], slots)
        # official mix: S1/S2 [query, image] plus G transposed to [image, query]
        block = (scores["S1"][..., -1] + scores["S2"][..., -1] + scores["G"].T) / 3  # (s, s)
        sims[images, queries] = block.double()
    return sims


def paper_metrics(sims: Tensor, turn: int) -> TurnMetrics:
    """Retrieval metrics of a paper score matrix ``(n, n)`` [image, query set]; set i targets image i.

    The official R@1/5/10 and mean rank; a tie counts against the target (`vscn.metrics`), where the
    official ``argsort`` order would be arbitrary.
    """
    scores = sims.T  # (queries, images)
    targets = torch.arange(scores.shape[0], device=scores.device)
    return metrics_from_ranks(target_ranks(scores, targets), turn)
