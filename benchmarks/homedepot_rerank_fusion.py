"""Re-ranking on Home Depot `dev`: the first stage, the cross-encoder alone, and their z-score fusion.

    .venv/bin/python benchmarks/homedepot_rerank_fusion.py --index INDEX --model RERANKER [--first hybrid]
        [--depth 50] [--out F]

Full corpus, the protocol of ``../shared/data/home-depot/README.md``, every `dev` query. The first stage
(any system spec the index serves) retrieves the top ``--depth`` of each query once; the cross-encoder
scores those pairs once (cached next to the output as ``.npy``); then the head is ordered by
``w * z(ce) + (1 - w) * z(first)`` (:func:`shopsearch.retrieval.rerank.order_heads`) for w over 0..1.
w = 0 is the first stage, w = 1 the cross-encoder alone. Reports NDCG@10 per w, the pairs scored and
the cross-encoder's pairs per second.

``--components``: also fuse the cross-encoder with the first stage's *parts* instead of its fused
score: ``a * z(ce) + b * z(bm25) + c * z(dense)`` over the same head (each part's exact score of
every head product, from the index), a, b, c on a 0.1 grid summing to 1. Reported beside the
two-way curve, best weights first; the weights are chosen on `dev` itself, so read the best figure as
an upper bound of what the mechanism gives, not as a held-out result.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from shopsearch.cli.common import load_data
from shopsearch.config import DataSettings
from shopsearch.data.render import ProductTextRenderer
from shopsearch.eval.metrics import per_query_metrics
from shopsearch.eval.pipeline import systems_from_index
from shopsearch.hardware import cpu_info
from shopsearch.retrieval.base import NO_ID
from shopsearch.retrieval.rerank import CrossEncoderReranker, order_heads, score_heads

HD = Path(os.environ.get("SHOPSEARCH_HOMEDEPOT", Path(__file__).resolve().parents[2] / "shared/data/home-depot"))
GRID = [round(0.1 * i, 1) for i in range(11)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", required=True, type=Path)
    ap.add_argument("--model", required=True, type=Path, help="cross-encoder directory")
    ap.add_argument("--first", default="hybrid", help="first-stage system spec")
    ap.add_argument("--depth", type=int, default=50)
    ap.add_argument("--also-depths", type=int, nargs="*", default=[],
                    help="also the fusion curve re-ranking only each query's top N of these (from the same scores)")
    ap.add_argument("--components", action="store_true", help="also fuse with BM25 and dense separately")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    dev = load_data(DataSettings(catalog=HD / "products.csv", judgments=HD / "judgments_dev.csv", format="homedepot"))
    texts = ProductTextRenderer(fields=("title",)).render(dev.catalog)
    first = systems_from_index([args.first], args.index, texts, dev.catalog.ids)[args.first]
    qids = list(dict.fromkeys(dev.judgments.df["query_id"].astype(str)))
    table = dev.queries.df.astype({"query_id": str}).set_index("query_id")["text"]
    queries = [str(table[q]) for q in qids]
    found = first.search(queries, args.depth)
    text_of = dict(zip(dev.catalog.df["product_id"].astype(str), texts, strict=True))
    pairs = int(np.sum(found.ids[:, :args.depth] != NO_ID))
    cache = args.out.with_suffix(".logits.npy") if args.out else None
    seconds = None
    if cache is not None and cache.is_file():
        logits = np.load(cache)
    else:
        start = time.perf_counter()
        logits = score_heads(CrossEncoderReranker(args.model, batch_size=128), queries, found, text_of, args.depth)
        seconds = time.perf_counter() - start
        if cache is not None:
            np.save(cache, logits)
    qrels = dev.judgments.qrels()
    curve = {}
    for w in GRID:
        run = order_heads(found, logits, 10, w).to_run(qids)
        frame = per_query_metrics(run, qrels, dev.scheme, ["ndcg@10"], query_ids=qids)
        curve[str(w)] = round(float(frame["ndcg@10"].mean()), 6)
        print(f"w={w}: NDCG@10 {curve[str(w)]:.4f}")
    shallower = {}
    for depth in args.also_depths:  # the head's prefix: the same scores, fewer of them re-ordered
        shallower[str(depth)] = {}
        for w in GRID:
            run = order_heads(found, logits[:, :depth], 10, w).to_run(qids)
            frame = per_query_metrics(run, qrels, dev.scheme, ["ndcg@10"], query_ids=qids)
            shallower[str(depth)][str(w)] = round(float(frame["ndcg@10"].mean()), 6)
        best = max(shallower[str(depth)].items(), key=lambda kv: kv[1])
        print(f"depth {depth}: best w={best[0]} NDCG@10 {best[1]:.4f}")
    components = component_curve(args, dev, texts, queries, qids, found, logits) if args.components else None
    result = {
        "benchmark": "homedepot_rerank_fusion", "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_info().model, "cores": os.cpu_count(), "python": platform.python_version()},
        "index": str(args.index), "model": str(args.model), "first_stage": args.first, "depth": args.depth,
        "queries": len(qids), "pairs": pairs,
        "ce_pairs_per_second": round(pairs / seconds, 1) if seconds else None,
        "ndcg@10": {"first_stage": curve["0.0"], "cross_encoder": curve["1.0"], "fused": curve},
        **({"fused_at_depth": shallower} if shallower else {}),
        **({"components": components} if components else {}),
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def _z(x: np.ndarray) -> np.ndarray:
    """Per-row z-scores over the valid (finite) entries of each head."""
    out = np.zeros_like(x, dtype=np.float64)
    for i, row in enumerate(x):
        ok = np.isfinite(row)
        if ok.sum() > 1 and row[ok].std() > 0:
            out[i, ok] = (row[ok] - row[ok].mean()) / row[ok].std()
    return out


def component_curve(args, dev, texts, queries, qids, found, logits) -> dict:
    """NDCG@10 of a*z(ce) + b*z(bm25) + c*z(dense) over the head, for a, b, c on a 0.1 grid."""
    parts = systems_from_index(["bm25", "dense"], args.index, texts, dev.catalog.ids)
    head = logits.shape[1]
    cands = [[str(p) for p in row[:head] if p != NO_ID] for row in found.ids]
    scores = {}
    for name, system in parts.items():
        rows = system.score_candidates(queries, cands)
        mat = np.full(logits.shape, -np.inf)
        for i, r in enumerate(rows):
            mat[i, : len(r)] = r
        scores[name] = _z(mat)
    ce = _z(logits)
    valid = np.isfinite(logits)
    qrels = dev.judgments.qrels()
    table = {}
    for a in GRID:
        for b in GRID:
            c = round(1.0 - a - b, 1)
            if c < 0:
                continue
            mixed = np.where(valid, a * ce + b * scores["bm25"] + c * scores["dense"], -np.inf).astype(np.float32)
            run = order_heads(found, mixed, 10, None).to_run(qids)
            frame = per_query_metrics(run, qrels, dev.scheme, ["ndcg@10"], query_ids=qids)
            table[f"ce={a},bm25={b},dense={c}"] = round(float(frame["ndcg@10"].mean()), 6)
    ranked = dict(sorted(table.items(), key=lambda kv: -kv[1]))
    best = next(iter(ranked))
    print(f"three-way best {best}: NDCG@10 {ranked[best]:.4f}")
    return {"best": best, "best_ndcg@10": ranked[best], "grid": ranked}


if __name__ == "__main__":
    main()
