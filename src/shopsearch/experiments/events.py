"""Search events in the User Behavior Insights (UBI) shape, and the embedded append-only event store.

One :class:`SearchEvent` per shopper action on one product of one search (``query_id`` names the
search: one results page shown to one shopper, as UBI's ``query_id`` does):

- ``impression``: the product was shown at ``position`` (0-based, UBI's ``position.ordinal``);
- ``click``, ``add_to_cart``, ``order`` (UBI's ``purchase``): engagements with it.

:class:`EventStore` keeps them in a SQLite file (see :mod:`shopsearch.experiments.storage` for the
durability settings): ``append()`` writes one batch in one transaction and returns only once the
batch is on disk, so an acknowledged event survives a crash. Appends are idempotent by ``event_id``:
a client retrying after a timeout does not double-count.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shopsearch.data.errors import DataError
from shopsearch.experiments.storage import SqliteLog, to_us

Action = Literal["impression", "click", "add_to_cart", "order"]
ACTIONS: tuple[str, ...] = ("impression", "click", "add_to_cart", "order")
# Other spellings of the four actions in UBI logs.
ACTION_ALIASES: dict[str, str] = {"purchase": "order", "add-to-cart": "add_to_cart", "addtocart": "add_to_cart"}
EVENT_FIELDS: tuple[str, ...] = (
    "event_id", "action_name", "query_id", "query", "client_id", "user_id", "session_id", "object_id",
    "position", "timestamp", "experiment", "variant", "team",
)  # fmt: skip
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    action_name TEXT NOT NULL,
    query_id TEXT NOT NULL,
    query TEXT,
    client_id TEXT,
    user_id TEXT,
    session_id TEXT,
    object_id TEXT NOT NULL,
    position INTEGER,
    ts_us INTEGER NOT NULL,
    experiment TEXT,
    variant TEXT,
    team TEXT
);
CREATE INDEX IF NOT EXISTS events_experiment ON events (experiment, seq)
"""
_COLUMNS = tuple("ts_us" if f == "timestamp" else f for f in EVENT_FIELDS)


def normalize_action(name: Any) -> str:
    key = "" if name is None else str(name).strip().lower()
    return ACTION_ALIASES.get(key, key)


class SearchEvent(BaseModel):
    """One shopper action on one product of one search (UBI ``ubi_events`` record, flattened).

    ``user_id`` or ``client_id`` identifies the shopper (``user`` experiments use ``user_id``, else
    ``client_id``); ``team`` is the interleaving team (a variant name) of the product's position.
    """

    model_config = ConfigDict(extra="forbid")

    action_name: Action
    query_id: str = Field(min_length=1)
    object_id: str = Field(min_length=1, description="product id")
    query: str | None = None
    client_id: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    position: int | None = Field(None, ge=0)
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    experiment: str | None = None
    variant: str | None = None
    team: str | None = None
    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1)

    @field_validator("action_name", mode="before")
    @classmethod
    def _alias(cls, value: Any) -> Any:
        return normalize_action(value) if isinstance(value, str) else value

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # naive times are taken as UTC, so every stored time means the same instant
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _row(e: SearchEvent) -> tuple[Any, ...]:
    d = e.model_dump()
    d["ts_us"] = to_us(e.timestamp)
    return tuple(d[c] for c in _COLUMNS)


def _validated(events: SearchEvent | Mapping[str, Any] | Iterable[SearchEvent | Mapping[str, Any]]) -> list[SearchEvent]:
    batch = [events] if isinstance(events, SearchEvent | Mapping) else list(events)
    out = []
    for i, e in enumerate(batch):
        if isinstance(e, SearchEvent):
            out.append(e)
            continue
        try:
            out.append(SearchEvent.model_validate(e))
        except ValidationError as exc:
            err = exc.errors()[0]
            raise DataError(
                f"invalid event: {err['msg']} (input {err.get('input')!r})",
                file="append batch", row=i, field=".".join(map(str, err["loc"])) or None,
            ) from None
    return out


def frame_to_rows(frame: pd.DataFrame, source: str = "events frame") -> list[tuple[Any, ...]]:
    """Validate an events DataFrame column-wise (no per-row pydantic cost) into store rows.

    Required: ``action_name, query_id, object_id``; ``timestamp`` (datetime, ISO text or epoch
    seconds/ms), ``event_id`` (default: new UUIDs) and the rest optional. A bad row raises a
    :class:`DataError` naming the row (0-based frame position) and the field.
    """
    missing = [c for c in ("action_name", "query_id", "object_id") if c not in frame.columns]
    if missing:
        raise DataError(f"events lack column(s) {missing}; columns found: {list(frame.columns)}", file=source)
    unknown = [c for c in frame.columns if c not in EVENT_FIELDS]
    if unknown:
        raise DataError(f"unknown event column(s) {unknown}; expected a subset of {list(EVENT_FIELDS)}", file=source)
    n = len(frame)
    df = pd.DataFrame(index=pd.RangeIndex(n))
    for col in EVENT_FIELDS:
        df[col] = frame[col].to_numpy() if col in frame.columns else None
    df["action_name"] = df["action_name"].map(normalize_action)

    def fail(mask: np.ndarray, field: str, reason: str) -> None:
        if mask.any():
            row = int(np.flatnonzero(mask)[0])
            raise DataError(f"{reason} (value {frame[field].iloc[row]!r}; {int(mask.sum())} such rows)",
                            file=source, row=row, field=field)

    fail(~df["action_name"].isin(ACTIONS).to_numpy(), "action_name", f"action must be one of {list(ACTIONS)}")
    for col in ("query_id", "object_id"):
        empty = df[col].isna().to_numpy() | (df[col].astype(str).str.strip() == "").to_numpy()
        fail(empty, col, "empty id")
    pos = pd.to_numeric(df["position"], errors="coerce")
    fail(((pos < 0) | (pos != np.floor(pos)) | (pos.isna() & df["position"].notna())).to_numpy(), "position",
         "position must be an integer >= 0")
    if "timestamp" in frame.columns:
        ts = parse_times(df["timestamp"])
        fail(ts.isna().to_numpy(), "timestamp", "unreadable timestamp")
        ts_us = ts.to_numpy(dtype="datetime64[us]").astype(np.int64)
    else:
        ts_us = np.full(n, to_us(datetime.now(UTC)), dtype=np.int64)
    if "event_id" not in frame.columns:
        df["event_id"] = [uuid.uuid4().hex for _ in range(n)]
    fail(df["event_id"].isna().to_numpy(), "event_id", "empty event id")
    cols = {c: df[c].astype(object).where(df[c].notna(), None).to_numpy() for c in EVENT_FIELDS}
    for c in EVENT_FIELDS:  # text columns: ids may arrive as numbers
        if c not in ("position", "timestamp"):
            cols[c] = np.array([None if v is None else str(v) for v in cols[c]], dtype=object)
    cols["ts_us"] = ts_us.astype(object)
    cols["position"] = np.array([None if v != v else int(v) for v in pos], dtype=object)
    return list(zip(*(cols[c].tolist() for c in _COLUMNS), strict=True))


