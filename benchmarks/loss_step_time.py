"""Time per training step: masked InfoNCE + ROAR against plain InfoNCE at the same batch (issue 3).

Also times the default stage-2 loss, ROAR with the BM25 logit prior (``stage2.bm25_prior``): its
prior is scored per step by BM25 over the catalogue's titles, so that cost is inside the step.

Every loss sees exactly the same texts each step — B queries and G products per query (Home Depot
dev queries with their judged products when ../shared/data/home-depot is there, else the demo
shop) — so the figures differ only by the loss: encoding both towers, the loss, backward and one
AdamW step of all-MiniLM-L6-v2. Losses run round-robin within each round, so drift in the
machine's speed hits them alike; the median over rounds is reported, plus the loss computation
alone on fixed embeddings (the part the losses really differ in).

    .venv/bin/python benchmarks/loss_step_time.py                 # B=64, G=4, 12 timed rounds
    .venv/bin/python benchmarks/loss_step_time.py --batch 32 --docs 8 --rounds 20

Writes benchmarks/results/loss_step_time.json. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import pandas as pd
import torch

from shopsearch.artifacts import atomic_write_text
from shopsearch.models import EncoderConfig, build_siamese_encoder
from shopsearch.retrieval.bm25 import BM25Retriever
from shopsearch.training.lexical_prior import LexicalPrior
from shopsearch.training.losses import InfoNCELoss, MaskedInfoNCELoss, RoarLoss

HERE = Path(__file__).resolve().parent
HD = HERE.parent.parent / "shared" / "data" / "home-depot"


Batch = tuple[list[str], list[list[str]], list[list[int]], list[list[int]]]


def batches(n_batches: int, batch: int, docs: int, seed: int) -> tuple[list[Batch], pd.Series]:
    """(queries, docs per query, grades per query, catalogue rows per query) per batch, and the
    catalogue's titles (indexed by product id, in row order); grades are the judged ones."""
    if (HD / "judgments_dev.csv").is_file():
        titles = pd.read_csv(HD / "products.csv", dtype=str).set_index("product_id")["title"].fillna("")
        j = pd.read_csv(HD / "judgments_dev.csv", dtype={"product_id": str})
        j["grade"] = np.rint(3 * (j["relevance"] - 1)).astype(int)
    else:
        from shopsearch.data.demo import generate_demo_shop

        shop = generate_demo_shop()
        titles = shop.catalog.df.set_index("product_id")["title"].fillna("")
        j = shop.judgments.df.merge(shop.queries.df.rename(columns={"text": "query"}), on="query_id")
    j["text"] = j["product_id"].map(titles)
    j["row"] = titles.index.get_indexer(j["product_id"])
    groups = [
        g.sort_values("grade", ascending=False) for _, g in j.dropna(subset=["text"]).groupby("query_id")
    ]
    groups = [g for g in groups if len(g) >= docs and g["grade"].nunique() >= 2]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        pick = rng.choice(len(groups), size=batch, replace=False)
        chosen = [groups[i].head(docs) for i in pick]
        out.append(
            (
                [str(g["query"].iloc[0]) for g in chosen],
                [g["text"].astype(str).tolist() for g in chosen],
                [g["grade"].astype(int).tolist() for g in chosen],
                [g["row"].astype(int).tolist() for g in chosen],
            )
        )
    return out, titles


def features(model: Any, texts: list[str]) -> dict[str, torch.Tensor]:
    return {k: v.to(model.device) for k, v in model.tokenize(texts).items() if isinstance(v, torch.Tensor)}


def batch_labels(
    loss: torch.nn.Module, data: Batch, graded: bool, query_index: dict[str, int]
) -> torch.Tensor | None:
    """The loss's labels: none, the grades, or (under a prior) the grades, the query index, the catalogue rows."""
    queries, _, grades, rows = data
    if getattr(loss, "prior", None) is not None:
        return torch.tensor([[*g, query_index[q], *r] for g, q, r in zip(grades, queries, rows, strict=True)])
    return torch.tensor(grades) if graded else None


