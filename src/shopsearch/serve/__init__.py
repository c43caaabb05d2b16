"""The search service: a FastAPI app over one index directory, with atomic index reloads.

``create_app(ServeSettings(index=...))`` builds the app; ``shopsearch serve`` runs it with uvicorn.
Modules: ``settings`` (ServeSettings), ``schemas`` (request/response bodies), ``holder`` (the served
index and its atomic swap), ``encoders`` (ONNX or torch query encoder, compatibility checks),
``search_service`` (query checks, cache, filters), ``products``, ``judgments``, ``metrics``,
``security`` (admin key), ``errors``, ``context`` (what routes share), ``app`` (factory, search,
ops and admin routes), ``experiment`` (A/B and interleaving in the search path), ``routes_events``
(``POST /events``), ``routes_sbs`` + ``sbs_tokens`` + ``systems`` (side-by-side judging),
``static/`` (the web page: ``app.js``, ``events.js``, ``sbs.js``).
"""

from shopsearch.serve.app import ServeContext, create_app, get_context, include_routers
from shopsearch.serve.holder import IndexHolder, ServingIndex
from shopsearch.serve.settings import ServeSettings, load_serve_settings

__all__ = [
    "IndexHolder",
    "ServeContext",
    "ServeSettings",
    "ServingIndex",
    "create_app",
    "get_context",
    "include_routers",
    "load_serve_settings",
]
