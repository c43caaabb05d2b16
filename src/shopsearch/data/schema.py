"""The normalised data model every shopsearch component works on.

A :class:`Dataset` is a :class:`Catalog` (products), :class:`Queries` and :class:`Judgments`
(graded (query, product) labels under a stated :class:`GradeScheme`). Each is a thin wrapper over
a pandas DataFrame with canonical columns, so arrays stay at the core (ids and grades as numpy
columns aligned by row) and the whole thing round-trips through Parquet.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from shopsearch.data.errors import BadRowReport

Gain = Literal["linear", "exponential"]

CATALOG_COLUMNS: tuple[str, ...] = (
    "product_id",
    "title",
    "brand",
    "color",
    "category",  # category path, levels joined by " > "
    "vertical",
    "description",
    "bullets",  # bullet points joined by newlines
    "attributes",  # free attributes: dict[str, str] in memory, JSON text in Parquet
)
QUERY_COLUMNS: tuple[str, ...] = ("query_id", "text", "traffic", "vertical", "query_type")
JUDGMENT_COLUMNS: tuple[str, ...] = ("query_id", "product_id", "grade", "label")

CATEGORY_SEPARATOR = " > "


@dataclass(frozen=True)
class GradeScheme:
    """How raw labels become integer grades, and how grades are used by metrics.

    Args:
        name: short name written into every output (``esci``, ``wands``, ``mean-rating``, ...).
        max_grade: the top grade; grades run ``0..max_grade``.
        relevant_min: the smallest grade counted as relevant by binary metrics (Recall, MRR, MAP,
            AUC). Paper A counts only the top grade (Exact) as relevant.
        gain: ``linear`` (gain = grade) or ``exponential`` (gain = 2**grade - 1) for NDCG.
        labels: for categorical schemes, raw label -> grade (case-insensitive keys).
        names: optional grade -> human name, for reports.
        description: one line stating the mapping, repeated in reports.
    """

    name: str
    max_grade: int
    relevant_min: int
    gain: Gain = "linear"
    labels: Mapping[str, int] | None = None
    names: Mapping[int, str] | None = None
    description: str = ""

    def to_grade(self, raw: Any) -> int:
        """Map one raw label to its grade; raises ``ValueError`` with a readable reason."""
        if self.labels is not None:
            key = str(raw).strip().lower()
            lowered = {str(k).lower(): v for k, v in self.labels.items()}
            if key not in lowered:
                raise ValueError(f"unknown label {raw!r}; expected one of {sorted(self.labels)}")
            return int(lowered[key])
        value = _as_float(raw)
        grade = int(value)
        if grade != value or not 0 <= grade <= self.max_grade:
            raise ValueError(f"grade {raw!r} is not an integer in 0..{self.max_grade}")
        return grade

    def gain_of(self, grades: np.ndarray) -> np.ndarray:
        grades = np.asarray(grades, dtype=np.float64)
        return grades if self.gain == "linear" else np.power(2.0, grades) - 1.0

    def with_gain(self, gain: Gain) -> GradeScheme:
        return _replace(self, gain=gain)

    def with_relevant_min(self, relevant_min: int) -> GradeScheme:
        return _replace(self, relevant_min=relevant_min)

    def describe(self) -> dict[str, Any]:
        """A JSON-able statement of the scheme, written into every report."""
        return {
            "name": self.name,
            "max_grade": self.max_grade,
            "relevant_min": self.relevant_min,
            "gain": self.gain,
            "labels": dict(self.labels) if self.labels else None,
            "description": self.description,
        }


@dataclass(frozen=True)
class MeanRatingScheme(GradeScheme):
    """Mean crowd rating on 1..``scale_max`` mapped to ``round(k * (r - 1))``.

    Home Depot: ratings 1..3, ``grade = round(3 * (r - 1))`` in 0..6, relevant when r >= 2.67
    (grade >= 5). ``round`` is numpy's round-half-to-even, so r = 2.5 gives 4 (not relevant),
    consistent with the ``r >= 2.67`` rule of the benchmark protocol.
    """

    multiplier: float = 3.0
    scale_min: float = 1.0
    scale_max: float = 3.0

    def to_grade(self, raw: Any) -> int:
        value = _as_float(raw)
        if not self.scale_min <= value <= self.scale_max:
            raise ValueError(f"rating {raw!r} outside {self.scale_min}..{self.scale_max}")
        return int(np.round(self.multiplier * (value - self.scale_min)))


def _as_float(raw: Any) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{raw!r} is not a number") from None
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{raw!r} is not a finite number")
    return value


def _replace(scheme: GradeScheme, **changes: Any) -> GradeScheme:
    import dataclasses

    return dataclasses.replace(scheme, **changes)


ESCI = GradeScheme(
    name="esci",
    max_grade=3,
    relevant_min=3,
    labels={"E": 3, "S": 2, "C": 1, "I": 0, "Exact": 3, "Substitute": 2, "Complement": 1, "Irrelevant": 0},
    names={3: "Exact", 2: "Substitute", 1: "Complement", 0: "Irrelevant"},
    description="ESCI: Exact=3, Substitute=2, Complement=1, Irrelevant=0; relevant = Exact",
)
WANDS = GradeScheme(
    name="wands",
    max_grade=2,
    relevant_min=2,
    labels={"Exact": 2, "Partial": 1, "Irrelevant": 0},
    names={2: "Exact", 1: "Partial", 0: "Irrelevant"},
    description="WANDS: Exact=2, Partial=1, Irrelevant=0; relevant = Exact",
)
HOME_DEPOT = MeanRatingScheme(
    name="mean-rating",
    max_grade=6,
    relevant_min=5,
    description="mean rating r in 1..3: grade = round(3*(r-1)) in 0..6; relevant = grade >= 5 (r >= 2.67)",
)

GRADE_SCHEMES: dict[str, GradeScheme] = {"esci": ESCI, "wands": WANDS, "mean-rating": HOME_DEPOT}


def custom_scheme(labels: Mapping[str, int], relevant_min: int | None = None, gain: Gain = "linear") -> GradeScheme:
    """A categorical scheme from a user's label -> grade map (e.g. from a config file)."""
    if not labels:
        raise ValueError("a custom grade scheme needs at least one label")
    top = max(int(v) for v in labels.values())
    return GradeScheme(
        name="custom",
        max_grade=top,
        relevant_min=top if relevant_min is None else relevant_min,
        gain=gain,
        labels=dict(labels),
        description="custom: " + ", ".join(f"{k}={v}" for k, v in labels.items()),
    )


