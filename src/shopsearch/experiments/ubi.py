"""UBI ndjson export and import of search events (the User Behavior Insights schema of OpenSearch).

Export writes, per search, one ``ubi_queries`` record (``query_id, client_id, user_query,
query_attributes, query_response_hit_ids, timestamp``) and one ``ubi_events`` record per event
(``action_name, query_id, session_id, client_id, user_id, timestamp, user_query,
event_attributes.object.object_id, event_attributes.position.ordinal``). shopsearch's own fields
travel in ``event_attributes.experiment`` (``name, variant, team``) and ``event_attributes.event_id``.
Orders are written as UBI's ``purchase``. With ``bulk=True`` (the default) each record is preceded by
an OpenSearch bulk ``{"index": {"_index": ..., "_id": ...}}`` line, so ``_bulk`` can ingest the file.

Import reads that shape back, and other UBI logs (like ``shared/data/ubi-sample``): records that
cannot become a :class:`~shopsearch.experiments.events.SearchEvent` are reported (file, line,
field), never dropped silently; actions other than the four are counted per name.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shopsearch.artifacts import atomic_write_text
from shopsearch.data.errors import BadRowReport, OnError
from shopsearch.data.ubi import iter_ubi_records
from shopsearch.experiments.events import ACTIONS, EVENT_FIELDS, normalize_action, parse_times

QUERIES_INDEX = "ubi_queries"
EVENTS_INDEX = "ubi_events"
OBJECT_ID_FIELD = "product_id"
_UBI_ACTION = {"order": "purchase"}


def _none(v: Any) -> Any:
    return None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else v


def _iso(ts: pd.Series) -> list[str]:
    """UTC ISO-8601 with milliseconds and a Z, as UBI writes it."""
    return (ts.dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "Z").tolist()


def ubi_records(events: pd.DataFrame, application: str = "shopsearch") -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(index, _id, record): each search's ``ubi_queries`` record followed by its events in time
    order, searches in the order of their first event. One pass over plain lists, no per-group pandas."""
    df = events.sort_values("timestamp", kind="stable")
    order = pd.Series(np.arange(len(df)), index=df.index).groupby(df["query_id"], sort=False).transform("min")
    df = df.iloc[np.lexsort((np.arange(len(df)), order.to_numpy()))].reset_index(drop=True)
    first = df.drop_duplicates("query_id").set_index("query_id")
    shown = (df[df["action_name"] == "impression"].sort_values(["query_id", "position"], kind="stable")
             .groupby("query_id", sort=False)["object_id"].agg(list))
    times = dict(zip(first.index, _iso(first["timestamp"]), strict=True))
    heads = first.drop(columns="timestamp").astype(object).to_dict("index")
    # plain column lists: to_dict("records") on Arrow-backed string columns costs 10x more
    names = [c for c in EVENT_FIELDS if c != "timestamp"]
    cols = [df[c].astype(object).where(df[c].notna(), None).tolist() for c in names]
    current = None
    for values, stamp in zip(zip(*cols, strict=True), _iso(df["timestamp"]), strict=True):
        rec = dict(zip(names, values, strict=True))
        qid = str(rec["query_id"])
        if qid != current:
            current = qid
            head = heads[rec["query_id"]]
            attrs = {k: _none(head[k]) for k in ("experiment", "variant") if _none(head[k]) is not None}
            yield QUERIES_INDEX, qid, {
                "application": application, "query_id": qid, "client_id": _none(head["client_id"]),
                "user_id": _none(head["user_id"]), "session_id": _none(head["session_id"]),
                "user_query": _none(head["query"]), "query_attributes": attrs, "object_id_field": OBJECT_ID_FIELD,
                "query_response_hit_ids": [str(x) for x in shown.get(rec["query_id"], [])],
                "timestamp": times[rec["query_id"]],
            }
        experiment = {("name" if k == "experiment" else k): rec[k] for k in ("experiment", "variant", "team")
                      if rec[k] is not None}
        position = rec["position"]
        yield EVENTS_INDEX, str(rec["event_id"]), {
            "application": application,
            "action_name": _UBI_ACTION.get(rec["action_name"], rec["action_name"]),
            "query_id": qid, "session_id": rec["session_id"], "client_id": rec["client_id"],
            "user_id": rec["user_id"], "timestamp": stamp, "user_query": rec["query"],
            "message_type": None, "message": None,
            "event_attributes": {
                "object": {"object_id": str(rec["object_id"]), "object_id_field": OBJECT_ID_FIELD},
                "position": {"ordinal": None if position is None else int(position)},
                "experiment": experiment,
                "event_id": str(rec["event_id"]),
            },
        }


def write_ubi(events: pd.DataFrame, path: str | Path, *, bulk: bool = True) -> dict[str, int]:
    """Write an events frame (:data:`EVENT_FIELDS` columns) as UBI ndjson, atomically.
    Returns the number of query and event records written."""
    lines: list[str] = []
    counts: Counter[str] = Counter()
    for index, _id, rec in ubi_records(events):
        counts[index] += 1
        if bulk:
            lines.append(json.dumps({"index": {"_index": index, "_id": _id}}))
        lines.append(json.dumps(rec, ensure_ascii=False))
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
    return {"queries": counts[QUERIES_INDEX], "events": counts[EVENTS_INDEX]}


