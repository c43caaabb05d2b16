"""Larger in-batch contrast at equal wall time: stage 1 at batch 64 / 256 / 1,024 with gradient caching.

In-batch negatives scale with the batch (Flipkart trains at 8,192 across devices); on a CPU the
question is whether a larger batch beats more steps of a small one in the same time. Each batch
size trains stage 1 of the default recipe (``stage1.mini_batch_size`` rows per cached mini-batch
above it; ``training.losses.cached``) for as many steps as fit ``--budget-seconds`` of training at
its measured step time (so its learning-rate schedule ends where its budget does), from the
bundled MiniLM, at the default learning rate. Every model is evaluated on Home Depot `dev` over the
full catalogue (dense, and the default hybrid with BM25), each tested against the smallest batch.

    .venv/bin/python benchmarks/homedepot_gradcache.py --budget-seconds 600 --batches 64 256 1024
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

import numpy as np

from shopsearch.artifacts import atomic_write_text
from shopsearch.data import load_dataset
from shopsearch.data.render import ProductTextRenderer
from shopsearch.eval.pipeline import term_idf
from shopsearch.eval.protocols import evaluate
from shopsearch.eval.significance import holm, paired_bootstrap_ci, paired_randomization_test
from shopsearch.hardware import cpu_info
from shopsearch.retrieval.bm25 import BM25Retriever
from shopsearch.retrieval.dense import DenseRetriever
from shopsearch.retrieval.encoder import SentenceEncoder
from shopsearch.retrieval.fusion import HybridRetriever
from shopsearch.training.config import TrainConfig
from shopsearch.training.trainer import train

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "home-depot"


def step_seconds(batch: int, mini: int | None, titles: list[str], queries: list[str], steps: int = 3,
                 base_model: str | None = None) -> float:
    """Seconds of one stage-1 optimiser step at this batch (query, positive, negative columns of real
    text), after one warm-up step."""
    import torch

    from shopsearch.models.siamese import build_siamese_encoder
    from shopsearch.training.trainer import _loss

    cfg = TrainConfig.model_validate({"stage1": {"batch_size": batch, "mini_batch_size": mini},
                                      "encoder": {"base_model": base_model}})
    model = build_siamese_encoder(cfg.encoder)
    model.train()
    loss_fn = _loss(cfg, "1", model)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-6)
    rng = np.random.default_rng(0)
    times = []
    for i in range(steps + 1):
        rows = rng.choice(len(queries), size=batch)
        negatives = rng.choice(len(titles), size=batch)
        columns = [[queries[r] for r in rows], [titles[r] for r in rows], [titles[r] for r in negatives]]
        started = time.perf_counter()
        features = [dict(model.preprocess(c)) for c in columns]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.mixed_precision != "no" and _bf16()):
            loss = loss_fn(features, None)
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
        if i:
            times.append(time.perf_counter() - started)
    return float(np.median(times))


def _bf16() -> bool:
    from shopsearch.training.trainer import use_bf16

    return use_bf16("auto", cuda=False)


def train_stage1_for(budget_seconds: float, run: Path, train_set: Any, dev_set: Any, titles: list[str],
                     batch: int = 64, mini: int | None = None, base_model: str | None = None) -> dict[str, Any]:
    """Stage 1 of the default recipe for as many steps as fit ``budget_seconds`` at the measured step
    time (so the learning-rate schedule ends with the budget), into ``run``; reused when ``run``
    already holds a finished model. Returns the probe, the steps and seconds trained, the dev pool."""
    if not (run / "manifest.json").is_file():
        queries = train_set.queries.df["text"].astype(str).tolist()
        per_step = step_seconds(batch, mini, titles, queries, base_model=base_model)
        steps = max(1, int(budget_seconds / per_step))
        print(f"{run.name}: {per_step:.2f} s/step -> {steps} steps")
        cfg = TrainConfig.model_validate({"stage": "1", "max_steps": steps, "save_steps": max(steps // 2, 1),
                                          "stage1": {"batch_size": batch, "mini_batch_size": mini},
                                          "encoder": {"base_model": base_model}})
        run.mkdir(parents=True, exist_ok=True)
        (run / "probe.json").write_text(json.dumps({"seconds_per_step": per_step, "steps": steps}))
        train(train_set, cfg, run, dev_set=dev_set)
    stage = json.loads((run / "manifest.json").read_text())["stages"]["1"]
    return {**json.loads((run / "probe.json").read_text()), "trained_steps": stage["steps"],
            "train_seconds": stage["seconds"], "dev_pool": stage.get("dev_final")}


def cached_vectors(encoder: SentenceEncoder, texts: list[str], cache: Path) -> tuple[np.ndarray, float | None]:
    """The catalogue's vectors, encoded once and kept in ``cache``; the encoding seconds when this
    call encoded them (None when they came from the cache)."""
    if cache.is_file():
        return np.load(cache), None
    started = time.perf_counter()
    vectors = encoder.encode(texts, show_progress=True)
    seconds = time.perf_counter() - started
    np.save(cache, vectors)
    return vectors, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--work", type=Path, default=Path("runs/gradcache"))
    ap.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024])
    ap.add_argument("--mini-batch-size", type=int, default=64, help="rows per cached mini-batch (above it only)")
    ap.add_argument("--budget-seconds", type=float, default=600.0, help="training seconds of every batch size")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "homedepot_gradcache_dev.json")
    args = ap.parse_args()

    catalog = args.data / "products.csv"
    train_set = load_dataset(catalog=catalog, judgments=args.data / "judgments_train.csv", format="homedepot")
    dev_set = load_dataset(catalog=catalog, judgments=args.data / "judgments_dev.csv", format="homedepot")
    texts = ProductTextRenderer(fields=("title",)).render(dev_set.catalog)
    ids = dev_set.catalog.ids
    bm25 = BM25Retriever(ids, texts)
    runs: dict[str, dict[str, Any]] = {}
    systems: dict[str, Any] = {"bm25": bm25}
    for batch in args.batches:
        mini = args.mini_batch_size if batch > args.mini_batch_size else None
        name = f"batch{batch}"
        run = args.work / name
        runs[name] = {"batch_size": batch, "mini_batch_size": mini,
                      **train_stage1_for(args.budget_seconds, run, train_set, dev_set, texts, batch, mini)}
        encoder = SentenceEncoder(str(run / "model"))
        vectors, _ = cached_vectors(encoder, texts, run / "dev_product_vectors.npy")
        dense = DenseRetriever(encoder, ids, vectors)
        systems[name] = dense
        systems[f"{name}+bm25"] = HybridRetriever([bm25, dense])

    first = f"batch{args.batches[0]}"
    report = evaluate(systems, dev_set.queries, dev_set.judgments, idf=term_idf(texts), baseline="bm25",
                      dataset_info={"format": "homedepot", "split": "dev", "catalog_size": len(ids)})
    full = report.to_dict()
    pvals: list[float] = []
    for name, row in runs.items():
        row["dense"] = full["systems"][name]["metrics"]
        row["hybrid"] = full["systems"][f"{name}+bm25"]["metrics"]
        if name == first:
            continue
        row["vs_first"] = {}
        for system, base in ((name, first), (f"{name}+bm25", f"{first}+bm25")):
            a = report.per_query[system]["ndcg@10"].to_numpy()
            b = report.per_query[base]["ndcg@10"].to_numpy()
            diff, lo, hi = paired_bootstrap_ci(a, b)
            p = paired_randomization_test(a, b)
            pvals.append(p)
            row["vs_first"]["hybrid" if system.endswith("+bm25") else "dense"] = {
                "ndcg@10_diff_points": 100 * diff, "ci_points": [100 * lo, 100 * hi], "p": p}
    adjusted = iter(holm(pvals))
    for row in runs.values():
        for v in row.get("vs_first", {}).values():
            v["p_holm"] = float(next(adjusted))
    result = {
        "benchmark": "homedepot_gradcache", "date": dt.date.today().isoformat(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "cpu": cpu_info().to_dict()},
        "command": f"python benchmarks/homedepot_gradcache.py --budget-seconds {args.budget_seconds:g} --batches "
                   + " ".join(map(str, args.batches)) + f" --mini-batch-size {args.mini_batch_size}",
        "protocol": full["protocol"], "budget_seconds": args.budget_seconds,
        "bm25": full["systems"]["bm25"]["metrics"], "runs": runs,
    }
    atomic_write_text(args.out, json.dumps(result, indent=2, default=float))
    for name, row in runs.items():
        print(f"{name}: {row['trained_steps']} steps in {row['train_seconds']:.0f} s; dense NDCG@10 "
              f"{row['dense']['ndcg@10']:.4f} R@100 {row['dense']['recall@100']:.4f}; hybrid {row['hybrid']['ndcg@10']:.4f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
