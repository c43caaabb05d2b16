"""``shopsearch ab simulate``: replay judged queries through two variants with a click model.

Simulated shoppers (users with sessions with searches, Poisson counts) are assigned to the
experiment's variants — by the same hash as serving (``assignment="hash"``) or by a seeded draw
(``"random"``, for the thousands of replicates of a power study). Each search picks a judged query
in proportion to its traffic and shows the variant's top ``k`` (an A/B arm) or the team-draft merge
of both (interleaving); the click model (:mod:`shopsearch.experiments.clickmodels`) turns grades into
clicks, carts and orders. Everything is vectorised over searches except the team-draft merge.

A planted ``lift`` multiplies the attractiveness of every non-control variant by the factor that
raises its *expected* search CTR by exactly that relative amount, so power studies know the truth.
The result gives the unit table / search table the analysis needs directly (fast), or the full
event log (``events()``) to test the pipeline end to end: store, UBI export, analysis.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pandas as pd

from shopsearch.experiments.analysis import METRICS, PRIMARY, SEARCH_COLUMNS, UNIT_COLUMNS, analyze
from shopsearch.experiments.assignment import INTERLEAVED, ExperimentConfig, assign_many
from shopsearch.experiments.clickmodels import ClickModel
from shopsearch.experiments.interleaving import team_draft
from shopsearch.experiments.rankings import Rankings
from shopsearch.experiments.report import AbReport
from shopsearch.experiments.stats import compare_ratios, srm_test

_START = datetime(2026, 1, 1, tzinfo=UTC)  # fixed, so a seed gives the same event log every time


@dataclass(frozen=True)
class Traffic:
    """How much traffic: ``users`` shoppers with ``1 + Poisson(sessions_per_user)`` sessions of
    ``1 + Poisson(searches_per_session)`` searches each."""

    users: int
    sessions_per_user: float = 0.5
    searches_per_session: float = 1.0

    def __post_init__(self) -> None:
        if self.users < 1 or self.sessions_per_user < 0 or self.searches_per_session < 0:
            raise ValueError("need users >= 1 and non-negative Poisson means")


@dataclass
class Simulation:
    """One simulated experiment: who searched what, what was shown, and what was clicked."""

    config: ExperimentConfig
    rankings: Rankings
    model: ClickModel
    seed: int
    n_users: int
    session_user: np.ndarray  # per session: index of its user
    search_user: np.ndarray  # per search: index into user_ids
    search_session: np.ndarray  # per search: index into session_ids
    search_query: np.ndarray  # per search: query row in the rankings
    search_variant: np.ndarray  # per search: variant index (-1 when interleaved)
    pages: np.ndarray | None  # interleaving: (searches, k) merged product ids, "" when empty
    teams: np.ndarray | None  # interleaving: (searches, k) "a"/"b"/""
    clicks: np.ndarray
    carts: np.ndarray
    orders: np.ndarray
    truth: dict[str, Any]

    @cached_property
    def user_ids(self) -> np.ndarray:
        return _user_ids(self.seed, self.n_users)

    @cached_property
    def session_ids(self) -> np.ndarray:
        return _session_ids(self.user_ids, self.session_user)

    @cached_property
    def shown(self) -> np.ndarray:
        """(searches, k) product ids shown, "" for empty slots."""
        if self.pages is not None:
            return self.pages
        return self.rankings.ids[self.search_variant, self.search_query]

    @property
    def unit_of_search(self) -> np.ndarray:
        return self.search_user if self.config.unit == "user" else self.search_session

    @property
    def unit_ids(self) -> np.ndarray:
        return self.user_ids if self.config.unit == "user" else self.session_ids

    def units(self, labels: bool = True) -> pd.DataFrame:
        """Per-unit sums (:data:`~shopsearch.experiments.analysis.UNIT_COLUMNS`) of an A/B simulation
        (``labels=False``: units numbered instead of named, for speed in power studies)."""
        u = self.unit_of_search
        n = self.n_users if self.config.unit == "user" else len(self.session_user)
        variant_of_unit = np.full(n, -1)
        variant_of_unit[u] = self.search_variant
        seen = np.bincount(u, minlength=n) > 0

        def total(x: Any) -> np.ndarray:
            return np.bincount(u, weights=x.astype(np.float64), minlength=n)[seen].astype(np.int64)

        names = np.array(self.config.names, dtype=object)
        cols = {"unit": self.unit_ids[seen] if labels else np.flatnonzero(seen), "variant": names[variant_of_unit[seen]],
                "searches": total(np.ones(len(u))), "clicked": total(self.clicks.any(1)),
                "clicks": total(self.clicks.sum(1)), "carted": total(self.carts.any(1)),
                "ordered": total(self.orders.any(1))}
        return pd.DataFrame(cols)[list(UNIT_COLUMNS)]

    def searches(self) -> pd.DataFrame:
        """Per-search credited clicks (:data:`~shopsearch.experiments.analysis.SEARCH_COLUMNS`) of an
        interleaving simulation."""
        if self.teams is None:
            raise ValueError("searches() is for interleaving simulations; use units() for A/B")
        return pd.DataFrame({
            "query_id": self.search_ids(), "unit": self.unit_ids[self.unit_of_search],
            "variant": INTERLEAVED, "query": self.rankings.texts[self.search_query],
            "wins_a": (self.clicks & (self.teams == "a")).sum(1), "wins_b": (self.clicks & (self.teams == "b")).sum(1),
        })[list(SEARCH_COLUMNS)]

    def search_ids(self) -> np.ndarray:
        return np.array([f"sim{self.seed}-q{i}" for i in range(len(self.search_query))], dtype=object)

    def events(self) -> pd.DataFrame:
        """The simulated event log: an impression per shown product, then clicks, carts and orders,
        in the :data:`~shopsearch.experiments.events.EVENT_FIELDS` columns."""
        kinds = [("impression", self.shown != "", 0.0), ("click", self.clicks, 2.0),
                 ("add_to_cart", self.carts, 30.0), ("order", self.orders, 90.0)]
        cells = [np.nonzero(mask) for _, mask, _ in kinds]
        action = np.concatenate([np.repeat(np.array([name], dtype=object), len(c[0]))
                                 for (name, _, _), c in zip(kinds, cells, strict=True)])
        s = np.concatenate([c[0] for c in cells])
        r = np.concatenate([c[1] for c in cells])
        # 3.6 s between searches; actions at fixed delays after the page, later ranks a little later
        seconds = np.concatenate([3.6 * c[0] + off + 0.5 * c[1] for (_, _, off), c in zip(kinds, cells, strict=True)])
        order = np.lexsort((seconds, s))
        action, s, r, seconds = action[order], s[order], r[order], seconds[order]
        names = np.array([*self.config.names, INTERLEAVED], dtype=object)
        team = None
        if self.teams is not None:
            team_name = {"a": self.config.names[0], "b": self.config.names[1], "": None}
            team = np.array([team_name[t] for t in self.teams[s, r]], dtype=object)
        users = self.user_ids[self.search_user[s]]
        return pd.DataFrame({
            "event_id": [f"sim{self.seed}-e{i}" for i in range(len(s))],
            "action_name": action, "query_id": self.search_ids()[s], "query": self.rankings.texts[self.search_query[s]],
            "client_id": users, "user_id": users, "session_id": self.session_ids[self.search_session[s]],
            "object_id": self.shown[s, r], "position": r.astype(np.int64),
            "timestamp": pd.Timestamp(_START) + pd.to_timedelta(np.round(seconds * 1e6).astype(np.int64), unit="us"),
            "experiment": self.config.name, "variant": names[self.search_variant[s]], "team": team,
        })

    def analyze(self, notes: tuple[str, ...] = (), labels: bool = True) -> AbReport:
        """The analysis of this simulation from its unit/search table, with the ground truth attached."""
        extra = {"synthetic": True, "truth": self.truth}
        if self.config.design == "ab":
            return analyze(self.config, units=self.units(labels), notes=notes, extra=extra)
        return analyze(self.config, searches=self.searches(), notes=notes, extra=extra)


def simulate(
    rankings: Rankings,
    config: ExperimentConfig,
    traffic: Traffic,
    model: ClickModel = ClickModel(),
    *,
    lift: float = 0.0,
    seed: int = 0,
    assignment: Literal["hash", "random"] = "hash",
    scales: np.ndarray | None = None,
    expected: bool = True,
) -> Simulation:
    """Simulate ``config`` (two variants: variant ``i`` shows ``rankings`` system ``i``).

    ``scales`` are the attractiveness multipliers of :func:`lift_scales` when already computed
    (a power study reuses them across replicates instead of solving for them each time);
    ``expected=False`` skips the expected CTRs of the ground truth (also for speed).
    """
    if len(config.variants) != 2:
        raise ValueError(f"the simulator replays two systems; the experiment has {len(config.variants)} variants")
    if config.design == "interleaving" and lift:
        raise ValueError("a planted lift applies to A/B arms; an interleaving simulation compares the rankings")
    if model.max_grade is None:
        model = dataclasses.replace(model, max_grade=rankings.max_grade)
    rng = np.random.default_rng(seed)
    sessions_of_user = 1 + rng.poisson(traffic.sessions_per_user, traffic.users)
    session_user = np.repeat(np.arange(traffic.users), sessions_of_user)
    searches_of_session = 1 + rng.poisson(traffic.searches_per_session, len(session_user))
    search_session = np.repeat(np.arange(len(session_user)), searches_of_session)
    search_user = session_user[search_session]
    n = len(search_user)
    query = rng.choice(len(rankings), size=n, p=rankings.weights)
    propensity = model.propensity(traffic.users, rng)[search_user]
    attr_side = model.attractiveness(rankings.grades)  # (2, queries, k)
    control = config.names.index(config.control_name)
    scale = lift_scales(rankings, config, model, lift) if scales is None else np.asarray(scales, dtype=np.float64)
    truth: dict[str, Any] = {"click_model": dataclasses.asdict(model), "planted_lift": lift, "users": traffic.users,
                             "searches": n, "assignment": assignment, "seed": seed, "systems": list(rankings.systems)}
    teams = None
    user_ids = session_ids = None  # made only when needed: string ids cost more than the simulation

    def unit_ids() -> np.ndarray:
        nonlocal user_ids, session_ids
        user_ids = _user_ids(seed, traffic.users) if user_ids is None else user_ids
        if config.unit == "user":
            return user_ids
        session_ids = _session_ids(user_ids, session_user) if session_ids is None else session_ids
        return session_ids

    if config.design == "ab":
        if assignment == "hash":
            unit_variant = assign_many(config, unit_ids().tolist())
        else:
            unit_variant = rng.choice(2, size=len(session_user) if config.unit == "session" else traffic.users,
                                      p=config.weights)
        variant = unit_variant[search_user if config.unit == "user" else search_session]
        attr = attr_side[variant, query] * (propensity * scale[variant])[:, None]
        relevance = model.relevance(rankings.grades)[variant, query]
        pages = None
        exact: dict[str, float] = {}  # the lift from unrounded CTRs: rounding first moves it by 1e-6
        for v, name in enumerate(config.names if expected else ()):
            # a search that shows nothing leaves no event, so the analysis cannot see it: condition on results
            has_results = (rankings.grades[v] >= 0).any(axis=1)
            w = rankings.weights * has_results
            exact[name] = model.expected_ctr(attr_side[v], w / w.sum(), scale[v])
            truth[f"expected_{PRIMARY}_{name}"] = round(exact[name], 6)
            truth[f"searches_without_results_{name}"] = int((~has_results[query] & (variant == v)).sum())
        for v, name in enumerate(config.names if expected else ()):
            if v != control:
                truth[f"expected_lift_{name}"] = round(exact[name] / exact[config.control_name] - 1.0, 6)
    else:
        variant = np.full(n, 2)  # index of INTERLEAVED in the events' name list
        pages, teams, grades = _interleave(rankings, query,
                                           unit_ids()[search_user if config.unit == "user" else search_session])
        attr = model.attractiveness(grades) * propensity[:, None]
        relevance = model.relevance(grades)
    clicks, carts, orders = model.draw(attr, relevance, rng)
    sim = Simulation(config, rankings, model, seed, traffic.users, session_user, search_user, search_session, query,
                     variant, pages, teams, clicks, carts, orders, truth)
    if user_ids is not None:  # keep the ids already made
        sim.__dict__["user_ids"] = user_ids
    if session_ids is not None:
        sim.__dict__["session_ids"] = session_ids
    return sim


def _user_ids(seed: int, n: int) -> np.ndarray:
    return np.array([f"u{seed}-{i}" for i in range(n)], dtype=object)


def _session_ids(user_ids: np.ndarray, session_user: np.ndarray) -> np.ndarray:
    return np.array([f"{user_ids[u]}-s{j}" for j, u in enumerate(session_user.tolist())], dtype=object)


def lift_scales(rankings: Rankings, config: ExperimentConfig, model: ClickModel, lift: float) -> np.ndarray:
    """Attractiveness multiplier per variant: 1 for the control, and for the other the factor
    that raises its expected search CTR by the relative ``lift``."""
    if model.max_grade is None:
        model = dataclasses.replace(model, max_grade=rankings.max_grade)
    attr = model.attractiveness(rankings.grades)
    control = config.names.index(config.control_name)
    return np.array([1.0 if v == control else model.scale_for_lift(attr[v], rankings.weights, lift)
                     for v in range(2)])


def _interleave(rankings: Rankings, query: np.ndarray, units: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Team-draft pages (ids, teams, grades), each (searches, k); one Python merge per search."""
    k, n = rankings.k, len(query)
    lookup = rankings.grade_lookup()
    ids = np.full((n, k), "", dtype=object)
    teams = np.full((n, k), "", dtype=object)
    grades = np.full((n, k), -1, dtype=np.int64)
    for i, (q, unit) in enumerate(zip(query.tolist(), units.tolist(), strict=True)):
        page = team_draft(list(rankings.ids[0, q]), list(rankings.ids[1, q]), str(rankings.texts[q]), str(unit), k)
        m = len(page.ids)
        ids[i, :m] = page.ids
        teams[i, :m] = page.teams
        grades[i, :m] = [lookup[q][p] for p in page.ids]
    return ids, teams, grades


