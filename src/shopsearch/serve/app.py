"""The FastAPI app: search API, product lookup, health and metrics, admin reload, the web page.

:func:`create_app` builds one app around an :class:`~shopsearch.serve.holder.IndexHolder`.
Everything a route needs is in one :class:`ServeContext` on ``app.state``, reachable from any
router through the :func:`get_context` dependency (:mod:`shopsearch.serve.context`).

The experiment parts switch on with their settings: ``events_db`` adds ``POST /events``
(:mod:`~shopsearch.serve.routes_events`), ``sbs_db`` the side-by-side routes
(:mod:`~shopsearch.serve.routes_sbs`), ``experiment`` routes ``/search`` requests that carry a
unit id to their variant (:mod:`~shopsearch.serve.experiment`). Other routers plug in with
``create_app(..., extra_routers=[...], features={...})`` or :func:`include_routers`.
``features`` reach the web page through ``GET /info``, which shows the matching parts of the page
only when they are switched on.

Search routes are plain ``def`` functions: FastAPI runs them in its thread pool, so CPU-bound
encoding and retrieval never block the event loop (``/healthz`` stays responsive under load).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, FastAPI, Header, Query
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from shopsearch import __version__
from shopsearch.data.errors import ShopsearchError
from shopsearch.experiments.assignment import ExperimentConfig
from shopsearch.experiments.events import EventStore
from shopsearch.experiments.sbs import SbsStore
from shopsearch.serve import routes_events, routes_sbs
from shopsearch.serve.context import Context, ServeContext, get_context, get_context_from_app
from shopsearch.serve.encoders import IndexMismatchError
from shopsearch.serve.errors import ApiError, BodyLimitMiddleware, install_error_handlers
from shopsearch.serve.experiment import ExperimentRuntime, default_index
from shopsearch.serve.holder import IndexHolder
from shopsearch.serve.judgments import JudgmentLookup
from shopsearch.serve.metrics import MetricsMiddleware, ServeMetrics
from shopsearch.serve.products import FILTER_FIELDS
from shopsearch.serve.sbs_tokens import PairTokens
from shopsearch.serve.schemas import (
    ID_PATTERN,
    Health,
    IndexInfo,
    Product,
    Ready,
    ReloadRequest,
    ReloadResponse,
    SearchQueryParams,
    SearchRequest,
    SearchResponse,
    error_responses,
)
from shopsearch.serve.search_service import SearchService
from shopsearch.serve.security import ADMIN_PREFIX, AdminGuard, AdminKey
from shopsearch.serve.settings import ServeSettings, settings_from_env

__all__ = ["ServeContext", "create_app", "get_context", "get_context_from_app", "include_routers"]

log = logging.getLogger("shopsearch.serve")
STATIC_DIR = Path(__file__).with_name("static")
# The page loads nothing from elsewhere and never needs inline script or framing.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


# The unit ids may also come as headers, so a shop's front end can set them once for every call.
UserHeader = Annotated[str | None, Header(alias="X-User-Id", min_length=1, max_length=128, pattern=ID_PATTERN)]
SessionHeader = Annotated[str | None, Header(alias="X-Session-Id", min_length=1, max_length=128, pattern=ID_PATTERN)]


def run_search(ctx: ServeContext, request: SearchRequest, user_id: str | None, session_id: str | None) -> SearchResponse:
    """One search: in the experiment when one runs and the request names its unit, else as asked.
    Ids in the query or body win over the headers."""
    request = request.model_copy(
        update={"user_id": request.user_id or user_id, "session_id": request.session_id or session_id}
    )
    if ctx.experiment is not None:
        response = ctx.experiment.search(ctx.service, request)
        if response is not None:
            ctx.metrics.experiment_searches.labels(variant=response.variant).inc()
            return response
    return ctx.service.search(request)


search_router = APIRouter(tags=["search"])
ops_router = APIRouter(tags=["operations"])
# Guarded by security.AdminGuard (the middleware checks the key before the body is read).
admin_router = APIRouter(prefix=ADMIN_PREFIX, tags=["admin"])


@search_router.get("/search", responses=error_responses(422, 503))
def search_get(
    params: Annotated[SearchQueryParams, Query()], ctx: Context, x_user_id: UserHeader = None,
    x_session_id: SessionHeader = None,
) -> SearchResponse:  # fmt: skip
    """Search the served index: ``/search?q=cordless+drill&k=10&mode=hybrid&vertical=tools``.
    With an experiment running, ``user_id``/``session_id`` (or ``X-User-Id``/``X-Session-Id``)
    put the search in the unit's variant; the response then names ``experiment`` and ``variant``."""
    return run_search(ctx, params, x_user_id, x_session_id)


# a JSON body adds 400 (unparsable) and 413 (BodyLimitMiddleware) to what GET /search may answer
@search_router.post("/search", responses=error_responses(400, 413, 422, 503))
def search_post(
    body: SearchRequest, ctx: Context, x_user_id: UserHeader = None, x_session_id: SessionHeader = None
) -> SearchResponse:
    """Search with a JSON body holding the same fields as ``GET /search``."""
    return run_search(ctx, body, x_user_id, x_session_id)


@search_router.get("/products/{product_id}", responses=error_responses(404, 422, 503))
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


