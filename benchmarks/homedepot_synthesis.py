"""Home Depot: synthetic training pairs for long-tail queries (issue 4; METHOD.md part B, Taobao 2026).

Two settings (``shopsearch.synthesis.evaluation.SETTINGS``):

(a) seeds = the long-tail `dev` query texts, no labels (production: known tail queries without logs),
    evaluated on those queries;
(b) seeds = long-tail `train` queries only (minus any text that is a `dev` query), evaluated on the
    long-tail `dev` queries, none of which was a seed.

Per setting: seeds -> rewrites by the default local GGUF LLM (SmolLM2-135M-Instruct via llama-cpp) ->
rewards and the offline pipeline (BM25 + dense, business cross-encoder AND semantic judge, cap, dedup) ->
`shopsearch.training.train` with the pairs as ``extra_pairs`` (loss unchanged) -> evaluation on `dev`
long-tail queries per query type, with vs without the pairs (dense, and hybrid BM25 + dense), paired
significance. The model without pairs is trained once with the same recipe and shared by both settings
(or taken from a finished run with the same stage-1 config: ``--base-run``).

No `dev` label shapes the synthetic data: the business classifier is trained on 90% of the `train`
queries and both judges are calibrated on the other 10% (pass ``--classifier`` to reuse a classifier;
one from ``benchmarks/relevance_classifier.py`` is calibrated on dev, and the results say so). Training
selects checkpoints on the `dev` pool for both arms alike, as ``shopsearch train`` does.

Resumable: every step writes under ``--work`` and is skipped (or continued) when rerun. Smoke run::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/homedepot_synthesis.py --max-seeds 4 --max-steps 2 \\
        --query-sample 150 --catalog-sample 300 --calibration-queries 50 --dev-pool 500 \\
        --classifier-budget-s 20 --resamples 500 --work runs/hd-synth-smoke --out /tmp/hd_synth_smoke.json

(``--catalog-sample`` and ``--max-steps`` make figures that are NOT the benchmark protocol; the JSON says so.)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from shopsearch.artifacts import atomic_write_text, read_manifest
from shopsearch.data import load_dataset
from shopsearch.data.schema import Catalog, Dataset
from shopsearch.eval.protocols import evaluate
from shopsearch.retrieval.bm25 import BM25Retriever
from shopsearch.retrieval.dense import DenseRetriever
from shopsearch.retrieval.encoder import SentenceEncoder
from shopsearch.retrieval.fusion import HybridRetriever
from shopsearch.synthesis.audit import pair_precision
from shopsearch.synthesis.evaluation import Setting, SynthEvalConfig, evaluate_setting, seeds_for_setting
from shopsearch.synthesis.evaluation_report import json_safe
from shopsearch.synthesis.judges import (
    ClassifierTrainConfig,
    CrossEncoderJudge,
    EmbeddingJudge,
    calibrate_judge,
    judged_pairs,
    product_text_map,
    train_relevance_classifier,
)
from shopsearch.synthesis.pipeline import PipelineConfig, PipelineModels, run_pipeline
from shopsearch.synthesis.provenance import OfflineRetriever, RetrievalSettings
from shopsearch.synthesis.rewriter import MultiCandidateRewriter, RewriterConfig, rewrite_seeds
from shopsearch.synthesis.seeds import SeedConfig
from shopsearch.training.config import TrainConfig
from shopsearch.training.trainer import train

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "home-depot"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--work", type=Path, default=Path("runs/homedepot-synthesis"))
    p.add_argument("--out", type=Path, default=HERE / "results" / "homedepot_synthesis.json")
    p.add_argument("--settings", nargs="+", choices=["a", "b"], default=["a", "b"])
    p.add_argument("--max-seeds", type=int, default=None,
                   help="cap seeds per setting (round-robin over query types, seeded; stated in the results)")
    p.add_argument("--max-seeds-b", type=int, default=None,
                   help="cap setting (b)'s seeds only (its pool is every long-tail train query: ~2,200)")
    p.add_argument("--query-sample", type=int, default=None,
                   help="keep N random train and N random dev queries (smoke runs; not the protocol)")
    p.add_argument("--catalog-sample", type=int, default=None,
                   help="judged products + N random others instead of the full catalogue (smoke runs; not the protocol)")
    p.add_argument("--calibration-queries", type=int, default=None,
                   help="train queries held out to calibrate both judges (default: 10%%)")
    p.add_argument("--dev-pool", type=int, default=10000, help="products in the training dev-evaluation pool")
    p.add_argument("--classifier", type=Path, default=None, help="a trained relevance-classifier directory")
    p.add_argument("--classifier-budget-s", type=float, default=1500.0)
    p.add_argument("--semantic-precision", type=float, default=0.8, help="target precision of the semantic judge")
    p.add_argument("--business-precision", type=float, default=None,
                   help="recalibrate the business classifier at this target precision (default: keep the "
                        "threshold it was trained with, precision 0.9)")
    p.add_argument("--offline-dense", default=None, help="dense model of the offline retriever (default: bundled)")
    p.add_argument("--llm", default=None, help="GGUF path or bundled alias (default: smollm2-135m)")
    p.add_argument("--candidates", type=int, default=5, help="rewrites per seed")
    p.add_argument("--stage", choices=["1", "2", "both"], default="1")
    p.add_argument("--base-run", type=Path, default=None,
                   help="a finished shopsearch train run whose stage-1 model is the arm without pairs "
                        "(its config must match the arms')")
    p.add_argument("--max-steps", type=int, default=None, help="stop each training stage after N steps (smoke)")
    p.add_argument("--extra-weight", type=float, default=1.0)
    p.add_argument("--max-pairs-per-seed", type=int, default=20)
    p.add_argument("--min-good", type=int, default=3, help="m of QueryGoodRate@10")
    p.add_argument("--resamples", type=int, default=10000)
    p.add_argument("--threads", type=int, default=None, help="torch / llama.cpp threads")
    return p.parse_args()


def load(args: argparse.Namespace) -> tuple[Dataset, Dataset, dict[str, Any]]:
    """train and dev over one shared catalogue (optionally sampled for a smoke run)."""
    catalog = args.data / "products.csv"
    train_set = load_dataset(catalog=catalog, judgments=args.data / "judgments_train.csv", format="homedepot")
    dev_set = load_dataset(catalog=catalog, judgments=args.data / "judgments_dev.csv", format="homedepot")
    info: dict[str, Any] = {"catalogue": "full", "products": len(train_set.catalog)}
    if args.query_sample:
        rng = np.random.default_rng(0)
        train_set, dev_set = (d.subset(rng.choice(d.queries.ids, size=min(args.query_sample, len(d.queries)),
                                                  replace=False)) for d in (train_set, dev_set))
        info["queries"] = f"SAMPLE: {args.query_sample} train and dev queries (not the protocol)"
    shared = train_set.catalog
    if args.catalog_sample:
        judged = set(train_set.judgments.df["product_id"]) | set(dev_set.judgments.df["product_id"])
        df = shared.df
        others = df[~df["product_id"].isin(judged)].sample(args.catalog_sample, random_state=0)
        shared = Catalog(pd.concat([df[df["product_id"].isin(judged)], others]))
        info = {"catalogue": f"SAMPLE: judged products + {args.catalog_sample} random others (not the protocol)",
                "products": len(shared)}
    train_set = Dataset(shared, train_set.queries, train_set.judgments, meta=dict(train_set.meta))
    dev_set = Dataset(shared, dev_set.queries, dev_set.judgments, meta=dict(dev_set.meta))
    return train_set, dev_set, info


def dense(encoder: SentenceEncoder, name: str, ids: np.ndarray, texts: list[str], work: Path) -> DenseRetriever:
    """A dense retriever over the catalogue; product vectors cached under ``work`` (encoding 54k titles
    takes minutes on a CPU, and every run and setting needs the same ones)."""
    cache = work / "vectors" / f"{name}-{encoder.fingerprint()[:12]}-{len(ids)}.npy"
    if cache.is_file():
        vectors = np.load(cache)
    else:
        vectors = encoder.encode(texts, show_progress=True)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, vectors)
    return DenseRetriever(encoder, ids, vectors)


def judges(args: argparse.Namespace, train_set: Dataset, texts: dict[str, str],
           general: SentenceEncoder) -> tuple[CrossEncoderJudge, EmbeddingJudge, dict[str, Any], list[str]]:
    """The business classifier (trained on 90% of train queries unless given) and the semantic judge,
    both calibrated on the other 10% of train queries (returned last: their judgments never trained a judge)."""
    qids = train_set.queries.ids
    rng = np.random.default_rng(0)
    size = args.calibration_queries or max(50, len(qids) // 10)
    held = set(rng.choice(qids, size=min(size, len(qids) - 1), replace=False).tolist())
    fit, calib = train_set.subset([q for q in qids if q not in held]), train_set.subset(sorted(held))
    path = args.classifier or args.work / "classifier"
    if not (path / "manifest.json").is_file():
        train_relevance_classifier(fit, path, ClassifierTrainConfig(time_budget_s=args.classifier_budget_s,
                                                                    threads=args.threads), dev=calib)
    business = CrossEncoderJudge.load(path)
    semantic = EmbeddingJudge(general)
    calibration_pairs = judged_pairs(calib, texts, unjudged_per_query=1)
    info: dict[str, Any] = {}
    if args.business_precision is not None:  # recalibrate the saved classifier's threshold at another target
        business_calibration, _ = calibrate_judge(business, calibration_pairs, target_precision=args.business_precision)
        business.threshold = business_calibration.threshold
        info["business_recalibration"] = business_calibration.to_dict()
    calibration, _ = calibrate_judge(semantic, calibration_pairs, target_precision=args.semantic_precision)
    semantic.threshold = calibration.threshold
    info.update({"business": business.describe(), "semantic": semantic.describe(),
                 "semantic_calibration": calibration.to_dict(),
                 "calibration_queries": f"{len(held)} train queries (seeded), never dev",
                 "business_source": "given (--classifier): see its calibration" if args.classifier else
                                    "trained here on 90% of train queries, calibrated on the other 10%"})
    return business, semantic, info, sorted(held)


def arm_config(args: argparse.Namespace, extra: Path | None) -> TrainConfig:
    """The training config of an arm: the default recipe; ``extra`` pairs join stage 1 unchanged."""
    return TrainConfig.model_validate({
        "stage": args.stage, "max_steps": args.max_steps, "extra_pairs_weight": args.extra_weight,
        "dev": {"pool_size": args.dev_pool},
        "extra_pairs": [str(extra)] if extra is not None else [],
    })


def arm_summary(run: Path, manifest: dict[str, Any], stages: list[str] | None = None) -> dict[str, Any]:
    wall = run / "wall_seconds.txt"
    return {"run": str(run), "chosen_stage": manifest.get("chosen_stage"),
            "stages": {s: {"dev_final": v.get("dev_final"), "steps": v.get("steps"),
                           "rows": v.get("rows"), "seconds": v.get("seconds"),
                           "pairs": (v.get("data") or {}).get("merged")}
                       for s, v in manifest.get("stages", {}).items() if stages is None or s in stages},
            "wall_seconds": float(wall.read_text()) if wall.is_file() else None}


def train_arm(out: Path, train_set: Dataset, dev_set: Dataset, extra: Path | None,
              args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """Train (or resume) one arm with the default recipe; ``extra`` pairs join stage 1 unchanged."""
    if not (out / "manifest.json").is_file():
        start = time.perf_counter()
        train(train_set, arm_config(args, extra), out, dev_set=dev_set, resume=True)
        (out / "wall_seconds.txt").write_text(f"{time.perf_counter() - start:.1f}\n")
    return out / "model", arm_summary(out, json.loads((out / "manifest.json").read_text()))


# what must match for a finished run to stand in for the arm without pairs (its stage-1 model)
SHARED_CONFIG = ("encoder", "text_fields", "seed", "stage1", "dev", "max_steps", "mixed_precision")


def reuse_base_arm(run: Path, args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The stage-1 model of a finished ``shopsearch train`` run as the arm without pairs (saves a
    stage-1 training); refused unless its config matches the arms' in every field that shapes stage 1."""
    if args.stage != "1":
        raise SystemExit("--base-run stands in for a stage-1 arm only (--stage 1)")
    manifest = read_manifest(run, verify=False)
    want = arm_config(args, None).model_dump(mode="json")
    have = manifest.get("config", {})
    differ = [k for k in SHARED_CONFIG if have.get(k) != want.get(k)]
    if differ or not (run / "stage1" / "model").is_dir():
        raise SystemExit(f"--base-run {run}: no stage-1 model, or its config differs from the arms' in {differ}")
    summary = arm_summary(run, manifest, stages=["1"])
    summary["reused"] = "stage 1 of a finished shopsearch train run with the arms' stage-1 config"
    return run / "stage1" / "model", summary


