"""The FastAPI app: search API, product lookup, health and metrics, admin reload, the web page.

:func:`create_app` builds one app around an :class:`~shopsearch.serve.holder.IndexHolder`.
Everything a route needs is in one :class:`ServeContext` on ``app.state``, reachable from any
router through the :func:`get_context` dependency; that is how routers that live elsewhere (the
experiments package's ``/events`` and side-by-side views) plug in: pass them as
``create_app(..., extra_routers=[...], features={"events": True, "sbs": True})`` or call
:func:`include_routers` on a built app. ``features`` reach the web page through ``GET /info``,
which shows the matching parts of the page only when they are switched on.

Search routes are plain ``def`` functions: FastAPI runs them in its thread pool, so CPU-bound
encoding and retrieval never block the event loop (``/healthz`` stays responsive under load).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from shopsearch import __version__
from shopsearch.data.errors import ShopsearchError
from shopsearch.serve.encoders import IndexMismatchError
from shopsearch.serve.errors import ApiError, BodyLimitMiddleware, install_error_handlers
from shopsearch.serve.holder import IndexHolder
from shopsearch.serve.judgments import JudgmentLookup
from shopsearch.serve.metrics import MetricsMiddleware, ServeMetrics
from shopsearch.serve.products import FILTER_FIELDS
from shopsearch.serve.schemas import (
    ErrorResponse,
    Health,
    IndexInfo,
    Product,
    Ready,
    ReloadRequest,
    ReloadResponse,
    SearchQueryParams,
    SearchRequest,
    SearchResponse,
)
from shopsearch.serve.search_service import SearchService
from shopsearch.serve.security import ADMIN_PREFIX, AdminGuard, AdminKey
from shopsearch.serve.settings import ServeSettings, settings_from_env

log = logging.getLogger("shopsearch.serve")
STATIC_DIR = Path(__file__).with_name("static")
# The page loads nothing from elsewhere and never needs inline script or framing.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_BAD_INPUT: dict[int | str, dict[str, Any]] = {400: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}}


@dataclass
class ServeContext:
    """What routes share: settings, the index holder, the search service, metrics, the admin key."""

    settings: ServeSettings
    holder: IndexHolder
    service: SearchService
    metrics: ServeMetrics
    admin_key: AdminKey
    judgments: JudgmentLookup | None = None
    features: dict[str, bool] = field(default_factory=dict)


def get_context(request: Request) -> ServeContext:
    """FastAPI dependency: the :class:`ServeContext` of the app handling ``request``."""
    return request.app.state.shopsearch


Context = Annotated[ServeContext, Depends(get_context)]


search_router = APIRouter(tags=["search"])
ops_router = APIRouter(tags=["operations"])
# Guarded by security.AdminGuard (the middleware checks the key before the body is read).
admin_router = APIRouter(prefix=ADMIN_PREFIX, tags=["admin"])


@search_router.get("/search", responses=_BAD_INPUT)
def search_get(params: Annotated[SearchQueryParams, Query()], ctx: Context) -> SearchResponse:
    """Search the served index: ``/search?q=cordless+drill&k=10&mode=hybrid&vertical=tools``."""
    return ctx.service.search(params)


@search_router.post("/search", responses=_BAD_INPUT)
def search_post(body: SearchRequest, ctx: Context) -> SearchResponse:
    """Search with a JSON body holding the same fields as ``GET /search``."""
    return ctx.service.search(body)


@search_router.get("/products/{product_id}", responses={404: {"model": ErrorResponse}})
def get_product(product_id: Annotated[str, PathParam(max_length=512)], ctx: Context) -> Product:
    """A product's display fields from the served index."""
    found = ctx.holder.current.products.get(product_id)
    if found is None:
        raise ApiError(404, "not_found", f"no product {product_id!r} in the served index")
    return Product(**found)


@ops_router.get("/healthz")
async def healthz() -> Health:
    """Liveness: the process answers (it may still be loading its index)."""
    return Health()


@ops_router.get("/readyz", responses={503: {"model": Ready}})
def readyz(ctx: Context) -> Any:
    """Readiness: 200 once an index is loaded and searchable, else 503."""
    snapshot = ctx.holder.snapshot
    if snapshot is None:
        return JSONResponse(Ready(status="not ready").model_dump(), status_code=503)
    return Ready(
        status="ready", index=snapshot.directory.name, generation=snapshot.generation, n_products=snapshot.n_products
    )


@ops_router.get("/metrics", response_class=Response)
def metrics(ctx: Context) -> Response:
    """Prometheus text format: requests, latencies, searches by mode, reloads, index size."""
    body, content_type = ctx.metrics.render()
    return Response(body, media_type=content_type)


