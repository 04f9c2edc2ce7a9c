"""Multi-turn retrieval over a trained run's gallery with free-text queries (`vscn search`).

A `SearchSession` loads a run's model (``train/model.pt``) and one split's feature file, encodes the
gallery once, and builds the text encoder recorded in the feature file, so a typed query is embedded
exactly as the run's captions were. Each added query is one turn: the gallery is ranked again with all
queries so far under the strict protocol (`vscn.evaluation.rank_gallery`: every image ranked by S1,
the best ``top_k`` rescored with the fused pairwise score).

Queries are cleaned before encoding: whitespace runs become one space, text is lower-cased (the scene
rules lower-case every caption), and text beyond `MAX_QUERY_CHARS` characters is cut with a warning.
The demo's MiniLM encoder would cut it anyway: it reads at most 256 word pieces and silently drops
the rest. An empty query is an error; any Unicode text is accepted.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from vscn.data.encoders import TEXT_ENCODERS, EncoderUnavailableError, SentenceEncoder, build_text_encoder
from vscn.data.features import FeatureFile
from vscn.data.scenes import SCENES_FILE as SCENE_TABLE_FILE
from vscn.evaluation import GalleryRanking, encode_split, rank_gallery
from vscn.evaluation.strict import DEFAULT_TOP_K
from vscn.training import load_model, resolve_device
from vscn.training.loop import MODEL_FILE as TRAINED_MODEL_FILE

logger = logging.getLogger(__name__)

MAX_QUERY_CHARS = 1000  # far beyond any caption; the encoders truncate long text themselves
DEFAULT_SHOW = 10
MODEL_FILE = Path("train") / TRAINED_MODEL_FILE
SCENES_FILE = Path("scenes") / SCENE_TABLE_FILE
RESET_COMMAND, QUIT_COMMAND = ":reset", ":quit"


class SearchError(ValueError):
    """A run that cannot be searched; the message names the file and the problem."""


class QueryError(ValueError):
    """A query that cannot be used (empty, or one turn too many)."""


def clean_query(text: str) -> str:
    """The query as it is encoded (see the module docstring); raises `QueryError` when empty."""
    cleaned = " ".join(text.split()).lower()
    if not cleaned:
        raise QueryError("empty query: type a description of a region of the image you look for")
    if len(cleaned) > MAX_QUERY_CHARS:
        logger.warning("query of %d characters cut to the first %d", len(cleaned), MAX_QUERY_CHARS)
        cleaned = cleaned[:MAX_QUERY_CHARS].rstrip()
    return cleaned


def feature_path(run_dir: Path, split: str) -> Path:
    return run_dir / "features" / f"{split}.h5"


def _registered_class(name: str) -> type | None:
    """The class registered as text encoder ``name``, or None for an unknown name."""
    if name not in TEXT_ENCODERS:
        return None
    module_name, class_name = TEXT_ENCODERS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def run_text_encoder(attrs: dict[str, Any], path: Path) -> SentenceEncoder:
    """The text encoder a feature file records (name and settings), if it can embed free text."""
    name = str(attrs.get("text_encoder", ""))
    settings = json.loads(attrs.get("text_encoder_settings", "{}"))
    registered = _registered_class(name)
    if registered is not None and not issubclass(registered, SentenceEncoder):
        raise SearchError(f"{path}: the run's text encoder {name!r} reads precomputed caption features and cannot "
                          "encode free text; search needs a run whose features use a sentence encoder "
                          "(all-minilm-l6-v2 or open-clip)")
    try:
        encoder = build_text_encoder(name, **settings)
    except (ValueError, OSError, EncoderUnavailableError) as error:
        raise SearchError(f"{path}: cannot build the run's text encoder {name!r} with {settings}: {error}") from error
    return encoder  # a SentenceEncoder: an unknown name fails to build, a known one was checked above


@dataclass(frozen=True)
class Hit:
    rank: int  # 1-based
    score: float
    score_kind: str  # "fused" for the rescored top, "s1" below it: the two scales differ
    image_id: int
    image_path: str

    def as_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "score": self.score, "score_kind": self.score_kind,
                "image_id": self.image_id, "image_path": self.image_path}


@dataclass(frozen=True)
class SearchRanking:
    """The whole gallery ordered after one turn."""

    queries: tuple[str, ...]  # every query so far, as encoded
    order: np.ndarray  # (N,) gallery rows, best first
    scores: np.ndarray  # (N,) the score behind each position
    num_rescored: int  # positions before this carry fused scores, the rest S1 scores
    image_ids: np.ndarray  # (N,) gallery row -> image id
    image_paths: tuple[str, ...]  # gallery row -> image file ("" when unknown)

    @property
    def turn(self) -> int:
        return len(self.queries)

    def top(self, count: int = DEFAULT_SHOW) -> list[Hit]:
        return [Hit(position + 1, float(self.scores[position]), "fused" if position < self.num_rescored else "s1",
                    int(self.image_ids[row]), self.image_paths[row])
                for position, row in enumerate(self.order[:count])]

    def rank_of_row(self, row: int) -> int:
        """1-based position of gallery row ``row``."""
        return int(np.flatnonzero(self.order == row)[0]) + 1

    def as_dict(self, count: int = DEFAULT_SHOW) -> dict[str, Any]:
        return {"turn": self.turn, "queries": list(self.queries), "gallery_size": len(self.order),
                "rescored": self.num_rescored, "results": [hit.as_dict() for hit in self.top(count)]}


def _image_paths(run_dir: Path, image_ids: np.ndarray) -> tuple[str, ...]:
    """Image files from the run's scene table, "" where unknown or when the table is absent."""
    path = run_dir / SCENES_FILE
    if not path.is_file():
        logger.warning("%s not found: image paths unknown", path)
        return ("",) * len(image_ids)
    table = pd.read_parquet(path, columns=["image_id", "image_path"])
    known = dict(zip(table["image_id"].astype(int), table["image_path"].astype(str)))
    return tuple(known.get(int(image_id), "") for image_id in image_ids)


