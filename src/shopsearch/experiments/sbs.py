"""Side-by-side (SBS) judging: blinded pairs, durable verdicts, and the GSB score.

A rater sees two result pages for one query, "left" and "right", without knowing which system made
which, and answers ``left`` (left is better), ``same`` or ``right``. :func:`blind_pair` picks the
sides by a seeded coin per (seed, query, systems), so half the pairs show each system on the left and
position bias cancels out; every :class:`SbsVerdict` records which system was on which side, so the
verdict can be unblinded later.

GSB (good-same-bad) of system A against B: ``(G - B) / (G + S + B)`` where G counts verdicts that
prefer A, B those that prefer B and S the ties; it lies in [-1, 1]. Its confidence interval is a
percentile bootstrap over *queries* (several raters judging one query are not independent
verdicts), and its p-value the two-sided sign test of G against B.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shopsearch.experiments.storage import SqliteLog, from_us, to_us

Verdict = Literal["left", "same", "right"]
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    verdict_id TEXT NOT NULL UNIQUE,
    query TEXT NOT NULL,
    query_id TEXT,
    left_system TEXT NOT NULL,
    right_system TEXT NOT NULL,
    verdict TEXT NOT NULL,
    rater TEXT NOT NULL,
    swapped INTEGER NOT NULL,
    ts_us INTEGER NOT NULL
)
"""
_FIELDS = ("verdict_id", "query", "query_id", "left_system", "right_system", "verdict", "rater", "swapped")


@dataclass(frozen=True)
class BlindPair:
    """What to show: ``left`` and ``right`` systems; ``swapped`` is True when ``left`` is the second
    system given to :func:`blind_pair` (keep it with the verdict)."""

    query: str
    left: str
    right: str
    swapped: bool


def blind_pair(query: str, a: str, b: str, seed: int | str = 0) -> BlindPair:
    """Seeded coin (SHA-256 of seed, query and the two systems) for which system goes left.
    The same arguments always give the same sides; over many queries each side gets each system
    half the time."""
    if a == b:
        raise ValueError(f"a side-by-side needs two different systems, got {a!r} twice")
    digest = hashlib.sha256(f"{seed}\x1f{query}\x1f{a}\x1f{b}".encode()).digest()
    swapped = bool(digest[0] & 1)
    return BlindPair(query, b if swapped else a, a if swapped else b, swapped)


