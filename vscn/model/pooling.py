"""Global embeddings: GPO over the queries of a turn and VisualSA over the regions of an image."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from vscn.model.encoders import l2_normalize, xavier_linear_

# Wavelength base of the sin/cos position codes (the Transformer's)
_POSITION_BASE = 10000.0


def prefix_mask(length: int, device: torch.device) -> Tensor:
    """``(length, length)`` bool; row ``t - 1`` is True on the first t positions."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def sinusoidal_positions(length: int, dim: int, device: torch.device) -> Tensor:
    """``(length, dim)`` sin/cos codes: even columns sin, odd columns cos."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)  # (L, 1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32)
                     * (-math.log(_POSITION_BASE) / dim))  # (dim/2,)
    codes = torch.zeros(length, dim, device=device)
    codes[:, 0::2] = torch.sin(position * freq)
    codes[:, 1::2] = torch.cos(position * freq)
    return codes


class GPO(nn.Module):
    """Generalised pooling operator over a set of query embeddings.

    Pool weights come from position codes only (BiGRU, both directions averaged, Linear -> 1,
    softmax with a temperature), so every scene with the same number of queries shares them. Each
    feature dimension is sorted in descending order across the queries before the weighted sum, so
    the result does not depend on query order; it is not normalised.
    """

    def __init__(self, pe_dim: int, hidden_dim: int, temperature: float) -> None:
        super().__init__()
        self.pe_dim = pe_dim
        self.temperature = temperature
        self.gru = nn.GRU(pe_dim, hidden_dim, batch_first=True, bidirectional=True)
        self.score = nn.Linear(hidden_dim, 1, bias=False)

    def prefix_weights(self, length: int, device: torch.device) -> Tensor:
        """``(length, length)`` pool weights; row ``t - 1`` pools the first t queries (zeros after).

        One GRU call over ``length`` packed sequences of lengths 1..length.
        """
        lengths = torch.arange(1, length + 1)  # pack_padded_sequence wants them on the CPU
        codes = sinusoidal_positions(length, self.pe_dim, device)
        codes = codes.unsqueeze(0).expand(length, length, self.pe_dim)  # (prefixes, L, pe)
        packed = pack_padded_sequence(codes, lengths, batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=length)
        forward_dir, backward_dir = out.chunk(2, dim=-1)  # (prefixes, L, hidden) each
        scores = self.score((forward_dir + backward_dir) / 2).squeeze(-1)  # (prefixes, L)
        scores = scores.masked_fill(~prefix_mask(length, device), float("-inf"))
        return torch.softmax(scores / self.temperature, dim=-1)  # (prefixes, L)

    def pool_prefixes(self, queries: Tensor) -> Tensor:
        """queries ``(B, n, d)`` -> ``(B, n, d)``: entry ``t - 1`` pools the first t queries."""
        n = queries.shape[1]
        weights = self.prefix_weights(n, queries.device)  # (n, n)
        valid = prefix_mask(n, queries.device)  # (prefixes, n)
        # per prefix, sort each dimension of its own queries; hidden queries sink to the end
        masked = queries.unsqueeze(1).masked_fill(~valid[:, :, None], float("-inf"))  # (B, n, n, d)
        ordered = masked.sort(dim=2, descending=True).values.masked_fill(~valid[:, :, None], 0.0)
        return torch.einsum("bpmd,pm->bpd", ordered, weights)  # (B, n, d)

    def forward(self, queries: Tensor) -> Tensor:
        """queries ``(B, n, d)`` -> ``(B, d)``: pools all n queries."""
        n = queries.shape[1]
        weights = self.prefix_weights(n, queries.device)[-1]  # (n,)
        ordered = queries.sort(dim=1, descending=True).values  # (B, n, d)
        return torch.einsum("bmd,m->bd", ordered, weights)  # (B, d)


class VisualSA(nn.Module):
    """Self-attention pooling of contextual regions, guided by the image's summary token.

    ``l = drop(tanh(BN_R(Linear(u))))`` (BatchNorm over the region axis, one channel per region slot),
    ``g = drop(tanh(BN_d(Linear(c))))``, ``w = softmax_k(Linear_{d->1}(l * g))``,
    ``img = L2norm(sum_k w_k u_k)``.
    """

    def __init__(self, embed_dim: int, num_regions: int, dropout: float, eps: float) -> None:
        super().__init__()
        self.local_proj = xavier_linear_(nn.Linear(embed_dim, embed_dim))
        self.local_norm = nn.BatchNorm1d(num_regions)
        self.global_proj = xavier_linear_(nn.Linear(embed_dim, embed_dim))
        self.global_norm = nn.BatchNorm1d(embed_dim)
        self.score = xavier_linear_(nn.Linear(embed_dim, 1))
        self.dropout = nn.Dropout(dropout)
        self.eps = eps

    def forward(self, regions: Tensor, summary: Tensor) -> Tensor:
        """regions ``(B, R, d)``, summary ``(B, d)`` -> L2-normalised image embedding ``(B, d)``."""
        local = self.dropout(torch.tanh(self.local_norm(self.local_proj(regions))))  # (B, R, d)
        guide = self.dropout(torch.tanh(self.global_norm(self.global_proj(summary))))  # (B, d)
        weights = torch.softmax(self.score(local * guide.unsqueeze(1)).squeeze(-1), dim=1)  # (B, R)
        return l2_normalize(torch.einsum("br,brd->bd", weights, regions), self.eps)  # (B, d)
