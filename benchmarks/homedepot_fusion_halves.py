"""Can the hybrid's dense weight be chosen per query? A check on held-out query halves, then `dev`.

The default hybrid fuses BM25 and the dense model with equal weights over the rescored union of their
top 100 (``HybridRetriever``). Picking the best weight for each query after the fact would add about
five points of NDCG@10, so this script asks whether a rule can pick it before the fact, from what the
two result lists show (top scores, score gaps, their overlap, BM25's term coverage, query length):

* one-feature rules, ``w = clip(0.5 + b * z(feature), 0.1, 0.9)``, ``b`` chosen on the fit sets;
* a gradient-boosted selector (scikit-learn) predicting each weight's NDCG@10 from the features.

Each rule is fitted on one set of (model, queries the model never saw) and judged on the other, and
fitted on all of them and judged on `dev` with the default model. The fit sets come from
``homedepot_query_halves.py``: the stage 1 trained on one half of `train`, judged on the other half::

    .venv/bin/python benchmarks/homedepot_fusion_halves.py \\
        --fit runs/halfA/run/stage1/model runs/halves/b.csv \\
        --fit runs/halfB/run/stage1/model runs/halves/a.csv \\
        --dev runs/pq-all/run/stage2/model --out benchmarks/results/homedepot_fusion_halves.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
from homedepot_model_dev import DATA, cached_product_vectors

from shopsearch.artifacts import atomic_write_text
from shopsearch.data import load_dataset
from shopsearch.data.render import ProductTextRenderer
from shopsearch.eval.metrics import per_query_metrics
from shopsearch.eval.significance import paired_randomization_test
from shopsearch.retrieval.base import NO_ID
from shopsearch.retrieval.bm25 import BM25Retriever
from shopsearch.retrieval.dense import DenseRetriever
from shopsearch.retrieval.encoder import SentenceEncoder
from shopsearch.retrieval.fusion import normalize_scores

WEIGHTS = np.round(np.arange(0.1, 0.901, 0.05), 2)
FEATURES = ("bm25_top", "dense_top", "bm25_gap", "dense_gap", "overlap10", "coverage", "words")
DEPTH = 100


def minmax(x: np.ndarray) -> np.ndarray:
    """One candidate list min-max normalised as ``HybridRetriever`` does (``normalize_scores``)."""
    return normalize_scores(x[None, :], np.ones((1, len(x)), bool), "minmax")[0][0] if len(x) else x


def weight_grid(model: str, judgments: Path) -> tuple[np.ndarray, np.ndarray]:
    """(queries, weights) NDCG@10 of the union fusion at every dense weight, and (queries, features)."""
    data = load_dataset(catalog=DATA / "products.csv", judgments=judgments, format="homedepot")
    texts = ProductTextRenderer(fields=("title",)).render(data.catalog)
    ids = data.catalog.ids
    encoder = SentenceEncoder(model)
    bm25 = BM25Retriever(ids, texts)
    dense = DenseRetriever(encoder, ids, cached_product_vectors(encoder, model, texts))
    qdf = data.queries.df
    queries = qdf["text"].fillna("").astype(str).tolist()
    qids = qdf["query_id"].astype(str).tolist()
    lexical = bm25.search(queries, DEPTH)
    vectors = dense.encode_queries(queries)
    semantic = dense.search_vectors(vectors, DEPTH)
    union = [list(dict.fromkeys(p for p in (*lexical.ids[i], *semantic.ids[i]) if p != NO_ID))
             for i in range(len(queries))]
    sb = bm25.score_candidates(queries, union)
    sd = dense.score_candidates(queries, union, query_vectors=vectors)
    coverage = bm25.query_term_coverage(queries)
    features = np.zeros((len(queries), len(FEATURES)))
    for i, q in enumerate(queries):
        b, d = np.sort(np.asarray(sb[i], float))[::-1], np.sort(np.asarray(sd[i], float))[::-1]
        top_b, top_d = set(lexical.ids[i][:10]) - {NO_ID}, set(semantic.ids[i][:10]) - {NO_ID}
        features[i] = [b[0] if len(b) else 0.0, d[0] if len(d) else 0.0,
                       (b[0] - b[min(9, len(b) - 1)]) / b[0] if len(b) and b[0] > 0 else 0.0,
                       d[0] - d[min(9, len(d) - 1)] if len(d) else 0.0,
                       len(top_b & top_d) / 10, coverage[i], len(q.split())]
    qrels = data.judgments.qrels()
    grid = np.zeros((len(queries), len(WEIGHTS)))
    for k, w in enumerate(WEIGHTS):
        run = {}
        for i, q in enumerate(qids):
            s = (1 - w) * minmax(np.asarray(sb[i], float)) + w * minmax(np.asarray(sd[i], float))
            run[q] = [union[i][t] for t in np.argsort(-s, kind="stable")[:DEPTH]]
        grid[:, k] = per_query_metrics(run, qrels, data.scheme, metrics=["ndcg@10"], query_ids=qids)["ndcg@10"]
    return grid, features


def chosen(grid: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Each query's NDCG@10 at the grid weight nearest to its chosen weight."""
    col = np.abs(WEIGHTS[None, :] - weights[:, None]).argmin(axis=1)
    return grid[np.arange(len(grid)), col]


