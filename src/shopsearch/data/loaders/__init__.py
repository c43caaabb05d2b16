"""Loaders: each supported dataset format into the normalised :class:`~shopsearch.data.schema.Dataset`.

Every loader validates every row: a row it cannot use is skipped and reported in
``dataset.report`` with file, row and field (``on_error="raise"`` stops at the first instead);
duplicate ids keep the first occurrence and every later one is reported. Row numbers are 1-based
file lines for CSV (header = line 1), 0-based record indexes for Parquet, 1-based lines for JSONL.
"""

from __future__ import annotations

from pathlib import Path

from shopsearch.data.errors import DataError, OnError
from shopsearch.data.loaders.detect import FORMATS, detect_format
from shopsearch.data.loaders.esci import load_esci
from shopsearch.data.loaders.generic import ColumnMapping, load_generic
from shopsearch.data.loaders.homedepot import load_homedepot
from shopsearch.data.loaders.readers import header_columns
from shopsearch.data.loaders.wands import load_wands
from shopsearch.data.schema import Dataset, GradeScheme

__all__ = [
    "FORMATS",
    "ColumnMapping",
    "detect_format",
    "load_dataset",
    "load_esci",
    "load_generic",
    "load_homedepot",
    "load_wands",
]


def _path(p: str | Path | None) -> Path | None:
    return None if p is None else Path(p)


def _esci_files(catalog: Path | None, judgments: Path | None) -> tuple[Path, Path | None]:
    """(examples, products): the judgments file is the examples; a directory holds the official names."""
    folder = next((p for p in (catalog, judgments) if p is not None and p.is_dir()), None)
    if folder is not None:
        examples = sorted(folder.glob("shopping_queries_dataset_examples*"))
        products = sorted(folder.glob("shopping_queries_dataset_products*"))
        if not examples:
            raise DataError("no shopping_queries_dataset_examples.* in this directory", file=folder)
        return examples[0], products[0] if products else None
    if judgments is None:
        if catalog is None:
            raise DataError("ESCI needs the examples file (--judgments) and, unless it is joined, the products file")
        return catalog, None  # a joined examples file given as the only input
    return judgments, catalog


def _homedepot(
    catalog: Path | None, judgments: Path | None, on_error: OnError, encoding: str | None, scheme: GradeScheme | None
) -> Dataset:
    """Route to the split layout or the Kaggle train.csv by the judgments file's columns."""
    if catalog is not None and catalog.is_dir():
        if judgments is None:
            found = sorted(p.name for p in catalog.glob("judgments_*.csv"))
            raise DataError(f"choose the judgments file to load ({found}) with --judgments", file=catalog)
        catalog = catalog / "products.csv"
    if judgments is not None and judgments.is_dir():
        found = sorted(p.name for p in judgments.glob("judgments_*.csv"))
        raise DataError(f"choose a judgments file in this directory ({found}) with --judgments", file=judgments)
    if judgments is None and catalog is not None and "product_uid" in header_columns(catalog, encoding or "latin-1"):
        judgments, catalog = catalog, None  # train.csv alone carries products and judgments
    if judgments is not None and "product_uid" in header_columns(judgments, encoding or "latin-1"):
        return load_homedepot(
            products=catalog, kaggle_train=judgments, on_error=on_error, encoding=encoding, scheme=scheme
        )
    return load_homedepot(products=catalog, judgments=judgments, on_error=on_error, encoding=encoding, scheme=scheme)


def _saved(catalog: Path | None, judgments: Path | None, scheme: GradeScheme | None) -> Dataset:
    from shopsearch.data.store import load_saved_dataset  # store imports artifacts: keep it lazy

    directory = catalog or judgments
    assert directory is not None
    dataset = load_saved_dataset(directory)
    if scheme is not None:
        if scheme.name != dataset.scheme.name:
            raise DataError(
                f"this saved dataset is graded under {dataset.scheme.name!r}; it cannot be re-graded as "
                f"{scheme.name!r} (import the source files again with that scheme)",
                file=directory,
            )
        dataset.judgments.scheme = scheme  # same grades; gain / relevant_min may differ
    return dataset


def load_dataset(
    *,
    catalog: str | Path | None = None,
    judgments: str | Path | None = None,
    queries: str | Path | None = None,
    format: str | None = None,
    scheme: GradeScheme | None = None,
    mapping: ColumnMapping | None = None,
    on_error: OnError = "report",
    locale: str | None = "us",
    small_version: bool | None = None,
    split: str | None = None,
    encoding: str | None = None,
) -> Dataset:
    """Load a dataset in any supported format (detected when ``format`` is None).

    ``catalog``/``judgments``/``queries`` are files or, for homedepot/wands/esci/shopsearch, a
    directory. ``scheme`` replaces the format's grade scheme; ``mapping`` is for ``generic`` only
    (giving one without a format selects generic). ``locale``/``small_version``/``split`` filter
    ESCI and are ignored by the other formats; ``encoding`` applies to text inputs.
    """
    cat, jud, qry = _path(catalog), _path(judgments), _path(queries)
    if format is None:
        format = "generic" if mapping is not None else detect_format(cat, jud)
    if format not in FORMATS:
        raise DataError(f"unknown format {format!r}; choose one of {list(FORMATS)}")
    if mapping is not None and format != "generic":
        raise DataError(f"a column mapping is only used with format 'generic', not {format!r}")
    if format == "shopsearch":
        return _saved(cat, jud, scheme)
    if format == "esci":
        examples, products = _esci_files(cat, jud)
        return load_esci(
            examples, products, locale=locale, small_version=small_version, split=split,
            on_error=on_error, scheme=scheme, encoding=encoding,
        )
    if format == "wands":
        first = cat if cat is not None else (jud.parent if jud is not None else None)
        if first is None:
            raise DataError("WANDS needs its directory or product.csv (--catalog)")
        return load_wands(first, qry, jud if jud is not None and not jud.is_dir() else None,
                          on_error=on_error, scheme=scheme, encoding=encoding)
    if format == "homedepot":
        return _homedepot(cat, jud, on_error, encoding, scheme)
    if cat is None or jud is None:
        raise DataError("the generic format needs a catalogue file and a judgments file")
    if encoding is not None and (mapping is None or mapping.encoding is None):
        mapping = (mapping or ColumnMapping()).model_copy(update={"encoding": encoding})
    return load_generic(catalog=cat, judgments=jud, queries=qry, mapping=mapping, on_error=on_error, scheme=scheme)
