"""ONNX export of an encoder: retained NDCG@10 and query-encoding speed-up of ONNX fp32 / int8 vs torch.

Exports the model (``shopsearch.models.export_onnx``: fp32 graph + int8 dynamic quantisation), then
for each variant -- torch fp32 (sentence-transformers), ONNX fp32, ONNX int8 (onnxruntime, CPU) --
encodes every product with that variant, searches the Home Depot queries against them (full-corpus
protocol of ``../shared/data/home-depot/README.md``) through ``DenseRetriever`` and shopsearch's
evaluator (paired comparisons against torch fp32), and times query encoding one query at a time and
in batches. Writes ``benchmarks/results/onnx_export.json``. Run by hand::

    .venv/bin/python benchmarks/onnx_export.py [--model DIR] [--data ../shared/data/home-depot]
    .venv/bin/python benchmarks/onnx_export.py --max-products 2000 --max-queries 100   # quick check

``--max-products`` keeps the products judged for the evaluated queries first and fills up with a
seeded sample of the rest: quicker, but NOT the protocol's catalogue, so its numbers are marked as
a subset and must not be compared with full-corpus figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from shopsearch.artifacts import atomic_write_text
from shopsearch.data import load_dataset
from shopsearch.data.render import ProductTextRenderer
from shopsearch.eval.pipeline import term_idf
from shopsearch.eval.protocols import evaluate
from shopsearch.models import OnnxQueryEncoder, export_onnx, read_model_info
from shopsearch.retrieval.dense import DenseRetriever
from shopsearch.retrieval.encoder import SentenceEncoder, resolve_model

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "home-depot"
METRICS = ["ndcg@10", "recall@100", "mrr@10"]


def query_speed(encoder, queries: list[str], batch: int) -> dict[str, float]:
    """Queries per second encoding one at a time (with p50/p99 latency) and in batches of ``batch``."""
    encoder.encode(queries[:8], is_query=True)  # warm-up: thread pools, lazy allocations
    single = []
    for q in queries:
        t = time.perf_counter()
        encoder.encode([q], is_query=True)
        single.append(time.perf_counter() - t)
    t = time.perf_counter()
    for a in range(0, len(queries), batch):
        encoder.encode(queries[a : a + batch], is_query=True)
    batched_s = time.perf_counter() - t
    return {
        "single_qps": len(queries) / float(np.sum(single)),
        "single_p50_ms": float(np.percentile(single, 50) * 1000),
        "single_p99_ms": float(np.percentile(single, 99) * 1000),
        "batched_qps": len(queries) / batched_s,
        "batch_size": batch,
        "n_queries": len(queries),
    }


def subset(dataset, max_products: int | None, seed: int) -> np.ndarray:
    """Row positions of the products kept: all when ``max_products`` is None, else judged ones first."""
    n = len(dataset.catalog)
    if max_products is None or max_products >= n:
        return np.arange(n)
    ids = dataset.catalog.ids
    judged = set(dataset.judgments.df["product_id"].astype(str))
    rng = np.random.default_rng(seed)
    is_judged = np.fromiter((str(p) in judged for p in ids), dtype=bool, count=n)
    first, rest = rng.permutation(np.flatnonzero(is_judged)), rng.permutation(np.flatnonzero(~is_judged))
    return np.sort(np.concatenate([first, rest])[:max_products])


def agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    cos = np.sum(a * b, axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return {"mean_cosine": float(cos.mean()), "min_cosine": float(cos.min())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="encoder directory (default: the bundled all-MiniLM-L6-v2)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--split", default="dev")
    parser.add_argument("--onnx-dir", type=Path, default=None, help="where to export (default: a temporary dir)")
    parser.add_argument("--max-products", type=int, default=None, help="catalogue subset (default: all products)")
    parser.add_argument("--max-queries", type=int, default=None, help="evaluate only the first N judged queries")
    parser.add_argument("--speed-queries", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--n-resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "onnx_export.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model_id, model_dir = resolve_model(args.model)
    dataset = load_dataset(
        catalog=args.data / "products.csv", judgments=args.data / f"judgments_{args.split}.csv", format="homedepot"
    )
    if args.max_queries is not None:
        dataset = dataset.subset(dataset.queries.ids[: args.max_queries])
    rows = subset(dataset, args.max_products, args.seed)
    texts_all = ProductTextRenderer(fields=("title",)).render(dataset.catalog)
    ids = dataset.catalog.ids[rows]
    texts = [texts_all[i] for i in rows]
    queries = dataset.queries.texts[: args.speed_queries]

    with tempfile.TemporaryDirectory(prefix="onnx-export-") as tmp:
        onnx_dir = args.onnx_dir or Path(tmp) / "onnx"
        t = time.perf_counter()
        manifest = export_onnx(model_dir, onnx_dir)
        export_s = time.perf_counter() - t
        sizes = {name: (onnx_dir / f).stat().st_size for name, f in manifest["files_by_precision"].items()}
        prefix = (read_model_info(model_dir) or {}).get("query_prefix", manifest["query_prefix"])
        encoders = {
            "torch_fp32": SentenceEncoder(model_dir, query_prefix=prefix, batch_size=args.batch_size),
            "onnx_fp32": OnnxQueryEncoder(onnx_dir, int8=False, intra_op_threads=args.threads, batch_size=args.batch_size),
            "onnx_int8": OnnxQueryEncoder(onnx_dir, int8=True, intra_op_threads=args.threads, batch_size=args.batch_size),
        }
        systems, indexing, speed, vectors = {}, {}, {}, {}
        for name, enc in encoders.items():
            t = time.perf_counter()
            vecs = enc.encode(texts, is_query=False)
            secs = time.perf_counter() - t
            indexing[name] = {"seconds": secs, "products_per_s": len(texts) / secs}
            vectors[name] = (vecs, enc.encode(queries, is_query=True))
            systems[name] = DenseRetriever(enc, ids, vecs)
            speed[name] = query_speed(enc, queries, args.batch_size)
            print(name, {"indexing": indexing[name], "speed": speed[name]}, flush=True)
        report = evaluate(
            systems,
            dataset.queries,
            dataset.judgments,
            metrics=METRICS,
            idf=term_idf(texts),
            baseline="torch_fp32",
            n_resamples=args.n_resamples,
            seed=args.seed,
            show_progress=False,
            dataset_info={"format": "homedepot", "split": args.split, "catalog_size": len(ids), "product_text": ["title"]},
        ).to_dict()

    metrics = {name: s["metrics"] for name, s in report["systems"].items()}
    base_ndcg = metrics["torch_fp32"]["ndcg@10"]
    torch_speed = speed["torch_fp32"]
    result = {
        "benchmark": "onnx_export",
        "date": dt.date.today().isoformat(),
        "command": "python benchmarks/onnx_export.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None and k != "out"
        ),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "threads": args.threads,
            "python": platform.python_version(),
        },
        "model": {"id": model_id, "path": str(model_dir), "dimension_served": encoders["torch_fp32"].dimension},
        "corpus": {
            "split": args.split,
            "n_products": len(ids),
            "full_corpus": len(ids) == len(dataset.catalog),
            "n_queries_evaluated": report["counts"],
            "note": "full-corpus retrieval over product titles" if len(ids) == len(dataset.catalog)
            else "SUBSET of the catalogue (--max-products): not comparable with full-corpus figures",
        },
        "export": {
            "seconds": export_s,
            "file_bytes": sizes,
            "quantization": manifest["quantization"],
            "export_check_min_cosine_vs_torch": manifest["export_check_min_cosine_vs_torch"],
        },
        "metrics": metrics,
        "retained_ndcg@10": {name: m["ndcg@10"] / base_ndcg if base_ndcg else None for name, m in metrics.items()},
        "comparisons_vs_torch_fp32": [c for c in report["comparisons"] if c.get("stratification") == "overall"],
        "embedding_agreement_vs_torch": {
            name: {"products": agreement(v[0], vectors["torch_fp32"][0]), "queries": agreement(v[1], vectors["torch_fp32"][1])}
            for name, v in vectors.items() if name != "torch_fp32"
        },
        "product_encoding": indexing,
        "query_encoding": speed,
        "speedup_vs_torch_fp32": {
            name: {
                "single": s["single_qps"] / torch_speed["single_qps"],
                "batched": s["batched_qps"] / torch_speed["batched_qps"],
            }
            for name, s in speed.items()
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2, default=float))
    for name in encoders:
        print(
            f"{name:11s} ndcg@10={metrics[name]['ndcg@10']:.4f} retained={result['retained_ndcg@10'][name]:.4f} "
            f"single={speed[name]['single_qps']:.0f} q/s batched={speed[name]['batched_qps']:.0f} q/s "
            f"speed-up single x{result['speedup_vs_torch_fp32'][name]['single']:.2f} "
            f"batched x{result['speedup_vs_torch_fp32'][name]['batched']:.2f}"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
