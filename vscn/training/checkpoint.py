"""Checkpoint files: the trained model (``model.pt``) and the resumable training state (``last.pt``).

Both hold only tensors and plain Python values, so they load with ``torch.load(..., weights_only=True)``
(no pickled classes), and both are written under a temporary name and renamed, so a killed process
never leaves a partial file. Random-generator states are stored as the uint8 tensors torch returns.
"""

from __future__ import annotations

import io
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vscn.io import atomic_write_bytes
from vscn.model import VSCN, VSCNConfig

MODEL_KEYS = ("config", "state_dict", "epoch", "step", "score", "metric")
STATE_FORMAT = "vscn-train-state"
STATE_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


def save_checkpoint(path: Path, payload: Mapping[str, Any]) -> None:
    """``torch.save`` ``payload`` to ``path`` atomically (temporary file, then rename)."""
    buffer = io.BytesIO()
    torch.save(dict(payload), buffer)
    atomic_write_bytes(path, buffer.getvalue())


def read_checkpoint(path: Path, required: Collection[str], what: str,
                    map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Load ``path`` with ``weights_only=True`` and check that it is a dict with the ``required`` keys.

    ``what`` names the kind of file in error messages (e.g. "model checkpoint").
    """
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"{path}: cannot read the {what} (truncated, corrupt, or not a weights-only "
                              f"torch file): {error}") from error
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: a {what} must hold a dict, found {type(payload).__name__}")
    missing = [key for key in required if key not in payload]
    if missing:
        raise CheckpointError(f"{path}: the {what} lacks {', '.join(missing)}")
    return payload


def config_from_checkpoint(values: Any, path: Path) -> VSCNConfig:
    """The VSCNConfig stored in a checkpoint, with a clear error naming ``path``."""
    if not isinstance(values, dict):
        raise CheckpointError(f"{path}: the stored model config is not a dict")
    try:
        return VSCNConfig.from_dict(values)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: invalid model config: {error}") from error


def load_weights(model: torch.nn.Module, state_dict: Any, path: Path) -> None:
    """``model.load_state_dict(state_dict)`` (strict), naming ``path`` when names or shapes differ."""
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{path}: the stored model weights are not a dict")
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: the stored weights do not fit the model: {error}") from error


def cpu_state_dict(model: torch.nn.Module) -> dict[str, Tensor]:
    """The model's tensors copied to the CPU, so a saved model loads on any device."""
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in model.state_dict().items()}


def save_model(path: Path, config: VSCNConfig, state_dict: Mapping[str, Tensor], epoch: int, step: int,
               score: float | None, metric: str | None) -> None:
    """Write ``model.pt``: the config dict, the weights, the (1-based) epoch and global step they are
    from, and the validation ``score`` by ``metric`` that selected them (None when no validation ran)."""
    save_checkpoint(path, {"config": config.to_dict(), "state_dict": dict(state_dict), "epoch": epoch,
                           "step": step, "score": score, "metric": metric})


def load_model(path: Path | str, map_location: torch.device | str = "cpu") -> tuple[VSCN, dict[str, Any]]:
    """The model saved by `save_model`, in eval mode, and the rest of the file (epoch, step, score, ...)."""
    path = Path(path)
    payload = read_checkpoint(path, MODEL_KEYS, "model checkpoint", map_location)
    model = VSCN(config_from_checkpoint(payload["config"], path))
    load_weights(model, payload["state_dict"], path)
    info = {key: value for key, value in payload.items() if key != "state_dict"}
    return model.to(map_location).eval(), info


# ------------------------------------------------------------------------------------------ RNG

def capture_rng(query_generator: torch.Generator, device: torch.device) -> dict[str, Any]:
    """Every random stream training draws from: torch's CPU generator (dropout on CPU), the CUDA one
    of ``device`` (dropout on CUDA) and the query sampler's own generator."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": [torch.cuda.get_rng_state(device)] if device.type == "cuda" else [],
        "query_sampler": query_generator.get_state(),
    }


def restore_rng(state: Mapping[str, Any], query_generator: torch.Generator, device: torch.device,
                path: Path) -> None:
    """Inverse of `capture_rng`; a state from another device type is an error naming ``path``."""
    try:
        torch.set_rng_state(state["torch"].cpu())
        query_generator.set_state(state["query_sampler"].cpu())
        cuda = state["cuda"]
    except (KeyError, TypeError, RuntimeError, AttributeError) as error:
        raise CheckpointError(f"{path}: invalid random-generator state: {error}") from error
    if (device.type == "cuda") != bool(cuda):
        saved_on = "CUDA" if cuda else "the CPU"
        raise CheckpointError(f"{path}: the training state was saved on {saved_on}, this run uses {device}; "
                              "resume on the same kind of device (or delete the file to start over)")
    if cuda:
        torch.cuda.set_rng_state(cuda[0].cpu(), device)
