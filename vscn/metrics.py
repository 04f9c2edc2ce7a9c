"""Retrieval metrics from score matrices: the rank of each query's target image in the gallery.

Ranks are 1-based. Ties count against the target (an image scoring exactly as high as the target is
ranked above it), so a model that gives every image the same score ranks every target last instead of
first. Recalls are in percent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

RECALL_CUTOFFS = (1, 5, 10)


@dataclass(frozen=True)
class TurnMetrics:
    """Retrieval metrics of one turn (1-based): recalls in percent, ranks 1-based."""

    turn: int
    r1: float
    r5: float
    r10: float
    medr: float
    meanr: float
    mrr: float

    def as_dict(self) -> dict[str, float]:
        """Field name -> value, ``turn`` included."""
        return asdict(self)


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Rank of each query's target among the gallery.

    scores: (Q, N) score of query q against gallery image n, higher is better.
    targets: (Q,) gallery index of each query's target image.
    Returns (Q,) int64 ranks in 1..N.
    """
    if scores.dim() != 2 or targets.shape != scores.shape[:1]:
        raise ValueError(f"scores must be (Q, N) and targets (Q,), got {tuple(scores.shape)} and {tuple(targets.shape)}")
    if not torch.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")
    target_scores = scores.gather(1, targets[:, None])  # (Q, 1)
    at_least_as_high = (scores >= target_scores).sum(dim=1)  # (Q,) includes the target itself
    return at_least_as_high.long()


def metrics_from_ranks(ranks: torch.Tensor, turn: int) -> TurnMetrics:
    """R@1/5/10 (percent), median and mean rank, and mean reciprocal rank of 1-based ranks (Q,)."""
    ranks = ranks.double()
    recalls = [100.0 * (ranks <= k).double().mean().item() for k in RECALL_CUTOFFS]
    return TurnMetrics(
        turn=turn,
        r1=recalls[0],
        r5=recalls[1],
        r10=recalls[2],
        medr=ranks.quantile(0.5).item(),  # the mean of the middle two for an even count
        meanr=ranks.mean().item(),
        mrr=(1.0 / ranks).mean().item(),
    )
