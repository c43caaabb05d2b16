"""Online experiments: assignment, interleaving, the event store, A/B analysis, simulation, side-by-side.

What the serving layer calls (all thread-safe; stores may be opened by several processes)::

    from shopsearch.experiments import (
        ExperimentConfig, assign, team_draft, credit, EventStore, SearchEvent,
        SbsStore, SbsVerdict, blind_pair,
    )

    config = ExperimentConfig.from_file("shop.yaml")         # the `ab` section
    variant = assign(config, unit_id)                          # -> variant name, or "interleaved"
    page = team_draft(ids_a, ids_b, query, unit_id, k=10)     # -> Interleaved(ids, teams "a"/"b")
    store = EventStore("events.db")                            # open once per process
    store.append([SearchEvent(action_name="impression", query_id=qid, object_id=pid, position=i,
                              user_id=uid, session_id=sid, query=q, experiment=config.name,
                              variant=variant, team=None), ...])   # durable when it returns
    pair = blind_pair(query, "bm25", "hybrid", seed=0)         # -> BlindPair(query, left, right, swapped)
    SbsStore("sbs.db").record(SbsVerdict.from_pair(pair, "left", rater="ann"))

Signatures:

- ``assign(config: ExperimentConfig, unit_id: str) -> str``
- ``team_draft(a: Sequence[str], b: Sequence[str], query: str, unit_id: str, k: int | None = None) -> Interleaved``
- ``credit(interleaved: Interleaved, clicked: Iterable[str]) -> Credit``
- ``EventStore(path).append(events: SearchEvent | Mapping | Iterable[SearchEvent | Mapping]) -> int``
- ``SbsStore(path).record(verdict: SbsVerdict | Iterable[SbsVerdict]) -> int``
- ``blind_pair(query: str, a: str, b: str, seed: int | str = 0) -> BlindPair``

For interleaving, log ``variant="interleaved"`` and ``team=<variant name of the position's team>``
on impressions (clicks may carry it too; the analysis takes it from the impression otherwise).

Analysis and simulation: :func:`analyze` (events or unit tables -> :class:`AbReport`),
:func:`simulate` / :func:`replicate` (click-model traffic over two :class:`Rankings`), :func:`gsb`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shopsearch.experiments.analysis import METRICS, PRIMARY, analyze, search_table, unit_table
    from shopsearch.experiments.assignment import (
        INTERLEAVED,
        ExperimentConfig,
        VariantSpec,
        assign,
        assign_many,
    )
    from shopsearch.experiments.clickmodels import ClickModel
    from shopsearch.experiments.events import ACTIONS, EVENT_FIELDS, EventStore, SearchEvent
    from shopsearch.experiments.interleaving import Credit, Interleaved, credit, team_draft
    from shopsearch.experiments.rankings import Rankings, rankings_from_grades, rankings_from_runs
    from shopsearch.experiments.report import AbReport
    from shopsearch.experiments.sbs import (
        BlindPair,
        GsbResult,
        SbsStore,
        SbsVerdict,
        blind_pair,
        gsb,
        gsb_all,
    )
    from shopsearch.experiments.simulation import Simulation, Traffic, replicate, simulate
    from shopsearch.experiments.storage import StoreError
    from shopsearch.experiments.ubi import load_events, read_ubi, write_ubi

# Imported on first use (PEP 562), so `from shopsearch.experiments import EventStore` in a serving
# process loads the store, not scipy, matplotlib and the analysis.
_LAZY: dict[str, str] = {
    "METRICS": "shopsearch.experiments.analysis",
    "PRIMARY": "shopsearch.experiments.analysis",
    "analyze": "shopsearch.experiments.analysis",
    "search_table": "shopsearch.experiments.analysis",
    "unit_table": "shopsearch.experiments.analysis",
    "INTERLEAVED": "shopsearch.experiments.assignment",
    "ExperimentConfig": "shopsearch.experiments.assignment",
    "VariantSpec": "shopsearch.experiments.assignment",
    "assign": "shopsearch.experiments.assignment",
    "assign_many": "shopsearch.experiments.assignment",
    "ClickModel": "shopsearch.experiments.clickmodels",
    "ACTIONS": "shopsearch.experiments.events",
    "EVENT_FIELDS": "shopsearch.experiments.events",
    "EventStore": "shopsearch.experiments.events",
    "SearchEvent": "shopsearch.experiments.events",
    "Credit": "shopsearch.experiments.interleaving",
    "Interleaved": "shopsearch.experiments.interleaving",
    "credit": "shopsearch.experiments.interleaving",
    "team_draft": "shopsearch.experiments.interleaving",
    "Rankings": "shopsearch.experiments.rankings",
    "rankings_from_grades": "shopsearch.experiments.rankings",
    "rankings_from_runs": "shopsearch.experiments.rankings",
    "AbReport": "shopsearch.experiments.report",
    "BlindPair": "shopsearch.experiments.sbs",
    "GsbResult": "shopsearch.experiments.sbs",
    "SbsStore": "shopsearch.experiments.sbs",
    "SbsVerdict": "shopsearch.experiments.sbs",
    "blind_pair": "shopsearch.experiments.sbs",
    "gsb": "shopsearch.experiments.sbs",
    "gsb_all": "shopsearch.experiments.sbs",
    "Simulation": "shopsearch.experiments.simulation",
    "Traffic": "shopsearch.experiments.simulation",
    "replicate": "shopsearch.experiments.simulation",
    "simulate": "shopsearch.experiments.simulation",
    "StoreError": "shopsearch.experiments.storage",
    "load_events": "shopsearch.experiments.ubi",
    "read_ubi": "shopsearch.experiments.ubi",
    "write_ubi": "shopsearch.experiments.ubi",
}

__all__ = [
    "ACTIONS",
    "EVENT_FIELDS",
    "INTERLEAVED",
    "METRICS",
    "PRIMARY",
    "AbReport",
    "BlindPair",
    "ClickModel",
    "Credit",
    "EventStore",
    "ExperimentConfig",
    "GsbResult",
    "Interleaved",
    "Rankings",
    "SbsStore",
    "SbsVerdict",
    "SearchEvent",
    "Simulation",
    "StoreError",
    "Traffic",
    "VariantSpec",
    "analyze",
    "assign",
    "assign_many",
    "blind_pair",
    "credit",
    "gsb",
    "gsb_all",
    "load_events",
    "rankings_from_grades",
    "rankings_from_runs",
    "read_ubi",
    "replicate",
    "search_table",
    "simulate",
    "team_draft",
    "unit_table",
    "write_ubi",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
