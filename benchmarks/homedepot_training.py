"""The ablation ladder of Paper A on Home Depot `dev` (issue 3): each training step's contribution.

Rows: off-the-shelf -> stage 1 plain InfoNCE -> + false-negative mask -> + mined hard negatives in
stage 1, and plain InfoNCE + mined hard negatives; stage 2 (one epoch) from plain
InfoNCE: ROAR on judged groups only, ROAR with mined unjudged negatives in the groups, and that with
ROAR replaced by Bradley-Terry and by ListMLE; the paper's full recipe, ROAR on the masked stage 1;
ROAR on that stage 1, one epoch and half an epoch (the default until pseudo-queries); and that stage 1
with keyword pseudo-queries for about half of the unjudged products, then for all of them (the
default), each followed by half an epoch of ROAR; then that default stage 2 with a teacher distilled
into it (the hybrid, the --teacher-model cross-encoder, both), each tested against the row before,
and the cross-encoder over unjudged candidates too (against the cross-encoder row).
Every row is trained on `train` with `shopsearch.training.train`, evaluated on `dev` over the full
catalogue (protocol of ../shared/data/home-depot/README.md), dense and hybrid (BM25 + the row's
encoder: the default hybrid, equal-weight min-max fusion over the rescored union of both lists, and
plain RRF over the lists as they are), with the adjacent-grade ordering accuracy and a paired
test against the row before.

Resumable: each row's run directory is kept under --work and skipped when finished (product
vectors are cached there too), so the ladder can be run row by row:

    .venv/bin/python benchmarks/homedepot_training.py --rows s1_infonce     # one row
    .venv/bin/python benchmarks/homedepot_training.py                       # all rows, then the table
    .venv/bin/python benchmarks/homedepot_training.py --default-run runs/hd  # reuse a default `train` run
    .venv/bin/python benchmarks/homedepot_training.py --row-model s1_mask=runs/old/stage1/model  # reuse a model
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
# their previous row's model, and each row is tested against its previous row. Every setting a row
# measures is pinned here, so a row does not change when a default does. The default recipe is
# s1_pseudo_all then s2_bm25_prior (a pseudo-query for every unjudged Home Depot product; s1_pseudo
# has about half of them; stage 2 with the BM25 logit prior); before that prior it was s1_pseudo_all
# then s2_pseudo_all, before pseudo-queries s1_infonce_hn then s2_default, and
# the other rows are the steps that recipe leaves out or replaces. The paper's masked stage 1 became
# an ablation row when it measured lower on Home Depot (docs/training.md).
NO_PSEUDO = {"pseudo_query_ratio": 0.0}  # the rows measured before keyword pseudo-queries became the default
NO_PRIOR = {"bm25_prior": 0.0}  # the stage-2 rows measured before its BM25 prior became the default
LADDER: dict[str, tuple[str | None, dict[str, Any]]] = {
    "off_the_shelf": (None, {}),
    "s1_infonce": ("off_the_shelf", {"stage": "1", "stage1": {"hard_negatives": 0, **NO_PSEUDO}}),
    "s1_mask": ("s1_infonce", {"stage": "1", "stage1": {"loss": "masked_infonce", "hard_negatives": 0, **NO_PSEUDO}}),
    "s1_mask_hn": ("s1_mask", {"stage": "1", "stage1": {"loss": "masked_infonce", "hard_negatives": 1, **NO_PSEUDO}}),
    "s1_infonce_hn": ("s1_infonce", {"stage": "1", "stage1": {"loss": "infonce", "hard_negatives": 1, **NO_PSEUDO}}),
    "s2_roar_judged_only": ("s1_infonce", {"stage": "2", "stage2": {**NO_PRIOR, "hard_negatives": 0, "epochs": 1.0}}),
    "s2_roar": ("s1_infonce", {"stage": "2", "stage2": {**NO_PRIOR, "epochs": 1.0}}),
    "s2_bradley_terry": ("s1_infonce", {"stage": "2", "stage2": {**NO_PRIOR, "loss": "bradley_terry", "epochs": 1.0}}),
    "s2_listmle": ("s1_infonce", {"stage": "2", "stage2": {**NO_PRIOR, "loss": "listmle", "epochs": 1.0}}),
    "s2_roar_on_mask": ("s1_mask", {"stage": "2", "stage2": {**NO_PRIOR, "epochs": 1.0}}),
    "s2_roar_on_hn": ("s1_infonce_hn", {"stage": "2", "stage2": {**NO_PRIOR, "epochs": 1.0}}),
    "s2_default": ("s1_infonce_hn", {"stage": "2", "stage2": {**NO_PRIOR, "loss": "roar", "epochs": 0.5}}),
    "s1_pseudo": ("s1_infonce_hn", {"stage": "1", "stage1": {"loss": "infonce", "hard_negatives": 1,
                                                             "pseudo_query_ratio": 0.34}}),
    "s2_pseudo": ("s1_pseudo", {"stage": "2", "stage2": {**NO_PRIOR, "loss": "roar", "epochs": 0.5}}),
    "s1_pseudo_all": ("s1_pseudo", {"stage": "1", "stage1": {"loss": "infonce", "hard_negatives": 1,
                                                             "pseudo_query_ratio": 0.72}}),
    "s2_pseudo_all": ("s1_pseudo_all", {"stage": "2", "stage2": {**NO_PRIOR, "loss": "roar", "epochs": 0.5}}),
    "s2_bm25_prior": ("s1_pseudo_all", {"stage": "2", "stage2": {"loss": "roar", "epochs": 0.5, "bm25_prior": 0.3}}),
    # teachers distilled into stage 2 on top of the default (training.teacher); the cross-encoder is
    # --teacher-model (a `shopsearch train-reranker` model)
    "s2_teacher_hybrid": ("s1_pseudo_all", {"stage": "2", "stage2": {
        "loss": "roar", "epochs": 0.5, "bm25_prior": 0.3, "distill_weight": 1.0, "teacher": "hybrid"}}),
    "s2_teacher_ce": ("s1_pseudo_all", {"stage": "2", "stage2": {
        "loss": "roar", "epochs": 0.5, "bm25_prior": 0.3, "distill_weight": 1.0, "teacher": "cross_encoder"}}),
    "s2_teacher_both": ("s1_pseudo_all", {"stage": "2", "stage2": {
        "loss": "roar", "epochs": 0.5, "bm25_prior": 0.3, "distill_weight": 1.0, "teacher": "both"}}),
    # the cross-encoder also over 8 unjudged products of the stage-1 top 30 per group, for the KL only
    "s2_teacher_ce_wide": ("s1_pseudo_all", {"stage": "2", "stage2": {
        "loss": "roar", "epochs": 0.5, "bm25_prior": 0.3, "distill_weight": 1.0, "teacher": "cross_encoder",
        "teacher_candidates": 8}}),
}
# rows tested against a row other than the one they start from: each teacher against the row before
COMPARED_WITH = {"s2_teacher_hybrid": "s2_bm25_prior", "s2_teacher_ce": "s2_teacher_hybrid",
                 "s2_teacher_both": "s2_teacher_ce", "s2_teacher_ce_wide": "s2_teacher_ce"}


# The rows that `shopsearch train` with its defaults produces: RUN/stage1/model and RUN/stage2/model.
DEFAULT_RUN_ROWS = {"s1_pseudo_all": "stage1", "s2_bm25_prior": "stage2"}


def given_models(default_run: Path | None, row_models: list[str]) -> dict[str, Path]:
    """Rows whose model is given instead of trained: the default recipe's two rows from a finished
    default ``shopsearch train`` run, and ``ROW=MODEL_DIR`` entries (these win)."""
    given = {row: default_run / stage / "model" for row, stage in DEFAULT_RUN_ROWS.items()} if default_run else {}
    for entry in row_models:
        row, sep, path = entry.partition("=")
        if not sep or row not in LADDER:
            raise SystemExit(f"--row-model {entry!r}: expected ROW=MODEL_DIR with ROW one of {list(LADDER)}")
        given[row] = Path(path)
    for row, model in given.items():
        if not (model / "shopsearch_model.json").is_file():
            raise SystemExit(f"row {row}: no finished shopsearch model at {model}")
    return given


def row_training(name: str, work: Path, given: dict[str, Path]) -> dict[str, Any]:
    """The row's training manifest and trainer seconds; for a given stage model (RUN/stageN/model),
    that stage's own seconds from its run's manifest."""
    model = given.get(name)
    stage = model.parent.name.removeprefix("stage") if model is not None and model.parent.name.startswith("stage") else None
    run = work / name if model is None else (model.parent.parent if stage else model.parent)
    if not (run / "manifest.json").is_file():
        return {}
    manifest = json.loads((run / "manifest.json").read_text())
    wall = run / "wall_seconds.txt"
    out: dict[str, Any] = {"train_manifest": manifest,
                           "wall_seconds": float(wall.read_text()) if wall.is_file() else None}
    if model is not None:
        out["given_model"] = str(model)
        if stage:
            out["wall_seconds"] = manifest["stages"][stage]["seconds"]
    return out


def row_model(name: str, work: Path, train_set, dev_set, given: dict[str, Path],
              teacher_model: Path | None = None) -> str | None:
    """Train the row (unless done or given) and return its model directory; None for off-the-shelf."""
    previous, overrides = LADDER[name]
    if not overrides:
        return None
    if name in given:
        return str(given[name])
    cfg = json.loads(json.dumps(overrides))
    if cfg.get("stage2", {}).get("teacher", "hybrid") != "hybrid":
        if teacher_model is None:
            raise SystemExit(f"row {name} distils a cross-encoder: give --teacher-model")
        cfg["stage2"]["teacher_model"] = str(teacher_model)
    if cfg["stage"] == "2":
        cfg["encoder"] = {"base_model": row_model(previous, work, train_set, dev_set, given, teacher_model)}
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
                             "stage-2 models are the s1_pseudo_all and s2_bm25_prior rows (not trained again)")
    parser.add_argument("--teacher-model", type=Path, default=None,
                        help="the cross-encoder of the s2_teacher_ce and s2_teacher_both rows (train-reranker RUN/model)")
    parser.add_argument("--row-model", nargs="*", default=[], metavar="ROW=MODEL_DIR",
                        help="a finished model for a row (e.g. RUN/stage1/model), not trained again; the "
                             "stage-2 rows built on it should have been trained from it")
    args = parser.parse_args()
    given = given_models(args.default_run, args.row_model)

    catalog = args.data / "products.csv"
    train_set = load_dataset(catalog=catalog, judgments=args.data / "judgments_train.csv", format="homedepot")
    dev_set = load_dataset(catalog=catalog, judgments=args.data / "judgments_dev.csv", format="homedepot")
    texts = ProductTextRenderer(fields=("title",)).render(dev_set.catalog)
    ids = dev_set.catalog.ids
    bm25 = BM25Retriever(ids, texts)

    rows = [r for r in LADDER if r in args.rows]
    needs_teacher = [r for r in rows if LADDER[r][1].get("stage2", {}).get("teacher", "hybrid") != "hybrid"]
    if needs_teacher and args.teacher_model is None and not set(needs_teacher) <= set(given):
        raise SystemExit(f"rows {needs_teacher} distil a cross-encoder: give --teacher-model RUN/model")
    dense: dict[str, DenseRetriever] = {}
    for name in rows:
        model = row_model(name, args.work, train_set, dev_set, given, args.teacher_model)
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
        systems[f"{name}+bm25"] = HybridRetriever([bm25, dense[name]])  # the default: weighted, rescored union
        systems[f"{name}+bm25:rrf"] = HybridRetriever([bm25, dense[name]], method="rrf", rescore_union=False)
    report = evaluate(systems, dev_set.queries, dev_set.judgments, idf=term_idf(texts), baseline="bm25",
                      dataset_info={"format": "homedepot", "split": "dev", "catalog_size": len(ids)})
    full = report.to_dict()

    table, pvals = [], []
    for i, name in enumerate(rows):
        m = full["systems"][name]["metrics"]
        h = full["systems"][f"{name}+bm25"]["metrics"]
        hr = full["systems"][f"{name}+bm25:rrf"]["metrics"]
        row: dict[str, Any] = {
            "row": name, "dense": m, "hybrid": h, "hybrid_rrf": hr,
            "ordering_accuracy": ordering_accuracy(dense[name], dev_set.queries, dev_set.judgments),
            "strata": full["systems"][name]["strata"],
        }
        row.update(row_training(name, args.work, given))
        previous = COMPARED_WITH.get(name, LADDER[name][0])
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
        + (f" --row-model {' '.join(args.row_model)}" if args.row_model else "")
        + (f" --teacher-model {args.teacher_model}" if args.teacher_model else "")
        + (f" --rows {' '.join(rows)}" if rows != list(LADDER) else ""), "protocol": full["protocol"],
        "bm25": full["systems"]["bm25"]["metrics"], "rows": table, "comparisons_vs_bm25": full["comparisons"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2, default=float))
    for row in table:
        print(f"{row['row']:18s} dense ndcg@10 {row['dense']['ndcg@10']:.4f} R@100 {row['dense']['recall@100']:.4f} "
              f"map@10 {row['dense']['map@10']:.4f} | hybrid ndcg@10 {row['hybrid']['ndcg@10']:.4f} "
              f"(rrf {row['hybrid_rrf']['ndcg@10']:.4f}) | "
              f"ordering {row['ordering_accuracy']:.4f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
