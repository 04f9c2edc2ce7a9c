"""What the report reads from a run directory, checked and loaded into plain values.

Required files (a missing one is a `ReportInputError` naming it): the resolved config, the scene
database summary and tables, the training log and the strict metrics. Everything else (validation
log, other protocols, baselines, ablations, strict rankings) is optional: the page notes its absence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from vscn.data import scenes as scene_db

CONFIG_FILE = Path("config.yaml")
SCENES_DIR = Path("scenes")  # the run's scene database (vscn.data.scenes)
SUMMARY_FILE = SCENES_DIR / scene_db.SUMMARY_FILE
SCENES_FILE = SCENES_DIR / scene_db.SCENES_FILE
REGIONS_FILE = SCENES_DIR / scene_db.REGIONS_FILE
TRAIN_LOG = Path("train/train_log.csv")
VAL_LOG = Path("train/val_log.csv")
METRICS_DIR = Path("metrics")
STRICT = "strict"
PAPER = "paper"
RANKINGS_FILE = METRICS_DIR / f"{STRICT}_rankings.npz"
REQUIRED = (CONFIG_FILE, SUMMARY_FILE, SCENES_FILE, REGIONS_FILE, TRAIN_LOG, METRICS_DIR / f"{STRICT}.json")
METRIC_KEYS = ("r1", "r5", "r10", "medr", "meanr", "mrr")
RANKING_ARRAYS = ("image_id", "turn", "top", "scores")
KIND_ORDER = ("protocol", "ablation", "baseline")  # table and legend order of the evaluations


class ReportInputError(ValueError):
    """A report input that is missing or unusable; the message names the file and the problem."""


@dataclass(frozen=True)
class Evaluation:
    """One metrics file: a protocol, ablation or baseline on the test split."""

    name: str  # file stem, e.g. "strict"
    label: str
    kind: str  # protocol, ablation or baseline ("other" when the file does not say)
    n_queries: int
    n_gallery: int
    turns: tuple[dict[str, float], ...]  # {"turn", "r1", ..., "mrr"} per evaluated turn
    extra: dict[str, Any]  # the file's other keys (shard_size, top_k, skipped, ...)

    @property
    def skipped(self) -> str | None:
        return self.extra.get("skipped")

    def at_turn(self, turn: int) -> dict[str, float] | None:
        return next((row for row in self.turns if int(row["turn"]) == turn), None)


@dataclass(frozen=True)
class Rankings:
    """The strict protocol's top images per query set and turn; query set i describes row i."""

    image_id: np.ndarray  # (N,) gallery row -> image id
    turn: np.ndarray  # (turns,)
    top: np.ndarray  # (turns, N, K) gallery rows, best first
    scores: np.ndarray  # (turns, N, K)


@dataclass(frozen=True)
class RunData:
    """Everything the report shows about one run."""

    name: str
    path: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    scenes: pd.DataFrame  # image_id, split, width, height, image_path
    regions: pd.DataFrame  # image_id, region_id, caption (region-id order within a scene)
    train_log: pd.DataFrame
    val_log: pd.DataFrame | None
    evaluations: dict[str, Evaluation]  # name -> evaluation, protocols first
    rankings: Rankings | None
    notes: list[str] = field(default_factory=list)  # optional inputs that were absent or unusable


def _require(path: Path) -> Path:
    if not path.exists():
        raise ReportInputError(f"{path}: required report input not found")
    return path


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ReportInputError(f"{path}: not valid JSON: {error}") from error


def _read_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ReportInputError(f"{path}: not a readable CSV file: {error}") from error
    missing = [name for name in columns if name not in table.columns]
    if missing:
        raise ReportInputError(f"{path}: missing column(s) {', '.join(missing)}")
    return table


def _read_parquet(path: Path, columns: list[str]) -> pd.DataFrame:
    try:
        return pd.read_parquet(path, columns=columns)
    except (OSError, ValueError, KeyError) as error:
        raise ReportInputError(f"{path}: cannot read columns {', '.join(columns)}: {error}") from error