def replicate(
    rankings: Rankings,
    config: ExperimentConfig,
    traffic: Traffic,
    model: ClickModel = ClickModel(),
    *,
    lift: float = 0.0,
    n: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """``n`` independent simulated A/B experiments (seeded assignment draws), one row each with
    the primary metric's p-value, lift, MDE and the SRM p-value: the false-positive rate (``lift=0``)
    or the power at this traffic is ``(p_value < alpha).mean()``."""
    rows = []
    treatment = next(v for v in config.names if v != config.control_name)
    scales = lift_scales(rankings, config, model, lift)
    for i in range(n):
        sim = simulate(rankings, config, traffic, model, lift=lift, seed=seed * 1_000_003 + i, assignment="random",
                       scales=scales, expected=False)
        units = sim.units(labels=False)
        t, c = units[units["variant"] == treatment], units[units["variant"] == config.control_name]
        col = METRICS[PRIMARY][0]
        r = compare_ratios(t[col].to_numpy(np.float64), t["searches"].to_numpy(np.float64),
                           c[col].to_numpy(np.float64), c["searches"].to_numpy(np.float64),
                           alpha=config.alpha, power=config.power)
        srm = srm_test({treatment: len(t), config.control_name: len(c)},
                       dict(zip(config.names, config.weights, strict=True)))
        rows.append({"seed": sim.seed, "p_value": r["p_value"], "lift": r["lift"], "mde_rel": r["mde_rel"],
                     "units": len(units), "srm_p": srm["p_value"],
                     "detected": bool(r["p_value"] < config.alpha and r["lift"] > 0)})
    return pd.DataFrame(rows)
