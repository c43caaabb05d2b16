"""Stage-1 pairs from behaviour logs: engagement counts, and session reformulations.

Input shape is the plain event table ``(query, product_id, event, count)`` (CSV, Parquet, JSONL)
or a User Behavior Insights (UBI) OpenSearch bulk file of ``ubi_queries`` + ``ubi_events`` records.
Rows that cannot be used are never dropped silently: each is reported in a
:class:`~shopsearch.data.errors.BadRowReport` (file, row, field, reason), and actions that are not
engagements (impressions, hovers, filters, ...) are counted there in one line per action name.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shopsearch.data.errors import BadRowReport, DataError, OnError
from shopsearch.data.ubi import iter_ubi_records
from shopsearch.training.pairs import finish_pairs, normalize_query, synthetic_query_id

EVENTS: tuple[str, ...] = ("click", "add_to_cart", "order")
# Spellings of the three engagements in common logs; UBI calls an order "purchase".
EVENT_ALIASES: dict[str, str] = {
    "purchase": "order",
    "add-to-cart": "add_to_cart",
    "add to cart": "add_to_cart",
}
EVENT_COLUMNS: tuple[str, ...] = ("query", "product_id", "event", "count")
DEFAULT_EVENT_WEIGHTS: dict[str, float] = {"click": 1.0, "add_to_cart": 3.0, "order": 5.0}
_COLUMN_ALIASES = {"user_query": "query", "object_id": "product_id", "action_name": "event"}
# An add to cart or an order says more about the product the shopper finally wanted than a click.
_STRONG = ("add_to_cart", "order")


def normalize_event(name: Any) -> str:
    key = "" if name is None else str(name).strip().lower()
    return EVENT_ALIASES.get(key, key)


@dataclass(frozen=True)
class LogPairConfig:
    """When an aggregated (query, product) engagement becomes a positive pair.

    A pair is kept when ANY event meets its threshold (None: that event never qualifies alone).
    Its ``weight`` is the largest ``event_weights`` value among the qualifying events and its
    source ``log:<that event>``: the strongest evidence speaks for the pair, so a product with
    one order is not outweighed by another's many clicks (counts are kept in ``n_<event>``).
    """

    min_clicks: int | None = 2
    min_add_to_cart: int | None = 1
    min_orders: int | None = 1
    event_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))

    def threshold(self, event: str) -> int | None:
        minimum = {"click": self.min_clicks, "add_to_cart": self.min_add_to_cart, "order": self.min_orders}
        return minimum[event]


def _clean_events(
    events: pd.DataFrame,
    report: BadRowReport,
    file: str,
    rows: np.ndarray | None = None,
    *,
    keep_unknown: bool,
) -> pd.DataFrame:
    """Rows with a query, a product (for engagements) and a count >= 0; bad ones reported by row.

    ``rows`` are the file row numbers of ``events`` (default: position + 1). Unknown events are
    kept (``keep_unknown``: sessions use them to find a first query) or counted once per name.
    """
    df = events.rename(columns={a: c for a, c in _COLUMN_ALIASES.items() if c not in events.columns})
    missing = [c for c in ("query", "product_id", "event") if c not in df.columns]
    if missing:
        raise DataError(f"event table lacks column(s) {missing}; it has {list(events.columns)}", file=file)
    df = df.reset_index(drop=True)
    raw = df.copy()
    df["_row"] = np.arange(1, len(df) + 1) if rows is None else np.asarray(rows)
    df["count"] = pd.to_numeric(df["count"], errors="coerce") if "count" in df.columns else 1.0
    df["event"] = df["event"].map(normalize_event)
    df["product_id"] = df["product_id"].map(lambda v: "" if v is None or v != v else str(v).strip())
    problems = [
        ("query", df["query"].map(normalize_query) == ""),
        ("product_id", (df["product_id"] == "") & df["event"].isin(EVENTS)),
        ("count", ~np.isfinite(df["count"].astype(float)) | (df["count"] < 0)),
    ]
    reasons = {"query": "no query text", "product_id": "no product id", "count": "count is not a number >= 0"}
    bad = pd.Series(False, index=df.index)
    for column, mask in problems:
        mask = mask & ~bad
        for row, value in zip(
            df.loc[mask, "_row"],
            raw.loc[mask, column] if column in raw else [None] * int(mask.sum()),
            strict=True,
        ):
            report.add(file, int(row), column, reasons[column], value)
        bad |= mask
    df = df[~bad]
    unknown = ~df["event"].isin(EVENTS)
    if not keep_unknown and unknown.any():
        for name, n in df.loc[unknown, "event"].value_counts().items():
            report.add(
                file, None, "event", f"not an engagement event ({n} rows unused)", name, action="ignored"
            )
        df = df[~unknown]
    return df


def pairs_from_events(
    events: pd.DataFrame,
    config: LogPairConfig = LogPairConfig(),
    report: BadRowReport | None = None,
    source_name: str = "events",
) -> pd.DataFrame:
    """Aggregate ``(query, product_id, event, count)`` rows into positive pairs (``source="log:<event>"``).

    Queries are grouped by :func:`~shopsearch.training.pairs.normalize_query` and get the
    synthetic id ``text:<query>`` (``merge_pairs`` swaps in a dataset id for a judged query).
    Bad or unknown rows go into ``report`` (a new one when None); it is also left in
    ``frame.attrs["report"]``, with counts in ``frame.attrs["stats"]``.
    """
    report = BadRowReport() if report is None else report
    rows = events["_row"].to_numpy() if "_row" in events.columns else None
    df = _clean_events(events, report, source_name, rows, keep_unknown=False)
    df = df.assign(_norm=df["query"].map(normalize_query), query=df["query"].astype(str).str.strip())
    counts = df.pivot_table(index=["_norm", "product_id"], columns="event", values="count", aggfunc="sum")
    counts = counts.reindex(columns=list(EVENTS)).fillna(0)
    weights = {e: float(config.event_weights.get(e, 0.0)) for e in EVENTS}
    best_w = pd.Series(-np.inf, index=counts.index)
    best_e = pd.Series("", index=counts.index, dtype=object)
    for event in EVENTS:
        need = config.threshold(event)
        if need is None:
            continue
        hit = (counts[event] >= need) & (counts[event] > 0) & (weights[event] > best_w)
        best_w[hit], best_e[hit] = weights[event], event
    keep = best_e != ""
    out = counts[keep].rename(columns={e: f"n_{e}" for e in EVENTS}).reset_index()
    out["weight"] = best_w[keep].to_numpy()
    out["source"] = ("log:" + best_e[keep]).to_numpy()
    first_text = df.drop_duplicates("_norm").set_index("_norm")["query"]
    out["query"] = out["_norm"].map(first_text)
    out["query_id"] = out["_norm"].map(synthetic_query_id)
    out["grade"] = None
    stats = {
        "rows_used": len(df),
        "rows_reported": len(report),
        "query_product_keys": len(counts),
        "pairs": len(out),
        "below_thresholds": int((~keep).sum()),
        "by_source": {str(k): int(v) for k, v in out["source"].value_counts().items()},
    }
    frame = finish_pairs(out.drop(columns="_norm"), stats)
    frame.attrs["report"] = report
    return frame


def pairs_from_sessions(
    events: pd.DataFrame,
    report: BadRowReport | None = None,
    weight: float = 1.0,
    source_name: str = "sessions",
) -> pd.DataFrame:
    """Reformulation pairs: the FIRST query of a session with the product FINALLY engaged.

    Per session (ordered by ``timestamp``, file order breaking ties) the engaged product is the
    last add_to_cart/order, else the last click; a pair is made only when that engagement's
    query differs (normalised) from the session's first query, i.e. the shopper reformulated:
    the first query is the one the retriever failed, and it must learn to find the product.
    Rows without a session id or a parsable timestamp cannot be ordered: reported, not used.
    """
    report = BadRowReport() if report is None else report
    for col in ("session_id", "timestamp"):
        if col not in events.columns:
            raise DataError(f"session pairs need a {col!r} column; the table has {list(events.columns)}")
    df = _clean_events(events, report, source_name, None, keep_unknown=True)
    df = df.assign(timestamp=parse_timestamps(df["timestamp"]), _norm=df["query"].map(normalize_query))
    no_order = (
        df["session_id"].isna() | (df["session_id"].astype(str).str.strip() == "") | df["timestamp"].isna()
    )
    if no_order.any():
        where, n = "session_id/timestamp", int(no_order.sum())
        report.add(source_name, None, where, f"{n} rows cannot be placed in a session order")
    df = df[~no_order].sort_values(["session_id", "timestamp", "_row"], kind="stable")
    first = _first_queries(df)
    eng = df[df["event"].isin(EVENTS)].assign(_strong=lambda d: d["event"].isin(_STRONG))
    eng = eng.sort_values(["session_id", "_strong", "timestamp", "_row"], kind="stable")
    last = eng.groupby("session_id", sort=False)[["product_id", "_norm", "event"]].last()
    joined = first.join(last, rsuffix="_engaged", how="inner")
    reform = joined[joined["_norm"] != joined["_norm_engaged"]]
    out = pd.DataFrame(
        {
            "query_id": reform["_norm"].map(synthetic_query_id).to_numpy(),
            "query": reform["query"].astype(str).str.strip().to_numpy(),
            "product_id": reform["product_id"].to_numpy(),
            "source": "session",
            "grade": None,
            "weight": float(weight),
            "session_id": reform.index.to_numpy(),
            "engaged_event": reform["event"].to_numpy(),
        }
    )
    out = out.drop_duplicates(["query_id", "product_id"])  # many sessions may repeat one reformulation
    stats = {
        "sessions": len(first),
        "sessions_with_engagement": len(joined),
        "same_query_sessions": len(joined) - len(reform),
        "pairs": len(out),
    }
    frame = finish_pairs(out, stats)
    frame.attrs["report"] = report
    return frame


def _first_queries(df: pd.DataFrame) -> pd.DataFrame:
    """Each session's first query, skipping typeahead prefixes: a query that the session's next
    distinct query extends ("g" -> "go" -> "gold", as UBI search boxes log every keystroke) was
    still being typed, not searched and abandoned, so it is no reformulation."""
    seq = df.loc[df["_norm"] != "", ["session_id", "query", "_norm"]]
    seq = seq[(seq["_norm"] != seq["_norm"].shift()) | (seq["session_id"] != seq["session_id"].shift())]
    nxt = seq.groupby("session_id", sort=False)["_norm"].shift(-1).fillna("")
    typing = [n != "" and n.startswith(q) for q, n in zip(seq["_norm"], nxt, strict=True)]
    return seq[~np.asarray(typing, dtype=bool)].groupby("session_id", sort=False)[["query", "_norm"]].first()


def parse_timestamps(values: pd.Series) -> pd.Series:
    """UTC datetimes from ISO strings or epoch numbers (> 1e11 read as milliseconds, else seconds)."""
    num = pd.to_numeric(values, errors="coerce")
    out = pd.to_datetime(values.where(num.isna()), utc=True, errors="coerce", format="mixed")
    millis = num > 1e11
    out[millis] = pd.to_datetime(num[millis], unit="ms", utc=True)
    out[num.notna() & ~millis] = pd.to_datetime(num[num.notna() & ~millis], unit="s", utc=True)
    return out


def read_events(
    path: str | Path, *, all_actions: bool = False, on_error: OnError = "report"
) -> tuple[pd.DataFrame, BadRowReport]:
    """Read an event log: CSV/TSV, Parquet, JSONL of ``(query, product_id, event[, count, session_id,
    timestamp])``, or a UBI ndjson (OpenSearch bulk or plain) of ``ubi_queries``/``ubi_events``.

    Returns rows with columns ``query, product_id, event, count`` (plus ``session_id, timestamp``
    and, for UBI, ``ubi_query_id``) and the report. Non-engagement rows are left out and counted
    unless ``all_actions`` (session pairs use them to find a session's first query).
    """
    path = Path(path)
    report = BadRowReport(on_error=on_error)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json") and _looks_like_ubi(path):
        return _read_ubi(path, report, all_actions=all_actions), report
    if suffix in (".csv", ".tsv"):
        df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
        first_row = 2  # the header is row 1
    elif suffix in (".parquet", ".pq"):
        df, first_row = pd.read_parquet(path), 1
    elif suffix in (".jsonl", ".ndjson", ".json"):
        df, first_row = pd.read_json(path, lines=True, dtype=False), 1
    else:
        raise DataError(f"unknown event file type {suffix!r}; use .csv, .tsv, .parquet or .jsonl", file=path)
    rows = np.arange(first_row, first_row + len(df))
    out = _clean_events(df, report, str(path), rows, keep_unknown=all_actions)
    cols = [*EVENT_COLUMNS, *[c for c in ("session_id", "timestamp") if c in out.columns]]
    out = out[cols].reset_index(drop=True)
    out.attrs["stats"] = {"rows": len(df), "rows_used": len(out), "reported": len(report)}
    return out, report


def _looks_like_ubi(path: Path) -> bool:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    return False
                keys = set(rec) if isinstance(rec, dict) else set()
                return bool(keys & {"index", "create", "action_name", "user_query"})
    return False


# UBI action names that are engagements with a product; every other action is counted, not used.
UBI_ACTIONS: dict[str, str] = {
    "click": "click",
    "add_to_cart": "add_to_cart",
    "purchase": "order",
    "order": "order",
}
_NO_TEXT = "event whose query text is unknown (query_id not in ubi_queries, no user_query)"


def _read_ubi(path: Path, report: BadRowReport, *, all_actions: bool) -> pd.DataFrame:
    """UBI records -> event rows. An event's query text comes from its ``ubi_queries`` record
    (joined on ``query_id``; a repeated id with another text: the last one, reported), else the
    event's own ``user_query``, else the ``message`` of a QUERY-type event with that ``query_id``
    (how the ubi-demo generator logs the typed query). The session id is the event's, else
    ``event_attributes.session_id`` (same generator)."""
    file, add = str(path), report.add
    queries: dict[str, str] = {}
    typed: dict[str, str] = {}
    events: list[tuple[Any, ...]] = []
    kinds: Counter[str] = Counter()
    repeats = 0
    for line_no, rec, kind, _ in iter_ubi_records(path, report):
        kinds[kind] += 1
        if kind == "query":
            qid, text = str(rec.get("query_id") or ""), str(rec.get("user_query") or "")
            if not qid or not normalize_query(text):
                add(file, line_no, "query_id/user_query", "ubi_queries record without id or text")
                continue
            if qid in queries and normalize_query(queries[qid]) != normalize_query(text):
                add(file, line_no, "user_query", f"query_id was {queries[qid]!r}", text, action="kept-last")
            repeats += qid in queries and normalize_query(queries[qid]) == normalize_query(text)
            queries[qid] = text
        else:
            raw_attrs = rec.get("event_attributes")
            attrs: dict[str, Any] = raw_attrs if isinstance(raw_attrs, dict) else {}
            raw_obj = attrs.get("object")
            obj: dict[str, Any] = raw_obj if isinstance(raw_obj, dict) else {}
            qid = str(rec.get("query_id") or "")
            if rec.get("message_type") == "QUERY" and rec.get("message") and qid:
                typed[qid] = str(rec["message"])
            action = str(rec.get("action_name") or "").strip().lower()
            session, ts = rec.get("session_id") or attrs.get("session_id"), rec.get("timestamp")
            events.append((line_no, action, qid, rec.get("user_query"), obj.get("object_id"), session, ts))
    if repeats:
        add(file, None, "query_id", f"{repeats} repeated ubi_queries records, same text", action="merged")
    out: list[Any] = []
    ignored: Counter[str] = Counter()
    text_from: Counter[str] = Counter()
    for line_no, action, qid, user_query, object_id, session, ts in events:
        event = UBI_ACTIONS.get(action)
        found = [(t, w) for t, w in ((queries.get(qid), "ubi_queries"), (user_query, "event_user_query"),
                 (typed.get(qid), "query_event_message")) if normalize_query(t)]  # fmt: skip
        if event is None and (not all_actions or not found):
            ignored[action or "<none>"] += 1  # not an engagement, or (all_actions) not placeable
        elif event is not None and not object_id:
            add(file, line_no, "event_attributes.object.object_id", f"{action} event without a product id")
        elif not found:
            add(file, line_no, "query_id", f"{action} {_NO_TEXT}", qid)
        else:
            text_from[found[0][1]] += 1
            out.append((found[0][0], str(object_id or ""), event or action, 1, session, ts, qid, line_no))
    for action, n in ignored.most_common():
        add(file, None, "action_name", f"not an engagement action ({n} unused)", action, action="ignored")
    df = pd.DataFrame(out, columns=[*EVENT_COLUMNS, "session_id", "timestamp", "ubi_query_id", "line"])
    df["timestamp"] = parse_timestamps(df["timestamp"])
    df.attrs["stats"] = {
        "records": dict(kinds),
        "events_used": {str(k): int(v) for k, v in df["event"].value_counts().items()},
        "query_text_from": dict(text_from),
        "reported": len(report),
    }
    return df


