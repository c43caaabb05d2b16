"""The evaluation report: overall and per-stratum metrics with bootstrap CIs, paired comparisons with
Holm-corrected p-values, and the statements that make the numbers comparable. JSON / Markdown / HTML.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shopsearch.artifacts import atomic_write_text
from shopsearch.data.errors import ShopsearchError
from shopsearch.data.schema import GradeScheme, Queries
from shopsearch.eval.metrics import AucPool, split_metrics
from shopsearch.eval.significance import (
    bootstrap_mean_ci,
    bootstrap_normal_p_value,
    bootstrap_statistic,
    holm,
    paired_bootstrap_ci,
    paired_randomization_test,
    percentile_ci,
)
from shopsearch.eval.strata import TIERS, UNKNOWN, StratumConfig, assign_strata

OVERALL = ("overall", "all")
AUC_RESAMPLES = 2000  # default cap: a pooled-AUC bootstrap replicate costs O(candidates), not O(queries)


class EvalError(ShopsearchError, ValueError):
    """An evaluation cannot run as asked (unknown baseline, a retriever missing a method, ...)."""


@dataclass
class SystemData:
    """What one system produced: its run, per-query metrics and (optionally) candidate scores for AUC."""

    name: str
    run: dict[str, list[Any]] = field(default_factory=dict)
    per_query: pd.DataFrame = field(default_factory=pd.DataFrame)
    auc_scores: list[np.ndarray] | None = None
    auc_grades: list[np.ndarray] | None = None
    auc_note: str | None = None
    notes: list[str] = field(default_factory=list)


def _num(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


@dataclass
class EvalReport:
    """Everything one evaluation found. ``to_dict`` is the JSON shape (see the module docs)."""

    protocol: dict[str, Any]
    grade_scheme: dict[str, Any]
    metric_keys: list[str]
    baseline: str
    systems: dict[str, dict[str, Any]]
    per_query: dict[str, pd.DataFrame]
    comparisons: list[dict[str, Any]]
    strata_method: dict[str, Any]
    significance: dict[str, Any]
    counts: dict[str, Any]
    dataset: dict[str, Any]
    notes: list[str]
    strata_assignment: pd.DataFrame
    runs: dict[str, dict[str, list[Any]]] = field(default_factory=dict, repr=False)

    @property
    def synthetic(self) -> bool:
        return bool(self.dataset.get("synthetic", False))

    def to_dict(self) -> dict[str, Any]:
        systems = {}
        for name, s in self.systems.items():
            pq = self.per_query[name]
            per_query = {
                str(q): {k: float(v) for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}
                for q, row in zip(pq.index, pq.to_dict("records"), strict=True)
            }
            systems[name] = {**s, "per_query": per_query}
        return _clean({
            "protocol": self.protocol,
            "grade_scheme": self.grade_scheme,
            "dataset": self.dataset,
            "synthetic": self.synthetic,
            "metric_keys": self.metric_keys,
            "baseline": self.baseline,
            "counts": self.counts,
            "strata_method": self.strata_method,
            "significance": self.significance,
            "notes": self.notes,
            "systems": systems,
            "comparisons": self.comparisons,
        })

    def write_json(self, path: str | Path) -> Path:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        return Path(path)

    def to_markdown(self, full: bool = True) -> str:
        """Markdown tables; ``full=False`` is the terminal summary (overall, frequency tiers)."""
        from shopsearch.eval.html import render_markdown

        return render_markdown(self, full=full)

    def write_markdown(self, path: str | Path) -> Path:
        atomic_write_text(path, self.to_markdown())
        return Path(path)

    def write_html(self, path: str | Path) -> Path:
        from shopsearch.eval.html import render_html

        atomic_write_text(path, render_html(self))
        return Path(path)


def _clean(x: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(x, Mapping):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _auc_gap(a: AucPool, b: AucPool, weights: np.ndarray) -> np.ndarray:
    """Pooled-AUC difference of two systems under the same bootstrap query weights."""
    return a.auc(weights) - b.auc(weights)


def _scopes(frame: pd.DataFrame) -> list[tuple[str, str, np.ndarray]]:
    scopes = [(*OVERALL, np.ones(len(frame), dtype=bool))]
    for dim in frame.columns:
        values = frame[dim].to_numpy(dtype=object)
        present = set(values)
        order = [t for t in (*TIERS, UNKNOWN) if t in present] if dim == "frequency" else sorted(present)
        scopes += [(dim, str(t), values == t) for t in order]
    return scopes


def build_report(
    data: Mapping[str, SystemData],
    qids: Sequence[str],
    qrels: Mapping[str, Mapping[str, int]],
    scheme: GradeScheme,
    metrics: Sequence[str],
    *,
    queries: Queries | None,
    strata: StratumConfig | None,
    idf: Mapping[str, float] | None,
    baseline: str | None,
    n_resamples: int,
    auc_resamples: int | None = None,
    seed: int,
    confidence: float,
    alpha: float,
    protocol: dict[str, Any],
    dataset_info: dict | None,
    counts: dict[str, Any],
) -> EvalReport:
    """Summaries, strata, CIs and every paired comparison (each system vs ``baseline``)."""
    names = list(data)
    auc_resamples = min(n_resamples, AUC_RESAMPLES) if auc_resamples is None else auc_resamples
    baseline = names[0] if baseline is None else baseline
    if baseline not in data:
        raise EvalError(f"baseline {baseline!r} is not one of the systems {names}")
    per_specs, pooled_specs = split_metrics(metrics)
    keys = [s.key for s in (*per_specs, *pooled_specs)]
    qids = list(qids)
    n_rel = np.array([sum(g >= scheme.relevant_min for g in qrels[q].values()) for q in qids], dtype=int)
    n_ideal0 = sum(1 for q in qids if all(g <= 0 for g in qrels[q].values()))
    counts = {**counts, "queries_evaluated": len(qids), "queries_with_relevant": int((n_rel > 0).sum()),
              "queries_without_relevant_left_out_of_binary_metrics": int((n_rel == 0).sum()),
              "queries_all_grade_zero_ndcg_0": int(n_ideal0)}
    if queries is not None and len(qids):
        frame, methods = assign_strata(queries, strata, idf)
        frame = frame.reindex(pd.Index(qids, name="query_id"))
        for col in frame.columns:
            frame[col] = frame[col].fillna(UNKNOWN)
        for dim, m in methods.items():  # counts over the evaluated queries, not all given
            m["counts_evaluated"] = frame[dim].value_counts().to_dict()
    else:
        frame = pd.DataFrame(index=pd.Index(qids, name="query_id"))
        methods = {"frequency": {"method": "none", "description": "no query table given: no strata"}}
    scopes = _scopes(frame)
    ci_args: dict[str, Any] = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed}

    def pool(sd: SystemData, mask: np.ndarray) -> AucPool | None:
        if sd.auc_scores is None or sd.auc_grades is None:
            return None
        idx = np.flatnonzero(mask)
        return AucPool([sd.auc_scores[i] for i in idx], [sd.auc_grades[i] for i in idx], scheme.relevant_min)

    systems: dict[str, dict[str, Any]] = {}
    pools: dict[tuple[str, str, str], AucPool | None] = {}
    for name, sd in data.items():
        summary: dict[str, Any] = {"metrics": {}, "ci": {}, "strata": {}, "notes": list(sd.notes)}
        for dim, tier, mask in scopes:
            entry: dict[str, Any] = {"n": int(mask.sum()), "n_with_relevant": int((n_rel[mask] > 0).sum())}
            ci: dict[str, Any] = {}
            for spec in per_specs:
                v = sd.per_query[spec.key].to_numpy(dtype=np.float64)[mask]
                entry[spec.key] = float(np.nanmean(v)) if np.any(~np.isnan(v)) else None
                ci[spec.key] = list(bootstrap_mean_ci(v, **ci_args))
            for spec in pooled_specs:
                p = pools[(name, dim, tier)] = pool(sd, mask)
                if p is None:
                    entry[spec.key] = None
                    continue
                entry[spec.key] = float(p.auc(np.ones((1, p.n_queries)))[0])
                reps = bootstrap_statistic(p.auc, p.n_queries, auc_resamples, seed)
                ci[spec.key] = list(percentile_ci(reps, confidence))
            entry["ci"] = ci
            if (dim, tier) == OVERALL:
                summary["metrics"] = {k: entry.get(k) for k in keys}
                summary["ci"] = ci
                summary["counts"] = {"n": entry["n"], "n_with_relevant": entry["n_with_relevant"]}
            else:
                summary["strata"].setdefault(dim, {})[tier] = entry
        if pooled_specs and sd.auc_note:
            summary["notes"].append(sd.auc_note)
        systems[name] = summary

    comparisons: list[dict[str, Any]] = []
    for name in names:
        if name == baseline:
            continue
        a, b = data[name], data[baseline]
        for dim, tier, mask in scopes:
            for spec in (*per_specs, *pooled_specs):
                row: dict[str, Any] = {"system": name, "baseline": baseline, "stratification": dim,
                                       "stratum": tier, "metric": spec.key}
                if spec in pooled_specs:
                    pa, pb = pools[(name, dim, tier)], pools[(baseline, dim, tier)]
                    if pa is None or pb is None:
                        continue
                    obs = float(pa.auc(np.ones((1, pa.n_queries)))[0] - pb.auc(np.ones((1, pb.n_queries)))[0])
                    reps = bootstrap_statistic(partial(_auc_gap, pa, pb), pa.n_queries, auc_resamples, seed)
                    lo, hi = percentile_ci(reps, confidence)
                    p_value, test, n = bootstrap_normal_p_value(obs, reps), "paired bootstrap (pooled AUC)", pa.n_queries
                else:
                    va = a.per_query[spec.key].to_numpy(dtype=np.float64)[mask]
                    vb = b.per_query[spec.key].to_numpy(dtype=np.float64)[mask]
                    n = int((~(np.isnan(va) | np.isnan(vb))).sum())
                    if n == 0:
                        continue
                    obs, lo, hi = paired_bootstrap_ci(va, vb, **ci_args)
                    p_value = paired_randomization_test(va, vb, n_resamples=n_resamples, seed=seed)
                    test = "paired randomisation (sign flip)"
                row.update({"n": n, "diff_points": 100 * obs, "ci_low_points": 100 * lo,
                            "ci_high_points": 100 * hi, "p_value": p_value, "test": test})
                comparisons.append(row)
    adjusted = holm([c["p_value"] for c in comparisons])
    for c, p in zip(comparisons, adjusted, strict=True):
        c["p_holm"] = _num(p)
        c["significant"] = bool(p < alpha) if not math.isnan(p) else False

    info = dict(dataset_info or {})
    notes = list(protocol.get("notes", []))
    m = int(np.count_nonzero(~np.isnan(adjusted)))
    if m and m / (n_resamples + 1) >= alpha:
        notes.append(f"{n_resamples} resamples are too few for Holm across {m} tests: the smallest reachable "
                     f"adjusted p is {m / (n_resamples + 1):.3g} >= alpha {alpha}; use more resamples")
    if info.get("synthetic"):
        notes.insert(0, "SYNTHETIC DATA: these figures measure the pipeline, not real search quality")
    return EvalReport(
        protocol=protocol,
        grade_scheme=scheme.describe(),
        metric_keys=keys,
        baseline=baseline,
        systems=systems,
        per_query={n: data[n].per_query for n in names},
        comparisons=comparisons,
        strata_method=methods,
        significance={
            "per_query_metrics": "two-sided paired randomisation test (sign flips of per-query differences), "
            "p = (1 + hits) / (1 + resamples); CI: percentile bootstrap over queries",
            "auc": f"pooled AUC is not a per-query mean and sign flips are undefined for it: CI from a paired "
            f"bootstrap over queries ({auc_resamples} resamples), p = 2(1 - Phi(|diff| / bootstrap se))",
            "auc_resamples": auc_resamples,
            "multiple_testing": f"Holm across all {len(comparisons)} tests in this report",
            "n_resamples": n_resamples, "confidence": confidence, "alpha": alpha, "seed": seed,
            "differences": "in points (x100)",
        },
        counts=counts,
        dataset=info,
        notes=notes,
        strata_assignment=frame,
        runs={n: data[n].run for n in names},
    )
