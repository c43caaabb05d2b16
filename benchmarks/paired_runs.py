"""Paired tests between two models evaluated on the same queries (two ``--out`` files of
benchmarks/homedepot_model_dev.py): is model B better than model A, system by system?

    .venv/bin/python benchmarks/paired_runs.py runs/a/dev_eval.json runs/b/dev_eval.json \
        [--also runs/c/dev_eval.json] [--metrics ndcg@10 recall@100]

For every system both files hold (dense, each hybrid), prints B − A in points with a paired bootstrap
95% CI and the paired randomisation p-value over the queries both scored. ``--also`` adds more runs of
recipe B: their per-query mean is tested against A, the fairer test when single runs differ by noise.
``--systems A_SYSTEM B_SYSTEM`` compares those two systems instead (A's from the first file, B's from
the others), e.g. two fusions of one model: ``paired_runs.py dev.json dev.json --systems
hybrid:w0.50:union hybrid:w0.50:coverage``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from shopsearch.eval.significance import paired_bootstrap_ci, paired_randomization_test


def per_query(report: dict, system: str, metric: str) -> dict[str, float]:
    """query id -> the metric's value for ``system`` in an evaluation report (NaN where left out)."""
    rows = report["systems"][system]["per_query"]
    return {qid: float(v[metric]) if v.get(metric) is not None else float("nan") for qid, v in rows.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path, help="evaluation JSON of model A (the reference)")
    ap.add_argument("b", type=Path, help="evaluation JSON of model B")
    ap.add_argument("--also", type=Path, nargs="*", default=[], help="more evaluation JSONs of B's recipe")
    ap.add_argument("--metrics", nargs="*", default=["ndcg@10", "recall@100"])
    ap.add_argument("--systems", nargs=2, metavar=("A_SYSTEM", "B_SYSTEM"), default=None,
                    help="compare A's system A_SYSTEM with B's B_SYSTEM (default: each common system with itself)")
    args = ap.parse_args()
    report_a = json.loads(args.a.read_text())
    reports_b = [json.loads(p.read_text()) for p in (args.b, *args.also)]
    if args.systems:
        pairs = [tuple(args.systems)]
    else:
        common = set(report_a["systems"]).intersection(*(r["systems"] for r in reports_b))
        pairs = [(name, name) for name in sorted(common)]
    for system_a, system in pairs:
        for metric in args.metrics:
            a = per_query(report_a, system_a, metric)
            bs = [per_query(r, system, metric) for r in reports_b]
            qids = sorted(set(a).intersection(*bs))
            x = np.array([a[q] for q in qids])
            y = np.mean([[b[q] for q in qids] for b in bs], axis=0)
            keep = ~(np.isnan(x) | np.isnan(y))
            diff, lo, hi = paired_bootstrap_ci(y[keep], x[keep])
            p = paired_randomization_test(y[keep], x[keep])
            print(f"{system:20s} {metric:11s} A {x[keep].mean():.4f}  B {y[keep].mean():.4f}  "
                  f"B-A {100 * diff:+.2f} points (95% CI {100 * lo:+.2f}..{100 * hi:+.2f}), p {p:.3g}, "
                  f"{int(keep.sum())} queries, {len(reports_b)} run(s) of B")


if __name__ == "__main__":
    main()
