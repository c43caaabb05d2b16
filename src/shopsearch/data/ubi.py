"""Reading UBI (User Behavior Insights) ndjson files: the one line reader shared by behaviour-log
training pairs (``training.logs``) and A/B analysis (``experiments.ubi``).

A file holds ``ubi_queries`` and ``ubi_events`` records, one JSON object per line, either bare or as
an OpenSearch bulk file where an ``{"index": {"_index": ..., "_id": ...}}`` header names the next
record's index. Without a header a record's own fields tell its kind (``action_name``: event,
``user_query``: query).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from shopsearch.data.errors import BadRowReport

UbiKind = Literal["query", "event"]


def iter_ubi_records(
    path: str | Path, report: BadRowReport
) -> Iterator[tuple[int, dict[str, Any], UbiKind, Any]]:
    """``(line number, record, "query" | "event", bulk _id or None)`` per record. Lines that are not
    JSON, not objects, or neither kind are reported (file, line) and skipped, never silently."""
    path = Path(path)
    header: dict[str, Any] | None = None
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                report.add(str(path), line_no, None, f"not JSON: {exc.msg}")
                continue
            if isinstance(rec, dict) and len(rec) == 1 and next(iter(rec)) in ("index", "create"):
                header = next(iter(rec.values())) or {}
                continue
            index = str((header or {}).get("_index", ""))
            _id = (header or {}).get("_id")
            header = None
            if not isinstance(rec, dict):
                report.add(str(path), line_no, None, "record is not a JSON object")
            elif "event" in index or (not index and "action_name" in rec):
                yield line_no, rec, "event", _id
            elif "quer" in index or (not index and "user_query" in rec):
                yield line_no, rec, "query", _id
            else:
                report.add(str(path), line_no, None, "neither a UBI query nor a UBI event", str(rec)[:80])