def parse_times(values: pd.Series) -> pd.Series:
    """UTC datetimes from datetimes, ISO text or epoch numbers (> 1e11 read as milliseconds)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        s = pd.to_datetime(values)
        return s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")
    num = pd.to_numeric(values, errors="coerce")
    out = pd.to_datetime(values.where(num.isna()), utc=True, errors="coerce", format="mixed")
    millis = num > 1e11
    out[millis] = pd.to_datetime(num[millis], unit="ms", utc=True)
    secs = num.notna() & ~millis
    out[secs] = pd.to_datetime(num[secs], unit="s", utc=True)
    return out


class EventStore:
    """Append-only SQLite log of :class:`SearchEvent` (WAL, ``synchronous=FULL``).

    Safe to share between threads of one process and to open from several processes at once.
    """

    def __init__(self, path: str | Path) -> None:
        self._db = SqliteLog(path, _SCHEMA, SCHEMA_VERSION, "shopsearch event store")
        self.path = self._db.path

    def append(self, events: SearchEvent | Mapping[str, Any] | Iterable[SearchEvent | Mapping[str, Any]]) -> int:
        """Store one event or a batch in ONE transaction; returns how many were new (an
        ``event_id`` already stored is skipped). When this returns, the batch is durable."""
        return self._insert([_row(e) for e in _validated(events)])

    def append_frame(self, frame: pd.DataFrame) -> int:
        """:meth:`append` for a DataFrame with :data:`EVENT_FIELDS` columns (simulations, imports)."""
        return self._insert(frame_to_rows(frame))

    def _insert(self, rows: list[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        sql = f"INSERT OR IGNORE INTO events ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
        with self._db.transaction() as cur:
            before = cur.execute("SELECT total_changes()").fetchone()[0]
            cur.executemany(sql, rows)
            return int(cur.execute("SELECT total_changes()").fetchone()[0] - before)

    def frame(self, experiment: str | None = None) -> pd.DataFrame:
        """The events (all, or one experiment's) as a DataFrame with :data:`EVENT_FIELDS` columns,
        in append order; ``timestamp`` is UTC ``datetime64``."""
        where, params = ("WHERE experiment = ?", (experiment,)) if experiment is not None else ("", ())
        with self._db.lock:
            df = pd.read_sql_query(f"SELECT {', '.join(_COLUMNS)} FROM events {where} ORDER BY seq",
                                   self._db.connection, params=params)
        df["timestamp"] = pd.to_datetime(df.pop("ts_us").astype(np.int64), unit="us", utc=True)
        df["position"] = df["position"].astype("Int64")
        return df[list(EVENT_FIELDS)]

    def events(self, experiment: str | None = None) -> Iterator[SearchEvent]:
        """The stored events as :class:`SearchEvent` objects, in append order."""
        for rec in self.frame(experiment).to_dict("records"):
            yield SearchEvent.model_validate(
                {k: (None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else v)
                 for k, v in rec.items()} | {"timestamp": rec["timestamp"].to_pydatetime()}
            )

    def count(self, experiment: str | None = None) -> int:
        if experiment is None:
            return int(self._db.query("SELECT COUNT(*) FROM events")[0][0])
        return int(self._db.query("SELECT COUNT(*) FROM events WHERE experiment = ?", (experiment,))[0][0])

    def experiments(self) -> dict[str | None, int]:
        """Experiment name (None: events outside any experiment) -> number of events."""
        return {name: int(n) for name, n in self._db.query("SELECT experiment, COUNT(*) FROM events GROUP BY 1")}

    def export_ubi(self, path: str | Path, experiment: str | None = None, *, bulk: bool = True) -> dict[str, int]:
        """Write the events as UBI ndjson (see :mod:`shopsearch.experiments.ubi`)."""
        from shopsearch.experiments.ubi import write_ubi  # ubi builds on this module

        return write_ubi(self.frame(experiment), path, bulk=bulk)

    def pragma(self, name: str) -> object:
        """A SQLite setting of this connection (``journal_mode``, ``synchronous``, ...)."""
        return self._db.pragma(name)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
