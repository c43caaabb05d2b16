"""Validation and normalisation shared by every loader.

Each loader reads its files (:mod:`.readers`), renames the source columns to the canonical ones
(:func:`select`), and hands the parts to the builders here. The builders apply one set of rules:

- a row that cannot be used is reported with its file, row and source column, and skipped;
- duplicate ids keep the first occurrence; every later one is reported (action ``kept-first``);
- a query without an id gets a stable one from its text (:func:`derive_query_id`).

With ``on_error="raise"`` the first skipped row *or duplicate* stops the load with a DataError.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from shopsearch.data.errors import BadRowReport, DataError
from shopsearch.data.loaders.readers import REC, Source
from shopsearch.data.schema import Catalog, Dataset, GradeScheme, Judgments, Queries

ROW_NUMBERS = "csv: 1-based file line (header = line 1); parquet: 0-based record index; jsonl: 1-based line"
CATALOG_TEXT = ("product_id", "title", "brand", "color", "category", "vertical", "description", "bullets")
# Written in a label column, these mean "no label" unless the scheme itself defines them.
_NA_TOKENS = {"", "nan", "na", "n/a", "null", "none", "<na>"}
_MISSING_LABEL = "missing relevance label (NaN or empty)"


@dataclass
class Part:
    """Canonical columns picked from one source file, with the source column names for messages."""

    df: pd.DataFrame
    src: Source
    names: dict[str, str]

    def field(self, col: str) -> str:
        return self.names.get(col, col)


def select(
    df: pd.DataFrame, src: Source, columns: Mapping[str, str | None], required: Iterable[str], what: str
) -> Part:
    """Rename source columns to canonical names; a missing required column is a DataError."""
    for canon in required:
        source = columns.get(canon)
        if source is None or source not in df.columns:
            found = [c for c in df.columns if c != REC]
            raise DataError(
                f"missing required column {source or canon!r} ({what}); columns found: {found}",
                file=src.path,
                field=source or canon,
            )
    names = {canon: s for canon, s in columns.items() if s is not None and s in df.columns}
    out = pd.DataFrame({canon: df[s] for canon, s in names.items()}, index=df.index)
    out[REC] = df[REC].to_numpy()
    return Part(out.reset_index(drop=True), src, names)


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v))


def _scalar_text(v: Any) -> str | None:
    if _missing(v):
        return None
    if isinstance(v, (list, tuple, np.ndarray)):  # JSON / Parquet lists, e.g. bullet points
        return "\n".join(str(x).strip() for x in v if x is not None and str(x).strip())
    if isinstance(v, dict):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, float) and v.is_integer():  # ids read as floats from Parquet/JSON
        return str(int(v))
    return str(v)


def as_text(s: pd.Series) -> pd.Series:
    """Stripped text, ``None`` for missing or blank cells (object dtype). Vectorised for text and
    integer columns; only mixed columns (JSON lists, floats) go through Python per value."""
    plain = pd.api.types.is_integer_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype)
    all_text = s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty")
    if plain or all_text:
        s = s.astype("str")
    elif not pd.api.types.is_string_dtype(s.dtype) or s.dtype == object:
        s = s.map(_scalar_text).astype("str")
    t = s.str.strip()
    t = t.where(t.str.len() > 0)
    return t.astype(object).where(t.notna(), None)


def normalise_text(text: str) -> str:
    return " ".join(str(text).lower().split())


def derive_query_id(text: str) -> str:
    """A stable id from a query's text: ``"q"`` + 12 hex of SHA-1 of the lowercased, space-collapsed text."""
    return "q" + hashlib.sha1(normalise_text(text).encode("utf-8")).hexdigest()[:12]


def derive_ids(texts: pd.Series) -> pd.Series:
    uniq = {t: derive_query_id(t) for t in pd.unique(texts.dropna())}
    return texts.map(uniq)


def flag(
    report: BadRowReport,
    part: Part,
    rows: pd.DataFrame,
    col: str | None,
    reasons: str | Sequence[str],
    values: Sequence[Any] | None = None,
    action: str = "skipped",
) -> None:
    """Report each of ``rows`` (located through their ``__rec``); strict mode stops at duplicates too."""
    if rows.empty:
        return
    field = part.field(col) if col else None
    recs = rows[REC].tolist()
    reasons = [reasons] * len(recs) if isinstance(reasons, str) else list(reasons)
    values = [None] * len(recs) if values is None else [None if _missing(v) else v for v in values]
    if report.on_error == "raise" and action == "kept-first":
        shown = f" (value {values[0]!r})" if values[0] is not None else ""
        raise DataError(reasons[0] + shown, file=part.src.path, row=part.src.row(recs[0]), field=field)
    for rec, reason, value in zip(recs, reasons, values, strict=True):
        report.add(part.src.path, part.src.row(rec), field, reason, value, action)


