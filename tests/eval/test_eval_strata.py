"""Frequency tiers from traffic (cumulative share) and from stated proxies; vertical / query-type strata."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from shopsearch.data.schema import Queries
from shopsearch.eval.strata import TIERS, StratumConfig, assign_frequency_strata, assign_strata


def zipf_queries(n_distinct: int = 20_000, searches: int = 100_000, seed: int = 0) -> Queries:
    """A query log sampled from a Zipf law (s = 1) over a finite query vocabulary; queries never seen dropped."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_distinct + 1)
    counts = np.bincount(rng.choice(n_distinct, size=searches, p=p / p.sum()), minlength=n_distinct)
    traffic = counts[counts > 0]
    n = traffic.size
    return Queries(pd.DataFrame({"query_id": [f"q{i}" for i in range(n)], "text": ["x"] * n, "traffic": traffic}))


def test_traffic_tiers_on_zipf_sample():
    queries = zipf_queries()
    tiers, method = assign_frequency_strata(queries)
    assert method["method"] == "traffic"
    assert set(tiers) == set(TIERS)  # every tier present
    t = queries.df.set_index("query_id")["traffic"]
    assert (tiers[t == 1] == "ONCE ONLY").all() and (tiers[t > 1] != "ONCE ONLY").all()
    # tiers are ordered by traffic: every HEAD query is at least as frequent as every TORSO HIGH one, ...
    order = TIERS[:4]
    for hi, lo in itertools.pairwise(order):
        assert t[tiers == hi].min() > t[tiers == lo].max()
    # HEAD holds the queries making the first 25% of traffic (the query crossing the cut included)
    share = t[tiers == "HEAD"].sum() / t.sum()
    assert 0.25 <= share < 0.25 + t.max() / t.sum() + 1e-12
    assert "25%" in method["description"] and method["thresholds"]["share_cuts"] == [0.25, 0.5, 0.75]
    assert sum(method["counts"].values()) == len(queries)


def test_equal_traffic_shares_a_tier_and_config_is_used():
    df = pd.DataFrame({"query_id": list("abcdef"), "text": "x", "traffic": [50, 50, 50, 10, 1, np.nan]})
    tiers, method = assign_frequency_strata(Queries(df), StratumConfig(shares=(0.5, 0.2, 0.2)))
    assert list(tiers) == ["HEAD", "HEAD", "HEAD", "TAIL", "ONCE ONLY", "UNKNOWN"]
    assert method["unknown_traffic"] == 1
    tiers2, _ = assign_frequency_strata(Queries(df), StratumConfig(once_max=10))
    assert tiers2["d"] == "ONCE ONLY"
    with pytest.raises(ValueError):
        StratumConfig(shares=(0.6, 0.6, 0.1))


def test_length_proxy_without_traffic():
    texts = ["a", "a b", "a b c", "a b c d", "drill", "cordless drill 18v", "x y", "p q r s t u"]
    df = pd.DataFrame({"query_id": [f"q{i}" for i in range(len(texts))], "text": texts})
    tiers, method = assign_frequency_strata(Queries(df))
    assert method["method"] == "proxy:length"
    assert "PROXY" in method["description"] and "no traffic" in method["description"]
    assert "ONCE ONLY" not in set(tiers)
    lengths = pd.Series([len(t.split()) for t in texts], index=tiers.index)
    assert lengths[tiers == "HEAD"].max() < lengths[tiers == "TAIL"].min()


def test_idf_proxy_states_method_and_ranks_rare_terms_as_tail():
    df = pd.DataFrame({"query_id": ["q1", "q2", "q3", "q4"], "text": ["drill", "drill bit", "zyx", "bit"]})
    idf = {"drill": 0.5, "bit": 1.0, "zyx": 5.0}
    tiers, method = assign_frequency_strata(Queries(df), idf=idf)
    assert method["method"] == "proxy:idf" and "rarest term" in method["description"]
    assert tiers["q1"] == "HEAD" and tiers["q3"] == "TAIL"
    with pytest.raises(ValueError, match="IDF"):
        assign_frequency_strata(Queries(df), StratumConfig(proxy="idf"))


def test_vertical_and_query_type_strata():
    df = pd.DataFrame({"query_id": ["a", "b", "c"], "text": ["x", "y z", "w"], "traffic": [5, 1, 2],
                       "vertical": ["tools", None, "garden"], "query_type": [None, None, None]})
    frame, methods = assign_strata(Queries(df))
    assert list(frame.columns) == ["frequency", "vertical"]  # query_type holds no value: not a stratum
    assert frame.loc["b", "vertical"] == "UNKNOWN"
    assert set(methods) == {"frequency", "vertical"}


def test_proxy_ties_share_a_tier_and_a_block_of_max_values_goes_to_tail():
    import pandas as pd

    from shopsearch.data.schema import Queries
    from shopsearch.eval.strata import StratumConfig, assign_frequency_strata

    # 40% of the queries hold a term the table never saw (all at the max IDF): they are the rarest.
    texts = [f"common{i % 3}" for i in range(60)] + ["unseenword"] * 40
    idf = {"common0": 1.0, "common1": 1.5, "common2": 2.0}
    queries = Queries(pd.DataFrame({"query_id": [f"q{i}" for i in range(100)], "text": texts}))
    tiers, method = assign_frequency_strata(queries, StratumConfig(proxy="idf"), idf=idf)
    assert set(tiers[60:]) == {"TAIL"}
    for value in ("common0", "common1", "common2", "unseenword"):  # equal values, one tier
        assert len(set(tiers[[t == value for t in texts]])) == 1
    assert "PROXY" in method["description"] and method["method"] == "proxy:idf"