class SbsVerdict(BaseModel):
    """One rater's verdict on one blinded pair. ``left_system``/``right_system`` are the systems as
    they were shown (the blinding record), ``verdict`` is the side the rater preferred."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1)
    left_system: str = Field(min_length=1)
    right_system: str = Field(min_length=1)
    verdict: Verdict
    rater: str = Field(min_length=1)
    swapped: bool = False
    query_id: str | None = None
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    verdict_id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1)

    @field_validator("verdict", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _two_systems(self) -> SbsVerdict:
        if self.left_system == self.right_system:
            raise ValueError(f"left and right show the same system {self.left_system!r}")
        return self

    @classmethod
    def from_pair(cls, pair: BlindPair, verdict: Verdict, rater: str, **kw: Any) -> SbsVerdict:
        return cls(query=pair.query, left_system=pair.left, right_system=pair.right, verdict=verdict, rater=rater,
                   swapped=pair.swapped, **kw)

    def preferred(self) -> str | None:
        """The system the rater preferred (unblinded), None for ``same``."""
        return {"left": self.left_system, "right": self.right_system}.get(self.verdict)


class SbsStore:
    """Append-only SQLite log of verdicts (WAL, ``synchronous=FULL``: a recorded verdict is durable)."""

    def __init__(self, path: str | Path) -> None:
        self._db = SqliteLog(path, _SCHEMA, SCHEMA_VERSION, "shopsearch side-by-side store")
        self.path = self._db.path

    def record(self, verdict: SbsVerdict | Iterable[SbsVerdict]) -> int:
        """Store one verdict or a batch in one transaction; returns how many were new (a repeated
        ``verdict_id`` is skipped). Durable when it returns."""
        batch = [verdict] if isinstance(verdict, SbsVerdict) else list(verdict)
        rows = [(*(getattr(v, f) for f in _FIELDS[:-1]), int(v.swapped), to_us(v.timestamp)) for v in batch]
        sql = f"INSERT OR IGNORE INTO verdicts ({', '.join(_FIELDS)}, ts_us) VALUES ({', '.join('?' * 9)})"
        with self._db.transaction() as cur:
            before = cur.execute("SELECT total_changes()").fetchone()[0]
            cur.executemany(sql, rows)
            return int(cur.execute("SELECT total_changes()").fetchone()[0] - before)

    def verdicts(self, system: str | None = None, rater: str | None = None) -> list[SbsVerdict]:
        """Stored verdicts in recording order, optionally only those showing ``system`` / by ``rater``."""
        rows = self._db.query(f"SELECT {', '.join(_FIELDS)}, ts_us FROM verdicts ORDER BY seq")
        out = []
        for row in rows:
            rec = dict(zip((*_FIELDS, "ts_us"), row, strict=True))
            ts = from_us(rec.pop("ts_us"))
            v = SbsVerdict(**rec | {"swapped": bool(rec["swapped"]), "timestamp": ts})
            if (system is None or system in (v.left_system, v.right_system)) and (rater is None or v.rater == rater):
                out.append(v)
        return out

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SbsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class GsbResult:
    """GSB of ``system_a`` against ``system_b`` (positive: A better)."""

    system_a: str
    system_b: str
    good: int
    same: int
    bad: int
    gsb: float
    ci: tuple[float, float]
    p_value: float
    queries: int
    left_wins: int
    right_wins: int
    position_p_value: float

    @property
    def n(self) -> int:
        return self.good + self.same + self.bad

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"n": self.n}


def gsb(
    verdicts: Sequence[SbsVerdict], system_a: str, system_b: str, *, confidence: float = 0.95,
    n_resamples: int = 10000, seed: int = 0,
) -> GsbResult:
    """GSB ``(G - B) / (G + S + B)`` of ``system_a`` vs ``system_b`` from the verdicts on that pair
    (either side; other pairs ignored), with a query-level bootstrap CI and the sign-test p-value.
    ``left_wins``/``right_wins`` and ``position_p_value`` test whether raters favour a side."""
    from scipy import stats  # here, not at import: serving records verdicts and never needs scipy

    from shopsearch.eval.significance import bootstrap_statistic, percentile_ci

    pair = [v for v in verdicts if {v.left_system, v.right_system} == {system_a, system_b}]
    score = np.array([0 if v.verdict == "same" else (1 if v.preferred() == system_a else -1) for v in pair])
    good, bad = int((score > 0).sum()), int((score < 0).sum())
    left, right = sum(v.verdict == "left" for v in pair), sum(v.verdict == "right" for v in pair)
    queries = sorted({v.query for v in pair})
    if not pair:
        nan = math.nan
        return GsbResult(system_a, system_b, 0, 0, 0, nan, (nan, nan), nan, 0, 0, 0, nan)
    q_index = {q: i for i, q in enumerate(queries)}
    qi = np.array([q_index[v.query] for v in pair])
    q_sum = np.bincount(qi, weights=score, minlength=len(queries))
    q_n = np.bincount(qi, minlength=len(queries)).astype(np.float64)

    def stat(w: np.ndarray) -> np.ndarray:  # w: (B, queries) draw counts
        return (w @ q_sum) / np.maximum(w @ q_n, 1.0)

    ci = percentile_ci(bootstrap_statistic(stat, len(queries), n_resamples, seed), confidence)
    p = float(stats.binomtest(good, good + bad, 0.5).pvalue) if good + bad else 1.0
    pos_p = float(stats.binomtest(left, left + right, 0.5).pvalue) if left + right else 1.0
    return GsbResult(system_a, system_b, good, len(pair) - good - bad, bad, float(score.mean()), ci, p,
                     len(queries), left, right, pos_p)


def gsb_all(verdicts: Sequence[SbsVerdict], **kw: Any) -> list[GsbResult]:
    """:func:`gsb` of every pair of systems found in the verdicts, in order of first appearance
    (the alphabetically first system of a pair as A)."""
    pairs: dict[frozenset[str], tuple[str, str]] = {}
    for v in verdicts:
        a, b = sorted((v.left_system, v.right_system))
        pairs.setdefault(frozenset((a, b)), (a, b))
    return [gsb(verdicts, a, b, **kw) for a, b in pairs.values()]
