"""Keyword pseudo-queries: the learnt per-word rates, sampling from a title, and the stage-1 rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopsearch.training.pairs import PAIR_COLUMNS
from shopsearch.training.pseudo_queries import PseudoQueryConfig, QueryTermModel, pseudo_query_pairs, words

TEXTS = {
    "p1": "DEWALT 20-Volt Cordless Drill Kit in Yellow",
    "p2": "Delta Shower Faucet in Chrome",
    "p3": "Cordless Drill with Battery",
    "p4": "Hampton Bay 52 in. Ceiling Fan in White",
    "p5": "Glacier Bay Bathroom Vanity in White",
    "p6": "",
}


def _pairs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "query_id": ["q1", "q2", "q3"],
            "query": ["cordless drill", "chrome shower faucet", "drills"],
            "product_id": ["p1", "p2", "p3"],
        }
    )


def test_words_keep_sizes_and_codes_whole():
    assert words("Southwire 14-3 NM-B 1/2 in. x 10 ft. (By-the-Foot)") == [
        "southwire", "14-3", "nm-b", "1/2", "in", "x", "10", "ft", "by-the-foot"
    ]


def test_rates_are_the_shrunk_share_of_pairs_whose_query_carries_the_word():
    pairs = _pairs()
    model = QueryTermModel.fit(pairs["query"], pairs["product_id"].map(TEXTS), prior_strength=2.0)
    # title words over the three pairs: 7 + 5 + 4 = 16; typed: cordless, drill | shower, faucet,
    # chrome | drill (the stem of "drills") = 6
    assert model.in_text["drill"] == 2 and model.in_query["drill"] == 2
    assert model.in_text["yellow"] == 1 and model.in_query.get("yellow", 0) == 0
    g = 6 / 16
    assert model.prior == pytest.approx(g)
    drill, yellow, unseen = model.rates(["Drills", "yellow", "hickory"])
    assert drill == pytest.approx((2 + 2 * g) / (2 + 2))
    assert yellow == pytest.approx((0 + 2 * g) / (1 + 2))
    assert unseen == pytest.approx(g)  # a word no pair shows falls back to the prior
    assert sorted(model.query_lengths.tolist()) == [1, 2, 3]


@settings(max_examples=100, deadline=None)
@given(
    title=st.lists(st.sampled_from(["drill", "cordless", "1/2", "in.", "Chrome", "x", "kit", "2x4"]), max_size=8).map(
        " ".join
    ),
    seed=st.integers(0, 2**16),
)
def test_a_pseudo_query_is_distinct_title_words_in_title_order(title, seed):
    pairs = _pairs()
    model = QueryTermModel.fit(pairs["query"], pairs["product_id"].map(TEXTS))
    query = model.sample(title, np.random.default_rng(seed), max_words=4)
    title_words = list(dict.fromkeys(words(title)))
    if not title_words:
        assert query == ""
        return
    picked = query.split(" ")
    assert 1 <= len(picked) <= min(4, len(title_words), max(model.query_lengths))
    assert len(set(picked)) == len(picked)
    positions = [title_words.index(w) for w in picked]
    assert positions == sorted(positions)


def test_typed_words_are_drawn_far_more_often_than_untyped_ones():
    # "drill" is typed by every shopper who found a drill, "kit" by none of 40
    pairs = pd.DataFrame(
        {"query": ["drill"] * 40, "product_id": [f"d{i}" for i in range(40)]}
    )
    texts = {f"d{i}": "drill kit" for i in range(40)}
    model = QueryTermModel.fit(pairs["query"], pairs["product_id"].map(texts))
    rng = np.random.default_rng(0)
    drawn = [model.sample("Hammer Drill Kit", rng, max_words=1) for _ in range(400)]
    assert drawn.count("drill") > 5 * drawn.count("kit")


def test_pairs_go_to_products_without_a_positive_seeded_and_capped():
    pairs = _pairs()
    out, stats = pseudo_query_pairs(pairs, TEXTS, list(TEXTS), PseudoQueryConfig(n_products=10, seed=3))
    assert list(out.columns)[: len(PAIR_COLUMNS)] == list(PAIR_COLUMNS)
    assert set(out["product_id"]) == {"p4", "p5"}  # p1-p3 have judged queries; p6 has no words
    assert stats == {
        "products_without_pairs": 3, "pairs": 2, "products_without_words": 1,
        "mean_words": pytest.approx(out["query"].str.split().str.len().mean()), "prior_rate": pytest.approx(6 / 16),
    }
    assert (out["source"] == "pseudo").all() and out["grade"].isna().all() and (out["weight"] == 1.0).all()
    assert (out["query_id"] == "text:" + out["query"]).all()
    for query, product in zip(out["query"], out["product_id"], strict=True):
        assert set(query.split()) <= set(words(TEXTS[product]))
    again, _ = pseudo_query_pairs(pairs, TEXTS, list(TEXTS), PseudoQueryConfig(n_products=10, seed=3))
    pd.testing.assert_frame_equal(out, again)
    one, stats_one = pseudo_query_pairs(pairs, TEXTS, list(TEXTS), PseudoQueryConfig(n_products=1, seed=3))
    assert len(one) + stats_one["products_without_words"] == 1


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="n_products"):
        PseudoQueryConfig(n_products=-1)
    with pytest.raises(ValueError, match="prior_strength"):
        PseudoQueryConfig(n_products=1, prior_strength=0)
    with pytest.raises(ValueError, match="max_words"):
        PseudoQueryConfig(n_products=1, max_words=0)


def test_stage1_rows_gain_pseudo_query_pairs_by_the_ratio(esci_shop):
    from shopsearch.training.config import TrainConfig
    from shopsearch.training.stage_data import stage1_data

    shop, texts = esci_shop
    plain, _, plain_stats, _ = stage1_data(
        shop, TrainConfig.model_validate({"stage1": {"hard_negatives": 0, "pseudo_query_ratio": 0}}), texts, None  # type: ignore[arg-type]
    )
    rows, keys, stats, _ = stage1_data(
        shop, TrainConfig.model_validate({"stage1": {"hard_negatives": 0, "pseudo_query_ratio": 0.5}}), texts, None  # type: ignore[arg-type]
    )
    assert "pseudo_queries" not in plain_stats
    added = stats["pseudo_queries"]["pairs"]
    # half as many as the judged pairs, unless fewer products lack a judged positive
    assert added > 0
    assert added == min(round(0.5 * len(plain["anchor"])), stats["pseudo_queries"]["products_without_pairs"])
    assert len(rows["anchor"]) == len(plain["anchor"]) + added == len(keys)
    assert stats["merged"]["by_source"]["pseudo"] == added
    assert set(rows["positive"]) > set(plain["positive"])  # products no judged query had
