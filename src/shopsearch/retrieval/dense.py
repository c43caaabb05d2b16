"""Dense retrieval: a sentence encoder plus a FAISS inner-product index over product vectors."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import faiss
import numpy as np
import pandas as pd

from shopsearch.data.errors import ShopsearchError
from shopsearch.retrieval.base import NO_ID, NO_SCORE, SearchResult
from shopsearch.retrieval.encoder import SentenceEncoder
from shopsearch.retrieval.faiss_index import (
    IndexSpec,
    build_faiss_index,
    configure_threads,
    l2_normalize,
    search_index,
)
from shopsearch.retrieval.fusion import candidate_positions, check_product_ids

# Vectors whose norms are all within this of 1 are taken as already normalised (e.g. a memory-
# mapped vectors.npy written by build_index), so we neither copy nor re-normalise them.
_UNIT_TOLERANCE = 1e-3


class DenseRetriever:
    """Nearest products by cosine similarity (inner product of L2-normalised vectors).

    ``vectors`` are the product embeddings, rows aligned with ``product_ids``. When the encoder
    normalises (the default), both product and query vectors are L2-normalised so that scores
    are cosines whatever the FAISS structure; otherwise raw inner products are used throughout.
    ``index`` is a prebuilt FAISS index over exactly these vectors (e.g. loaded from disk).
    """

    name = "dense"

    def __init__(
        self,
        encoder: SentenceEncoder,
        product_ids: Sequence[str] | np.ndarray,
        vectors: np.ndarray,
        spec: IndexSpec = IndexSpec(),
        index: faiss.Index | None = None,
        query_cache_size: int = 10_000,
        threads: int | None = None,
    ) -> None:
        ids = np.asarray(product_ids, dtype=object)
        if vectors.ndim != 2 or vectors.shape[0] != len(ids):
            raise ShopsearchError(f"vectors of shape {vectors.shape} for {len(ids)} product ids")
        if len(ids) == 0:
            raise ShopsearchError("cannot build a dense index over an empty catalogue")
        check_product_ids(ids)
        if vectors.shape[1] != encoder.dimension:
            raise ShopsearchError(
                f"vectors have dimension {vectors.shape[1]} but encoder {encoder.model_id} gives {encoder.dimension}"
            )
        self.encoder = encoder
        self.product_ids = ids
        # FAISS OpenMP threads per search (None: the CPUs available). A server answering requests
        # concurrently wants 1: on 2 cores one query over 55k vectors took 6 ms on 1 thread, 9 on 2.
        self.threads = threads
        self.spec = spec
        self.normalize = encoder.normalize
        self.vectors = self._prepared(vectors)
        if index is None:
            index = build_faiss_index(self.vectors, spec)
        elif index.d != vectors.shape[1] or index.ntotal != len(ids):
            raise ShopsearchError(
                f"FAISS index holds {index.ntotal} vectors of dimension {index.d}, expected "
                f"{len(ids)} of dimension {vectors.shape[1]}"
            )
        self.index = index
        self._positions = pd.Index(ids, dtype=object)  # not "str": see serve.products.ProductTable
        # Query vectors are cached (LRU): evaluation asks for the same queries in search() and
        # score_candidates(), and shoppers repeat head queries.
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = query_cache_size
        self._cache_lock = threading.Lock()

    def _prepared(self, vectors: np.ndarray) -> np.ndarray:
        if vectors.dtype != np.float32:
            vectors = vectors.astype(np.float32)
        if not self.normalize:
            return vectors
        norms = np.linalg.norm(vectors, axis=1)
        if np.all(np.abs(norms - 1.0) <= _UNIT_TOLERANCE):
            return vectors
        return l2_normalize(vectors)

    @classmethod
    def build(
        cls,
        encoder: SentenceEncoder,
        product_ids: Sequence[str] | np.ndarray,
        texts: Sequence[str],
        spec: IndexSpec = IndexSpec(),
        show_progress: bool = True,
    ) -> DenseRetriever:
        """Encode ``texts`` (aligned with ``product_ids``) and index them."""
        if len(product_ids) != len(texts):
            raise ShopsearchError(f"{len(product_ids)} product ids for {len(texts)} texts")
        vectors = encoder.encode(texts, show_progress=show_progress)
        return cls(encoder, product_ids, vectors, spec)

    def __len__(self) -> int:
        return len(self.product_ids)

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        """Query vectors, from the LRU cache where possible; one encoder call for the rest."""
        texts = [str(q) for q in queries]
        out = np.empty((len(texts), self.encoder.dimension), dtype=np.float32)
        with self._cache_lock:
            missing = []
            for i, t in enumerate(texts):
                vec = self._cache.get(t)
                if vec is None:
                    missing.append(i)
                else:
                    self._cache.move_to_end(t)
                    out[i] = vec
        if missing:
            unique = list(dict.fromkeys(texts[i] for i in missing))
            encoded = dict(zip(unique, self.encoder.encode(unique, is_query=True), strict=True))
            for i in missing:
                out[i] = encoded[texts[i]]
            if self._cache_size > 0:
                with self._cache_lock:
                    for t, vec in encoded.items():
                        self._cache[t] = vec
                        self._cache.move_to_end(t)
                    while len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
        return out

    def search(self, queries: Sequence[str], k: int) -> SearchResult:
        """Top-k products per query by cosine similarity, best first."""
        if k < 1:
            raise ShopsearchError(f"k must be >= 1, got {k}")
        return self.search_vectors(self.encode_queries(queries), k)

    def search_vectors(self, qvecs: np.ndarray, k: int) -> SearchResult:
        """Search with precomputed query vectors (normalised here when the index is cosine)."""
        if k < 1:
            raise ShopsearchError(f"k must be >= 1, got {k}")
        q = np.asarray(qvecs, dtype=np.float32)
        if q.ndim != 2 or (len(q) and q.shape[1] != self.dimension):
            raise ShopsearchError(f"query vectors of shape {q.shape}, expected (n, {self.dimension})")
        if len(q) == 0:
            return SearchResult(
                np.full((0, k), NO_ID, dtype=object), np.full((0, k), NO_SCORE, dtype=np.float32)
            )
        if self.normalize:
            q = l2_normalize(q)
        configure_threads(self.threads)
        rows, scores = search_index(self.index, q, k, self.spec)
        missing = rows < 0
        ids = self.product_ids[np.where(missing, 0, rows)]
        ids[missing] = NO_ID
        scores = np.where(missing, NO_SCORE, scores).astype(np.float32)
        return SearchResult(ids, scores)

    def score_candidates(
        self,
        queries: Sequence[str],
        candidates: Sequence[Sequence[str]],
        *,
        query_vectors: np.ndarray | None = None,
    ) -> list[np.ndarray]:
        """Exact cosine (inner product when not normalising) of each query with each listed
        product, from the stored vectors rather than the possibly approximate FAISS index.
        ``query_vectors``: the queries' vectors when the caller has them (from :meth:`encode_queries`)."""
        if len(queries) != len(candidates):
            raise ShopsearchError(f"{len(queries)} queries but {len(candidates)} candidate lists")
        q = (
            self.encode_queries(queries)
            if query_vectors is None
            else np.asarray(query_vectors, dtype=np.float32)
        )
        if q.shape != (len(queries), self.dimension):
            raise ShopsearchError(
                f"query vectors of shape {q.shape}, expected ({len(queries)}, {self.dimension})"
            )
        if self.normalize:
            q = l2_normalize(q)
        return [
            (self.vectors[candidate_positions(self._positions, cands, who="dense index")] @ q[i]).astype(
                np.float32
            )
            for i, cands in enumerate(candidates)
        ]

    def describe(self) -> dict[str, Any]:
        return {"n_products": len(self), "dimension": self.dimension, "index_spec": self.spec.model_dump()}
