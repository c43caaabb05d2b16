"""``shopsearch ab analyze``: from search events to the experiment report.

Events become one row per *search* (a ``query_id``: one results page shown to one shopper) and
then one row per randomisation *unit* (user or session), with the unit's searches, searches with a
click, distinct clicked products, searches with an add to cart and searches with an order. Every
rate is a ratio of unit sums analysed with the delta method (:mod:`shopsearch.experiments.stats`):

========================  ==================================================
``ctr`` (primary)          searches with >= 1 click / searches
``clicks_per_search``      distinct clicked products / searches
``add_to_cart_rate``       searches with >= 1 add to cart / searches
``order_rate``             searches with >= 1 order / searches
========================  ==================================================

Nothing is dropped silently: events of other experiments, events without a unit id, searches with
engagements but no impression, searches logged under two variants or units, unknown variants and
units seen in several variants are each counted in ``report.data`` and left out. A search that
showed no product leaves no event at all, so zero-result searches are outside these rates (count
them from the serving logs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from shopsearch.data.errors import DataError
from shopsearch.eval.significance import holm
from shopsearch.experiments.assignment import INTERLEAVED, ExperimentConfig
from shopsearch.experiments.events import EVENT_FIELDS
from shopsearch.experiments.report import AbReport
from shopsearch.experiments.stats import (
    compare_ratios,
    preference_test,
    ratio_estimate,
    srm_test,
    units_for_mde,
)

METRICS: dict[str, tuple[str, str]] = {
    "ctr": ("clicked", "searches with a click / searches"),
    "clicks_per_search": ("clicks", "distinct clicked products / searches"),
    "add_to_cart_rate": ("carted", "searches with an add to cart / searches"),
    "order_rate": ("ordered", "searches with an order / searches"),
}
PRIMARY = "ctr"
UNIT_COLUMNS: tuple[str, ...] = ("unit", "variant", "searches", "clicked", "clicks", "carted", "ordered")
SEARCH_COLUMNS: tuple[str, ...] = ("query_id", "unit", "variant", "query", "wins_a", "wins_b")


def _scope(events: pd.DataFrame, config: ExperimentConfig) -> tuple[pd.DataFrame, dict[str, Any]]:
    """This experiment's events with a ``unit`` column, and counts of what was left out."""
    missing = [c for c in ("action_name", "query_id", "object_id") if c not in events.columns]
    if missing:
        raise DataError(f"events lack column(s) {missing}; columns found: {list(events.columns)}")
    # optional fields absent from a hand-made frame are simply unknown
    df = events.assign(**{c: None for c in EVENT_FIELDS if c not in events.columns})
    q: dict[str, Any] = {"events_read": len(events)}
    if "experiment" in df.columns and df["experiment"].notna().any():
        named = df["experiment"].notna()
        mine = named & (df["experiment"] == config.name)
        q["events_of_other_experiments"] = int((named & ~mine).sum())
        q["events_without_experiment"] = int((~named).sum())
        df = df[mine]
    else:
        q["note"] = "no event names an experiment: every event is taken to belong to this one"
    if config.unit == "user":
        unit = df["user_id"].where(df["user_id"].notna(), df["client_id"])
    else:
        unit = df["session_id"]
    unit = unit.where(unit.astype(str).str.strip() != "", None)
    q[f"events_without_{config.unit}_id"] = int(unit.isna().sum())
    df = df.assign(unit=unit)[unit.notna()]
    q["events_used"] = len(df)
    return df, q


def _searches(df: pd.DataFrame, q: dict[str, Any]) -> pd.DataFrame:
    """One row per query_id: unit, variant, flags; inconsistent or impression-less searches counted and left out."""
    act = df["action_name"].to_numpy()
    frame = pd.DataFrame({"query_id": df["query_id"].to_numpy(), "unit": df["unit"].to_numpy(),
                          "variant": df["variant"].to_numpy(), "query": df["query"].to_numpy(),
                          "imp": act == "impression", "cart": act == "add_to_cart", "order": act == "order"})
    g = frame.groupby("query_id", sort=False)
    s = g.agg(unit=("unit", "first"), n_units=("unit", "nunique"), variant=("variant", "first"),
              n_variants=("variant", "nunique"), query=("query", "first"), imp=("imp", "any"),
              carted=("cart", "any"), ordered=("order", "any"))
    clicks = df[act == "click"].drop_duplicates(["query_id", "object_id"]).groupby("query_id").size()
    s["clicks"] = clicks.reindex(s.index).fillna(0).astype(np.int64)
    s["clicked"] = s["clicks"] > 0
    two = (s["n_units"] > 1) | (s["n_variants"] > 1)
    q["searches_logged_under_two_units_or_variants"] = int(two.sum())
    q["searches_without_impressions"] = int((~s["imp"] & ~two).sum())
    return s[s["imp"] & ~two].drop(columns=["imp", "n_units", "n_variants"]).reset_index()


