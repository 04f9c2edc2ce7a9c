"""Typed training settings, and the model configuration built from a feature file and a model section.

Defaults are the official recipe (the authors' ``opts.py`` and ``train.py``): AdamW at 2e-4 with
PyTorch's default weight decay, batch 128, 30 epochs, linear warm-up over 2,100 steps, lr x0.1 every
15 epochs, gradient-norm clip 2.0, query sampling with drop ratio 0.1, seed 1, model selection by
turn-1 R@1 + R@5 + R@10 on val.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal, Mapping

from vscn.data.features import FeatureSizes
from vscn.model import VSCNConfig

Device = Literal["auto", "cpu", "cuda"]
ValMetric = Literal["turn1", "mean_turns"]
DEVICES = ("auto", "cpu", "cuda")
VAL_METRICS = ("turn1", "mean_turns")
AMP_AUTO = "auto"

# VSCNConfig fields the feature file or the caller fixes; a model section may not set them
FEATURE_FIELDS = ("region_dim", "query_dim", "global_dim", "num_regions")
# VSCNConfig fields that mirror training settings, filled from TrainConfig so there is one source
TRAINING_FIELDS = ("sample_queries", "dropped_ratio")
# TrainConfig fields that do not change the trained weights: a run may resume with other values
RESUME_FREE_FIELDS = frozenset({"epochs", "log_every", "checkpoint_every", "num_workers", "device",
                                "grad_checkpointing"})


@dataclass(frozen=True)
class TrainConfig:
    """How to train one VSCN model.

    Steps count optimizer updates (batches). ``lr`` at step k (0-based) of epoch e (0-based) is
    ``lr * min(1, (k + 1) / warmup_steps) * lr_decay_factor ** (e // lr_decay_epochs)``.
    """

    epochs: int = 30
    batch_size: int = 128
    lr: float = 2e-4
    weight_decay: float = 0.01  # AdamW's default, which the official optimizer keeps
    warmup_steps: int = 2100  # linear warm-up from lr / warmup_steps to lr; 0 = none
    lr_decay_epochs: int = 15  # multiply the lr by lr_decay_factor every this many epochs
    lr_decay_factor: float = 0.1
    grad_clip: float = 2.0  # max global gradient norm; 0 = no clipping
    sample_queries: bool = True  # the official query sampler (sample_option)
    dropped_ratio: float = 0.1  # a query slot is dropped when its uniform draw is <= this
    seed: int = 1  # model initialisation, dropout, query sampler, batch order
    device: Device = "auto"  # auto: CUDA when available, else CPU
    amp: bool | Literal["auto"] = AMP_AUTO  # mixed precision; auto: on CUDA only (never on CPU)
    grad_checkpointing: bool = False  # recompute context-transformer activations in backward
    log_every: int = 50  # steps per train_log.csv row (plus one row at each epoch end)
    checkpoint_every: int = 500  # steps between saves of the resumable state (plus each epoch end)
    val_metric: ValMetric = "turn1"  # turn1: turn-1 R@1+R@5+R@10; mean_turns: its mean over turns
    num_workers: int = 0  # DataLoader worker processes

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "lr_decay_epochs", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ValueError("TrainConfig.batch_size must be >= 2: InfoNCE contrasts the scenes of a batch")
        for name in ("warmup_steps", "num_workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("TrainConfig: lr must be > 0, weight_decay and grad_clip >= 0")
        if not 0 < self.lr_decay_factor <= 1:
            raise ValueError(f"TrainConfig.lr_decay_factor must be in (0, 1], got {self.lr_decay_factor}")
        if not 0 <= self.dropped_ratio < 1:
            raise ValueError(f"TrainConfig.dropped_ratio must be in [0, 1), got {self.dropped_ratio}")
        if self.device not in DEVICES:
            raise ValueError(f"TrainConfig.device must be one of {DEVICES}, got {self.device!r}")
        if self.amp not in (True, False, AMP_AUTO):
            raise ValueError(f"TrainConfig.amp must be true, false or {AMP_AUTO!r}, got {self.amp!r}")
        if self.val_metric not in VAL_METRICS:
            raise ValueError(f"TrainConfig.val_metric must be one of {VAL_METRICS}, got {self.val_metric!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain values (checkpoints, logs)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build from a config section; an unknown key is an error, not silently ignored."""
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown train setting(s): {', '.join(unknown)}; "
                             f"known: {', '.join(f.name for f in fields(cls))}")
        return cls(**values)

    def resume_key(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run that wrote its state."""
        return {name: value for name, value in self.to_dict().items() if name not in RESUME_FREE_FIELDS}


def model_config_for(sizes: FeatureSizes, model_settings: Mapping[str, Any], max_turns: int,
                     train_config: TrainConfig | None = None) -> VSCNConfig:
    """The model configuration for features of ``sizes``: input sizes from the feature file, the rest
    from ``model_settings`` (VSCNConfig names such as ``embed_dim``, ``num_heads``, ``ffn_dim``,
    ``visual_layers``, dropouts, ``tau``; unset ones keep the paper defaults).

    The query sampler settings come from ``train_config`` when given (they are training settings);
    the model section may not set them, nor the sizes the feature file fixes.
    """
    fixed = sorted(set(model_settings) & {*FEATURE_FIELDS, "max_turns", *TRAINING_FIELDS})
    if fixed:
        raise ValueError(f"model settings may not set {', '.join(fixed)}: the sizes come from the feature "
                         "file and max_turns, the query sampler from the train settings")
    values: dict[str, Any] = dict(model_settings)
    values.update({name: getattr(sizes, name) for name in FEATURE_FIELDS}, max_turns=max_turns)
    config = VSCNConfig.from_dict(values)
    if train_config is not None:
        config = replace(config, **{name: getattr(train_config, name) for name in TRAINING_FIELDS})
    return config
