"""Evaluation protocols: full-corpus retrieval and re-ranking of each query's judged candidates.

* ``full``: every evaluated query is searched against the whole catalogue with
  ``retriever.search(texts, k=depth)`` in batches; products without a judgment count as grade 0. AUC
  uses ``retriever.score_candidates(texts, candidates)`` on each query's judged products (skipped, with
  the reason stated, for a retriever without it).
* ``rerank``: each query's judged products are ranked by ``score_candidates`` (best first); tied scores
  keep the candidates' order as given in the judgments (a stable sort), NaN scores rank last.

Only queries with judgments are evaluated; a judged query with empty text is left out and counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

from shopsearch.data.schema import Judgments, Queries
from shopsearch.eval.metrics import METRIC_KEYS, per_query_metrics, split_metrics
from shopsearch.eval.report import EvalError, EvalReport, SystemData, build_report
from shopsearch.eval.strata import StratumConfig

Protocol = Literal["full", "rerank"]
TIE_RULE_RUN = "a run is read in its rank order; tied scores are not re-sorted"
TIE_RULE_RERANK = "judged candidates sorted by score, best first; ties keep the judgments' candidate order (stable sort)"


def _select_queries(queries: Queries | None, qrels: Mapping[str, Mapping[str, int]]) -> tuple[list[str], list[str], dict]:
    """Judged queries to evaluate (in the queries' order), their texts, and counts of what was left out."""
    if queries is None:
        qids = list(qrels)
        return qids, [""] * len(qids), {"queries_given": None, "queries_evaluated": len(qids)}
    df = queries.df
    judged = df["query_id"].isin(set(qrels))
    empty = df["text"].str.strip() == ""
    keep = judged & ~empty
    counts = {
        "queries_given": len(df),
        "queries_without_judgments": int((~judged).sum()),
        "judged_queries_missing_from_queries": len(set(qrels) - set(df["query_id"])),
        "judged_queries_with_empty_text": int((judged & empty).sum()),
        "queries_evaluated": int(keep.sum()),
    }
    return df.loc[keep, "query_id"].tolist(), df.loc[keep, "text"].tolist(), counts


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(n, start + size)


def _score_candidates(retriever: Any, texts: list[str], candidates: list[list[str]], batch_size: int,
                      bar: Any) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for a, b in _batches(len(texts), batch_size):
        scores = retriever.score_candidates(texts[a:b], candidates[a:b])
        for cands, s in zip(candidates[a:b], scores, strict=True):
            s = np.asarray(s, dtype=np.float64).ravel()
            if s.size != len(cands):
                raise EvalError(f"{getattr(retriever, 'name', retriever)}: score_candidates returned {s.size} "
                                f"scores for {len(cands)} candidates")
            out.append(np.where(np.isnan(s), -np.inf, s))
        bar.update(b - a)
    return out


def evaluate(
    systems: Mapping[str, Any],
    queries: Queries,
    judgments: Judgments,
    *,
    protocol: Protocol = "full",
    metrics: Sequence[str] = METRIC_KEYS,
    depth: int = 100,
    strata: StratumConfig | None = None,
    idf: Mapping[str, float] | None = None,
    baseline: str | None = None,
    n_resamples: int = 10000,
    auc_resamples: int | None = None,
    seed: int = 0,
    dataset_info: dict | None = None,
    show_progress: bool = True,
    batch_size: int = 256,
    confidence: float = 0.95,
    alpha: float = 0.05,
) -> EvalReport:
    """Run every retriever under ``protocol`` on the judged queries and build the full report."""
    if protocol not in ("full", "rerank"):
        raise EvalError(f"protocol must be 'full' or 'rerank', got {protocol!r}")
    if not systems:
        raise EvalError("no system to evaluate")
    per_query_specs, pooled_specs = split_metrics(metrics)
    want_auc = bool(pooled_specs)
    qrels = judgments.qrels()
    qids, texts, counts = _select_queries(queries, qrels)
    candidates = [list(qrels[q]) for q in qids]
    grades = [np.fromiter(qrels[q].values(), dtype=np.int64, count=len(qrels[q])) for q in qids]
    data: dict[str, SystemData] = {}
    for name, retriever in systems.items():
        has_scorer = callable(getattr(retriever, "score_candidates", None))
        if protocol == "rerank" and not has_scorer:
            raise EvalError(f"system {name!r} has no score_candidates(queries, candidates): it cannot re-rank")
        sd = SystemData(name=name)
        steps = len(qids) * ((protocol == "full") + (has_scorer and (want_auc or protocol == "rerank")))
        with tqdm(total=steps, desc=f"eval {name}", unit="q", disable=not show_progress, leave=False) as bar:
            cand_scores = None
            if has_scorer and (want_auc or protocol == "rerank"):
                cand_scores = _score_candidates(retriever, texts, candidates, batch_size, bar)
            if protocol == "full":
                run: dict[str, list[tuple[str, float]]] = {}
                for a, b in _batches(len(qids), batch_size):
                    run.update(retriever.search(texts[a:b], k=depth).to_run(qids[a:b]))
                    bar.update(b - a)
            else:
                assert cand_scores is not None
                run = {}
                for q, cands, s in zip(qids, candidates, cand_scores, strict=True):
                    order = np.argsort(-s, kind="stable")
                    run[q] = [(cands[i], float(s[i])) for i in order]
        sd.run = run
        if want_auc:
            if cand_scores is not None:
                sd.auc_scores, sd.auc_grades = cand_scores, grades
            else:
                sd.auc_note = "no score_candidates(): AUC not computed for this system"
        sd.per_query = per_query_metrics(run, qrels, judgments.scheme, [s.key for s in per_query_specs], qids)
        data[name] = sd
    statement = _statement(protocol, depth, per_query_specs, dataset_info, judgments, source="retrievers")
    return build_report(
        data, qids, qrels, judgments.scheme, metrics, queries=queries, strata=strata, idf=idf,
        baseline=baseline, n_resamples=n_resamples, auc_resamples=auc_resamples, seed=seed, confidence=confidence, alpha=alpha,
        protocol=statement, dataset_info=dataset_info, counts=counts,
    )


def evaluate_runs(
    runs: Mapping[str, Mapping[str, Sequence[Any]]],
    queries: Queries | None,
    judgments: Judgments,
    *,
    candidate_scores: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
    protocol: Protocol = "full",
    metrics: Sequence[str] = METRIC_KEYS,
    depth: int | None = None,
    strata: StratumConfig | None = None,
    idf: Mapping[str, float] | None = None,
    baseline: str | None = None,
    n_resamples: int = 10000,
    auc_resamples: int | None = None,
    seed: int = 0,
    dataset_info: dict | None = None,
    confidence: float = 0.95,
    alpha: float = 0.05,
) -> EvalReport:
    """The same report from ready runs (e.g. TREC files): ``runs[system][query_id]`` = ids (or
    ``(id, score)``) in rank order. ``candidate_scores[system][query_id][product_id]`` gives AUC; a
    system without them gets no AUC, said so. ``protocol`` only labels the report here. ``queries``
    may be None (no strata then). A judged query missing from a run scores as an empty list.
    """
    if not runs:
        raise EvalError("no run to evaluate")
    per_query_specs, pooled_specs = split_metrics(metrics)
    qrels = judgments.qrels()
    qids, _, counts = _select_queries(queries, qrels)
    grades = [np.fromiter(qrels[q].values(), dtype=np.int64, count=len(qrels[q])) for q in qids]
    data: dict[str, SystemData] = {}
    for name, run in runs.items():
        sd = SystemData(name=name, run={str(q): list(v) for q, v in run.items()})
        missing = sum(1 for q in qids if q not in run)
        if missing:
            sd.notes.append(f"{missing} evaluated queries absent from the run (scored as empty lists)")
        if pooled_specs:
            cs = (candidate_scores or {}).get(name)
            if cs is None:
                sd.auc_note = "no candidate scores given: AUC not computed for this system"
            else:
                sd.auc_scores = [
                    np.array([cs.get(q, {}).get(p, -np.inf) for p in qrels[q]], dtype=np.float64) for q in qids
                ]
                sd.auc_grades = grades
        sd.per_query = per_query_metrics(run, qrels, judgments.scheme, [s.key for s in per_query_specs], qids)
        data[name] = sd
    statement = _statement(protocol, depth, per_query_specs, dataset_info, judgments, source="runs")
    return build_report(
        data, qids, qrels, judgments.scheme, metrics, queries=queries, strata=strata, idf=idf,
        baseline=baseline, n_resamples=n_resamples, auc_resamples=auc_resamples, seed=seed, confidence=confidence, alpha=alpha,
        protocol=statement, dataset_info=dataset_info, counts=counts,
    )


def _statement(protocol: str, depth: int | None, specs: list, dataset_info: dict | None, judgments: Judgments,
               source: str) -> dict[str, Any]:
    info = dataset_info or {}
    cutoffs = sorted({s.k for s in specs if s.k is not None})
    notes = []
    if protocol == "full" and depth is not None and cutoffs and depth < max(cutoffs):
        notes.append(f"run depth {depth} is below the largest cutoff {max(cutoffs)}: metrics past it see no products")
    if protocol == "full":
        desc = ("full-corpus retrieval: each query searched against the whole catalogue; "
                "products without a judgment count as grade 0")
        tie = TIE_RULE_RUN
    else:
        desc = ("re-ranking of each query's judged candidates only (not comparable with full-corpus numbers); "
                "candidates ranked by score_candidates")
        tie = TIE_RULE_RERANK if source == "retrievers" else TIE_RULE_RUN
    return {
        "name": protocol,
        "description": desc,
        "source": source,
        "catalogue_size": next((info[k] for k in ("catalogue_size", "catalog_size", "products") if k in info), None),
        "dataset": info.get("name") or info.get("format"),
        "split": info.get("split"),
        "depth": depth,
        "cutoffs": cutoffs,
        "gain": judgments.scheme.gain,
        "tie_rule": tie,
        "unjudged": "grade 0" if protocol == "full" else "not ranked (judged candidates only)",
        "notes": notes,
    }