class SearchSession:
    """Multi-turn search over one split of a trained run; each `add_query` is one turn.

    ``top_k``: images rescored with the fused score per turn; ``device``: ``auto``, ``cpu`` or
    ``cuda``; ``text_encoder``: use this encoder instead of the one the feature file records.
    """

    def __init__(self, run_dir: Path | str, split: str = "test", top_k: int = DEFAULT_TOP_K, device: str = "auto",
                 text_encoder: SentenceEncoder | None = None) -> None:
        self.run_dir = Path(run_dir)
        model_path, features = self.run_dir / MODEL_FILE, feature_path(self.run_dir, split)
        for required in (model_path, features):
            if not required.is_file():
                raise SearchError(f"{required}: not found; is {self.run_dir} a trained run with {split} features?")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.top_k = top_k
        self.model, _ = load_model(model_path, map_location=resolve_device(device))
        with FeatureFile(features, in_memory=False) as feature_file:
            attrs = dict(feature_file.attrs)
        self.text_encoder = text_encoder if text_encoder is not None else run_text_encoder(attrs, features)
        gallery = encode_split(self.model, features)
        self.r, self.c = gallery.r, gallery.c  # (N, R, d), (N, d): encoded once, reused every turn
        self.image_ids = gallery.image_ids
        self.image_paths = _image_paths(self.run_dir, self.image_ids)
        self.features_path = features
        self._queries: list[str] = []
        self._features: list[np.ndarray] = []  # (Dq,) per query so far

    @property
    def max_turns(self) -> int:
        return self.model.config.max_turns

    @property
    def queries(self) -> tuple[str, ...]:
        return tuple(self._queries)

    @property
    def gallery_size(self) -> int:
        return len(self.image_ids)

    def reset(self) -> None:
        """Forget every query: the next one is turn 1."""
        self._queries.clear()
        self._features.clear()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Texts, as given, through the run's text encoder -> float32 ``(len(texts), Dq)``."""
        features = np.asarray(self.text_encoder.encode_texts(list(texts)), np.float32)
        if features.shape != (len(texts), self.model.config.query_dim):
            raise SearchError(f"{self.features_path}: the text encoder gives features of shape {features.shape}, "
                              f"the model expects ({len(texts)}, {self.model.config.query_dim})")
        return features

    def rank_features(self, features: np.ndarray) -> GalleryRanking:
        """The gallery ordered for query features ``(n, Dq)``, 1 <= n <= max_turns."""
        query = torch.from_numpy(np.ascontiguousarray(features)).to(self.r.device)  # (n, Dq)
        return rank_gallery(self.model, self.r, self.c, query, self.top_k)

    def add_query(self, text: str) -> SearchRanking:
        """Add one turn and rank the gallery with every query so far; `QueryError` on a bad query."""
        if len(self._queries) >= self.max_turns:
            raise QueryError(f"this model takes at most {self.max_turns} queries per search; reset to start again")
        cleaned = clean_query(text)
        self._features.append(self.encode([cleaned])[0])
        self._queries.append(cleaned)
        ranking = self.rank_features(np.stack(self._features))  # (n, Dq) -> gallery order
        return SearchRanking(tuple(self._queries), ranking.order.cpu().numpy(), ranking.scores.float().cpu().numpy(),
                             ranking.num_rescored, self.image_ids, self.image_paths)

    def search(self, texts: Sequence[str]) -> list[SearchRanking]:
        """A new search with ``texts`` as turns 1, 2, ...: the ranking after each."""
        self.reset()
        return [self.add_query(text) for text in texts]


