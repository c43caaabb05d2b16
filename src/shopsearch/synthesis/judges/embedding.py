"""The general semantic relevance judge: off-the-shelf embedding cosine (METHOD.md part B, step 5).

score(q, t) = cos(E(q), E(t)) with the bundled all-MiniLM-L6-v2 (or any sentence-transformers
directory). It is "general" because it was never trained on the shop's labels: it catches pairs the
business classifier accepts for shop-specific reasons but that are semantically off, and vice versa.
The same encoder gives the intent-similarity and diversity rewards (:mod:`shopsearch.synthesis.rewards`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shopsearch.retrieval.encoder import SentenceEncoder
from shopsearch.synthesis.judges.base import check_pairs

# An uncalibrated cut-off: MiniLM cosines of related query/title pairs mostly fall in 0.4..0.7.
# Replace it with calibrate_judge(...) on the shop's dev judgments before filtering anything.
DEFAULT_EMBEDDING_THRESHOLD = 0.5


class EmbeddingCache:
    """Unit vectors of texts, memoised (bounded, least recently used out first).

    Seed queries, rewrites and the catalogue's popular products come back batch after batch during
    reward scoring; re-encoding them each time would dominate the cost on a CPU.
    """

    def __init__(self, encoder: SentenceEncoder, max_items: int = 100_000) -> None:
        self.encoder = encoder
        self.max_items = max_items
        self._store: OrderedDict[tuple[bool, str], np.ndarray] = OrderedDict()

    def encode(self, texts: Sequence[str], *, is_query: bool) -> np.ndarray:
        """``(len(texts), dim)`` float32 unit vectors, one encoder call for the texts not cached yet."""
        texts = [str(t) for t in texts]
        todo = list(dict.fromkeys(t for t in texts if (is_query, t) not in self._store))
        if todo:
            vecs = self.encoder.encode(todo, is_query=is_query)
            norms = np.linalg.norm(vecs, axis=1, keepdims=True)
            vecs = vecs / np.maximum(norms, 1e-12)  # cosine needs unit vectors even if the encoder skips it
            for t, v in zip(todo, vecs, strict=True):
                self._store[(is_query, t)] = v
        out = np.zeros((len(texts), self.encoder.dimension), dtype=np.float32)
        for i, t in enumerate(texts):
            key = (is_query, t)
            self._store.move_to_end(key)
            out[i] = self._store[key]
        while len(self._store) > self.max_items:
            self._store.popitem(last=False)
        return out


class EmbeddingJudge:
    """Cosine of query and product-text embeddings; accepts when cosine >= ``threshold``.

    Args:
        encoder: a loaded :class:`SentenceEncoder`, or None for the bundled all-MiniLM-L6-v2.
        model: a model directory, used only when ``encoder`` is None.
        threshold: acceptance cut-off; calibrate it on dev judgments.
        symmetric: encode the second text as a query too (query-vs-rewrite similarity) rather than as
            a document (query-vs-product). Only matters for models with query/document prompts.
    """

    def __init__(
        self,
        encoder: SentenceEncoder | None = None,
        *,
        model: str | Path | None = None,
        threshold: float = DEFAULT_EMBEDDING_THRESHOLD,
        symmetric: bool = False,
        name: str = "semantic",
        cache: EmbeddingCache | None = None,
    ) -> None:
        if cache is not None:
            encoder = cache.encoder
        self.encoder = encoder if encoder is not None else SentenceEncoder(model)
        self.cache = cache if cache is not None else EmbeddingCache(self.encoder)
        self.threshold = float(threshold)
        self.symmetric = symmetric
        self.name = name

    def score(self, queries: Sequence[str], product_texts: Sequence[str]) -> np.ndarray:
        q, t = check_pairs(queries, product_texts)
        if not q:
            return np.zeros(0, dtype=np.float32)
        qv = self.cache.encode(q, is_query=True)
        tv = self.cache.encode(t, is_query=self.symmetric)
        return np.einsum("ij,ij->i", qv, tv).astype(np.float32)

    def accepts(self, queries: Sequence[str], product_texts: Sequence[str]) -> np.ndarray:
        return self.score(queries, product_texts) >= self.threshold

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "embedding-cosine",
            "name": self.name,
            "threshold": self.threshold,
            "symmetric": self.symmetric,
            "encoder": self.encoder.describe(),
        }
