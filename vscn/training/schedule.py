"""The learning-rate schedule: linear warm-up over steps, then step decay by epochs.

The official code sets ``lr = base * k / warmup`` at its k-th iteration (1-based) and multiplies the
lr by 0.1 at every 15th epoch start, the warm-up overriding the decay while both apply. Here both
are factors of one formula, so the value depends only on the step count and never on history.
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from vscn.training.config import TrainConfig


def lr_factor(step: int, steps_per_epoch: int, config: TrainConfig) -> float:
    """Multiplier of the base lr for optimizer step ``step`` (0-based, over the whole run)."""
    warmup = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    epoch = step // steps_per_epoch
    return warmup * config.lr_decay_factor ** (epoch // config.lr_decay_epochs)


def build_scheduler(optimizer: Optimizer, steps_per_epoch: int, config: TrainConfig) -> LambdaLR:
    """A scheduler to step once after every optimizer step; its state is the step count alone."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    return LambdaLR(optimizer, lambda step: lr_factor(step, steps_per_epoch, config))
