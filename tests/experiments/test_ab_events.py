"""SearchEvent validation and the SQLite event store: round trips, idempotency, atomic batches,
durability under SIGKILL, concurrent writers."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest

from shopsearch.data.errors import DataError
from shopsearch.experiments import EventStore, SearchEvent, StoreError


def event(i: int = 0, **kw) -> SearchEvent:
    base = {"action_name": "impression", "query_id": f"q{i // 10}", "object_id": f"p{i}", "position": i % 10,
            "user_id": f"u{i % 7}", "session_id": f"s{i % 5}", "query": "red shoes", "experiment": "e",
            "variant": "control", "event_id": f"e{i}",
            "timestamp": datetime(2026, 3, 1, 12, 0, tzinfo=UTC) + timedelta(microseconds=1000 * i + 7)}
    return SearchEvent(**base | kw)


def test_events_validate_and_normalise():
    e = SearchEvent(action_name="Purchase", query_id="q", object_id="p", timestamp=datetime(2026, 1, 1, 10))
    assert e.action_name == "order" and e.timestamp.tzinfo is UTC and len(e.event_id) == 32
    east = SearchEvent(action_name="click", query_id="q", object_id="p",
                       timestamp=datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2))))
    assert east.timestamp == datetime(2026, 1, 1, 10, tzinfo=UTC)
    for bad in ({"action_name": "hover"}, {"position": -1}, {"object_id": ""}, {"colour": "red"}):
        with pytest.raises(ValueError):
            SearchEvent(**{"action_name": "click", "query_id": "q", "object_id": "p"} | bad)


def test_store_settings_and_round_trip(tmp_path):
    with EventStore(tmp_path / "ev.db") as store:
        assert store.pragma("journal_mode") == "wal" and store.pragma("synchronous") == 2  # FULL
        sent = [event(i, action_name="click" if i % 3 == 0 else "impression") for i in range(25)]
        assert store.append(sent) == 25
        assert store.append(sent[:5]) == 0  # retried batch: already stored, nothing doubled
        assert store.append(event(99, experiment="other")) == 1
        assert store.count() == 26 and store.count("e") == 25 and store.experiments() == {"e": 25, "other": 1}
        assert list(store.events("e")) == sent  # exact, microseconds included
        frame = store.frame("e")
    assert list(frame["event_id"]) == [e.event_id for e in sent]
    assert str(frame["timestamp"].dtype).startswith("datetime64") and frame["position"].tolist() == [e.position for e in sent]
    with EventStore(tmp_path / "ev.db") as again:  # reopened: everything is still there
        assert again.count() == 26


def test_a_bad_event_rejects_its_whole_batch(tmp_path):
    with EventStore(tmp_path / "ev.db") as store:
        batch = [event(0).model_dump(), event(1).model_dump() | {"position": "third"}]
        with pytest.raises(DataError, match=r"row 1, field 'position'"):
            store.append(batch)
        assert store.count() == 0
        frame = pd.DataFrame([event(i).model_dump() for i in range(3)])
        frame.loc[2, "object_id"] = ""
        with pytest.raises(DataError, match=r"row 2, field 'object_id'"):
            store.append_frame(frame)
        with pytest.raises(DataError, match="unknown event column"):
            store.append_frame(frame.assign(colour="red"))
        assert store.append_frame(frame.iloc[:2]) == 2
        assert store.append_frame(frame.iloc[:2].assign(timestamp=["2026-03-01T12:00:00Z", 1772366400123])) == 0


def test_not_a_store_and_other_versions_are_refused(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        EventStore(junk)
    future = tmp_path / "future.db"
    conn = sqlite3.connect(future)
    conn.execute("PRAGMA user_version=7")
    conn.close()
    with pytest.raises(StoreError, match="version 7"):
        EventStore(future)


def test_threads_share_one_store(tmp_path):
    with EventStore(tmp_path / "ev.db") as store:
        def work(t: int) -> None:
            for j in range(25):
                store.append(event(1000 * t + j))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert store.count() == 100


_WRITER = textwrap.dedent("""
    import os, signal, sys
    from shopsearch.experiments import EventStore, SearchEvent
    store = EventStore(sys.argv[1])
    mode, tag = sys.argv[2], sys.argv[3]
    batch = 0
    while True:
        store.append([SearchEvent(action_name="click", query_id=f"q{batch}", object_id=f"p{i}",
                                  event_id=f"{tag}-{batch}-{i}") for i in range(20)])
        if mode == "self-kill":
            os.kill(os.getpid(), signal.SIGKILL)  # the very next instruction after append returned
        print(batch, flush=True)
        batch += 1
        if mode == "count" and batch == int(sys.argv[4]):
            break
""")


def _writer(path, *args) -> subprocess.Popen:
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", _WRITER, str(path), *map(str, args)], stdout=subprocess.PIPE,
                            text=True, env=env)


def test_an_acknowledged_append_survives_sigkill(tmp_path):
    path = tmp_path / "ev.db"
    proc = _writer(path, "self-kill", "a")
    assert proc.wait(timeout=60) == -signal.SIGKILL
    proc = _writer(path, "loop", "b")
    acked = [int(proc.stdout.readline()) for _ in range(15)]  # 15 batches acknowledged ...
    proc.send_signal(signal.SIGKILL)  # ... then killed while it is writing the next ones
    proc.wait(timeout=60)
    with EventStore(path) as store:
        stored = set(store.frame()["event_id"])
        assert store.pragma("integrity_check") == "ok"
    assert {f"a-0-{i}" for i in range(20)} <= stored
    assert {f"b-{b}-{i}" for b in acked for i in range(20)} <= stored
    assert len(stored) % 20 == 0  # a batch is all or nothing


def test_two_processes_append_to_one_store(tmp_path):
    path = tmp_path / "ev.db"
    procs = [_writer(path, "count", tag, 10) for tag in ("x", "y")]
    for p in procs:
        p.communicate(timeout=120)
        assert p.returncode == 0
    with EventStore(path) as store:
        assert store.count() == 2 * 10 * 20