def versus_equal(grid: np.ndarray, picked: np.ndarray) -> dict[str, float]:
    equal = grid[:, list(WEIGHTS).index(0.5)]
    return {"ndcg@10": float(picked.mean()), "equal": float(equal.mean()),
            "gain_points": float(100 * (picked.mean() - equal.mean())),
            "p": float(paired_randomization_test(picked, equal))}


Sets = list[tuple[np.ndarray, np.ndarray]]  # (grid, features) per set of queries


def rule_scores(sets: Sets, column: int, slope: float, mu: np.ndarray, sd: np.ndarray) -> list[np.ndarray]:
    """Per-query NDCG@10 under ``w = clip(0.5 + slope * z(feature), 0.1, 0.9)``, z from the fit sets."""
    return [chosen(g, np.clip(0.5 + slope * (f[:, column] - mu[column]) / sd[column], 0.1, 0.9)) for g, f in sets]


def one_feature_rules(fit: Sets, test: Sets) -> dict:
    out = {}
    pooled = np.vstack([f for _, f in fit])
    mu, sd = pooled.mean(axis=0), pooled.std(axis=0) + 1e-12
    slopes = np.round(np.arange(-0.3, 0.301, 0.05), 2)
    for c, name in enumerate(FEATURES):
        best = max(slopes, key=lambda b: sum(float(x.mean()) for x in rule_scores(fit, c, b, mu, sd)))
        out[name] = {
            "slope": float(best),
            "fit": [versus_equal(g, x) for (g, _), x in zip(fit, rule_scores(fit, c, best, mu, sd), strict=True)],
            "test": [versus_equal(g, x) for (g, _), x in zip(test, rule_scores(test, c, best, mu, sd), strict=True)],
        }
    return out


def selector(fit: Sets, seed: int = 0):
    """A gradient-boosted model of NDCG@10 given (features, weight); a query gets its argmax weight."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    x = np.vstack([np.column_stack([np.repeat(f, len(WEIGHTS), 0), np.tile(WEIGHTS, len(f))]) for _, f in fit])
    y = np.concatenate([g.reshape(-1) for g, _ in fit])
    model = HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                          min_samples_leaf=200, random_state=seed).fit(x, y)

    def pick(features: np.ndarray) -> np.ndarray:
        xs = np.column_stack([np.repeat(features, len(WEIGHTS), 0), np.tile(WEIGHTS, len(features))])
        return WEIGHTS[model.predict(xs).reshape(len(features), len(WEIGHTS)).argmax(axis=1)]

    return pick


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fit", nargs=2, action="append", metavar=("MODEL", "JUDGMENTS"), required=True,
                    help="a model and judgments of queries it never saw (repeat: each is judged with rules "
                         "fitted on the others)")
    ap.add_argument("--dev", metavar="MODEL", help="judge the rules fitted on every --fit set on `dev` with this model")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    fit = [weight_grid(m, Path(j)) for m, j in args.fit]
    report: dict = {
        "benchmark": "homedepot_fusion_halves", "date": dt.date.today().isoformat(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "weights": WEIGHTS.tolist(), "features": list(FEATURES), "sets": {},
    }
    named = {f"fit{i}:{m}:{j}": s for i, ((m, j), s) in enumerate(zip(args.fit, fit, strict=True))}
    if args.dev:
        named[f"dev:{args.dev}"] = weight_grid(args.dev, DATA / "judgments_dev.csv")
    for name, (grid, _) in named.items():
        report["sets"][name] = {"queries": len(grid), "by_weight": grid.mean(axis=0).round(4).tolist(),
                                "oracle": float(grid.max(axis=1).mean())}
    transfers = []
    for i, (grid, features) in enumerate(fit):
        others = [s for k, s in enumerate(fit) if k != i]
        if others:
            transfers.append({"judged_on": f"fit{i}", "selector": versus_equal(grid, chosen(grid, selector(others)(features)))})
    report["selector_across_halves"] = transfers
    test = [named[f"dev:{args.dev}"]] if args.dev else []
    report["one_feature_rules"] = one_feature_rules(fit, test)
    if args.dev:
        grid, features = named[f"dev:{args.dev}"]
        report["selector_on_dev"] = versus_equal(grid, chosen(grid, selector(fit)(features)))
    for name, s in report["sets"].items():
        print(f"{name}: best fixed weight {WEIGHTS[int(np.argmax(s['by_weight']))]:.2f}, "
              f"0.50 -> {s['by_weight'][list(WEIGHTS).index(0.5)]:.4f}, per-query oracle {s['oracle']:.4f}")
    for t in transfers:
        print(f"selector judged on {t['judged_on']}: {t['selector']['gain_points']:+.2f} points (p {t['selector']['p']:.3f})")
    for name, r in report["one_feature_rules"].items():
        fits = " ".join(f"{x['gain_points']:+.2f}" for x in r["fit"])
        tests = " ".join(f"{x['gain_points']:+.2f} (p {x['p']:.3f})" for x in r["test"])
        print(f"rule on {name:10s} slope {r['slope']:+.2f}: fit sets {fits}; dev {tests}")
    if args.dev:
        s = report["selector_on_dev"]
        print(f"selector fitted on every fit set, judged on dev: {s['gain_points']:+.2f} points (p {s['p']:.3f})")
    if args.out:
        atomic_write_text(args.out, json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
