"""Retrieve, then re-rank: a cross-encoder scores the top ``depth`` hits of any first-stage retriever.

A cross-encoder reads the query and the product text together, so it sees what a dual encoder's two
separate vectors cannot (negations, a part number against a model, which word is the head noun), at
the cost of one forward pass per (query, product) pair: affordable for the first stage's top N only.
:class:`CrossEncoderReranker` wraps a sentence-transformers ``CrossEncoder`` directory (one logit: a
model from ``shopsearch train-reranker``, or any ``CrossEncoder(path)``-loadable one); all pairs of a
batch of queries go through one ``predict`` call, which sorts them by length into batches.

:class:`RerankedRetriever` keeps the first stage's hits below ``depth`` in their order, scored below
every re-ranked one, so ``k > depth`` still returns the first stage's recall.

Fusion. With ``fusion_weight`` w the head is ordered by ``w * z(ce) + (1 - w) * z(first)``, each score
standardised over the query's head (z-scores: the two scales are unrelated, per-query
standardisation needs no calibration set). Why: on Home Depot a cross-encoder trained on the judged
pairs alone ranks below its own first stage, yet fused it adds several points of NDCG@10: the first
stage's lexical score carries what the shop's engine showed, the cross-encoder what the words mean.
``train-reranker`` picks w on dev and stores it with the model (``FUSION_FILE``); w = 1 is the
cross-encoder alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shopsearch.data.errors import ShopsearchError
from shopsearch.retrieval.base import NO_ID, NO_SCORE, Retriever, SearchResult

FUSION_FILE = "shopsearch_reranker.json"  # in the model directory: {"fusion_weight": w, ...}
# The model's threshold as a relevance judge (shopsearch.synthesis.judges), when calibrated.
JUDGE_FILE = "shopsearch_judge.json"


def read_reranker_settings(model_dir: str | Path) -> dict[str, Any]:
    """What ``train-reranker`` stored with the model (``FUSION_FILE``): ``fusion_weight``, the
    ``text_fields`` the product text was rendered from, the dev curve; ``{}`` when there is none."""
    import json

    path = Path(model_dir) / FUSION_FILE
    if not path.is_file():
        return {}
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ShopsearchError(f"{path}: unreadable re-ranker settings: {exc}") from exc
    if not isinstance(settings, dict):
        raise ShopsearchError(f"{path}: re-ranker settings must be a JSON object")
    value = settings.get("fusion_weight")
    if value is not None and not 0.0 <= float(value) <= 1.0:
        raise ShopsearchError(f"{path}: fusion_weight must lie in [0, 1], got {value}")
    return settings


def read_fusion_weight(model_dir: str | Path) -> float | None:
    """The fusion weight ``train-reranker`` stored with the model (None: none stored)."""
    value = read_reranker_settings(model_dir).get("fusion_weight")
    return None if value is None else float(value)


def reranker_text_fields(model_dir: str | Path) -> tuple[str, ...]:
    """The catalogue fields the re-ranker's product text is rendered from (default: the title)."""
    return tuple(read_reranker_settings(model_dir).get("text_fields") or ("title",))


def fuse_head(ce: np.ndarray, first: np.ndarray, weight: float | None) -> np.ndarray:
    """The head's ordering scores: ``ce`` alone (weight None) or the z-score fusion with ``first``."""
    if weight is None or len(ce) == 0:
        return ce.astype(np.float64)

    def z(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64)
        sd = float(x.std())
        return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)

    return weight * z(ce) + (1.0 - weight) * z(first)


