"""Stage-1 step time with and without length-bucketed forwards (training.losses.length_buckets).

Real stage-1 batches: B Home Depot ``train`` queries with a judged top-grade product each, plus n
other catalogue titles per query standing in for the mined negatives (the same title-length
distribution), so the figures differ only by how the product column is padded. Each step encodes
both towers, computes InfoNCE, runs backward and one AdamW step of all-MiniLM-L6-v2 — under bf16
autocast where the CPU computes bf16 natively, as ``shopsearch train`` does by default. Settings run
round-robin within each round (drift hits them alike); medians are reported, with the tokens fed to
the model per step (padding included) against the real ones.

    .venv/bin/python benchmarks/length_buckets.py                        # B=64, 1 and 2 negatives
    .venv/bin/python benchmarks/length_buckets.py --negatives 1 --rows 32 16 --rounds 12

Writes benchmarks/results/length_buckets.json. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import contextlib
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
from shopsearch.training.losses import InfoNCELoss
from shopsearch.training.trainer import use_bf16

HERE = Path(__file__).resolve().parent
HD = HERE.parent.parent / "shared" / "data" / "home-depot"


def batches(n_batches: int, batch: int, negatives: int, seed: int) -> list[list[list[str]]]:
    """Columns (queries, positives, negatives_1..n) per batch, no title twice in a batch."""
    titles = pd.read_csv(HD / "products.csv", dtype=str).set_index("product_id")["title"]
    j = pd.read_csv(HD / "judgments_train.csv", dtype={"product_id": str})
    top = j[j["relevance"] >= 2.67].drop_duplicates("query").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        rows = top.iloc[rng.choice(len(top), size=batch, replace=False)]
        others = titles.iloc[rng.choice(len(titles), size=batch * negatives, replace=False)].tolist()
        columns = [rows["query"].astype(str).tolist(), rows["product_id"].map(titles).astype(str).tolist()]
        columns += [others[i * batch : (i + 1) * batch] for i in range(negatives)]
        out.append(columns)
    return out


def step(model: Any, loss: InfoNCELoss, opt: torch.optim.Optimizer, columns: list[list[str]], bf16: bool) -> float:
    feats = [{k: v for k, v in model.tokenize(c).items() if isinstance(v, torch.Tensor)} for c in columns]
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    start = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    with autocast:
        value = loss(feats, None)
    value.backward()
    opt.step()
    return time.perf_counter() - start


def tokens(model: Any, columns: list[list[str]], rows: int | None) -> tuple[int, int]:
    """(tokens fed to the model, real tokens) for the product columns of one step."""
    lengths = np.sort([int(m.sum()) for c in columns[1:] for m in model.tokenize(c)["attention_mask"]])
    if rows is None or len(lengths) <= rows:
        return len(lengths) * int(lengths.max()), int(lengths.sum())
    chunks = np.array_split(lengths, int(np.ceil(len(lengths) / rows)))
    return sum(len(c) * int(c.max()) for c in chunks), int(lengths.sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64, help="queries per step")
    ap.add_argument("--negatives", type=int, nargs="+", default=[1, 2], help="negatives per pair to time")
    ap.add_argument("--rows", type=int, nargs="+", default=[32, 16], help="bucket sizes to time (and unbucketed)")
    ap.add_argument("--rounds", type=int, default=8, help="timed rounds (each runs every setting once)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "length_buckets.json")
    args = ap.parse_args()
    if not (HD / "judgments_train.csv").is_file():
        raise SystemExit(f"needs the Home Depot data at {HD}")

    torch.manual_seed(args.seed)
    model = build_siamese_encoder(EncoderConfig(device="cpu"))
    model.train()
    bf16 = use_bf16("auto", cuda=False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-9)  # a real optimizer step; lr ~0 keeps the model fixed
    bucket_settings: list[int | None] = [None, *args.rows]
    settings = [(n, r) for n in args.negatives for r in bucket_settings]
    losses = {r: InfoNCELoss(model, tau=0.05, bucket_rows=r) for r in bucket_settings}
    data = {n: batches(args.rounds + args.warmup, args.batch, n, args.seed) for n in args.negatives}
    times: dict[tuple[int, int | None], list[float]] = {s: [] for s in settings}
    for r in range(args.rounds + args.warmup):
        for n, rows in settings if r % 2 == 0 else reversed(settings):
            seconds = step(model, losses[rows], opt, data[n][r], bf16)
            if r >= args.warmup:
                times[(n, rows)].append(seconds)
        print(f"round {r + 1}: " + ", ".join(f"{n}neg/{rows} {times[(n, rows)][-1]:.2f}s" for n, rows in settings if times[(n, rows)]))

    results = []
    for n, rows in settings:
        fed, real = zip(*(tokens(model, data[n][r], rows) for r in range(args.warmup, args.rounds + args.warmup)), strict=True)
        base = statistics.median(times[(n, None)])
        median = statistics.median(times[(n, rows)])
        results.append({
            "negatives_per_pair": n,
            "bucket_rows": rows,
            "step_seconds_median": median,
            "step_seconds_min": min(times[(n, rows)]),
            "speedup_vs_unbucketed": base / median,
            "product_tokens_fed_per_step": statistics.fmean(fed),
            "padding_factor": statistics.fmean(f / t for f, t in zip(fed, real, strict=True)),
        })  # fmt: skip
    result: dict[str, Any] = {
        "benchmark": "length_buckets",
        "date": dt.date.today().isoformat(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "model": "all-MiniLM-L6-v2 (bundled)",
        "bf16_autocast": bf16,
        "data": "home-depot train: judged top-grade pairs + random catalogue titles as negatives",
        "batch_queries": args.batch,
        "rounds": args.rounds,
        "settings": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    for s in results:
        print(f"{s['negatives_per_pair']} negatives, bucket rows {s['bucket_rows']}: {s['step_seconds_median']:.3f}s "
              f"(x{s['speedup_vs_unbucketed']:.2f}), padding x{s['padding_factor']:.2f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