@ops_router.get("/info")
def info(ctx: Context) -> IndexInfo:
    """What is served: the index, available modes, limits, filter values, judgments, page features."""
    snapshot = ctx.holder.current
    s = ctx.settings
    return IndexInfo(
        index=snapshot.describe(),
        modes=snapshot.modes,
        k_default=s.k_default,
        k_max=s.k_max,
        max_query_chars=s.max_query_chars,
        facets={f: snapshot.products.facet(f) for f in FILTER_FIELDS},
        judgments=ctx.judgments.describe() if ctx.judgments else None,
        features=dict(ctx.features),
    )


@admin_router.post(
    "/reload",
    responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 409: {"model": ErrorResponse},
               422: {"model": ErrorResponse}},
)  # fmt: skip
def reload_index(ctx: Context, body: Annotated[ReloadRequest | None, Body()] = None) -> ReloadResponse:
    """Load an index directory (default: re-read the current one), check it against the serving
    encoder and swap it in; requests in flight finish on the old index. A refused index (409: other
    model or dimension; 422: missing, corrupted or inconsistent) leaves the old one serving."""
    started = time.perf_counter()
    target = Path(body.index) if body is not None and body.index else None
    try:
        new, old = ctx.holder.reload(target)
    except IndexMismatchError as exc:
        ctx.metrics.reloads.labels(outcome="refused").inc()
        log.warning("reload refused: %s", exc)
        raise ApiError(409, "index_mismatch", str(exc)) from exc
    except ShopsearchError as exc:
        ctx.metrics.reloads.labels(outcome="refused").inc()
        log.warning("reload refused: %s", exc)
        raise ApiError(422, "index_refused", str(exc)) from exc
    ctx.metrics.reloads.labels(outcome="ok").inc()
    log.info("index %s (generation %d) now served", new.directory, new.generation)
    return ReloadResponse(
        index=str(new.directory),
        generation=new.generation,
        previous_generation=old.generation if old is not None else None,
        n_products=new.n_products,
        took_ms=round((time.perf_counter() - started) * 1000, 1),
    )


def _page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)


def include_routers(
    app: FastAPI, routers: Iterable[APIRouter] = (), features: Mapping[str, bool] | None = None
) -> None:
    """Add routers (e.g. the experiments package's ``/events`` and SBS routes) to a built app and
    switch on the page features they provide. Their routes reach the index and services through
    ``Depends(get_context)``."""
    for router in routers:
        app.include_router(router)
    get_context_from_app(app).features.update(features or {})


def get_context_from_app(app: FastAPI) -> ServeContext:
    return app.state.shopsearch


def create_app(
    settings: ServeSettings,
    *,
    holder: IndexHolder | None = None,
    judgments: JudgmentLookup | None = None,
    admin_key: AdminKey | None = None,
    extra_routers: Iterable[APIRouter] = (),
    features: Mapping[str, bool] | None = None,
) -> FastAPI:
    """Build the app. ``holder`` may come with an index already loaded (``shopsearch serve`` loads
    it before binding the port, so a bad index is a clean exit 2); otherwise ``settings.index`` is
    loaded at startup. ``judgments`` default to ``settings.judgments``, the admin key to
    ``settings.admin_key_file`` or ``$SHOPSEARCH_ADMIN_KEY``."""
    holder = holder if holder is not None else IndexHolder(settings)
    if admin_key is None:
        admin_key = AdminKey.from_sources(settings.admin_key_file)
    if judgments is None and settings.judgments is not None:
        judgments = JudgmentLookup.load(
            settings.judgments, catalog=settings.judgments_catalog, format=settings.judgments_format
        )
    metrics = ServeMetrics(holder)
    service = SearchService(holder, settings, judgments=judgments, metrics=metrics)
    context = ServeContext(settings, holder, service, metrics, admin_key, judgments)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not holder.ready and settings.index is not None:
            await run_in_threadpool(holder.reload, settings.index)
        yield

    app = FastAPI(
        title="shopsearch",
        version=__version__,
        summary="Semantic product search: dense, BM25 and hybrid retrieval over one index.",
        lifespan=lifespan,
    )
    app.state.shopsearch = context
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(AdminGuard, key=admin_key)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: it also counts 413s
    app.include_router(search_router)
    app.include_router(ops_router)
    app.include_router(admin_router)
    app.add_api_route("/", _page, include_in_schema=False, methods=["GET"])
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # Extension point for the experiments package (/events, side-by-side): see the module docstring.
    include_routers(app, extra_routers, features)
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory for ``--workers N``: each worker builds its app from the parent's settings."""
    settings = settings_from_env()
    logging.getLogger("shopsearch").setLevel(settings.log_level.upper())
    return create_app(settings)