def read_evaluation(path: Path) -> Evaluation:
    """One ``metrics/<name>.json`` file, checked to hold the per-turn metrics."""
    document = _read_json(path)
    if not isinstance(document, dict) or not isinstance(document.get("turns"), list):
        raise ReportInputError(f"{path}: a metrics file must be an object with a 'turns' list")
    for row in document["turns"]:
        missing = [key for key in ("turn", *METRIC_KEYS) if not isinstance(row, dict) or key not in row]
        if missing:
            raise ReportInputError(f"{path}: a turn entry lacks {', '.join(missing)}")
    known = ("protocol", "label", "kind", "n_queries", "n_gallery", "turns")
    return Evaluation(
        name=path.stem, label=str(document.get("label", path.stem)), kind=str(document.get("kind", "other")),
        n_queries=int(document.get("n_queries", 0)), n_gallery=int(document.get("n_gallery", 0)),
        turns=tuple(document["turns"]), extra={k: v for k, v in document.items() if k not in known})


def _evaluation_order(evaluation: Evaluation) -> tuple[int, int, str]:
    kind = KIND_ORDER.index(evaluation.kind) if evaluation.kind in KIND_ORDER else len(KIND_ORDER)
    return kind, evaluation.name != STRICT, evaluation.name


def read_evaluations(metrics_dir: Path) -> dict[str, Evaluation]:
    """Every ``*.json`` metrics file in ``metrics_dir``: protocols (strict first), ablations, baselines."""
    evaluations = [read_evaluation(path) for path in sorted(metrics_dir.glob("*.json"))]
    return {e.name: e for e in sorted(evaluations, key=_evaluation_order)}


def read_rankings(path: Path) -> Rankings:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = [name for name in RANKING_ARRAYS if name not in arrays]
            if missing:
                raise ReportInputError(f"{path}: missing array(s) {', '.join(missing)}")
            rankings = Rankings(*(arrays[name] for name in RANKING_ARRAYS))
    except (OSError, ValueError) as error:
        raise ReportInputError(f"{path}: not a readable rankings file: {error}") from error
    turns, n, _ = rankings.top.shape
    if rankings.turn.shape != (turns,) or rankings.image_id.shape != (n,) or rankings.scores.shape != rankings.top.shape:
        raise ReportInputError(f"{path}: array shapes disagree: image_id {rankings.image_id.shape}, "
                               f"turn {rankings.turn.shape}, top {rankings.top.shape}, scores {rankings.scores.shape}")
    return rankings


def load_run(run_dir: Path | str) -> RunData:
    """Read one run directory (``results/<run>``); raises `ReportInputError` naming a missing required file."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportInputError(f"{run_dir}: run directory not found")
    for relative in REQUIRED:
        _require(run_dir / relative)
    config = yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise ReportInputError(f"{run_dir / CONFIG_FILE}: the resolved config must be a YAML mapping")
    notes = []
    val_log = None
    if (run_dir / VAL_LOG).is_file():
        val_log = _read_csv(run_dir / VAL_LOG, ("epoch", "score"))
    else:
        notes.append(f"{run_dir / VAL_LOG} not found: no validation curve (training ran without validation?)")
    rankings = None
    if (run_dir / RANKINGS_FILE).is_file():
        rankings = read_rankings(run_dir / RANKINGS_FILE)
    else:
        notes.append(f"{run_dir / RANKINGS_FILE} not found: no qualitative examples")
    evaluations = read_evaluations(run_dir / METRICS_DIR)
    if PAPER not in evaluations:
        notes.append(f"{run_dir / METRICS_DIR / (PAPER + '.json')} not found: no paper-protocol comparison")
    return RunData(
        name=str(config.get("run", run_dir.name)), path=run_dir, config=config,
        summary=_read_json(run_dir / SUMMARY_FILE),
        scenes=_read_parquet(run_dir / SCENES_FILE, ["image_id", "split", "image_path"]),
        regions=_read_parquet(run_dir / REGIONS_FILE, ["image_id", "region_id", "caption"]),
        train_log=_read_csv(run_dir / TRAIN_LOG, ("epoch", "step", "lr", "loss")),
        val_log=val_log, evaluations=evaluations, rankings=rankings, notes=notes)
