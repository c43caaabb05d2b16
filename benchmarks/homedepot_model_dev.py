"""One trained encoder on Home Depot `dev`, full corpus: dense, and hybrids with BM25 over a fusion sweep.

The quick check behind every recipe decision of issue 3 (tune on `dev`, never on `test`):

    .venv/bin/python benchmarks/homedepot_model_dev.py runs/hd/model [--out runs/hd/dev_eval.json]

Product vectors are cached beside the model (``dev_product_vectors.npy``). Prints NDCG@10 /
Recall@100 / MAP@10 of the dense model, of RRF fusion and of min-max (with --zscore also z-score)
weighted fusion at each dense weight of the sweep, with the paired randomisation p-value of each
hybrid against BM25. ``--coverage`` adds the per-query coverage weighting (``hybrid:coverage``).
``--by-unseen-words`` also splits NDCG@10 by whether the query holds a word that
no product title contains (29% of `dev`: misspellings, joined words, unknown brands).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import pandas as pd

from shopsearch.artifacts import atomic_write_text
from shopsearch.data import load_dataset
from shopsearch.data.render import ProductTextRenderer
from shopsearch.eval.protocols import evaluate
from shopsearch.retrieval.bm25 import BM25Retriever
from shopsearch.retrieval.dense import DenseRetriever
from shopsearch.retrieval.encoder import SentenceEncoder
from shopsearch.retrieval.fusion import HybridRetriever

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "home-depot"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="encoder directory (RUN/model), or 'bundled' for all-MiniLM-L6-v2")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--split", choices=["dev", "train"], default="dev",
                    help="queries to judge on; train only for a model that never saw them (the off-the-shelf one)")
    ap.add_argument("--judgments", type=Path, default=None,
                    help="judge on this judgments file instead of the split's (e.g. a half of train from "
                         "homedepot_query_halves.py)")
    ap.add_argument("--weights", type=float, nargs="*", default=[0.3, 0.4, 0.5, 0.6, 0.7])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--rescore-union", action="store_true",
                    help="also fuse over the union of both lists with exact scores (HybridRetriever's default)")
    ap.add_argument("--coverage", action="store_true",
                    help="also fuse over the union with BM25's weight scaled per query by the share of the query's "
                         "words its vocabulary holds (HybridRetriever(weighting='coverage'), hybrid:coverage)")
    ap.add_argument("--zscore", action="store_true", help="also fuse z-scored instead of min-max normalised scores")
    ap.add_argument("--by-unseen-words", action="store_true",
                    help="also split NDCG@10 by whether the query holds a word no product title contains "
                         "(misspellings, joined words)")
    args = ap.parse_args()

    dev = load_dataset(catalog=args.data / "products.csv", judgments=args.judgments or args.data / f"judgments_{args.split}.csv",
                       format="homedepot")
    texts = ProductTextRenderer(fields=("title",)).render(dev.catalog)
    ids = dev.catalog.ids
    model = None if args.model == "bundled" else args.model
    encoder = SentenceEncoder(model)
    vectors = cached_product_vectors(encoder, model, texts)
    bm25 = BM25Retriever(ids, texts)
    dense = DenseRetriever(encoder, ids, vectors)
    systems = {"bm25": bm25, "dense": dense,
               "hybrid:rrf": HybridRetriever([bm25, dense], method="rrf", rescore_union=False)}
    for w in args.weights:
        systems[f"hybrid:w{w:.2f}"] = HybridRetriever([bm25, dense], weights=[1 - w, w], rescore_union=False)
        if args.rescore_union:
            systems[f"hybrid:w{w:.2f}:union"] = HybridRetriever([bm25, dense], weights=[1 - w, w])
        if args.coverage:
            systems[f"hybrid:w{w:.2f}:coverage"] = HybridRetriever(
                [bm25, dense], weights=[1 - w, w], weighting="coverage")
        if args.zscore:
            for union in (False, True) if args.rescore_union else (False,):
                systems[f"hybrid:w{w:.2f}:z{':union' if union else ''}"] = HybridRetriever(
                    [bm25, dense], weights=[1 - w, w], normalization="zscore", rescore_union=union)
    if args.rescore_union:
        systems["hybrid:rrf:union"] = HybridRetriever([bm25, dense], method="rrf")
    report = evaluate(systems, dev.queries, dev.judgments, baseline="bm25", show_progress=False)
    full = report.to_dict()
    for name, info in full["systems"].items():
        m = info["metrics"]
        p = next((c["p_value"] for c in full["comparisons"]  # the overall scope comes first
                  if c["system"] == name and c["metric"] == "ndcg@10"), None)
        print(f"{name:20s} ndcg@10 {m['ndcg@10']:.4f}  R@100 {m['recall@100']:.4f}  map@10 {m['map@10']:.4f}"
              + (f"  p(ndcg vs bm25) {p:.2g}" if p is not None else ""))
    if args.coverage:
        covered = bm25.query_term_coverage(dev.queries.df["text"].fillna("").astype(str).tolist())
        print(f"queries with a term (stop words removed, stemmed) BM25's vocabulary lacks: "
              f"{int((covered < 1).sum())} of {len(covered)}")
    if args.by_unseen_words:
        unseen = queries_with_unseen_words(dev.queries, texts)
        print(f"queries with a word no title contains: {int(unseen.sum())} of {len(unseen)}")
        for name in systems:
            ndcg = report.per_query[name]["ndcg@10"]
            flag = unseen.reindex(ndcg.index.astype(str)).fillna(False).to_numpy(dtype=bool)
            print(f"{name:20s} ndcg@10 with unseen words {ndcg[flag].mean():.4f}  without {ndcg[~flag].mean():.4f}")
    if args.out:
        atomic_write_text(args.out, json.dumps(full, indent=2, default=float))


def cached_product_vectors(encoder: SentenceEncoder, model: str | None, texts: list[str]) -> np.ndarray:
    """The products encoded by ``model``, cached beside it as ``dev_product_vectors.npy`` (the bundled
    model, ``None``, is not cached)."""
    cache = None if model is None else Path(model) / ".." / "dev_product_vectors.npy"
    if cache is not None and cache.is_file():
        return np.load(cache)
    vectors = encoder.encode(texts, show_progress=True)
    if cache is not None:
        np.save(cache, vectors)
    return vectors


def queries_with_unseen_words(queries, titles: list[str]) -> pd.Series:
    """query_id -> True when a lower-cased alphanumeric word of the query occurs in no title."""
    word = re.compile(r"[a-z0-9]+")
    vocabulary = {w for t in titles for w in word.findall(t.lower())}
    df = queries.df
    texts = pd.Series(df["text"].fillna("").astype(str).to_numpy(), index=df["query_id"].astype(str))
    return texts.map(lambda q: any(w not in vocabulary for w in word.findall(q.lower()))).astype(bool)


if __name__ == "__main__":
    main()
