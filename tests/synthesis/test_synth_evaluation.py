"""Evaluation of synthetic data on long-tail queries (METHOD.md part B, Evaluation): the two seed settings,
good rates by hand with their label sources, judged metrics equal to the eval protocol's, and the flow
pipeline pairs -> "with synthetic data" system -> per-type report with paired significance."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from shopsearch.data.schema import Dataset, Queries
from shopsearch.eval.protocols import evaluate
from shopsearch.retrieval.base import NO_ID, NO_SCORE, SearchResult
from shopsearch.synthesis.evaluation import (
    KNOWLEDGE_INTENSIVE,
    SynthEvalConfig,
    evaluate_setting,
    evaluate_synthetic,
    evaluation_query_ids,
    seeds_for_setting,
)
from shopsearch.synthesis.query_types import normalise
from shopsearch.synthesis.seeds import SEED_COLUMNS, SeedConfig


class FixedRetriever:
    """Returns the listed products for each query text, in order."""

    def __init__(self, lists: dict[str, list[str]], name: str = "fixed") -> None:
        self.lists, self.name = lists, name

    def search(self, queries, k: int) -> SearchResult:
        ids = np.full((len(queries), k), NO_ID, dtype=object)
        scores = np.full((len(queries), k), NO_SCORE, dtype=np.float32)
        for i, q in enumerate(queries):
            hits = self.lists.get(q, [])[:k]
            ids[i, : len(hits)] = hits
            scores[i, : len(hits)] = -np.arange(len(hits), dtype=np.float32)
        return SearchResult(ids, scores)


class PairBoostRetriever:
    """Stands in for a retriever trained WITH the synthetic pairs: a query's synthetic products first
    (the pairs are keyed on the original query), then the base retriever's list."""

    name = "with-synthetic"

    def __init__(self, base, pairs: pd.DataFrame) -> None:
        self.base = base
        self.boost = pairs.groupby("query")["product_id"].agg(list).to_dict()

    def search(self, queries, k: int) -> SearchResult:
        base = self.base.search(queries, k)
        ids = np.full((len(queries), k), NO_ID, dtype=object)
        for i, q in enumerate(queries):
            merged = list(dict.fromkeys([*self.boost.get(q, []), *(p for p in base.ids[i] if p != NO_ID)]))[:k]
            ids[i, : len(merged)] = merged
        return SearchResult(ids, np.where(ids != NO_ID, 1.0, NO_SCORE).astype(np.float32))


SMALL = {"depth": 4, "ndcg_k": 4, "recall_k": 4, "item_k": 4, "query_k": 4, "min_good": 1, "n_resamples": 200}


def test_good_rates_by_hand_and_label_sources(synth_world) -> None:
    ds, world = synth_world.dataset, synth_world
    qrels = ds.judgments.qrels()
    text = dict(zip(ds.queries.df["query_id"], ds.queries.df["text"], strict=True))
    qids = [q for q in ds.queries.df["query_id"] if q in qrels][:5]
    judged = {text[q]: list(qrels[q])[:4] for q in qids}
    unjudged = {text[q]: [p for p in ds.catalog.ids if p not in qrels[q]][:4] for q in qids}
    mixed = {t: judged[t][:2] + unjudged[t][:2] for t in judged}
    systems = {"judged": FixedRetriever(judged), "unjudged": FixedRetriever(unjudged), "mixed": FixedRetriever(mixed)}
    report = evaluate_synthetic(systems, ds, classifier=world.business, product_texts=world.texts,
                                config=SynthEvalConfig(tiers=None, **SMALL), query_ids=qids)
    relevant = ds.scheme.relevant_min

    def good(q: str, pid: str) -> bool:
        grade = qrels[q].get(pid)
        return grade >= relevant if grade is not None else world.oracle([text[q]], [world.texts[pid]])[0] >= 0.9

    for name, lists in (("judged", judged), ("unjudged", unjudged), ("mixed", mixed)):
        frame = report.per_query[name]
        expected = [sum(good(q, p) for p in lists[text[q]]) / 4 for q in qids]
        assert frame["item_good_rate@4"].tolist() == pytest.approx(expected)
        assert frame["query_good_rate@4"].tolist() == [float(e * 4 >= 1) for e in expected]
        figure = report.data["scopes"]["overall"]["systems"][name]["item_good_rate@4"]
        assert figure["value"] == pytest.approx(np.mean(expected))
        assert figure["label_source"] == {"judged": "judged", "unjudged": "classifier", "mixed": "mixed"}[name]
        assert figure["judged_share"] == {"judged": 1.0, "unjudged": 0.0, "mixed": 0.5}[name]
        assert report.data["scopes"]["overall"]["systems"][name]["ndcg@4"]["label_source"] == "judged"
    md = report.to_markdown()
    assert "label source" in md and "classifier" in md and "mixed: mixed (50% judged)" in md and "m = 1" in md

    no_classifier = evaluate_synthetic({"unjudged": FixedRetriever(unjudged)}, ds, classifier=None,
                                       config=SynthEvalConfig(tiers=None, **SMALL), query_ids=qids)
    figure = no_classifier.data["scopes"]["overall"]["systems"]["unjudged"]["item_good_rate@4"]
    assert figure["value"] == 0.0 and figure["label_source"] == "judged (unjudged = not good)"


