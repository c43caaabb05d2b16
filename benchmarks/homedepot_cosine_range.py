"""The scale of ``stage1.bm25_prior``: how wide a trained model's cosines spread over what the hybrid fuses.

The served hybrid min-max normalises both scores over the union of the two top-k lists and adds them
with equal weights, which ranks like ``cos + R * bm25 / max_bm25``, R the query's cosine range
(max - min) over that union (BM25's minimum over the union is about 0: the dense list brings
products without a query term). So R is the weight BM25 carries in cosine units, and
``bm25_prior`` is set against it (docs/training.md):

    .venv/bin/python benchmarks/homedepot_cosine_range.py runs/hd/stage2/model [--out F]

Product vectors are cached beside the model, as by ``homedepot_model_dev.py``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
from homedepot_model_dev import DATA, cached_product_vectors

from shopsearch.artifacts import atomic_write_text
from shopsearch.data import load_dataset
from shopsearch.data.render import ProductTextRenderer
from shopsearch.retrieval.base import NO_ID
from shopsearch.retrieval.bm25 import BM25Retriever
from shopsearch.retrieval.dense import DenseRetriever
from shopsearch.retrieval.encoder import SentenceEncoder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="encoder directory (RUN/stage2/model)")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--split", choices=["dev", "train"], default="dev")
    ap.add_argument("--k", type=int, default=100, help="depth of each list (the hybrid's default: 100)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    data = load_dataset(catalog=args.data / "products.csv", judgments=args.data / f"judgments_{args.split}.csv",
                        format="homedepot")
    texts = ProductTextRenderer(fields=("title",)).render(data.catalog)
    ids = data.catalog.ids
    encoder = SentenceEncoder(args.model)
    dense = DenseRetriever(encoder, ids, cached_product_vectors(encoder, args.model, texts))
    bm25 = BM25Retriever(ids, texts)
    queries = data.queries.df["text"].fillna("").astype(str).tolist()
    lists = [r.ids for r in (dense.search(queries, args.k), bm25.search(queries, args.k))]
    unions = [sorted({p for lst in lists for p in lst[i] if p != NO_ID}) for i in range(len(queries))]
    cosines = dense.score_candidates(queries, unions)
    ranges = np.array([float(c.max() - c.min()) for c in cosines])
    summary = {
        "model": args.model, "split": args.split, "k": args.k, "queries": len(queries),
        "cosine_range_median": float(np.median(ranges)), "cosine_range_mean": float(ranges.mean()),
        "cosine_range_p10": float(np.percentile(ranges, 10)), "cosine_range_p90": float(np.percentile(ranges, 90)),
        "union_size_median": float(np.median([len(u) for u in unions])),
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        atomic_write_text(args.out, json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
