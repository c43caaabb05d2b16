"""Errors a user can act on, and the report of rows a loader could not use.

A bad row is never dropped silently: loaders record it in a :class:`BadRowReport` (file, row,
field, value, reason), count it, and either go on (``on_error="report"``, the default) or stop at
the first one (``on_error="raise"``). Duplicates are resolved by a stated rule and counted too.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

OnError = Literal["report", "raise"]


class ShopsearchError(Exception):
    """Base of every error shopsearch raises on purpose; the CLI prints its message, no traceback."""


class DataError(ShopsearchError, ValueError):
    """A problem in an input file, located as precisely as possible."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.row = row
        self.field = field
        self.reason = message
        where = []
        if file is not None:
            where.append(str(file))
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


@dataclass(frozen=True)
class BadRow:
    """One rejected or altered input row. ``row`` is 1-based, counting the header as row 1 for CSV."""

    file: str
    row: int | None
    field: str | None
    reason: str
    value: str | None = None
    action: str = "skipped"  # skipped | kept-first | kept-last | merged | ...

    def __str__(self) -> str:
        loc = f"{self.file}" + (f", row {self.row}" if self.row is not None else "")
        fld = f", field {self.field!r}" if self.field else ""
        val = f" (value {self.value!r})" if self.value is not None else ""
        return f"{loc}{fld}: {self.reason}{val} [{self.action}]"


@dataclass
class BadRowReport:
    """Everything a loader rejected or changed, with counts by reason."""

    rows: list[BadRow] = field(default_factory=list)
    on_error: OnError = "report"

    def add(
        self,
        file: str | Path,
        row: int | None,
        field: str | None,
        reason: str,
        value: Any = None,
        action: str = "skipped",
    ) -> None:
        if self.on_error == "raise" and action == "skipped":
            raise DataError(reason + (f" (value {value!r})" if value is not None else ""), file=file, row=row, field=field)
        shown = None if value is None else str(value)[:200]
        self.rows.append(BadRow(str(file), row, field, reason, shown, action))

    def extend(self, other: BadRowReport) -> None:
        self.rows.extend(other.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __bool__(self) -> bool:  # an empty report is still a report
        return True

    @property
    def skipped(self) -> int:
        return sum(1 for r in self.rows if r.action == "skipped")

    def counts(self) -> dict[str, Any]:
        by_reason = Counter(f"{r.field or '-'}: {r.reason.split(';')[0]}" for r in self.rows)
        by_action = Counter(r.action for r in self.rows)
        return {"total": len(self.rows), "by_action": dict(by_action), "by_reason": dict(by_reason.most_common())}

    def summary(self, limit: int = 10) -> str:
        if not self.rows:
            return "no bad rows"
        lines = [f"{len(self.rows)} rows reported ({', '.join(f'{k}: {v}' for k, v in self.counts()['by_action'].items())})"]
        lines += [f"  {r}" for r in self.rows[:limit]]
        if len(self.rows) > limit:
            lines.append(f"  ... and {len(self.rows) - limit} more (see the bad-row report file)")
        return "\n".join(lines)

    def to_jsonl(self, path: str | Path) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            for r in self.rows:
                fh.write(json.dumps(asdict(r), ensure_ascii=False) + "\n")

    @classmethod
    def from_jsonl(cls, path: str | Path) -> BadRowReport:
        report = cls()
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    report.rows.append(BadRow(**json.loads(line)))
        return report
