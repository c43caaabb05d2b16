"""Rewriter rewards (METHOD.md part B, step 2): each component, the negation penalty, alignment and batching.

Real code paths on a few hundred real rows: a Home Depot sample read from ../shared/data/home-depot at
test time (skipped to the synthetic demo shop when absent), the bundled all-MiniLM-L6-v2 and BM25. The
business judge is an oracle over the sample's judgments (a CallableJudge), so the expectations are exact.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from shopsearch.data.demo import DemoShopConfig, generate_demo_shop
from shopsearch.data.schema import HOME_DEPOT, Catalog, Dataset, Judgments, Queries
from shopsearch.retrieval.bm25 import BM25Retriever
from shopsearch.retrieval.encoder import SentenceEncoder
from shopsearch.synthesis.judges.base import CallableJudge
from shopsearch.synthesis.judges.pairs import product_text_map
from shopsearch.synthesis.rewards import (
    RewardError,
    RewardModels,
    RewardWeights,
    group_rewards,
    lost_negations,
    negated_terms,
    negation_loss,
    novel_good,
    pairwise_diversity,
    product_language,
    score_candidates,
    semantic_relevance,
)

HD_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "home-depot"


def small_shop(n_queries: int = 40, n_extra: int = 300) -> Dataset:
    """~40 real Home Depot train queries with their judged products plus random others; else the demo shop."""
    if not (HD_DIR / "products.csv").is_file():
        return generate_demo_shop(DemoShopConfig(n_products=300, n_queries=n_queries, judged_per_query=10))
    rows = pd.read_csv(HD_DIR / "judgments_train.csv", nrows=4000, dtype={"product_id": str})
    rows = rows[rows["query_id"].isin(sorted(rows["query_id"].unique())[:n_queries])]
    products = pd.read_csv(HD_DIR / "products.csv", dtype={"product_id": str})
    judged = products["product_id"].isin(set(rows["product_id"]))
    catalog = pd.concat([products[judged], products[~judged].sample(n_extra, random_state=0)])
    queries = rows.drop_duplicates("query_id")[["query_id", "query"]].rename(columns={"query": "text"})
    grades = rows.assign(grade=[HOME_DEPOT.to_grade(r) for r in rows["relevance"]], label=rows["relevance"])
    return Dataset(Catalog(catalog), Queries(queries), Judgments(grades, HOME_DEPOT), meta={"source": "hd-sample"})


def oracle_judge(shop: Dataset, texts: dict[str, str]) -> CallableJudge:
    """Accepts exactly the pairs judged relevant (grade >= relevant_min) in the shop."""
    qtext = dict(zip(shop.queries.df["query_id"], shop.queries.df["text"], strict=True))
    df = shop.judgments.df
    good = {(qtext[q], texts[p]) for q, p, g in zip(df["query_id"], df["product_id"], df["grade"], strict=True)
            if g >= shop.scheme.relevant_min}
    return CallableJudge(lambda qs, ts: [float((q, t) in good) for q, t in zip(qs, ts, strict=True)],
                         threshold=0.5, name="oracle")


class CountingEncoder:
    """The real encoder, counting encode() calls (batching must not call it per candidate)."""

    def __init__(self, inner: SentenceEncoder) -> None:
        self.inner, self.calls = inner, 0
        self.dimension = inner.dimension

    def encode(self, texts: list[str], *, is_query: bool = False, show_progress: bool = False) -> np.ndarray:
        self.calls += 1
        return self.inner.encode(texts, is_query=is_query)


@pytest.fixture(scope="module")
def shop() -> Dataset:
    return small_shop()


@pytest.fixture(scope="module")
def models(shop: Dataset) -> RewardModels:
    texts = product_text_map(shop.catalog)
    retriever = BM25Retriever(shop.catalog.ids, [texts[p] for p in shop.catalog.ids])
    encoder = CountingEncoder(SentenceEncoder())
    return RewardModels(encoder=encoder, retriever=retriever, judge=oracle_judge(shop, texts), product_texts=texts)


# --- negation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "terms"),
    [
        ("sofa without wood legs", ["wood"]),
        ("sugar-free gum", ["sugar"]),
        ("non-slip bath mat", ["slip"]),
        ("gluten free pasta", ["gluten"]),
        ("toys not for kids", ["kids"]),
        ("drill w/o batteries", ["batteries"]),
        ("paint except white", ["white"]),
        ("water bottle free of bpa", ["bpa"]),
        ("shelf without any screws", ["screws"]),
        ("no. 2 pencil", []),
        ("free standing bath tub", []),
        ("cordless drill", []),
    ],
)
def test_negated_terms_follow_the_documented_cues(query: str, terms: list[str]) -> None:
    assert [t.term for t in negated_terms(query)] == terms


@pytest.mark.parametrize(
    ("rewrite", "lost"),
    [
        ("wood leg sofa", ["wood"]),  # negated term stated affirmatively: the negation is lost
        ("sofa with wooden legs and wood frame", ["wood"]),
        ("sofa with metal legs", []),  # the negated attribute dropped
        ("sofa without solid wood legs", []),  # kept under a cue within the scope
        ("wood-free sofa", []),
        ("sofa no wood", []),
    ],
)
def test_negation_lost_only_when_the_term_is_stated_affirmatively(rewrite: str, lost: list[str]) -> None:
    assert lost_negations("sofa without wood legs", rewrite) == lost


def test_rewrite_cues_anti_and_resistant_keep_a_negation() -> None:
    assert lost_negations("non slip bath mat", "anti slip bath mat") == []
    assert lost_negations("non slip bath mat", "slip resistant bath mat") == []
    assert lost_negations("non slip bath mat", "slip bath mat") == ["slip"]
    assert negation_loss("gluten free pasta without egg", "egg pasta gluten free") == 0.5
    assert negation_loss("red paint", "blue paint") == 0.0


def test_negation_penalty_fires_in_score_candidates(models: RewardModels) -> None:
    seed = "gray cushion without feathers"
    frame = score_candidates(seed, ["gray feather cushion", "gray cushion with polyester filling"], models)
    assert frame["negation_lost"].tolist() == [1.0, 0.0]
    assert frame["lost_terms"].tolist() == [("feathers",), ()]
    # relevance = clip(cos) - 1.0 * lost: the lost one drops by the full penalty despite a high cosine
    np.testing.assert_allclose(frame["relevance"], np.clip(frame["intent_similarity"], 0, 1) - [1.0, 0.0])
    assert frame["intent_similarity"].iloc[0] > 0.5 and frame["relevance"].iloc[0] < frame["relevance"].iloc[1]


# --- pure components ------------------------------------------------------------------------------


def test_semantic_relevance_clips_and_penalises() -> None:
    out = semantic_relevance(np.array([1.2, -0.3, 0.6]), np.array([0.0, 0.0, 0.5]), penalty=0.8)
    np.testing.assert_allclose(out, [1.0, 0.0, 0.2])


def test_pairwise_diversity_and_novelty() -> None:
    v = np.array([[1, 0], [1, 0], [0, 1], [1, 0]], dtype=np.float32)
    groups = np.array([0, 0, 0, 1])
    div = pairwise_diversity(v, groups, np.array([True, True, True, True]))
    np.testing.assert_allclose(div, [0.5, 0.5, 1.0, 0.0])  # duplicates are redundant; a lone candidate earns 0
    div = pairwise_diversity(v, groups, np.array([True, False, True, True]))  # the malformed duplicate is ignored
    np.testing.assert_allclose(div, [1.0, 0.0, 1.0, 0.0])
    nov = novel_good([("a", "b"), ("b", "c"), ("a",), ("a",)], groups, np.array([True, True, True, True]), k=4)
    np.testing.assert_allclose(nov, [0.5, 0.25, 0.0, 0.25])


def test_product_language_averages_over_retrieved_only() -> None:
    r = np.array([[1.0, 0.0], [0.0, 1.0]])
    p = np.array([[[1.0, 0.0], [0.6, 0.8]], [[0.0, 0.0], [0.0, 0.0]]])
    out = product_language(r, p, np.array([[True, True], [False, False]]))
    np.testing.assert_allclose(out, [0.8, 0.0])


def test_reward_weights_validate() -> None:
    with pytest.raises(ValidationError):
        RewardWeights(relevance=-1.0)
    with pytest.raises(ValidationError):
        RewardWeights(bogus=1.0)


# --- alignment, format and batching through score_candidates -----------------------------------


def _seed_with_good_products(shop: Dataset, texts: dict[str, str]) -> tuple[str, list[str], str]:
    """(seed text, titles of its relevant products, text of a query sharing no word with it)."""
    df = shop.judgments.df
    rel = df[df["grade"] >= shop.scheme.relevant_min].groupby("query_id")["product_id"].agg(list)
    qtext = dict(zip(shop.queries.df["query_id"], shop.queries.df["text"], strict=True))
    qid = max(rel.index, key=lambda q: (len(rel[q]), q))
    seed = qtext[qid]
    other = next(t for q, t in sorted(qtext.items()) if not set(t.lower().split()) & set(seed.lower().split()))
    return seed, [texts[p] for p in rel[qid]], other


def test_alignment_prefers_a_rewrite_that_retrieves_good_products(shop: Dataset, models: RewardModels) -> None:
    seed, good_titles, unrelated = _seed_with_good_products(shop, dict(models.product_texts))
    frame = score_candidates(seed, [good_titles[0], unrelated], models, k=10)
    good, bad = frame.iloc[0], frame.iloc[1]
    assert good["n_good"] >= 1 and bad["n_good"] == 0
    assert good["goodrate"] == good["n_good"] / 10 > bad["goodrate"] == 0.0
    assert set(good["good_ids"]) <= set(good["top_ids"])
    assert good["reward"] > bad["reward"]
    # the good rewrite is a product title: closer to product language than an unrelated query
    assert 0.0 <= bad["product_language"] < good["product_language"] <= 1.0


def test_format_penalty_is_subtracted_and_empty_candidates_get_only_the_penalty(models: RewardModels) -> None:
    w = RewardWeights(format=2.0)
    cands = ["cordless drill driver", "", "drill kit"]
    frame = score_candidates("cordless drill", cands, models, format_ok=[True, True, False], weights=w)
    assert frame["format_ok"].tolist() == [True, False, False]  # empty text is malformed whatever the parser said
    assert frame["format_penalty"].tolist() == [0.0, 1.0, 1.0]  # no graded penalty given: 1 - format_ok
    assert frame["reward"].iloc[1] == -2.0 and frame["n_retrieved"].iloc[1] == 0  # empty: not searched
    content = (frame["relevance"] + frame["goodrate"] + 0.25 * frame["product_language"]
               + 0.5 * frame["diversity"] + 0.5 * frame["novelty"])
    np.testing.assert_allclose(frame["reward"].iloc[[0, 2]], (content - 2.0 * frame["format_penalty"]).iloc[[0, 2]])
    # the rewriter parser's graded penalty (RewriteCandidates.format_penalty), one value for the answer
    graded = score_candidates("cordless drill", cands, models, format_ok=False, format_penalty=0.25, weights=w)
    assert graded["format_penalty"].tolist() == [0.25, 1.0, 0.25]
    np.testing.assert_allclose(graded["reward"].iloc[0], content.iloc[0] - 0.5, atol=1e-6)
    with pytest.raises(RewardError, match="outside"):
        score_candidates("cordless drill", cands, models, format_penalty=1.5)
    none_parsed = score_candidates(["cordless drill", "garden hose"], [["drill kit"], []], models, weights=w)
    assert none_parsed["seed_id"].tolist() == [0, 1] and none_parsed["reward"].iloc[1] == -2.0
    assert group_rewards(none_parsed)["reward"].tolist()[1] == -2.0  # every seed keeps a group reward


def test_batch_equals_single_calls_and_encodes_once_per_kind(models: RewardModels) -> None:
    seeds = ["cordless drill", "sofa without wood legs", "garden hose 50 ft"]
    cands = [["drill driver 18v", "impact drill"], ["metal leg sofa", "wood sofa"], ["50 ft hose", "hose reel"]]
    models.cache._store.clear()
    models.encoder.calls = 0
    batch = score_candidates(seeds, cands, models)
    assert models.encoder.calls <= 3  # rewrites, seeds, product texts: one call each for the whole batch
    assert batch["seed_id"].tolist() == [0, 0, 1, 1, 2, 2]
    for s, (seed, c) in enumerate(zip(seeds, cands, strict=True)):
        single = score_candidates(seed, c, models)
        cols = ["relevance", "goodrate", "product_language", "diversity", "novelty", "reward"]
        np.testing.assert_allclose(batch[batch["seed_id"] == s][cols].to_numpy(), single[cols].to_numpy(), atol=1e-5)


def test_group_reward_is_the_method_reconstruction(models: RewardModels) -> None:
    w = RewardWeights(relevance=1.0, goodrate=2.0, diversity=0.5, product_language=0.0, novelty=0.0)
    cands = ["cordless drill driver", "18v drill", "power drill kit"]
    frame = score_candidates("cordless drill", cands, models, weights=w)
    vecs = models.cache.encode(cands, is_query=True)
    cos = np.clip(vecs @ vecs.T, 0, 1)
    mean_pair = (cos.sum() - np.trace(cos)) / 6
    expected = frame["relevance"].mean() + 2.0 * frame["goodrate"].mean() + 0.5 * (1 - mean_pair)
    assert group_rewards(frame)["reward"].iloc[0] == pytest.approx(expected, abs=1e-5)


def test_mismatched_inputs_are_reported(models: RewardModels) -> None:
    with pytest.raises(RewardError, match="format_ok"):
        score_candidates("drill", ["a", "b"], models, format_ok=[True])
    with pytest.raises(RewardError, match="format_penalty"):
        score_candidates(["drill", "saw"], [["a"], ["b"]], models, format_penalty=[0.0])
    with pytest.raises(RewardError, match="candidate lists"):
        score_candidates(["drill", "saw"], [["a"]], models)
    with pytest.raises(RewardError, match="k must be"):
        score_candidates("drill", ["a"], models, k=0)


def test_an_intent_judge_replaces_the_embedding_similarity(models: RewardModels) -> None:
    llm_like = CallableJudge(lambda qs, ts: [0.3] * len(qs), threshold=0.5, name="llm")
    plugged = RewardModels(encoder=models.encoder, retriever=models.retriever, judge=models.judge,
                           product_texts=models.product_texts, intent_judge=llm_like)
    frame = score_candidates("sofa without wood legs", ["metal leg sofa", "wood leg sofa"], plugged)
    np.testing.assert_allclose(frame["relevance"], [0.3, 0.3 - 1.0])