def _frame(df: pd.DataFrame, columns: tuple[str, ...], defaults: Mapping[str, Callable[[int], Any]]) -> pd.DataFrame:
    df = df.reset_index(drop=True)  # new default columns below are built on a 0..n index
    for col in columns:
        if col not in df.columns:
            df[col] = defaults[col](len(df)) if col in defaults else pd.Series([None] * len(df), dtype=object)
    return df[list(columns)].reset_index(drop=True)


@dataclass
class Catalog:
    """Products, one row each, unique ``product_id`` (str)."""

    df: pd.DataFrame

    def __post_init__(self) -> None:
        self.df = _frame(self.df, CATALOG_COLUMNS, {"attributes": lambda n: [{} for _ in range(n)]})
        self.df["product_id"] = self.df["product_id"].astype(str)
        self.df["title"] = self.df["title"].fillna("").astype(str)
        if self.df["product_id"].duplicated().any():
            raise ValueError("Catalog product_id values must be unique (loaders resolve duplicates first)")

    def __len__(self) -> int:
        return len(self.df)

    @property
    def ids(self) -> np.ndarray:
        return self.df["product_id"].to_numpy(dtype=object)

    def position(self) -> dict[str, int]:
        """product_id -> row number."""
        return {pid: i for i, pid in enumerate(self.df["product_id"])}


@dataclass
class Queries:
    """Queries, one row each, unique ``query_id``; ``traffic`` is NaN when unknown."""

    df: pd.DataFrame

    def __post_init__(self) -> None:
        self.df = _frame(self.df, QUERY_COLUMNS, {"traffic": lambda n: np.full(n, np.nan)})
        self.df["query_id"] = self.df["query_id"].astype(str)
        self.df["text"] = self.df["text"].fillna("").astype(str)
        self.df["traffic"] = pd.to_numeric(self.df["traffic"], errors="coerce").astype(float)
        if self.df["query_id"].duplicated().any():
            raise ValueError("Queries query_id values must be unique (loaders resolve duplicates first)")

    def __len__(self) -> int:
        return len(self.df)

    @property
    def ids(self) -> np.ndarray:
        return self.df["query_id"].to_numpy(dtype=object)

    @property
    def texts(self) -> list[str]:
        return self.df["text"].tolist()

    @property
    def has_traffic(self) -> bool:
        return bool(self.df["traffic"].notna().any())


@dataclass
class Judgments:
    """Graded labels: one row per (query_id, product_id), integer ``grade`` under ``scheme``."""

    df: pd.DataFrame
    scheme: GradeScheme

    def __post_init__(self) -> None:
        self.df = _frame(self.df, JUDGMENT_COLUMNS, {})
        self.df["query_id"] = self.df["query_id"].astype(str)
        self.df["product_id"] = self.df["product_id"].astype(str)
        self.df["grade"] = self.df["grade"].astype(np.int64)
        if self.df.duplicated(["query_id", "product_id"]).any():
            raise ValueError("Judgments must have one row per (query_id, product_id)")

    def __len__(self) -> int:
        return len(self.df)

    def qrels(self) -> dict[str, dict[str, int]]:
        """query_id -> {product_id: grade}, the usual qrels shape."""
        out: dict[str, dict[str, int]] = {}
        for qid, pid, grade in zip(self.df["query_id"], self.df["product_id"], self.df["grade"], strict=True):
            out.setdefault(qid, {})[pid] = int(grade)
        return out

    def for_queries(self, query_ids: Any) -> Judgments:
        keep = self.df["query_id"].isin(set(map(str, query_ids)))
        return Judgments(self.df[keep], self.scheme)


@dataclass
class Dataset:
    """Catalogue + queries + judgments, with the report of what loading rejected."""

    catalog: Catalog
    queries: Queries
    judgments: Judgments
    report: BadRowReport = field(default_factory=BadRowReport)
    meta: dict[str, Any] = field(default_factory=dict)  # source format, paths, synthetic flag, ...

    @property
    def scheme(self) -> GradeScheme:
        return self.judgments.scheme

    @property
    def synthetic(self) -> bool:
        return bool(self.meta.get("synthetic", False))

    def subset(self, query_ids: Any) -> Dataset:
        """The same catalogue with only the given queries and their judgments."""
        ids = set(map(str, query_ids))
        queries = Queries(self.queries.df[self.queries.df["query_id"].isin(ids)])
        return Dataset(self.catalog, queries, self.judgments.for_queries(ids), self.report, dict(self.meta))

    def summary(self) -> dict[str, Any]:
        return {
            "products": len(self.catalog),
            "queries": len(self.queries),
            "judgments": len(self.judgments),
            "grade_scheme": self.scheme.describe(),
            "has_traffic": self.queries.has_traffic,
            "synthetic": self.synthetic,
            "bad_rows": self.report.counts(),
        }
