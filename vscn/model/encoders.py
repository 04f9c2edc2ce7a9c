"""Input projections: regions and queries into the joint space, and the distillation head."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def l2_normalize(x: Tensor, eps: float, dim: int = -1) -> Tensor:
    """``x / (||x|| + eps)``: the official formula (eps added to the norm, not a clamp)."""
    return x / (x.norm(dim=dim, keepdim=True) + eps)


def xavier_linear_(layer: nn.Linear) -> nn.Linear:
    """Xavier-uniform weights and zero bias, as the official encoders initialise their Linear layers."""
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class FeatureEncoder(nn.Module):
    """``Linear(in_dim, embed_dim)`` then L2 normalisation of every vector.

    Serves both the region encoder (input ``(B, R, Dv)``) and the query encoder (``(B, T, Dq)``).
    """

    def __init__(self, in_dim: int, embed_dim: int, eps: float) -> None:
        super().__init__()
        self.linear = xavier_linear_(nn.Linear(in_dim, embed_dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return l2_normalize(self.linear(x), self.eps)  # (..., d)


class DistillationHead(nn.Module):
    """``Linear(Dg, d) -> BatchNorm -> ReLU -> Linear(d, d)`` on the global image feature.

    Its output is the target the summary token is pulled towards (training only). PyTorch's default
    initialisation, as the official model leaves this MLP untouched.
    """

    def __init__(self, global_dim: int, embed_dim: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(global_dim, embed_dim)
        self.norm = nn.BatchNorm1d(embed_dim)
        self.out = nn.Linear(embed_dim, embed_dim)

    def forward(self, global_feats: Tensor) -> Tensor:
        return self.out(torch.relu(self.norm(self.hidden(global_feats))))  # (B, d)