def _first_rows(df: pd.DataFrame, key: str | list[str], part: Part) -> pd.Series:
    """For each row whose key repeats, the row number where that key first occurs."""
    sub = df[df.duplicated(key, keep=False)]
    first = sub.groupby(key, sort=False)[REC].transform("first")
    return first.map(part.src.row)


def _report_duplicates(report: BadRowReport, part: Part, df: pd.DataFrame, key: str | list[str], what: str) -> pd.DataFrame:
    dup = df.duplicated(key, keep="first")
    if dup.any():
        first = _first_rows(df, key, part).reindex(df.index[dup])
        col = key if isinstance(key, str) else key[-1]
        values = df.loc[dup, key] if isinstance(key, str) else df.loc[dup, key].astype(str).agg(" / ".join, axis=1)
        reasons = [f"duplicate {what}; the first, at row {r}, is kept" for r in first]
        flag(report, part, df[dup], col, reasons, values.tolist(), action="kept-first")
    return df[~dup]


def build_catalog(part: Part, report: BadRowReport, *, embedded: bool = False) -> pd.DataFrame:
    """Validated products: missing ids skipped, duplicate ids kept-first, blank titles reported.

    ``embedded``: the products come repeated on judgment rows (a joined file), so identical
    repeats are expected and merged silently; only conflicting repeats count as duplicates.
    """
    df = part.df.copy()
    for col in CATALOG_TEXT:
        if col in df.columns:
            df[col] = as_text(df[col])
    missing = df["product_id"].isna()
    flag(report, part, df[missing], "product_id", "missing product id")
    df = df[~missing]
    if embedded:
        content = [c for c in CATALOG_TEXT if c in df.columns]
        df = df.drop_duplicates(subset=content, keep="first")
    df = _report_duplicates(report, part, df, "product_id", "product id")
    blank = df["title"].isna() if "title" in df.columns else pd.Series(False, index=df.index)
    flag(report, part, df[blank], "title", "empty product title", action="kept")
    return df


def _numeric_traffic(part: Part, df: pd.DataFrame, report: BadRowReport) -> pd.DataFrame:
    if "traffic" not in df.columns:
        return df
    raw = df["traffic"]
    num = pd.to_numeric(raw, errors="coerce")
    bad = raw.notna() & (num.isna() | (num < 0))
    flag(report, part, df[bad], "traffic", "traffic is not a non-negative number; left unknown (NaN)",
         raw[bad].tolist(), action="kept")
    df = df.copy()
    df["traffic"] = num.where(~bad).astype(float)
    return df


def _clean_query_text(part: Part, df: pd.DataFrame, report: BadRowReport) -> pd.DataFrame:
    df = df.copy()
    for col in ("text", "query_id", "vertical", "query_type"):
        if col in df.columns:
            df[col] = as_text(df[col])
    empty = df["text"].isna()
    flag(report, part, df[empty], "text", "empty query text")
    return df[~empty]


def build_queries(part: Part, report: BadRowReport) -> pd.DataFrame:
    """Queries from their own file: empty text skipped, duplicate ids kept-first."""
    df = _clean_query_text(part, part.df, report)
    if "query_id" in df.columns:
        missing = df["query_id"].isna()
        flag(report, part, df[missing], "query_id", "missing query id")
        df = df[~missing]
    else:
        df["query_id"] = derive_ids(df["text"])
    df = _report_duplicates(report, part, df, "query_id", "query id")
    return _numeric_traffic(part, df, report)


def split_judgment_rows(part: Part, report: BadRowReport) -> tuple[pd.DataFrame, Part]:
    """Queries carried on judgment rows (ESCI examples, Home Depot): one query per id, first text
    kept; rows with an empty query are skipped. Returns the queries and the remaining rows."""
    df = _clean_query_text(part, part.df, report)
    if "query_id" not in df.columns:
        df["query_id"] = derive_ids(df["text"])
    else:
        missing = df["query_id"].isna()
        flag(report, part, df[missing], "query_id", "missing query id")
        df = df[~missing]
    # an id seen with several texts: compare normalised forms (case/spacing variants are one query)
    pairs = df[["query_id", "text"]].drop_duplicates()
    multi = pairs.loc[pairs["query_id"].duplicated(keep=False), "query_id"].unique()
    if len(multi):
        sub = df[df["query_id"].isin(multi)]
        norm = sub["text"].map(normalise_text)
        conflict = norm != norm.groupby(sub["query_id"], sort=False).transform("first")
        bad = sub[conflict]
        first = _first_rows(sub, "query_id", part).reindex(bad.index)
        reasons = [f"query id already used for another text at row {r}; the first text is kept" for r in first]
        flag(report, part, bad, "text", reasons, bad["text"].tolist(), action="kept-first")
    qcols = [c for c in ("query_id", "text", "traffic", "vertical", "query_type") if c in df.columns]
    queries = _numeric_traffic(part, df.drop_duplicates("query_id", keep="first")[[*qcols, REC]], report)
    return queries, Part(df, part.src, part.names)


