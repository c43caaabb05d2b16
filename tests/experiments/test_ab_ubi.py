"""UBI ndjson: export and read back losslessly; read the real UBI sample; report every unusable record."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from shopsearch.data.errors import DataError
from shopsearch.experiments import (
    EVENT_FIELDS,
    EventStore,
    Traffic,
    load_events,
    read_ubi,
    simulate,
    write_ubi,
)

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "ubi-sample" / "ubi_queries_events.ndjson"


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    a = a.sort_values("event_id").reset_index(drop=True)
    b = b.sort_values("event_id").reset_index(drop=True)
    for col in EVENT_FIELDS:
        left = a[col].astype(object).where(a[col].notna(), None).tolist()
        right = b[col].astype(object).where(b[col].notna(), None).tolist()
        assert left == right, col


@pytest.fixture(scope="module")
def sim_events(aa_rankings):
    from shopsearch.experiments import ExperimentConfig

    cfg = ExperimentConfig(name="exp1", variants=[{"name": "control"}, {"name": "treatment"}])
    return simulate(aa_rankings, cfg, Traffic(150), seed=4).events()


@pytest.mark.parametrize("bulk", [True, False])
def test_export_and_read_back(tmp_path, sim_events, bulk):
    path = tmp_path / "events.ndjson"
    counts = write_ubi(sim_events, path, bulk=bulk)
    assert counts == {"queries": sim_events["query_id"].nunique(), "events": len(sim_events)}
    back, report = read_ubi(path)
    assert len(report) == 0
    _same(sim_events, back)
    first = [json.loads(line) for line in path.read_text().splitlines()[: 2 if bulk else 1]]
    query = first[-1]
    shown = sim_events[(sim_events["query_id"] == query["query_id"]) & (sim_events["action_name"] == "impression")]
    assert query["query_response_hit_ids"] == shown.sort_values("position")["object_id"].tolist()
    assert bulk == ("index" in first[0])


def test_store_export_import_round_trip(tmp_path, sim_events):
    with EventStore(tmp_path / "a.db") as store:
        store.append_frame(sim_events)
        store.export_ubi(tmp_path / "a.ndjson", experiment="exp1")
    back, _ = load_events(tmp_path / "a.ndjson")
    with EventStore(tmp_path / "b.db") as other:
        assert other.append_frame(back) == len(sim_events)
        assert other.append_frame(back) == 0  # importing the same file twice adds nothing
    _same(sim_events, load_events(tmp_path / "b.db")[0])
    with pytest.raises(DataError, match="unknown events file type"):
        (tmp_path / "x.csv").write_text("a\n")
        load_events(tmp_path / "x.csv")


@pytest.mark.skipif(not SAMPLE.is_file(), reason="needs ../shared/data/ubi-sample")
def test_reads_the_real_ubi_sample_and_accounts_for_every_record():
    events, report = read_ubi(SAMPLE)
    assert events["action_name"].value_counts().to_dict() == {"impression": 1999, "click": 287, "add_to_cart": 234,
                                                              "order": 6}
    records = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    actions = [r for r in records if "action_name" in r]
    ignored = sum(int(r.reason.split("(")[1].split()[0]) for r in report.rows if r.action == "ignored")
    assert len(events) + ignored + report.skipped == len(actions)
    assert {r.value for r in report.rows if r.action == "ignored"} >= {"search", "product_sort", "page_exit"}
    assert events["timestamp"].notna().all() and events["query_id"].str.len().gt(0).all()


def test_unusable_records_are_reported_with_line_and_field(tmp_path):
    ev = {"action_name": "click", "query_id": "q1", "timestamp": "2026-01-01T00:00:00Z",
          "event_attributes": {"object": {"object_id": "p1"}, "position": {"ordinal": 2}}}
    lines = [
        json.dumps({"query_id": "q1", "user_query": "lamp", "timestamp": "2026-01-01T00:00:00Z"}),
        json.dumps(ev),
        "{not json",
        json.dumps(ev | {"event_attributes": {"object": {}}}),
        json.dumps(ev | {"timestamp": "yesterday"}),
        json.dumps(ev | {"query_id": None}),
        json.dumps(ev | {"event_attributes": {"object": {"object_id": "p2"}, "position": {"ordinal": -3}}}),
        json.dumps({"something": "else"}),
    ]
    path = tmp_path / "bad.ndjson"
    path.write_text("\n".join(lines) + "\n")
    events, report = read_ubi(path)
    found = {(r.row, r.field) for r in report.rows}
    assert {(3, None), (4, "event_attributes.object.object_id"), (5, "timestamp"), (6, "query_id"),
            (7, "event_attributes.position.ordinal"), (8, None)} <= found
    assert events["object_id"].tolist() == ["p1", "p2"] and events["query"].tolist() == ["lamp", "lamp"]
    assert events["position"].isna().tolist() == [False, True]
    with pytest.raises(DataError, match=r"bad\.ndjson, row 3"):
        read_ubi(path, on_error="raise")