def test_judged_metrics_equal_the_eval_protocol(synth_world) -> None:
    ds = synth_world.dataset
    bm25 = synth_world.retriever.components["bm25"]
    config = SynthEvalConfig(n_resamples=200)
    report = evaluate_synthetic({"bm25": bm25}, ds, classifier=synth_world.business, config=config)
    ids = report.per_query["bm25"].index.tolist()
    assert len(ids) == report.data["queries"]["evaluated"] > 10
    reference = evaluate({"bm25": bm25}, Queries(ds.queries.df[ds.queries.df["query_id"].isin(ids)]),
                         ds.judgments.for_queries(ids), metrics=["ndcg@10", "recall@100"], depth=100,
                         n_resamples=200, show_progress=False)
    ref = reference.per_query["bm25"].loc[ids]
    mine = report.per_query["bm25"]
    np.testing.assert_allclose(mine["ndcg@10"], ref["ndcg@10"])
    np.testing.assert_allclose(mine["recall@100"], ref["recall@100"], equal_nan=True)
    # only the long tail is evaluated
    tiers = report.data["queries"]["tier_method"]["counts"]
    assert report.data["queries"]["evaluated"] <= tiers.get("TAIL", 0) + tiers.get("ONCE ONLY", 0)


def test_setting_a_seeds_are_the_evaluation_texts_without_labels(synth_world) -> None:
    seeds = seeds_for_setting("a", synth_world.dataset, seed_config=SeedConfig(max_seeds=20))
    assert list(seeds.df.columns) == list(SEED_COLUMNS)  # no grade, label or product travels with a seed
    assert seeds.df.equals(synth_world.seeds)
    assert set(seeds.df["text"]) <= set(synth_world.dataset.queries.df["text"])
    assert seeds.method["setting"]["labels_read"] == "none"


def test_setting_b_seeds_come_from_train_and_evaluation_is_unseen(synth_world) -> None:
    ds = synth_world.dataset
    qdf = ds.queries.df
    train_ids, eval_ids = qdf["query_id"].iloc[::2].tolist(), qdf["query_id"].iloc[1::2].tolist()
    evaluation = ds.subset(eval_ids)
    leaked = qdf[qdf["query_id"] == eval_ids[-1]].assign(query_id="T-LEAK")  # same text on the train side
    train = Dataset(ds.catalog, Queries(pd.concat([qdf[qdf["query_id"].isin(train_ids)], leaked])),
                    ds.judgments.for_queries(train_ids), meta=dict(ds.meta))
    seeds = seeds_for_setting("b", evaluation, train=train)
    assert seeds.method["setting"]["train_queries_dropped_as_evaluation_texts"] == 1
    assert set(seeds.df["seed_query_id"]) <= set(train_ids)
    ids = evaluation_query_ids("b", evaluation, seeds.df, SynthEvalConfig())
    assert ids and set(ids) <= set(eval_ids)
    assert not {normalise(t) for t in qdf.set_index("query_id").loc[ids, "text"]} & set(seeds.df["text"].map(normalise))
    with pytest.raises(Exception, match="train"):
        seeds_for_setting("b", evaluation)


def test_with_vs_without_synthetic_pairs_per_type(synth_world, synth_pairs_run, tmp_path) -> None:
    ds, pairs = synth_world.dataset, synth_pairs_run.pairs
    bm25 = synth_world.retriever.components["bm25"]
    systems = {"without": bm25, "with": PairBoostRetriever(bm25, pairs)}
    report = evaluate_setting("a", systems, ds, synth_world.seeds, classifier=synth_world.business,
                              product_texts=synth_world.texts, config=SynthEvalConfig(n_resamples=500),
                              dataset_info={"name": "demo shop", "synthetic": True})
    data = report.data
    assert data["setting"]["name"] == "a" and data["setting"]["seeds"] == 20
    assert data["setting"]["evaluated_queries_that_were_seeds"] == data["queries"]["evaluated"] == 20
    scopes = data["scopes"]
    assert {"overall", KNOWLEDGE_INTENSIVE, "plain"} <= set(scopes)
    assert sum(scopes[t]["n"] for t in data["queries"]["types"]) == scopes["overall"]["n"]
    overall = scopes["overall"]["systems"]
    # the pairs are Exact products of the seeds (oracle judge): more good items at the top
    assert overall["with"]["item_good_rate@10"]["value"] > overall["without"]["item_good_rate@10"]["value"]
    assert overall["with"]["query_good_rate@10"]["value"] >= overall["without"]["query_good_rate@10"]["value"]
    comps = data["comparisons"]
    assert {c["scope"] for c in comps} == set(scopes) and {c["metric"] for c in comps} == set(data["metric_keys"])
    for c in comps:
        assert c["p_holm"] is None or c["p_holm"] >= c["p_value"] - 1e-12
        assert c["label_source"] in ("judged", "mixed", "classifier")
    igr = next(c for c in comps if c["scope"] == "overall" and c["metric"] == "item_good_rate@10")
    assert igr["diff_points"] > 0 and igr["ci_high_points"] > 0
    assert data["protocol"]["min_good"] == 3 and data["classifier"]["name"] == "business"
    out = report.write_json(tmp_path / "r.json")
    loaded = json.loads(out.read_text())
    assert loaded["per_query"]["with"] and loaded["scopes"]["overall"]["n"] == 20
    md = report.write_markdown(tmp_path / "r.md").read_text()
    assert "## item_good_rate@10" in md and "with − without" in md and "setting (a)" in md


def test_config_and_query_errors(synth_world) -> None:
    with pytest.raises(ValidationError, match="below the largest cutoff"):
        SynthEvalConfig(depth=50)
    with pytest.raises(ValidationError, match="min_good"):
        SynthEvalConfig(min_good=11)
    with pytest.raises(Exception, match="no judgments"):
        evaluate_synthetic({"x": FixedRetriever({})}, synth_world.dataset, classifier=None, query_ids=["nope"])