def grade_labels(raw: pd.Series, scheme: GradeScheme) -> tuple[pd.Series, pd.Series]:
    """(grade or NaN, reason or None) per row. Each distinct label is graded once, so millions of
    rows cost one vectorised pass (factorize) plus a handful of ``scheme.to_grade`` calls."""
    labels = {str(k).strip().lower() for k in (scheme.labels or {})}
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    grades = np.full(len(uniques) + 1, np.nan)  # the last slot serves code -1 (missing)
    reasons: list[str | None] = []
    for i, value in enumerate(uniques):
        key = value.strip() if isinstance(value, str) else value
        if str(key).lower() in _NA_TOKENS and str(key).lower() not in labels:
            reasons.append(_MISSING_LABEL)
            continue
        try:
            grades[i] = scheme.to_grade(key)
            reasons.append(None)
        except ValueError as exc:
            reasons.append(f"{exc} (grade scheme {scheme.name})")
    reasons.append(_MISSING_LABEL)
    grade = pd.Series(grades[codes], index=raw.index)
    reason = pd.Series(np.array(reasons, dtype=object)[codes], index=raw.index)
    return grade, reason


def build_judgments(
    part: Part,
    report: BadRowReport,
    scheme: GradeScheme,
    product_ids: Iterable[str],
    query_ids: Iterable[str] | None = None,
    df: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Graded (query, product) pairs. Skipped, each reported: missing ids, missing (NaN) or unknown
    labels, products not in the catalogue, queries not in the queries file. Duplicate pairs: first kept."""
    df = (part.df if df is None else df).copy()
    for col in ("query_id", "product_id"):
        df[col] = as_text(df[col])
        missing = df[col].isna()
        flag(report, part, df[missing], col, f"missing {col.replace('_', ' ')}")
        df = df[~missing]
    grade, reason = grade_labels(df["label"], scheme)
    bad = grade.isna()
    flag(report, part, df[bad], "label", reason[bad].tolist(), df.loc[bad, "label"].tolist())
    df = df[~bad].assign(grade=grade[~bad].astype(np.int64))
    unknown = ~df["product_id"].isin(pd.Index(product_ids))
    flag(report, part, df[unknown], "product_id", "product id not in the catalogue", df.loc[unknown, "product_id"].tolist())
    df = df[~unknown]
    if query_ids is not None:
        unknown = ~df["query_id"].isin(pd.Index(query_ids))
        flag(report, part, df[unknown], "query_id", "query id not in the queries file", df.loc[unknown, "query_id"].tolist())
        df = df[~unknown]
    df = _report_duplicates(report, part, df, ["query_id", "product_id"], "(query id, product id) judgment")
    df["label"] = as_text(df["label"])
    return df[["query_id", "product_id", "grade", "label"]]


def make_dataset(
    catalog: pd.DataFrame,
    queries: pd.DataFrame,
    judgments: pd.DataFrame,
    scheme: GradeScheme,
    report: BadRowReport,
    meta: dict[str, Any],
) -> Dataset:
    """Assemble the Dataset; meta gains the row-number convention and a few counts."""
    # reset the index: schema._frame adds default columns as RangeIndex Series, which would
    # misalign with a filtered frame's index
    catalog = catalog.drop(columns=[REC], errors="ignore").reset_index(drop=True)
    queries = queries.drop(columns=[REC], errors="ignore").reset_index(drop=True)
    judgments = judgments.reset_index(drop=True)
    judged = set(judgments["query_id"])
    meta = {"synthetic": False, **meta, "row_numbers": ROW_NUMBERS}
    meta["queries_without_judgments"] = int((~queries["query_id"].isin(judged)).sum())
    return Dataset(Catalog(catalog), Queries(queries), Judgments(judgments, scheme), report, meta)


def require_rows(df: pd.DataFrame, src: Source, what: str) -> None:
    """A filter or a file that leaves nothing is an error, not an empty benchmark."""
    if df.empty:
        raise DataError(f"no {what} left to load", file=src.path)
