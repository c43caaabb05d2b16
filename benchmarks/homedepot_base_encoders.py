"""Base encoders that ship in registry packages, off the shelf and fine-tuned, on Home Depot `dev`.

For each model (``retrieval.shipped_models``: the bundled all-MiniLM-L6-v2, all-mpnet-base-v2 from
its parts packages): catalogue encoding throughput (titles, as the default recipe renders them),
single-query latency of dense search over the full catalogue, and `dev` NDCG@10 / Recall@100 of the
model alone and in the default hybrid with BM25 — off the shelf, and after stage 1 of the default
recipe trained for the same ``--budget-seconds`` of wall time (the step count each model's measured
step time allows, as in ``homedepot_gradcache.py``; a slower model gets fewer steps). Each model is
tested against the first (paired randomisation, Holm across the report). ``--reuse NAME=DIR`` takes
an already trained stage-1 run (e.g. the gradcache benchmark's ``runs/gradcache/batch64``, which is
MiniLM's default batch at the same budget).

    .venv/bin/pip install -e ".[mpnet]"
    .venv/bin/python benchmarks/homedepot_base_encoders.py --budget-seconds 600 \\
        --reuse all-MiniLM-L6-v2=runs/gradcache/batch64
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from homedepot_baselines import latency_ms
from homedepot_gradcache import cached_vectors, train_stage1_for

from shopsearch.artifacts import atomic_write_text
from shopsearch.data import load_dataset
from shopsearch.data.render import ProductTextRenderer
from shopsearch.eval.pipeline import term_idf
from shopsearch.eval.protocols import evaluate
from shopsearch.eval.significance import holm, paired_bootstrap_ci, paired_randomization_test
from shopsearch.hardware import cpu_info
from shopsearch.retrieval.bm25 import BM25Retriever
from shopsearch.retrieval.dense import DenseRetriever
from shopsearch.retrieval.encoder import SentenceEncoder, resolve_model
from shopsearch.retrieval.fusion import HybridRetriever

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "home-depot"


def _slug(name: str) -> str:
    return name.replace("/", "_")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--work", type=Path, default=Path("runs/base-encoders"))
    ap.add_argument("--models", nargs="+", default=["all-MiniLM-L6-v2", "all-mpnet-base-v2"])
    ap.add_argument("--budget-seconds", type=float, default=600.0, help="stage-1 training seconds of every model")
    ap.add_argument("--no-fine-tune", action="store_true", help="off the shelf only")
    ap.add_argument("--reuse", nargs="*", default=[], metavar="NAME=DIR", help="a finished stage-1 run of a model")
    ap.add_argument("--latency-queries", type=int, default=300)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "homedepot_base_encoders_dev.json")
    args = ap.parse_args()
    reuse = dict(item.split("=", 1) for item in args.reuse)

    catalog = args.data / "products.csv"
    train_set = load_dataset(catalog=catalog, judgments=args.data / "judgments_train.csv", format="homedepot")
    dev_set = load_dataset(catalog=catalog, judgments=args.data / "judgments_dev.csv", format="homedepot")
    texts = ProductTextRenderer(fields=("title",)).render(dev_set.catalog)
    ids = dev_set.catalog.ids
    bm25 = BM25Retriever(ids, texts)
    dev_queries = dev_set.queries.df["text"].astype(str).tolist()

    systems: dict[str, Any] = {"bm25": bm25}
    rows: dict[str, dict[str, Any]] = {}
    for name in args.models:
        model_id = resolve_model(name)[0]
        work = args.work / _slug(model_id)
        work.mkdir(parents=True, exist_ok=True)
        encoder = SentenceEncoder(name)
        n_params = sum(p.numel() for p in encoder._model.parameters())
        vectors, seconds = cached_vectors(encoder, texts, work / "offshelf_product_vectors.npy")
        timing_file = work / "offshelf_encoding.json"
        if seconds is not None:
            timing_file.write_text(json.dumps({"seconds": seconds}))
        seconds = json.loads(timing_file.read_text())["seconds"]
        dense = DenseRetriever(encoder, ids, vectors)
        row: dict[str, Any] = {
            "model": model_id, "parameters": n_params, "max_seq_length": encoder._model.max_seq_length,
            "encoding": {"seconds": seconds, "products_per_s": len(ids) / seconds},
            "latency": latency_ms(dense, dev_queries[: args.latency_queries], k=100, batch=64),
        }
        systems[f"{name}"] = dense
        systems[f"{name}+bm25"] = HybridRetriever([bm25, dense])
        if not args.no_fine_tune:
            run = Path(reuse[name]) if name in reuse else work / "stage1-budget"
            row["fine_tuned"] = {"run": str(run), **train_stage1_for(args.budget_seconds, run, train_set, dev_set,
                                                                     texts, base_model=name)}
            tuned = SentenceEncoder(str(run / "model"))
            tuned_vectors, _ = cached_vectors(tuned, texts, run / "dev_product_vectors.npy")
            systems[f"{name} tuned"] = DenseRetriever(tuned, ids, tuned_vectors)
            systems[f"{name} tuned+bm25"] = HybridRetriever([bm25, systems[f"{name} tuned"]])
        rows[name] = row

    report = evaluate(systems, dev_set.queries, dev_set.judgments, idf=term_idf(texts), baseline="bm25",
                      dataset_info={"format": "homedepot", "split": "dev", "catalog_size": len(ids)})
    full = report.to_dict()
    first = args.models[0]
    tests: list[dict[str, Any]] = []
    for name, row in rows.items():
        variants = {"off_the_shelf": name, "off_the_shelf_hybrid": f"{name}+bm25"}
        if "fine_tuned" in row:
            variants |= {"fine_tuned": f"{name} tuned", "fine_tuned_hybrid": f"{name} tuned+bm25"}
        row["metrics"] = {}
        for key, system in variants.items():
            row["metrics"][key] = full["systems"][system]["metrics"]
            for base in ("bm25", system.replace(name, first, 1)):
                if base == system:
                    continue
                a = report.per_query[system]["ndcg@10"].to_numpy()
                b = report.per_query[base]["ndcg@10"].to_numpy()
                diff, lo, hi = paired_bootstrap_ci(a, b)
                tests.append({"system": system, "against": base, "ndcg@10_diff_points": 100 * diff,
                              "ci_points": [100 * lo, 100 * hi], "p": paired_randomization_test(a, b)})
    for test, p in zip(tests, holm([t["p"] for t in tests]), strict=True):
        test["p_holm"] = float(p)
    result = {
        "benchmark": "homedepot_base_encoders", "date": dt.date.today().isoformat(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "cpu": cpu_info().to_dict()},
        "command": "python benchmarks/homedepot_base_encoders.py --models " + " ".join(args.models)
                   + (" --no-fine-tune" if args.no_fine_tune else f" --budget-seconds {args.budget_seconds:g}"),
        "protocol": full["protocol"], "budget_seconds": None if args.no_fine_tune else args.budget_seconds,
        "bm25": full["systems"]["bm25"]["metrics"], "models": rows, "tests": tests,
    }
    atomic_write_text(args.out, json.dumps(result, indent=2, default=float))
    for name, row in rows.items():
        m = row["metrics"]
        line = (f"{name}: {row['encoding']['products_per_s']:.0f} products/s, p99 {row['latency']['single_p99_ms']:.1f} ms;"
                f" off the shelf {m['off_the_shelf']['ndcg@10']:.4f} (hybrid {m['off_the_shelf_hybrid']['ndcg@10']:.4f})")
        if "fine_tuned" in row:
            line += (f"; tuned {row['fine_tuned']['trained_steps']} steps {m['fine_tuned']['ndcg@10']:.4f}"
                     f" R@100 {m['fine_tuned']['recall@100']:.4f} (hybrid {m['fine_tuned_hybrid']['ndcg@10']:.4f})")
        print(line)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
