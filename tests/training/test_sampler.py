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
