"""The one interface every relevance judge implements, and pair-level judging with several judges.

METHOD.md part B, step 5: each (ORIGINAL query, product) pair retrieved for a rewrite is scored by a
business-specific relevance classifier AND a general semantic relevance classifier, and only pairs
both accept are kept. Step 2 uses a judge too: the product-side alignment reward counts the top-K
products of a rewrite that the business classifier accepts for the original query. Any scorer that
maps (query, product text) pairs to numbers and has a threshold is a judge: the fine-tuned
cross-encoder (:mod:`.cross_encoder`), embedding cosine (:mod:`.embedding`), or an LLM judge wrapped
in :class:`CallableJudge`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from shopsearch.data.errors import ShopsearchError


class JudgeError(ShopsearchError):
    """A judge was called wrongly (mismatched inputs), or a saved judge cannot be used."""


@runtime_checkable
class RelevanceJudge(Protocol):
    """Scores (query, product text) pairs; higher means more relevant.

    Contract: ``score`` returns a float array of ``len(queries)``, aligned with the inputs, and
    ``accepts(q, t)`` equals ``score(q, t) >= threshold`` (callers that already hold scores compare
    with ``threshold`` themselves instead of scoring twice). ``name`` labels the judge's columns in
    logs; ``describe()`` is the JSON-able statement written into manifests.
    """

    name: str
    threshold: float

    def score(self, queries: Sequence[str], product_texts: Sequence[str]) -> np.ndarray: ...

    def accepts(self, queries: Sequence[str], product_texts: Sequence[str]) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


def check_pairs(queries: Sequence[str], product_texts: Sequence[str]) -> tuple[list[str], list[str]]:
    """Both sides as lists of str, or a :class:`JudgeError` naming the mismatch."""
    if isinstance(queries, str) or isinstance(product_texts, str):
        raise JudgeError("a judge scores sequences of texts; wrap a single query and product in lists")
    q, t = [str(x) for x in queries], [str(x) for x in product_texts]
    if len(q) != len(t):
        raise JudgeError(f"{len(q)} queries for {len(t)} product texts: a judge scores aligned pairs")
    return q, t


class CallableJudge:
    """Any scoring function as a judge: how an LLM judge (or a remote service) plugs in.

    ``fn(queries, product_texts)`` must return one number per pair. For an LLM judge, ``fn`` prompts the
    model for a grade and maps it to [0, 1]; calibrate ``threshold`` with
    :func:`~shopsearch.synthesis.judges.calibration.calibrate_judge` like any other judge.
    """

    def __init__(
        self,
        fn: Callable[[list[str], list[str]], Sequence[float] | np.ndarray],
        *,
        threshold: float,
        name: str = "callable",
        info: Mapping[str, Any] | None = None,
    ) -> None:
        self._fn = fn
        self.threshold = float(threshold)
        self.name = name
        self._info = dict(info or {})

    def score(self, queries: Sequence[str], product_texts: Sequence[str]) -> np.ndarray:
        q, t = check_pairs(queries, product_texts)
        if not q:
            return np.zeros(0, dtype=np.float32)
        out = np.asarray(self._fn(q, t), dtype=np.float32).reshape(-1)
        if out.shape[0] != len(q):
            raise JudgeError(f"judge {self.name!r} returned {out.shape[0]} scores for {len(q)} pairs")
        return out

    def accepts(self, queries: Sequence[str], product_texts: Sequence[str]) -> np.ndarray:
        return self.score(queries, product_texts) >= self.threshold

    def describe(self) -> dict[str, Any]:
        return {"kind": "callable", "name": self.name, "threshold": self.threshold, **self._info}


def score_unique(judge: RelevanceJudge, queries: Sequence[str], product_texts: Sequence[str]) -> np.ndarray:
    """``judge.score`` on the distinct pairs only, broadcast back to the input order.

    Rewrites of one query retrieve overlapping products, so the (original query, product) pairs of a
    batch repeat a lot; a cross-encoder or an LLM call per repeat would be wasted.
    """
    q, t = check_pairs(queries, product_texts)
    if not q:
        return np.zeros(0, dtype=np.float32)
    codes, uniques = pd.factorize(pd.Series(list(zip(q, t, strict=True)), dtype=object))
    uq = [p[0] for p in uniques]
    ut = [p[1] for p in uniques]
    scores = np.asarray(judge.score(uq, ut), dtype=np.float32)
    if scores.shape != (len(uq),):
        raise JudgeError(f"judge {judge.name!r} returned shape {scores.shape} for {len(uq)} pairs")
    return scores[codes]


def judge_pairs(
    judges: Sequence[RelevanceJudge], queries: Sequence[str], product_texts: Sequence[str]
) -> pd.DataFrame:
    """Score pairs with every judge: columns ``<name>_score``, ``<name>_accept`` and ``accepted_by_all``.

    ``accepted_by_all`` is the step-5 filter of METHOD.md part B (keep pairs that the business AND the
    general judge accept). Judges must have distinct names, since the names key the columns.
    """
    q, t = check_pairs(queries, product_texts)
    names = [j.name for j in judges]
    if not judges:
        raise JudgeError("judge_pairs needs at least one judge")
    if len(set(names)) != len(names):
        raise JudgeError(f"judges need distinct names to label their columns, got {names}")
    frame = pd.DataFrame({"query": q, "product_text": t})
    accepted = np.ones(len(q), dtype=bool)
    for judge in judges:
        scores = score_unique(judge, q, t)
        accept = scores >= judge.threshold
        frame[f"{judge.name}_score"] = scores
        frame[f"{judge.name}_accept"] = accept
        accepted &= accept
    frame["accepted_by_all"] = accepted
    return frame
