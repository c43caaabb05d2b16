"""Wayfair ANnotation DataSet (WANDS): ``product.csv``, ``query.csv``, ``label.csv``.

The files are tab-separated despite their ``.csv`` names (the separator is sniffed anyway):

- product.csv: ``product_id, product_name, product_class, category hierarchy,
  product_description, product_features, rating_count, average_rating, review_count``;
- query.csv: ``query_id, query, query_class``;
- label.csv: ``id, query_id, product_id, label`` with Exact / Partial / Irrelevant.

Mapping: vertical = ``product_class`` (the first class when several are joined by ``|``);
category = ``category hierarchy`` (``a / b / c``) re-joined by " > "; attributes = the
``key:value|key:value`` pairs of ``product_features`` plus the rating columns; query vertical =
``query_class``. WANDS has no brand, colour or traffic columns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from shopsearch.data.errors import BadRowReport, DataError, OnError
from shopsearch.data.loaders.common import (
    as_text,
    build_catalog,
    build_judgments,
    build_queries,
    make_dataset,
    require_rows,
    select,
)
from shopsearch.data.loaders.readers import read_table
from shopsearch.data.schema import CATEGORY_SEPARATOR, WANDS, Dataset, GradeScheme

PRODUCT_COLUMNS = {
    "product_id": "product_id",
    "title": "product_name",
    "vertical": "product_class",
    "category": "category hierarchy",
    "description": "product_description",
    "features": "product_features",
}
RATING_COLUMNS = ("rating_count", "average_rating", "review_count")
QUERY_COLUMNS = {"query_id": "query_id", "text": "query", "vertical": "query_class"}
LABEL_COLUMNS = {"query_id": "query_id", "product_id": "product_id", "label": "label"}


def parse_features(text: Any) -> dict[str, str]:
    """``"width:35.5|style:modern"`` -> ``{"width": "35.5", "style": "modern"}``; a piece without
    a colon keeps its text as the key with an empty value (nothing is dropped)."""
    out: dict[str, str] = {}
    if not isinstance(text, str):
        return out
    for piece in text.split("|"):
        key, _, value = piece.partition(":")
        key = key.strip()
        if key and key not in out:  # a repeated key keeps its first value, like ids do
            out[key] = value.strip()
    return out


def category_path(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    levels = [level.strip() for level in text.split("/") if level.strip()]
    return CATEGORY_SEPARATOR.join(levels) or None


def _resolve(
    directory_or_product_csv: str | Path, query_csv: str | Path | None, label_csv: str | Path | None
) -> tuple[Path, Path, Path]:
    """A directory holds the three files; a product.csv path finds its siblings by name."""
    first = Path(directory_or_product_csv)
    folder = first if first.is_dir() else first.parent
    product = folder / "product.csv" if first.is_dir() else first
    query = Path(query_csv) if query_csv is not None else folder / "query.csv"
    label = Path(label_csv) if label_csv is not None else folder / "label.csv"
    for path, what in ((product, "product.csv"), (query, "query.csv"), (label, "label.csv")):
        if not path.is_file():
            raise DataError(f"WANDS {what} not found (a WANDS dataset is product.csv, query.csv and label.csv)", file=path)
    return product, query, label


def load_wands(
    directory_or_product_csv: str | Path,
    query_csv: str | Path | None = None,
    label_csv: str | Path | None = None,
    *,
    on_error: OnError = "report",
    scheme: GradeScheme | None = None,
    encoding: str | None = None,
) -> Dataset:
    """Load WANDS into a Dataset graded Exact=2, Partial=1, Irrelevant=0 (or ``scheme``).

    Args:
        directory_or_product_csv: the WANDS ``dataset`` directory, or its product.csv.
        query_csv, label_csv: explicit paths (default: siblings of product.csv).
        on_error: ``report`` bad rows and go on, or ``raise`` at the first.
        scheme: grade scheme to apply instead of WANDS's (it must know the WANDS labels).
        encoding: text encoding (default utf-8).
    """
    report = BadRowReport(on_error=on_error)
    scheme = scheme or WANDS
    product_path, query_path, label_path = _resolve(directory_or_product_csv, query_csv, label_csv)

    products, p_src = read_table(product_path, report, encoding=encoding)
    columns = dict(PRODUCT_COLUMNS) | {c: c for c in RATING_COLUMNS}
    part = select(products, p_src, columns, ["product_id", "title"], "WANDS product.csv")
    df = part.df
    if "vertical" in df.columns:
        classes = as_text(df["vertical"])
        df["vertical"] = classes.map(lambda v: v.split("|")[0].strip() or None if isinstance(v, str) else None)
    if "category" in df.columns:
        df["category"] = df["category"].map(category_path)
    features = df["features"] if "features" in df.columns else pd.Series([None] * len(df), index=df.index)
    attributes = [parse_features(f) for f in features]
    for col in RATING_COLUMNS:  # kept as attributes: not search text, but useful for analysis
        if col in df.columns:
            for attrs, value in zip(attributes, as_text(df[col]), strict=True):
                if value is not None:
                    attrs[col] = value
    df["attributes"] = attributes
    part.df = df.drop(columns=[c for c in ("features", *RATING_COLUMNS) if c in df.columns])
    catalog = build_catalog(part, report)
    require_rows(catalog, p_src, "products")

    raw_queries, q_src = read_table(query_path, report, encoding=encoding)
    queries = build_queries(select(raw_queries, q_src, QUERY_COLUMNS, ["query_id", "text"], "WANDS query.csv"), report)

    raw_labels, l_src = read_table(label_path, report, encoding=encoding)
    labels = select(raw_labels, l_src, LABEL_COLUMNS, ["query_id", "product_id", "label"], "WANDS label.csv")
    judgments = build_judgments(labels, report, scheme, catalog["product_id"], queries["query_id"])
    meta = {
        "format": "wands",
        "sources": {"products": str(product_path), "queries": str(query_path), "labels": str(label_path)},
        "locale": "us",
        "traffic": "absent",
        "vertical": "product_class / query_class",
    }
    return make_dataset(catalog, queries, judgments, scheme, report, meta)