def step(
    model: Any,
    loss: torch.nn.Module,
    opt: torch.optim.Optimizer,
    data: Batch,
    graded: bool,
    query_index: dict[str, int],
) -> float:
    queries, docs, _, _ = data
    columns = [queries] + [[d[i] for d in docs] for i in range(len(docs[0]))]
    feats = [features(model, col) for col in columns]
    labels = batch_labels(loss, data, graded, query_index)
    start = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    value = loss(feats, labels)
    value.backward()
    opt.step()
    return time.perf_counter() - start


def loss_only(
    loss: torch.nn.Module, labels: torch.Tensor | None, batch: int, docs: int, dim: int, repeats: int = 50
) -> float:
    """Median seconds of the loss forward + backward on fixed random embeddings, with the first
    batch's labels (so a prior is scored as in a step)."""
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(batch, dim, generator=gen, requires_grad=True)
    d = [torch.randn(batch, dim, generator=gen, requires_grad=True) for _ in range(docs)]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loss.compute_loss_from_embeddings([q, *d], labels).backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64, help="queries per step")
    ap.add_argument("--docs", type=int, default=4, help="products per query (positive + others)")
    ap.add_argument("--rounds", type=int, default=12, help="timed rounds (each runs every loss once)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "loss_step_time.json")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    model = build_siamese_encoder(EncoderConfig(device="cpu"))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-9)  # a real optimizer step; lr ~0 keeps the model fixed
    losses: dict[str, tuple[torch.nn.Module, bool]] = {
        "infonce": (InfoNCELoss(model, tau=0.05), False),
        "masked_infonce": (MaskedInfoNCELoss(model, tau=0.02, delta=0.1), False),
        "masked_infonce+roar": (RoarLoss(model, tau=0.02, delta=0.1, tau_a=0.01, beta=0.1), True),
    }
    data, titles = batches(args.rounds + args.warmup, args.batch, args.docs, args.seed)
    queries = sorted({q for batch in data for q in batch[0]})
    query_index = {q: i for i, q in enumerate(queries)}
    prior = LexicalPrior(BM25Retriever(titles.index.tolist(), titles.tolist()), queries, weight=0.3)
    losses["masked_infonce+roar+bm25_prior"] = (
        RoarLoss(model, tau=0.02, delta=0.1, tau_a=0.01, beta=0.1, prior=prior),
        True,
    )
    times: dict[str, list[float]] = {name: [] for name in losses}
    for r, batch in enumerate(data):
        order = list(losses) if r % 2 == 0 else list(reversed(losses))  # no loss always goes first
        for name in order:
            loss, graded = losses[name]
            seconds = step(model, loss, opt, batch, graded, query_index)
            if r >= args.warmup:
                times[name].append(seconds)
        print(
            f"round {r + 1}/{len(data)}: " + ", ".join(f"{n} {times[n][-1]:.2f}s" for n in losses if times[n])
        )

    dim = model.get_sentence_embedding_dimension()
    base = statistics.median(times["infonce"])
    result: dict[str, Any] = {
        "benchmark": "loss_step_time",
        "date": dt.date.today().isoformat(),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "model": "all-MiniLM-L6-v2 (bundled)",
        "data": "home-depot dev judgments" if (HD / "judgments_dev.csv").is_file() else "demo shop",
        "batch_queries": args.batch,
        "docs_per_query": args.docs,
        "texts_per_step": args.batch * (1 + args.docs),
        "rounds": args.rounds,
        "losses": {
            name: {
                "step_seconds_median": statistics.median(ts),
                "step_seconds_mean": statistics.fmean(ts),
                "step_seconds_min": min(ts),
                "relative_to_infonce": statistics.median(ts) / base,
                "loss_only_seconds_median": loss_only(
                    losses[name][0],
                    batch_labels(losses[name][0], data[0], losses[name][1], query_index),
                    args.batch,
                    args.docs,
                    dim,
                ),
            }
            for name, ts in times.items()
        },
    }
    result["overhead_masked_roar_vs_infonce"] = (
        result["losses"]["masked_infonce+roar"]["relative_to_infonce"] - 1
    )
    result["overhead_masked_roar_bm25_prior_vs_infonce"] = (
        result["losses"]["masked_infonce+roar+bm25_prior"]["relative_to_infonce"] - 1
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    for name, r in result["losses"].items():
        print(
            f"{name:32s} step {r['step_seconds_median']:.3f}s ({r['relative_to_infonce']:.3f}x)  "
            f"loss alone {1000 * r['loss_only_seconds_median']:.2f} ms"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