def spread_rows(num_rows: int, count: int | None) -> np.ndarray:
    """``count`` distinct rows spread evenly over ``num_rows`` (all when None or more than there are)."""
    if count is None or count >= num_rows:
        return np.arange(num_rows)
    return np.unique(np.linspace(0, num_rows - 1, count).round().astype(np.int64))


def self_retrieval_rate(run_dir: Path | str, n_turns: int = 5, top: int = 5, n_scenes: int | None = None,
                        split: str = "test", session: SearchSession | None = None) -> float:
    """Fraction of scenes of ``split`` found in the top ``top`` after ``n_turns`` turns when their own
    first ``n_turns`` captions (region-id order, encoded as stored) are typed as queries.

    ``n_scenes`` scenes spread evenly over the split (all when None). Pass a ``session`` to reuse one.
    """
    session = session if session is not None else SearchSession(run_dir, split)
    if not 1 <= n_turns <= session.max_turns or top < 1:
        raise ValueError(f"n_turns must be within 1..{session.max_turns} and top >= 1, got {n_turns} and {top}")
    with FeatureFile(session.features_path, in_memory=False) as features:
        rows = spread_rows(len(features.image_ids), n_scenes)
        captions = [features.captions(int(row))[:n_turns] for row in rows]
    short = [int(session.image_ids[row]) for row, texts in zip(rows, captions) if len(texts) < n_turns]
    if short:
        raise ValueError(f"{session.features_path}: image(s) {short[:5]} have fewer than {n_turns} captions")
    encoded = session.encode([text for texts in captions for text in texts]).reshape(len(rows), n_turns, -1)
    found = sum(int(row) in session.rank_features(encoded[k]).order[:top].tolist() for k, row in enumerate(rows))
    return found / len(rows)


# ------------------------------------------------------------------------------------ output

def format_ranking(ranking: SearchRanking, count: int = DEFAULT_SHOW, as_json: bool = False) -> str:
    """One turn's ranking as a text table or one JSON line."""
    if as_json:
        return json.dumps(ranking.as_dict(count), ensure_ascii=False)
    header = f"turn {ranking.turn}: " + " | ".join(ranking.queries)
    lines = [header, f"{'rank':>4}  {'score':>9}  {'kind':<5}  {'image_id':>9}  image_path"]
    lines += [f"{hit.rank:>4}  {hit.score:>9.4f}  {hit.score_kind:<5}  {hit.image_id:>9}  {hit.image_path or '-'}"
              for hit in ranking.top(count)]
    return "\n".join(lines)


@dataclass(frozen=True)
class Output:
    text: str
    is_message: bool  # a message for the user (stderr), not a result (stdout)


def interactive(session: SearchSession, lines: Iterable[str], count: int = DEFAULT_SHOW,
                as_json: bool = False) -> Iterator[Output]:
    """One query per line, the ranking refreshed after each; an empty or unusable query is skipped
    with a message. ``:reset`` starts a new search, ``:quit`` ends."""
    for line in lines:
        command = line.strip()
        if command == QUIT_COMMAND:
            return
        if command == RESET_COMMAND:
            session.reset()
            yield Output("new search: the next query is turn 1", True)
            continue
        try:
            ranking = session.add_query(line)
        except QueryError as error:
            yield Output(f"skipped: {error}", True)
            continue
        yield Output(format_ranking(ranking, count, as_json), False)
