"""Seed selection: the long-tail queries that synthetic training data is made for.

METHOD.md part B, step 1: the seeds are long-tail, knowledge-intensive queries, labelled by type.
Long tail means the lowest frequency tiers of :mod:`shopsearch.eval.strata`: TAIL and ONCE ONLY by
traffic share when the queries carry traffic counts, otherwise the TAIL of a stated proxy (the IDF
of the query's rarest term, with the IDF table built from the catalogue's product texts, or query
length without a catalogue); the method is written into the manifest. Each seed is typed by
:mod:`shopsearch.synthesis.query_types` (rules, or an LLM tagger).

Seeds carry no labels: no judgments, grades or products travel with them, so nothing downstream
can leak a test label into synthetic training data. Output: ``seeds.parquet`` + ``manifest.json``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from shopsearch.artifacts import atomic_dir, read_manifest, write_manifest
from shopsearch.data.schema import Dataset, Queries
from shopsearch.eval.strata import TIERS, StratumConfig, assign_frequency_strata
from shopsearch.synthesis.errors import SynthesisError
from shopsearch.synthesis.query_types import QUERY_TYPES, normalise, tag_queries

KIND = "synthesis-seeds"
SEEDS_FILE = "seeds.parquet"
SEED_COLUMNS: tuple[str, ...] = (
    "seed_query_id", "text", "query_type", "type_tags", "type_reason", "frequency", "traffic", "vertical",
)
LONG_TAIL: tuple[str, ...] = ("TAIL", "ONCE ONLY")


class Tagger(Protocol):
    """Anything that types queries like :func:`~shopsearch.synthesis.query_types.tag_queries`."""

    def tag_queries(self, texts: list[str]) -> pd.DataFrame: ...


@dataclass(frozen=True)
class SeedConfig:
    """Which queries become seeds.

    Args:
        tiers: frequency tiers to keep (default: the long tail, TAIL and ONCE ONLY).
        types: query types to keep (None: all; ``("qa", "negative", "alternative", "knowledge")``
            keeps the knowledge-intensive ones of the paper).
        max_seeds: cap on the number of seeds; the cap is filled round-robin over types (in a seeded
            random order within each type), so rare types are not crowded out by ``plain``.
        per_type_max: cap per type, applied first.
        strata: how tiers are cut (shares, ``once_max``, the proxy without traffic).
        seed: the random seed of the capped sampling.
    """

    tiers: tuple[str, ...] = LONG_TAIL
    types: tuple[str, ...] | None = None
    max_seeds: int | None = None
    per_type_max: int | None = None
    strata: StratumConfig = field(default_factory=StratumConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        bad_tiers = [t for t in self.tiers if t not in TIERS]
        if bad_tiers or not self.tiers:
            raise SynthesisError(f"unknown tier(s) {bad_tiers or '(none given)'}; choose from {list(TIERS)}")
        bad_types = [t for t in self.types or () if t not in QUERY_TYPES]
        if bad_types:
            raise SynthesisError(f"unknown query type(s) {bad_types}; choose from {list(QUERY_TYPES)}")
        for name in ("max_seeds", "per_type_max"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SynthesisError(f"{name} must be >= 1, got {value}")


@dataclass
class SeedSet:
    """Selected seeds (columns :data:`SEED_COLUMNS`) and how they were selected."""

    df: pd.DataFrame
    method: dict[str, Any]

    def __len__(self) -> int:
        return len(self.df)

    def write(self, out_dir: str | Path, *, overwrite: bool = True, **info: Any) -> Path:
        """``out_dir/seeds.parquet`` + manifest (kind ``synthesis-seeds``), written atomically."""
        out = Path(out_dir)
        with atomic_dir(out, overwrite=overwrite) as tmp:
            self.df.to_parquet(tmp / SEEDS_FILE, index=False)
            write_manifest(tmp, KIND, selection=self.method, rows=len(self.df), labels="none", **info)
        return out


def select_seeds(
    queries: Queries,
    config: SeedConfig | None = None,
    *,
    idf: Mapping[str, float] | None = None,
    tagger: Tagger | None = None,
) -> SeedSet:
    """Long-tail seeds from ``queries``: tier, deduplicate, type, filter, cap (see :class:`SeedConfig`)."""
    config = config or SeedConfig()
    df = queries.df
    tiers, strata_method = assign_frequency_strata(queries, config.strata, idf)
    frame = pd.DataFrame({
        "seed_query_id": df["query_id"].to_numpy(dtype=object),
        "text": df["text"].str.strip().to_numpy(dtype=object),
        "frequency": tiers.to_numpy(dtype=object),
        "traffic": df["traffic"].to_numpy(dtype=np.float64),
        "vertical": df["vertical"].to_numpy(dtype=object),
    })
    n_all = len(frame)
    frame = frame[frame["text"].str.len() > 0]
    n_empty = n_all - len(frame)
    # one seed per query text: duplicates would only weight the synthetic data towards them
    key = frame["text"].map(normalise)
    n_dupes = int(key.duplicated().sum())
    frame = frame[~key.duplicated()].reset_index(drop=True)
    in_tier = frame["frequency"].isin(config.tiers).to_numpy()
    frame = frame[in_tier].reset_index(drop=True)
    typed = (tagger.tag_queries(frame["text"].tolist()) if tagger is not None
             else tag_queries(frame["text"].tolist()))
    frame = pd.concat([frame, typed.reset_index(drop=True)], axis=1)
    type_counts = frame["query_type"].value_counts().to_dict()
    if config.types is not None:
        frame = frame[frame["query_type"].isin(config.types)].reset_index(drop=True)
    frame = _cap(frame, config)
    if frame.empty:
        raise SynthesisError(
            f"no seeds selected: {int(in_tier.sum())} of {n_all} queries are in tiers {list(config.tiers)} "
            f"(tier counts {strata_method.get('counts')}), with types {type_counts}; widen tiers/types"
        )
    method = {
        "frequency": strata_method,
        "config": {**asdict(config), "strata": asdict(config.strata)},
        "tagger": "rules" if tagger is None else type(tagger).__name__,
        "counts": {
            "queries": n_all, "empty_text": n_empty, "duplicate_text": n_dupes, "in_tiers": int(in_tier.sum()),
            "types_in_tiers": {str(k): int(v) for k, v in type_counts.items()},
            "seeds": len(frame), "seed_types": {str(k): int(v) for k, v in frame["query_type"].value_counts().items()},
        },
    }
    return SeedSet(frame[list(SEED_COLUMNS)].reset_index(drop=True), method)


def seeds_from_dataset(
    dataset: Dataset,
    config: SeedConfig | None = None,
    *,
    text_fields: Iterable[str] = ("title",),
    tagger: Tagger | None = None,
) -> SeedSet:
    """:func:`select_seeds` with the IDF proxy table built from the dataset's catalogue (used only
    when the queries have no traffic counts, and when the catalogue has products)."""
    idf = None
    if not dataset.queries.has_traffic and len(dataset.catalog):
        from shopsearch.data.render import ProductTextRenderer
        from shopsearch.eval.pipeline import term_idf

        idf = term_idf(ProductTextRenderer(fields=tuple(text_fields)).render(dataset.catalog))
    return select_seeds(dataset.queries, config, idf=idf, tagger=tagger)


def read_seeds(path: str | Path) -> pd.DataFrame:
    """The seeds of a seeds directory (manifest checked) or of a bare Parquet file with the columns."""
    path = Path(path)
    if path.is_dir():
        read_manifest(path, kind=KIND)
        path = path / SEEDS_FILE
    if not path.is_file():
        raise SynthesisError(f"{path}: no seeds file; make one with select_seeds(...).write(DIR)")
    df = pd.read_parquet(path)
    missing = [c for c in ("seed_query_id", "text") if c not in df.columns]
    if missing:
        raise SynthesisError(f"{path}: seeds need columns seed_query_id and text; missing {missing}")
    if df["seed_query_id"].astype(str).duplicated().any():
        raise SynthesisError(f"{path}: seed_query_id values must be unique")
    if "query_type" not in df.columns:
        df = pd.concat([df.reset_index(drop=True), tag_queries(df["text"].astype(str).tolist())], axis=1)
    df["seed_query_id"] = df["seed_query_id"].astype(str)
    return df


def _cap(frame: pd.DataFrame, config: SeedConfig) -> pd.DataFrame:
    if config.per_type_max is None and config.max_seeds is None:
        return frame
    rng = np.random.default_rng(config.seed)
    # a seeded random order within each type, then round-robin over types, rarest type first
    order = {t: list(rng.permutation(idx)) for t, idx in frame.groupby("query_type").indices.items()}
    if config.per_type_max is not None:
        order = {t: rows[: config.per_type_max] for t, rows in order.items()}
    queues = sorted(order.items(), key=lambda kv: (len(kv[1]), kv[0]))
    limit = config.max_seeds if config.max_seeds is not None else sum(len(r) for r in order.values())
    picked: list[int] = []
    depth = 0
    while len(picked) < limit and any(depth < len(rows) for _, rows in queues):
        for _, rows in queues:
            if depth < len(rows) and len(picked) < limit:
                picked.append(int(rows[depth]))
        depth += 1
    return frame.iloc[sorted(picked)].reset_index(drop=True)
