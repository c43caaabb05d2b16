"""The ablation ladder of Paper A on Home Depot `dev` (issue 3): each training step's contribution.

Rows: off-the-shelf -> stage 1 plain InfoNCE -> + false-negative mask (the default stage 1) -> + mined
hard negatives in stage 1; stage 2 from the default stage 1: ROAR on judged groups only, ROAR with mined
unjudged negatives in the groups (the default stage 2), and that with ROAR replaced by Bradley-Terry and
by ListMLE.
Every row is trained on `train` with `shopsearch.training.train`, evaluated on `dev` over the full
catalogue (protocol of ../shared/data/home-depot/README.md), dense and hybrid (BM25 + the row's
encoder; RRF and equal-weight min-max fusion), with the adjacent-grade ordering accuracy and a paired
test against the row before.

Resumable: each row's run directory is kept under --work and skipped when finished (product
vectors are cached there too), so the ladder can be run row by row:

    .venv/bin/python benchmarks/homedepot_training.py --rows s1_infonce     # one row
    .venv/bin/python benchmarks/homedepot_training.py                       # all rows, then the table
    .venv/bin/python benchmarks/homedepot_training.py --default-run runs/hd  # reuse a default `train` run
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

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from shopsearch.artifacts import atomic_write_text
from shopsearch.data import load_dataset
from shopsearch.data.render import ProductTextRenderer
from shopsearch.eval.metrics import adjacent_grade_accuracy
from shopsearch.eval.pipeline import term_idf
from shopsearch.eval.protocols import evaluate
from shopsearch.eval.significance import holm, paired_bootstrap_ci, paired_randomization_test
from shopsearch.retrieval.bm25 import BM25Retriever
from shopsearch.retrieval.dense import DenseRetriever
from shopsearch.retrieval.encoder import SentenceEncoder
from shopsearch.retrieval.fusion import HybridRetriever
from shopsearch.training.config import TrainConfig
from shopsearch.training.trainer import train

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "home-depot"

# name -> (previous row, train config overrides on top of the defaults); stage-2 rows start from
# their previous row's model, and each row is tested against its previous row. The default recipe
# is s1_mask then s2_roar; s1_mask_hn and s2_roar_judged_only are the steps it leaves out.
LADDER: dict[str, tuple[str | None, dict[str, Any]]] = {
    "off_the_shelf": (None, {}),
    "s1_infonce": ("off_the_shelf", {"stage": "1", "stage1": {"loss": "infonce"}}),
    "s1_mask": ("s1_infonce", {"stage": "1"}),
    "s1_mask_hn": ("s1_mask", {"stage": "1", "stage1": {"hard_negatives": 1}}),
    "s2_roar_judged_only": ("s1_mask", {"stage": "2", "stage2": {"hard_negatives": 0}}),
    "s2_roar": ("s1_mask", {"stage": "2"}),
    "s2_bradley_terry": ("s1_mask", {"stage": "2", "stage2": {"loss": "bradley_terry"}}),
    "s2_listmle": ("s1_mask", {"stage": "2", "stage2": {"loss": "listmle"}}),
}


# The rows that `shopsearch train` with its defaults produces: RUN/stage1/model and RUN/stage2/model.
DEFAULT_RUN_ROWS = {"s1_mask": "stage1", "s2_roar": "stage2"}


def row_run(name: str, work: Path, default_run: Path | None) -> Path:
    """The run directory holding a row's manifest: the default-recipe run for its two rows, if given."""
    return default_run if default_run is not None and name in DEFAULT_RUN_ROWS else work / name


def row_model(name: str, work: Path, train_set, dev_set, default_run: Path | None = None) -> str | None:
    """Train the row (unless done) and return its model directory; None for off-the-shelf.

    With ``default_run`` (a finished ``shopsearch train`` run with the default config), the default
    recipe's two rows are read from it instead of trained again."""
    previous, overrides = LADDER[name]
    if not overrides:
        return None
    if default_run is not None and name in DEFAULT_RUN_ROWS:
        model = default_run / DEFAULT_RUN_ROWS[name] / "model"
        if not (model / "shopsearch_model.json").is_file():
            raise SystemExit(f"{default_run}: no finished {DEFAULT_RUN_ROWS[name]} model at {model}")
        return str(model)
    cfg = dict(overrides)
    if cfg["stage"] == "2":
        cfg["encoder"] = {"base_model": row_model(previous, work, train_set, dev_set, default_run)}  # type: ignore[arg-type]
    run = work / name
    if not (run / "manifest.json").is_file():
        started = time.perf_counter()
        train(train_set, TrainConfig.model_validate(cfg), run, dev_set=dev_set, resume=True)
        (run / "wall_seconds.txt").write_text(f"{time.perf_counter() - started:.1f}\n")
    return str(run / "model")


