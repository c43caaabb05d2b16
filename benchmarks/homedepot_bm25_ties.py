"""How much of BM25's figure on Home Depot `dev` is the order of tied scores?

    .venv/bin/python benchmarks/homedepot_bm25_ties.py [--permutations 20] [--out F]

BM25 gives many products of a short title the same score, so where a tie group crosses rank 10 or
100, which of them a run lists decides part of NDCG@10 and Recall@100. shopsearch breaks ties by
catalogue order (``retrieval.bm25.top_k``); the reference run in ``reference/bm25_dev.run.gz`` (bm25s,
the same index) leaves them to ``argpartition``. This scores, on the full corpus and the protocol of
the data's README:

- ``bm25:catalogue``: shopsearch's BM25 as ``eval`` runs it;
- ``bm25:reference``: the reference run (the issue's "BM25 ≈ 0.364 / ≈ 0.747");
- ``bm25:random-ties``: the expected figure when ties are ordered at random (McSherry and Najork,
  ECIR 2008, "Computing information retrieval performance measures efficiently in the presence of tied
  scores"), each query's metric averaged over ``--permutations`` seeded shuffles of its tie groups.

It also counts the queries whose rank-10 or rank-100 cut splits a tie group, and the share of the
judged and of the relevant `dev` products in the first half of the catalogue: catalogue order can
only beat random tie orders if the order of the ids says something about the labels. ``--out`` writes the
three systems' per-query figures in the evaluation report's shape, so ``paired_runs.py F MODEL.json
--systems bm25:random-ties hybrid:w0.50:union`` tests a model against either BM25.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pandas as pd

from shopsearch.artifacts import atomic_write_text
from shopsearch.data import load_dataset
from shopsearch.data.render import ProductTextRenderer
from shopsearch.eval import per_query_metrics, read_trec_run
from shopsearch.retrieval.bm25 import BM25Retriever, top_k

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "home-depot"
METRICS = ["ndcg@10", "recall@100", "map@10", "mrr@10"]
DEPTH = 100


def shuffled_top(scores: np.ndarray, order: np.ndarray, k: int) -> np.ndarray:
    """Rows of the ``k`` best positive ``scores``, ties ordered as the rows appear in ``order`` (a
    random permutation): shopsearch's own selection (ties by position) run on the permuted scores."""
    return order[top_k(scores[order], k, positive_only=True)[0]]


def split_ties(scores: np.ndarray, cuts: Sequence[int]) -> list[bool]:
    """For each rank ``cut``: whether the positive score there is shared by a product ranked below it."""
    values = np.sort(scores[scores > 0])[::-1]
    return [len(values) > cut and values[cut - 1] == values[cut] for cut in cuts]


def first_half_share(positions: np.ndarray, n_products: int) -> float:
    """Share of the distinct catalogue ``positions`` that lie in the catalogue's first half."""
    return float((np.unique(positions) < n_products / 2).mean()) if len(positions) else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--permutations", type=int, default=20, help="seeded random tie orders to average over")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    dev = load_dataset(catalog=args.data / "products.csv", judgments=args.data / "judgments_dev.csv",
                       format="homedepot")
    ids = dev.catalog.ids
    bm25 = BM25Retriever(ids, ProductTextRenderer(fields=("title",)).render(dev.catalog))
    qids = dev.queries.df["query_id"].astype(str).tolist()
    texts = dev.queries.df["text"].fillna("").astype(str).tolist()
    qrels = dev.judgments.qrels()
    scheme = dev.judgments.scheme

    def frame(run: dict[str, list[str]]) -> pd.DataFrame:
        return per_query_metrics(run, qrels, scheme, METRICS, query_ids=qids)

    catalogue = bm25.search(texts, DEPTH)
    systems = {
        "bm25:catalogue": frame({q: catalogue.row(i)[0] for i, q in enumerate(qids)}),
        "bm25:reference": frame(read_trec_run(args.data / "reference" / "bm25_dev.run.gz")),
    }
    rng = np.random.default_rng(args.seed)
    # argsort of a random permutation: the rows in the order of their random keys
    orders = [np.argsort(rng.permutation(len(ids))) for _ in range(args.permutations)]
    runs: list[dict[str, list[str]]] = [{} for _ in orders]
    splits = {10: 0, 100: 0}
    for start in range(0, len(texts), 64):
        block = bm25.score_matrix(texts[start:start + 64], np.arange(len(ids)))
        for offset, scores in enumerate(block):
            q = qids[start + offset]
            for cut, split in zip(splits, split_ties(scores, list(splits)), strict=True):
                splits[cut] += int(split)
            for run, order in zip(runs, orders, strict=True):
                run[q] = [str(p) for p in ids[shuffled_top(scores, order, DEPTH)]]
    shuffles = [frame(run) for run in runs]
    systems["bm25:random-ties"] = sum(shuffles[1:], shuffles[0]) / len(shuffles)
    overall = {name: {m: float(f[m].mean()) for m in METRICS} for name, f in systems.items()}
    spread = {m: [float(f[m].mean()) for f in shuffles] for m in METRICS}

    for name, figures in overall.items():
        print(f"{name:18s} " + "  ".join(f"{m} {v:.4f}" for m, v in figures.items()))
    for m in ("ndcg@10", "recall@100"):
        s = np.array(spread[m])
        print(f"random tie orders, {m}: mean {s.mean():.4f}, sd {s.std(ddof=1):.4f}, "
              f"range {s.min():.4f}..{s.max():.4f} over {len(s)} permutations")
    print(f"queries whose cut splits a tie group: rank 10 {splits[10]}, rank 100 {splits[100]} of {len(qids)}")
    judged = dev.judgments.df
    position = pd.Series(np.arange(len(ids)), index=pd.Index(ids).astype(str))
    first_half = {
        "judged": first_half_share(position[judged["product_id"].astype(str)].to_numpy(), len(ids)),
        "relevant": first_half_share(
            position[judged.loc[judged["grade"] >= scheme.relevant_min, "product_id"].astype(str)].to_numpy(), len(ids)),
    }
    print(f"share in the catalogue's first half: judged dev products {first_half['judged']:.3f}, "
          f"relevant ones {first_half['relevant']:.3f} (0.5 if the order said nothing)")
    if args.out:
        report = {
            "dataset": {"name": "home-depot", "split": "dev", "products": len(ids), "queries": len(qids)},
            "permutations": args.permutations,
            "seed": args.seed,
            "queries_with_split_ties": {f"rank_{c}": n for c, n in splits.items()},
            "first_half_share": first_half,
            "random_ties_overall_by_permutation": spread,
            "systems": {
                name: {
                    "metrics": overall[name],
                    "per_query": {q: {m: (None if pd.isna(v) else float(v)) for m, v in row.items()}
                                  for q, row in f.iterrows()},
                }
                for name, f in systems.items()
            },
        }
        atomic_write_text(args.out, json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
