"""Context-perception scores (S1 on regions r, S2 on cross-modal regions u) for every turn at once.

For queries q_1..q_T of one scene and regions x_1..x_R of one image, with
``s[m, k] = LeakyReLU(<x_k, q_m>)``, the score of turn t is
``mean_k sum_{m<=t} softmax_{m<=t}(s[:, k])_m * s[m, k]``: each region attends over the first t
queries and keeps the attention-weighted similarity.

A softmax-weighted mean over the first t entries is a ratio of prefix sums,
``sum_{m<=t} e^{s_m} s_m / sum_{m<=t} e^{s_m}``, so two cumulative sums give every turn at once.
Shifting by the per-region maximum over all T queries (constant in m, so it cancels in the ratio)
keeps every exponential <= 1. The result equals the per-turn softmax to float rounding as long as
one region's scores span less than about 80 (float32 ``exp`` stays normal down to ``e^-87``); with
unit-norm queries a region's scores span at most ``1.1 * ||x_k||``. Only the similarities are kept
for the backward pass, which recomputes the prefix sums, so S1/S2 cost two ``(Bq, T, Bi, R)``
tensors of training memory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class _PrefixAttention(torch.autograd.Function):
    """``f[t] = sum_{m<=t} w_m s_m / sum_{m<=t} w_m`` along dim 1, with ``w_m = e^{s_m - max s}``.

    Saves only its input: backward recomputes the prefix sums and applies
    ``df_t / ds_m = (w_m / D_t) (1 + s_m - f_t)`` for ``m <= t`` (D_t the denominator), summing over
    ``t >= m`` with reversed cumulative sums.
    """

    @staticmethod
    def _prefix_sums(sims: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        weights = torch.exp(sims - sims.amax(dim=1, keepdim=True))  # (N, T, ...), each <= 1
        norm = weights.cumsum(dim=1)  # (N, T, ...)
        return weights, norm, (weights * sims).cumsum(dim=1) / norm

    @staticmethod
    def forward(ctx, sims: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(sims)
        return _PrefixAttention._prefix_sums(sims)[2]

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (sims,) = ctx.saved_tensors
        weights, norm, scores = _PrefixAttention._prefix_sums(sims)
        per_norm = grad / norm  # (N, T, ...)

        def suffix_sum(x: Tensor) -> Tensor:  # sum over t >= m
            return x.flip(1).cumsum(dim=1).flip(1)

        return weights * ((1 + sims) * suffix_sum(per_norm) - suffix_sum(per_norm * scores))


def prefix_attention_scores(sims: Tensor) -> Tensor:
    """sims ``(N, T, ..., R)``: query m on dim 1, region k last -> ``(N, T, ...)``, every turn t."""
    # at least float32: half-precision exp/cumsum would lose the small attention weights
    sims = sims.to(torch.promote_types(sims.dtype, torch.float32))
    return _PrefixAttention.apply(sims).mean(dim=-1)  # (N, T, ...)


def local_scores(queries: Tensor, regions: Tensor, slope: float) -> Tensor:
    """Every query set against every image.

    queries ``(Bq, T, d)``, regions ``(Bi, R, d)`` -> ``(Bq, Bi, T)``: entry ``[i, j, t - 1]`` scores
    the first t queries of set i against image j (orientation [query, image]).
    """
    sims = F.leaky_relu(torch.einsum("imd,jkd->imjk", queries, regions), slope)  # (Bq, T, Bi, R)
    return prefix_attention_scores(sims).transpose(1, 2)  # (Bq, Bi, T)


def paired_local_scores(queries: Tensor, regions: Tensor, slope: float) -> Tensor:
    """Query set p against image p only.

    queries ``(P, T, d)``, regions ``(P, R, d)`` -> ``(P, T)``, every turn.
    """
    sims = F.leaky_relu(torch.einsum("pmd,pkd->pmk", queries, regions), slope)  # (P, T, R)
    return prefix_attention_scores(sims)  # (P, T)