def _dicts(rec: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """``event_attributes`` and its ``object``, ``position`` and ``experiment`` parts; {} when absent
    or not objects (generators differ in what they fill in)."""

    def sub(d: dict[str, Any], key: str) -> dict[str, Any]:
        v = d.get(key)
        return v if isinstance(v, dict) else {}

    attrs = sub(rec, "event_attributes")
    return attrs, sub(attrs, "object"), sub(attrs, "position"), sub(attrs, "experiment")


def read_ubi(path: str | Path, *, on_error: OnError = "report") -> tuple[pd.DataFrame, BadRowReport]:
    """UBI ndjson (bulk or plain) -> events frame with :data:`EVENT_FIELDS` columns, and the report.

    An event's query text is its own ``user_query``, else its ``ubi_queries`` record's. Its id is
    ``event_attributes.event_id``, else the bulk ``_id``, else a hash of file name and line (stable,
    so importing the same file twice into a store adds nothing the second time).
    """
    path = Path(path)
    report = BadRowReport(on_error=on_error)
    file = str(path)
    texts: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    ignored: Counter[str] = Counter()
    for line_no, rec, kind, bulk_id in iter_ubi_records(path, report):
        if kind == "query":
            if rec.get("query_id") and rec.get("user_query"):
                texts[str(rec["query_id"])] = str(rec["user_query"])
            continue
        action = normalize_action(rec.get("action_name"))
        if action not in ACTIONS:
            ignored[action or "<none>"] += 1
            continue
        attrs, obj, pos, exp = _dicts(rec)
        if not rec.get("query_id"):
            report.add(file, line_no, "query_id", f"{action} event without a query_id")
            continue
        if not obj.get("object_id"):
            report.add(file, line_no, "event_attributes.object.object_id", f"{action} event without a product id")
            continue
        ordinal = pos.get("ordinal")
        if ordinal is not None and not (isinstance(ordinal, int) and ordinal >= 0):
            report.add(file, line_no, "event_attributes.position.ordinal", "position is not an integer >= 0",
                       ordinal, action="kept-without-position")
            ordinal = None
        event_id = attrs.get("event_id") or bulk_id or hashlib.sha256(f"{path.name}:{line_no}".encode()).hexdigest()[:32]
        rows.append({
            "event_id": str(event_id), "action_name": action, "query_id": str(rec["query_id"]),
            "query": rec.get("user_query"), "client_id": rec.get("client_id"), "user_id": rec.get("user_id"),
            "session_id": rec.get("session_id") or attrs.get("session_id"), "object_id": str(obj["object_id"]),
            "position": ordinal, "timestamp": rec.get("timestamp"), "experiment": exp.get("name"),
            "variant": exp.get("variant"), "team": exp.get("team"), "_line": line_no,
        })
    for action, n in ignored.most_common():
        report.add(file, None, "action_name", f"not one of {list(ACTIONS)} ({n} records unused)", action,
                   action="ignored")
    df = pd.DataFrame(rows, columns=[*EVENT_FIELDS, "_line"])
    df["query"] = [q if q else texts.get(qid) for q, qid in zip(df["query"], df["query_id"], strict=True)]
    df["timestamp"] = parse_times(df["timestamp"])
    for line_no in df.loc[df["timestamp"].isna(), "_line"]:
        report.add(file, int(line_no), "timestamp", "missing or unreadable timestamp")
    df = df[df["timestamp"].notna()]
    dupes = df["event_id"].duplicated()
    for line_no, event_id in zip(df.loc[dupes, "_line"], df.loc[dupes, "event_id"], strict=True):
        report.add(file, int(line_no), "event_id", "repeated event id", event_id, action="kept-first")
    df = df[~dupes].drop(columns="_line").reset_index(drop=True)
    df["position"] = df["position"].astype("Int64")
    return df, report


STORE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def load_events(path: str | Path, experiment: str | None = None) -> tuple[pd.DataFrame, BadRowReport]:
    """Events from an event store file (``.db``/``.sqlite``) or a UBI ndjson (``.ndjson``/``.jsonl``/``.json``),
    optionally only one experiment's; with the import report (empty for a store)."""
    from shopsearch.data.errors import DataError
    from shopsearch.experiments.events import EventStore

    path = Path(path)
    if not path.is_file():
        raise DataError("events file not found", file=path)
    if path.suffix.lower() in STORE_SUFFIXES:
        with EventStore(path) as store:
            return store.frame(experiment), BadRowReport()
    if path.suffix.lower() in (".ndjson", ".jsonl", ".json"):
        df, report = read_ubi(path)
        if experiment is not None:
            df = df[df["experiment"] == experiment].reset_index(drop=True)
        return df, report
    raise DataError(f"unknown events file type {path.suffix!r}: give an event store ({', '.join(STORE_SUFFIXES)}) "
                    "or a UBI ndjson (.ndjson, .jsonl)", file=path)