def overall_dev(dev_set: Dataset, pairs_of_systems: dict[str, dict[str, Any]], resamples: int) -> dict[str, Any]:
    """Every `dev` query, not only the long tail: the issue's "overall NDCG@10 not lower by more than
    0.005" check, with vs without, dense and hybrid, paired randomisation test."""
    out: dict[str, Any] = {}
    for kind, systems in pairs_of_systems.items():
        report = evaluate(systems, dev_set.queries, dev_set.judgments, baseline="without", n_resamples=resamples,
                          show_progress=False)
        full = report.to_dict()
        out[kind] = {
            "queries": len(dev_set.queries),
            "without": full["systems"]["without"]["metrics"], "with": full["systems"]["with"]["metrics"],
            "with_vs_without": [c for c in full["comparisons"] if c["stratification"] == "overall"
                                and c["metric"] in ("ndcg@10", "recall@100", "map@10")],
        }
    return out


def run_setting(setting: Setting, args: argparse.Namespace, ctx: dict[str, Any]) -> dict[str, Any]:
    """Seeds -> rewrites -> pairs -> training -> evaluation for one setting; each step resumable."""
    train_set, dev_set = ctx["train"], ctx["dev"]
    base = args.work / f"setting-{setting}"
    timings: dict[str, float] = {}
    start = time.perf_counter()
    cap = args.max_seeds_b if setting == "b" and args.max_seeds_b else args.max_seeds
    seeds = seeds_for_setting(setting, dev_set, train=train_set, seed_config=SeedConfig(max_seeds=cap))
    seeds.write(base / f"seeds-s{len(seeds)}")
    tag = f"s{len(seeds)}"
    rewrites = rewrite_seeds(seeds.df, base / "rewrites", ctx["rewriter"], batch_size=8)
    timings["rewrite_s"] = time.perf_counter() - start
    start = time.perf_counter()
    pairs = run_pipeline(rewrites, base / f"pairs-{tag}-{ctx['judge_tag']}", ctx["models"],
                         PipelineConfig(max_pairs_per_seed=args.max_pairs_per_seed))
    timings["pipeline_s"] = time.perf_counter() - start
    # precision of the kept pairs on judgments the pipeline never read: (a) dev judgments of the seeds
    # themselves; (b) train judgments of the seeds among the judges' calibration queries (held out of
    # the classifier's training, used only to set thresholds)
    audit_judgments = (dev_set.judgments if setting == "a" else
                       train_set.judgments.for_queries(ctx["calibration_qids"]))
    audit = pair_precision(pairs.pairs, audit_judgments)
    # one grade lower too: Home Depot's stage 1 trains on substitutes (grade 4, r = 2.33) as positives
    audit["one_grade_lower"] = pair_precision(pairs.pairs, audit_judgments,
                                              relevant_min=audit_judgments.scheme.relevant_min - 1)
    audit["against"] = ("dev judgments of the seed queries (never read by the pipeline)" if setting == "a" else
                        "train judgments of the seeds that are judge-calibration queries (never trained a judge)")
    start = time.perf_counter()
    steps = f"-steps{args.max_steps}" if args.max_steps else ""
    model, training = train_arm(base / f"train-{tag}-{ctx['judge_tag']}-stage{args.stage}{steps}", train_set, dev_set,
                                pairs.path / "pairs.parquet", args)
    timings["train_s"] = time.perf_counter() - start
    start = time.perf_counter()
    with_pairs = dense(SentenceEncoder(str(model)), f"setting-{setting}-{tag}-{ctx['judge_tag']}{steps}", ctx["ids"], ctx["texts"],
                       args.work)
    without = ctx["without"]
    config = SynthEvalConfig(n_resamples=args.resamples, min_good=args.min_good)
    reports = {}
    compared = {"dense": {"without": without, "with": with_pairs},
                "hybrid": {"without": HybridRetriever([ctx["bm25"], without], method="rrf", rescore_union=False),
                           "with": HybridRetriever([ctx["bm25"], with_pairs], method="rrf", rescore_union=False)}}
    for kind, systems in compared.items():
        report = evaluate_setting(setting, systems, dev_set, seeds, classifier=ctx["business"],
                                  product_texts=ctx["text_map"], config=config,
                                  dataset_info={"name": "home-depot", "split": "dev", **ctx["data_info"]})
        report.write_markdown(base / f"report-{kind}-{tag}{steps}.md")
        reports[kind] = report
    overall = overall_dev(dev_set, compared, args.resamples)
    timings["evaluate_s"] = time.perf_counter() - start
    return {
        "seeds": seeds.method,
        "rewrites": read_manifest(rewrites, verify=False)["summary"],
        "pairs": pairs.summary,
        "pair_precision": audit,
        "training_with_pairs": training,
        "evaluation": {k: r.to_dict(per_query=False) for k, r in reports.items()},
        "overall_dev": overall,
        "markdown": {k: f"<!-- {k} retrieval -->\n" + r.to_markdown().replace(
            f"setting ({setting})", f"setting ({setting}), {k} retrieval", 1) for k, r in reports.items()},
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }


