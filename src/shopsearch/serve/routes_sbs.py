"""Side-by-side (SBS) judging: two systems' results for one query, blinded, and the rater's verdict.

- ``GET /sbs/systems``: the systems that can be compared (served modes, experiment variants;
  see :mod:`shopsearch.serve.systems`) and a default pair for the page.
- ``GET /sbs/pair?q=&a=&b=&k=&vertical=&brand=``: both systems' results as ``left`` and
  ``right``, the sides chosen by :func:`~shopsearch.experiments.blind_pair` with a secret seed
  (:mod:`shopsearch.serve.sbs_tokens`), and a pair ``token``. A blinded hit carries the product's
  display fields only: scores (whose scale differs per system), grades, modes, timings and cache
  flags would give the systems away.
- ``POST /sbs/verdict`` ``{"token", "verdict": "left"|"same"|"right", "rater"?}``: stores an
  :class:`~shopsearch.experiments.SbsVerdict` (the sides recomputed from the token, so the verdict
  is unblinded correctly) in the SBS store, durably, before answering. The verdict id is derived
  from the pair's nonce and the rater: a double click or a retry records the verdict once, and
  the first verdict of a rater on a pair stands (``recorded: false`` for the repeats).

``shopsearch sbs report --store FILE`` turns the store into GSB scores per pair of systems.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shopsearch.experiments.sbs import SbsVerdict
from shopsearch.serve.context import Context
from shopsearch.serve.errors import ApiError
from shopsearch.serve.sbs_tokens import InvalidTokenError
from shopsearch.serve.schemas import (
    ID_PATTERN,
    QUERY_HARD_LIMIT,
    Hit,
    Product,
    SearchRequest,
    error_responses,
)
from shopsearch.serve.settings import K_LIMIT
from shopsearch.serve.systems import UnknownSystemError, resolve_system, served_systems, system_names

ANONYMOUS = "anonymous"
SystemName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=ID_PATTERN)]

router = APIRouter(prefix="/sbs", tags=["side-by-side"])


class SbsSystems(BaseModel):
    systems: list[str]
    default_a: str | None = Field(None, description="a sensible first pair for the page")
    default_b: str | None = None


class PairParams(BaseModel):
    """``GET /sbs/pair``: the query, the two systems (either order) and the search options."""

    model_config = ConfigDict(extra="ignore")

    q: str = Field(..., min_length=1, max_length=QUERY_HARD_LIMIT)
    a: SystemName
    b: SystemName
    k: int | None = Field(None, ge=1, le=K_LIMIT)
    vertical: str | None = Field(None, max_length=200)
    brand: str | None = Field(None, max_length=200)


class BlindHit(Product):
    """A result as the rater sees it: rank and display fields, nothing that names the system."""

    rank: int


class SbsPair(BaseModel):
    token: str = Field(..., description="send it back with the verdict; it does not say which side is which")
    query: str
    k: int
    left: list[BlindHit]
    right: list[BlindHit]


class VerdictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(..., min_length=1, max_length=32_768)
    verdict: Literal["left", "same", "right"]
    rater: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=ID_PATTERN)] | None = None


class VerdictResponse(BaseModel):
    recorded: bool = Field(..., description="false: this rater's verdict on this pair was already recorded")
    verdict_id: str
    query: str
    rater: str


def _blind(hits: list[Hit]) -> list[BlindHit]:
    return [BlindHit(**h.model_dump(include=set(BlindHit.model_fields))) for h in hits]


@router.get("/systems", responses=error_responses(503))
def sbs_systems(ctx: Context) -> SbsSystems:
    """The systems a pair can compare, and a default pair (the experiment's two first variants,
    else the re-ranked hybrid against the hybrid, else two modes, hybrid against dense preferred)."""
    names = system_names(ctx.holder, ctx.experiment)
    if ctx.experiment is not None:
        first: list[str | None] = list(names[len(served_systems(ctx.holder.current)):])
    else:
        first = [m for m in ("hybrid+rerank", "hybrid", "dense", "bm25") if m in names]
    a, b = [*first, None, None][:2]
    return SbsSystems(systems=names, default_a=a, default_b=b)


@router.get("/pair", responses=error_responses(422, 503))
def sbs_pair(params: Annotated[PairParams, Query()], ctx: Context) -> SbsPair:
    """Both systems' results for the query, blinded to left and right, with the pair token."""
    assert ctx.pair_tokens is not None
    if params.a == params.b:
        raise ApiError(422, "invalid_request", "a and b name the same system; choose two different ones")
    try:
        systems = {name: resolve_system(name, ctx.holder, ctx.experiment) for name in (params.a, params.b)}
    except UnknownSystemError as exc:
        raise ApiError(422, "unknown_system", str(exc)) from None
    base = SearchRequest(q=params.q, k=params.k, vertical=params.vertical, brand=params.brand)
    # search with the query as the rater typed it; the pair and token use the cleaned text
    results = {}
    for name, system in systems.items():
        results[name] = ctx.service.search(system.request(base), snapshot=system.snapshot)
    query = results[params.a].query
    pair = ctx.pair_tokens.sides(query, params.a, params.b)
    return SbsPair(
        token=ctx.pair_tokens.issue(query, params.a, params.b),
        query=query,
        k=results[params.a].k,
        left=_blind(results[pair.left].results),
        right=_blind(results[pair.right].results),
    )


@router.post("/verdict", responses=error_responses(400, 413, 422, 503))
def sbs_verdict(body: VerdictRequest, ctx: Context) -> VerdictResponse:
    """Record a rater's verdict on a pair; answered once it is durable in the SBS store."""
    assert ctx.pair_tokens is not None and ctx.sbs is not None
    try:
        claim = ctx.pair_tokens.open(body.token)
    except InvalidTokenError as exc:
        raise ApiError(422, "invalid_token", str(exc)) from None
    rater = body.rater or ANONYMOUS
    pair = ctx.pair_tokens.sides(claim.query, claim.a, claim.b)
    verdict_id = hashlib.sha256(f"{claim.nonce}\x1f{rater}".encode()).hexdigest()[:32]
    verdict = SbsVerdict.from_pair(pair, body.verdict, rater=rater, verdict_id=verdict_id)
    recorded = ctx.sbs.record(verdict) == 1
    if recorded:
        ctx.metrics.verdicts.labels(verdict=body.verdict).inc()
    return VerdictResponse(recorded=recorded, verdict_id=verdict_id, query=claim.query, rater=rater)