class CrossEncoderReranker:
    """Relevance logits of (query, product text) pairs from a local ``CrossEncoder`` directory.

    Args:
        model: the model directory.
        batch_size: pairs per forward pass.
        max_length: truncate each pair to this many tokens (None: the model's own setting).
        device: torch device (CPU by default, like the encoders).
    """

    def __init__(self, model: str | Path, *, batch_size: int = 64, max_length: int | None = None,
                 device: str = "cpu") -> None:
        self.path = Path(model)
        if not self.path.is_dir():
            raise ShopsearchError(f"re-ranker {str(model)!r} is not a directory; shopsearch loads models from "
                                  "local directories only (train one with `shopsearch train-reranker`)")
        self.fusion_weight = read_fusion_weight(self.path)
        self.text_fields = reranker_text_fields(self.path)
        try:
            from sentence_transformers.cross_encoder import CrossEncoder

            self.model = CrossEncoder(str(self.path), device=device, local_files_only=True,
                                      **({"max_length": max_length} if max_length else {}))
        except Exception as exc:  # OSError, ValueError, safetensors errors...
            raise ShopsearchError(f"could not load the re-ranker at {self.path}: {exc}") from exc
        if getattr(self.model, "num_labels", 1) != 1:
            raise ShopsearchError(f"re-ranker {self.path} has {self.model.num_labels} outputs; a re-ranker has one")
        self.batch_size = batch_size

    @property
    def name(self) -> str:
        """The model's run name (``RUN`` for ``RUN/model``), else its directory name."""
        return self.path.parent.name if self.path.name == "model" and self.path.parent.name else self.path.name

    def score(self, queries: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """Raw logits, float32, one per pair (higher = more relevant)."""
        if len(queries) != len(texts):
            raise ValueError(f"{len(queries)} queries for {len(texts)} product texts")
        if not queries:
            return np.zeros(0, dtype=np.float32)
        import torch

        scores = self.model.predict(list(zip(queries, texts, strict=True)), batch_size=self.batch_size,
                                    show_progress_bar=False, activation_fn=torch.nn.Identity(),
                                    convert_to_numpy=True)
        return np.asarray(scores, dtype=np.float32).reshape(-1)

    def describe(self) -> dict[str, Any]:
        return {"kind": "cross-encoder", "path": str(self.path.resolve()), "batch_size": self.batch_size,
                "max_length": getattr(self.model, "max_length", None), "fusion_weight": self.fusion_weight}


def load_reranker(path: str | Path, **options: Any) -> Any:
    """The re-ranker at ``path``: an ONNX export (``shopsearch model export-onnx`` of a cross-encoder,
    scored on onnxruntime, int8 by default) or a ``CrossEncoder`` directory (scored on torch)."""
    from shopsearch.retrieval.rerank_onnx import OnnxCrossEncoder, is_onnx_cross_encoder

    if is_onnx_cross_encoder(path):
        return OnnxCrossEncoder(path, **options)
    return CrossEncoderReranker(path, **options)


class RerankedRetriever:
    """``first``'s top ``depth`` hits re-ordered by ``reranker``; the hits below keep their order.

    Args:
        first: the first-stage retriever.
        reranker: anything with ``score(queries, texts) -> np.ndarray``.
        texts: product id -> the text the re-ranker reads (the catalogue's rendered texts).
        depth: how many first-stage hits are re-ranked per query.
        name: the system's name (default ``FIRST>rerank@DEPTH``).
        fusion_weight: w of the z-score fusion with the first stage's scores (1: the cross-encoder
            alone); default: the weight stored with the reranker's model, else the cross-encoder alone.
    """

    def __init__(self, first: Retriever, reranker: Any, texts: Mapping[str, str], *, depth: int = 50,
                 name: str | None = None, fusion_weight: float | str | None = "model") -> None:
        if depth < 1:
            raise ShopsearchError(f"re-ranking depth must be >= 1, got {depth}")
        self.first = first
        self.reranker = reranker
        self.texts = texts
        self.depth = depth
        weight = getattr(reranker, "fusion_weight", None) if fusion_weight == "model" else fusion_weight
        if isinstance(weight, str) or (weight is not None and not 0.0 <= weight <= 1.0):
            raise ShopsearchError(f"fusion_weight must lie in [0, 1] or be None, got {weight!r}")
        self.fusion_weight: float | None = None if weight is None else float(weight)
        self.name = name or f"{first.name}>rerank@{depth}"

    def search(self, queries: Sequence[str], k: int) -> SearchResult:
        found = self.first.search(queries, max(k, self.depth))
        logits = score_heads(self.reranker, queries, found, self.texts, self.depth)
        return order_heads(found, logits, k, self.fusion_weight)


def score_heads(reranker: Any, queries: Sequence[str], found: SearchResult, texts: Mapping[str, str],
                depth: int) -> np.ndarray:
    """``reranker``'s logits of each query's top ``depth`` hits in ``found``, in one ``score`` call:
    ``(len(queries), min(depth, width))``, ``NO_SCORE`` where a row has no hit."""
    head = min(depth, found.ids.shape[1])
    pair_q, pair_t, where = [], [], []
    for i, query in enumerate(queries):
        for j in range(head):
            pid = found.ids[i, j]
            if pid != NO_ID:
                pair_q.append(query)
                pair_t.append(texts[str(pid)])
                where.append((i, j))
    logits = reranker.score(pair_q, pair_t)
    ce = np.full((len(queries), head), NO_SCORE, dtype=np.float32)
    for (i, j), s in zip(where, logits, strict=True):
        ce[i, j] = s
    return ce


def order_heads(found: SearchResult, logits: np.ndarray, k: int, fusion_weight: float | None) -> SearchResult:
    """The top ``k`` of ``found`` with each row's head (``logits``' width) ordered by :func:`rerank_row`.
    Separate from scoring, so one scoring serves every fusion weight (``train-reranker``'s
    calibration, the fusion benchmark)."""
    head = logits.shape[1]
    n_queries = found.ids.shape[0]
    ids = np.full((n_queries, k), NO_ID, dtype=object)
    scores = np.full((n_queries, k), NO_SCORE, dtype=np.float32)
    for i in range(n_queries):
        hits = int(np.sum(found.ids[i] != NO_ID))
        n_head = min(head, hits)
        order, row_scores = rerank_row(found.scores[i, :hits], logits[i, :n_head], fusion_weight)
        n = min(k, hits)
        ids[i, :n] = found.ids[i, order[:n]]
        scores[i, :n] = row_scores[:n]
    return SearchResult(ids, scores)


def rerank_row(first: np.ndarray, ce: np.ndarray, fusion_weight: float | None) -> tuple[np.ndarray, np.ndarray]:
    """One ranked list re-ordered: ``first`` holds its first-stage scores (best first), ``ce`` the
    re-ranker's logits of its head (``len(ce) <= len(first)``). Returns the new order (indices into
    the list) and the scores to report: the head's fused scores (:func:`fuse_head`), then the hits
    below the head in their first-stage order, scored below every re-ranked one (still descending,
    because evaluators sort by score)."""
    n_head, hits = len(ce), len(first)
    fused = fuse_head(ce, first[:n_head], fusion_weight)
    head_order = np.argsort(-fused, kind="stable")  # ties keep the first stage's order
    order = np.concatenate([head_order, np.arange(n_head, hits)]).astype(np.int64)
    floor = float(fused.min()) if n_head else 0.0
    tail = floor - 1.0 - np.arange(hits - n_head, dtype=np.float64) / max(1, hits)
    return order, np.concatenate([fused[head_order], tail])
