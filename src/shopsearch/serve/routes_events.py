"""``POST /events``: shoppers' impressions, clicks, add-to-carts and orders, into the event store.

A batch is ``{"events": [...]}`` of flattened UBI events (the fields of
:class:`~shopsearch.experiments.SearchEvent`: ``action_name``, ``query_id`` (the search
response's), ``object_id`` (the product), ``position``, ``user_id``/``session_id``/``client_id``,
``query``, ``timestamp``, ``event_id``, and ``experiment``/``variant``/``team`` copied from the
search response). The whole batch is validated first (422 naming the field, e.g.
``events.3.action_name``; nothing of a refused batch is stored), then appended in one transaction.

**Acknowledged means durable**: the answer is sent only after ``EventStore.append`` returned,
i.e. after the batch was committed and fsynced; a client that got a 200 never needs to resend,
and one that resends after a timeout is safe because appends are idempotent by ``event_id``.
The route is a plain ``def``, so the fsync waits in the thread pool, not on the event loop.

Events that name the running experiment are checked against it: a known variant, a team that
is one of the two interleaved variants, a unit id, and the variant the unit is assigned to. A
batch claiming another variant is a client bug (or a forged event) and is refused rather than
mixed into the analysis.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from shopsearch.experiments.assignment import INTERLEAVED
from shopsearch.experiments.events import SearchEvent
from shopsearch.serve.context import Context, ServeContext
from shopsearch.serve.errors import ApiError
from shopsearch.serve.schemas import ID_PATTERN, QUERY_HARD_LIMIT, UnitId, error_responses

log = logging.getLogger("shopsearch.serve")
MAX_BATCH = 500
# Product ids are catalogue text (spaces allowed), as long as GET /products/{id} accepts.
ObjectId = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=ID_PATTERN)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=ID_PATTERN)]

router = APIRouter(tags=["events"])


class EventIn(BaseModel):
    """One shopper action on one product of one search (UBI ``ubi_events``, flattened)."""

    model_config = ConfigDict(extra="forbid")

    action_name: Literal["impression", "click", "add_to_cart", "order", "purchase"] = Field(
        ..., description="purchase (UBI's name) is stored as order"
    )
    query_id: UnitId = Field(..., description="the query_id of the search response the product was shown in")
    object_id: ObjectId = Field(..., description="the product id")
    position: int | None = Field(None, ge=0, le=10_000, description="0-based position on the page")
    query: str | None = Field(None, max_length=QUERY_HARD_LIMIT)
    user_id: UnitId | None = None
    session_id: UnitId | None = None
    client_id: UnitId | None = None
    timestamp: datetime | None = Field(None, description="when it happened (default: when received); naive = UTC")
    event_id: UnitId | None = Field(None, description="idempotency key: an id already stored is skipped")
    experiment: Name | None = None
    variant: Name | None = None
    team: Name | None = None


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"events": [
        {"action_name": "impression", "query_id": "3f2c…", "object_id": "P123", "position": 0, "user_id": "u1"},
        {"action_name": "click", "query_id": "3f2c…", "object_id": "P123", "position": 0, "user_id": "u1"},
    ]}]})  # fmt: skip

    events: list[EventIn] = Field(..., min_length=1, max_length=MAX_BATCH)


class EventsAck(BaseModel):
    """The batch is on disk: ``stored`` new events, ``duplicates`` already stored (same event_id)."""

    received: int
    stored: int
    duplicates: int


def _refuse(i: int, field: str, message: str) -> ApiError:
    return ApiError(422, "invalid_event", f"events.{i}.{field}: {message}")


def check_attribution(ctx: ServeContext, i: int, event: EventIn) -> None:
    """Refuse an event whose experiment fields do not match the experiment being served."""
    exp = ctx.experiment
    if event.experiment is None:
        if event.variant is not None or event.team is not None:
            raise _refuse(i, "experiment", "variant and team need the experiment they belong to")
        return
    if exp is None or event.experiment != exp.name:
        running = f"the running experiment is {exp.name!r}" if exp else "no experiment is running"
        raise _refuse(i, "experiment", f"unknown experiment {event.experiment!r}; {running}")
    expected_variants = [INTERLEAVED] if exp.config.design == "interleaving" else exp.config.names
    if event.variant not in expected_variants:
        raise _refuse(i, "variant", f"{event.variant!r} is not one of {expected_variants}")
    if event.team is not None and (exp.config.design != "interleaving" or event.team not in exp.config.names):
        raise _refuse(i, "team", f"{event.team!r} is not a team of this experiment")
    unit = exp.unit_of(event.user_id, event.session_id)
    field = "user_id" if exp.config.unit == "user" else "session_id"
    if not unit:
        raise _refuse(i, field, f"an event of experiment {exp.name!r} needs the {field} it was assigned by")
    assigned = exp.variant_of(unit)
    if assigned != event.variant:
        raise _refuse(i, "variant", f"this {field} is assigned to {assigned!r}, not {event.variant!r}")


@router.post("/events", responses=error_responses(400, 413, 422, 503))
def post_events(batch: EventBatch, ctx: Context) -> EventsAck:
    """Store a batch of shopper events; answered once the batch is durable (see the module docstring)."""
    assert ctx.events is not None  # the router is only included with an event store
    events: list[SearchEvent] = []
    for i, event in enumerate(batch.events):
        check_attribution(ctx, i, event)
        data: dict[str, Any] = event.model_dump(exclude_none=True)
        try:
            events.append(SearchEvent.model_validate(data))
        except ValidationError as exc:  # EventIn admits only what SearchEvent accepts; a guard
            err = exc.errors()[0]
            raise _refuse(i, ".".join(map(str, err["loc"])) or "event", str(err["msg"])) from None
    stored = ctx.events.append(events)  # returns after COMMIT + fsync: only then do we answer
    for action in {e.action_name for e in events}:
        ctx.metrics.events.labels(action=action).inc(sum(e.action_name == action for e in events))
    return EventsAck(received=len(events), stored=stored, duplicates=len(events) - stored)
