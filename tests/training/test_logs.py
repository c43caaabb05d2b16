"""Behaviour-log pairs: thresholds and weights, file reading with reports, UBI, sessions."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from shopsearch.data.errors import BadRowReport, DataError
from shopsearch.training.logs import LogPairConfig, pairs_from_events, pairs_from_sessions, read_events

UBI_FILE = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "data"
    / "ubi-sample"
    / "ubi_queries_events.ndjson"
)


def events(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["query", "product_id", "event", "count"])


def test_thresholds_and_strongest_event_weight():
    ev = events(
        [
            ("drill", "p1", "click", 1),  # one click: below min_clicks=2
            ("drill", "p2", "click", 1),
            ("Drill ", "p2", "click", 1),  # same normalised query -> 2 clicks
            ("drill", "p3", "add_to_cart", 1),
            ("drill", "p4", "purchase", 1),  # alias of order
            ("drill", "p5", "click", 9),
            ("drill", "p5", "order", 1),  # strongest qualifying event speaks
        ]
    )
    pairs = pairs_from_events(ev).set_index("product_id")
    assert "p1" not in pairs.index and pairs.attrs["stats"]["below_thresholds"] == 1
    assert pairs.loc["p2", ["source", "weight", "n_click"]].tolist() == ["log:click", 1.0, 2]
    assert pairs.loc["p3", ["source", "weight"]].tolist() == ["log:add_to_cart", 3.0]
    assert pairs.loc["p4", ["source", "weight"]].tolist() == ["log:order", 5.0]
    assert pairs.loc["p5", ["source", "weight", "n_click", "n_order"]].tolist() == ["log:order", 5.0, 9, 1]
    assert set(pairs["query_id"]) == {"text:drill"} and pairs["grade"].isna().all()
    # thresholds are configurable, and None switches an event off
    cfg = LogPairConfig(
        min_clicks=1, min_orders=None, event_weights={"click": 2.0, "add_to_cart": 3.0, "order": 9.0}
    )
    loose = pairs_from_events(ev, cfg).set_index("product_id")
    assert loose.loc["p1", "weight"] == 2.0
    assert "p4" not in loose.index and loose.loc["p5", "source"] == "log:click"


def test_unknown_events_and_bad_rows_are_reported():
    ev = events(
        [
            ("drill", "p1", "order", 1),
            ("drill", "p2", "impression", 50),
            ("drill", "p3", "impression", 7),
            ("", "p4", "order", 1),
            ("saw", None, "order", 1),
            ("saw", "p6", "order", "many"),
        ]
    )
    report = BadRowReport()
    pairs = pairs_from_events(ev, report=report)
    assert pairs["product_id"].tolist() == ["p1"]
    reasons = {(r.field, r.row, r.action) for r in report.rows}
    assert ("query", 4, "skipped") in reasons and ("product_id", 5, "skipped") in reasons
    assert ("count", 6, "skipped") in reasons
    ignored = [r for r in report.rows if r.action == "ignored"]
    assert len(ignored) == 1 and ignored[0].value == "impression" and "2 rows" in ignored[0].reason
    assert pairs.attrs["report"] is report
    with pytest.raises(DataError):
        pairs_from_events(ev, report=BadRowReport(on_error="raise"))


def test_read_events_csv_parquet_jsonl(tmp_path):
    ev = events([("drill", "p1", "order", 1), ("saw", "", "click", 3), ("saw", "p2", "click", 3)])
    ev.to_csv(tmp_path / "e.csv", index=False)
    ev.to_parquet(tmp_path / "e.parquet")
    ev.to_json(tmp_path / "e.jsonl", orient="records", lines=True)
    for name, bad_row in (("e.csv", 3), ("e.parquet", 2), ("e.jsonl", 2)):  # CSV counts its header
        df, report = read_events(tmp_path / name)
        assert df[["query", "product_id", "event"]].values.tolist() == [
            ["drill", "p1", "order"],
            ["saw", "p2", "click"],
        ]
        assert [(r.row, r.field) for r in report.rows] == [(bad_row, "product_id")]
    with pytest.raises(DataError, match="lacks column"):
        pd.DataFrame({"q": ["x"]}).to_csv(tmp_path / "bad.csv", index=False)
        read_events(tmp_path / "bad.csv")


@pytest.mark.skipif(not UBI_FILE.is_file(), reason="needs ../shared/data/ubi-sample")
def test_real_ubi_file_yield_and_report():
    df, report = read_events(UBI_FILE)
    stats = df.attrs["stats"]
    assert stats["records"] == {"query": 473, "event": 3448}  # 7,842 lines = bulk headers + records
    assert stats["events_used"] == {"click": 267, "add_to_cart": 214, "order": 6}
    assert stats["query_text_from"] == {"ubi_queries": 474, "query_event_message": 13}
    skipped = [r for r in report.rows if r.action == "skipped"]
    unknown_query = [r for r in skipped if "query text is unknown" in r.reason]
    assert len(unknown_query) == 40 and all(r.row for r in unknown_query)  # line numbers given
    assert sum(1 for r in skipped if "without id or text" in r.reason) == 6  # empty searches
    ignored = {r.value: int(r.reason.split("(")[1].split()[0]) for r in report.rows if r.action == "ignored"}
    assert ignored["impression"] == 1999 and sum(ignored.values()) == 3448 - 527
    assert df["timestamp"].notna().all() and df["session_id"].notna().all()
    pairs = pairs_from_events(df)
    assert pairs.attrs["stats"]["pairs"] == 99
    assert pairs_from_events(df, LogPairConfig(min_clicks=1)).attrs["stats"]["pairs"] == 147
    # sessions: with all actions the first query of each session is known
    every, _ = read_events(UBI_FILE, all_actions=True)
    sess = pairs_from_sessions(every)
    assert sess.attrs["stats"]["sessions"] == 230 and len(sess) == 6
    assert not any(len(q) < 3 for q in sess["query"])  # typeahead prefixes ("g", "h") are no reformulation


def test_ubi_plain_and_bulk_with_broken_records(tmp_path):
    lines = [
        {"index": {"_index": "ubi_queries"}},
        {"query_id": "a", "user_query": "cordless drill", "timestamp": "2024-01-01T00:00:00Z"},
        {"index": {"_index": "ubi_events"}},
        {"action_name": "click", "query_id": "a", "session_id": "s", "timestamp": 1704067200000,
         "event_attributes": {"object": {"object_id": "p1"}}},
        {"index": {"_index": "ubi_events"}},
        {"action_name": "purchase", "query_id": "a", "session_id": "s", "timestamp": "2024-01-01T00:01:00Z",
         "event_attributes": {"object": {}}},
        {"index": {"_index": "ubi_events"}},
        {"action_name": "add_to_cart", "query_id": "zzz", "event_attributes": {"object": {"object_id": "p2"}}},
    ]  # fmt: skip
    path = tmp_path / "ubi.ndjson"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n{not json\n")
    df, report = read_events(path)
    assert df[["query", "product_id", "event"]].values.tolist() == [["cordless drill", "p1", "click"]]
    assert str(df["timestamp"].iloc[0]) == "2024-01-01 00:00:00+00:00"  # epoch milliseconds
    reasons = sorted((r.row, r.reason.split(" ")[0]) for r in report.rows)
    assert reasons == [(6, "purchase"), (8, "add_to_cart"), (9, "not")]


def test_session_reformulation_pairs():
    rows = [
        # s1: "drils" gave nothing, "drill" led to an add to cart -> (drils, p2)
        ("s1", "2024-01-01T00:00:00Z", "drils", None, "search"),
        ("s1", "2024-01-01T00:00:05Z", "drill", "p1", "click"),
        ("s1", "2024-01-01T00:00:09Z", "drill", "p2", "add_to_cart"),
        ("s1", "2024-01-01T00:00:20Z", "drill bits", "p3", "click"),  # later click: the cart wins
        # s2: one query only -> no reformulation
        ("s2", "2024-01-01T00:00:00Z", "saw", "p4", "click"),
        # s3: clicks only -> the last click, rows out of time order in the table
        ("s3", "2024-01-01T00:00:30Z", "mower electric", "p6", "click"),
        ("s3", "2024-01-01T00:00:00Z", "lawnmower", None, "search"),
        ("s3", "2024-01-01T00:00:10Z", "mower", "p5", "click"),
        # s4: typeahead "ham" -> "hammer": not a reformulation
        ("s4", "2024-01-01T00:00:00Z", "ham", None, "search"),
        ("s4", "2024-01-01T00:00:01Z", "hammer", "p7", "order"),
        (None, "2024-01-01T00:00:01Z", "nails", "p8", "order"),  # cannot be placed in a session
    ]
    df = pd.DataFrame(rows, columns=["session_id", "timestamp", "query", "product_id", "event"])
    report = BadRowReport()
    pairs = pairs_from_sessions(df, report=report)
    got = sorted(zip(pairs["query"], pairs["product_id"], strict=True))
    assert got == [("drils", "p2"), ("lawnmower", "p6")]
    assert set(pairs["source"]) == {"session"}
    assert pairs.attrs["stats"]["same_query_sessions"] == 2
    assert any("session order" in r.reason for r in report.rows)
