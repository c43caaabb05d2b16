"""Rewriter accuracy on a hand-labelled sample, per query type (METHOD.md part B: the paper reports
rewriter accuracy > 90% on Q&A and 81.6% on negative queries; alternative-intent queries remain weak).

Two steps:

``generate``  runs the DEFAULT rewriter (SmolLM2-135M-Instruct GGUF through llama-cpp-python,
              ``RewriterConfig()`` defaults: 5 candidates, numbered list, 2 shots, temperature 0.8,
              seed 0) on the seeds of ``benchmarks/labels/seeds.csv``, each prompted with the type the
              rule tagger gives it (as the pipeline does), and writes one row per parsed candidate to
              ``benchmarks/labels/rewriter_sample.csv`` with an empty ``label`` column for a human
              annotator; the raw answers go to ``rewriter_sample_raw.jsonl``. It refuses to overwrite a
              labelled file.
``score``     (the default) reads the labelled CSV (guideline: ``benchmarks/labels/README.md``) and writes
              ``benchmarks/results/rewriter_accuracy.json``: per query type (the annotator's type),
              the ``good`` share and the ``good + partial`` share with Wilson 95% CIs, over every
              candidate and over each seed's first candidate, plus the rule tagger's accuracy on the
              seeds against the annotator's type.

The candidates of one seed are not independent (one prompt, one sampled answer), so the Wilson CI over
candidates is too narrow; the JSON also gives a seed-clustered bootstrap CI, and the first-candidate
figures (one per seed) are independent draws for which Wilson is exact in spirit.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rewriter_accuracy.py generate
    .venv/bin/python benchmarks/rewriter_accuracy.py            # score
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shopsearch.eval.significance import wilson_interval

HERE = Path(__file__).resolve().parent
LABELS = HERE / "labels"
SEEDS = LABELS / "seeds.csv"
SAMPLE = LABELS / "rewriter_sample.csv"
RAW = LABELS / "rewriter_sample_raw.jsonl"
RESULT = HERE / "results" / "rewriter_accuracy.json"
TYPES = ("qa", "negative", "alternative", "knowledge", "plain")
LABEL_VALUES = ("good", "partial", "bad")
COLUMNS = ["seed", "type", "rule_type", "source", "candidate", "rewrite", "label", "note"]
PAPER = {"qa": "> 90%", "negative": "81.6%", "alternative": "weak (no figure)"}


def wilson(k: int, n: int) -> list[float] | None:
    """Wilson 95% interval of k successes in n trials, rounded for the JSON (None when n = 0)."""
    ci = wilson_interval(k, n)
    return None if ci is None else [round(ci[0], 4), round(ci[1], 4)]


def clustered_ci(hits: np.ndarray, clusters: np.ndarray, *, n_resamples: int = 5000, seed: int = 0,
                 confidence: float = 0.95) -> list[float] | None:
    """Percentile bootstrap CI of a share, resampling whole seeds (their candidates are correlated)."""
    if len(hits) == 0:
        return None
    ids, codes = np.unique(clusters, return_inverse=True)
    k = np.bincount(codes, weights=hits.astype(float), minlength=len(ids))
    n = np.bincount(codes, minlength=len(ids)).astype(float)
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, len(ids), size=(n_resamples, len(ids)))
    shares = k[draw].sum(axis=1) / n[draw].sum(axis=1)
    alpha = (1 - confidence) / 2
    return [round(float(np.quantile(shares, alpha)), 4), round(float(np.quantile(shares, 1 - alpha)), 4)]


def share(frame: pd.DataFrame, accept: tuple[str, ...], clustered: bool) -> dict[str, Any]:
    hits = frame["label"].isin(accept).to_numpy()
    k, n = int(hits.sum()), len(hits)
    out: dict[str, Any] = {"k": k, "n": n, "share": round(k / n, 4) if n else None, "wilson_95": wilson(k, n)}
    if clustered:
        out["seed_bootstrap_95"] = clustered_ci(hits, frame["seed"].to_numpy())
    return out


# ---------------------------------------------------------------------------------------------
# generate
# ---------------------------------------------------------------------------------------------


def generate(args: argparse.Namespace) -> int:
    from shopsearch.synthesis.llm import build_backend
    from shopsearch.synthesis.query_types import tag_queries
    from shopsearch.synthesis.rewriter import MultiCandidateRewriter, RewriterConfig

    if SAMPLE.is_file() and not args.force:
        labelled = pd.read_csv(SAMPLE, keep_default_na=False)
        if (labelled["label"].astype(str).str.len() > 0).any():
            print(f"{SAMPLE} holds labels; refusing to overwrite them (pass --force to start again)", file=sys.stderr)
            return 2
    seeds = pd.read_csv(SEEDS)
    seeds["rule_type"] = tag_queries(seeds["seed"].tolist())["query_type"].to_numpy()
    backend = build_backend("llama_cpp", n_threads=args.threads)
    rewriter = MultiCandidateRewriter(backend, RewriterConfig())
    rows: list[dict[str, Any]] = []
    raw: list[str] = []
    for i, s in enumerate(seeds.itertuples(index=False)):
        result = rewriter.rewrite(s.seed, s.rule_type, seed_query_id=str(i))
        raw.append(json.dumps({"seed": s.seed, "rule_type": s.rule_type, "raw": result.raw,
                               "format_ok": result.format_ok, "issues": list(result.issues)}, ensure_ascii=False))
        base = {"seed": s.seed, "type": s.type, "rule_type": s.rule_type, "source": s.source, "label": "", "note": ""}
        if not result.candidates:  # the rewriter failed this seed: one row keeps it in the denominator
            rows.append({**base, "candidate": 0, "rewrite": ""})
        for c, text in enumerate(result.candidates):
            rows.append({**base, "candidate": c, "rewrite": text})
        print(f"{i + 1}/{len(seeds)} {s.seed!r}: {result.candidates}", flush=True)
    pd.DataFrame(rows, columns=COLUMNS).to_csv(SAMPLE, index=False)
    RAW.write_text("\n".join(raw) + "\n", encoding="utf-8")
    meta = {"backend": backend.describe(), "rewriter": rewriter.describe(), "date": dt.date.today().isoformat()}
    (LABELS / "rewriter_sample_settings.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    print(f"wrote {SAMPLE} ({len(rows)} rows) and {RAW}")
    return 0


# ---------------------------------------------------------------------------------------------
# score
# ---------------------------------------------------------------------------------------------


def load_labels(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise SystemExit(f"{path}: missing columns {missing}")
    bad = frame[~frame["label"].isin(LABEL_VALUES)]
    if len(bad):
        raise SystemExit(f"{path}: {len(bad)} rows without a valid label (good|partial|bad), first at row "
                         f"{int(bad.index[0]) + 2}: {bad.iloc[0].to_dict()}")
    unknown = sorted(set(frame["type"]) - set(TYPES))
    if unknown:
        raise SystemExit(f"{path}: unknown query types {unknown}")
    return frame


def rewriter_figures(frame: pd.DataFrame) -> dict[str, Any]:
    first = frame[frame["candidate"] == 0]
    out: dict[str, Any] = {}
    for scope in (*TYPES, "knowledge-intensive", "overall"):
        if scope == "overall":
            mask = np.ones(len(frame), dtype=bool)
        elif scope == "knowledge-intensive":
            mask = (frame["type"] != "plain").to_numpy()
        else:
            mask = (frame["type"] == scope).to_numpy()
        part, part_first = frame[mask], first[first["seed"].isin(set(frame.loc[mask, "seed"]))]
        out[scope] = {
            "seeds": int(part["seed"].nunique()),
            "rewrites": len(part),
            "labels": {v: int((part["label"] == v).sum()) for v in LABEL_VALUES},
            "all_candidates": {"good": share(part, ("good",), True),
                               "good_or_partial": share(part, ("good", "partial"), True)},
            "first_candidate": {"good": share(part_first, ("good",), False),
                                "good_or_partial": share(part_first, ("good", "partial"), False)},
            "seeds_with_a_good_candidate": share(
                part.groupby("seed")["label"].agg(lambda s: "good" if (s == "good").any() else "bad").to_frame(),
                ("good",), False),
            "paper": PAPER.get(scope),
        }
    return out


def tagger_figures(frame: pd.DataFrame) -> dict[str, Any]:
    seeds = frame.drop_duplicates("seed")
    correct = seeds["type"] == seeds["rule_type"]
    per_type = {t: share(seeds[seeds["type"] == t].assign(label=np.where(correct[seeds["type"] == t], "good", "bad")),
                         ("good",), False) for t in TYPES}
    overall = share(seeds.assign(label=np.where(correct, "good", "bad")), ("good",), False)
    confusion = pd.crosstab(seeds["type"], seeds["rule_type"]).to_dict(orient="index")
    wrong = seeds.loc[~correct, ["seed", "type", "rule_type"]].to_dict("records")
    return {"accuracy_by_annotated_type": per_type, "overall": overall,
            "confusion": {k: {c: int(v) for c, v in row.items()} for k, row in confusion.items()},
            "mistakes": wrong}


def score(args: argparse.Namespace) -> int:
    frame = load_labels(args.sample)
    settings_file = LABELS / "rewriter_sample_settings.json"
    settings = json.loads(settings_file.read_text()) if settings_file.is_file() else None
    result = {
        "benchmark": "rewriter_accuracy",
        "date": dt.date.today().isoformat(),
        "sample": str(args.sample.relative_to(HERE.parent)) if args.sample.is_relative_to(HERE.parent) else str(args.sample),
        "guideline": "benchmarks/labels/README.md",
        "definitions": {
            "good": "keeps the intent and every constraint, in product language; would retrieve the right products",
            "partial": "on topic but loses a constraint (or is too broad / too narrow)",
            "bad": "wrong intent, negation lost or inverted, a copied few-shot example, chatter or gibberish",
            "all_candidates": "every parsed candidate of every seed (a seed with none counts one bad row); "
                              "Wilson CI treats candidates as independent (too narrow), seed_bootstrap_95 does not",
            "first_candidate": "the first parsed candidate of each seed: one independent draw per seed",
            "type": "the annotator's query type of the seed; the prompt used the rule tagger's type (rule_type)",
        },
        "rewriter": settings,
        "sources": frame.drop_duplicates("seed")["source"].value_counts().to_dict(),
        "rewriter_accuracy": rewriter_figures(frame),
        "rule_tagger": tagger_figures(frame),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{'type':<20} {'seeds':>5} {'rewrites':>8}  {'good [95% Wilson]':<26} {'good+partial':<26} first good")
    for scope, f in result["rewriter_accuracy"].items():
        g, gp, fg = f["all_candidates"]["good"], f["all_candidates"]["good_or_partial"], f["first_candidate"]["good"]
        fmt = lambda s: f"{s['share']:.1%} [{s['wilson_95'][0]:.1%}, {s['wilson_95'][1]:.1%}]" if s["n"] else "–"  # noqa: E731
        print(f"{scope:<20} {f['seeds']:>5} {f['rewrites']:>8}  {fmt(g):<26} {fmt(gp):<26} {fmt(fg)}")
    t = result["rule_tagger"]["overall"]
    print(f"rule tagger: {t['k']}/{t['n']} seeds typed as the annotator did ({t['share']:.1%})")
    print(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="step")
    g = sub.add_parser("generate", help="run the default rewriter on the seeds into an unlabelled CSV")
    g.add_argument("--threads", type=int, default=1, help="llama.cpp threads")
    g.add_argument("--force", action="store_true", help="overwrite a labelled sample")
    s = sub.add_parser("score", help="accuracy per type from the labelled CSV (the default step)")
    for parser in (p, s):
        parser.add_argument("--sample", type=Path, default=SAMPLE)
        parser.add_argument("--out", type=Path, default=RESULT)
    args = p.parse_args(argv)
    return generate(args) if args.step == "generate" else score(args)


if __name__ == "__main__":
    sys.exit(main())
