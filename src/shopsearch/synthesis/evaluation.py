"""Evaluation of synthetic training data on long-tail queries, per query type (METHOD.md part B, Evaluation).

Systems are compared on the same queries: the first is the baseline (trained WITHOUT the synthetic
pairs), the others are tested against it (e.g. trained WITH them). Queries: the long tail of the
evaluation split (frequency tiers of :mod:`shopsearch.eval.strata`, as for the seeds), typed by the
:mod:`~shopsearch.synthesis.query_types` tagger; figures overall, for the knowledge-intensive types
together (every type but ``plain``), and per type. Full-corpus retrieval to ``depth``.

Metrics, per query and then averaged over queries:

- ``ndcg@10``, ``recall@100``: judged labels only, as :mod:`shopsearch.eval.metrics` defines them
  (unjudged = grade 0; recall is undefined, left out and counted, for a query without a relevant one).
- ``item_good_rate@K`` = #good items in the top K / K (the paper's ItemGoodRate; its definition is not
  published). Dividing by K: a system returning fewer than K items gets no credit for the missing ones.
- ``query_good_rate@10`` = 1 when at least m of the top 10 are good, else 0 (the paper's QueryGoodRate@10;
  m = ``min_good``, stated in every report).

An item is *good* when judged with grade >= the scheme's ``relevant_min``; an unjudged item is good when
the relevance classifier accepts it. Every good-rate figure states its label source: ``judged`` (every
item counted was judged), ``classifier`` (none was) or ``mixed`` (with the judged share).

Significance: each system vs the baseline per scope and metric: two-sided paired randomisation (sign
flip) test over queries, percentile bootstrap CI of the mean difference, Holm across every test of the
report. Two settings (:data:`SETTINGS`): (a) seeds = the evaluation queries' texts without labels (the
production case: known tail queries without logs), evaluated on those queries; (b) seeds = training-side
queries only, evaluated on evaluation queries none of which was a seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shopsearch.data.render import ProductTextRenderer
from shopsearch.data.schema import Dataset, Queries
from shopsearch.eval.metrics import per_query_metrics
from shopsearch.eval.significance import (
    bootstrap_mean_ci,
    holm,
    paired_bootstrap_ci,
    paired_randomization_test,
)
from shopsearch.eval.strata import StratumConfig, assign_frequency_strata
from shopsearch.retrieval.base import NO_ID, Retriever
from shopsearch.synthesis.errors import SynthesisError
from shopsearch.synthesis.evaluation_report import SynthEvalReport
from shopsearch.synthesis.judges.base import RelevanceJudge, score_unique
from shopsearch.synthesis.query_types import QUERY_TYPES, normalise, tag_queries
from shopsearch.synthesis.seeds import LONG_TAIL, SeedConfig, SeedSet, Tagger, select_seeds

Setting = Literal["a", "b"]
SETTINGS: dict[str, str] = {
    "a": "seeds = the evaluation queries' texts, without labels (production: known tail queries without logs); "
         "evaluated on those queries",
    "b": "seeds = training-side queries only; evaluated on evaluation queries none of which was a seed",
}
KNOWLEDGE_INTENSIVE = "knowledge-intensive"
CLASSIFIER_NOTE = ("classifier labels come from a model; if it is the business judge that filtered the synthetic "
                   "pairs, classifier-labelled figures favour the system trained on them. Judged-label figures "
                   "(ndcg, recall, and good rates whose label source is 'judged') do not.")


class SynthEvalConfig(BaseModel):
    """Settings of :func:`evaluate_synthetic` (the metric definitions are in the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    tiers: tuple[str, ...] | None = LONG_TAIL  # None: every judged query
    strata: StratumConfig = Field(default_factory=StratumConfig)
    text_fields: tuple[str, ...] = ("title",)  # product text of the IDF proxy when queries carry no traffic
    depth: int = Field(100, ge=1)
    ndcg_k: int = Field(10, ge=1)
    recall_k: int = Field(100, ge=1)
    item_k: int = Field(10, ge=1)
    query_k: int = Field(10, ge=1)
    min_good: int = Field(3, ge=1)
    n_resamples: int = Field(10000, ge=100)
    confidence: float = Field(0.95, gt=0, lt=1)
    alpha: float = Field(0.05, gt=0, lt=1)
    seed: int = 0
    batch_size: int = Field(256, ge=1)

    @model_validator(mode="after")
    def _depth_covers_cutoffs(self) -> SynthEvalConfig:
        deepest = max(self.ndcg_k, self.recall_k, self.item_k, self.query_k)
        if self.depth < deepest:
            raise ValueError(f"depth {self.depth} is below the largest cutoff {deepest}")
        if self.min_good > self.query_k:
            raise ValueError(f"min_good {self.min_good} cannot exceed query_k {self.query_k}")
        return self

    def metric_keys(self) -> list[str]:
        return [f"ndcg@{self.ndcg_k}", f"recall@{self.recall_k}", f"item_good_rate@{self.item_k}",
                f"query_good_rate@{self.query_k}"]


def catalogue_idf(dataset: Dataset, text_fields: Sequence[str] = ("title",)) -> dict[str, float] | None:
    """The IDF table of the tiers' proxy, only when the queries carry no traffic (as for the seeds)."""
    if dataset.queries.has_traffic or not len(dataset.catalog):
        return None
    from shopsearch.eval.pipeline import term_idf

    return term_idf(ProductTextRenderer(fields=tuple(text_fields)).render(dataset.catalog))


def tail_query_ids(dataset: Dataset, config: SynthEvalConfig | None = None) -> tuple[list[str], dict[str, Any]]:
    """Judged, non-empty queries in ``config.tiers`` (all judged ones for None), and the tiering method."""
    config = config or SynthEvalConfig()
    df = dataset.queries.df
    judged = df["query_id"].isin(set(dataset.judgments.df["query_id"])) & (df["text"].str.strip() != "")
    tiers, method = assign_frequency_strata(dataset.queries, config.strata, catalogue_idf(dataset, config.text_fields))
    keep = judged.to_numpy(copy=True)
    if config.tiers is not None:
        keep &= tiers.reindex(df["query_id"]).isin(config.tiers).to_numpy()
    return df.loc[keep, "query_id"].astype(str).tolist(), method


def seeds_for_setting(
    setting: Setting,
    evaluation: Dataset,
    *,
    train: Dataset | None = None,
    seed_config: SeedConfig | None = None,
    tagger: Tagger | None = None,
    text_fields: Sequence[str] = ("title",),
) -> SeedSet:
    """The seeds of a setting. (a): the evaluation queries' texts (queries only: no judgment is read);
    (b): ``train``'s queries, minus any whose normalised text is an evaluation query."""
    if setting == "a":
        seeds = select_seeds(evaluation.queries, seed_config, idf=catalogue_idf(evaluation, text_fields), tagger=tagger)
        seeds.method["setting"] = {"name": "a", "description": SETTINGS["a"], "labels_read": "none"}
        return seeds
    if setting != "b":
        raise SynthesisError(f"unknown setting {setting!r}; choose 'a' or 'b' ({SETTINGS})")
    if train is None:
        raise SynthesisError("setting (b) needs the training-side dataset (train=...) to draw seeds from")
    held_out = set(evaluation.queries.df["text"].map(normalise))
    overlap = train.queries.df["text"].map(normalise).isin(held_out)
    queries = Queries(train.queries.df[~overlap.to_numpy()])
    seeds = select_seeds(queries, seed_config, idf=catalogue_idf(train, text_fields), tagger=tagger)
    seeds.method["setting"] = {"name": "b", "description": SETTINGS["b"], "labels_read": "none",
                               "train_queries_dropped_as_evaluation_texts": int(overlap.sum())}
    return seeds


def evaluation_query_ids(setting: Setting, evaluation: Dataset, seeds: pd.DataFrame,
                         config: SynthEvalConfig | None = None) -> list[str]:
    """(a): the seeds that are judged evaluation queries; (b): judged tail evaluation queries whose
    normalised text is no seed's (unseen by the synthetic data)."""
    if setting == "a":
        wanted = set(seeds["seed_query_id"].astype(str)) & set(evaluation.judgments.df["query_id"])
        df = evaluation.queries.df
        keep = df["query_id"].isin(wanted) & (df["text"].str.strip() != "")
        return df.loc[keep, "query_id"].tolist()
    ids, _ = tail_query_ids(evaluation, config)
    seen = set(seeds["text"].map(normalise)) if "text" in seeds else set(seeds["seed_query"].map(normalise))
    text = dict(zip(evaluation.queries.df["query_id"], evaluation.queries.df["text"], strict=True))
    return [q for q in ids if normalise(text[q]) not in seen]


def evaluate_synthetic(
    systems: Mapping[str, Retriever],
    evaluation: Dataset,
    *,
    classifier: RelevanceJudge | None,
    product_texts: Mapping[str, str] | None = None,
    config: SynthEvalConfig | None = None,
    query_ids: Sequence[str] | None = None,
    tagger: Tagger | None = None,
    setting: Setting | None = None,
    dataset_info: Mapping[str, Any] | None = None,
) -> SynthEvalReport:
    """Every system on the long-tail queries (or ``query_ids``), per type, vs the first system.

    ``classifier`` labels unjudged items for the good rates (None: unjudged items are not good, and the
    report says so); it sees ``product_texts`` (default: titles of the evaluation catalogue).
    """
    config = config or SynthEvalConfig()
    if len(systems) < 1:
        raise SynthesisError("evaluate_synthetic needs at least one system (the baseline first)")
    ids, tier_method = tail_query_ids(evaluation, config)
    if query_ids is not None:
        judged = set(evaluation.judgments.df["query_id"])
        unknown = [q for q in query_ids if q not in judged]
        if unknown:
            raise SynthesisError(f"{len(unknown)} query_ids have no judgments in the evaluation set (e.g. {unknown[:3]})")
        ids = [str(q) for q in query_ids]
    if not ids:
        raise SynthesisError(f"no judged evaluation query in tiers {config.tiers} "
                             f"(tier counts {tier_method.get('counts')}): widen the tiers or pass query_ids")
    if product_texts is None:
        from shopsearch.synthesis.judges.pairs import product_text_map

        product_texts = product_text_map(evaluation.catalog, ProductTextRenderer(fields=config.text_fields))
    text_of = dict(zip(evaluation.queries.df["query_id"], evaluation.queries.df["text"], strict=True))
    texts = [str(text_of[q]) for q in ids]
    typed = tagger.tag_queries(texts) if tagger is not None else tag_queries(texts)
    types = typed["query_type"].astype(str).to_numpy()
    qrels = evaluation.judgments.qrels()
    scheme = evaluation.scheme
    top = max(config.item_k, config.query_k)

    runs = {name: _search(r, texts, config) for name, r in systems.items()}
    labels = _label(runs, ids, texts, qrels, scheme.relevant_min, classifier, product_texts, top)
    per_query: dict[str, pd.DataFrame] = {}
    for name, run_ids in runs.items():
        run = {q: [p for p in row if p != NO_ID] for q, row in zip(ids, run_ids.tolist(), strict=True)}
        frame = per_query_metrics(run, qrels, scheme, config.metric_keys()[:2], ids)
        good, judged_items, present = labels[name]
        frame[f"item_good_rate@{config.item_k}"] = good[:, : config.item_k].sum(axis=1) / config.item_k
        frame[f"query_good_rate@{config.query_k}"] = (good[:, : config.query_k].sum(axis=1) >= config.min_good) * 1.0
        for k in sorted({config.item_k, config.query_k}):
            frame[f"items@{k}"] = present[:, :k].sum(axis=1)
            frame[f"judged_items@{k}"] = judged_items[:, :k].sum(axis=1)
        frame["query_type"] = types
        per_query[name] = frame

    data = _summarise(per_query, types, config, classifier is not None)
    data.update({
        "setting": {"name": setting, "description": SETTINGS.get(setting or "", "not stated")},
        "protocol": {
            "retrieval": "full corpus", "catalogue_size": len(evaluation.catalog), "depth": config.depth,
            "grade_scheme": scheme.describe(), "metrics": config.metric_keys(), "min_good": config.min_good,
            "good": f"judged grade >= {scheme.relevant_min}; unjudged: "
                    + ("the classifier accepts (score >= threshold)" if classifier is not None else "not good"),
            "item_good_rate": f"#good in the top {config.item_k} / {config.item_k}, mean over queries",
            "query_good_rate": f"share of queries with >= {config.min_good} good items in the top {config.query_k}",
            "judged_metrics": "ndcg and recall use judged labels only (unjudged = grade 0)",
        },
        "classifier": classifier.describe() if classifier is not None else None,
        "queries": {"evaluated": len(ids), "tiers": list(config.tiers) if config.tiers else "all judged",
                    "tier_method": tier_method, "types": {str(t): int((types == t).sum()) for t in _type_order(types)},
                    "tagger": "rules" if tagger is None else type(tagger).__name__},
        "dataset": dict(dataset_info or {}),
        "notes": [CLASSIFIER_NOTE] if classifier is not None else
                 ["no classifier: unjudged items count as not good (good rates are judged-label lower bounds)"],
    })
    return SynthEvalReport(data, per_query)


def evaluate_setting(
    setting: Setting,
    systems: Mapping[str, Retriever],
    evaluation: Dataset,
    seeds: SeedSet | pd.DataFrame,
    *,
    classifier: RelevanceJudge | None,
    product_texts: Mapping[str, str] | None = None,
    config: SynthEvalConfig | None = None,
    tagger: Tagger | None = None,
    dataset_info: Mapping[str, Any] | None = None,
) -> SynthEvalReport:
    """One setting end to end: its evaluation queries (:func:`evaluation_query_ids`), then
    :func:`evaluate_synthetic`; the report records how many seeds and evaluated queries overlap."""
    frame = seeds.df if isinstance(seeds, SeedSet) else seeds
    ids = evaluation_query_ids(setting, evaluation, frame, config)
    report = evaluate_synthetic(systems, evaluation, classifier=classifier, product_texts=product_texts,
                                config=config, query_ids=ids, tagger=tagger, setting=setting,
                                dataset_info=dataset_info)
    seed_texts = set(frame["text" if "text" in frame else "seed_query"].map(normalise))
    text_of = dict(zip(evaluation.queries.df["query_id"], evaluation.queries.df["text"], strict=True))
    report.data["setting"].update({
        "seeds": len(frame),
        "evaluated_queries_that_were_seeds": sum(normalise(text_of[q]) in seed_texts for q in ids),
    })
    return report


# ---------------------------------------------------------------------------------------------
# Runs, labels, summaries.
# ---------------------------------------------------------------------------------------------


def _search(retriever: Retriever, texts: list[str], config: SynthEvalConfig) -> np.ndarray:
    rows = []
    for start in range(0, len(texts), config.batch_size):
        rows.append(retriever.search(texts[start : start + config.batch_size], config.depth).ids)
    return np.concatenate(rows, axis=0) if rows else np.full((0, config.depth), NO_ID, dtype=object)


def _label(runs: Mapping[str, np.ndarray], ids: list[str], texts: list[str], qrels: Mapping[str, Mapping[str, int]],
           relevant_min: int, classifier: RelevanceJudge | None, product_texts: Mapping[str, str],
           top: int) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per system (good, judged, present) bool arrays over the top ``top`` items; the unjudged items of
    every system are scored by the classifier in one call, each distinct pair once."""
    shaped = {}
    ask: list[tuple[str, np.ndarray, np.ndarray]] = []
    for name, run in runs.items():
        head = run[:, :top]
        if head.shape[1] < top:
            head = np.pad(head, ((0, 0), (0, top - head.shape[1])), constant_values=NO_ID)
        present = head != NO_ID
        judged = np.zeros_like(present)
        good = np.zeros_like(present)
        for i, q in enumerate(ids):
            qrel = qrels.get(q, {})
            for j in np.flatnonzero(present[i]):
                grade = qrel.get(str(head[i, j]))
                if grade is not None:
                    judged[i, j], good[i, j] = True, grade >= relevant_min
        shaped[name] = (good, judged, present)
        rows, cols = np.nonzero(present & ~judged)
        ask.append((name, rows, cols))
    if classifier is not None:
        queries, items = [], []
        for name, rows, cols in ask:
            queries += [texts[r] for r in rows]
            items += [str(runs[name][r, c]) for r, c in zip(rows, cols, strict=True)]
        missing = sorted(set(items) - set(product_texts))
        if missing:
            raise SynthesisError(f"{len(missing)} retrieved products have no text for the classifier (e.g. {missing[:3]})")
        accept = score_unique(classifier, queries, [product_texts[p] for p in items]) >= classifier.threshold
        at = 0
        for name, rows, cols in ask:
            shaped[name][0][rows, cols] = accept[at : at + len(rows)]
            at += len(rows)
    return shaped


def _type_order(types: np.ndarray) -> list[str]:
    present = set(types.tolist())
    return [t for t in QUERY_TYPES if t in present] + sorted(present - set(QUERY_TYPES))


def _scopes(types: np.ndarray) -> list[tuple[str, np.ndarray]]:
    scopes = [("overall", np.ones(len(types), dtype=bool))]
    knowledge = types != "plain"
    if knowledge.any() and not knowledge.all():
        scopes.append((KNOWLEDGE_INTENSIVE, knowledge))
    return scopes + [(t, types == t) for t in _type_order(types)]


def _label_source(frame: pd.DataFrame, mask: np.ndarray, k: int, has_classifier: bool) -> tuple[str, float | None]:
    items = float(frame[f"items@{k}"].to_numpy()[mask].sum())
    judged = float(frame[f"judged_items@{k}"].to_numpy()[mask].sum())
    if items == 0:
        return "none (nothing retrieved)", None
    share = judged / items
    if share == 1.0:
        return "judged", share
    if not has_classifier:
        return "judged (unjudged = not good)", share
    return ("classifier" if share == 0.0 else "mixed"), share


def _summarise(per_query: Mapping[str, pd.DataFrame], types: np.ndarray, config: SynthEvalConfig,
               has_classifier: bool) -> dict[str, Any]:
    names = list(per_query)
    keys = config.metric_keys()
    label_k = {keys[2]: config.item_k, keys[3]: config.query_k}
    ci_args: dict[str, Any] = {"n_resamples": config.n_resamples, "confidence": config.confidence, "seed": config.seed}
    scopes_out: dict[str, Any] = {}
    comparisons: list[dict[str, Any]] = []
    for scope, mask in _scopes(types):
        entry: dict[str, Any] = {"n": int(mask.sum()), "systems": {}}
        for name in names:
            frame = per_query[name]
            figures: dict[str, Any] = {}
            for key in keys:
                v = frame[key].to_numpy(dtype=np.float64)[mask]
                ok = ~np.isnan(v)
                source, share = (("judged", 1.0) if key not in label_k
                                 else _label_source(frame, mask, label_k[key], has_classifier))
                figures[key] = {"value": float(v[ok].mean()) if ok.any() else None, "n": int(ok.sum()),
                                "ci": list(bootstrap_mean_ci(v, **ci_args)), "label_source": source,
                                "judged_share": share}
            entry["systems"][name] = figures
        scopes_out[scope] = entry
        for name in names[1:]:
            for key in keys:
                a = per_query[name][key].to_numpy(dtype=np.float64)[mask]
                b = per_query[names[0]][key].to_numpy(dtype=np.float64)[mask]
                n = int((~(np.isnan(a) | np.isnan(b))).sum())
                if n == 0:
                    continue
                diff, lo, hi = paired_bootstrap_ci(a, b, **ci_args)
                if key in label_k:
                    both = pd.concat([per_query[name][mask], per_query[names[0]][mask]])
                    source, share = _label_source(both, np.ones(len(both), dtype=bool), label_k[key], has_classifier)
                else:
                    source, share = "judged", 1.0
                comparisons.append({
                    "scope": scope, "metric": key, "system": name, "baseline": names[0], "n": n,
                    "diff_points": 100 * diff, "ci_low_points": 100 * lo, "ci_high_points": 100 * hi,
                    "p_value": paired_randomization_test(a, b, n_resamples=config.n_resamples, seed=config.seed),
                    "label_source": source, "judged_share": share,
                })
    adjusted = holm([c["p_value"] for c in comparisons])
    for c, p in zip(comparisons, adjusted, strict=True):
        c["p_holm"] = None if math.isnan(p) else float(p)
        c["significant"] = bool(p < config.alpha) if not math.isnan(p) else False
    return {
        "systems": names, "baseline": names[0], "metric_keys": keys, "scopes": scopes_out,
        "comparisons": comparisons,
        "significance": {
            "test": "two-sided paired randomisation (sign flips of per-query differences), p = (1 + hits) / "
                    "(1 + resamples); CI: percentile bootstrap over queries", "multiple_testing":
                    f"Holm across all {len(comparisons)} tests", "n_resamples": config.n_resamples,
            "confidence": config.confidence, "alpha": config.alpha, "seed": config.seed,
            "differences": "in points (x100)"},
    }
