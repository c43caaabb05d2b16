"""What every route shares, in one object on ``app.state``, and the dependency that hands it out.

A module of its own so that routers in other modules (``routes_events``, ``routes_sbs``, and
routers passed to ``create_app(extra_routers=...)``) can depend on it without importing the app.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, FastAPI, Request

from shopsearch.experiments.events import EventStore
from shopsearch.experiments.sbs import SbsStore
from shopsearch.serve.experiment import ExperimentRuntime
from shopsearch.serve.holder import IndexHolder
from shopsearch.serve.judgments import JudgmentLookup
from shopsearch.serve.metrics import ServeMetrics
from shopsearch.serve.sbs_tokens import PairTokens
from shopsearch.serve.search_service import SearchService
from shopsearch.serve.security import AdminKey
from shopsearch.serve.settings import ServeSettings


@dataclass
class ServeContext:
    """Settings, the index holder, the search service, metrics, the admin key, and the optional
    parts: judgments, the experiment, the event and side-by-side stores, pair tokens."""

    settings: ServeSettings
    holder: IndexHolder
    service: SearchService
    metrics: ServeMetrics
    admin_key: AdminKey
    judgments: JudgmentLookup | None = None
    features: dict[str, bool] = field(default_factory=dict)
    experiment: ExperimentRuntime | None = None
    events: EventStore | None = None
    sbs: SbsStore | None = None
    pair_tokens: PairTokens | None = None


def get_context(request: Request) -> ServeContext:
    """FastAPI dependency: the :class:`ServeContext` of the app handling ``request``."""
    return request.app.state.shopsearch


def get_context_from_app(app: FastAPI) -> ServeContext:
    return app.state.shopsearch


Context = Annotated[ServeContext, Depends(get_context)]
