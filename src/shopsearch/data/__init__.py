"""Data layer: the normalised model, the loaders of each format and the Parquet store.

The public API is re-exported here lazily (on first use), so importing a light module such as
``shopsearch.data.errors`` does not pull in pandas, pydantic and every loader, and
``shopsearch.artifacts`` (imported by the store) can import ``shopsearch.data.errors`` without a cycle.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    # loaders
    "FORMATS": "shopsearch.data.loaders",
    "ColumnMapping": "shopsearch.data.loaders",
    "detect_format": "shopsearch.data.loaders",
    "load_dataset": "shopsearch.data.loaders",
    "load_esci": "shopsearch.data.loaders",
    "load_generic": "shopsearch.data.loaders",
    "load_homedepot": "shopsearch.data.loaders",
    "load_wands": "shopsearch.data.loaders",
    "derive_query_id": "shopsearch.data.loaders.common",
    # store
    "save_dataset": "shopsearch.data.store",
    "load_saved_dataset": "shopsearch.data.store",
    # model and errors
    "Catalog": "shopsearch.data.schema",
    "Queries": "shopsearch.data.schema",
    "Judgments": "shopsearch.data.schema",
    "Dataset": "shopsearch.data.schema",
    "GradeScheme": "shopsearch.data.schema",
    "MeanRatingScheme": "shopsearch.data.schema",
    "ESCI": "shopsearch.data.schema",
    "WANDS": "shopsearch.data.schema",
    "HOME_DEPOT": "shopsearch.data.schema",
    "GRADE_SCHEMES": "shopsearch.data.schema",
    "custom_scheme": "shopsearch.data.schema",
    "BadRowReport": "shopsearch.data.errors",
    "DataError": "shopsearch.data.errors",
}

__all__ = [
    "ESCI",
    "FORMATS",
    "GRADE_SCHEMES",
    "HOME_DEPOT",
    "WANDS",
    "BadRowReport",
    "Catalog",
    "ColumnMapping",
    "DataError",
    "Dataset",
    "GradeScheme",
    "Judgments",
    "MeanRatingScheme",
    "Queries",
    "custom_scheme",
    "derive_query_id",
    "detect_format",
    "load_dataset",
    "load_esci",
    "load_generic",
    "load_homedepot",
    "load_saved_dataset",
    "load_wands",
    "save_dataset",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names resolve in __getattr__
    from shopsearch.data.errors import BadRowReport, DataError
    from shopsearch.data.loaders import (
        FORMATS,
        ColumnMapping,
        detect_format,
        load_dataset,
        load_esci,
        load_generic,
        load_homedepot,
        load_wands,
    )
    from shopsearch.data.loaders.common import derive_query_id
    from shopsearch.data.schema import (
        ESCI,
        GRADE_SCHEMES,
        HOME_DEPOT,
        WANDS,
        Catalog,
        Dataset,
        GradeScheme,
        Judgments,
        MeanRatingScheme,
        Queries,
        custom_scheme,
    )
    from shopsearch.data.store import load_saved_dataset, save_dataset


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'shopsearch.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # resolve once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