@ops_router.get("/info", responses=error_responses(503))
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
        rerank_default=s.rerank_default,
        rerank_depth=s.rerank_depth if snapshot.reranker is not None else None,
        facets={f: snapshot.products.facet(f) for f in FILTER_FIELDS},
        judgments=ctx.judgments.describe() if ctx.judgments else None,
        features=dict(ctx.features),
        experiment=ctx.experiment.describe() if ctx.experiment else None,
    )


# 503: no body asks to re-read the current index, and none is loaded yet
@admin_router.post("/reload", responses=error_responses(400, 401, 403, 409, 413, 422, 503))
def reload_index(ctx: Context, body: Annotated[ReloadRequest | None, Body()] = None) -> ReloadResponse:
    """Load an index directory (default: re-read the current one), check it against the serving
    encoder and swap it in; requests in flight finish on the old index. A refused index (409: other
    model or dimension; 422: missing, corrupted or inconsistent) leaves the old one serving."""
    started = time.perf_counter()
    target = Path(body.index) if body is not None and body.index else None
    serving = ctx.holder.snapshot
    if (
        target is not None and serving is not None and ctx.experiment is not None and ctx.experiment.pins(ctx.holder)
        and target.resolve() != serving.directory
    ):  # fmt: skip
        # a variant serves this index: moving it would change an arm in the middle of the experiment
        raise ApiError(409, "experiment_running", f"experiment {ctx.experiment.name!r} serves this index; "
                       "re-read it (no body) or restart the service with another experiment")
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


def create_app(
    settings: ServeSettings,
    *,
    holder: IndexHolder | None = None,
    judgments: JudgmentLookup | None = None,
    admin_key: AdminKey | None = None,
    experiment: ExperimentRuntime | None = None,
    pair_tokens: PairTokens | None = None,
    extra_routers: Iterable[APIRouter] = (),
    features: Mapping[str, bool] | None = None,
) -> FastAPI:
    """Build the app. ``holder`` may come with an index already loaded (``shopsearch serve`` loads
    it before binding the port, so a bad index is a clean exit 2); otherwise ``settings.index`` is
    loaded at startup. ``judgments`` default to ``settings.judgments``, the admin key to
    ``settings.admin_key_file`` or ``$SHOPSEARCH_ADMIN_KEY``, the experiment to
    ``settings.experiment`` (its variants' indexes load at startup unless already loaded), pair
    tokens to ``$SHOPSEARCH_SBS_SECRET`` or a fresh secret. The event and SBS stores open at
    startup and close at shutdown."""
    config = experiment.config if experiment is not None else (
        ExperimentConfig.from_file(settings.experiment) if settings.experiment is not None else None
    )  # fmt: skip
    if config is not None and settings.index is None:
        settings = settings.model_copy(update={"index": default_index(settings, config)})
    holder = holder if holder is not None else IndexHolder(settings)
    if experiment is None and config is not None:
        experiment = ExperimentRuntime(config, settings, holder)
    if admin_key is None:
        admin_key = AdminKey.from_sources(settings.admin_key_file)
    if judgments is None and settings.judgments is not None:
        judgments = JudgmentLookup.load(
            settings.judgments, catalog=settings.judgments_catalog, format=settings.judgments_format
        )
    metrics = ServeMetrics(holder)
    service = SearchService(holder, settings, judgments=judgments, metrics=metrics)
    context = ServeContext(settings, holder, service, metrics, admin_key, judgments, experiment=experiment)
    routers: list[APIRouter] = []
    if settings.events_db is not None:
        routers.append(routes_events.router)
    if settings.sbs_db is not None:
        routers.append(routes_sbs.router)
        context.pair_tokens = pair_tokens or PairTokens.from_env(settings.sbs_token_ttl_s)
    built_in = {"events": settings.events_db is not None, "sbs": settings.sbs_db is not None,
                "experiment": experiment is not None}  # fmt: skip

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not holder.ready and settings.index is not None:
            await run_in_threadpool(holder.reload, settings.index)
        if experiment is not None:  # loads the holders not loaded yet, checks every variant
            await run_in_threadpool(experiment.load)
        # Opened here, closed below: each worker process holds its own connections (SQLite WAL
        # lets several processes append to one file).
        opened = []
        if settings.events_db is not None and context.events is None:
            context.events = EventStore(settings.events_db)
            opened.append("events")
        if settings.sbs_db is not None and context.sbs is None:
            context.sbs = SbsStore(settings.sbs_db)
            opened.append("sbs")
        try:
            yield
        finally:
            for name in opened:
                store = getattr(context, name)
                setattr(context, name, None)
                store.close()

    app = FastAPI(
        title="shopsearch",
        version=__version__,
        summary="Semantic product search: dense, BM25 and hybrid retrieval over one index.",
        lifespan=lifespan,
        # every route, extra routers' included, may fail unexpectedly: its 500 has the error body too
        responses=error_responses(500),
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
    include_routers(app, routers, {k: v for k, v in built_in.items() if v})
    # Extension point for other routers: see the module docstring.
    include_routers(app, extra_routers, features)
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory for ``--workers N``: each worker builds its app from the parent's settings."""
    settings = settings_from_env()
    logging.getLogger("shopsearch").setLevel(settings.log_level.upper())
    return create_app(settings)
