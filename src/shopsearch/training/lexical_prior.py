"""A lexical prior on the training logits: train the dense model for the hybrid it will serve in.

The served hybrid ranks by (min-max normalised) cosine plus (min-max normalised) BM25. A dense model
trained alone spends its capacity on matches BM25 already makes; CLEAR (Gao et al. 2021,
"Complement Lexical Retrieval Model with Semantic Residual Embeddings", ECIR, arXiv 2004.13969) trains
the dense model on the *residual* of BM25 instead, with a margin that shrinks where BM25 already
separates the positive from the negative. Here the same idea enters InfoNCE's logits::

    s'_ij = cos(q_i, d_j) + w * bm25(q_i, d_j) / max_d bm25(q_i, d)

for every query i and every in-batch product j (positives and mined negatives of all rows), so the
softmax is over the hybrid's scores: a positive BM25 already ranks first costs little, and the
gradient goes to the pairs BM25 gets wrong. ``w`` is in cosine units: over the union of the top 100
of both retrievers, min-max fusion with equal weights ranks like ``cos + R * bm25 / max``, R the
query's cosine range over that union. The prior is a constant (no gradient); dense-only retrieval
uses the cosine alone.

No library computes this (sentence-transformers' losses see only token ids), so the rows carry
indices: ``label = [query_index, positive_row, negative_1_row, ...]`` into :attr:`queries` and the
catalogue, and the loss asks this object for the (B, M) prior of its batch. Stage 2
(``stage2.bm25_prior``) adds the same prior to the graded losses' scores; its labels are the group's
grades followed by ``[query_index, row_1, ..., row_G]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from shopsearch.retrieval.bm25 import BM25Retriever


class LexicalPrior:
    """``weight * bm25(q, d) / max_d' bm25(q, d')`` for queries by index and catalogue rows by position
    (0 for a query with no term in the index)."""

    def __init__(self, bm25: BM25Retriever, queries: Sequence[str], weight: float) -> None:
        if weight <= 0:
            raise ValueError(f"the lexical prior's weight must be positive, got {weight}")
        self.bm25 = bm25
        self.queries = [str(q) for q in queries]
        self.weight = float(weight)
        best = bm25.search(self.queries, 1).scores[:, 0].astype(np.float64) if self.queries else np.zeros(0)
        self.query_max = np.where(np.isfinite(best) & (best > 0), best, 0.0)

    def __call__(self, query_index: Tensor, product_rows: Tensor) -> Tensor:
        """(B, M) float32 prior of queries ``query_index`` (B,) for products ``product_rows`` (M,)."""
        qi = query_index.detach().cpu().numpy().astype(np.int64)
        scores = self.bm25.score_matrix([self.queries[i] for i in qi], product_rows.detach().cpu().numpy())
        scale = self.query_max[qi]
        norm = np.divide(scores, scale[:, None], out=np.zeros_like(scores, dtype=np.float64), where=scale[:, None] > 0)
        return torch.as_tensor(self.weight * norm, dtype=torch.float32, device=query_index.device)


def prior_labels(query_index: Sequence[int], product_rows: Sequence[Sequence[int]]) -> list[list[int]]:
    """The ``label`` column of stage-1 rows under a prior: ``[query_index, positive_row, negative rows...]``."""
    if len(query_index) != len(product_rows):
        raise ValueError(f"{len(query_index)} query indices for {len(product_rows)} rows of products")
    return [[int(q), *map(int, rows)] for q, rows in zip(query_index, product_rows, strict=True)]
