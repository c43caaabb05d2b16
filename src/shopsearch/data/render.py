"""Product text rendering: which catalogue fields make the text that BM25 and encoders see."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from shopsearch.data.schema import Catalog

RENDERABLE_FIELDS = ("title", "brand", "color", "category", "vertical", "description", "bullets", "attributes")


@dataclass(frozen=True)
class ProductTextRenderer:
    """Renders each product as ``"<field value> | <field value> ..."`` in the given field order.

    Args:
        fields: catalogue fields to include, in order; empty fields are skipped.
        labelled: prefix non-title fields with their name (``"brand: Bosch"``) — helps encoders
            tell a brand from a colour; BM25 is indifferent.
        max_chars: cut the rendered text to this many characters (None: no cut). Encoders also
            truncate by tokens; this bounds memory and BM25 document length.
        separator: between fields.
    """

    fields: Sequence[str] = ("title",)
    labelled: bool = True
    max_chars: int | None = 1000
    separator: str = " | "

    def __post_init__(self) -> None:
        unknown = [f for f in self.fields if f not in RENDERABLE_FIELDS]
        if unknown:
            raise ValueError(f"unknown product text field(s) {unknown}; choose from {list(RENDERABLE_FIELDS)}")
        if not self.fields:
            raise ValueError("product text needs at least one field")

    def render(self, catalog: Catalog) -> list[str]:
        df = catalog.df
        columns = [self._column(df, f) for f in self.fields]
        out = []
        for values in zip(*columns, strict=True):
            text = self.separator.join(v for v in values if v)
            out.append(text[: self.max_chars] if self.max_chars else text)
        return out

    def _column(self, df: pd.DataFrame, name: str) -> list[str]:
        values = df[name].tolist()
        if name == "attributes":
            rendered = ["; ".join(f"{k}: {v}" for k, v in (a or {}).items()) if isinstance(a, dict) else "" for a in values]
        else:
            rendered = ["" if v is None or (isinstance(v, float) and v != v) else str(v).strip() for v in values]
        if name == "bullets":
            rendered = [v.replace("\n", "; ") for v in rendered]
        if self.labelled and name != "title":
            rendered = [f"{name}: {v}" if v else "" for v in rendered]
        return rendered
