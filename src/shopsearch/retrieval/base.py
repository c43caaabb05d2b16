"""The one interface every retriever implements: batched ``search(queries, k) -> SearchResult``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

# Padding for rows with fewer than k hits (a tiny catalogue, or BM25 with no matching term).
NO_ID = ""
NO_SCORE = -np.inf


@dataclass
class SearchResult:
    """Ranked hits for a batch of queries, arrays aligned by query row.

    ``ids`` is an object array of product ids, shape (n_queries, k); ``scores`` float32 of the same
    shape, best first. Rows with fewer than k hits are padded with ``NO_ID`` / ``-inf``.
    """

    ids: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        if self.ids.shape != self.scores.shape or self.ids.ndim != 2:
            raise ValueError(f"ids {self.ids.shape} and scores {self.scores.shape} must be the same 2-D shape")

    def __len__(self) -> int:
        return self.ids.shape[0]

    def row(self, i: int) -> tuple[list[str], list[float]]:
        """The hits of query ``i`` without padding."""
        keep = self.ids[i] != NO_ID
        return [str(x) for x in self.ids[i][keep]], [float(x) for x in self.scores[i][keep]]

    def to_run(self, query_ids: Sequence[str]) -> dict[str, list[tuple[str, float]]]:
        """query_id -> [(product_id, score), ...] in rank order."""
        if len(query_ids) != len(self):
            raise ValueError(f"{len(query_ids)} query ids for {len(self)} result rows")
        out = {}
        for i, qid in enumerate(query_ids):
            ids, scores = self.row(i)
            out[str(qid)] = list(zip(ids, scores, strict=True))
        return out


@runtime_checkable
class Retriever(Protocol):
    """Anything that ranks catalogue products for a batch of query texts."""

    name: str

    def search(self, queries: Sequence[str], k: int) -> SearchResult: ...
