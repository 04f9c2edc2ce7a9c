"""What an evaluation produces, and how it is written: metrics JSON and CSV, strict rankings NPZ.

The files of one result are written under temporary names in their target folder and renamed only
when all are complete, so a reader never sees half a file or a mix of two results.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from vscn.io import FILE_MODE
from vscn.metrics import TurnMetrics, metrics_from_ranks

METRIC_COLUMNS = tuple(f.name for f in fields(TurnMetrics))  # turn, r1, r5, r10, medr, meanr, mrr
TIE_RULE = "ties count against the target"  # recorded with every result (see vscn.metrics)


def per_turn_metrics(ranks: torch.Tensor, turns: Sequence[int]) -> tuple[TurnMetrics, ...]:
    """1-based target ranks ``(turns, Q)`` -> one `TurnMetrics` per turn."""
    return tuple(metrics_from_ranks(ranks[k].cpu(), turn) for k, turn in enumerate(turns))


@dataclass(frozen=True)
class Rankings:
    """The top of each final order, for qualitative examples: query set i describes image i."""

    image_id: np.ndarray  # (N,) int64, gallery row -> image id
    turn: np.ndarray  # (turns,) int64
    top: np.ndarray  # (turns, N, K_show) int64 gallery rows, best first
    scores: np.ndarray  # (turns, N, K_show) float32, the scores they were ordered by


@dataclass(frozen=True)
class EvaluationResult:
    """Metrics of one protocol, ablation or baseline on one split.

    ``skipped`` holds the reason when a baseline could not be computed (then ``turns`` is empty).
    ``extra`` holds JSON-ready details (``top_k``, ``shard_size``, ...).
    """

    protocol: str
    label: str  # human-readable, for tables and plots
    n_queries: int  # query sets the metrics average over
    n_gallery: int  # images each query set was ranked against
    turns: tuple[TurnMetrics, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)
    rankings: Rankings | None = None
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"protocol": self.protocol, "label": self.label, "n_queries": self.n_queries,
               "n_gallery": self.n_gallery, "turns": [m.as_dict() for m in self.turns]}
        if self.skipped is not None:
            out["skipped"] = self.skipped
        return {**out, **self.extra}


def _write_all(files: dict[Path, Callable[[IO[bytes]], None]]) -> list[Path]:
    """Write each ``path`` through ``write(binary stream)``: all under temporary names first, then
    renamed, so a failure leaves every earlier version in place and no temporary file behind."""
    staged: list[tuple[str, Path]] = []
    try:
        for path, write in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            staged.append((temporary, path))
            with os.fdopen(handle, "wb") as stream:
                write(stream)
            os.chmod(temporary, FILE_MODE)  # mkstemp files are private; metrics are for every reader
        for temporary, path in staged:
            os.replace(temporary, path)
    except BaseException:
        for temporary, _ in staged:
            Path(temporary).unlink(missing_ok=True)
        raise
    return list(files)


def _csv_bytes(result: EvaluationResult) -> bytes:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=METRIC_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(m.as_dict() for m in result.turns)
    return text.getvalue().encode()


def write_metrics(result: EvaluationResult, out_dir: Path | str, name: str) -> list[Path]:
    """``<out_dir>/<name>.json`` and ``<name>.csv`` (one row per turn) and, when the result carries
    rankings, ``<name>_rankings.npz``. Returns the paths written."""
    out_dir = Path(out_dir)
    document = json.dumps(result.as_dict(), indent=2, allow_nan=False).encode() + b"\n"
    files: dict[Path, Callable[[IO[bytes]], None]] = {
        out_dir / f"{name}.json": lambda stream: stream.write(document),
        out_dir / f"{name}.csv": lambda stream: stream.write(_csv_bytes(result)),
    }
    if result.rankings is not None:
        rankings = result.rankings
        arrays = {"image_id": rankings.image_id, "turn": rankings.turn, "top": rankings.top,
                  "scores": rankings.scores}
        files[out_dir / f"{name}_rankings.npz"] = lambda stream: np.savez(stream, **arrays)
    return _write_all(files)
