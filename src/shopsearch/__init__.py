"""shopsearch: semantic product search for e-commerce.

The public API (:mod:`shopsearch.api`), resolved on first use so that ``import shopsearch`` stays
light::

    import shopsearch
    index = shopsearch.Index.build("products.csv")
    index.search("cordless drill", k=5)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Index": "shopsearch.api",
    "evaluate": "shopsearch.api",
    "train": "shopsearch.api",
    "train_reranker": "shopsearch.api",
    "serve": "shopsearch.api",
    "load_dataset": "shopsearch.data",
    "Catalog": "shopsearch.data",
    "Dataset": "shopsearch.data",
    "Judgments": "shopsearch.data",
    "Queries": "shopsearch.data",
    "ShopsearchError": "shopsearch.data.errors",
}

__all__ = ["Catalog", "Dataset", "Index", "Judgments", "Queries", "ShopsearchError", "__version__", "evaluate",
           "load_dataset", "serve", "train", "train_reranker"]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names resolve in __getattr__
    from shopsearch.api import Index, evaluate, serve, train, train_reranker
    from shopsearch.data import Catalog, Dataset, Judgments, Queries, load_dataset
    from shopsearch.data.errors import ShopsearchError


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'shopsearch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