def main() -> None:
    args = parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    train_set, dev_set, data_info = load(args)
    steps = f"-steps{args.max_steps}" if args.max_steps else ""
    if args.base_run is not None:  # checked first: a mismatch is refused before any long step
        base_model, base_training = reuse_base_arm(args.base_run, args)
    else:
        base_model, base_training = train_arm(args.work / f"train-base-stage{args.stage}{steps}", train_set,
                                              dev_set, None, args)
    text_map = product_text_map(train_set.catalog)
    ids = train_set.catalog.ids
    texts = [text_map[p] for p in ids]
    general = SentenceEncoder()
    bm25 = BM25Retriever(ids, texts)
    offline_encoder = general if args.offline_dense is None else SentenceEncoder(args.offline_dense)
    offline = OfflineRetriever(bm25, dense(offline_encoder, "offline", ids, texts, args.work),
                               depth=RetrievalSettings().depth)
    business, semantic, judge_info, calibration_qids = judges(args, train_set, text_map, general)
    from shopsearch.synthesis.llm import build_backend

    backend = build_backend("llama_cpp", **({"model": args.llm} if args.llm else {}),
                            **({"n_threads": args.threads} if args.threads else {}))
    rewriter = MultiCandidateRewriter(backend, RewriterConfig(n=args.candidates))
    ctx: dict[str, Any] = {
        "train": train_set, "dev": dev_set, "data_info": data_info, "ids": ids, "texts": texts,
        "text_map": text_map, "bm25": bm25, "business": business, "calibration_qids": calibration_qids,
        "judge_tag": f"b{business.threshold:.3f}-e{semantic.threshold:.3f}",
        "rewriter": rewriter,
        "models": PipelineModels(offline, business, semantic, text_map),
        "without": dense(SentenceEncoder(str(base_model)), f"base{steps}", ids, texts, args.work),
    }
    results = {s: run_setting(s, args, ctx) for s in args.settings}
    smoke = bool(args.max_steps or args.catalog_sample or args.query_sample)
    out = {
        "benchmark": "homedepot_synthesis",
        "date": dt.date.today().isoformat(),
        "command": " ".join(sys.argv),
        "smoke_run": smoke,
        "comparability": ("SMOKE RUN: queries, steps or catalogue reduced; figures test the plumbing only" if smoke else
                          "full-corpus retrieval on dev long-tail queries (tiers by the IDF proxy: Home Depot has "
                          "no traffic counts); see each report's protocol"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "data": {**data_info, "train": train_set.summary(), "dev": dev_set.summary()},
        "judges": judge_info,
        "offline_retriever": offline.describe(),
        "rewriter": rewriter.describe(),
        "seed_caps": {"per_setting": args.max_seeds, "setting_b": args.max_seeds_b},
        "training_without_pairs": base_training,
        "settings": {s: {k: v for k, v in r.items() if k != "markdown"} for s, r in results.items()},
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(json_safe(out), indent=2, default=str, allow_nan=False) + "\n")
    markdown = "\n".join(md for r in results.values() for md in r["markdown"].values())
    atomic_write_text(args.out.with_suffix(".md"), markdown)
    print(f"wrote {args.out} and {args.out.with_suffix('.md')} ({out['wall_seconds']} s)")


if __name__ == "__main__":
    main()
