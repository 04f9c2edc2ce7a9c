"""The context layer shared by the visual and the cross-modal context transformers."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint


class ContextLayer(nn.Module):
    """Post-LN transformer encoder layer with a learned positional table added to queries and keys.

    ``a = MHA(x + P, x + P, x)``, ``x = LN1(x + drop(a))``, ``x = LN2(x + drop(W2 drop(relu(W1 x))))``.
    Values carry no position, so the table only steers who attends to whom.
    """

    def __init__(self, num_tokens: int, embed_dim: int, num_heads: int, ffn_dim: int,
                 dropout: float) -> None:
        super().__init__()
        # nn.Embedding's N(0, 1) initialisation, as the official positional tables use
        self.pos_embed = nn.Parameter(torch.randn(num_tokens, embed_dim))  # (N, d)
        self.attn = nn.MultiheadAttention(embed_dim, num_heads, dropout=dropout, batch_first=True)
        self.ffn_in = nn.Linear(embed_dim, ffn_dim)
        self.ffn_out = nn.Linear(ffn_dim, embed_dim)
        self.norm1 = nn.LayerNorm(embed_dim)
        self.norm2 = nn.LayerNorm(embed_dim)
        self.attn_dropout = nn.Dropout(dropout)
        self.ffn_dropout = nn.Dropout(dropout)
        self.out_dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """x ``(B, N, d)``; key_padding_mask ``(B, N)``, True where a token must not be attended to."""
        query_key = x + self.pos_embed  # (B, N, d)
        attended, _ = self.attn(query_key, query_key, x, key_padding_mask=key_padding_mask,
                                need_weights=False)
        x = self.norm1(x + self.attn_dropout(attended))
        hidden = self.ffn_dropout(torch.relu(self.ffn_in(x)))  # (B, N, ffn)
        return self.norm2(x + self.out_dropout(self.ffn_out(hidden)))  # (B, N, d)


class ContextTransformer(nn.Module):
    """A stack of `ContextLayer` over a fixed number of tokens (each layer has its own table).

    With ``grad_checkpointing`` set, training keeps only each layer's input and recomputes the layer
    (same dropout masks) during backward: less memory for about one more forward pass.
    """

    def __init__(self, num_layers: int, num_tokens: int, embed_dim: int, num_heads: int,
                 ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.grad_checkpointing = False
        self.layers = nn.ModuleList(
            ContextLayer(num_tokens, embed_dim, num_heads, ffn_dim, dropout) for _ in range(num_layers))

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """x ``(B, N, d)`` with N equal to the table length; returns ``(B, N, d)``."""
        if x.shape[1] != self.num_tokens:
            raise ValueError(f"expected {self.num_tokens} tokens, got {x.shape[1]} (input shape "
                             f"{tuple(x.shape)})")
        recompute = self.grad_checkpointing and torch.is_grad_enabled()
        for layer in self.layers:
            x = checkpoint(layer, x, key_padding_mask, use_reentrant=False) if recompute \
                else layer(x, key_padding_mask)
        return x
