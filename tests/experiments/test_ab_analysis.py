"""From events to the report: exact rates on a hand-made log, every left-out event counted,
interleaving credit, and report files that stand on their own."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from shopsearch.experiments import ExperimentConfig, Traffic, analyze, search_table, simulate, unit_table
from shopsearch.experiments.analysis import UNIT_COLUMNS

T0 = datetime(2026, 2, 1, tzinfo=UTC)


def log(rows: list[tuple], experiment: str = "exp1") -> pd.DataFrame:
    """rows: (action, query_id, user, variant, product, extra dict)."""
    out = []
    for i, (action, qid, user, variant, pid, *extra) in enumerate(rows):
        out.append({"event_id": f"e{i}", "action_name": action, "query_id": qid, "query": "lamp", "client_id": None,
                    "user_id": user, "session_id": f"{user}-s", "object_id": pid, "position": 0,
                    "timestamp": T0 + timedelta(seconds=i), "experiment": experiment, "variant": variant, "team": None}
                   | (extra[0] if extra else {}))
    return pd.DataFrame(out)


def page(qid: str, user: str, variant: str, clicks=(), carts=(), orders=(), n: int = 3) -> list[tuple]:
    rows = [("impression", qid, user, variant, f"p{i}") for i in range(n)]
    rows += [("click", qid, user, variant, p) for p in clicks]
    rows += [("add_to_cart", qid, user, variant, p) for p in carts]
    return rows + [("order", qid, user, variant, p) for p in orders]


def test_rates_are_ratios_of_unit_sums(ab_config):
    rows = (page("q1", "u1", "control", clicks=["p0", "p1", "p1"]) + page("q2", "u1", "control")
            + page("q3", "u2", "control", clicks=["p2"], carts=["p2"], orders=["p2"])
            + page("q4", "u3", "treatment", clicks=["p0"]) + page("q5", "u4", "treatment", clicks=["p1"], carts=["p1"]))
    units, quality = unit_table(log(rows), ab_config)
    assert list(units.columns) == list(UNIT_COLUMNS)
    u1 = units.set_index("unit").loc["u1"]
    assert (u1["searches"], u1["clicked"], u1["clicks"], u1["carted"]) == (2, 1, 2, 0)  # a double click counts once
    report = analyze(ab_config, log(rows))
    control, treatment = report.variants["control"]["metrics"], report.variants["treatment"]["metrics"]
    assert control["ctr"]["value"] == pytest.approx(2 / 3) and treatment["ctr"]["value"] == 1.0
    assert control["clicks_per_search"]["value"] == pytest.approx(3 / 3)
    assert control["add_to_cart_rate"]["value"] == pytest.approx(1 / 3)
    assert control["order_rate"]["value"] == pytest.approx(1 / 3) and treatment["order_rate"]["value"] == 0.0
    assert report.comparison("treatment", "ctr")["lift"] == pytest.approx(0.5)
    assert quality["units_analysed"] == 4 and quality["searches_analysed"] == 5


def test_nothing_is_left_out_silently(ab_config):
    rows = [
        *page("q1", "u1", "control", clicks=["p0"]),
        ("click", "q2", "u1", "control", "p0"),  # engagement without an impression
        *page("q3", "u2", "control"), *page("q3b", "u2", "treatment"),  # one unit in two variants
        *page("q4", "u3", "mystery"),  # a variant the experiment does not have
        *page("q5", "u4", "control")[:1], ("impression", "q5", "u5", "control", "p1"),  # one search, two users
        ("impression", "q6", None, "control", "p0"),  # no unit id
        *page("q7", "u6", "treatment", [], [], [], 2),
    ]
    events = log(rows)
    events.loc[len(events)] = {**events.iloc[0].to_dict(), "event_id": "other", "experiment": "exp2"}
    _, q = unit_table(events, ab_config)
    assert q["events_of_other_experiments"] == 1
    assert q["events_without_user_id"] == 1
    assert q["searches_without_impressions"] == 1
    assert q["searches_logged_under_two_units_or_variants"] == 1
    assert q["searches_of_unknown_variants"] == {"mystery": 1}
    assert (q["units_in_several_variants"], q["searches_of_units_in_several_variants"]) == (1, 2)
    assert (q["units_analysed"], q["searches_analysed"]) == (2, 2)  # u1 (q1) and u6 (q7)


def test_user_falls_back_to_client_id_and_session_unit(ab_config):
    events = log(page("q1", None, "control", clicks=["p0"]) + page("q2", None, "treatment"))
    events["client_id"] = ["c1"] * 4 + ["c2"] * 3
    units, _ = unit_table(events, ab_config)
    assert sorted(units["unit"]) == ["c1", "c2"]
    events["session_id"] = ["s1"] * 4 + ["s2"] * 2 + [None]
    by_session = ab_config.model_copy(update={"unit": "session"})
    units, q = unit_table(events, by_session)
    assert q["events_without_session_id"] == 1 and sorted(units["unit"]) == ["s1", "s2"]


def test_interleaving_credit_from_teams(interleaving_config):
    rows = [("impression", "q1", "u1", "interleaved", "x", {"team": "good"}),
            ("impression", "q1", "u1", "interleaved", "y", {"team": "bad"}),
            ("click", "q1", "u1", "interleaved", "x"),  # no team on the click: taken from its impression
            ("impression", "q2", "u2", "interleaved", "x", {"team": "bad"}),
            ("impression", "q2", "u2", "interleaved", "y", {"team": "good"}),
            ("click", "q2", "u2", "interleaved", "x", {"team": "bad"}),
            ("click", "q2", "u2", "interleaved", "y", {"team": "good"}),
            ("impression", "q3", "u3", "interleaved", "z", {"team": "a"}),
            ("click", "q3", "u3", "interleaved", "z")]
    table, q = search_table(log(rows, "il1"), interleaving_config)
    assert table.set_index("query_id")[["wins_a", "wins_b"]].to_dict("index") == {
        "q1": {"wins_a": 1, "wins_b": 0}, "q2": {"wins_a": 1, "wins_b": 1}, "q3": {"wins_a": 1, "wins_b": 0}}
    assert q["clicks_without_team"] == 0
    report = analyze(interleaving_config, log(rows, "il1"))
    i = report.interleaving
    assert (i["wins_a"], i["wins_b"], i["ties"], i["team_a"]) == (2, 0, 1, "good")
    assert report.srm is None and "Interleaving preference" in report.to_markdown()


def test_event_log_and_unit_table_give_the_same_report(aa_rankings, ab_config):
    sim = simulate(aa_rankings, ab_config, Traffic(800), lift=0.1, seed=5)
    from_events = analyze(ab_config, sim.events())
    from_units = sim.analyze()
    for metric in ("ctr", "clicks_per_search", "add_to_cart_rate", "order_rate"):
        a, b = from_events.comparison("treatment", metric), from_units.comparison("treatment", metric)
        assert a["p_value"] == pytest.approx(b["p_value"]) and a["lift"] == pytest.approx(b["lift"])


def test_report_files(tmp_path, aa_rankings, ab_config):
    report = simulate(aa_rankings, ab_config, Traffic(600), lift=0.05, seed=2).analyze()
    data = json.loads(report.write_json(tmp_path / "r.json").read_text())
    assert data["srm"]["observed"] and data["truth"]["planted_lift"] == 0.05 and len(data["comparisons"]) == 4
    assert {"lift_ci", "p_value", "p_adjusted", "mde_rel", "units_for_mde"} <= set(data["comparisons"][0])
    md = report.write_markdown(tmp_path / "r.md").read_text()
    assert "| treatment | ctr |" in md and "SIMULATED TRAFFIC" in md
    page_ = report.write_html(tmp_path / "r.html").read_text()
    assert page_.count("data:image/png;base64,") == 2
    assert not re.search(r"(src|href)=['\"]https?:", page_)  # self-contained


def test_sample_ratio_mismatch_is_flagged(aa_rankings):
    skewed = ExperimentConfig(name="exp1", variants=[{"name": "control"}, {"name": "treatment"}], split=[0.3, 0.7])
    sim = simulate(aa_rankings, skewed, Traffic(3000), seed=1)
    claimed_even = skewed.model_copy(update={"split": [0.5, 0.5]})
    report = analyze(claimed_even, units=sim.units())
    assert report.srm["mismatch"] and "SAMPLE RATIO MISMATCH" in report.to_markdown()
    assert not analyze(skewed, units=sim.units()).srm["mismatch"]
