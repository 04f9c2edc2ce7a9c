"""The training loop: the official recipe, validation each epoch, logs, and exact resumption.

Random streams: the model is initialised and dropout drawn from torch's generator seeded with
``seed`` (inside a forked RNG scope, so the caller's global state is untouched); the query sampler
has its own generator; the batch order and caption choice come from `TrainingBatchSampler`
(``(seed, epoch)``). All are saved in the resumable state, with the position in the epoch, so a
killed run resumed from that state ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn.utils import clip_grad_norm_
from torch.utils.data import Sampler
from tqdm import tqdm

from vscn.data.features import BatchRequest, FeatureBatch, FeatureDataset, TrainingBatchSampler, batch_loader
from vscn.model import VSCN, VSCNConfig, info_nce, sample_query_slots
from vscn.training.checkpoint import (STATE_FORMAT, STATE_VERSION, CheckpointError, capture_rng,
                                      config_from_checkpoint, cpu_state_dict, load_weights, read_checkpoint,
                                      restore_rng, save_checkpoint, save_model)
from vscn.training.config import TrainConfig, model_config_for
from vscn.training.logs import (TRAIN_COLUMNS, LossWindow, Row, val_columns, val_row,
                                validation_score, write_csv)
from vscn.training.schedule import build_scheduler, lr_factor

logger = logging.getLogger(__name__)

Validate = Callable[[VSCN], Mapping[str, float]]
MODEL_FILE, TRAIN_LOG, VAL_LOG = "model.pt", "train_log.csv", "val_log.csv"
QUERY_SAMPLER_STREAM = 1  # SeedSequence spawn key separating the query sampler from the other streams
AMP_DTYPE = torch.float16  # with GradScaler, as CUDA mixed precision is usually run
LOSS_INDEX = TRAIN_COLUMNS.index("loss")  # of a train_rows row
MIN_BATCH = 2  # BatchNorm and InfoNCE need two scenes; a last batch of one is dropped
STATE_KEYS = ("format", "version", "train_config", "model_config", "data_identity", "model", "optimizer",
              "scheduler", "scaler", "rng", "epoch", "batch", "global_step", "best", "window",
              "train_rows", "val_rows")


@dataclass(frozen=True)
class TrainResult:
    """Where a call to `train` left things."""

    model_path: Path
    train_log: Path
    val_log: Path
    device: str
    epochs_done: int
    global_step: int
    best_epoch: int | None  # 1-based epoch model.pt is from; None before the first epoch ends
    best_score: float | None  # its validation score; None without validation
    finished: bool  # every epoch done (False when max_steps stopped the run first)


def resolve_device(setting: str) -> torch.device:
    """``auto``: CUDA when available, else the CPU; ``cuda`` without CUDA is an error."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but CUDA is not available; use 'auto' or 'cpu'")
    return torch.device(setting)


def amp_enabled(setting: bool | str, device: torch.device) -> bool:
    """Mixed precision on CUDA only: ``auto`` turns it on there; ``true`` on the CPU is ignored."""
    if device.type != "cuda":
        if setting is True:
            logger.warning("amp=true ignored: mixed precision is used on CUDA only, this run uses %s", device)
        return False
    return setting is True or setting == "auto"


def _stream_seed(seed: int, stream: int) -> int:
    """An independent 63-bit seed for random stream ``stream`` of run seed ``seed``."""
    return int(np.random.SeedSequence((seed, stream)).generate_state(1, np.uint64)[0] >> 1)


def _improves(score: float | None, best: Mapping[str, Any] | None) -> bool:
    """Whether an epoch with validation ``score`` replaces the ``best`` so far: strictly better (ties keep
    the earlier epoch, as the official code does; NaN never wins); without validation (None) the
    latest epoch does."""
    if best is None or score is None:
        return True
    if math.isnan(score):
        return False
    return math.isnan(best["score"]) or score > best["score"]


class _EpochBatches(Sampler[BatchRequest]):
    """The batch requests of one epoch from batch ``start`` on, so a run resumes mid-epoch without
    reading the batches it has already trained on."""

    def __init__(self, batches: TrainingBatchSampler) -> None:
        self.batches, self.epoch, self.start = batches, 0, 0

    def __len__(self) -> int:
        return len(self.batches) - self.start

    def __iter__(self) -> Iterator[BatchRequest]:
        self.batches.set_epoch(self.epoch)
        return itertools.islice(iter(self.batches), self.start, None)


