"""Teacher scores for stage-2 distillation: the default hybrid (BM25 + the stage-1 model) on each group.

On Home Depot `dev` that hybrid beats both of its parts by 4 points of NDCG@10, and the dense model
alone stays below BM25 on queries whose words the catalogue uses; distilling the hybrid's order of
each group into the encoder (``stage2.distill_weight``,
:class:`~shopsearch.training.losses.distillation.ListwiseDistillationLoss`) is the attempt to move
some of BM25's exact matching into the dense model. Each component's scores are min-max normalised
over the group's products and averaged with equal weights, as the default hybrid fuses over its
candidate union (:func:`~shopsearch.retrieval.fusion.normalize_scores`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shopsearch.retrieval.fusion import CandidateScorer, normalize_scores


def hybrid_teacher_scores(
    queries: Sequence[str],
    product_ids: Sequence[Sequence[str]],
    scorers: Sequence[CandidateScorer],
    batch_size: int = 256,
) -> list[np.ndarray]:
    """For each query, the equal-weight mean of every scorer's min-max normalised scores of its
    products (each in [0, 1]; a scorer that gives a group equal scores contributes 1 to each)."""
    if len(queries) != len(product_ids):
        raise ValueError(f"{len(queries)} queries but {len(product_ids)} product lists")
    if not scorers:
        raise ValueError("a teacher needs at least one scorer")
    out: list[np.ndarray] = []
    for start in range(0, len(queries), batch_size):
        q = list(queries[start : start + batch_size])
        cands = [list(p) for p in product_ids[start : start + batch_size]]
        width = max((len(c) for c in cands), default=0)
        valid = np.array([[j < len(c) for j in range(width)] for c in cands], dtype=bool).reshape(len(cands), width)
        fused = np.zeros((len(cands), width))
        for scorer in scorers:
            raw = np.zeros((len(cands), width))
            for i, scores in enumerate(scorer.score_candidates(q, cands)):
                raw[i, : len(scores)] = np.asarray(scores, dtype=np.float64)
            fused += normalize_scores(raw, valid, "minmax")[0] / len(scorers)
        out.extend(fused[i, : len(c)] for i, c in enumerate(cands))
    return out
