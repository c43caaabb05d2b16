"""The business-specific relevance classifier as a judge: a cross-encoder scoring (query, product).

METHOD.md part B, step 5 scores every synthetic (ORIGINAL query, product) pair with "a
business-specific relevance classifier"; step 2 uses the same classifier to count good products in a
rewrite's top-K. The model is a sentence-transformers ``CrossEncoder`` with one logit, fine-tuned from
the bundled all-MiniLM-L6-v2 by :func:`~shopsearch.synthesis.judges.training.train_relevance_classifier`;
its score is sigmoid(logit) in [0, 1]. It is trained by the same core as the re-ranker
(:mod:`shopsearch.training.cross_encoder`). A saved classifier is a plain CrossEncoder directory
(``CrossEncoder(path)`` opens it) plus ``shopsearch_judge.json`` (the calibrated threshold and how it
was obtained) and a checksummed ``manifest.json``.

One cross-encoder, not two: the re-ranker of ``shopsearch train-reranker`` (``RUN/model``) or its ONNX
export is a judge as well. ``train-reranker`` calibrates its threshold on dev the same way
(:func:`~shopsearch.synthesis.judges.training.calibrate_reranker_judge`) and stores it as
``shopsearch_judge.json`` in the model directory, so ``--judge RUN/model`` works wherever a
``synth train-judge`` output does, and a shop trains, checks and ships one model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shopsearch.artifacts import MANIFEST, read_manifest
from shopsearch.retrieval.rerank import FUSION_FILE, JUDGE_FILE, load_reranker
from shopsearch.retrieval.rerank_onnx import is_onnx_cross_encoder
from shopsearch.synthesis.judges.base import JudgeError, check_pairs

MANIFEST_KIND = "relevance-classifier"
UNCALIBRATED_THRESHOLD = 0.5


def cross_encoder_class() -> Any:
    """``sentence_transformers.CrossEncoder``, after checking the version can also train it (>= 4)."""
    try:
        from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer  # noqa: F401
    except ImportError:
        import sentence_transformers

        raise JudgeError(
            "the relevance classifier needs sentence-transformers >= 4 (CrossEncoderTrainer); this environment "
            f"has {sentence_transformers.__version__}: pip install -U 'sentence-transformers>=4'"
        ) from None
    return CrossEncoder


class CrossEncoderJudge:
    """A cross-encoder as a :class:`~shopsearch.synthesis.judges.base.RelevanceJudge`.

    ``model`` is a sentence-transformers ``CrossEncoder`` or a re-ranker scorer (anything with
    ``score(queries, texts) -> logits``, e.g. :class:`~shopsearch.retrieval.rerank_onnx.OnnxCrossEncoder`).
    ``score`` = sigmoid(logit) in [0, 1]; :meth:`load` takes ``threshold`` from the dev calibration
    saved with the model unless one is given.
    """

    def __init__(
        self,
        model: Any,
        *,
        threshold: float = UNCALIBRATED_THRESHOLD,
        batch_size: int = 64,
        name: str = "business",
        info: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.threshold = float(threshold)
        self.batch_size = batch_size
        self.name = name
        self.info = dict(info or {})

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        threshold: float | None = None,
        device: str | None = "cpu",
        batch_size: int = 64,
        name: str = "business",
        verify: bool = True,
    ) -> CrossEncoderJudge:
        """Open a directory written by ``train_relevance_classifier`` (kind and checksums verified), or a
        re-ranker: a ``train-reranker`` model directory or its ONNX export (scored on onnxruntime)."""
        path = Path(path)
        reranker = is_onnx_cross_encoder(path) or ((path / FUSION_FILE).is_file() and not (path / MANIFEST).is_file())
        if not reranker:
            manifest = read_manifest(path, kind=MANIFEST_KIND, verify=verify)
        saved = json.loads((path / JUDGE_FILE).read_text(encoding="utf-8")) if (path / JUDGE_FILE).is_file() else None
        if saved is None and (not reranker or threshold is None):
            raise JudgeError(f"{path} holds no {JUDGE_FILE}: a re-ranker becomes a judge once `shopsearch "
                             "train-reranker --dev-judgments ...` calibrates its threshold (or give a threshold)")
        ce = cross_encoder_class()
        try:
            model = load_reranker(path) if reranker else ce(str(path), device=device, local_files_only=True)
        except Exception as exc:
            raise JudgeError(f"could not load the relevance classifier at {path}: {exc}") from exc
        saved = saved or {}
        info = {
            "path": str(path.resolve()),
            "calibrated": saved.get("calibrated", False),
            "calibration": saved.get("calibration"),
            "created": None if reranker else manifest.get("created"),
            **({"reranker": model.describe()["kind"]} if reranker else {}),
        }
        return cls(
            model,
            threshold=float(threshold) if threshold is not None else float(saved["threshold"]),
            batch_size=batch_size,
            name=name,
            info=info,
        )

    def score(self, queries: Sequence[str], product_texts: Sequence[str]) -> np.ndarray:
        q, t = check_pairs(queries, product_texts)
        if not q:
            return np.zeros(0, dtype=np.float32)
        if not hasattr(self.model, "predict"):  # a re-ranker scorer: raw logits
            logits = np.asarray(self.model.score(q, t), dtype=np.float64)
            return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
        import torch

        scores = self.model.predict(
            list(zip(q, t, strict=True)),
            batch_size=self.batch_size,
            show_progress_bar=False,
            activation_fn=torch.nn.Sigmoid(),  # probabilities, whatever activation a saved config holds
            convert_to_numpy=True,
        )
        return np.asarray(scores, dtype=np.float32).reshape(-1)

    def accepts(self, queries: Sequence[str], product_texts: Sequence[str]) -> np.ndarray:
        return self.score(queries, product_texts) >= self.threshold

    def describe(self) -> dict[str, Any]:
        return {"kind": "cross-encoder", "name": self.name, "threshold": self.threshold, **self.info}
