"""The normalised dataset on disk: Parquet tables + bad-row report + manifest, for fast reuse.

Layout of a saved dataset directory (``shopsearch data import ... --out DIR``)::

    catalog.parquet     product_id, title, brand, color, category, vertical, description,
                        bullets (text), attributes (JSON object text)
    queries.parquet     query_id, text, traffic (float, NaN = unknown), vertical, query_type
    judgments.parquet   query_id, product_id, grade (int64), label (the raw label, text)
    bad_rows.jsonl      every row the loader reported (file, row, field, reason, value, action)
    manifest.json       kind "dataset", the grade scheme, the summary, the source meta and a
                        SHA-256 of every file; loading refuses a directory that does not match it

The directory is written through :func:`~shopsearch.artifacts.atomic_dir`, so a failed import
leaves an earlier one intact.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shopsearch.data.errors import BadRowReport, DataError
from shopsearch.data.schema import (
    CATALOG_COLUMNS,
    JUDGMENT_COLUMNS,
    QUERY_COLUMNS,
    Catalog,
    Dataset,
    GradeScheme,
    Judgments,
    MeanRatingScheme,
    Queries,
)

KIND = "dataset"
FILES = ("catalog.parquet", "queries.parquet", "judgments.parquet")
BAD_ROWS = "bad_rows.jsonl"
# Explicit column types: a column that is all-missing must still be text, not Arrow's null type.
_TYPES: dict[str, pa.DataType] = {"traffic": pa.float64(), "grade": pa.int64()}


def scheme_to_dict(scheme: GradeScheme) -> dict[str, Any]:
    """Everything needed to rebuild the scheme (``describe()`` plus the class and its parameters)."""
    d = dataclasses.asdict(scheme)
    d["labels"] = dict(scheme.labels) if scheme.labels else None
    d["names"] = {str(k): v for k, v in scheme.names.items()} if scheme.names else None
    d["class"] = type(scheme).__name__
    return d


def scheme_from_dict(d: dict[str, Any]) -> GradeScheme:
    d = dict(d)
    cls = MeanRatingScheme if d.pop("class", "GradeScheme") == "MeanRatingScheme" else GradeScheme
    if d.get("names"):
        d["names"] = {int(k): v for k, v in d["names"].items()}
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in fields})


def _text(values: pd.Series) -> pa.Array:
    return pa.array([None if v is None or (isinstance(v, float) and v != v) else str(v) for v in values], pa.string())


def _table(df: pd.DataFrame, columns: tuple[str, ...]) -> pa.Table:
    arrays = []
    for col in columns:
        if col == "attributes":
            arrays.append(pa.array([json.dumps(a or {}, ensure_ascii=False, sort_keys=True) for a in df[col]], pa.string()))
        elif col in _TYPES:
            arrays.append(pa.array(df[col].to_numpy(), _TYPES[col], from_pandas=True))
        else:
            arrays.append(_text(df[col]))
    return pa.table(arrays, names=list(columns))


def save_dataset(dataset: Dataset, out_dir: str | Path, *, overwrite: bool = True) -> Path:
    """Write ``dataset`` to ``out_dir`` (see the module docstring); returns the directory."""
    from shopsearch.artifacts import atomic_dir, write_manifest  # artifacts imports this package

    out_dir = Path(out_dir)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        pq.write_table(_table(dataset.catalog.df, CATALOG_COLUMNS), tmp / "catalog.parquet")
        pq.write_table(_table(dataset.queries.df, QUERY_COLUMNS), tmp / "queries.parquet")
        pq.write_table(_table(dataset.judgments.df, JUDGMENT_COLUMNS), tmp / "judgments.parquet")
        dataset.report.to_jsonl(tmp / BAD_ROWS)
        write_manifest(
            tmp,
            KIND,
            scheme=scheme_to_dict(dataset.scheme),
            summary=dataset.summary(),
            source=dataset.meta,
            on_error=dataset.report.on_error,
        )
    return out_dir


def load_saved_dataset(directory: str | Path) -> Dataset:
    """Read a directory written by :func:`save_dataset`, after checking every file's checksum."""
    from shopsearch.artifacts import read_manifest

    directory = Path(directory)
    manifest = read_manifest(directory, kind=KIND, verify=True)
    tables = {}
    for name in FILES:
        try:
            tables[name] = pq.read_table(directory / name).to_pandas()
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"cannot read a saved dataset table: {exc}", file=directory / name) from None
    catalog = tables["catalog.parquet"]
    try:
        catalog["attributes"] = [json.loads(a) if a else {} for a in catalog["attributes"]]
    except (json.JSONDecodeError, TypeError) as exc:
        raise DataError(f"attributes column is not JSON: {exc}", file=directory / "catalog.parquet") from None
    for df in tables.values():  # missing text as None, like the loaders produce
        for col in df.columns:
            if col not in _TYPES and col != "attributes":
                df[col] = df[col].astype(object).where(df[col].notna(), None)
    report = BadRowReport.from_jsonl(directory / BAD_ROWS) if (directory / BAD_ROWS).is_file() else BadRowReport()
    report.on_error = manifest.get("on_error", "report")
    meta = dict(manifest.get("source") or {})
    meta["saved_dataset"] = str(directory)
    scheme = scheme_from_dict(manifest["scheme"])
    return Dataset(
        Catalog(catalog), Queries(tables["queries.parquet"]), Judgments(tables["judgments.parquet"], scheme), report, meta
    )
