"""The VSCN model: encoders, the two context transformers, S1/S2/G scoring and the training loss.

Every score matrix this module returns is oriented [query set, image]. Shape letters: B batch, R
regions, T query slots, n selected slots, d embedding size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from vscn.model.config import VSCNConfig
from vscn.model.context import ContextTransformer
from vscn.model.encoders import DistillationHead, FeatureEncoder
from vscn.model.loss import vscn_loss
from vscn.model.pooling import GPO, VisualSA
from vscn.model.similarity import local_scores, paired_local_scores

# The summary token sits before the regions in the visual context transformer
_SUMMARY = 0


class VSCN(nn.Module):
    """Visual context perception and cross-modal interaction for multi-query image retrieval."""

    def __init__(self, config: VSCNConfig) -> None:
        super().__init__()
        self.config = config
        cfg = config
        self.region_encoder = FeatureEncoder(cfg.region_dim, cfg.embed_dim, cfg.l2_eps)
        self.query_encoder = FeatureEncoder(cfg.query_dim, cfg.embed_dim, cfg.l2_eps)
        # learned summary token; N(0, 1) as the official nn.Embedding initialises it
        self.summary_token = nn.Parameter(torch.randn(1, cfg.embed_dim))  # (1, d)
        self.visual_context = ContextTransformer(cfg.visual_layers, cfg.visual_tokens, cfg.embed_dim,
                                                 cfg.num_heads, cfg.ffn_dim, cfg.visual_dropout)
        self.crossmodal_context = ContextTransformer(cfg.crossmodal_layers, cfg.crossmodal_tokens,
                                                     cfg.embed_dim, cfg.num_heads, cfg.ffn_dim,
                                                     cfg.crossmodal_dropout)
        self.visual_sa = VisualSA(cfg.embed_dim, cfg.num_regions, cfg.visual_sa_dropout, cfg.l2_eps)
        self.gpo = GPO(cfg.gpo_pe_dim, cfg.gpo_hidden_dim, cfg.gpo_temperature)
        self.distill_head = DistillationHead(cfg.global_dim, cfg.embed_dim)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the context transformers' activations in backward instead of keeping them.

        Same results and gradients; most of a training step's activation memory is in those layers.
        """
        self.visual_context.grad_checkpointing = enable
        self.crossmodal_context.grad_checkpointing = enable

    # ------------------------------------------------------------------ encoders
    def encode_images(self, regions: Tensor) -> tuple[Tensor, Tensor]:
        """regions ``(B, R, Dv)`` -> contextual regions r ``(B, R, d)`` and summary c ``(B, d)``.

        Depends on each image alone, so a gallery can be encoded once in chunks and cached.
        """
        return self.contextualise_regions(self.embed_regions(regions))

    def embed_regions(self, regions: Tensor) -> Tensor:
        """regions ``(B, R, Dv)`` -> L2-normalised region embeddings v ``(B, R, d)``."""
        _check_shape(regions, (self.config.num_regions, self.config.region_dim), "regions")
        return self.region_encoder(regions)

    def contextualise_regions(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """Visual context transformer over ``[summary; v]``: v ``(B, R, d)`` -> r ``(B, R, d)``, c ``(B, d)``."""
        summary = self.summary_token.expand(v.shape[0], 1, -1)  # (B, 1, d)
        tokens = self.visual_context(torch.cat([summary, v], dim=1))  # (B, R + 1, d)
        return tokens[:, _SUMMARY + 1:], tokens[:, _SUMMARY]

    def encode_queries(self, queries: Tensor) -> Tensor:
        """queries ``(B, T, Dq)`` -> L2-normalised query embeddings q ``(B, T, d)``."""
        _check_shape(queries, (self.config.max_turns, self.config.query_dim), "queries")
        return self.query_encoder(queries)

    # ------------------------------------------------------------------ scores
    def local_scores(self, q: Tensor, regions: Tensor) -> Tensor:
        """Every query set against every image, every turn: q ``(Bq, n, d)``, regions ``(Bi, R, d)``
        -> ``(Bq, Bi, n)``; entry ``t - 1`` uses the first t queries. S1 on r, S2 on u."""
        return local_scores(q, regions, self.config.leaky_slope)

    def paired_local_scores(self, q: Tensor, regions: Tensor) -> Tensor:
        """Query set p against image p only: q ``(P, n, d)``, regions ``(P, R, d)`` -> ``(P, n)``."""
        return paired_local_scores(q, regions, self.config.leaky_slope)

    def cross_modal(self, r: Tensor, q: Tensor, hidden_mask: Tensor) -> Tensor:
        """Cross-modal context transformer over ``[r_b; q_b]``, paired by position b.

        r ``(B, R, d)``, q ``(B, T, d)`` (all slots), hidden_mask ``(B, T)`` True for query slots the
        regions must not see -> contextual regions u ``(B, R, d)``.
        """
        region_mask = torch.zeros(r.shape[:2], dtype=torch.bool, device=r.device)  # (B, R)
        key_padding_mask = torch.cat([region_mask, hidden_mask.to(torch.bool)], dim=1)  # (B, R + T)
        tokens = self.crossmodal_context(torch.cat([r, q], dim=1), key_padding_mask)  # (B, R + T, d)
        return tokens[:, :r.shape[1]]  # (B, R, d)

    def image_embedding(self, u: Tensor, c: Tensor) -> Tensor:
        """VisualSA: u ``(B, R, d)``, c ``(B, d)`` -> ``(B, d)``, unit norm."""
        return self.visual_sa(u, c)

    def query_embedding(self, q: Tensor) -> Tensor:
        """GPO over all given queries: q ``(B, n, d)`` -> ``(B, d)``."""
        return self.gpo(q)

    def hidden_mask(self, slots: Tensor, batch_size: int) -> Tensor:
        """``(B, T)`` bool, True for every slot not in ``slots`` (indices ``(n,)``)."""
        visible = torch.zeros(self.config.max_turns, dtype=torch.bool, device=slots.device)
        return (~visible.index_fill(0, slots, True)).expand(batch_size, -1)  # (B, T)

    def batch_scores(self, r: Tensor, c: Tensor, q: Tensor, slots: Tensor) -> dict[str, Tensor]:
        """S1, S2 and G for a batch in which image b is contextualised with query set b.

        r ``(B, R, d)``, c ``(B, d)``, q ``(B, T, d)``; slots ``(n,)`` ascending indices of the query
        slots in use (the rest are hidden from the cross-modal transformer). Returns S1, S2
        ``(B, B, n)`` (prefixes of the selected slots) and G ``(B, B)``, all [query set, image].
        This is the training pairing; at evaluation it is the official (leaky) pairing.
        """
        slots = slots.to(q.device)
        selected = q.index_select(1, slots)  # (B, n, d)
        u = self.cross_modal(r, q, self.hidden_mask(slots, q.shape[0]))  # (B, R, d)
        images = self.image_embedding(u, c)  # (B, d)
        return {
            "S1": self.local_scores(selected, r),
            "S2": self.local_scores(selected, u),
            "G": self.query_embedding(selected) @ images.T,  # (B, B)
        }

    def pair_turn_scores(self, r: Tensor, c: Tensor, q: Tensor, turns: Sequence[int],
                         image_index: Tensor | None = None,
                         query_index: Tensor | None = None) -> dict[str, Tensor]:
        """Leak-free scores of (query set, image) pairs, each image seeing only its own pair's queries.

        Pairs are ``(q[p], r[p])`` or, given index tensors ``(P,)``, ``(q[query_index[p]],
        r[image_index[p]])``. For each turn t in ``turns`` (1-based) only the first t queries are
        visible. One cross-modal pass covers all pairs and turns, so the caller chunks P to bound
        memory. Returns S1, S2, G and ``fused = (S1 + S2 + G) / 3``, each ``(P, len(turns))``.
        Use in eval mode (VisualSA's BatchNorm would otherwise mix the pairs).
        """
        if image_index is not None:
            r, c = r[image_index], c[image_index]  # (P, R, d), (P, d)
        if query_index is not None:
            q = q[query_index]  # (P, T, d)
        num_pairs, max_turns = q.shape[:2]
        turn = self._turn_tensor(turns, q.device)  # (K,)
        num_turns = turn.numel()
        hidden = torch.arange(max_turns, device=q.device) >= turn.unsqueeze(1)  # (K, T)
        # every pair once per turn, turn-major: row k * P + p is pair p at turn k
        q_rep = q.repeat(num_turns, 1, 1)  # (K * P, T, d)
        u = self.cross_modal(r.repeat(num_turns, 1, 1), q_rep,
                             hidden.repeat_interleave(num_pairs, dim=0))  # (K * P, R, d)
        last = (turn - 1).repeat_interleave(num_pairs).unsqueeze(1)  # (K * P, 1)
        s2 = self.paired_local_scores(q_rep, u).gather(1, last).view(num_turns, num_pairs).T  # (P, K)
        s1 = self.paired_local_scores(q, r)[:, turn - 1]  # (P, K)
        images = self.image_embedding(u, c.repeat(num_turns, 1)).view(num_turns, num_pairs, -1)
        queries = self.gpo.pool_prefixes(q)[:, turn - 1]  # (P, K, d)
        g = torch.einsum("kpd,pkd->pk", images, queries)  # (P, K)
        return {"S1": s1, "S2": s2, "G": g, "fused": (s1 + s2 + g) / 3}

    def _turn_tensor(self, turns: Sequence[int], device: torch.device) -> Tensor:
        turn = torch.as_tensor(list(turns), dtype=torch.long, device=device)
        if turn.numel() == 0 or turn.min() < 1 or turn.max() > self.config.max_turns:
            raise ValueError(f"turns must be non-empty and within 1..{self.config.max_turns}, "
                             f"got {list(turns)}")
        return turn

    # ------------------------------------------------------------------ training
    def forward(self, regions: Tensor, queries: Tensor, global_feats: Tensor,
                slots: Tensor | None = None) -> dict[str, Tensor]:
        """One training batch (scene b's queries describe image b).

        regions ``(B, R, Dv)``, queries ``(B, T, Dq)``, global_feats ``(B, Dg)``; slots ``(n,)`` the
        query slots in use (`sample_query_slots`; None = all). Returns S1, S2 ``(B, B, n)``, G
        ``(B, B)`` ([query set, image]) and the scalars ``loss``, ``loss_infonce``, ``loss_distill``.
        """
        _check_shape(global_feats, (self.config.global_dim,), "global_feats")
        r, c = self.encode_images(regions)  # (B, R, d), (B, d)
        q = self.encode_queries(queries)  # (B, T, d)
        if slots is None:
            slots = torch.arange(self.config.max_turns, device=q.device)
        scores = self.batch_scores(r, c, q, slots)
        terms = vscn_loss(scores["S1"], scores["S2"], scores["G"], c, self.distill_head(global_feats),
                          self.config.tau, self.config.distill_weight)
        return {**scores, "loss": terms.total, "loss_infonce": terms.info_nce,
                "loss_distill": terms.distill}


def _check_shape(x: Tensor, trailing: tuple[int, ...], name: str) -> None:
    """Raise a clear error unless x is ``(B, *trailing)``."""
    if x.dim() != len(trailing) + 1 or tuple(x.shape[1:]) != trailing:
        expected = ", ".join(["B", *map(str, trailing)])
        raise ValueError(f"{name}: expected shape ({expected}), got {tuple(x.shape)}")
