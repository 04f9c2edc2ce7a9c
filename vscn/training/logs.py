"""Training and validation logs (CSV), the loss window behind each row, and the validation score.

A validation callable returns a flat dict of per-turn metrics named ``turn{t}_{metric}`` (e.g.
``turn1_r1``, ``turn10_r5``; recalls in percent), as `vscn.evaluation.validation_metrics` does;
other keys are ignored. `turn_metrics_dict` builds one from :class:`vscn.metrics.TurnMetrics`. The
validation log keeps R@1/5/10 of the first and the last turn as columns ``t1_r1`` ... ``t10_r10``
(empty when the callable did not evaluate that turn).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from vscn.io import atomic_write_text
from vscn.metrics import RECALL_CUTOFFS, TurnMetrics

LOSS_COLUMNS = ("loss", "loss_infonce", "loss_distill", "loss_s1", "loss_s2", "loss_global")
TRAIN_COLUMNS = ("epoch", "step", "lr", *LOSS_COLUMNS)
RECALL_NAMES = tuple(f"r{k}" for k in RECALL_CUTOFFS)
FLOAT_FORMAT = ".6g"

Row = list[float | int | None]  # None: an empty cell


def metric_key(turn: int, name: str) -> str:
    """The validation-dict key of metric ``name`` (e.g. ``r1``) at 1-based ``turn``."""
    return f"turn{turn}_{name}"


def logged_turns(max_turns: int) -> tuple[int, ...]:
    """The turns the validation log keeps: the first and the last."""
    return (1, max_turns) if max_turns > 1 else (1,)


def turn_metrics_dict(metrics: Iterable[TurnMetrics]) -> dict[str, float]:
    """``{"turn1_r1": ..., "turn1_r5": ..., ..., "turnT_mrr": ...}`` from per-turn metrics."""
    return {metric_key(m.turn, name): float(value) for m in metrics
            for name, value in m.as_dict().items() if name != "turn"}


def val_columns(max_turns: int) -> tuple[str, ...]:
    """``epoch, step, score`` and R@1/5/10 of the first and the last turn."""
    return ("epoch", "step", "score", *(f"t{t}_{name}" for t in logged_turns(max_turns) for name in RECALL_NAMES))


def _recall_sum(metrics: Mapping[str, float], turn: int) -> float:
    keys = [metric_key(turn, name) for name in RECALL_NAMES]
    missing = [key for key in keys if key not in metrics]
    if missing:
        raise KeyError(f"validation metrics lack {', '.join(missing)} (got {', '.join(sorted(metrics)) or 'none'})")
    return sum(float(metrics[key]) for key in keys)


def validation_score(metrics: Mapping[str, float], metric: str, max_turns: int) -> float:
    """``turn1``: R@1 + R@5 + R@10 of turn 1 (the official selection); ``mean_turns``: that sum
    averaged over turns 1..max_turns."""
    if metric == "turn1":
        return _recall_sum(metrics, 1)
    if metric == "mean_turns":
        return sum(_recall_sum(metrics, t) for t in range(1, max_turns + 1)) / max_turns
    raise ValueError(f"unknown validation metric {metric!r}")


def val_row(epoch: int, step: int, score: float, metrics: Mapping[str, float], max_turns: int) -> Row:
    """One val_log.csv row (see `val_columns`)."""
    keys = (metric_key(t, name) for t in logged_turns(max_turns) for name in RECALL_NAMES)
    return [epoch, step, score, *(float(metrics[key]) if key in metrics else None for key in keys)]


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Row]) -> None:
    """Write the whole log atomically (a resumed run rewrites it from the rows its state kept)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if value is None else value if isinstance(value, int) else format(value, FLOAT_FORMAT)
                         for value in row])
    atomic_write_text(path, buffer.getvalue())


class LossWindow:
    """Sums of the loss terms over the steps since the last log row, kept on the training device
    so that a step does not wait for the device."""

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(len(LOSS_COLUMNS), device=device)  # (terms,)
        self.count = 0

    def add(self, terms: Tensor) -> None:
        """terms ``(len(LOSS_COLUMNS),)`` of one step, in column order."""
        self.sums += terms.detach().float()
        self.count += 1

    def take_means(self) -> list[float]:
        """The means since the last call, and start a new window; a non-finite mean is an error."""
        means = (self.sums / max(self.count, 1)).tolist()
        if not all(math.isfinite(value) for value in means):
            raise FloatingPointError(f"non-finite training loss over the last {self.count} steps: "
                                     f"{dict(zip(LOSS_COLUMNS, means))}; lower the lr or check the features")
        self.sums.zero_()
        self.count = 0
        return means

    def state(self) -> dict[str, list[float] | int]:
        return {"sums": self.sums.tolist(), "count": self.count}

    def load_state(self, state: Mapping[str, list[float] | int]) -> None:
        self.sums = torch.tensor(state["sums"], dtype=self.sums.dtype, device=self.sums.device)
        self.count = int(state["count"])
