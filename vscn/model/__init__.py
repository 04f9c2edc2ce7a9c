"""VSCN as PyTorch modules: config, model, losses, query sampler and the official-code bridges."""

from vscn.model.config import VSCNConfig
from vscn.model.loss import LossTerms, info_nce, vscn_loss
from vscn.model.sampler import sample_query_slots
from vscn.model.vscn import VSCN

__all__ = ["VSCN", "VSCNConfig", "LossTerms", "info_nce", "sample_query_slots", "vscn_loss"]
