"""Team-draft interleaving: properties of the merged list (hypothesis), determinism, fairness, credit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from shopsearch.experiments import Interleaved, credit, team_draft

ids = st.lists(st.sampled_from([f"p{i}" for i in range(15)]), max_size=12)


@settings(max_examples=300, deadline=None)
@given(a=ids, b=ids, unit=st.text(max_size=5), k=st.one_of(st.none(), st.integers(0, 12)))
def test_team_draft_properties(a, b, unit, k):
    page = team_draft(a, b, "query", unit, k)
    assert len(page.ids) == len(page.teams) == len(set(page.ids))  # nothing shown twice
    assert k is None or len(page.ids) <= k
    picks = {"a": [], "b": []}
    for n, (pid, team) in enumerate(zip(page.ids, page.teams, strict=True), 1):
        source = a if team == "a" else b
        assert pid in source
        picks[team].append(source.index(pid))
        # the team behind always picks next, so the teams never differ by more than one
        assert abs(page.teams[:n].count("a") - page.teams[:n].count("b")) <= 1
        # a team's pick is its best product not yet on the page
        assert all(p in page.ids[: n - 1] for p in source[: source.index(pid)])
    for ranks in picks.values():
        assert ranks == sorted(ranks)
    # it stops only at k or when one team has nothing new to add
    if k is None or len(page.ids) < k:
        assert set(a) <= set(page.ids) or set(b) <= set(page.ids)
    assert team_draft(a, b, "query", unit, k) == page  # deterministic


@given(a=st.lists(st.sampled_from([f"p{i}" for i in range(20)]), unique=True, max_size=12))
def test_identical_rankings_interleave_to_themselves(a):
    assert team_draft(a, a, "q", "u").ids == a


def test_first_pick_is_a_fair_coin_over_units():
    firsts = [team_draft(["x1", "x2"], ["y1", "y2"], "shoes", f"u{i}").teams[0] for i in range(4000)]
    assert stats.binomtest(firsts.count("a"), len(firsts), 0.5).pvalue > 0.001
    # ... and the same (query, unit) always gets the same page
    assert team_draft(["x1", "x2"], ["y1", "y2"], "shoes", "u7") == team_draft(["x1", "x2"], ["y1", "y2"], "shoes", "u7")


def test_no_preference_when_clicks_ignore_the_team():
    """Both teams from one ranking, clicks by position only: team A wins about half the decided pages."""
    rng = np.random.default_rng(3)
    ranking = [f"p{i}" for i in range(10)]
    other = ranking[1:] + ranking[:1]
    wins = {"a": 0, "b": 0}
    for i in range(3000):
        page = team_draft(ranking, other, "q", f"u{i}", 10)
        clicked = [p for r, p in enumerate(page.ids) if rng.random() < 0.5 / (r + 1)]
        w = credit(page, clicked).winner
        if w:
            wins[w] += 1
    assert stats.binomtest(wins["a"], wins["a"] + wins["b"], 0.5).pvalue > 0.001


def test_credit_counts_distinct_shown_products_per_team():
    page = Interleaved(ids=["x", "y", "z", "w"], teams=["a", "b", "b", "a"])
    c = credit(page, ["y", "z", "y", "nowhere", "x"])
    assert (c.a, c.b, c.winner) == (1, 2, "b")
    assert credit(page, []).winner is None and credit(page, ["x", "y"]).winner is None
    assert page.team_of("z") == "b" and page.team_of("q") is None
