"""Training VSCN: settings, the official schedule, checkpoints, logs and the resumable loop."""

from vscn.training.checkpoint import CheckpointError, load_model, save_model
from vscn.training.config import TrainConfig, model_config_for
from vscn.training.logs import turn_metrics_dict, validation_score
from vscn.training.loop import TrainResult, resolve_device, train
from vscn.training.schedule import build_scheduler, lr_factor
from vscn.training.validated import train_with_validation, validation_turns

__all__ = ["CheckpointError", "TrainConfig", "TrainResult", "build_scheduler", "load_model", "lr_factor",
           "model_config_for", "resolve_device", "save_model", "train", "train_with_validation", "turn_metrics_dict",
           "validation_score", "validation_turns"]
