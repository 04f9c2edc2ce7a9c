"""Retrieval evaluation: the strict and paper protocols, ablations, zero-shot baselines, writers.

See ``docs/evaluation.md`` for the protocols, the tie rule and the labels.
"""

from vscn.evaluation.baselines import BASELINES, evaluate_baseline, shared_space
from vscn.evaluation.protocols import (ABLATIONS, EVALUATIONS, PROTOCOLS, evaluate_encoded, evaluate_model,
                                       evaluate_protocol, validation_metrics)
from vscn.evaluation.result import EvaluationResult, Rankings, write_metrics
from vscn.evaluation.split import EncodedSplit, RawSplit, encode_split, load_split
from vscn.evaluation.strict import GalleryRanking, rank_gallery, strict_rankings

__all__ = [
    "ABLATIONS", "BASELINES", "EVALUATIONS", "PROTOCOLS", "EncodedSplit", "EvaluationResult",
    "GalleryRanking", "Rankings", "RawSplit", "encode_split", "evaluate_baseline", "evaluate_encoded",
    "evaluate_model", "evaluate_protocol", "load_split", "rank_gallery", "shared_space",
    "strict_rankings", "validation_metrics", "write_metrics",
]