class _Trainer:
    """One training run: model, optimizer, schedule, streams, logs and the resumable state."""

    def __init__(self, dataset: FeatureDataset, out_dir: Path, model_config: VSCNConfig, config: TrainConfig,
                 validate: Validate | None, state_path: Path, device: torch.device) -> None:
        self.out_dir, self.model_config, self.config = out_dir, model_config, config
        self.validate, self.state_path, self.device = validate, state_path, device
        self.amp = amp_enabled(config.amp, device)
        self.max_turns = model_config.max_turns
        self.data_identity = {"num_scenes": dataset.features.sizes.num_scenes,
                              "source_checksums": dataset.features.source_checksums}

        torch.manual_seed(config.seed)
        self.model = VSCN(model_config).to(device)
        self.model.set_grad_checkpointing(config.grad_checkpointing)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr,
                                           weight_decay=config.weight_decay)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp)
        self.query_generator = torch.Generator().manual_seed(_stream_seed(config.seed, QUERY_SAMPLER_STREAM))

        num_scenes = dataset.features.sizes.num_scenes
        drop_last = 0 < num_scenes % config.batch_size < MIN_BATCH
        if drop_last:
            logger.warning("dropping the last batch of each epoch: it would hold fewer than %d scenes", MIN_BATCH)
        self.batches = TrainingBatchSampler(num_scenes, config.batch_size, config.seed, drop_last=drop_last)
        if len(self.batches) == 0:
            raise ValueError(f"{dataset.features.path}: {num_scenes} scenes give no training batch of "
                             f">= {MIN_BATCH} scenes")
        self.steps_per_epoch = len(self.batches)
        self.scheduler = build_scheduler(self.optimizer, self.steps_per_epoch, config)
        self.epoch_batches = _EpochBatches(self.batches)
        self.loader = batch_loader(dataset, self.epoch_batches, num_workers=config.num_workers,
                                   pin_memory=device.type == "cuda")

        self.epoch = 0  # the epoch in progress (0-based) = epochs done
        self.batch = 0  # batches done in that epoch
        self.global_step = 0
        self.best: dict[str, Any] | None = None  # {"state_dict", "epoch", "step", "score"}
        self.window = LossWindow(device)
        self.train_rows: list[Row] = []
        self.val_rows: list[Row] = []

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT, "version": STATE_VERSION,
            "train_config": self.config.to_dict(), "model_config": self.model_config.to_dict(),
            "data_identity": self.data_identity,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "rng": capture_rng(self.query_generator, self.device),
            "epoch": self.epoch, "batch": self.batch, "global_step": self.global_step,
            "best": self.best, "window": self.window.state(),
            "train_rows": self.train_rows, "val_rows": self.val_rows,
        }

    def save_state(self) -> None:
        save_checkpoint(self.state_path, self.state())

    def resume(self) -> None:
        """Continue from ``state_path``, which must come from the same settings and features."""
        path = self.state_path
        # on the CPU: loading into the model and optimizer moves tensors to their device
        state = read_checkpoint(path, STATE_KEYS, "training state")
        if state["format"] != STATE_FORMAT or state["version"] != STATE_VERSION:
            raise CheckpointError(f"{path}: format {state['format']!r} version {state['version']}, expected "
                                  f"{STATE_FORMAT!r} version {STATE_VERSION}")
        self._check_same_run(state, path)
        restore_rng(state["rng"], self.query_generator, self.device, path)  # also checks the device type
        load_weights(self.model, state["model"], path)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
            self.window.load_state(state["window"])
        except (KeyError, ValueError, RuntimeError, TypeError) as error:
            raise CheckpointError(f"{path}: invalid optimizer, schedule or log state: {error}") from error
        self.epoch, self.batch, self.global_step = state["epoch"], state["batch"], state["global_step"]
        self.best, self.train_rows, self.val_rows = state["best"], state["train_rows"], state["val_rows"]
        if self.batch > self.steps_per_epoch:
            raise CheckpointError(f"{path}: {self.batch} batches done in an epoch of {self.steps_per_epoch}")
        logger.info("resuming from %s: epoch %d, batch %d, step %d", path, self.epoch + 1, self.batch,
                    self.global_step)

    def _check_same_run(self, state: Mapping[str, Any], path: Path) -> None:
        stored_model = config_from_checkpoint(state["model_config"], path)
        if stored_model != self.model_config:
            raise CheckpointError(f"{path}: saved for another model config (differs in "
                                  f"{_differences(stored_model.to_dict(), self.model_config.to_dict())}); "
                                  "delete it to start over")
        try:
            stored_train = TrainConfig.from_dict(state["train_config"]).resume_key()
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"{path}: invalid stored train settings: {error}") from error
        if stored_train != self.config.resume_key():
            raise CheckpointError(f"{path}: saved for other train settings (differs in "
                                  f"{_differences(stored_train, self.config.resume_key())}); "
                                  "delete it to start over")
        if state["data_identity"] != self.data_identity:
            raise CheckpointError(f"{path}: saved for other training features ({state['data_identity']}, "
                                  f"now {self.data_identity}); delete it to start over")

    # ------------------------------------------------------------------ outputs
    def write_outputs(self) -> None:
        """model.pt (the best so far) and both logs, from the in-memory state."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.best is not None:
            save_model(self.out_dir / MODEL_FILE, self.model_config, self.best["state_dict"], self.best["epoch"],
                       self.best["step"], self.best["score"], self.config.val_metric if self.validate else None)
        write_csv(self.out_dir / TRAIN_LOG, TRAIN_COLUMNS, self.train_rows)
        write_csv(self.out_dir / VAL_LOG, val_columns(self.max_turns), self.val_rows)

    def _log_row(self) -> None:
        """Close the loss window; the row's lr is the one the last step ran at."""
        lr = self.config.lr * lr_factor(self.global_step - 1, self.steps_per_epoch, self.config)
        self.train_rows.append([self.epoch + 1, self.global_step, lr, *self.window.take_means()])
        write_csv(self.out_dir / TRAIN_LOG, TRAIN_COLUMNS, self.train_rows)

    # ------------------------------------------------------------------ training
    def step(self, batch: FeatureBatch) -> None:
        batch = batch.to(self.device, non_blocking=True)
        slots = sample_query_slots(self.max_turns, self.config.dropped_ratio, self.query_generator,
                                   enabled=self.config.sample_queries)  # (n,)
        with torch.autocast(self.device.type, dtype=AMP_DTYPE, enabled=self.amp):
            out = self.model(batch.regions, batch.queries, batch.global_features, slots)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(out["loss"]).backward()
        if self.config.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
            clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.window.add(self._loss_terms(out))

    def _loss_terms(self, out: Mapping[str, Tensor]) -> Tensor:
        """The logged terms in LOSS_COLUMNS order; per-score InfoNCE recomputed from the scores."""
        tau = self.model_config.tau
        with torch.no_grad():
            per_score = [info_nce(out[name].float(), tau).mean() for name in ("S1", "S2", "G")]
            return torch.stack([out["loss"], out["loss_infonce"], out["loss_distill"], *per_score]).float()

    def run(self, max_steps: int | None) -> bool:
        """Train until every epoch is done (True) or ``max_steps`` global steps (False)."""
        self.model.train()
        if max_steps is not None and self.global_step >= max_steps:
            return self.epoch >= self.config.epochs
        while self.epoch < self.config.epochs:
            started = time.perf_counter()
            self.epoch_batches.epoch, self.epoch_batches.start = self.epoch, self.batch
            with torch.random.fork_rng(devices=[]):  # DataLoader draws a worker seed from torch's generator
                batches = iter(self.loader)
            with tqdm(batches, total=self.steps_per_epoch, initial=self.batch, disable=None, unit="batch",
                      desc=f"epoch {self.epoch + 1}/{self.config.epochs}") as progress:
                for batch in progress:
                    self.step(batch)
                    self.batch += 1
                    self.global_step += 1
                    if self.global_step % self.config.log_every == 0:
                        self._log_row()
                        progress.set_postfix(loss=f"{self.train_rows[-1][LOSS_INDEX]:.4f}")
                    if max_steps is not None and self.global_step >= max_steps:
                        self.save_state()
                        logger.info("stopping at step %d (max_steps); state saved to %s", self.global_step,
                                    self.state_path)
                        return False
                    if self.global_step % self.config.checkpoint_every == 0:
                        self.save_state()
            logger.info("epoch %d: trained in %.1f s", self.epoch + 1, time.perf_counter() - started)
            self.end_epoch()
        return True

    def end_epoch(self) -> None:
        """Close the epoch's loss window, validate, keep the best model, save everything."""
        if self.window.count:
            self._log_row()
        score, metrics = self._validate()
        self.epoch += 1
        self.batch = 0
        if score is not None:
            self.val_rows.append(val_row(self.epoch, self.global_step, score, metrics, self.max_turns))
            logger.info("epoch %d: validation %s = %.3f", self.epoch, self.config.val_metric, score)
        if self.train_rows:
            logger.info("epoch %d: loss %.4f (last row)", self.epoch, self.train_rows[-1][LOSS_INDEX])
        if _improves(score, self.best):
            self.best = {"state_dict": cpu_state_dict(self.model), "epoch": self.epoch,
                         "step": self.global_step, "score": score}
        self.write_outputs()
        self.save_state()

    def _validate(self) -> tuple[float | None, Mapping[str, float]]:
        if self.validate is None:
            return None, {}
        self.model.eval()
        try:
            # the callable's own random draws must not shift the training streams
            with torch.random.fork_rng(devices=_cuda_devices(self.device)), torch.no_grad():
                metrics = self.validate(self.model)
        finally:
            self.model.train()
        return validation_score(metrics, self.config.val_metric, self.max_turns), metrics


