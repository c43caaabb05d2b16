"""Relevance judges (METHOD.md part B, step 5): calibration, training pairs, the embedding judge and a
tiny fine-tuning run of the cross-encoder classifier, saved, reloaded and calibrated.

Real rows: a Home Depot sample read from ../shared/data/home-depot at test time (the synthetic demo
shop when absent). The full Home Depot training is benchmarks/relevance_classifier.py, not a test.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from shopsearch.artifacts import ArtifactError, read_manifest
from shopsearch.data.demo import DemoShopConfig, generate_demo_shop
from shopsearch.data.schema import HOME_DEPOT, Catalog, Dataset, Judgments, Queries
from shopsearch.synthesis.judges import (
    CallableJudge,
    ClassifierTrainConfig,
    CrossEncoderJudge,
    EmbeddingJudge,
    JudgeError,
    LengthGroupedBatchSampler,
    RelevanceJudge,
    binary_report,
    calibrate_judge,
    calibrate_threshold,
    classifier_training_pairs,
    judge_pairs,
    judged_pairs,
    product_text_map,
    train_relevance_classifier,
)

HD_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "home-depot"


def small_shop(split: str = "train", n_queries: int = 30, n_extra: int = 200) -> Dataset:
    """A few hundred real Home Depot judgments plus random other products; else the demo shop."""
    if not (HD_DIR / "products.csv").is_file():
        seed = 13 if split == "train" else 14
        return generate_demo_shop(DemoShopConfig(n_products=300, n_queries=n_queries, judged_per_query=10, seed=seed))
    rows = pd.read_csv(HD_DIR / f"judgments_{split}.csv", nrows=3000, dtype={"product_id": str})
    rows = rows[rows["query_id"].isin(sorted(rows["query_id"].unique())[:n_queries])]
    products = pd.read_csv(HD_DIR / "products.csv", dtype={"product_id": str})
    judged = products["product_id"].isin(set(rows["product_id"]))
    catalog = pd.concat([products[judged], products[~judged].sample(n_extra, random_state=0)])
    queries = rows.drop_duplicates("query_id")[["query_id", "query"]].rename(columns={"query": "text"})
    grades = rows.assign(grade=[HOME_DEPOT.to_grade(r) for r in rows["relevance"]], label=rows["relevance"])
    return Dataset(Catalog(catalog), Queries(queries), Judgments(grades, HOME_DEPOT), meta={"source": "hd-sample"})


@pytest.fixture(scope="module")
def train_shop() -> Dataset:
    return small_shop("train")


@pytest.fixture(scope="module")
def dev_shop() -> Dataset:
    return small_shop("dev", n_queries=15)


# --- calibration ----------------------------------------------------------------------------------


def test_calibration_picks_the_lowest_threshold_reaching_the_precision() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    relevant = np.array([1, 1, 0, 1, 1, 0, 0, 1], dtype=bool)
    # precision by threshold: .9->1, .8->1, .7->.67, .6->.75, .5->.8, .4->.67, .3->.57, .2->.625
    cal = calibrate_threshold(scores, relevant, target_precision=0.75, min_accepted=1)
    assert cal.reached and cal.threshold == 0.5  # non-monotone precision: the lowest passing one, not the first
    assert cal.precision == pytest.approx(0.8) and cal.recall == pytest.approx(0.8)
    assert (cal.n_pairs, cal.n_relevant, cal.n_accepted) == (8, 5, 5)
    strict = calibrate_threshold(scores, relevant, target_precision=0.95, min_accepted=3)
    assert not strict.reached  # 1.0 precision needs only 2 pairs: below the support floor
    assert strict.threshold == 0.5 and strict.precision == pytest.approx(0.8)


def test_calibration_counts_ties_together_and_refuses_one_class() -> None:
    cal = calibrate_threshold(np.array([0.5, 0.5, 0.1]), np.array([True, False, False]),
                              target_precision=0.5, min_accepted=1)
    assert cal.threshold == 0.5 and cal.n_accepted == 2
    with pytest.raises(JudgeError, match="relevant and non-relevant"):
        calibrate_threshold(np.array([0.1, 0.2]), np.array([True, True]))
    report = binary_report(np.array([0.9, 0.2, np.nan]), np.array([True, True, False]), 0.5)
    assert (report["precision"], report["recall"], report["n_accepted"]) == (1.0, 0.5, 1)


# --- pairs ------------------------------------------------------------------------------------------


def test_training_pairs_soft_labels_and_unjudged_negatives(train_shop: Dataset) -> None:
    texts = product_text_map(train_shop.catalog)
    pairs = classifier_training_pairs(train_shop, texts, unjudged_per_query=2, seed=3)
    judged = pairs[pairs["judged"]]
    assert len(judged) == len(train_shop.judgments)
    np.testing.assert_allclose(judged["label"], judged["grade"] / train_shop.scheme.max_grade, rtol=1e-6)
    extra = pairs[~pairs["judged"]]
    assert len(extra) == 2 * len(train_shop.queries) and (extra["label"] == 0).all()
    judged_keys = set(zip(train_shop.judgments.df["query_id"], train_shop.judgments.df["product_id"], strict=True))
    assert not judged_keys & set(zip(extra["query_id"], extra["product_id"], strict=True))
    again = classifier_training_pairs(train_shop, texts, unjudged_per_query=2, seed=3)
    pd.testing.assert_frame_equal(pairs, again)  # deterministic under a seed
    binary = classifier_training_pairs(train_shop, texts, label_mode="binary", unjudged_per_query=0, max_pairs=50)
    assert len(binary) == 50
    assert (binary["label"] == (binary["grade"] >= train_shop.scheme.relevant_min)).all()


def test_judged_pairs_flag_relevance_by_relevant_min(dev_shop: Dataset) -> None:
    pairs = judged_pairs(dev_shop, product_text_map(dev_shop.catalog), unjudged_per_query=1)
    judged = pairs[pairs["judged"]]
    assert (judged["relevant"] == (judged["grade"] >= dev_shop.scheme.relevant_min)).all()
    assert not pairs.loc[~pairs["judged"], "relevant"].any()
    with pytest.raises(JudgeError, match="no product text"):
        judged_pairs(dev_shop, {})


# --- judges -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def semantic() -> EmbeddingJudge:
    return EmbeddingJudge()


def test_embedding_judge_separates_judged_from_random(semantic: EmbeddingJudge, dev_shop: Dataset) -> None:
    assert isinstance(semantic, RelevanceJudge)
    pairs = judged_pairs(dev_shop, product_text_map(dev_shop.catalog), unjudged_per_query=3)
    scores = semantic.score(pairs["query"].tolist(), pairs["product_text"].tolist())
    assert scores.shape == (len(pairs),) and np.all(np.abs(scores) <= 1.0 + 1e-5)
    # random catalogue products are far less similar than the judged ones
    assert scores[pairs["judged"].to_numpy()].mean() > scores[~pairs["judged"].to_numpy()].mean() + 0.1
    np.testing.assert_array_equal(semantic.accepts(pairs["query"], pairs["product_text"]), scores >= semantic.threshold)
    cal, cal_scores = calibrate_judge(semantic, pairs, target_precision=0.6, min_accepted=5)
    np.testing.assert_allclose(cal_scores, scores, atol=1e-6)
    assert cal.n_queries == dev_shop.queries.df.shape[0] and 0.5 < cal.auc <= 1.0
    if cal.reached:
        assert cal.precision >= 0.6


def test_judge_pairs_keeps_pairs_every_judge_accepts(semantic: EmbeddingJudge) -> None:
    queries = ["cordless drill", "cordless drill", "garden hose"]
    texts = ["DEWALT 20-Volt MAX Cordless Drill", "Garden Hose 50 ft.", "Garden Hose 50 ft."]
    calls: list[int] = []

    def long_text(qs: list[str], ts: list[str]) -> list[float]:
        calls.append(len(qs))
        return [float(len(t) > 20) for t in ts]

    business = CallableJudge(long_text, threshold=0.5, name="business")
    semantic.threshold = 0.45
    frame = judge_pairs([business, semantic], queries, texts)
    assert frame["business_accept"].tolist() == [True, False, False]
    assert frame["accepted_by_all"].tolist() == list(frame["business_accept"] & frame["semantic_accept"])
    assert calls == [3]
    frame = judge_pairs([business], queries * 2, texts * 2)
    assert calls == [3, 3]  # repeated pairs are scored once
    with pytest.raises(JudgeError, match="distinct names"):
        judge_pairs([business, business], queries, texts)
    with pytest.raises(JudgeError, match="aligned pairs"):
        business.score(["a"], ["b", "c"])


# --- the business classifier (cross-encoder) --------------------------------------------------------


def test_length_grouped_sampler_yields_every_row_once_with_less_padding() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 80, size=500)
    data = {"query": ["q"] * 500, "product": ["x" * int(n) for n in lengths]}
    sampler = LengthGroupedBatchSampler(data, batch_size=16, seed=1, window=10)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 32
    assert sorted(i for b in batches for i in b) == list(range(500))
    assert batches == list(LengthGroupedBatchSampler(data, batch_size=16, seed=1, window=10))
    grouped = np.mean([lengths[b].max() for b in batches])
    random_batches = np.array_split(rng.permutation(500), 32)
    assert grouped < 0.8 * np.mean([lengths[b].max() for b in random_batches])


def test_cross_encoder_trains_saves_reloads_and_calibrates(
    train_shop: Dataset, dev_shop: Dataset, tmp_path: Path
) -> None:
    config = ClassifierTrainConfig(max_pairs=48, batch_size=16, unjudged_per_query=1, threads=1, device="cpu",
                                   min_accepted=5, target_precision=0.6, logging_steps=1)
    run = train_relevance_classifier(train_shop, tmp_path / "clf", config, dev=dev_shop)
    assert run.n_pairs == 48 and run.training["steps"] == 3
    assert run.calibration is not None and run.calibration.n_pairs == len(dev_shop.judgments)
    assert run.dev["n_pairs"] == len(dev_shop.judgments) and 0.0 <= run.dev["recall"] <= 1.0

    manifest = read_manifest(tmp_path / "clf", kind="relevance-classifier")
    assert manifest["training"]["pairs"] == 48 and manifest["config"]["label_mode"] == "soft"
    saved = json.loads((tmp_path / "clf" / "shopsearch_judge.json").read_text())
    assert saved["calibrated"] and saved["threshold"] == run.calibration.threshold

    judge = CrossEncoderJudge.load(tmp_path / "clf")
    assert isinstance(judge, RelevanceJudge) and judge.threshold == run.calibration.threshold
    pairs = judged_pairs(dev_shop, product_text_map(dev_shop.catalog))[:20]
    scores = judge.score(pairs["query"].tolist(), pairs["product_text"].tolist())
    assert scores.shape == (20,) and np.all((scores >= 0) & (scores <= 1))
    # the dev calibration was computed on the in-memory model: the reloaded one gives the same scores
    again, _ = calibrate_judge(judge, judged_pairs(dev_shop, product_text_map(dev_shop.catalog)),
                               target_precision=0.6, min_accepted=5)
    assert again.threshold == pytest.approx(run.calibration.threshold, abs=1e-5)

    (tmp_path / "clf" / "shopsearch_judge.json").write_text(json.dumps({**saved, "threshold": 0.0}))
    with pytest.raises(ArtifactError, match="checksum"):
        CrossEncoderJudge.load(tmp_path / "clf")


def test_time_budget_sizes_the_data_and_stops_training(train_shop: Dataset, tmp_path: Path) -> None:
    # a budget far below one step: the probe cuts the data to one batch and the callback stops after it
    config = ClassifierTrainConfig(batch_size=8, max_pairs=48, time_budget_s=1e-3, threads=1, device="cpu")
    run = train_relevance_classifier(train_shop, tmp_path / "clf", config)
    probe = run.training["probe"]
    assert probe["pairs_per_second"] > 0 and probe["affordable_pairs"] < 48
    assert run.n_pairs == 8 and run.training["steps"] == 1 and run.training["stopped_by_time_budget"]
    assert run.calibration is None
    assert CrossEncoderJudge.load(tmp_path / "clf").threshold == 0.5  # uncalibrated without dev
