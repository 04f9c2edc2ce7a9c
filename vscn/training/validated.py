"""Training with per-epoch validation on a second feature file: what the `train` rule runs."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vscn.evaluation import load_split, validation_metrics
from vscn.model import VSCN
from vscn.training.config import TrainConfig
from vscn.training.logs import logged_turns
from vscn.training.loop import TrainResult, train


def validation_turns(val_metric: str, max_turns: int) -> tuple[int, ...]:
    """The turns validation must score: the first and last for the logs, every turn for ``mean_turns``."""
    if val_metric == "mean_turns":
        return tuple(range(1, max_turns + 1))
    return logged_turns(max_turns)


def train_with_validation(
    train_path: Path, val_path: Path, out_dir: Path, state_path: Path, model_settings: Mapping[str, Any],
    train_settings: Mapping[str, Any], max_turns: int,
) -> TrainResult:
    """Train on ``train_path``, validating on ``val_path`` after every epoch.

    ``train_settings`` is the config's train section: `TrainConfig` fields plus ``validation``
    (``protocol``, ``top_k``, ``shard_size`` of :func:`vscn.evaluation.validation_metrics`).
    """
    settings = dict(train_settings)
    validation = settings.pop("validation", {})
    config = TrainConfig.from_dict(settings)
    val_split = load_split(val_path, max_turns)  # read once, scored every epoch
    turns = validation_turns(config.val_metric, max_turns)

    def validate(model: VSCN) -> dict[str, float]:
        return validation_metrics(model, val_split, turns=turns, **validation)

    return train(train_path, out_dir, model_settings, config, validate, max_turns, state_path)
