"""Telling the format of the user's files from their names and header columns.

Only the headers are read (the Parquet schema or the first line), so detection is instant on
large files. When the evidence is not clear the answer is a DataError that lists what was seen and
asks for ``--format``, never a guess.
"""

from __future__ import annotations

from pathlib import Path

from shopsearch.data.errors import DataError
from shopsearch.data.loaders.readers import header_columns

FORMATS: tuple[str, ...] = ("homedepot", "esci", "wands", "generic", "shopsearch")

WANDS_FILES = ("product.csv", "query.csv", "label.csv")
KAGGLE_COLUMNS = {"product_uid", "search_term", "relevance"}
HD_JUDGMENT_COLUMNS = {"query_id", "query", "product_id", "relevance"}
HD_PRODUCT_COLUMNS = {"product_id", "title"}
WANDS_PRODUCT_COLUMNS = {"product_id", "product_name"}
WANDS_LABEL_COLUMNS = {"id", "query_id", "product_id", "label"}


def _directory_format(path: Path) -> str:
    if (path / "manifest.json").is_file():
        return "shopsearch"
    if all((path / name).is_file() for name in WANDS_FILES):
        return "wands"
    if (path / "products.csv").is_file() and any(path.glob("judgments_*.csv")):
        return "homedepot"
    if any(path.glob("shopping_queries_dataset_examples*")):
        return "esci"
    found = sorted(p.name for p in path.iterdir())[:20]
    raise DataError(
        "cannot tell the dataset format of this directory (expected a saved shopsearch dataset, WANDS "
        f"product/query/label.csv, or Home Depot products.csv + judgments_*.csv); files found: {found}; "
        f"pass --format ({' | '.join(FORMATS)})",
        file=path,
    )


def detect_format(catalog: Path | None, judgments: Path | None) -> str:
    """The format of the given files: one of :data:`FORMATS`.

    Rules, in order: a directory by its files; a ``shopping_queries_dataset_*`` name or an
    ``esci_label`` column -> esci; Kaggle ``product_uid/search_term/relevance`` or the split files'
    ``query_id,query,product_id,relevance`` (with a ``product_id,title`` catalogue) -> homedepot;
    WANDS file names or its columns -> wands. Anything else is a DataError (use ``generic``).
    """
    paths = [Path(p) for p in (catalog, judgments) if p is not None]
    if not paths:
        raise DataError("nothing to detect: give a catalogue and/or a judgments file")
    for path in paths:
        if not path.exists():
            raise DataError("file not found", file=path)
    for path in paths:
        if path.is_dir():
            return _directory_format(path)
    columns = {path: set(header_columns(path)) for path in paths}
    seen = set().union(*columns.values())
    names = {path.name.lower() for path in paths}

    if any(n.startswith("shopping_queries_dataset") for n in names) or "esci_label" in seen:
        return "esci"
    if any(cols >= KAGGLE_COLUMNS for cols in columns.values()):
        return "homedepot"
    j_cols = columns.get(Path(judgments)) if judgments is not None else None
    c_cols = columns.get(Path(catalog)) if catalog is not None else None
    if j_cols is not None and j_cols >= HD_JUDGMENT_COLUMNS and (c_cols is None or c_cols == HD_PRODUCT_COLUMNS):
        return "homedepot"
    if j_cols is None and c_cols == HD_PRODUCT_COLUMNS:  # a bare product_id,title catalogue
        return "homedepot"
    if names & set(WANDS_FILES) or (c_cols is not None and c_cols >= WANDS_PRODUCT_COLUMNS) or (
        j_cols is not None and j_cols == WANDS_LABEL_COLUMNS
    ):
        return "wands"
    shown = "; ".join(f"{p.name}: {sorted(c)}" for p, c in columns.items())
    raise DataError(
        f"cannot detect the dataset format from the file names and columns ({shown}); pass --format "
        "generic with a column mapping (or homedepot | esci | wands | shopsearch)"
    )