def unit_table(events: pd.DataFrame, config: ExperimentConfig) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-unit sums (:data:`UNIT_COLUMNS`) of an A/B experiment's events, and data-quality counts."""
    df, q = _scope(events, config)
    s = _searches(df, q)
    known = s["variant"].isin(config.names)
    q["searches_of_unknown_variants"] = {str(k): int(v) for k, v in s.loc[~known, "variant"].fillna("<none>")
                                         .value_counts().items()}
    s = s[known]
    per_unit_variants = s.groupby("unit")["variant"].nunique()
    mixed = per_unit_variants.index[per_unit_variants > 1]
    q["units_in_several_variants"] = len(mixed)
    q["searches_of_units_in_several_variants"] = int(s["unit"].isin(mixed).sum())
    s = s[~s["unit"].isin(mixed)]
    units = s.groupby("unit", sort=False).agg(
        variant=("variant", "first"), searches=("query_id", "size"), clicked=("clicked", "sum"),
        clicks=("clicks", "sum"), carted=("carted", "sum"), ordered=("ordered", "sum"),
    ).reset_index()
    q["searches_analysed"] = int(units["searches"].sum())
    q["units_analysed"] = len(units)
    return units[list(UNIT_COLUMNS)], q


def _team(values: pd.Series, config: ExperimentConfig) -> pd.Series:
    """Team labels ``a``/``b`` from variant names or the letters themselves."""
    a, b = config.names
    return values.map({a: "a", "a": "a", b: "b", "b": "b"})


