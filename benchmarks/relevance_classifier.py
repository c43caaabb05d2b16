"""Home Depot: train the business relevance classifier on `train`, evaluate it on `dev`.

METHOD.md part B, step 5 filters synthetic (query, product) pairs with a business-specific relevance
classifier and a general semantic one. This fine-tunes the cross-encoder
(``shopsearch.synthesis.judges.train_relevance_classifier``: bundled all-MiniLM-L6-v2 body, soft
targets grade/6, one sampled unjudged negative per query, length-grouped batches of 32,
max_seq_length 64, one epoch) within a training-time budget sized for 2 CPU cores, then reports on
`dev`:

- pooled AUC of relevant (grade >= 5, r >= 2.67) vs other judged pairs, and the threshold calibrated
  there to the target precision (lowest threshold reaching it) with the achieved precision/recall;
- the same with one random unjudged product per query added as a non-relevant pair (the mix a judge
  meets on retrieved products);
- the general semantic judge (off-the-shelf MiniLM cosine) calibrated the same way, and the step-5
  filter "both judges accept".

Writes ``benchmarks/results/relevance_classifier.json`` and the model directory (``--model-dir``,
git-ignored by default). Run by hand on an otherwise idle machine::

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/relevance_classifier.py [--data ../shared/data/home-depot]
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

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from shopsearch.artifacts import atomic_write_text
from shopsearch.data.loaders import load_homedepot
from shopsearch.synthesis.judges import (
    ClassifierTrainConfig,
    CrossEncoderJudge,
    EmbeddingJudge,
    binary_report,
    calibrate_threshold,
    judged_pairs,
    product_text_map,
    train_relevance_classifier,
)

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "home-depot"


def per_grade_means(pairs: Any, column: str) -> dict[str, float]:
    return {str(g): float(v) for g, v in pairs.groupby("grade")[column].mean().items()}


def judge_figures(pairs: Any, column: str, target: float, min_accepted: int) -> dict[str, Any]:
    """Calibration on judged pairs, then the same threshold on judged + random-negative pairs."""
    judged = pairs[pairs["judged"]]
    cal = calibrate_threshold(judged[column].to_numpy(), judged["relevant"].to_numpy(), target_precision=target,
                              min_accepted=min_accepted, n_queries=int(judged["query_id"].nunique()))
    with_random = binary_report(pairs[column].to_numpy(), pairs["relevant"].to_numpy(), cal.threshold)
    return {
        "calibration_on_judged": cal.to_dict(),
        "at_0.5_on_judged": binary_report(judged[column].to_numpy(), judged["relevant"].to_numpy(), 0.5),
        "with_random_negatives_at_calibrated_threshold": with_random,
        "mean_score_by_grade": per_grade_means(pairs, column),  # grade -1 = random unjudged product
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model-dir", type=Path, default=Path("runs/relevance-classifier/homedepot"))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "relevance_classifier.json")
    parser.add_argument("--train-budget-s", type=float, default=1500.0,
                        help="training time budget; the data is subsampled to fit (default 25 min)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--label-mode", choices=["soft", "binary"], default="soft")
    parser.add_argument("--unjudged-per-query", type=int, default=1)
    parser.add_argument("--max-pairs", type=int, default=None)
    parser.add_argument("--target-precision", type=float, default=0.9)
    parser.add_argument("--min-accepted", type=int, default=50)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--dev-queries", type=int, default=None,
                        help="evaluate on a random subset of dev queries (smoke runs only; report full dev)")
    args = parser.parse_args()
    if not (args.data / "products.csv").is_file():
        raise SystemExit(f"no Home Depot data at {args.data}: pass --data DIR (products.csv, judgments_*.csv)")

    wall = time.monotonic()
    start = time.monotonic()
    products = args.data / "products.csv"
    train = load_homedepot(products=products, judgments=args.data / "judgments_train.csv")
    dev = load_homedepot(products=products, judgments=args.data / "judgments_dev.csv")
    if args.dev_queries is not None:
        rng = np.random.default_rng(args.seed)
        dev = dev.subset(rng.choice(dev.queries.ids, size=min(args.dev_queries, len(dev.queries)), replace=False))
    load_s = time.monotonic() - start

    config = ClassifierTrainConfig(
        label_mode=args.label_mode, unjudged_per_query=args.unjudged_per_query, max_pairs=args.max_pairs,
        time_budget_s=args.train_budget_s, threads=args.threads, device="cpu", seed=args.seed,
        target_precision=args.target_precision, min_accepted=args.min_accepted,
    )
    start = time.monotonic()
    run = train_relevance_classifier(train, args.model_dir, config, dev=dev, show_progress=True)
    train_total_s = time.monotonic() - start
    assert run.dev_pairs is not None

    # the judged dev pairs were scored during calibration; add one random unjudged product per query
    start = time.monotonic()
    texts = product_text_map(dev.catalog)
    extra = judged_pairs(dev, texts, unjudged_per_query=1, seed=args.seed)
    extra = extra[~extra["judged"]]
    business = CrossEncoderJudge.load(args.model_dir)
    extra = extra.assign(score=business.score(extra["query"].tolist(), extra["product_text"].tolist()))
    pairs = pd.concat([run.dev_pairs, extra], ignore_index=True).rename(columns={"score": "business"})
    semantic = EmbeddingJudge()
    pairs["semantic"] = semantic.score(pairs["query"].tolist(), pairs["product_text"].tolist())
    eval_s = time.monotonic() - start

    business_fig = judge_figures(pairs, "business", args.target_precision, args.min_accepted)
    semantic_fig = judge_figures(pairs, "semantic", args.target_precision, args.min_accepted)
    b_thr = business_fig["calibration_on_judged"]["threshold"]
    s_thr = semantic_fig["calibration_on_judged"]["threshold"]
    both = (pairs["business"] >= b_thr) & (pairs["semantic"] >= s_thr)
    judged = pairs["judged"].to_numpy()
    both_fig = {
        "rule": "business >= its calibrated threshold AND semantic >= its calibrated threshold",
        "on_judged": binary_report(both[judged].astype(float).to_numpy(), pairs["relevant"][judged].to_numpy(), 0.5),
        "with_random_negatives": binary_report(both.astype(float).to_numpy(), pairs["relevant"].to_numpy(), 0.5),
    }
    result = {
        "benchmark": "relevance_classifier",
        "date": dt.date.today().isoformat(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "torch_threads": args.threads},
        "command": "python benchmarks/relevance_classifier.py",
        "smoke": args.dev_queries is not None or args.max_pairs is not None,
        "protocol": {
            "data": "Home Depot split files: train for training, dev for calibration and evaluation",
            "truth": "relevant = grade >= 5 (mean rating r >= 2.67); grade = round(3*(r-1))",
            "dev_judged_pairs": int(judged.sum()),
            "dev_queries": int(pairs["query_id"].nunique()),
            "dev_relevant_share": float(pairs["relevant"][judged].mean()),
            "random_negatives": "1 product per dev query drawn uniformly from the 54,667, never one it judged",
            "auc": "pooled over all pairs (Mann-Whitney, ties 1/2)",
            "calibration": f"lowest threshold with precision >= {args.target_precision} on judged dev pairs, "
                           f"at least {args.min_accepted} accepted",
            "product_text": "title",
        },
        "model_dir": str(args.model_dir),
        "config": config.model_dump(mode="json"),
        "training": run.training,
        "timings_s": {"load": round(load_s, 1), "train": run.training["seconds"],
                      "train_incl_setup_and_dev_calibration": round(train_total_s, 1),
                      "extra_eval": round(eval_s, 1), "wall": round(time.monotonic() - wall, 1)},
        "business_classifier": business_fig,
        "semantic_judge": semantic_fig,
        "both_judges": both_fig,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2, default=float))
    for name, fig in (("business", business_fig), ("semantic", semantic_fig)):
        cal = fig["calibration_on_judged"]
        print(f"{name:9s} AUC {cal['auc']:.4f} | threshold {cal['threshold']:.4f} "
              f"precision {cal['precision']:.4f} recall {cal['recall']:.4f} reached {cal['reached']}")
    print(f"training {run.training['seconds']:.0f} s on {run.training['pairs']:,} pairs; "
          f"wall {result['timings_s']['wall']:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