def _cuda_devices(device: torch.device) -> list[int]:
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def _differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    names = sorted(name for name in set(stored) | set(current) if stored.get(name) != current.get(name))
    return ", ".join(f"{name}: saved {stored.get(name)!r}, now {current.get(name)!r}" for name in names)


def train(train_path: Path, out_dir: Path, model_settings: Mapping[str, Any], train_config: TrainConfig,
          validate: Validate | None, max_turns: int, state_path: Path,
          max_steps: int | None = None) -> TrainResult:
    """Train VSCN on the feature file ``train_path``; write ``out_dir/model.pt``, ``train_log.csv`` and
    ``val_log.csv``.

    ``model_settings``: the model section (see `model_config_for`); input sizes come from the features.
    ``validate(model)`` runs after every epoch (eval mode, no grad) and returns per-turn metrics named
    ``turn{t}_r1`` ... as `vscn.evaluation.validation_metrics` does; model.pt keeps the epoch with the
    best ``train_config.val_metric`` (ties keep the earlier one), or the last epoch when ``validate``
    is None. ``state_path`` holds the resumable state (saved every
    ``checkpoint_every`` steps and at each epoch end): an existing one resumes the run exactly; one
    from other settings (see `TrainConfig.resume_key`), another model config or other features is an
    error, never silently overwritten. ``max_steps`` stops once that many steps (over the whole run)
    are done, saving the state, so a later call continues.
    """
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    device = resolve_device(train_config.device)
    dataset = FeatureDataset(train_path, max_turns)
    model_config = model_config_for(dataset.features.sizes, model_settings, max_turns, train_config)
    logger.info("training on %s (%d scenes) on %s, amp %s", train_path, len(dataset), device,
                amp_enabled(train_config.amp, device))
    with torch.random.fork_rng(devices=_cuda_devices(device)):  # leave the caller's global RNG alone
        trainer = _Trainer(dataset, out_dir, model_config, train_config, validate, state_path, device)
        if state_path.exists():
            trainer.resume()
        trainer.write_outputs()  # a resumed run's logs and model.pt as of its state
        finished = trainer.run(max_steps)
    best = trainer.best
    return TrainResult(
        model_path=out_dir / MODEL_FILE, train_log=out_dir / TRAIN_LOG, val_log=out_dir / VAL_LOG,
        device=str(device), epochs_done=trainer.epoch, global_step=trainer.global_step,
        best_epoch=None if best is None else best["epoch"], best_score=None if best is None else best["score"],
        finished=finished,
    )
