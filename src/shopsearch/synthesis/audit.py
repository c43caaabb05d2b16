"""Precision of synthetic pairs against held-back judgments.

The pipeline's judges are calibrated to a target precision on one set of queries; whether the pairs it
keeps are as clean is a separate, measured question. :func:`pair_precision` looks up every synthetic
(seed query, product) pair in judgments the pipeline never read (for instance `dev` judgments when the
seeds are `dev` query texts) and reports, over the pairs that are judged, the share that is relevant
(``grade >= scheme.relevant_min``) with a Wilson 95% interval, overall and per query type and retrieval
source. Pairs that are not judged say nothing about precision; their share is reported beside it, since a
judged subset drawn from another engine's results may be easier or harder than the rest.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from shopsearch.data.schema import Judgments
from shopsearch.eval.significance import wilson_interval
from shopsearch.synthesis.errors import SynthesisError


def _share(k: int, n: int) -> dict[str, Any]:
    ci = wilson_interval(k, n)
    return {"judged": n, "relevant": k, "precision": round(k / n, 4) if n else None,
            "wilson_95": None if ci is None else [round(ci[0], 4), round(ci[1], 4)]}


def pair_precision(pairs: pd.DataFrame, judgments: Judgments, *, by: tuple[str, ...] = ("query_type", "source"),
                   relevant_min: int | None = None) -> dict[str, Any]:
    """Precision of ``pairs`` (columns ``seed_query_id``, ``product_id``) on the ones ``judgments`` label.

    Args:
        pairs: synthetic pairs, as written by :func:`shopsearch.synthesis.pipeline.run_pipeline`.
        judgments: held-back judgments keyed by the seeds' query ids.
        by: pair columns to break the figure down by (skipped when a column is absent).
        relevant_min: the smallest relevant grade (default: the judgments' scheme's).

    Returns:
        ``{"pairs", "judged_share", "relevant_min", "mean_grade", "overall", "judged_pool", "by_<column>"}``
        where ``overall`` and each breakdown hold ``judged``, ``relevant``, ``precision`` and its
        ``wilson_95``, and ``judged_pool`` is the same over every judged product of the pairs' queries.
    """
    missing = [c for c in ("seed_query_id", "product_id") if c not in pairs.columns]
    if missing:
        raise SynthesisError(f"pairs need the column(s) {missing} to be audited against judgments")
    threshold = judgments.scheme.relevant_min if relevant_min is None else relevant_min
    grades = judgments.df[["query_id", "product_id", "grade"]].rename(columns={"query_id": "seed_query_id"})
    keyed = pairs.assign(seed_query_id=pairs["seed_query_id"].astype(str), product_id=pairs["product_id"].astype(str))
    judged = keyed.merge(grades, on=["seed_query_id", "product_id"], how="inner")
    judged = judged.assign(relevant=judged["grade"] >= threshold)
    pool = grades[grades["seed_query_id"].isin(set(keyed["seed_query_id"]))]
    out: dict[str, Any] = {
        "pairs": len(pairs),
        "judged_share": round(len(judged) / len(pairs), 4) if len(pairs) else None,
        "relevant_min": int(threshold),
        "mean_grade": round(float(judged["grade"].mean()), 4) if len(judged) else None,
        "overall": _share(int(judged["relevant"].sum()), len(judged)),
        # what picking a judged product of the same queries at random would give: the bar to clear
        "judged_pool": _share(int((pool["grade"] >= threshold).sum()), len(pool)),
    }
    for column in by:
        if column in judged.columns:
            out[f"by_{column}"] = {str(value): _share(int(group["relevant"].sum()), len(group))
                                   for value, group in judged.groupby(column, sort=True)}
    return out