def ordering_accuracy(retriever, queries, judgments) -> float:
    qrels = judgments.qrels()
    q = queries.df[queries.df["query_id"].isin(qrels)]
    cands = [list(qrels[qid]) for qid in q["query_id"]]
    scores = retriever.score_candidates(q["text"].tolist(), cands)
    correct = total = 0
    for qid, s in zip(q["query_id"], scores, strict=True):
        c, t = adjacent_grade_accuracy(s, np.array(list(qrels[qid].values())))
        correct, total = correct + c, total + t
    return correct / total if total else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--work", type=Path, default=Path("runs/homedepot-ladder"))
    parser.add_argument("--rows", nargs="*", default=list(LADDER))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "homedepot_ablation.json")
    parser.add_argument("--default-run", type=Path, default=None,
                        help="a finished `shopsearch train` run with the default config: its stage-1 and "
                             "stage-2 models are the s1_mask and s2_roar rows (not trained again)")
    args = parser.parse_args()

    catalog = args.data / "products.csv"
    train_set = load_dataset(catalog=catalog, judgments=args.data / "judgments_train.csv", format="homedepot")
    dev_set = load_dataset(catalog=catalog, judgments=args.data / "judgments_dev.csv", format="homedepot")
    texts = ProductTextRenderer(fields=("title",)).render(dev_set.catalog)
    ids = dev_set.catalog.ids
    bm25 = BM25Retriever(ids, texts)

    rows = [r for r in LADDER if r in args.rows]
    dense: dict[str, DenseRetriever] = {}
    for name in rows:
        model = row_model(name, args.work, train_set, dev_set, args.default_run)
        encoder = SentenceEncoder(model)
        # beside the model, where benchmarks/homedepot_model_dev.py looks for them too
        cache = (Path(model).parent if model else args.work / name) / "dev_product_vectors.npy"
        if cache.is_file():
            vectors = np.load(cache)
        else:
            vectors = encoder.encode(texts, show_progress=True)
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, vectors)
        dense[name] = DenseRetriever(encoder, ids, vectors)

    systems: dict[str, Any] = {"bm25": bm25}
    for name in rows:
        systems[f"{name}"] = dense[name]
        systems[f"{name}+bm25"] = HybridRetriever([bm25, dense[name]])
        systems[f"{name}+bm25:weighted"] = HybridRetriever([bm25, dense[name]], method="weighted")
    report = evaluate(systems, dev_set.queries, dev_set.judgments, idf=term_idf(texts), baseline="bm25",
                      dataset_info={"format": "homedepot", "split": "dev", "catalog_size": len(ids)})
    full = report.to_dict()

    table, pvals = [], []
    for i, name in enumerate(rows):
        m = full["systems"][name]["metrics"]
        h = full["systems"][f"{name}+bm25"]["metrics"]
        hw = full["systems"][f"{name}+bm25:weighted"]["metrics"]
        row: dict[str, Any] = {
            "row": name, "dense": m, "hybrid": h, "hybrid_weighted": hw,
            "ordering_accuracy": ordering_accuracy(dense[name], dev_set.queries, dev_set.judgments),
            "strata": full["systems"][name]["strata"],
        }
        run = row_run(name, args.work, args.default_run)
        if (run / "manifest.json").is_file():
            row["train_manifest"] = json.loads((run / "manifest.json").read_text())
            row["wall_seconds"] = float((run / "wall_seconds.txt").read_text()) if (run / "wall_seconds.txt").is_file() else None
            if run == args.default_run:  # one run for two rows: each row's own trainer time
                stage = DEFAULT_RUN_ROWS[name][-1]
                row["default_run"] = str(run)
                row["wall_seconds"] = row["train_manifest"]["stages"][stage]["seconds"]
        previous = LADDER[name][0]
        if i > 0 and previous in dense:
            vs = {}
            for metric in ("ndcg@10", "recall@100", "map@10"):
                a = report.per_query[name][metric].to_numpy()
                b = report.per_query[previous][metric].to_numpy()
                keep = ~(np.isnan(a) | np.isnan(b))
                diff, lo, hi = paired_bootstrap_ci(a[keep], b[keep])
                p = paired_randomization_test(a[keep], b[keep])
                pvals.append(p)
                vs[metric] = {"diff_points": 100 * diff, "ci_points": [100 * lo, 100 * hi], "p": p}
            row["vs_previous"] = {"previous": previous, **vs}
        table.append(row)
    adjusted = iter(holm(pvals))
    for row in table:
        for v in row.get("vs_previous", {}).values():
            if isinstance(v, dict):
                v["p_holm"] = float(next(adjusted))
    result = {
        "benchmark": "homedepot_ablation", "date": dt.date.today().isoformat(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "command": "python benchmarks/homedepot_training.py"
        + (f" --default-run {args.default_run}" if args.default_run else "")
        + (f" --rows {' '.join(rows)}" if rows != list(LADDER) else ""), "protocol": full["protocol"],
        "bm25": full["systems"]["bm25"]["metrics"], "rows": table, "comparisons_vs_bm25": full["comparisons"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2, default=float))
    for row in table:
        print(f"{row['row']:18s} dense ndcg@10 {row['dense']['ndcg@10']:.4f} R@100 {row['dense']['recall@100']:.4f} "
              f"map@10 {row['dense']['map@10']:.4f} | hybrid ndcg@10 rrf {row['hybrid']['ndcg@10']:.4f} "
              f"weighted {row['hybrid_weighted']['ndcg@10']:.4f} | "
              f"ordering {row['ordering_accuracy']:.4f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
