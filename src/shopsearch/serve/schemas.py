"""Request and response bodies of the search service (they are also its OpenAPI schema)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shopsearch.serve.settings import K_LIMIT

Mode = Literal["dense", "bm25", "hybrid"]
# Pydantic's own ceiling on a query's length, so a megabyte query is refused before any work;
# the configured (lower) ``max_query_chars`` is checked by the search service.
QUERY_HARD_LIMIT = 4096
# Shopper, session and event ids: any text without control characters (they end up in logs and
# in the event store), short enough that a client cannot bloat either.
ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]+$"  # C0, DEL and C1 controls (U+009B starts terminal escapes)
UnitId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=ID_PATTERN)]


class SearchRequest(BaseModel):
    """A search: ``POST /search`` takes it as JSON, ``GET /search`` as query parameters."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"q": "cordless drill", "k": 10}]})

    q: str = Field(..., min_length=1, max_length=QUERY_HARD_LIMIT, description="the query text")
    k: int | None = Field(None, ge=1, le=K_LIMIT, description="number of results (default: the service's k_default, 10)")
    mode: Mode = Field("dense", description="dense (encoder + FAISS), bm25, or hybrid (rank fusion of both)")
    vertical: str | None = Field(None, max_length=200, description="only products of this vertical")
    brand: str | None = Field(None, max_length=200, description="only products of this brand")
    rerank: bool | None = Field(
        None,
        description="re-order the top hits with the service's cross-encoder re-ranker (default: the service's "
        "rerank_default; true on a service without a re-ranker is refused)",
    )
    spell: bool = Field(
        True,
        description="correct misspelt words against the catalogue first (when the service corrects spelling); "
        "false searches the query as typed",
    )
    user_id: UnitId | None = Field(
        None, description="the shopper (or header X-User-Id): assigns a variant when a user experiment runs"
    )
    session_id: UnitId | None = Field(
        None, description="the session (or header X-Session-Id): assigns a variant when a session experiment runs"
    )


class SearchQueryParams(SearchRequest):
    """``GET /search``: unknown query parameters (cache busters, tracking tags) are ignored."""

    model_config = ConfigDict(extra="ignore")


class Product(BaseModel):
    """A product's display fields, as stored in the index's product table."""

    product_id: str
    title: str | None = None
    brand: str | None = None
    color: str | None = None
    category: str | None = None
    vertical: str | None = None


class Hit(Product):
    """One search result."""

    rank: int = Field(..., ge=1)
    score: float = Field(..., description="the retriever's score: cosine (dense), BM25, or fused (hybrid); "
                         "re-ranked: the fusion of the re-ranker's and the retriever's standardised scores")
    grade: int | None = Field(None, description="the judged grade of (query, product), when judgments are loaded")
    team: str | None = Field(None, description="interleaving: the variant whose ranking contributed this result")


class SearchResponse(BaseModel):
    query: str = Field(..., description="the query as typed (whitespace collapsed)")
    corrected_query: str | None = Field(
        None, description="the query searched instead, when spelling correction changed a word"
    )
    corrections: list[tuple[str, str]] = Field(
        default_factory=list, description="each word the spelling correction changed: [typed, replacement]"
    )
    query_id: str = Field(
        default_factory=lambda: uuid.uuid4().hex,
        description="names this results page; events about it (POST /events) carry it as query_id",
    )
    mode: Mode | Literal["interleaved"] = Field(..., description="the mode searched ('interleaved': two variants merged)")
    reranked: bool = Field(False, description="whether the re-ranker re-ordered the top hits")
    k: int
    filters: dict[str, str] = Field(default_factory=dict)
    results: list[Hit]
    judged: bool = Field(False, description="whether judgments for this query text are loaded")
    cached: bool = Field(False, description="served from the result cache")
    candidates: int | None = Field(None, description="unfiltered candidates scanned to apply the filters")
    index_generation: int = Field(..., description="increases with every successful reload")
    took_ms: float
    experiment: str | None = Field(None, description="the experiment this search was served in, if any")
    variant: str | None = Field(None, description="the unit's variant ('interleaved' for an interleaving experiment)")


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    status: Literal["ready", "not ready"]
    index: str | None = None
    generation: int | None = None
    n_products: int | None = None


class IndexInfo(BaseModel):
    """What is being served, for the web page and for operators."""

    index: dict[str, Any]
    modes: list[Mode]
    k_default: int
    k_max: int
    max_query_chars: int
    rerank_default: bool = Field(False, description="whether a search without `rerank` is re-ranked")
    rerank_depth: int | None = Field(None, description="top hits the re-ranker re-orders (None: no re-ranker)")
    facets: dict[str, list[tuple[str, int]]] = Field(default_factory=dict)
    judgments: dict[str, Any] | None = None
    features: dict[str, bool] = Field(
        default_factory=dict, description="optional parts switched on by extra routers, e.g. sbs, events"
    )
    experiment: dict[str, Any] | None = Field(
        None, description="the experiment served (name, design, unit, variants), when one runs"
    )


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: str | None = Field(None, max_length=4096, description="index directory; default: re-read the current one")


class ReloadResponse(BaseModel):
    status: Literal["reloaded"] = "reloaded"
    index: str
    generation: int
    previous_generation: int | None
    n_products: int
    took_ms: float


class ErrorDetail(BaseModel):
    code: str = Field(..., description="machine-readable: invalid_request, malformed_json, not_found, ...")
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer has this body."""

    error: ErrorDetail


# What each error status means on this service; :func:`error_responses` puts them in the schema.
ERROR_STATUSES: dict[int, str] = {
    400: "the body is not valid JSON, or could not be read (malformed_json, bad_request)",
    401: "a valid admin key is required (unauthorized)",
    403: "admin endpoints are off: no admin key is configured (admin_disabled)",
    404: "no such product (not_found)",
    409: "the index cannot be swapped in now (index_mismatch, experiment_running)",
    413: "the body exceeds max_body_bytes (payload_too_large)",
    422: "the request fails validation (invalid_request) or the service's own checks, each with its code",
    500: "the server failed on this request; its log has the details (internal_error)",
    503: "no index is loaded yet (not_ready) or a store could not commit (store_unavailable); retry",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for a route's error statuses, all with the :class:`ErrorResponse` body.

    Declared per route, so that a client (and schemathesis) knows every status it may meet: a
    status the schema does not list is a contract violation even when the body is well formed.
    """
    return {status: {"model": ErrorResponse, "description": ERROR_STATUSES[status]} for status in statuses}
