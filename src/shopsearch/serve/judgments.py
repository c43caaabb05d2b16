"""Judged grades for the web page: which grade a (query text, product) pair was given, if any.

Judgments are loaded with :func:`shopsearch.data.load_dataset` (any supported format) and keyed by
the query *text*, normalised as :func:`query_key` does, since a shopper types text, not query ids.
Two judged queries with the same normalised text are merged; the first grade of a pair wins.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shopsearch.data.schema import Dataset

log = logging.getLogger("shopsearch.serve")


def query_key(text: str) -> str:
    """Case- and spacing-insensitive form of a query text."""
    return " ".join(text.casefold().split())


@dataclass(frozen=True)
class JudgmentLookup:
    """``query key -> {product_id: grade}`` plus what the grades mean."""

    grades: dict[str, dict[str, int]]
    scheme: dict[str, Any]
    source: str

    @classmethod
    def from_dataset(cls, dataset: Dataset, source: str = "") -> JudgmentLookup:
        text_of = dict(zip(dataset.queries.df["query_id"], dataset.queries.df["text"], strict=True))
        grades: dict[str, dict[str, int]] = {}
        j = dataset.judgments.df
        for qid, pid, grade in zip(j["query_id"], j["product_id"], j["grade"], strict=True):
            text = text_of.get(qid)
            if text is None:
                continue
            grades.setdefault(query_key(str(text)), {}).setdefault(str(pid), int(grade))
        return cls(grades, dataset.scheme.describe(), source)

    @classmethod
    def load(cls, judgments: Path, *, catalog: Path | None = None, format: str | None = None) -> JudgmentLookup:
        """Load a judgments file (and the catalogue its format needs) with the data loaders."""
        from shopsearch.data import load_dataset

        dataset = load_dataset(
            catalog=catalog if catalog is not None else (judgments if format == "shopsearch" else None),
            judgments=judgments,
            format=format,
        )
        if len(dataset.report):
            log.warning("judgments %s: %s", judgments, dataset.report.summary(limit=3))
        return cls.from_dataset(dataset, str(judgments))

    def for_query(self, text: str) -> dict[str, int] | None:
        """The judged products of a query text, or None when the query was never judged."""
        return self.grades.get(query_key(text))

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "queries": len(self.grades),
            "pairs": sum(len(g) for g in self.grades.values()),
            "scheme": self.scheme,
        }
