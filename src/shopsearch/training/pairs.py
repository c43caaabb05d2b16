"""Stage-1 training pairs (query, positive product) from graded judgments, and merging pair sources.

Every pair source (judgments here, behaviour logs and sessions in :mod:`shopsearch.training.logs`)
yields the same columns, :data:`PAIR_COLUMNS`, so they can be merged and fed to the sampler and the
miner without adapters. Each builder also leaves a JSON-able ``stats`` dict in ``frame.attrs`` for
the training manifest: a pair that was not made is counted there, never dropped silently.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from shopsearch.data.schema import Dataset

PAIR_COLUMNS: tuple[str, ...] = ("query_id", "query", "product_id", "source", "grade", "weight")
# Query ids made from the query text, for sources that have no id of their own (logs, sessions).
SYNTHETIC_QUERY_PREFIX = "text:"
_SPACES = re.compile(r"\s+")


def normalize_query(text: Any) -> str:
    """The key under which two spellings count as one query: NFKC, lower case, single spaces.

    Deliberately light (no stemming, no punctuation removal): "3/4 in." and "34 in" must stay
    different queries, while "Drill " and "drill" are the same training anchor.
    """
    if text is None or (isinstance(text, float) and text != text):
        return ""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", str(text))).strip().lower()


def synthetic_query_id(normalized: str) -> str:
    return SYNTHETIC_QUERY_PREFIX + normalized


def empty_pairs() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in PAIR_COLUMNS})
    frame["grade"] = frame["grade"].astype("Int64")
    frame["weight"] = frame["weight"].astype(float)
    return frame


def finish_pairs(frame: pd.DataFrame, stats: Mapping[str, Any]) -> pd.DataFrame:
    """Canonical column order and dtypes (grade nullable: logs have none), stats attached."""
    out = frame.reset_index(drop=True)
    for col in PAIR_COLUMNS:
        if col not in out.columns:
            out[col] = None
    extra = [c for c in out.columns if c not in PAIR_COLUMNS]
    out = out[[*PAIR_COLUMNS, *extra]].copy()
    for col in ("query_id", "query", "product_id", "source"):
        out[col] = out[col].astype(object)
    out["grade"] = (
        pd.array(out["grade"].astype(float), dtype="Int64") if len(out) else out["grade"].astype("Int64")
    )
    out["weight"] = out["weight"].astype(float)
    out.attrs["stats"] = dict(stats)
    return out


@dataclass(frozen=True)
class PairConfig:
    """Which judged (query, product) pairs become stage-1 positives.

    Args:
        positive_min_grade: grades >= this are positives; None -> the scheme's ``relevant_min``
            (ESCI: Exact only; Home Depot mean-rating: grade >= 5, i.e. r >= 2.67).
        substitutes_as_positives: also take "substitute" grades as positives (paper A uses
            co-click substitutes as positives). Off by default: the paper's evaluation counts
            only Exact as relevant.
        substitute_min_grade: the lowest grade taken when ``substitutes_as_positives``; None ->
            one grade below ``positive_min_grade`` (ESCI: Substitute=2; WANDS: Partial=1;
            mean-rating: grade 4, r = 2.33). State it explicitly for any other scheme.
        substitute_weight: ``weight`` of substitute pairs (top-grade pairs weigh 1.0).
        max_pairs_per_query: keep at most this many positives per query, highest grades first,
            ties broken by a seeded shuffle (head queries must not dominate the epoch).
        seed: seed of that shuffle.
    """

    positive_min_grade: int | None = None
    substitutes_as_positives: bool = False
    substitute_min_grade: int | None = None
    substitute_weight: float = 1.0
    max_pairs_per_query: int | None = None
    seed: int = 0

    def thresholds(self, relevant_min: int) -> tuple[int, int]:
        """(positive_min, lowest grade taken at all)."""
        top = relevant_min if self.positive_min_grade is None else int(self.positive_min_grade)
        if not self.substitutes_as_positives:
            return top, top
        low = top - 1 if self.substitute_min_grade is None else int(self.substitute_min_grade)
        if low > top:
            raise ValueError(f"substitute_min_grade {low} is above positive_min_grade {top}")
        return top, low


def pairs_from_judgments(
    dataset: Dataset, config: PairConfig = PairConfig(), product_texts: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """One row per judged positive: columns :data:`PAIR_COLUMNS`, ``source="judgment"``.

    ``product_texts`` (product_id -> rendered text, the index's renderer) is optional: given, pairs
    whose product has no or empty text are left out and counted, since they cannot be trained on.
    Pairs whose product is not in the catalogue, or whose query text is empty, are counted likewise.
    """
    top, low = config.thresholds(dataset.scheme.relevant_min)
    j = dataset.judgments.df[["query_id", "product_id", "grade"]]
    stats: dict[str, Any] = {
        "judgments": len(j),
        "positive_min_grade": top,
        "substitute_min_grade": low if config.substitutes_as_positives else None,
    }
    j = j[j["grade"] >= low]
    stats["judged_positives"] = len(j)
    q = dataset.queries.df[["query_id", "text"]].rename(columns={"text": "query"})
    j = j.merge(q, on="query_id", how="left")
    no_query = j["query"].isna() | (j["query"].fillna("").str.strip() == "")
    known = set(dataset.catalog.df["product_id"])
    if product_texts is not None:
        known = {p for p in known if str(product_texts.get(p, "") or "").strip()}
    no_product = ~j["product_id"].isin(known)
    stats["dropped_no_query_text"] = int(no_query.sum())
    stats["dropped_no_product_text"] = int((no_product & ~no_query).sum())
    j = j[~no_query & ~no_product].copy()
    j["weight"] = np.where(j["grade"] >= top, 1.0, float(config.substitute_weight))
    j["source"] = "judgment"
    before = len(j)
    j = _cap_per_query(j, config.max_pairs_per_query, config.seed)
    stats["dropped_over_query_cap"] = before - len(j)
    stats["pairs"] = len(j)
    stats["queries"] = int(j["query_id"].nunique())
    stats["substitute_pairs"] = int((j["grade"] < top).sum())
    return finish_pairs(j, stats)


def _cap_per_query(frame: pd.DataFrame, cap: int | None, seed: int) -> pd.DataFrame:
    """Keep the ``cap`` best-graded rows per query; the seeded shuffle breaks grade ties."""
    rng = np.random.default_rng(seed)
    frame = frame.assign(_r=rng.random(len(frame)))
    frame = frame.sort_values(["query_id", "grade", "_r"], ascending=[True, False, True], kind="stable")
    if cap is not None:
        frame = frame[frame.groupby("query_id", sort=False).cumcount() < int(cap)]
    return frame.drop(columns="_r")


def merge_pairs(*frames: pd.DataFrame, weights: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Union of pair frames, one row per (normalised query text, product_id).

    ``weights`` multiplies each row's weight by its source's factor before merging; a key is
    either a full source (``"log:order"``) or its family before the colon (``"log"``), the full
    one winning. The merged row keeps the largest weighted value and its source; ``sources``
    lists every source that produced the pair (``"judgment|log:click"``), ``grade`` the best
    judged grade if any. Query ids: a normalised text seen with a real (dataset) id keeps the
    smallest such id, so log and session pairs join their judged query for mining and sampling;
    otherwise the synthetic ``text:<query>`` id stays.
    """
    frames = tuple(f for f in frames if f is not None and len(f))
    if not frames:
        return finish_pairs(empty_pairs().assign(sources=pd.Series(dtype=object)), {"pairs": 0})
    df = pd.concat([f[list(PAIR_COLUMNS)] for f in frames], ignore_index=True)
    df["grade"] = pd.to_numeric(df["grade"], errors="coerce")
    if weights:
        factor = df["source"].map(lambda s: _source_factor(str(s), weights))
        df["weight"] = df["weight"].astype(float) * factor
    df["_norm"] = df["query"].map(normalize_query)
    real = df[~df["query_id"].astype(str).str.startswith(SYNTHETIC_QUERY_PREFIX)]
    real_id = real.groupby("_norm")["query_id"].min()
    df["query_id"] = df["_norm"].map(real_id).fillna(df["query_id"])
    # Row of max weight per key gives query text and source; ties keep the earlier frame.
    df = df.reset_index(drop=True).assign(_order=np.arange(len(df)))
    best = df.sort_values(["weight", "_order"], ascending=[False, True], kind="stable")
    keys = ["_norm", "product_id"]
    head = best.drop_duplicates(keys).set_index(keys)
    grouped = df.groupby(keys, sort=False)
    out = head[["query_id", "query", "source", "weight"]].copy()
    out["grade"] = grouped["grade"].max().reindex(out.index)
    distinct = df[[*keys, "source"]].astype({"source": str}).drop_duplicates().sort_values("source")
    out["sources"] = distinct.groupby(keys, sort=False)["source"].agg("|".join).reindex(out.index)
    out["_first"] = grouped["_order"].min().reindex(out.index)  # output in order of first appearance
    out = out.reset_index().sort_values("_first", kind="stable").drop(columns=["_norm", "_first"])
    stats = {
        "rows_in": len(df),
        "pairs": len(out),
        "duplicates_merged": len(df) - len(out),
        "by_source": {str(k): int(v) for k, v in out["source"].value_counts().items()},
    }
    return finish_pairs(out, stats)


def _source_factor(source: str, weights: Mapping[str, float]) -> float:
    if source in weights:
        return float(weights[source])
    return float(weights.get(source.split(":", 1)[0], 1.0))
