"""Print the result tables of the README and docs/results.md from the committed benchmark JSON files.

    .venv/bin/python benchmarks/summarize.py homedepot          # benchmarks/results/homedepot_baselines.json
    .venv/bin/python benchmarks/summarize.py demo demo-out/report.json
    .venv/bin/python benchmarks/summarize.py rerank     # re-ranking: dev quality and serving latency
    .venv/bin/python benchmarks/summarize.py teachers   # stage-2 distillation teachers (ablation rows)

The tables there are pasted from this output, so every figure there traces back to a file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@10", "auc")


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.4f}"


def metrics_table(systems: dict[str, dict], comparisons: list[dict], baseline: str) -> list[str]:
    overall = {(c["system"], c["metric"]): c for c in comparisons if c["stratification"] == "overall"}
    lines = ["| system | " + " | ".join(METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
    for name, m in systems.items():
        cells = []
        for key in METRICS:
            cell = _fmt(m.get(key))
            c = overall.get((name, key))
            if c is not None:
                mark = "*" if c["significant"] else ""
                cell += f" ({c['diff_points']:+.1f}{mark})"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append(f"\n(in brackets: difference from {baseline} in points; * = Holm-adjusted p < 0.05)")
    return lines


def strata_table(strata: dict[str, dict], metric: str = "ndcg@10") -> list[str]:
    tiers = list(next(iter(strata.values()))["frequency"])
    lines = ["| tier | n | " + " | ".join(strata) + " |", "|---|---:|" + "---:|" * len(strata)]
    for tier in tiers:
        n = next(iter(strata.values()))["frequency"][tier]["n"]
        cells = [_fmt(s["frequency"][tier].get(metric)) for s in strata.values()]
        lines.append(f"| {tier} | {n} | " + " | ".join(cells) + " |")
    return lines


def homedepot(path: Path) -> None:
    d = json.loads(path.read_text())
    baseline = d["comparisons"][0]["baseline"] if d["comparisons"] else next(iter(d["metrics"]))
    print(f"machine: {d['machine']['cpus']} CPUs, {d['machine']['platform']}; date {d['date']}\n")
    print("\n".join(metrics_table(d["metrics"], d["comparisons"], baseline)))
    print("\nNDCG@10 by frequency tier (proxy: no traffic counts in this data)\n")
    print("\n".join(strata_table(d["strata"])))
    print("\n| system | NDCG@10 (ranx) | Recall@100 (ranx) | index build, products/s | p50 / p99 ms (1 query) | ms/query (batch 64) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, lat in d["latency"].items():
        rx = d["ranx_cross_check"][name]
        build = d["indexing"].get(name, {}).get("products_per_s")
        build_s = f"{build:,.0f}" if build else "(bm25 + dense)"
        print(f"| {name} | {rx['ndcg@10']:.4f} | {rx['recall@100']:.4f} | {build_s} | "
              f"{lat['single_p50_ms']:.1f} / {lat['single_p99_ms']:.1f} | {lat['batched_ms_per_query']:.1f} |")


def demo(path: Path) -> None:
    d = json.loads(path.read_text())
    systems = {name: s["metrics"] for name, s in d["systems"].items()}
    print("\n".join(metrics_table(systems, d["comparisons"], d["baseline"])))
    print("\nNDCG@10 by frequency tier (from the generated traffic counts)\n")
    print("\n".join(strata_table({name: s["strata"] for name, s in d["systems"].items()})))


def rerank() -> None:
    """Re-ranking on Home Depot dev (fusion benchmark files) and served under load (serve_load_rerank_*)."""
    print("| re-ranker | depth | first stage | cross-encoder alone | fused (w) |\n|---|---:|---:|---:|---:|")
    for path in sorted(RESULTS.glob("homedepot_rerank_fusion*_dev.json")):
        d = json.loads(path.read_text())
        n = d["ndcg@10"]
        w, best = max(n["fused"].items(), key=lambda kv: kv[1])
        print(f"| {d['model']} | {d['depth']} | {n['first_stage']:.4f} | {n['cross_encoder']:.4f} | {best:.4f} ({w}) |")
    print("\n| served re-ranker | depth | mode | p50 ms | p99 ms at 20 req/s | server CPU ms/request |\n"
          "|---|---:|---|---:|---:|---:|")
    for path in sorted(RESULTS.glob("serve_load_rerank*.json")):
        d = json.loads(path.read_text())
        for r in d["results"]:
            if r["loop"] == "open":
                print(f"| {d['settings']['reranker']} | {d['settings']['rerank_depth']} | {r['mode']} | "
                      f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['server_cpu_ms_per_request']:.1f} |")


def teachers(path: Path = RESULTS / "homedepot_ablation_teachers.json") -> None:
    """The teacher rows of the ablation: dense and hybrid NDCG@10, dense Recall@100, each against its
    comparison row (points, Holm p across the file's tests)."""
    d = json.loads(path.read_text())
    print(f"BM25 NDCG@10 {d['bm25']['ndcg@10']:.4f}, Recall@100 {d['bm25']['recall@100']:.4f} ({d['date']})\n")
    print("| row | dense ndcg@10 | dense recall@100 | hybrid ndcg@10 | vs | ndcg@10 diff (Holm p) |\n"
          "|---|---:|---:|---:|---|---:|")
    for r in d["rows"]:
        v = r.get("vs_previous") or {}
        diff = f"{v['ndcg@10']['diff_points']:+.2f} ({v['ndcg@10']['p_holm']:.3f})" if v else ""
        print(f"| {r['row']} | {r['dense']['ndcg@10']:.4f} | {r['dense']['recall@100']:.4f} | "
              f"{r['hybrid']['ndcg@10']:.4f} | {v.get('previous', '')} | {diff} |")


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "homedepot"
    if which == "homedepot":
        homedepot(Path(sys.argv[2]) if len(sys.argv) > 2 else RESULTS / "homedepot_baselines.json")
    elif which == "demo":
        demo(Path(sys.argv[2]) if len(sys.argv) > 2 else Path("demo-out/report.json"))
    elif which == "rerank":
        rerank()
    elif which == "teachers":
        teachers()
    else:
        sys.exit(f"unknown summary {which!r}: homedepot | demo | rerank | teachers")
