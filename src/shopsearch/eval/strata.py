"""Query strata: frequency tiers (from traffic, or a stated proxy), vertical, query type.

Frequency tiers from traffic counts (Paper A's HEAD / TORSO HIGH / TORSO LOW / TAIL / ONCE ONLY):
queries are ordered by traffic, most frequent first, and each query is placed by the share of all
traffic taken by queries strictly more frequent than it (so equal counts always share a tier).
With the default shares (0.25, 0.25, 0.25): HEAD = the queries making the first 25% of traffic,
TORSO HIGH the next 25%, TORSO LOW the next 25%, TAIL the rest; any query with traffic <= ``once_max``
(default 1) is ONCE ONLY whatever its share. Queries with unknown traffic are UNKNOWN.

Without traffic counts, tiers come from a proxy, stated in the method dict and every report:
``length`` (more words = rarer) or ``idf`` (IDF of the query's rarest term; higher = rarer). Queries
are cut at the proxy's quantiles by the same shares (of queries, not traffic); there is no ONCE ONLY.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from shopsearch.data.schema import Queries

TIERS: tuple[str, ...] = ("HEAD", "TORSO HIGH", "TORSO LOW", "TAIL", "ONCE ONLY")
UNKNOWN = "UNKNOWN"
_TOKEN = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class StratumConfig:
    """How frequency tiers are cut.

    Args:
        shares: cumulative-share widths of HEAD, TORSO HIGH, TORSO LOW (TAIL takes the rest); of
            traffic when counts exist, of queries when a proxy is used.
        once_max: traffic at or below this is ONCE ONLY.
        proxy: the proxy used without traffic: ``auto`` (``idf`` when an IDF table is given, else
            ``length``), ``length`` or ``idf``.
        vertical / query_type: also stratify by these query columns when they hold values.
    """

    shares: tuple[float, float, float] = (0.25, 0.25, 0.25)
    once_max: float = 1.0
    proxy: Literal["auto", "length", "idf"] = "auto"
    vertical: bool = True
    query_type: bool = True

    def __post_init__(self) -> None:
        if len(self.shares) != 3 or any(s < 0 for s in self.shares) or sum(self.shares) > 1.0 + 1e-9:
            raise ValueError(f"shares must be three non-negative widths summing to <= 1, got {self.shares}")
        if self.proxy not in ("auto", "length", "idf"):
            raise ValueError(f"proxy must be 'auto', 'length' or 'idf', got {self.proxy!r}")

    @property
    def cuts(self) -> np.ndarray:
        return np.cumsum(np.asarray(self.shares, dtype=np.float64))


def default_tokenizer(text: str) -> list[str]:
    return _TOKEN.findall(str(text).lower())


def assign_frequency_strata(
    queries: Queries,
    config: StratumConfig | None = None,
    idf: Mapping[str, float] | None = None,
    tokenizer: Callable[[str], list[str]] | None = None,
) -> tuple[pd.Series, dict[str, Any]]:
    """query_id -> tier (Series named ``frequency``), and a dict stating the method, thresholds and counts."""
    config = config or StratumConfig()
    df = queries.df
    if queries.has_traffic:
        tiers, method = _traffic_tiers(df, config)
    else:
        tiers, method = _proxy_tiers(df, config, idf, tokenizer or default_tokenizer)
    series = pd.Series(tiers, index=pd.Index(df["query_id"].to_numpy(dtype=object), name="query_id"),
                       name="frequency", dtype=object)
    order = [t for t in (*TIERS, UNKNOWN) if t in set(series)]
    method["counts"] = {t: int((series == t).sum()) for t in order}
    method["config"] = asdict(config)
    return series, method


def _traffic_tiers(df: pd.DataFrame, config: StratumConfig) -> tuple[np.ndarray, dict[str, Any]]:
    traffic = df["traffic"].to_numpy(dtype=np.float64)
    known = ~np.isnan(traffic)
    t = np.where(known, np.maximum(traffic, 0.0), 0.0)
    total = t.sum()
    # traffic of strictly more frequent queries: sort ascending, sum of everything above each value
    values = np.sort(t[known])
    suffix = np.concatenate([np.cumsum(values[::-1])[::-1], [0.0]])
    above = suffix[np.searchsorted(values, t, side="right")]
    share_before = above / total if total > 0 else np.zeros_like(t)
    cuts = config.cuts
    idx = np.searchsorted(cuts, share_before, side="right")  # 0..3 -> HEAD..TAIL
    tiers = np.array(TIERS[:4], dtype=object)[np.minimum(idx, 3)]
    tiers = np.where(t <= config.once_max, TIERS[4], tiers)
    tiers = np.where(known, tiers, UNKNOWN).astype(object)
    bounds: dict[str, Any] = {}
    for tier in TIERS:
        sel = known & (tiers == tier)
        if sel.any():
            bounds[tier] = {"min_traffic": float(t[sel].min()), "max_traffic": float(t[sel].max()),
                            "traffic_share": float(t[sel].sum() / total) if total > 0 else 0.0}
    lo = np.concatenate([[0.0], cuts])
    ranges = "; ".join(f"{k} {v['min_traffic']:g}-{v['max_traffic']:g} searches ({v['traffic_share']:.0%} of traffic)"
                       for k, v in bounds.items())
    method = {
        "method": "traffic",
        "description": (
            "frequency tiers by cumulative traffic share: queries ordered by traffic (most frequent first) "
            "and placed by the share of traffic of strictly more frequent queries: "
            + ", ".join(f"{name} [{a:.0%}, {b:.0%})" for name, a, b in zip(TIERS[:3], lo[:3], cuts, strict=True))
            + f", TAIL [{cuts[-1]:.0%}, 100%]; ONCE ONLY = traffic <= {config.once_max:g}. Resulting ranges: "
            + (ranges or "none")
        ),
        "thresholds": {"share_cuts": [float(c) for c in cuts], "once_max": config.once_max, "tiers": bounds},
        "unknown_traffic": int((~known).sum()),
        "total_traffic": float(total),
    }
    return tiers, method


def _proxy_tiers(
    df: pd.DataFrame, config: StratumConfig, idf: Mapping[str, float] | None, tokenizer: Callable[[str], list[str]]
) -> tuple[np.ndarray, dict[str, Any]]:
    proxy = config.proxy
    if proxy == "auto":
        proxy = "idf" if idf else "length"
    if proxy == "idf" and not idf:
        raise ValueError("stratum proxy 'idf' needs an IDF table (term -> idf), e.g. from the BM25 index")
    tokens = [tokenizer(text) for text in df["text"]]
    if proxy == "length":
        value = np.array([len(t) for t in tokens], dtype=np.float64)
        what = "query length in words (more words = rarer)"
    else:
        assert idf is not None
        # a term the catalogue never uses is rarer than any it does: just above the table's max
        unseen = float(max(idf.values())) + 1e-6
        value = np.array([max((idf.get(w, unseen) for w in t), default=np.nan) for t in tokens], dtype=np.float64)
        what = f"IDF of the query's rarest term (higher = rarer; terms absent from the table rank above the max, {unseen:.3f})"
    known = ~np.isnan(value)
    cuts = config.cuts
    # Place each query by the mid-rank percentile of its proxy value, so equal values share a tier
    # and a large block of ties (e.g. every query with a term the catalogue never uses, all at the
    # max IDF) lands where its middle falls instead of collapsing the upper tiers into one.
    pct = np.full(len(value), np.nan)
    if known.any():
        pct[known] = (rankdata(value[known], method="average") - 0.5) / known.sum()
    idx = np.searchsorted(cuts, np.where(known, pct, 0.0), side="right")
    tiers = np.array(TIERS[:4], dtype=object)[np.minimum(idx, 3)]
    tiers = np.where(known, tiers, UNKNOWN).astype(object)
    ranges = {
        t: (float(value[known & (tiers == t)].min()), float(value[known & (tiers == t)].max()))
        for t in TIERS[:4] if (known & (tiers == t)).any()
    }
    method = {
        "method": f"proxy:{proxy}",
        "description": (
            f"no traffic counts in this dataset: frequency tiers are a PROXY, by the mid-rank percentile of {what} "
            f"(query shares {', '.join(f'{s:.0%}' for s in config.shares)}, rest TAIL; equal values share a tier); "
            + ", ".join(f"{t} {lo:.3g}..{hi:.3g}" for t, (lo, hi) in ranges.items())
            + "; no ONCE ONLY tier"
        ),
        "thresholds": {"share_cuts": [float(c) for c in cuts], "proxy_ranges": {t: list(r) for t, r in ranges.items()}},
        "unknown_traffic": len(df),
    }
    return tiers, method


def assign_strata(
    queries: Queries,
    config: StratumConfig | None = None,
    idf: Mapping[str, float] | None = None,
    tokenizer: Callable[[str], list[str]] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every stratification: a frame (index query_id) with ``frequency`` and, when the queries hold
    values, ``vertical`` and ``query_type`` (missing values -> UNKNOWN); plus the methods stated."""
    config = config or StratumConfig()
    freq, method = assign_frequency_strata(queries, config, idf, tokenizer)
    frame = freq.to_frame()
    methods: dict[str, Any] = {"frequency": method}
    for column, wanted in (("vertical", config.vertical), ("query_type", config.query_type)):
        col = queries.df[column]
        if not wanted or not col.notna().any():
            continue
        values = col.astype(object).where(col.notna(), UNKNOWN).astype(str).to_numpy(dtype=object)
        frame[column] = values
        methods[column] = {
            "method": f"column:{column}",
            "description": f"by the queries' {column} column (missing values -> {UNKNOWN})",
            "counts": pd.Series(values).value_counts().to_dict(),
        }
    return frame, methods
