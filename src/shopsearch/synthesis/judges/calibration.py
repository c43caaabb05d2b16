"""Acceptance thresholds calibrated on dev judgments to a stated precision.

METHOD.md part B, step 5 keeps a synthetic (query, product) pair only when the judges accept it, so
the judges' thresholds set the precision of the synthetic training data. We pick, on dev pairs whose
truth is ``relevant = grade >= relevant_min``, the LOWEST threshold whose accepted set
(score >= threshold) reaches the target precision: among the thresholds that are precise enough, the
one that keeps the most pairs. Precision is not monotone in the threshold, hence a full scan rather
than a bisection.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from shopsearch.eval.metrics import pooled_auc
from shopsearch.synthesis.judges.base import JudgeError, RelevanceJudge, score_unique


@dataclass(frozen=True)
class ThresholdCalibration:
    """The chosen threshold and what it achieves on the calibration pairs.

    ``reached`` is False when no threshold accepting at least ``min_accepted`` pairs reaches
    ``target_precision``; the threshold is then the most precise one with that support, and
    ``precision`` says how far short it falls.
    """

    threshold: float
    target_precision: float
    precision: float
    recall: float
    reached: bool
    n_pairs: int
    n_relevant: int
    n_accepted: int
    n_queries: int | None
    min_accepted: int
    auc: float
    truth: str = "relevant = grade >= relevant_min"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _curve(scores: np.ndarray, relevant: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, true positives, accepted) for each distinct score, highest threshold first."""
    order = np.argsort(-scores, kind="stable")
    s, r = scores[order], relevant[order]
    tp = np.cumsum(r)
    accepted = np.arange(1, len(s) + 1)
    last_of_tie = np.r_[s[1:] != s[:-1], True]  # a threshold accepts every pair tied at it
    return s[last_of_tie], tp[last_of_tie], accepted[last_of_tie]


def calibrate_threshold(
    scores: np.ndarray,
    relevant: np.ndarray,
    *,
    target_precision: float = 0.9,
    min_accepted: int = 20,
    n_queries: int | None = None,
) -> ThresholdCalibration:
    """The lowest threshold t with precision(score >= t) >= ``target_precision``.

    precision(t) = #{relevant, score >= t} / #{score >= t}; recall(t) = #{relevant, score >= t} /
    #{relevant}. Only thresholds accepting at least ``min_accepted`` pairs count, so that a handful
    of top scores cannot "reach" the target by luck. NaN scores never pass any threshold.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    rel = np.asarray(relevant, dtype=bool).ravel()
    if s.shape != rel.shape:
        raise JudgeError(f"{s.size} scores for {rel.size} relevance flags")
    if not 0.0 < target_precision <= 1.0:
        raise JudgeError(f"target_precision must be in (0, 1], got {target_precision}")
    n_rel = int(rel.sum())
    if n_rel == 0 or n_rel == rel.size:
        raise JudgeError(
            f"calibration needs relevant and non-relevant pairs; got {n_rel} relevant of {rel.size} "
            "(check the grade scheme's relevant_min, or add unjudged negatives)"
        )
    finite = ~np.isnan(s)
    if not finite.any():
        raise JudgeError("every calibration score is NaN: the judge returned no usable scores")
    thresholds, tp, accepted = _curve(s[finite], rel[finite])
    precision = tp / accepted
    supported = accepted >= min(min_accepted, int(finite.sum()))
    ok = supported & (precision >= target_precision)
    if ok.any():
        i = int(np.flatnonzero(ok)[-1])  # curve runs from the highest threshold down: last = lowest
        reached = True
    else:
        candidates = np.flatnonzero(supported)
        i = int(candidates[np.argmax(precision[candidates])])  # first maximum = highest threshold
        reached = False
    return ThresholdCalibration(
        threshold=float(thresholds[i]),
        target_precision=float(target_precision),
        precision=float(precision[i]),
        recall=float(tp[i] / n_rel),
        reached=reached,
        n_pairs=int(s.size),
        n_relevant=n_rel,
        n_accepted=int(accepted[i]),
        n_queries=n_queries,
        min_accepted=int(min_accepted),
        auc=pooled_auc([s], [rel.astype(np.int64)], 1),
    )


def binary_report(scores: np.ndarray, relevant: np.ndarray, threshold: float) -> dict[str, float | int]:
    """Precision, recall, F1, accepted share and pooled AUC of ``score >= threshold`` against the truth."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    rel = np.asarray(relevant, dtype=bool).ravel()
    accept = s >= threshold  # NaN compares False: never accepted
    tp = int((accept & rel).sum())
    n_acc, n_rel = int(accept.sum()), int(rel.sum())
    precision = tp / n_acc if n_acc else float("nan")
    recall = tp / n_rel if n_rel else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if n_acc and n_rel and (precision + recall) else 0.0
    return {
        "threshold": float(threshold),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "accepted_share": float(n_acc / s.size) if s.size else float("nan"),
        "n_pairs": int(s.size),
        "n_relevant": n_rel,
        "n_accepted": n_acc,
        "auc": pooled_auc([s], [rel.astype(np.int64)], 1),
    }


def calibrate_judge(
    judge: RelevanceJudge,
    pairs: pd.DataFrame,
    *,
    target_precision: float = 0.9,
    min_accepted: int = 20,
) -> tuple[ThresholdCalibration, np.ndarray]:
    """Score ``pairs`` (from :func:`~shopsearch.synthesis.judges.pairs.judged_pairs`) and calibrate.

    Returns the calibration and the scores (aligned with ``pairs``). The judge is not modified: set
    ``judge.threshold = calibration.threshold`` to adopt it.
    """
    for col in ("query", "product_text", "relevant"):
        if col not in pairs.columns:
            raise JudgeError(f"calibration pairs need a {col!r} column (build them with judged_pairs)")
    scores = score_unique(judge, pairs["query"].tolist(), pairs["product_text"].tolist())
    n_queries = int(pairs["query_id"].nunique()) if "query_id" in pairs.columns else None
    calibration = calibrate_threshold(
        scores,
        pairs["relevant"].to_numpy(dtype=bool),
        target_precision=target_precision,
        min_accepted=min_accepted,
        n_queries=n_queries,
    )
    return calibration, scores
