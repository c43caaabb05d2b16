"""POST /events: acknowledged batches are durable and idempotent; bad batches are 4xx naming the field."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from serve_support import make_settings

from shopsearch.experiments import EventStore
from shopsearch.serve.app import create_app


@pytest.fixture(scope="module")
def events_app(index_a, tmp_path_factory):
    db = tmp_path_factory.mktemp("events") / "events.db"
    with TestClient(create_app(make_settings(index_a, events_db=db))) as c:
        yield c, db


def page_events(client, q="desk lamp", user="u-1"):
    """What the page sends for one search: an impression per result, a click on the second."""
    body = client.get("/search", params={"q": q, "k": 5}, headers={"X-User-Id": user}).json()
    common = {"query_id": body["query_id"], "query": body["query"], "user_id": user, "session_id": "s-1"}
    events = [{"action_name": "impression", "object_id": h["product_id"], "position": i, **common}
              for i, h in enumerate(body["results"])]
    events.append({"action_name": "click", "object_id": body["results"][1]["product_id"], "position": 1, **common})
    return body, events


def test_an_acknowledged_batch_is_readable_at_once_and_after_reopening(index_a, tmp_path):
    db = tmp_path / "events.db"
    with TestClient(create_app(make_settings(index_a, events_db=db))) as c:
        assert c.get("/info").json()["features"] == {"events": True}
        body, events = page_events(c)
        res = c.post("/events", json={"events": events})
        assert res.status_code == 200, res.text
        assert res.json() == {"received": 6, "stored": 6, "duplicates": 0}
        # acknowledged = committed: another connection sees the batch while the server still runs
        with EventStore(db) as other:
            assert other.count() == 6
    with EventStore(db) as store:  # the server is gone; the file alone holds the events
        frame = store.frame()
    assert frame["action_name"].tolist() == ["impression"] * 5 + ["click"]
    assert set(frame["query_id"]) == {body["query_id"]} and frame["user_id"].eq("u-1").all()
    assert frame["position"].tolist() == [0, 1, 2, 3, 4, 1]
    assert frame["object_id"].tolist()[:5] == [h["product_id"] for h in body["results"]]
    assert frame["timestamp"].notna().all() and frame["experiment"].isna().all()


def test_resent_events_are_stored_once(events_app):
    client, db = events_app
    event = {"action_name": "purchase", "query_id": "q-dup", "object_id": "P1", "event_id": "e-dup-1"}
    first = client.post("/events", json={"events": [event]}).json()
    again = client.post("/events", json={"events": [event, event | {"event_id": "e-dup-2"}]}).json()
    assert first["stored"] == 1 and again == {"received": 2, "stored": 1, "duplicates": 1}
    with EventStore(db) as store:
        stored = store.frame().set_index("event_id")
    assert stored.loc["e-dup-1", "action_name"] == "order"  # UBI's purchase is stored as order


GOOD = {"action_name": "click", "query_id": "q1", "object_id": "P1", "position": 0}
BAD_BATCHES = {
    "unknown action": ([GOOD, GOOD | {"action_name": "hover"}], "events.1.action_name"),
    "missing product": ([{k: v for k, v in GOOD.items() if k != "object_id"}], "events.0.object_id"),
    "negative position": ([GOOD | {"position": -1}], "events.0.position"),
    "empty query id": ([GOOD | {"query_id": ""}], "events.0.query_id"),
    "unknown field": ([GOOD | {"price": 3}], "events.0.price"),
    "control character in a user id": ([GOOD | {"user_id": "u\x1b[31m"}], "events.0.user_id"),
    "bad timestamp": ([GOOD | {"timestamp": "yesterday"}], "events.0.timestamp"),
    "variant without experiment": ([GOOD | {"variant": "control"}], "events.0.experiment"),
    "experiment not running": ([GOOD | {"experiment": "x", "variant": "control"}], "events.0.experiment"),
    "empty batch": ([], "events"),
}


@pytest.mark.parametrize("case", list(BAD_BATCHES.values()), ids=list(BAD_BATCHES))
def test_a_bad_batch_is_a_422_naming_the_field_and_stores_nothing(events_app, case):
    client, db = events_app
    events, field = case
    with EventStore(db) as store:
        before = store.count()
    res = client.post("/events", json={"events": events})
    assert res.status_code == 422, res.text
    assert field in res.json()["error"]["message"]
    with EventStore(db) as store:
        assert store.count() == before


def test_malformed_or_oversized_bodies_are_4xx(events_app):
    client, _ = events_app
    assert client.post("/events", content=b"{nope", headers={"content-type": "application/json"}).status_code == 400
    assert client.post("/events", json=[GOOD]).status_code == 422  # a bare list is not a batch
    assert client.post("/events", json={"events": [GOOD] * 501}).status_code in (413, 422)
    huge = {"events": [GOOD | {"query": "x" * 4000}] * 10}
    assert client.post("/events", json=huge).status_code == 413


def test_events_route_is_off_without_a_store(client):
    assert client.post("/events", json={"events": [GOOD]}).status_code == 404
    assert client.get("/info").json()["features"] == {}
