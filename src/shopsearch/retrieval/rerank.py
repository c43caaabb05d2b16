"""Retrieve, then re-rank: a cross-encoder scores the top ``depth`` hits of any first-stage retriever.

A cross-encoder reads the query and the product text together, so it sees what a dual encoder's two
separate vectors cannot (negations, a part number against a model, which word is the head noun), at
the cost of one forward pass per (query, product) pair: affordable for the first stage's top N only.
:class:`CrossEncoderReranker` wraps a sentence-transformers ``CrossEncoder`` directory (one logit: a
model from ``shopsearch train-reranker``, or any ``CrossEncoder(path)``-loadable one); all pairs of a
batch of queries go through one ``predict`` call, which sorts them by length into batches.

:class:`RerankedRetriever` keeps the first stage's hits below ``depth`` in their order, scored below
every re-ranked one, so ``k > depth`` still returns the first stage's recall.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shopsearch.data.errors import ShopsearchError
from shopsearch.retrieval.base import NO_ID, NO_SCORE, Retriever, SearchResult


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
                "max_length": getattr(self.model, "max_length", None)}


class RerankedRetriever:
    """``first``'s top ``depth`` hits re-ordered by ``reranker``; the hits below keep their order.

    Args:
        first: the first-stage retriever.
        reranker: anything with ``score(queries, texts) -> np.ndarray``.
        texts: product id -> the text the re-ranker reads (the catalogue's rendered texts).
        depth: how many first-stage hits are re-ranked per query.
        name: the system's name (default ``FIRST>rerank@DEPTH``).
    """

    def __init__(self, first: Retriever, reranker: Any, texts: Mapping[str, str], *, depth: int = 50,
                 name: str | None = None) -> None:
        if depth < 1:
            raise ShopsearchError(f"re-ranking depth must be >= 1, got {depth}")
        self.first = first
        self.reranker = reranker
        self.texts = texts
        self.depth = depth
        self.name = name or f"{first.name}>rerank@{depth}"

    def search(self, queries: Sequence[str], k: int) -> SearchResult:
        found = self.first.search(queries, max(k, self.depth))
        head = min(self.depth, found.ids.shape[1])
        pair_q, pair_t, where = [], [], []
        for i, query in enumerate(queries):
            for j in range(head):
                pid = found.ids[i, j]
                if pid != NO_ID:
                    pair_q.append(query)
                    pair_t.append(self.texts[str(pid)])
                    where.append((i, j))
        logits = self.reranker.score(pair_q, pair_t)
        ce = np.full((len(queries), head), NO_SCORE, dtype=np.float32)
        for (i, j), s in zip(where, logits, strict=True):
            ce[i, j] = s
        ids = np.full((len(queries), k), NO_ID, dtype=object)
        scores = np.full((len(queries), k), NO_SCORE, dtype=np.float32)
        for i in range(len(queries)):
            hits = int(np.sum(found.ids[i] != NO_ID))
            n_head = min(head, hits)
            order = np.argsort(-ce[i, :n_head], kind="stable")  # ties keep the first stage's order
            row_ids = list(found.ids[i, order]) + list(found.ids[i, n_head:hits])
            floor = float(ce[i, :n_head].min()) if n_head else 0.0
            # below every re-ranked hit, still descending: evaluators sort by score
            tail = [floor - 1.0 - t / max(1, hits) for t in range(hits - n_head)]
            row_scores = list(ce[i, order]) + tail
            n = min(k, hits)
            ids[i, :n] = row_ids[:n]
            scores[i, :n] = row_scores[:n]
        return SearchResult(ids, scores)
