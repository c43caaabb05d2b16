"""Evaluation: metrics, protocols (full corpus, re-rank), strata, significance, reports.

Typical use::

    from shopsearch.eval import evaluate
    report = evaluate({"bm25": bm25, "dense": dense}, ds.queries, ds.judgments, protocol="full")
    report.write_json("eval.json"); report.write_html("eval.html"); print(report.to_markdown())
"""

from shopsearch.eval.metrics import (
    METRIC_KEYS,
    METRIC_KEYS_PER_QUERY,
    AucPool,
    MetricSpec,
    parse_metric,
    per_query_metrics,
    pooled_auc,
)
from shopsearch.eval.protocols import evaluate, evaluate_runs
from shopsearch.eval.report import EvalError, EvalReport, SystemData, build_report
from shopsearch.eval.runs import read_trec_run, read_trec_run_scored, write_trec_run
from shopsearch.eval.significance import (
    bootstrap_mean_ci,
    holm,
    paired_bootstrap_ci,
    paired_randomization_test,
)
from shopsearch.eval.strata import TIERS, StratumConfig, assign_frequency_strata, assign_strata

__all__ = [
    "METRIC_KEYS",
    "METRIC_KEYS_PER_QUERY",
    "TIERS",
    "AucPool",
    "EvalError",
    "EvalReport",
    "MetricSpec",
    "StratumConfig",
    "SystemData",
    "assign_frequency_strata",
    "assign_strata",
    "bootstrap_mean_ci",
    "build_report",
    "evaluate",
    "evaluate_runs",
    "holm",
    "paired_bootstrap_ci",
    "paired_randomization_test",
    "parse_metric",
    "per_query_metrics",
    "pooled_auc",
    "read_trec_run",
    "read_trec_run_scored",
    "write_trec_run",
]
