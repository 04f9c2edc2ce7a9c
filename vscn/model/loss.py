"""Training losses: symmetric InfoNCE per turn and the distillation term."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def info_nce(scores: Tensor, tau: float) -> Tensor:
    """Symmetric InfoNCE of square score matrices whose matching pairs lie on the diagonal.

    scores ``(B, B, ...)``: any trailing dims (e.g. turns) are independent matrices. Returns ``(...)``:
    ``-(sum_i logsoftmax_row(tau S)_ii + sum_i logsoftmax_col(tau S)_ii) / B``. Symmetric, so the
    orientation ([query, image] or [image, query]) does not matter.
    """
    logits = tau * scores
    rows = torch.diagonal(F.log_softmax(logits, dim=1), dim1=0, dim2=1)  # (..., B)
    cols = torch.diagonal(F.log_softmax(logits, dim=0), dim1=0, dim2=1)  # (..., B)
    return -(rows.sum(-1) + cols.sum(-1)) / scores.shape[0]


@dataclass(frozen=True)
class LossTerms:
    """Scalars of one training step; ``total`` is the one to back-propagate."""

    total: Tensor
    info_nce: Tensor  # mean over turns of S1 and of S2, plus the global term
    distill: Tensor  # L1 between the summary token and the projected global feature


def vscn_loss(s1: Tensor, s2: Tensor, g: Tensor, summary: Tensor, distill_target: Tensor,
              tau: float, distill_weight: float) -> LossTerms:
    """``mean_t InfoNCE(S1_t) + mean_t InfoNCE(S2_t) + InfoNCE(G) + w * L1(summary, target)``.

    s1, s2 ``(B, B, n)``; g ``(B, B)``; summary, distill_target ``(B, d)``.
    """
    contrastive = info_nce(s1, tau).mean() + info_nce(s2, tau).mean() + info_nce(g, tau)
    distill = F.l1_loss(summary, distill_target)
    return LossTerms(total=contrastive + distill_weight * distill, info_nce=contrastive, distill=distill)
