"""The typed configuration every VSCN size derives from.

Defaults are the paper's Visual Genome setting (the official `opts.py` plus the constants its code
fixes: 36 regions, 512-d CLIP text and image features, GPO(16, 16) with temperature 0.1, LeakyReLU 0.1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping


@dataclass(frozen=True)
class VSCNConfig:
    """Sizes and constants of one VSCN model.

    Token counts are derived, never stored: the visual context transformer sees ``num_regions + 1``
    tokens (a learned summary token first), the cross-modal one ``num_regions + max_turns``.
    """

    region_dim: int = 2048  # Dv: one region feature
    query_dim: int = 512  # Dq: one query (caption) feature
    global_dim: int = 512  # Dg: the global image feature used only by the distillation loss
    num_regions: int = 36  # R
    max_turns: int = 10  # T: query slots per scene
    embed_dim: int = 256  # d: the joint embedding
    num_heads: int = 8
    ffn_dim: int = 2048
    visual_layers: int = 3
    crossmodal_layers: int = 3
    visual_dropout: float = 0.1
    crossmodal_dropout: float = 0.1
    visual_sa_dropout: float = 0.4
    leaky_slope: float = 0.1  # LeakyReLU on region-query similarities
    gpo_pe_dim: int = 16  # sinusoidal position code size fed to the GPO GRU
    gpo_hidden_dim: int = 16
    gpo_temperature: float = 0.1
    tau: float = 15.0  # InfoNCE logit scale (multiplies the scores)
    distill_weight: float = 1.0
    sample_queries: bool = True  # training query sampler on/off
    dropped_ratio: float = 0.1  # a slot is dropped when its uniform draw is <= this
    l2_eps: float = 1e-8  # added to the norm before dividing, as the official code does

    def __post_init__(self) -> None:
        positive = ("region_dim", "query_dim", "global_dim", "num_regions", "max_turns", "embed_dim",
                    "num_heads", "ffn_dim", "gpo_pe_dim", "gpo_hidden_dim")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"VSCNConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("visual_layers", "crossmodal_layers"):
            if getattr(self, name) < 0:
                raise ValueError(f"VSCNConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"VSCNConfig.embed_dim ({self.embed_dim}) must be divisible by "
                             f"num_heads ({self.num_heads})")
        if self.gpo_pe_dim % 2:
            raise ValueError(f"VSCNConfig.gpo_pe_dim must be even (sin/cos pairs), got {self.gpo_pe_dim}")
        for name in ("visual_dropout", "crossmodal_dropout", "visual_sa_dropout", "dropped_ratio"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"VSCNConfig.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.gpo_temperature <= 0 or self.tau <= 0:
            raise ValueError("VSCNConfig.gpo_temperature and tau must be > 0")

    @property
    def visual_tokens(self) -> int:
        """Tokens of the visual context transformer: the summary token and the regions."""
        return self.num_regions + 1

    @property
    def crossmodal_tokens(self) -> int:
        """Tokens of the cross-modal context transformer: the regions and every query slot."""
        return self.num_regions + self.max_turns

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for checkpoints that load with ``torch.load(..., weights_only=True)``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> VSCNConfig:
        """Inverse of `to_dict`; an unknown name is an error rather than silently ignored."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown VSCNConfig field(s): {', '.join(unknown)}")
        return cls(**values)
