"""Query spelling correction on Home Depot: each system with and without ``+spell``, paired tests.

    .venv/bin/python benchmarks/homedepot_spelling.py runs/hd-v4/run/stage2/model          # dev
    .venv/bin/python benchmarks/homedepot_spelling.py --split train --bm25-only            # a check on train

Systems: BM25, the dense model given, and the default hybrid of the two (equal-weight min-max over
the rescored union), each as typed and behind :class:`~shopsearch.retrieval.spelling.CatalogSpellCorrector`
(built from the same product titles). Every ``+spell`` system is tested against itself without
correction; dense and hybrid, each way, also against BM25 as typed and against ``bm25+spell`` (the
gain over a BM25 that corrects spelling too). The corrector's settings were fixed by looking at `train` queries (``--split
train --bm25-only``: the dense model was trained on those); `dev` is reported, never tuned on.
Product vectors are cached beside the model (``dev_product_vectors.npy``, as
``homedepot_model_dev.py`` does). Writes ``benchmarks/results/homedepot_spelling[_SPLIT].json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from homedepot_model_dev import cached_product_vectors, queries_with_unseen_words

from shopsearch.artifacts import atomic_write_text
from shopsearch.data import load_dataset
from shopsearch.data.render import ProductTextRenderer
from shopsearch.eval.protocols import evaluate
from shopsearch.eval.significance import paired_bootstrap_ci, paired_randomization_test
from shopsearch.retrieval.base import Retriever
from shopsearch.retrieval.bm25 import BM25Retriever
from shopsearch.retrieval.dense import DenseRetriever
from shopsearch.retrieval.encoder import SentenceEncoder
from shopsearch.retrieval.fusion import HybridRetriever
from shopsearch.retrieval.spelling import CatalogSpellCorrector, SpellCorrectedRetriever

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "home-depot"
METRICS = ("ndcg@10", "recall@100", "map@10")


def paired(per_query: dict[str, Any], system: str, against: str, metric: str = "ndcg@10") -> dict[str, float]:
    a = per_query[system][metric].to_numpy(dtype=float)
    b = per_query[against][metric].to_numpy(dtype=float)
    delta, low, high = paired_bootstrap_ci(a, b)
    return {"system": system, "against": against, "metric": metric, "delta": delta,
            "ci95": [float(low), float(high)], "p_value": paired_randomization_test(a, b)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default=None, help="encoder directory (RUN/model); not needed with --bm25-only")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--split", default="dev", choices=["dev", "train"])
    ap.add_argument("--bm25-only", action="store_true", help="BM25 with and without correction only")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.model is None and not args.bm25_only:
        ap.error("give a model directory, or --bm25-only")

    data = load_dataset(catalog=args.data / "products.csv", judgments=args.data / f"judgments_{args.split}.csv",
                        format="homedepot")
    texts = ProductTextRenderer(fields=("title",)).render(data.catalog)
    ids = data.catalog.ids
    started = time.perf_counter()
    corrector = CatalogSpellCorrector(texts)
    build_seconds = time.perf_counter() - started
    query_texts = data.queries.texts
    started = time.perf_counter()
    corrections = [corrector.explain(q) for q in query_texts]
    correct_seconds = time.perf_counter() - started

    bm25 = BM25Retriever(ids, texts)
    systems: dict[str, Retriever] = {"bm25": bm25}
    if not args.bm25_only:
        encoder = SentenceEncoder(args.model)
        dense = DenseRetriever(encoder, ids, cached_product_vectors(encoder, args.model, texts))
        systems.update({"dense": dense, "hybrid": HybridRetriever([bm25, dense])})
    for name in list(systems):
        systems[f"{name}+spell"] = SpellCorrectedRetriever(systems[name], corrector)
    report = evaluate(systems, data.queries, data.judgments, baseline="bm25", show_progress=False)
    full = report.to_dict()

    unseen = queries_with_unseen_words(data.queries, texts)
    tests = [paired(report.per_query, f"{n}+spell", n) for n in systems if not n.endswith("+spell")]
    if "hybrid" in systems:
        tests += [paired(report.per_query, system, against) for system, against in (
            ("hybrid", "bm25"), ("hybrid+spell", "bm25"), ("hybrid+spell", "bm25+spell"),
            ("dense", "bm25"), ("dense+spell", "bm25"), ("dense+spell", "bm25+spell"))]
    results: dict[str, Any] = {
        "benchmark": "homedepot_spelling", "date": dt.date.today().isoformat(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "split": args.split, "model": args.model, "queries": len(query_texts),
        "queries_with_unseen_words": int(unseen.sum()),
        "queries_changed": sum(c.changed for c in corrections),
        "corrector": {"vocabulary": corrector.vocabulary_size, "min_length": corrector.min_length,
                      "max_edit_distance": corrector.max_edit_distance,
                      "english_min_count": corrector.english_min_count,
                      "build_seconds": round(build_seconds, 2),
                      "queries_per_second": round(len(query_texts) / max(correct_seconds, 1e-9))},
        "systems": {n: {m: full["systems"][n]["metrics"][m] for m in METRICS} for n in systems},
        "by_unseen_words": {},
        "paired_tests": tests,
        "examples": [[c.original, c.corrected] for c in corrections if c.changed][:40],
    }
    for name in systems:
        ndcg = report.per_query[name]["ndcg@10"]
        flag = unseen.reindex(ndcg.index.astype(str)).fillna(False).to_numpy(dtype=bool)
        results["by_unseen_words"][name] = {"with": float(ndcg[flag].mean()), "without": float(ndcg[~flag].mean())}

    print(f"{args.split}: {results['queries_changed']} of {len(query_texts)} queries changed; corrector "
          f"{corrector.vocabulary_size} words, built in {build_seconds:.1f} s, "
          f"{results['corrector']['queries_per_second']} queries/s")
    for name, m in results["systems"].items():
        split = results["by_unseen_words"][name]
        print(f"{name:14s} ndcg@10 {m['ndcg@10']:.4f}  R@100 {m['recall@100']:.4f}  map@10 {m['map@10']:.4f}"
              f"  (unseen-word queries {split['with']:.4f}, rest {split['without']:.4f})")
    for t in tests:
        print(f"{t['system']} vs {t['against']}: {100 * t['delta']:+.2f} points NDCG@10, "
              f"95% CI {100 * t['ci95'][0]:+.2f}..{100 * t['ci95'][1]:+.2f}, p {t['p_value']:.2g}")
    out = args.out or HERE / "results" / f"homedepot_spelling{'' if args.split == 'dev' else '_' + args.split}.json"
    atomic_write_text(out, json.dumps(results, indent=2, default=float))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
