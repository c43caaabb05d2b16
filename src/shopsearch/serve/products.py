"""The product table of a served index: display fields for hits, lookups by id, filter masks.

Columns are kept as numpy arrays aligned with the index's product rows (no per-product Python
objects): a hit's fields are gathered by row number, a filter is a boolean mask over rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from shopsearch.retrieval.store import DISPLAY_COLUMNS

FIELDS = DISPLAY_COLUMNS[1:]  # title, brand, color, category, vertical
FILTER_FIELDS = ("vertical", "brand")


def filter_key(value: Any) -> str | None:
    """How filter values and product fields are compared: case- and spacing-insensitive."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    key = " ".join(str(value).casefold().split())
    return key or None


def _text(value: Any) -> str | None:
    return None if filter_key(value) is None else str(value)


class ProductTable:
    """Display fields of every product of an index, rows in the index's product order."""

    def __init__(self, products: pd.DataFrame) -> None:
        frame = products.reset_index(drop=True)
        self.ids = frame["product_id"].astype(str).to_numpy(dtype=object)
        # object dtype: a pandas "str" (Arrow) index re-hashes on every get_indexer (~10 ms at 55k)
        self._rows = pd.Index(self.ids, dtype=object)
        self._columns = {
            f: np.array([_text(v) for v in frame[f]], dtype=object) if f in frame else np.full(len(frame), None)
            for f in FIELDS
        }
        self._keys = {f: np.array([filter_key(v) for v in self._columns[f]], dtype=object) for f in FILTER_FIELDS}

    def __len__(self) -> int:
        return len(self.ids)

    def rows_of(self, ids: Sequence[str]) -> np.ndarray:
        """Row numbers of ``ids``; -1 for ids the index does not hold."""
        if not len(ids):
            return np.zeros(0, dtype=np.int64)
        return np.asarray(self._rows.get_indexer(pd.Index(list(ids), dtype=object)), dtype=np.int64)

    def fields(self, row: int) -> dict[str, Any]:
        """``product_id`` and the display fields of one row."""
        return {"product_id": str(self.ids[row]), **{f: self._columns[f][row] for f in FIELDS}}

    def get(self, product_id: str) -> dict[str, Any] | None:
        row = int(self.rows_of([product_id])[0])
        return None if row < 0 else self.fields(row)

    def mask(self, filters: Mapping[str, str | None]) -> np.ndarray | None:
        """Rows matching every given filter (exact value, compared by :func:`filter_key`); None: no filter."""
        wanted = {f: filter_key(v) for f, v in filters.items() if v is not None and filter_key(v) is not None}
        if not wanted:
            return None
        keep = np.ones(len(self), dtype=bool)
        for f, key in wanted.items():
            keep &= self._keys[f] == key
        return keep

    def facet(self, field: str, limit: int = 200) -> list[tuple[str, int]]:
        """The most common values of a filter field, with counts (for the page's filter menu)."""
        counts = Counter(v for v in self._columns[field] if v is not None)
        return counts.most_common(limit)
