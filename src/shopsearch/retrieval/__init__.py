"""Retrieval: BM25, dense (sentence encoder + FAISS) and hybrid, behind one batched interface.

Every retriever has ``search(queries, k) -> SearchResult`` (see :mod:`.base`). Heavy libraries
(torch, sentence-transformers, faiss, bm25s) load only when the submodules are imported, so
``import shopsearch.retrieval`` stays cheap for the CLI.
"""

from shopsearch.retrieval.base import NO_ID, NO_SCORE, Retriever, SearchResult

__all__ = [
    "NO_ID",
    "NO_SCORE",
    "BM25Retriever",
    "DenseRetriever",
    "HybridRetriever",
    "IndexBundle",
    "IndexIntegrityError",
    "IndexSpec",
    "Retriever",
    "SearchResult",
    "SentenceEncoder",
    "build_index",
    "load_index",
    "reciprocal_rank_fusion",
    "weighted_score_fusion",
]

_LAZY = {
    "BM25Retriever": "shopsearch.retrieval.bm25",
    "DenseRetriever": "shopsearch.retrieval.dense",
    "HybridRetriever": "shopsearch.retrieval.fusion",
    "reciprocal_rank_fusion": "shopsearch.retrieval.fusion",
    "weighted_score_fusion": "shopsearch.retrieval.fusion",
    "IndexSpec": "shopsearch.retrieval.faiss_index",
    "SentenceEncoder": "shopsearch.retrieval.encoder",
    "IndexBundle": "shopsearch.retrieval.store",
    "IndexIntegrityError": "shopsearch.retrieval.store",
    "build_index": "shopsearch.retrieval.store",
    "load_index": "shopsearch.retrieval.store",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'shopsearch.retrieval' has no attribute {name!r}")
