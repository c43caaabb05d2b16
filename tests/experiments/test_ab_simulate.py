"""The click-model simulator: exact planted lifts, click-model shapes, determinism, interleaving,
rankings from runs and from retrieval systems."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from shopsearch.data.demo import DemoShopConfig, generate_demo_shop
from shopsearch.experiments import (
    ClickModel,
    EventStore,
    ExperimentConfig,
    Traffic,
    rankings_from_grades,
    rankings_from_runs,
    simulate,
)
from shopsearch.experiments.rankings import rankings_from_systems


@pytest.mark.parametrize(("kind", "lift"), [("pbm", 0.03), ("pbm", 0.2), ("pbm", -0.05), ("cascade", 0.03),
                                           ("cascade", -0.5)])
def test_planted_lift_is_exact_in_expectation(aa_rankings, kind, lift):
    model = ClickModel(kind=kind, max_grade=3)
    attr = model.attractiveness(aa_rankings.grades[1])
    c = model.scale_for_lift(attr, aa_rankings.weights, lift)
    ratio = model.expected_ctr(attr, aa_rankings.weights, c) / model.expected_ctr(attr, aa_rankings.weights)
    assert ratio == pytest.approx(1 + lift, abs=1e-9)


def test_an_unreachable_lift_says_why(aa_rankings):
    model = ClickModel(kind="cascade", max_grade=3)  # CTR ~0.89 here: +20% would pass 1
    with pytest.raises(ValueError, match="cannot exceed"):
        model.scale_for_lift(model.attractiveness(aa_rankings.grades[1]), aa_rankings.weights, 0.2)


def test_observed_ctr_matches_the_expected_ctr(aa_rankings, ab_config):
    sim = simulate(aa_rankings, ab_config, Traffic(20000), lift=0.03, seed=8, assignment="random")
    report = sim.analyze(labels=False)
    for name in ("control", "treatment"):
        m = report.variants[name]["metrics"]["ctr"]
        assert abs(m["value"] - sim.truth[f"expected_ctr_{name}"]) < 3.5 * m["se"]
    assert sim.truth["expected_lift_treatment"] == pytest.approx(0.03, abs=1e-6)


def test_click_model_shapes():
    grades = np.full((1, 10), 2)
    ranks = rankings_from_grades(np.repeat(grades, 5, axis=0), np.repeat(grades, 5, axis=0), max_grade=3)
    cfg = ExperimentConfig(name="e", variants=[{"name": "a"}, {"name": "b"}])
    pbm = simulate(ranks, cfg, Traffic(4000), ClickModel(heterogeneity=None), seed=1)
    per_rank = pbm.clicks.mean(axis=0)
    assert np.all(np.diff(per_rank[:5]) < 0)  # examination falls with rank
    assert per_rank[0] / per_rank[1] == pytest.approx(2.0, rel=0.15)  # eta = 1: 1/r
    cascade = simulate(ranks, cfg, Traffic(4000), ClickModel(kind="cascade"), seed=1)
    assert cascade.clicks.sum(axis=1).max() == 1  # the cascade stops at the first click
    assert not (pbm.carts & ~pbm.clicks).any() and not (pbm.orders & ~pbm.carts).any()


def test_simulation_is_seeded_and_its_events_fit_the_store(tmp_path, aa_rankings, ab_config):
    a = simulate(aa_rankings, ab_config, Traffic(300), seed=3)
    b = simulate(aa_rankings, ab_config, Traffic(300), seed=3)
    assert np.array_equal(a.clicks, b.clicks) and a.events().equals(b.events())
    ev = a.events()
    counts = ev["action_name"].value_counts()
    assert counts["impression"] == int((a.shown != "").sum()) and counts["click"] == int(a.clicks.sum())
    with EventStore(tmp_path / "e.db") as store:
        assert store.append_frame(ev) == len(ev)
    by_session = simulate(aa_rankings, ab_config.model_copy(update={"unit": "session"}), Traffic(300), seed=3)
    assert len(by_session.units()) == len(by_session.session_ids) > 300


def test_interleaving_prefers_the_better_ranking(interleaving_config):
    rng = np.random.default_rng(0)
    grades = np.sort(rng.choice([0, 1, 2, 3], size=(60, 10)), axis=1)[:, ::-1]  # best first
    ranks = rankings_from_grades(grades, grades[:, ::-1], max_grade=3, systems=("good", "bad"))
    sim = simulate(ranks, interleaving_config, Traffic(400), seed=2)
    assert set(np.unique(sim.teams)) <= {"a", "b", ""}
    report = sim.analyze()
    i = report.interleaving
    assert i["wins_a"] > 2 * i["wins_b"] and i["p_value"] < 1e-6 and i["preferred"] == "good"
    same = rankings_from_grades(grades, grades, max_grade=3)
    tie = simulate(same, interleaving_config, Traffic(200), seed=2).analyze().interleaving
    assert tie["p_value"] > 0.001
    with pytest.raises(ValueError, match="planted lift"):
        simulate(ranks, interleaving_config, Traffic(10), lift=0.1)


def test_rankings_from_runs():
    shop = generate_demo_shop(DemoShopConfig(n_products=300, n_queries=40, seed=5))
    qrels = shop.judgments.qrels()
    qids = list(qrels)
    best = {q: sorted(qrels[q], key=lambda p: -qrels[q][p]) for q in qids[:-1]}
    worst = {q: [*list(reversed(best[q]))[:3], "not-judged"] for q in qids[:-2]}
    ranks = rankings_from_runs(best, worst, shop.judgments, shop.queries, k=5, systems=("best", "worst"))
    assert len(ranks) == len(qids) - 2
    assert any("no ranking from worst" in n for n in ranks.notes)
    q0 = qids[0]
    assert ranks.grades[0, 0].tolist() == [qrels[q0][p] for p in best[q0][:5]]
    assert ranks.grades[1, 0, 3] == 0 and ranks.grades[1, 0, 4] == -1  # unjudged -> 0, empty slot -> -1
    traffic = shop.queries.df.set_index("query_id")["traffic"].reindex(ranks.query_ids).to_numpy()
    assert np.allclose(ranks.weights, traffic / traffic.sum())
    assert ranks.max_grade == 3 and ranks.texts[0] == shop.queries.df.set_index("query_id").at[q0, "text"]


def test_rankings_from_systems_on_a_tiny_shop():
    shop = generate_demo_shop(DemoShopConfig(n_products=300, n_queries=30, seed=6))
    ranks = rankings_from_systems(shop, ("bm25", "bm25"), k=8, text_fields=("title", "brand"))
    assert ranks.systems == ("bm25 (a)", "bm25 (b)") and ranks.k == 8
    assert np.array_equal(ranks.ids[0], ranks.ids[1]) and (ranks.grades[0] >= 0).any()
    model = dataclasses.replace(ClickModel(), max_grade=ranks.max_grade)
    assert 0.05 < model.expected_ctr(model.attractiveness(ranks.grades[0]), ranks.weights) < 0.95
