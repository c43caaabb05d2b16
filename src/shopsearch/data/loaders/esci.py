"""Amazon Shopping Queries Dataset (ESCI), official release layout.

- examples: ``shopping_queries_dataset_examples.parquet`` (or CSV): ``example_id, query, query_id,
  product_id, product_locale, esci_label, small_version, large_version, split``. Labels are letters
  (E/S/C/I) in the Parquet release and words (Exact/...) in some CSV exports: both are accepted.
- products: ``shopping_queries_dataset_products.parquet`` (or CSV) with ``product_id,
  product_title, product_description, product_bullet_point, product_brand, product_color,
  product_locale``; or JSON Lines (optionally zstd/gzip-compressed) with ``id, title, description,
  bullets, brand, color`` (Vespa feed documents keep them under ``fields``). A joined examples file
  that already carries the ``product_*`` columns needs no products file.

Filters (``locale``, ``small_version``, ``split``) choose rows; rows they leave out are counted in
``meta["filtered_out"]``, not reported as bad. ESCI has no traffic counts and no verticals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from shopsearch.data.errors import BadRowReport, DataError, OnError
from shopsearch.data.loaders.common import (
    build_catalog,
    build_judgments,
    make_dataset,
    require_rows,
    select,
    split_judgment_rows,
)
from shopsearch.data.loaders.readers import REC, Source, read_table
from shopsearch.data.schema import ESCI, Dataset, GradeScheme

EXAMPLE_COLUMNS = {"query_id": "query_id", "text": "query", "product_id": "product_id", "label": "esci_label"}
# official products schema (also the product_* columns of a joined examples file)
PRODUCT_COLUMNS = {
    "product_id": "product_id",
    "title": "product_title",
    "description": "product_description",
    "bullets": "product_bullet_point",
    "brand": "product_brand",
    "color": "product_color",
}
# JSON Lines / Vespa documents
PRODUCT_COLUMNS_SHORT = {
    "product_id": "id",
    "title": "title",
    "description": "description",
    "bullets": "bullets",
    "brand": "brand",
    "color": "color",
}


def _column_or_error(df: pd.DataFrame, src: Source, column: str, why: str) -> pd.Series:
    if column not in df.columns:
        found = [c for c in df.columns if c != REC]
        raise DataError(f"missing column {column!r}, needed {why}; columns found: {found}", file=src.path, field=column)
    return df[column]


def _filter(
    df: pd.DataFrame, src: Source, locale: str | None, small_version: bool | None, split: str | None
) -> tuple[pd.DataFrame, dict[str, int], str | None]:
    """Apply the requested filters in order; return the rows kept, how many each removed, and the
    locale actually applied (None when the file has no locale column)."""
    removed: dict[str, int] = {}
    applied_locale = None
    if locale is not None and "product_locale" in df.columns:
        keep = df["product_locale"].astype("str").str.strip().str.lower() == locale.strip().lower()
        if not keep.any() and len(df):
            found = sorted(df["product_locale"].dropna().astype(str).unique().tolist())
            raise DataError(f"no rows with product_locale {locale!r}; locales in the file: {found}", file=src.path)
        removed["locale"] = int((~keep).sum())
        df, applied_locale = df[keep], locale
    if small_version is not None:
        # small_version=True: the reduced task-1 set; False: the large version (every row of it)
        column = "small_version" if small_version else "large_version"
        if small_version or column in df.columns:
            flags = pd.to_numeric(_column_or_error(df, src, column, "by the small_version filter"), errors="coerce")
            keep = flags == 1
            removed[column] = int((~keep).sum())
            df = df[keep]
    if split is not None:
        values = _column_or_error(df, src, "split", f"by the split={split!r} filter (this file has no split)")
        keep = values.astype("str").str.strip().str.lower() == split.strip().lower()
        removed["split"] = int((~keep).sum())
        df = df[keep]
    return df, removed, applied_locale


def _product_columns(df: pd.DataFrame) -> dict[str, str]:
    return PRODUCT_COLUMNS if "product_title" in df.columns or "product_id" in df.columns else PRODUCT_COLUMNS_SHORT


def load_esci(
    examples: str | Path,
    products: str | Path | None = None,
    *,
    locale: str | None = "us",
    small_version: bool | None = None,
    split: str | None = None,
    on_error: OnError = "report",
    scheme: GradeScheme | None = None,
    encoding: str | None = None,
) -> Dataset:
    """Load ESCI examples (+ products) into a Dataset graded E=3, S=2, C=1, I=0 (or ``scheme``).

    Args:
        examples: the examples file (Parquet or CSV; a joined file may carry the products too).
        products: the products file (Parquet, CSV or JSON Lines, optionally compressed).
        locale: keep this ``product_locale`` (us, es, jp); None keeps all.
        small_version: True keeps the small (task 1) version; False the large version; None all.
        split: keep this split (train or test); the file must have a ``split`` column.
        on_error: ``report`` bad rows and go on, or ``raise`` at the first.
        scheme: grade scheme to apply instead of ESCI's (it must know the ESCI labels).
        encoding: text encoding of CSV/JSON inputs (default utf-8).
    """
    report = BadRowReport(on_error=on_error)
    scheme = scheme or ESCI
    ex, ex_src = read_table(examples, report, encoding=encoding)
    ex, removed, applied_locale = _filter(ex, ex_src, locale, small_version, split)
    require_rows(ex, ex_src, "examples after the filters")
    sources: dict[str, Any] = {"examples": str(examples)}

    if products is not None:
        pr, pr_src = read_table(products, report, encoding=encoding)
        columns = _product_columns(pr)
        if locale is not None and "product_locale" in pr.columns:
            keep = pr["product_locale"].astype("str").str.strip().str.lower() == locale.strip().lower()
            removed["products_locale"] = int((~keep).sum())
            pr = pr[keep]
        part = select(pr, pr_src, columns, ["product_id", "title"], "ESCI products")
        catalog = build_catalog(part, report)
        sources["products"] = str(products)
    else:
        if "product_title" not in ex.columns:
            found = [c for c in ex.columns if c != REC]
            raise DataError(
                "this examples file has no product columns (product_title, ...): pass the products file "
                f"too (shopping_queries_dataset_products.parquet); columns found: {found}",
                file=ex_src.path,
                field="product_title",
            )
        part = select(ex, ex_src, PRODUCT_COLUMNS, ["product_id", "title"], "ESCI products in the examples file")
        catalog = build_catalog(part, report, embedded=True)

    rows = select(ex, ex_src, EXAMPLE_COLUMNS, ["text", "product_id", "label"], "ESCI examples")
    queries, rows = split_judgment_rows(rows, report)
    judgments = build_judgments(rows, report, scheme, catalog["product_id"])
    meta = {
        "format": "esci",
        "sources": sources,
        "locale": applied_locale,
        "small_version": small_version,
        "split": split,
        "filtered_out": removed,
        "traffic": "absent",
        "vertical": "absent",
    }
    if locale is not None and applied_locale is None:
        meta["locale_note"] = f"no product_locale column: locale={locale!r} not applied"
    return make_dataset(catalog, queries, judgments, scheme, report, meta)
