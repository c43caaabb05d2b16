"""Home Depot product search relevance (Kaggle 2016), graded by mean crowd rating.

Two layouts:

- the split files of ``../shared/data/home-depot/``: ``products.csv`` (``product_id,title``) and
  ``judgments_{train,dev}.csv`` (``query_id,query,product_id,relevance``);
- the Kaggle ``train.csv`` (``id,product_uid,product_title,search_term,relevance``), which is
  latin-1 encoded (its default here). Queries get ids from their text (:func:`derive_query_id`);
  products come from the same rows unless a products file is given.

Grades: ``round(3 * (r - 1))`` with numpy's half-to-even rounding (HOME_DEPOT scheme); relevant
when grade >= 5 (r >= 2.67). The data has no traffic counts (``meta["traffic"] = "absent"``).
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
from shopsearch.data.loaders.readers import read_table
from shopsearch.data.schema import HOME_DEPOT, Dataset, GradeScheme

PRODUCT_COLUMNS = {"product_id": "product_id", "title": "title"}
JUDGMENT_COLUMNS = {"query_id": "query_id", "text": "query", "product_id": "product_id", "label": "relevance"}
KAGGLE_PRODUCT_COLUMNS = {"product_id": "product_uid", "title": "product_title"}
KAGGLE_JUDGMENT_COLUMNS = {"text": "search_term", "product_id": "product_uid", "label": "relevance"}
KAGGLE_ENCODING = "latin-1"  # the competition files are not utf-8


def load_homedepot(
    *,
    products: str | Path | None = None,
    judgments: str | Path | None = None,
    kaggle_train: str | Path | None = None,
    on_error: OnError = "report",
    encoding: str | None = None,
    scheme: GradeScheme | None = None,
) -> Dataset:
    """Load Home Depot judgments under the mean-rating scheme (or ``scheme``).

    Args:
        products: ``products.csv`` (product_id,title); required with ``judgments``, optional with
            ``kaggle_train`` (then it replaces the titles carried by train.csv).
        judgments: a split file ``judgments_*.csv`` (query_id,query,product_id,relevance).
        kaggle_train: the Kaggle ``train.csv`` instead of a split file.
        on_error: ``report`` bad rows and go on, or ``raise`` at the first.
        encoding: text encoding; default utf-8 for the split files, latin-1 for ``kaggle_train``.
        scheme: grade scheme to apply instead of HOME_DEPOT's.
    """
    report = BadRowReport(on_error=on_error)
    scheme = scheme or HOME_DEPOT
    if judgments is not None and kaggle_train is not None:
        raise DataError("give either a split judgments file or the Kaggle train.csv, not both")
    if judgments is None and kaggle_train is None and products is None:
        raise DataError("Home Depot needs products.csv, a judgments file (judgments_*.csv) or the Kaggle train.csv")
    sources: dict[str, Any] = {}
    if judgments is None and kaggle_train is None:  # a catalogue alone, e.g. to build an index
        assert products is not None
        raw_products, p_src = read_table(products, report, encoding=encoding)
        part = select(raw_products, p_src, PRODUCT_COLUMNS, ["product_id", "title"], "Home Depot products")
        catalog = build_catalog(part, report)
        require_rows(catalog, p_src, "products")
        empty_q = pd.DataFrame({"query_id": [], "text": []})
        empty_j = pd.DataFrame({"query_id": [], "product_id": [], "grade": [], "label": []})
        meta = {"format": "homedepot", "layout": "catalogue-only", "sources": {"products": str(products)},
                "locale": "us", "traffic": "absent", "vertical": "absent"}
        return make_dataset(catalog, empty_q, empty_j, scheme, report, meta)

    if kaggle_train is not None:
        raw, src = read_table(kaggle_train, report, encoding=encoding or KAGGLE_ENCODING, sep=",")
        sources["kaggle_train"] = str(kaggle_train)
        rows = select(raw, src, KAGGLE_JUDGMENT_COLUMNS, ["text", "product_id", "label"], "Kaggle train.csv")
    else:
        if products is None:
            raise DataError(
                "Home Depot split judgments need the products file (products.csv) as the catalogue", file=judgments
            )
        assert judgments is not None  # checked above
        raw, src = read_table(judgments, report, encoding=encoding)
        sources["judgments"] = str(judgments)
        rows = select(raw, src, JUDGMENT_COLUMNS, ["query_id", "text", "product_id", "label"], "Home Depot judgments")

    if products is not None:
        raw_products, p_src = read_table(products, report, encoding=encoding)
        part = select(raw_products, p_src, PRODUCT_COLUMNS, ["product_id", "title"], "Home Depot products")
        catalog = build_catalog(part, report)
        sources["products"] = str(products)
    else:  # Kaggle train.csv repeats each product's title on every judgment row
        p_src = src
        part = select(raw, src, KAGGLE_PRODUCT_COLUMNS, ["product_id", "title"], "Kaggle train.csv products")
        catalog = build_catalog(part, report, embedded=True)
    require_rows(catalog, p_src, "products")
    require_rows(rows.df, src, "judgment rows")

    queries, rows = split_judgment_rows(rows, report)
    judged = build_judgments(rows, report, scheme, catalog["product_id"])
    meta = {
        "format": "homedepot",
        "layout": "kaggle-train" if kaggle_train is not None else "split",
        "sources": sources,
        "locale": "us",
        "traffic": "absent",
        "vertical": "absent",
        "query_ids": "derived from the query text" if kaggle_train is not None else "from the file",
    }
    return make_dataset(catalog, queries, judged, scheme, report, meta)