def search_table(events: pd.DataFrame, config: ExperimentConfig) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per interleaved search (:data:`SEARCH_COLUMNS`): distinct clicked products credited to each
    team. A click without a team takes the team of the impression of the same product."""
    df, q = _scope(events, config)
    s = _searches(df, q)
    team = _team(df["team"], config)
    imp_team = (df.assign(_t=team)[df["action_name"] == "impression"].dropna(subset=["_t"])
                .drop_duplicates(["query_id", "object_id"]).set_index(["query_id", "object_id"])["_t"])
    clicks = df.assign(_t=team)[df["action_name"] == "click"].drop_duplicates(["query_id", "object_id"])
    from_impression = pd.Series(list(zip(clicks["query_id"], clicks["object_id"], strict=True)),
                                index=clicks.index).map(imp_team)
    clicks = clicks.assign(_t=clicks["_t"].fillna(from_impression))
    q["clicks_without_team"] = int(clicks["_t"].isna().sum())
    # searches of an A/B arm logged into an interleaving experiment had no teams: counted, left out
    other = (s["variant"].notna() & (s["variant"] != INTERLEAVED)).to_numpy()
    q["searches_with_a_variant_other_than_interleaved"] = int(other.sum())
    s = s[~other].reset_index(drop=True)
    wins = clicks.dropna(subset=["_t"]).groupby(["query_id", "_t"]).size().unstack(fill_value=0)
    for t in ("a", "b"):
        s[f"wins_{t}"] = wins[t].reindex(s["query_id"]).fillna(0).astype(np.int64).to_numpy() if t in wins else 0
    q["searches_analysed"] = len(s)
    q["units_analysed"] = int(s["unit"].nunique())
    return s[list(SEARCH_COLUMNS)], q


def analyze(
    config: ExperimentConfig,
    events: pd.DataFrame | None = None,
    *,
    units: pd.DataFrame | None = None,
    searches: pd.DataFrame | None = None,
    notes: Sequence[str] = (),
    extra: dict[str, Any] | None = None,
) -> AbReport:
    """The experiment report from events, or from a ready unit table (A/B) / search table
    (interleaving), e.g. from :mod:`shopsearch.experiments.simulation`."""
    quality: dict[str, Any] = {}
    if config.design == "ab":
        if units is None:
            if events is None:
                raise ValueError("give events or a unit table")
            units, quality = unit_table(events, config)
        body = _ab(config, units)
    else:
        if searches is None:
            if events is None:
                raise ValueError("give events or a search table")
            searches, quality = search_table(events, config)
        body = _interleaving(config, searches)
    return AbReport(experiment=_describe(config), data=quality, notes=list(notes), extra=dict(extra or {}), **body)


def _describe(config: ExperimentConfig) -> dict[str, Any]:
    return {"name": config.name, "design": config.design, "unit": config.unit, "control": config.control_name,
            "alpha": config.alpha, "power": config.power, "salt": config.salt,
            "variants": [{"name": v.name, "mode": v.mode, "index": None if v.index is None else str(v.index),
                          "split": w} for v, w in zip(config.variants, config.weights, strict=True)],
            "metrics": {k: d for k, (_, d) in METRICS.items()}, "primary_metric": PRIMARY}


def _ab(config: ExperimentConfig, units: pd.DataFrame) -> dict[str, Any]:
    by = {name: units[units["variant"] == name] for name in config.names}
    srm = srm_test({n: len(u) for n, u in by.items()}, dict(zip(config.names, config.weights, strict=True)))
    variants: dict[str, Any] = {}
    for name, u in by.items():
        den = u["searches"].to_numpy(dtype=np.float64)
        rates = {}
        for metric, (col, _) in METRICS.items():
            est = ratio_estimate(u[col].to_numpy(dtype=np.float64), den)
            rates[metric] = {"value": est.value, "se": est.se, "ci": list(est.ci())}
        variants[name] = {"units": len(u), "searches": int(den.sum()), "metrics": rates}
    comparisons = []
    control = by[config.control_name]
    for name in config.names:
        if name == config.control_name:
            continue
        for metric, (col, _) in METRICS.items():
            c = compare_ratios(by[name][col].to_numpy(np.float64), by[name]["searches"].to_numpy(np.float64),
                               control[col].to_numpy(np.float64), control["searches"].to_numpy(np.float64),
                               alpha=config.alpha, power=config.power)
            comparisons.append({"variant": name, "control": config.control_name, "metric": metric, **c})
    _adjust(comparisons, config.alpha)
    n_total = len(units)
    for c in comparisons:  # traffic needed for a 1% and a 3% relative MDE at this split and variance
        c["units_for_mde"] = {f"{t:.0%}": units_for_mde(n_total, c["mde_rel"], t) for t in (0.01, 0.03)}
    return {"srm": srm, "variants": variants, "comparisons": comparisons, "interleaving": None}


def _adjust(comparisons: list[dict[str, Any]], alpha: float) -> None:
    """The primary metric is tested at ``alpha`` (Holm across treatments when there are several);
    secondary metrics are Holm-adjusted among themselves, so they cannot inflate the primary's error."""
    for primary in (True, False):
        group = [c for c in comparisons if (c["metric"] == PRIMARY) == primary]
        adjusted = holm([c["p_value"] for c in group])
        for c, p in zip(group, adjusted, strict=True):
            c["p_adjusted"] = float(p)
            c["adjustment"] = "primary metric" if primary else "Holm over secondary metrics"
            c["significant"] = bool(p < alpha)


def _interleaving(config: ExperimentConfig, searches: pd.DataFrame) -> dict[str, Any]:
    pref = preference_test(searches["wins_a"].to_numpy(), searches["wins_b"].to_numpy(),
                           searches["unit"].to_numpy(), alpha=config.alpha, power=config.power)
    a, b = config.names
    out = pref.to_dict() | {"team_a": a, "team_b": b, "searches": len(searches),
                            "units": int(searches["unit"].nunique()),
                            "significant": bool(pref.p_value < config.alpha),
                            "preferred": (a if pref.wins_a > pref.wins_b else b) if pref.p_value < config.alpha else None}
    return {"srm": None, "variants": {}, "comparisons": [], "interleaving": out}
