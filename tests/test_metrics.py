"""Retrieval metrics on hand-made score matrices."""

import pytest
import torch

from vscn.metrics import metrics_from_ranks, target_ranks


def test_best_scores_rank_every_target_first():
    scores = torch.eye(4) + 0.1  # each query's target is its own index and scores highest
    ranks = target_ranks(scores, torch.arange(4))
    assert ranks.tolist() == [1, 1, 1, 1]
    metrics = metrics_from_ranks(ranks, turn=1)
    assert (metrics.r1, metrics.r5, metrics.r10, metrics.medr, metrics.meanr, metrics.mrr) == (100, 100, 100, 1, 1, 1)


def test_worst_scores_rank_every_target_last():
    scores = -torch.eye(12)
    ranks = target_ranks(scores, torch.arange(12))
    assert ranks.tolist() == [12] * 12
    metrics = metrics_from_ranks(ranks, turn=3)
    assert metrics.turn == 3
    assert (metrics.r1, metrics.r5, metrics.r10) == (0, 0, 0)
    assert metrics.medr == 12 and metrics.meanr == 12
    assert metrics.mrr == pytest.approx(1 / 12)


def test_ties_count_against_the_target():
    scores = torch.tensor([[0.5, 0.5, 0.5], [0.9, 0.2, 0.2], [0.0, 0.0, 0.0]])
    ranks = target_ranks(scores, torch.tensor([0, 1, 2]))
    assert ranks.tolist() == [3, 3, 3]


def test_targets_need_not_be_the_diagonal():
    scores = torch.tensor([[0.1, 0.3, 0.2], [0.3, 0.2, 0.1]])
    ranks = target_ranks(scores, torch.tensor([2, 0]))
    assert ranks.tolist() == [2, 1]


def test_mixed_ranks_give_recalls_median_and_mrr():
    ranks = torch.tensor([1, 2, 5, 6, 10, 20])
    metrics = metrics_from_ranks(ranks, turn=1)
    assert metrics.r1 == pytest.approx(100 / 6)
    assert metrics.r5 == pytest.approx(300 / 6)
    assert metrics.r10 == pytest.approx(500 / 6)
    assert metrics.medr == 5.5
    assert metrics.meanr == pytest.approx(44 / 6)
    assert metrics.mrr == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 6 + 1 / 10 + 1 / 20) / 6)


def test_bad_scores_are_rejected():
    with pytest.raises(ValueError, match="NaN"):
        target_ranks(torch.tensor([[float("nan"), 0.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="must be"):
        target_ranks(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))
