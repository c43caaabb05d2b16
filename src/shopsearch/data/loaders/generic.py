"""Any shop's CSV / TSV / JSON Lines / Parquet files, read through a column mapping.

The catalogue file gives the products; the judgments file gives (query, product, label) rows and
may carry the query text itself (long format), or reference a separate queries file by id. A
:class:`ColumnMapping` names the source column of each canonical field and states the grade scheme;
its defaults are the canonical names, so files already in shopsearch's shape need no mapping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shopsearch.data.errors import BadRowReport, DataError, OnError
from shopsearch.data.loaders.common import (
    as_text,
    build_catalog,
    build_judgments,
    build_queries,
    make_dataset,
    require_rows,
    select,
    split_judgment_rows,
)
from shopsearch.data.loaders.readers import Source, read_table
from shopsearch.data.schema import (
    CATEGORY_SEPARATOR,
    ESCI,
    HOME_DEPOT,
    WANDS,
    Dataset,
    GradeScheme,
    MeanRatingScheme,
    custom_scheme,
)

SchemeName = Literal["esci", "wands", "mean-rating", "custom", "integer"]


class ColumnMapping(BaseModel):
    """Which source column holds each field, and how labels become grades.

    Product fields come from the catalogue file, query fields from the queries file (or from the
    judgments file when there is none), and ``judgment_*`` / ``label`` from the judgments file.
    A column named explicitly must exist; an optional field left at its default is used when its
    column is present, and ``None`` means the field is absent.

    Grade schemes: ``esci`` (E/S/C/I or words), ``wands`` (Exact/Partial/Irrelevant),
    ``mean-rating`` (r in ``rating_min..rating_max`` -> ``round(rating_multiplier * (r - rating_min))``;
    the defaults are Home Depot's 1..3 and 3), ``custom`` (``labels``: label -> grade) or
    ``integer`` (grades already 0..``max_grade``).
    """

    model_config = ConfigDict(extra="forbid")

    # catalogue (the optional fields default to the canonical names and are used when present)
    product_id: str = "product_id"
    title: str = "title"
    brand: str | None = "brand"
    color: str | None = "color"
    category: str | None = "category"
    category_separator: str | None = Field(default=None, description="split the category path on this; re-joined by ' > '")
    vertical: str | None = "vertical"
    description: str | None = "description"
    bullets: str | None = "bullets"
    attributes: list[str] = Field(default_factory=list, description="further columns kept as free attributes")
    # queries
    query_id: str | None = Field(default="query_id", description="None: derive ids from the query text")
    query: str = "query"
    traffic: str | None = "traffic"
    query_vertical: str | None = None
    query_type: str | None = "query_type"
    # judgments (the query/product id columns default to the names above)
    judgment_query_id: str | None = None
    judgment_product_id: str | None = None
    label: str = "label"
    # grades
    scheme: SchemeName = "integer"
    labels: dict[str, int] | None = None
    max_grade: int | None = Field(default=None, ge=1, description="integer scheme: the top grade (default: the largest seen)")
    relevant_min: int | None = None
    gain: Literal["linear", "exponential"] = "linear"
    rating_min: float = 1.0
    rating_max: float = 3.0
    rating_multiplier: float = 3.0
    # reading
    delimiter: str | None = Field(default=None, description="CSV delimiter (default: sniffed; tab for .tsv)")
    encoding: str | None = None

    @model_validator(mode="after")
    def _labels_for_custom(self) -> ColumnMapping:
        if self.scheme == "custom" and not self.labels:
            raise ValueError("scheme 'custom' needs labels (a label -> grade map)")
        if self.labels and self.scheme != "custom":
            raise ValueError(f"labels are only used with scheme 'custom', not {self.scheme!r}")
        return self

    def grade_scheme(self, observed_max: int | None = None) -> GradeScheme:
        """The GradeScheme this mapping states (``observed_max``: top grade seen, for ``integer``)."""
        if self.scheme == "custom":
            scheme = custom_scheme(self.labels or {}, self.relevant_min, self.gain)
        elif self.scheme == "integer":
            top = self.max_grade if self.max_grade is not None else max(observed_max or 1, 1)
            scheme = GradeScheme(
                name="integer",
                max_grade=top,
                relevant_min=top,
                description=f"integer grades 0..{top} as given",
            )
        elif self.scheme == "mean-rating" and (self.rating_min, self.rating_max, self.rating_multiplier) != (1.0, 3.0, 3.0):
            top = round(self.rating_multiplier * (self.rating_max - self.rating_min))
            scheme = MeanRatingScheme(
                name="mean-rating",
                max_grade=top,
                relevant_min=top,
                multiplier=self.rating_multiplier,
                scale_min=self.rating_min,
                scale_max=self.rating_max,
                description=f"mean rating r in {self.rating_min:g}..{self.rating_max:g}: "
                f"grade = round({self.rating_multiplier:g}*(r-{self.rating_min:g})) in 0..{top}",
            )
        else:
            scheme = {"esci": ESCI, "wands": WANDS, "mean-rating": HOME_DEPOT}[self.scheme]
        if self.relevant_min is not None:
            scheme = scheme.with_relevant_min(self.relevant_min)
        return scheme.with_gain(self.gain) if self.gain != scheme.gain else scheme


def _observed_max(labels: pd.Series) -> int | None:
    values = pd.to_numeric(labels, errors="coerce")
    values = values[values.notna() & (values >= 0) & (values == values.round())]
    return int(values.max()) if len(values) else None


def _required(mapping: ColumnMapping, names: dict[str, str | None], essential: list[str]) -> list[str]:
    """Fields that must exist: the essential ones and every column the user named explicitly."""
    named = {name: getattr(mapping, name, None) for name in mapping.model_fields_set}
    explicit = {v for v in named.values() if isinstance(v, str)} | set(mapping.attributes)
    return [canon for canon, source in names.items() if source is not None and (canon in essential or source in explicit)]


def load_generic(
    *,
    catalog: str | Path,
    judgments: str | Path,
    queries: str | Path | None = None,
    mapping: ColumnMapping | None = None,
    on_error: OnError = "report",
    scheme: GradeScheme | None = None,
) -> Dataset:
    """Load a catalogue + judgments (+ queries) through ``mapping``.

    Args:
        catalog: products file (CSV/TSV/JSONL/Parquet).
        judgments: judgment rows; with the query text in ``mapping.query`` unless ``queries`` is given.
        queries: optional queries file (``mapping.query_id``, ``mapping.query``, ...).
        mapping: column mapping and grade scheme (default: canonical names, integer grades).
        on_error: ``report`` bad rows and go on, or ``raise`` at the first.
        scheme: overrides the mapping's grade scheme.
    """
    mapping = mapping or ColumnMapping()
    report = BadRowReport(on_error=on_error)
    read = {"encoding": mapping.encoding, "sep": mapping.delimiter}

    raw, src = _read(catalog, report, read)
    product_cols: dict[str, str | None] = {
        "product_id": mapping.product_id, "title": mapping.title, "brand": mapping.brand, "color": mapping.color,
        "category": mapping.category, "vertical": mapping.vertical, "description": mapping.description,
        "bullets": mapping.bullets,
    }
    product_cols |= {f"attr:{c}": c for c in mapping.attributes}
    part = select(raw, src, product_cols, _required(mapping, product_cols, ["product_id", "title"]), "the catalogue")
    df = part.df
    attr_cols = [c for c in df.columns if c.startswith("attr:")]
    if attr_cols:
        texts = {c: as_text(df[c]).tolist() for c in attr_cols}
        df["attributes"] = [
            {c[5:]: texts[c][i] for c in attr_cols if texts[c][i] is not None} for i in range(len(df))
        ]
        df = df.drop(columns=attr_cols)
    if mapping.category_separator and "category" in df.columns:
        sep = mapping.category_separator
        df["category"] = df["category"].map(
            lambda v: CATEGORY_SEPARATOR.join(p.strip() for p in str(v).split(sep) if p.strip()) if isinstance(v, str) else v
        )
    part.df = df
    products = build_catalog(part, report, embedded=Path(catalog) == Path(judgments))
    require_rows(products, src, "products")

    query_cols: dict[str, str | None] = {
        "query_id": mapping.query_id, "text": mapping.query, "traffic": mapping.traffic,
        "vertical": mapping.query_vertical, "query_type": mapping.query_type,
    }
    raw_j, j_src = (raw, src) if Path(judgments) == Path(catalog) else _read(judgments, report, read)
    j_pid = mapping.judgment_product_id or mapping.product_id
    if queries is not None:
        raw_q, q_src = _read(queries, report, read)
        qpart = select(raw_q, q_src, query_cols, _required(mapping, query_cols, ["query_id", "text"]), "the queries file")
        query_df = build_queries(qpart, report)
        j_cols: dict[str, str | None] = {"product_id": j_pid, "label": mapping.label}
        if mapping.query_id is None:  # no ids anywhere: the judgments carry the text, ids derived from it
            j_cols |= {"text": mapping.query}
        else:
            j_cols |= {"query_id": mapping.judgment_query_id or mapping.query_id}
        rows = select(raw_j, j_src, j_cols, list(j_cols), "the judgments file")
        if "text" in rows.df.columns:
            _, rows = split_judgment_rows(rows, report)
        known: pd.Series | None = query_df["query_id"]
    else:
        j_cols = {**query_cols, "product_id": j_pid, "label": mapping.label}
        if mapping.judgment_query_id:
            j_cols["query_id"] = mapping.judgment_query_id
        rows = select(raw_j, j_src, j_cols, _required(mapping, j_cols, ["text", "product_id", "label"]), "the judgments file")
        query_df, rows = split_judgment_rows(rows, report)
        known = None
    require_rows(rows.df, j_src, "judgment rows")

    if scheme is None:
        scheme = mapping.grade_scheme(_observed_max(rows.df["label"]) if mapping.scheme == "integer" else None)
    judged = build_judgments(rows, report, scheme, products["product_id"], known)
    meta = {
        "format": "generic",
        "sources": {"catalog": str(catalog), "judgments": str(judgments), **({"queries": str(queries)} if queries else {})},
        "mapping": mapping.model_dump(exclude_defaults=True),
        "locale": None,
        "traffic": f"from column {mapping.traffic!r}" if "traffic" in query_df.columns else "absent",
    }
    return make_dataset(products, query_df, judged, scheme, report, meta)


def _read(path: str | Path, report: BadRowReport, read: dict[str, str | None]) -> tuple[pd.DataFrame, Source]:
    if not Path(path).exists():
        raise DataError("file not found", file=path)
    return read_table(path, report, encoding=read["encoding"], sep=read["sep"])
