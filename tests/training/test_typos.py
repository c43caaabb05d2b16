"""Typo augmentation of training queries: one real edit per drawn row, ids untouched, seeded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopsearch.training.typos import EDITS, QueryTypoConfig, add_query_typos, misspell


def _osa_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance: insert, delete, substitute, swap adjacent = 1 each."""
    d = np.zeros((len(a) + 1, len(b) + 1), dtype=int)
    d[:, 0] = np.arange(len(a) + 1)
    d[0, :] = np.arange(len(b) + 1)
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = int(a[i - 1] != b[j - 1])
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i, j] = min(d[i, j], d[i - 2, j - 2] + 1)
    return int(d[-1, -1])


words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=9)
queries = st.lists(
    st.one_of(words, st.sampled_from(["2x4", "in.", "1/2", "w/"])), min_size=1, max_size=5
).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(text=queries, seed=st.integers(0, 2**16), edit=st.sampled_from(EDITS))
def test_a_misspelling_is_exactly_one_edit_of_the_named_kind(text, seed, edit):
    new, done = misspell(text, np.random.default_rng(seed), edits=(edit,))
    if done == "":
        assert new == text  # nothing could take this edit: the query is left as it was
        return
    assert done == edit
    if edit == "join":
        assert new.count(" ") == text.count(" ") - 1 and new.replace(" ", "") == text.replace(" ", "")
    else:
        assert _osa_distance(text, new) == 1
        assert new.count(" ") == text.count(" ")
        # the first letter of every word is kept
        assert [w[:1] for w in new.split(" ")] == [w[:1] for w in text.split(" ")]


def test_short_and_non_alphabetic_words_take_no_character_edit():
    rng = np.random.default_rng(0)
    for edit in ("delete", "insert", "substitute", "swap"):
        assert misspell("2x4 in. 1/2 pvc", rng, edits=(edit,)) == ("2x4 in. 1/2 pvc", "")
    assert misspell("drill", rng, edits=("join",)) == ("drill", "")


def _pairs(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    vocab = ["cordless", "drill", "ceiling", "light", "vanity", "faucet", "hickory", "flooring", "x", "2x4"]
    return pd.DataFrame(
        {
            "query_id": [f"q{i // 3}" for i in range(n)],
            "query": [" ".join(rng.choice(vocab, size=rng.integers(1, 4))) for _ in range(n)],
            "product_id": [f"p{i}" for i in range(n)],
        }
    )


def test_the_drawn_share_of_rows_is_misspelt_and_nothing_else_changes():
    pairs = _pairs()
    before = pairs.copy()
    out, stats = add_query_typos(pairs, QueryTypoConfig(rate=0.3, seed=7))
    pd.testing.assert_frame_equal(pairs, before)  # the input is not modified
    pd.testing.assert_frame_equal(out.drop(columns="query"), before.drop(columns="query"))
    changed = (out["query"] != before["query"]).to_numpy()
    assert stats["changed"] == changed.sum() > 0
    assert stats["drawn"] == stats["changed"] + stats["unchanged"]
    assert sum(stats.get(e, 0) for e in EDITS) == stats["changed"]
    assert 0.2 < stats["drawn"] / len(pairs) < 0.4
    again, _ = add_query_typos(pairs, QueryTypoConfig(rate=0.3, seed=7))
    pd.testing.assert_frame_equal(out, again)  # seeded
    other, _ = add_query_typos(pairs, QueryTypoConfig(rate=0.3, seed=8))
    assert not other["query"].equals(out["query"])


def test_rate_zero_is_a_plain_copy_and_bad_settings_are_refused():
    pairs = _pairs(20)
    out, stats = add_query_typos(pairs, QueryTypoConfig())
    pd.testing.assert_frame_equal(out, pairs)
    assert stats["changed"] == 0
    with pytest.raises(ValueError, match="rate"):
        QueryTypoConfig(rate=1.5)
    with pytest.raises(ValueError, match="unknown typo edits"):
        QueryTypoConfig(rate=0.5, edits=("shout",))


def test_stage1_rows_carry_the_misspelt_queries_under_their_original_keys(esci_shop):
    from shopsearch.training.config import TrainConfig
    from shopsearch.training.stage_data import stage1_data

    shop, texts = esci_shop
    clean_cfg = TrainConfig.model_validate({"stage1": {"hard_negatives": 0}})
    typo_cfg = TrainConfig.model_validate({"stage1": {"hard_negatives": 0, "query_typo_rate": 1.0}})
    clean, clean_keys, clean_stats, _ = stage1_data(shop, clean_cfg, texts, None)  # type: ignore[arg-type]
    typo, typo_keys, stats, _ = stage1_data(shop, typo_cfg, texts, None)  # type: ignore[arg-type]
    assert "query_typos" not in clean_stats
    assert stats["query_typos"]["changed"] > 0

    # the sampler still sees each query (by id) and each product as itself
    def ids(keys):
        return [{k for k in row if k[0] != "q"} for row in keys]

    assert ids(typo_keys) == ids(clean_keys)
    assert typo["positive"] == clean["positive"]
    n_changed = sum(a != b for a, b in zip(typo["anchor"], clean["anchor"], strict=True))
    assert n_changed == stats["query_typos"]["changed"]
