"""The no-duplicates batch sampler: no shared query or product in a batch, coverage, replay."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from shopsearch.training.groups import groups_to_columns, pairs_to_columns
from shopsearch.training.sampler import NoDuplicatesBatchSampler, group_keys, pair_keys, text_keys


@st.composite
def pair_tables(draw):
    """Pair tables with many duplicates: few queries and products, optional negatives."""
    n = draw(st.integers(1, 60))
    n_q, n_p = draw(st.integers(1, 8)), draw(st.integers(1, 12))
    n_neg = draw(st.integers(0, 2))
    ids = st.integers(0, n_p - 1).map(lambda i: f"p{i}")
    rows = []
    for _ in range(n):
        q = draw(st.integers(0, n_q - 1))
        row = {"query_id": f"q{q}", "query": f"Query {q}", "product_id": draw(ids)}
        for j in range(1, n_neg + 1):
            row[f"negative_{j}"] = draw(st.one_of(st.none(), ids))
        rows.append(row)
    return pd.DataFrame(rows)


def batch_keys_are_unique(batches, keys) -> bool:
    for batch in batches:
        seen: set = set()
        for i in batch:
            if not seen.isdisjoint(keys[i]):
                return False
            seen |= keys[i]
    return True


@settings(max_examples=60, deadline=None)
@given(pairs=pair_tables(), batch_size=st.integers(1, 9), seed=st.integers(0, 3), epoch=st.integers(0, 2))
def test_property_no_repeat_full_coverage_and_determinism(pairs, batch_size, seed, epoch):
    keys = pair_keys(pairs)
    sampler = NoDuplicatesBatchSampler(pairs, batch_size, drop_last=False, seed=seed, keys=keys)
    sampler.set_epoch(epoch)
    batches = list(sampler)
    assert batch_keys_are_unique(batches, keys)
    assert all(1 <= len(b) <= batch_size for b in batches)
    assert sorted(i for b in batches for i in b) == list(range(len(pairs)))  # every row exactly once
    assert len(sampler) == len(batches)
    # a pure function of (seed, epoch): a fresh sampler (a resumed run) replays the epoch
    again = NoDuplicatesBatchSampler(pairs, batch_size, drop_last=False, seed=seed, keys=pair_keys(pairs))
    again.set_epoch(epoch)
    assert list(again) == batches
    # drop_last drops exactly the rows of incomplete batches, and says so
    dropping = NoDuplicatesBatchSampler(pairs, batch_size, drop_last=True, seed=seed, keys=keys)
    dropping.set_epoch(epoch)
    kept = list(dropping)
    assert all(len(b) == batch_size for b in kept)
    assert dropping.last_stats["rows_dropped"] == len(pairs) - sum(map(len, kept))


def test_same_query_or_product_never_share_a_batch_and_epochs_differ():
    pairs = pd.DataFrame(
        {
            "query_id": [f"q{i % 5}" for i in range(40)],
            "query": [f"q {i % 5}" for i in range(40)],
            "product_id": [f"p{i % 7}" for i in range(40)],
        }
    )
    keys = pair_keys(pairs)
    sampler = NoDuplicatesBatchSampler(pairs, 4, seed=1, keys=keys)
    e0 = list(sampler)
    sampler.set_epoch(1)
    e1 = list(sampler)
    assert e0 != e1 and batch_keys_are_unique(e0, keys) and batch_keys_are_unique(e1, keys)
    stats = sampler.last_stats
    assert stats["epoch"] == 1 and stats["rows"] == 40 and stats["rows_dropped"] == 0


def test_query_text_and_negative_ids_are_keys():
    pairs = pd.DataFrame(
        {
            "query_id": ["a", "b", "c"],
            "query": ["Drill", "drill ", "saw"],  # a and b: one query text under two ids
            "product_id": ["p1", "p2", "p3"],
            "negative_1": ["p9", "p8", "p1"],  # c's negative is a's positive
        }
    )
    batches = list(NoDuplicatesBatchSampler(pairs, 3, keys=pair_keys(pairs)))
    together = [set(b) for b in batches]
    assert not any({0, 1} <= b or {0, 2} <= b for b in together)


def test_factory_matches_the_trainer_signature_and_state_round_trip():
    pairs = pd.DataFrame({"query_id": list("abcdef"), "query": list("abcdef"), "product_id": list("uvwxyz")})
    texts = {p: f"text {p}" for p in "uvwxyz"}
    ds = pairs_to_columns(pairs, texts)
    make = NoDuplicatesBatchSampler.factory(keys=pair_keys(pairs))
    kwargs = dict(
        batch_size=4, drop_last=False, valid_label_columns=["label"], generator=torch.Generator(), seed=3
    )
    sampler = make(ds, **kwargs)
    sampler.set_epoch(2)
    state = sampler.state_dict()
    resumed = make(ds, **kwargs)
    resumed.load_state_dict(state)
    assert resumed.epoch == 2 and list(resumed) == list(sampler)
    other = NoDuplicatesBatchSampler.factory(keys=pair_keys(pairs.iloc[::-1]))(ds, **kwargs)
    with pytest.raises(ValueError, match="other data"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="key sets"):
        NoDuplicatesBatchSampler(ds, 2, keys=pair_keys(pairs.iloc[:2]))


def test_text_keys_ignore_padding_and_labels():
    # Two groups padded with "" must be able to share a batch (ST's own sampler would refuse).
    groups = pd.DataFrame(
        {
            "query_id": ["q1", "q2"],
            "query": ["drill", "saw"],
            "product_ids": [["p1"], ["p2", "p3"]],
            "grades": [[3], [3, 0]],
        }
    )
    texts = {"p1": "Drill", "p2": "Saw", "p3": "Hammer"}
    ds = groups_to_columns(groups, texts, size=3)
    keys = text_keys(ds)
    assert ("p", "") not in keys[0] and not any(k[1] == "[3, -1, -1]" for k in keys[0])
    assert list(NoDuplicatesBatchSampler(ds, 2, keys=keys)) in ([[0, 1]], [[1, 0]])
    assert list(NoDuplicatesBatchSampler(ds, 2)) in ([[0, 1]], [[1, 0]])  # same keys by default
    assert group_keys(groups)[1] >= {("p", "p2"), ("p", "p3"), ("qid", "q2")}


@settings(max_examples=40, deadline=None)
@given(pairs=pair_tables(), batch_size=st.integers(1, 9), seed=st.integers(0, 3), n_clusters=st.integers(1, 4))
def test_property_topic_batches_keep_the_no_duplicates_rule_and_replay(pairs, batch_size, seed, n_clusters):
    keys = pair_keys(pairs)
    clusters = [int(q[1:]) % n_clusters for q in pairs["query_id"]]
    sampler = NoDuplicatesBatchSampler(pairs, batch_size, seed=seed, keys=keys, clusters=clusters)
    batches = list(sampler)
    assert batch_keys_are_unique(batches, keys)
    assert sorted(i for b in batches for i in b) == list(range(len(pairs)))
    again = NoDuplicatesBatchSampler(pairs, batch_size, seed=seed, keys=pair_keys(pairs), clusters=clusters)
    assert list(again) == batches


def test_topic_batches_are_drawn_from_one_cluster_and_change_the_fingerprint():
    # 4 topics of 16 queries, one pair each: with clusters every batch of 8 is one topic;
    # random batches of 8 from 4 topics are almost never pure.
    n = 64
    pairs = pd.DataFrame(
        {"query_id": [f"q{i}" for i in range(n)], "query": [f"q {i}" for i in range(n)],
         "product_id": [f"p{i}" for i in range(n)]}
    )  # fmt: skip
    topic = [i % 4 for i in range(n)]
    keys = pair_keys(pairs)
    topical = NoDuplicatesBatchSampler(pairs, 8, seed=1, keys=keys, clusters=topic)
    plain = NoDuplicatesBatchSampler(pairs, 8, seed=1, keys=keys)
    purity = [len({topic[i] for i in b}) == 1 for b in topical]
    assert all(purity) and len(purity) == 8
    assert sum(len({topic[i] for i in b}) == 1 for b in plain) <= 1
    assert topical.fingerprint() != plain.fingerprint()
    # epochs visit the topics in different orders
    topical.set_epoch(1)
    second = [topic[b[0]] for b in topical]
    topical.set_epoch(0)
    assert second != [topic[b[0]] for b in topical]
    with pytest.raises(ValueError, match="cluster ids"):
        NoDuplicatesBatchSampler(pairs, 8, keys=keys, clusters=topic[:-1])
