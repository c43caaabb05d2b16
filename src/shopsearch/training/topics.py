"""Topic-aware batches: training rows grouped by k-means clusters of their queries.

With random batches most in-batch negatives are products of unrelated queries (a drill beside a
toilet seat). Batches drawn from one cluster of similar queries instead hold negatives from the same
topic ("deck screws 2-1/2 in." beside "wood screws 3 in."): harder negatives at no extra cost per
step. This is TAS, topic-aware sampling (Hofstätter et al., "Efficiently Teaching an Effective Dense
Retriever with Balanced Topic Aware Sampling", SIGIR 2021), which clusters the training queries once
with k-means on their embeddings and fills each batch from one cluster. On Home Depot it measured
lower than random batches (docs/training.md), so it is off by default.

Written here because neither sentence-transformers nor the HF trainer has a topic-aware sampler;
the clustering is faiss's k-means and the batching is :class:`~shopsearch.training.sampler.
NoDuplicatesBatchSampler` (``clusters=``), which keeps its no-duplicates rule within the cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from shopsearch.training.pairs import normalize_query


class QueryEncoder(Protocol):
    def encode(self, texts: Sequence[str], *, is_query: bool = False, show_progress: bool = False) -> np.ndarray: ...


def query_topic_clusters(
    queries: Sequence[str],
    encoder: QueryEncoder,
    *,
    queries_per_cluster: int,
    seed: int = 0,
    iterations: int = 20,
    restarts: int = 5,
) -> np.ndarray:
    """One cluster id per row: spherical k-means over the distinct (normalised) queries.

    Args:
        queries: the query text of every training row (rows of one query share a cluster).
        encoder: the model as it stands (query side, so a query prefix applies).
        queries_per_cluster: the mean number of distinct queries per cluster; about one batch's
            worth keeps a batch within a topic without repeating its queries in the next batches.
        seed, iterations, restarts: k-means' seed, iterations, and the number of initialisations
            it keeps the best of (the result is a pure function of these and of the embeddings).

    Returns:
        ``int64`` array of length ``len(queries)``; all zeros when there are too few distinct
        queries for two clusters.
    """
    if queries_per_cluster < 1:
        raise ValueError(f"queries_per_cluster must be >= 1, got {queries_per_cluster}")
    import faiss

    keys = [normalize_query(q) for q in queries]
    distinct = sorted(set(keys))
    k = len(distinct) // queries_per_cluster
    if k < 2:
        return np.zeros(len(keys), dtype=np.int64)
    vectors = np.ascontiguousarray(encoder.encode(distinct, is_query=True), dtype=np.float32)
    kmeans = faiss.Kmeans(
        vectors.shape[1], k, niter=iterations, nredo=restarts, seed=int(seed), spherical=True,
        min_points_per_centroid=1, max_points_per_centroid=max(256, queries_per_cluster * 4), verbose=False,
    )  # fmt: skip
    kmeans.train(vectors)
    _, assigned = kmeans.index.search(vectors, 1)
    by_query = dict(zip(distinct, assigned[:, 0].astype(np.int64).tolist(), strict=True))
    return np.asarray([by_query[q] for q in keys], dtype=np.int64)


def cluster_sizes(clusters: np.ndarray) -> dict[str, float]:
    """Rows per cluster, for the training manifest."""
    counts = np.bincount(clusters) if len(clusters) else np.zeros(0, dtype=np.int64)
    counts = counts[counts > 0]
    if not len(counts):
        return {"clusters": 0}
    return {
        "clusters": len(counts),
        "rows_min": int(counts.min()),
        "rows_median": float(np.median(counts)),
        "rows_max": int(counts.max()),
    }
